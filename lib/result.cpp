#include "sandbox/result.hpp"

#include <nlohmann/json.hpp>

#include "sandbox/error.hpp"

namespace sandbox {

std::string_view to_string(Language l) noexcept {
  switch (l) {
    case Language::python: return "python";
    case Language::nodejs: return "nodejs";
    case Language::shell: return "shell";
  }
  return "python";
}

std::string_view to_string(Status s) noexcept {
  switch (s) {
    case Status::running: return "Running";
    case Status::finished: return "Finished";
    case Status::failed: return "Failed";
    case Status::timeout: return "Timeout";
    case Status::killed: return "Killed";
  }
  return "Failed";
}

std::string_view to_string(Termination t) noexcept {
  switch (t) {
    case Termination::none: return "none";
    case Termination::timeout: return "timeout";
    case Termination::out_of_memory: return "out_of_memory";
    case Termination::process_limit: return "process_limit";
    case Termination::cancelled: return "cancelled";
    case Termination::kernel_died: return "kernel_died";
  }
  return "none";
}

Language parse_language(std::string_view s) {
  if (s == "python" || s == "python3" || s == "py") return Language::python;
  if (s == "nodejs" || s == "node" || s == "javascript" || s == "js") return Language::nodejs;
  if (s == "shell" || s == "bash" || s == "sh") return Language::shell;
  throw Error(errc::invalid_argument,
              "unknown language '" + std::string(s) + "' (python, nodejs or shell)");
}

std::string to_json(const Result& r, bool design_only) {
  using nlohmann::json;
  json j;
  j["status"] = to_string(r.status);
  // Output is bytes from untrusted code: replace invalid UTF-8 rather than fail the dump.
  j["stdout"] = r.stdout_text;
  j["stderr"] = r.stderr_text;
  j["result"] = r.result ? json(*r.result) : json(nullptr);
  json images = json::array();
  for (const auto& img : r.images) images.push_back({{"mime", img.mime}, {"data", img.data}});
  j["images"] = std::move(images);
  j["error"] = r.error ? json{{"name", r.error->name}, {"value", r.error->value},
                              {"traceback", r.error->traceback}}
                       : json(nullptr);
  j["exit_code"] = r.exit_code ? json(*r.exit_code) : json(nullptr);
  j["duration_ms"] = r.duration_ms;
  j["truncated"] = r.truncated;
  if (!design_only) {
    j["execution_id"] = r.execution_id;
    j["language"] = to_string(r.language);
    j["cpu_time_ms"] = r.cpu_time_ms ? json(*r.cpu_time_ms) : json(nullptr);
    j["peak_memory_bytes"] = r.peak_memory_bytes ? json(*r.peak_memory_bytes) : json(nullptr);
    j["termination"] = to_string(r.termination);
    j["stdout_offset"] = r.stdout_offset;
    j["stderr_offset"] = r.stderr_offset;
    j["stdout_total"] = r.stdout_total;
    j["stderr_total"] = r.stderr_total;
    j["note"] = r.note ? json(*r.note) : json(nullptr);
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace sandbox
