// sandbox/processes.hpp: the processes of one session, as its code sees them.
//
// Pids are those inside the session (what os.getpid() prints there). A pid that is not a
// process of the session is "not found", never someone else's process.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sandbox {

// The state letter of /proc/PID/stat (proc(5)), as an enum.
enum class ProcessState {
  running,       // R
  sleeping,      // S: interruptible wait
  disk_sleep,    // D: uninterruptible wait
  stopped,       // T: by a signal
  tracing_stop,  // t: by a tracer
  zombie,        // Z: exited, not yet reaped
  dead,          // X
  idle,          // I: an idle kernel thread
  other,         // any other letter
};

// The letter of proc(5) ("R", "S", "Z", ...; "?" for other): what the HTTP API shows.
std::string_view to_string(ProcessState) noexcept;
// From such a letter (or the words the enum uses); `other` for anything else.
ProcessState parse_process_state(std::string_view) noexcept;

struct ProcessInfo {
  int pid = 0;
  int ppid = 0;
  std::string name;           // comm
  std::string cmdline;        // argv joined by spaces
  ProcessState state = ProcessState::other;
  std::uint64_t rss_bytes = 0;
  std::uint64_t cpu_time_ms = 0;
  std::int64_t start_time = 0;  // seconds since the epoch
};

}  // namespace sandbox
