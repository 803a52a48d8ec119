#include "sandbox/processes.hpp"

namespace sandbox {

std::string_view to_string(ProcessState s) noexcept {
  switch (s) {
    case ProcessState::running: return "R";
    case ProcessState::sleeping: return "S";
    case ProcessState::disk_sleep: return "D";
    case ProcessState::stopped: return "T";
    case ProcessState::tracing_stop: return "t";
    case ProcessState::zombie: return "Z";
    case ProcessState::dead: return "X";
    case ProcessState::idle: return "I";
    case ProcessState::other: return "?";
  }
  return "?";
}

ProcessState parse_process_state(std::string_view s) noexcept {
  if (s == "R" || s == "running") return ProcessState::running;
  if (s == "S" || s == "sleeping") return ProcessState::sleeping;
  if (s == "D" || s == "disk_sleep") return ProcessState::disk_sleep;
  if (s == "T" || s == "stopped") return ProcessState::stopped;
  if (s == "t" || s == "tracing_stop") return ProcessState::tracing_stop;
  if (s == "Z" || s == "zombie") return ProcessState::zombie;
  if (s == "X" || s == "x" || s == "dead") return ProcessState::dead;
  if (s == "I" || s == "idle") return ProcessState::idle;
  return ProcessState::other;
}

}  // namespace sandbox
