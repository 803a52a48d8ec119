#include "agent/agent_spawn.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sys/fd.hpp"

namespace sandbox::agent {
namespace {

void say(const char* a, const char* b) {
  // Best effort diagnostics on the child's stderr; async-signal-safe.
  (void)!::write(2, a, std::strlen(a));
  (void)!::write(2, b, std::strlen(b));
  (void)!::write(2, "\n", 1);
}

[[noreturn]] void child(const SpawnSpec& s) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);  // the agent ignores it; exec keeps ignored dispositions
  ::setpgid(0, 0);
  // Move every source out of the target range first, so dup2 never clobbers a source
  // and never leaves close-on-exec set on a target.
  int moved[8];
  for (int i = 0; i < s.nfds; ++i) {
    moved[i] = ::fcntl(s.fds[i], F_DUPFD_CLOEXEC, s.nfds);
    if (moved[i] < 0) _exit(127);
  }
  for (int i = 0; i < s.nfds; ++i) {
    if (::dup2(moved[i], i) < 0) _exit(127);
  }
  // Close-on-exec covers the rest where the parent set it; a multi-threaded host (Asio's
  // sockets) does not always, so nothing else crosses the exec.
  ::syscall(SYS_close_range, static_cast<unsigned>(s.nfds), ~0u, 0u);
  // The agent's effective uid is the code's: dropping its real and saved uid to it needs no
  // privilege, and leaves the child nothing that reaches the agent (docs/isolation.md).
  if (s.uid != static_cast<uid_t>(-1) && ::setresuid(s.uid, s.uid, s.uid) != 0) {
    say("sandbox-agent: cannot set the code's uid for ", s.path);
    _exit(125);
  }
  // A switch between two non-root uids keeps capabilities (runsc's agent holds CAP_SETUID and
  // CAP_KILL): clear every set, so that no exec of a file-capability binary can regain them.
  if (s.uid != static_cast<uid_t>(-1)) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none_caps[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capset, &header, none_caps) != 0) {
      say("sandbox-agent: cannot drop capabilities for ", s.path);
      _exit(125);
    }
  }
  if (::chdir(s.cwd) != 0) {
    say("sandbox-agent: cannot enter workspace ", s.cwd);
    _exit(126);
  }
  ::execve(s.path, const_cast<char* const*>(s.argv), s.envp);
  say("sandbox-agent: cannot execute ", s.path);
  _exit(127);
}

}  // namespace

pid_t spawn(const SpawnSpec& spec) {
  pid_t pid = ::fork();
  if (pid < 0) throw_syscall("fork", errno, spec.path);
  if (pid == 0) child(spec);
  ::setpgid(pid, pid);  // also here, so the group exists before anyone signals it
  return pid;
}

}  // namespace sandbox::agent
