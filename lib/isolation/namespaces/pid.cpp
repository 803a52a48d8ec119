// The pid namespace: the agent is its init (pid 1), so when the agent dies the kernel
// kills everything else in the session. Here: the death signal tied to the server, and a
// session of its own so no terminal signal from the host reaches it.
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns::pid {

// Child side, first thing after clone(). The server's handlers and mask are not the
// agent's business: a handler would run server code in the child, an ignored SIGPIPE or a
// blocked SIGINT would be inherited across execve by every process of the session. The
// parent blocked every signal around clone(), so none can arrive before this.
bool reset_signals() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // glibc's internal signals refuse: fine
  }
  sigset_t none;
  sigemptyset(&none);
  return ::sigprocmask(SIG_SETMASK, &none, nullptr) == 0;
}

// Child side. PR_SET_PDEATHSIG is reset by any credential change, so it must come after
// user::init_ns(). The signal follows the *thread* that cloned us; the backend documents
// that launch() should be called from long-lived threads (the cgroup reaps us otherwise).
bool init_ns(int sync_fd) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return false;
  // The parent may have died before the signal was armed: it holds the sync socket open
  // until we exec, so a hang-up means it is gone.
  pollfd p{sync_fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP))) {
    errno = ESRCH;
    return false;
  }
  return ::setsid() >= 0;
}

}  // namespace sandbox::isolation::ns::pid
