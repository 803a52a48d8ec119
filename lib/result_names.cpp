// The names of result.hpp's enums: apart from result.cpp so the agent, which needs only
// these, links no JSON or base64.
#include <string>

#include "sandbox/error.hpp"
#include "sandbox/result.hpp"

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
    case Termination::lifetime: return "lifetime";
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

}  // namespace sandbox
