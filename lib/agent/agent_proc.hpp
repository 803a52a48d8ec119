// The agent's view of the processes below it, read from /proc, and the one way it kills a
// tree of them. Pids are those of the agent's pid namespace.
//
//   for (const auto& p : agent::scan_processes()) ...      // every process /proc shows
//   agent::kill_tree(kernel_pid, kernel_pid);              // the kernel and all it started
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::agent {

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  char state = '?';
  std::string comm;
  std::uint64_t cpu_ticks = 0;           // utime + stime
  std::uint64_t children_cpu_ticks = 0;  // cutime + cstime (waited-for children)
  std::uint64_t start_ticks = 0;         // since boot
  std::int64_t rss_pages = 0;
};

// /proc/PID/stat parsed; nullopt once the process is gone.
std::optional<ProcStat> read_stat(pid_t pid);
// Every process /proc lists (thread-group leaders).
std::vector<ProcStat> scan_processes();
// Pids below `root` (children, grandchildren, ...), `root` itself excluded.
std::vector<pid_t> descendants(const std::vector<ProcStat>& table, pid_t root);
// argv joined by spaces ("" for kernel threads and zombies).
std::string read_cmdline(pid_t pid);
// Boot time in seconds since the epoch (0 when /proc/stat lacks it).
std::int64_t boot_time();
long clock_ticks();

// Kills `root` (when include_root), every descendant of it and the process group `pgid`
// (when > 0). Processes are stopped first until the set stops growing, so a child forked
// or setsid'd during the walk is caught too; then all of it is SIGKILLed. Never the caller.
void kill_tree(pid_t root, pid_t pgid, bool include_root = true);

}  // namespace sandbox::agent
