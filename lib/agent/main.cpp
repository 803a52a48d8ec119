// sandbox-agent's entry: options, self-confinement, fds tidied, then the agent's loop
// (agent/agent.hpp; the whole design in docs/agent.md).
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

#include "agent/agent.hpp"
#include "agent/confine_self.hpp"
#include "agent/options.hpp"

int main(int argc, char** argv) {
  using namespace sandbox::agent;
  Options opts = parse_args(argc, argv);
  confine_self(opts.code_uid, opts.keep_uid, opts.listen_fd >= 0);
  // Nothing the backend left open may leak into user code: fds 0-2 stay (the agent's own
  // diagnostics), everything else becomes close-on-exec.
  if (::fcntl(opts.control_fd, F_GETFD) < 0) usage("--control-fd is not open");
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) {
      int n = ::open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        ::dup2(n, fd);
        ::close(n);
      }
    }
  }
  if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0) {
    for (int fd = 3; fd < 1024; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  try {
    return Agent(std::move(opts)).run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sandbox-agent: fatal: %s\n", e.what());
    return 1;
  }
}
