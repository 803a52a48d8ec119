// The pid namespace: the agent is its init (pid 1), so when the agent dies the kernel
// kills everything else in the session. Its death signal (tied to the server) and session
// are confinement.cpp's.
#include <signal.h>


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

}  // namespace sandbox::isolation::ns::pid
