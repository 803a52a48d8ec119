// sandbox/processes.hpp: the processes of one session, as its code sees them.
//
// Pids are those inside the session (what os.getpid() prints there). A pid that is not a
// process of the session is "not found", never someone else's process.
#pragma once

#include <cstdint>
#include <string>

namespace sandbox {

struct ProcessInfo {
  int pid = 0;
  int ppid = 0;
  std::string name;           // comm
  std::string cmdline;        // argv joined by spaces
  std::string state;          // "R", "S", "Z", ...
  std::uint64_t rss_bytes = 0;
  std::uint64_t cpu_time_ms = 0;
  std::int64_t start_time = 0;  // seconds since the epoch
};

}  // namespace sandbox
