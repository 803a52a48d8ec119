#include "sys/pidfd.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "sandbox/error.hpp"

namespace sandbox::sys {

std::optional<std::uint64_t> start_ticks(pid_t pid) noexcept {
  try {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!in || !std::getline(in, stat)) return std::nullopt;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields after the
    // last ')' start at 3 (state), so starttime (22) is the 20th of them.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(stat.substr(close + 1));
    std::string field;
    for (int i = 3; i < 22; ++i)
      if (!(fields >> field)) return std::nullopt;
    std::uint64_t ticks = 0;
    if (!(fields >> ticks)) return std::nullopt;
    return ticks;
  } catch (...) {
    return std::nullopt;
  }
}

UniqueFd open_pidfd(pid_t pid, std::uint64_t ticks) {
  const std::string who = "process " + std::to_string(pid);
  if (pid <= 0) throw Error(errc::unavailable, "no process to adopt (pid " + std::to_string(pid) + ")");
  auto before = start_ticks(pid);
  if (!before) throw Error(errc::unavailable, who + " has exited");
  if (*before != ticks)
    throw Error(errc::unavailable, who + " is another process now (started at tick " + std::to_string(*before) +
                                       ", not " + std::to_string(ticks) + ")");
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) {
    if (errno == ESRCH) throw Error(errc::unavailable, who + " has exited");
    throw Error(errc::unavailable, "pidfd_open(" + std::to_string(pid) + "): " + std::strerror(errno));
  }
  // Checked again with the pidfd held: it names the process that had the pid when opened,
  // which is the one we checked only if the start time still matches.
  auto after = start_ticks(pid);
  if (!after || *after != ticks) throw Error(errc::unavailable, who + " exited while being adopted");
  return fd;
}

namespace {
constexpr int p_pidfd = 3;  // P_PIDFD (Linux 5.4); older glibc headers lack it

bool exited(int pidfd) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}
}  // namespace

void kill_pidfd(int pidfd, pid_t pid) noexcept {
  if (pidfd < 0 || exited(pidfd)) return;
  // A group's id is not reused while a member lives, and the leader lives: it is its group.
  if (pid > 0) ::kill(-pid, SIGKILL);
  ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

bool wait_pidfd(int pidfd, std::chrono::milliseconds timeout) noexcept {
  using namespace std::chrono;
  if (pidfd < 0) return true;
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    pollfd p{pidfd, POLLIN, 0};
    const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<milliseconds::rep>(0, left.count())));
    if (rc > 0) {
      // Ours (a server that released and adopted in one process): reap it. ECHILD otherwise.
      siginfo_t info{};
      ::waitid(static_cast<idtype_t>(p_pidfd), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
      return true;
    }
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || left <= 0ms) return false;
  }
}

void end_process(pid_t pid, std::uint64_t ticks, std::chrono::milliseconds timeout) noexcept {
  try {
    auto pidfd = open_pidfd(pid, ticks);
    kill_pidfd(pidfd.get(), pid);
    wait_pidfd(pidfd.get(), timeout);
  } catch (const std::exception&) {
    // Gone already, or its pid is another process's now: nothing to end.
  }
}

}  // namespace sandbox::sys
