// Processes that are not (or no longer) our children, held through pidfds: a durable
// session's agent, adopted by a later server. A pid alone could name a recycled process; a
// pid with its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) names
// exactly one, and a pidfd opened while the start time matched keeps naming it.
//
//   const auto ticks = sys::start_ticks(pid);              // recorded at launch
//   sys::UniqueFd pidfd = sys::open_pidfd(pid, *ticks);   // later: throws if gone or reused
//   sys::kill_pidfd(pidfd.get(), pid);  sys::wait_pidfd(pidfd.get(), 5s);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "sys/fd.hpp"

namespace sandbox::sys {

// The process's start time in clock ticks since boot; nullopt when there is no such pid.
std::optional<std::uint64_t> start_ticks(pid_t pid) noexcept;

// A pidfd for `pid`, checked to be the process that started at `ticks`. Throws
// Error(unavailable) when it has exited or the pid now belongs to another process.
UniqueFd open_pidfd(pid_t pid, std::uint64_t ticks);

// SIGKILL to the process group `pid` leads (while the pidfd shows it alive, so the group
// is still its own) and to the process itself through the pidfd.
void kill_pidfd(int pidfd, pid_t pid) noexcept;

// Whether the process has exited (its pidfd is readable), waiting up to `timeout`. A child
// of ours is reaped too; any other's exit status goes to its parent.
bool wait_pidfd(int pidfd, std::chrono::milliseconds timeout) noexcept;
// Kills the process `pid` names if it is still the one that started at `ticks` (and its
// group), and waits up to `timeout` for it to go; nothing if it is gone or the pid reused.
void end_process(pid_t pid, std::uint64_t ticks, std::chrono::milliseconds timeout) noexcept;

}  // namespace sandbox::sys
