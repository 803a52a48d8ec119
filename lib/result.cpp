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

namespace {

Status status_named(std::string_view s) {
  for (Status v : {Status::running, Status::finished, Status::failed, Status::timeout, Status::killed})
    if (to_string(v) == s) return v;
  throw Error(errc::invalid_argument, "unknown result status '" + std::string(s) + "'");
}

Termination termination_named(std::string_view s) {
  for (Termination v : {Termination::none, Termination::timeout, Termination::out_of_memory,
                        Termination::process_limit, Termination::cancelled, Termination::kernel_died})
    if (to_string(v) == s) return v;
  return Termination::none;  // a newer server's reason: not worth failing the result over
}

}  // namespace

Result result_from_json(std::string_view text) {
  using nlohmann::json;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("status"))
    throw Error(errc::invalid_argument, "not a result object");
  try {
    auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    auto u64 = [&](const char* k) -> std::optional<std::uint64_t> {
      if (!j.contains(k) || !j[k].is_number()) return std::nullopt;
      return j[k].get<std::uint64_t>();
    };
    Result r;
    r.status = status_named(j["status"].get<std::string>());
    r.execution_id = str("execution_id");
    if (j.contains("language") && j["language"].is_string()) r.language = parse_language(str("language"));
    r.stdout_text = str("stdout");
    r.stderr_text = str("stderr");
    if (j.contains("result") && j["result"].is_string()) r.result = j["result"].get<std::string>();
    if (j.contains("images") && j["images"].is_array())
      for (const auto& img : j["images"])
        r.images.push_back({img.value("mime", ""), img.value("data", "")});
    if (j.contains("error") && j["error"].is_object()) {
      const json& e = j["error"];
      r.error = ErrorInfo{e.value("name", ""), e.value("value", ""), e.value("traceback", "")};
    }
    if (j.contains("exit_code") && j["exit_code"].is_number_integer()) r.exit_code = j["exit_code"].get<int>();
    r.duration_ms = u64("duration_ms").value_or(0);
    r.truncated = j.value("truncated", false);
    r.cpu_time_ms = u64("cpu_time_ms");
    r.peak_memory_bytes = u64("peak_memory_bytes");
    r.termination = termination_named(str("termination"));
    r.stdout_offset = u64("stdout_offset").value_or(0);
    r.stderr_offset = u64("stderr_offset").value_or(0);
    r.stdout_total = u64("stdout_total").value_or(r.stdout_offset + r.stdout_text.size());
    r.stderr_total = u64("stderr_total").value_or(r.stderr_offset + r.stderr_text.size());
    if (j.contains("note") && j["note"].is_string()) r.note = j["note"].get<std::string>();
    return r;
  } catch (const json::exception& e) {
    throw Error(errc::invalid_argument, std::string("malformed result object: ") + e.what());
  }
}

}  // namespace sandbox
