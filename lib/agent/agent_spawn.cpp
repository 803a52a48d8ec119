#include "agent/agent_spawn.hpp"

#include <signal.h>
#include <unistd.h>

#include "sys/spawn.hpp"

namespace sandbox::agent {

pid_t spawn(const SpawnSpec& spec) {
  sys::SpawnSpec s{spec.path, spec.argv, spec.envp, {}, spec.nfds};
  for (int i = 0; i < spec.nfds; ++i) s.fds[i] = spec.fds[i];
  s.report = false;  // the agent's loop must not wait: a failure is the exit code
  s.who = "sandbox-agent";
  s.confine.cwd = spec.cwd;
  // The agent's effective uid is the code's: dropping its real and saved uid to it needs no
  // privilege, and leaves the child nothing that reaches the agent (docs/isolation.md). A
  // switch between two non-root uids keeps capabilities (runsc's agent holds CAP_SETUID and
  // CAP_KILL): every set is cleared, so no exec of a file-capability binary regains them.
  if (spec.uid != static_cast<uid_t>(-1)) {
    s.confine.uid = spec.uid;
    s.confine.caps = sys::Confinement::Caps::set;
  }
  // Code dies with the agent, like the template's kernels with the template.
  s.confine.pdeathsig = SIGKILL;
  s.confine.parent = ::getpid();
  return sys::spawn(s).release();
}

}  // namespace sandbox::agent
