#include "agent/agent_proc.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

namespace sandbox::agent {
namespace {

// Reads a small /proc file whole; empty when it cannot be opened.
std::string read_small(const char* path) {
  std::string out;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

bool stopped_or_gone(char state) {
  return state == 'T' || state == 't' || state == 'Z' || state == 'X' || state == 'x';
}

}  // namespace

std::optional<ProcStat> read_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::string s = read_small(path);
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
  auto open = s.find('(');
  auto close = s.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  ProcStat st;
  st.pid = pid;
  st.comm = s.substr(open + 1, close - open - 1);
  std::vector<std::string_view> f;  // fields from 3 (state) on, f[0] = state
  std::string_view rest(s);
  rest.remove_prefix(close + 1);
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    auto end = rest.find(' ');
    std::string_view tok = rest.substr(0, end);
    if (!tok.empty()) f.push_back(tok);
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  if (f.size() < 22) return std::nullopt;
  auto num = [&](std::size_t field) {  // field numbers as in proc(5)
    return std::strtoull(std::string(f[field - 3]).c_str(), nullptr, 10);
  };
  st.state = f[0].empty() ? '?' : f[0][0];
  st.ppid = static_cast<pid_t>(num(4));
  st.pgrp = static_cast<pid_t>(num(5));
  st.cpu_ticks = num(14) + num(15);
  st.children_cpu_ticks = num(16) + num(17);
  st.start_ticks = num(22);
  st.rss_pages = static_cast<std::int64_t>(std::strtoll(std::string(f[24 - 3]).c_str(), nullptr, 10));
  return st;
}

std::vector<ProcStat> scan_processes() {
  std::vector<ProcStat> out;
  DIR* dir = ::opendir("/proc");
  if (!dir) return out;
  while (dirent* d = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(d->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    if (auto st = read_stat(static_cast<pid_t>(pid))) out.push_back(std::move(*st));
  }
  ::closedir(dir);
  return out;
}

std::vector<pid_t> descendants(const std::vector<ProcStat>& table, pid_t root) {
  std::unordered_multimap<pid_t, pid_t> children;
  for (const auto& p : table) children.emplace(p.ppid, p.pid);
  std::vector<pid_t> out;
  std::vector<pid_t> todo{root};
  std::unordered_set<pid_t> seen{root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    auto [b, e] = children.equal_range(p);
    for (auto it = b; it != e; ++it) {
      if (seen.insert(it->second).second) {
        out.push_back(it->second);
        todo.push_back(it->second);
      }
    }
  }
  return out;
}

std::string read_cmdline(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/cmdline", static_cast<int>(pid));
  std::string s = read_small(path);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

std::int64_t boot_time() {
  static const std::int64_t btime = [] {
    std::string s = read_small("/proc/stat");
    auto pos = s.find("\nbtime ");
    return pos == std::string::npos ? std::int64_t{0}
                                     : static_cast<std::int64_t>(std::strtoll(s.c_str() + pos + 7, nullptr, 10));
  }();
  return btime;
}

long clock_ticks() {
  static const long hz = [] {
    long v = ::sysconf(_SC_CLK_TCK);
    return v > 0 ? v : 100L;
  }();
  return hz;
}

void kill_tree(pid_t root, pid_t pgid, bool include_root) {
  const pid_t self = ::getpid();
  std::unordered_set<pid_t> hit;
  auto stop = [&](pid_t pid) {
    if (pid == self || pid <= 0) return false;
    if (!hit.insert(pid).second) return false;
    ::kill(pid, SIGSTOP);
    return true;
  };
  if (pgid > 0 && pgid != self) ::kill(-pgid, SIGSTOP);
  if (include_root) stop(root);
  // A stopped process cannot fork, so once a walk finds nothing new and everything found
  // has really stopped, the set is complete. Bounded: a process stuck in D state must not
  // hang the agent.
  for (int round = 0; round < 64; ++round) {
    auto table = scan_processes();
    bool grew = false;
    for (pid_t pid : descendants(table, root)) grew |= stop(pid);
    // Members of the group, and what they started, even if their parent already exited.
    if (pgid > 0) {
      for (const auto& p : table) {
        if (p.pgrp != pgid) continue;
        grew |= stop(p.pid);
        for (pid_t pid : descendants(table, p.pid)) grew |= stop(pid);
      }
    }
    bool settled = true;
    for (const auto& p : table) {
      if (hit.count(p.pid) && !stopped_or_gone(p.state)) settled = false;
    }
    if (!grew && settled) break;
    if (!grew) {
      timespec ts{0, 200'000};
      ::nanosleep(&ts, nullptr);
    }
  }
  if (pgid > 0 && pgid != self) ::kill(-pgid, SIGKILL);
  for (pid_t pid : hit) ::kill(pid, SIGKILL);
}

}  // namespace sandbox::agent
