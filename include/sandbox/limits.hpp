// sandbox/limits.hpp: what one session may use.
//
// Every backend applies the limits it can (see isolation::Backend::containment()); the
// defaults suit an interactive code interpreter.
//
//   sandbox::Limits l; l.timeout = std::chrono::seconds(30); l.memory_bytes = 1 << 30;
#pragma once

#include <chrono>
#include <cstdint>

namespace sandbox {

struct Limits {
  std::chrono::milliseconds timeout{10'000};   // wall clock per execution
  std::uint64_t memory_bytes = 512ull << 20;   // session memory (cgroup) or address space (rlimit)
  std::uint32_t max_processes = 128;           // processes and threads of the session
  std::uint64_t disk_bytes = 100ull << 20;     // workspace quota
  std::uint64_t output_bytes = 1ull << 20;     // per stream, per execution; then truncated
  std::uint64_t upload_bytes = 10ull << 20;    // one uploaded file
  std::chrono::seconds cpu_time{300};          // CPU seconds per process (RLIMIT_CPU)
  std::uint32_t open_files = 1024;             // per process (RLIMIT_NOFILE)
  double cpus = 1.0;                           // CPU share, in cores (cgroup quota)

  // Throws sandbox::Error(invalid_argument) naming the first field out of range.
  void validate() const;
};

}  // namespace sandbox
