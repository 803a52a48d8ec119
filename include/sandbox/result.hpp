// sandbox/result.hpp: the one result object every front-end returns (DESIGN section 3).
//
//   sandbox::Result r = session.run({.language = sandbox::Language::python, .code = "1+1"});
//   if (r.status == sandbox::Status::finished) std::cout << *r.result;   // "2"
//   std::cout << sandbox::to_json(r);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox {

enum class Language { python, nodejs, shell };

enum class Status {
  running,   // still executing; stdout/stderr hold the output so far
  finished,  // exit 0 / no exception
  failed,    // exception, non-zero exit, or the kernel died
  timeout,   // the wall-clock limit ran out; every process of the execution was killed
  killed,    // cancelled by request, or by a session limit (see termination)
};

// Why an execution ended other than by itself. lifetime: its session reached
// Options::lifetime and was closed while it ran.
enum class Termination { none, timeout, out_of_memory, process_limit, cancelled, kernel_died, lifetime };

struct Image {
  std::string mime;  // "image/png"
  std::string data;  // the image's bytes (base64 only in to_json and on the wire)
};

struct ErrorInfo {
  std::string name;       // "ZeroDivisionError"
  std::string value;      // "division by zero"
  std::string traceback;  // formatted, user frames only
};

struct Result {
  std::string execution_id;
  Language language = Language::python;
  Status status = Status::running;
  std::string stdout_text;
  std::string stderr_text;
  std::optional<std::string> result;  // repr() / util.inspect() of the last expression
  std::vector<Image> images;
  std::optional<ErrorInfo> error;
  std::optional<int> exit_code;
  std::uint64_t duration_ms = 0;
  bool truncated = false;             // an output stream hit its cap
  // Accounting (issue: per-execution accounting).
  std::optional<std::uint64_t> cpu_time_ms;
  std::optional<std::uint64_t> peak_memory_bytes;
  Termination termination = Termination::none;
  // Offsets of the returned slices within the whole streams (paging).
  std::uint64_t stdout_offset = 0, stderr_offset = 0;
  std::uint64_t stdout_total = 0, stderr_total = 0;
  // A note from the runtime ("kernel restarted: previous state lost").
  std::optional<std::string> note;
};

std::string_view to_string(Language) noexcept;
std::string_view to_string(Status) noexcept;       // "Running", "Finished", ...
std::string_view to_string(Termination) noexcept;  // "timeout", "out_of_memory", ...
// Throws invalid_argument for an unknown name.
Language parse_language(std::string_view);

// JSON text of the result with DESIGN section 3's field names (plus accounting fields).
// `design_only` keeps exactly the section 3 fields (for `sandboxctl run --json`).
std::string to_json(const Result& r, bool design_only = false);
// The inverse of to_json (either form; absent fields keep their defaults), for clients of
// the HTTP API. Throws invalid_argument for text that is not such an object.
Result parse_result(std::string_view json);

}  // namespace sandbox
