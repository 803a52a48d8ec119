#include "agent/channel.hpp"

#include <boost/asio/write.hpp>

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

void Channel::close() {
  std::lock_guard lock(write_mutex_);
  boost::system::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_both, ec);
}

}  // namespace sandbox::agent
