// LIST and KILL: the session's processes as the agent sees them, and signals to them.
// Both answer with a REPLY payload (agent/protocol.hpp decodes it on the host).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/agent_proc.hpp"

namespace sandbox::agent {

// The session's processes. As init of a pid namespace that is every other process there,
// whatever its parent (an adopted kernel's is outside); otherwise those below us.
std::vector<pid_t> session_pids(const std::vector<ProcStat>& table);

// CPU ticks of /proc in milliseconds.
std::uint64_t ticks_to_ms(std::uint64_t ticks);

// A JSON array of {pid, ppid, name, cmdline, state, rss_bytes, cpu_time_ms, start_time}.
std::string list_processes();
// `payload` is {pid, signal?}: {"ok": true} or {"error": "not_found" | "invalid_argument" | ...}.
std::string kill_process(std::string_view payload);

}  // namespace sandbox::agent
