#include "agent/control.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sandbox/error.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {
namespace {
constexpr std::size_t kHighWater = 8u << 20;  // queued bytes before we block on the host
}

Control::Control(Reactor& reactor, int fd, bool takes_fds) : reactor_(reactor), fd_(fd), takes_fds_(takes_fds) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  sys::set_nonblocking(fd);
}

void Control::start(FrameHandler on_frame) {
  on_frame_ = std::move(on_frame);
  watch();
}

void Control::watch() {
  want_out_ = false;
  tok_ = reactor_.watch(fd_.get(), EPOLLIN, [this](std::uint32_t events) {
    if (gone_) return;
    if (events & EPOLLOUT) flush(false);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable();
  });
}

void Control::close() {
  reactor_.unwatch(tok_);
  fd_.reset();
  gone_ = true;
  want_out_ = false;
  outbuf_.clear();
  outpos_ = 0;
  decoder_ = Decoder{};
  for (int fd : passed_fds_) ::close(fd);
  passed_fds_.clear();
}

void Control::replace(int fd) {
  close();
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  sys::set_nonblocking(fd);
  fd_.reset(fd);
  gone_ = false;
  if (on_frame_) watch();
}

void Control::send(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream) {
  if (!attached()) return;
  outbuf_ += encode(type, id, payload, stream);
  if (outbuf_.size() - outpos_ > kHighWater) flush(true);
}

void Control::flush(bool block) {
  if (!attached()) return;
  while (outpos_ < outbuf_.size()) {
    ssize_t n = ::write(fd_.get(), outbuf_.data() + outpos_, outbuf_.size() - outpos_);
    if (n > 0) {
      outpos_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!block) break;
      pollfd p{fd_.get(), POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    // The host is gone: nothing left to report to.
    gone_ = true;
    outbuf_.clear();
    outpos_ = 0;
    return;
  }
  if (outpos_ == outbuf_.size()) {
    outbuf_.clear();
    outpos_ = 0;
  } else if (outpos_ > (1u << 20)) {
    outbuf_.erase(0, outpos_);
    outpos_ = 0;
  }
  bool want_out = !outbuf_.empty();
  if (want_out != want_out_ && tok_) {
    reactor_.modify(tok_, EPOLLIN | (want_out ? EPOLLOUT : 0u));
    want_out_ = want_out;
  }
}

int Control::take_fd() {
  int fd = passed_fds_.front();
  passed_fds_.pop_front();
  return fd;
}

void Control::on_readable() {
  char buf[65536];
  for (;;) {
    ssize_t n;
    if (takes_fds_) {
      // KERNEL frames carry fds: keep them in arrival order.
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 16)];
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
      for (cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&msg) : nullptr; c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          passed_fds_.push_back(fd);
        }
      }
    } else {
      n = ::read(fd_.get(), buf, sizeof buf);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {  // EOF or error: the host is gone
      gone_ = true;
      return;
    }
    decoder_.feed(buf, static_cast<std::size_t>(n));
    if (static_cast<std::size_t>(n) < sizeof buf) break;
  }
  try {
    while (auto f = decoder_.next()) {
      if (!on_frame_(*f)) return;
    }
  } catch (const Error& e) {  // a frame over the limit: the stream cannot be resynchronised
    std::fprintf(stderr, "sandbox-agent: %s\n", e.what());
    gone_ = true;
  }
}

}  // namespace sandbox::agent
