#include "agent/channel.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/write.hpp>

#include <cerrno>
#include <cstring>

#include "sandbox/error.hpp"

namespace sandbox::agent {

namespace asio = boost::asio;

Channel::Channel(asio::io_context& io, int fd) : socket_(io) {
  boost::system::error_code ec;
  socket_.assign(asio::local::stream_protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    throw Error(errc::internal, "agent socket: " + ec.message());
  }
}

void Channel::start(FrameHandler on_frame, CloseHandler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  read_more();
}

void Channel::read_more() {
  socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                  boost::system::error_code ec, std::size_t n) {
    if (!ec) {
      self->decoder_.feed(self->buf_.data(), n);
      try {
        while (auto f = self->decoder_.next()) self->on_frame_(std::move(*f));
      } catch (const Error&) {
        ec = asio::error::invalid_argument;  // a broken frame: treat the agent as gone
      }
    }
    if (ec) {
      if (auto cb = std::exchange(self->on_close_, nullptr)) cb();
      self->on_frame_ = nullptr;
      return;
    }
    self->read_more();
  });
}

void Channel::send(Type type, std::uint32_t id, std::string_view payload) {
  std::string bytes = encode(type, id, payload);
  std::lock_guard lock(write_mutex_);
  boost::system::error_code ec;
  asio::write(socket_, asio::buffer(bytes), ec);
  if (ec) throw Error(errc::unavailable, "the session's agent is gone: " + ec.message());
}

void Channel::send_with_fds(Type type, std::uint32_t id, std::string_view payload, const std::vector<int>& fds) {
  std::string bytes = encode(type, id, payload);
  std::lock_guard lock(write_mutex_);
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  const int fd = socket_.native_handle();
  ssize_t n;
  for (;;) {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0 || errno == EINTR) {
      if (n >= 0) break;
      continue;
    }
    if (errno != EAGAIN) throw Error(errc::unavailable, std::string("the session's agent is gone: ") + std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, 1000);
  }
  // The fds went with the first byte; the rest of the frame is plain bytes.
  if (static_cast<std::size_t>(n) < bytes.size()) {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(bytes.data() + n, bytes.size() - static_cast<std::size_t>(n)), ec);
    if (ec) throw Error(errc::unavailable, "the session's agent is gone: " + ec.message());
  }
}

void Channel::close() {
  std::lock_guard lock(write_mutex_);
  boost::system::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_both, ec);
}

}  // namespace sandbox::agent
