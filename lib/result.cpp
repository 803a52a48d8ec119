#include "sandbox/result.hpp"

#include <nlohmann/json.hpp>

#include <optional>

#include "sandbox/error.hpp"
#include "sys/base64.hpp"

namespace sandbox {

std::string to_json(const Result& r, bool design_only) {
  using nlohmann::json;
  json j;
  j["status"] = to_string(r.status);
  // Output is bytes from untrusted code: replace invalid UTF-8 rather than fail the dump.
  j["stdout"] = r.stdout_text;
  j["stderr"] = r.stderr_text;
  j["result"] = r.result ? json(*r.result) : json(nullptr);
  json images = json::array();
  for (const auto& img : r.images) images.push_back({{"mime", img.mime}, {"data", sys::base64_encode(img.data)}});
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

Status parse_status(std::string_view s) {
  for (Status v : {Status::running, Status::finished, Status::failed, Status::timeout, Status::killed})
    if (to_string(v) == s) return v;
  throw Error(errc::invalid_argument, "unknown status '" + std::string(s) + "'");
}

Termination parse_termination(std::string_view s) {
  for (Termination v : {Termination::none, Termination::timeout, Termination::out_of_memory,
                        Termination::process_limit, Termination::cancelled, Termination::kernel_died,
                        Termination::lifetime})
    if (to_string(v) == s) return v;
  return Termination::none;  // a newer server's reason: not worth failing the result over
}

}  // namespace

Result parse_result(std::string_view text) {
  using nlohmann::json;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw Error(errc::invalid_argument, "a result is a JSON object");
  try {
    Result r;
    auto str = [&](const char* k) -> std::optional<std::string> {
      auto it = j.find(k);
      if (it == j.end() || it->is_null()) return std::nullopt;
      return it->get<std::string>();
    };
    auto num = [&](const char* k) -> std::optional<std::uint64_t> {
      auto it = j.find(k);
      if (it == j.end() || it->is_null()) return std::nullopt;
      return it->get<std::uint64_t>();
    };
    if (auto v = str("status")) r.status = parse_status(*v);
    r.stdout_text = str("stdout").value_or("");
    r.stderr_text = str("stderr").value_or("");
    r.result = str("result");
    if (auto it = j.find("images"); it != j.end() && !it->is_null())
      for (const auto& img : *it)
        r.images.push_back({img.at("mime").get<std::string>(), sys::base64_decode(img.at("data").get<std::string>())});
    if (auto it = j.find("error"); it != j.end() && !it->is_null())
      r.error = ErrorInfo{it->value("name", ""), it->value("value", ""), it->value("traceback", "")};
    if (auto it = j.find("exit_code"); it != j.end() && !it->is_null()) r.exit_code = it->get<int>();
    r.duration_ms = num("duration_ms").value_or(0);
    r.truncated = j.value("truncated", false);
    r.execution_id = str("execution_id").value_or("");
    if (auto v = str("language")) r.language = parse_language(*v);
    r.cpu_time_ms = num("cpu_time_ms");
    r.peak_memory_bytes = num("peak_memory_bytes");
    if (auto v = str("termination")) r.termination = parse_termination(*v);
    r.stdout_offset = num("stdout_offset").value_or(0);
    r.stderr_offset = num("stderr_offset").value_or(0);
    r.stdout_total = num("stdout_total").value_or(r.stdout_offset + r.stdout_text.size());
    r.stderr_total = num("stderr_total").value_or(r.stderr_offset + r.stderr_text.size());
    r.note = str("note");
    return r;
  } catch (const json::exception& e) {
    throw Error(errc::invalid_argument, std::string("not a result object: ") + e.what());
  }
}

}  // namespace sandbox
