// RAII for file descriptors, and the few syscall wrappers every layer shares.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string_view>
#include <utility>

#include "sandbox/error.hpp"

namespace sandbox::sys {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Throws the syscall's error when `ret` is negative, naming it; returns `ret` otherwise.
inline int check(int ret, std::string_view syscall, std::string_view what = {}) {
  if (ret < 0) throw_syscall(syscall, errno, what);
  return ret;
}

// O_NONBLOCK on the open file description (every fd sharing it); throws on failure.
inline void set_nonblocking(int fd) {
  int fl = check(::fcntl(fd, F_GETFL), "fcntl", "F_GETFL");
  check(::fcntl(fd, F_SETFL, fl | O_NONBLOCK), "fcntl", "O_NONBLOCK");
}

// A connected SOCK_STREAM pair, both ends close-on-exec.
inline std::pair<UniqueFd, UniqueFd> socket_pair() {
  int sv[2];
  check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

}  // namespace sandbox::sys
