#include "agent/processes.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "sandbox/error.hpp"

namespace sandbox::agent {

using json = nlohmann::json;

std::vector<pid_t> session_pids(const std::vector<ProcStat>& table) {
  if (::getpid() != 1) return descendants(table, ::getpid());
  std::vector<pid_t> out;
  for (const auto& p : table)
    if (p.pid != 1) out.push_back(p.pid);
  return out;
}

std::uint64_t ticks_to_ms(std::uint64_t ticks) {
  return ticks * 1000 / static_cast<std::uint64_t>(clock_ticks());
}

std::string list_processes() {
  auto table = scan_processes();
  auto below = session_pids(table);
  std::unordered_map<pid_t, const ProcStat*> by_pid;
  for (const auto& p : table) by_pid.emplace(p.pid, &p);
  static const long page = ::sysconf(_SC_PAGESIZE);
  json out = json::array();
  for (pid_t pid : below) {
    auto it = by_pid.find(pid);
    if (it == by_pid.end()) continue;
    const ProcStat& p = *it->second;
    out.push_back({{"pid", p.pid},
                   {"ppid", p.ppid},
                   {"name", p.comm},
                   {"cmdline", read_cmdline(p.pid)},
                   {"state", std::string(1, p.state)},
                   {"rss_bytes", p.rss_pages * page},
                   {"cpu_time_ms", ticks_to_ms(p.cpu_ticks)},
                   {"start_time", boot_time() + static_cast<std::int64_t>(p.start_ticks / static_cast<std::uint64_t>(clock_ticks()))}});
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string kill_process(std::string_view payload) {
  json j = json::parse(payload, nullptr, false);
  auto reply = [](json r) { return r.dump(); };
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer())
    return reply({{"error", "invalid_argument"}});
  auto pid = j["pid"].get<std::int64_t>();
  int sig = SIGKILL;
  if (auto s = j.find("signal"); s != j.end() && s->is_number_integer()) sig = s->get<int>();
  if (sig < 0 || sig > 64) return reply({{"error", "invalid_argument"}});
  bool ours = false;
  if (pid > 0 && pid != ::getpid()) {
    for (pid_t d : session_pids(scan_processes())) ours |= d == pid;
  }
  if (!ours) return reply({{"error", "not_found"}});
  if (::kill(static_cast<pid_t>(pid), sig) != 0)
    return reply({{"error", errno == ESRCH ? "not_found" : std::string(to_string(from_errno(errno)))}});
  return reply({{"ok", true}});
}

}  // namespace sandbox::agent
