#include "agent/pipes.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/error.hpp"

namespace sandbox::agent {

using sys::UniqueFd;

Pipe make_pipe(bool agent_reads) {
  int p[2];
  sys::check(::pipe2(p, O_CLOEXEC), "pipe2");
  Pipe out{UniqueFd(p[0]), UniqueFd(p[1])};
  sys::set_nonblocking(agent_reads ? p[0] : p[1]);
  return out;
}

UniqueFd stdin_fd(const std::string& text) {
  if (text.empty()) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
  }
  int fd = ::memfd_create("stdin", MFD_CLOEXEC);
  if (fd < 0) fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_syscall("memfd_create", errno, "stdin");
  UniqueFd f(fd);
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_syscall("write", errno, "stdin");
    off += static_cast<std::size_t>(n);
  }
  ::lseek(fd, 0, SEEK_SET);
  return f;
}

}  // namespace sandbox::agent
