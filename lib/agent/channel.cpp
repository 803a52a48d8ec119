#include "agent/channel.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sandbox/error.hpp"

namespace sandbox::agent {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

Channel::Channel(asio::io_context& io, int fd, Bounds bounds)
    : socket_(io), bounds_(bounds), deadline_timer_(io) {
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
    std::string why;
    if (!ec) {
      self->decoder_.feed(self->buf_.data(), n);
      // Whatever a frame holds, nothing escapes onto the I/O thread: it serves every session.
      try {
        while (auto f = self->decoder_.next()) self->on_frame_(decode(std::move(*f)));
      } catch (const Error& e) {
        why = e.message();
      } catch (const std::exception& e) {
        why = e.what();
      } catch (...) {
        why = "malformed agent frame";
      }
    }
    if (ec || !why.empty()) {
      {
        std::lock_guard lock(self->mutex_);
        self->closed_ = true;
        if (self->broken_.empty()) self->broken_ = why;
        why = self->broken_;
        self->queue_.clear();
        self->queued_bytes_ = 0;
      }
      self->shut();
      if (auto cb = std::exchange(self->on_close_, nullptr)) {
        try {
          cb(why);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "sandbox: ending an agent's channel: %s\n", e.what());
        } catch (...) {
          std::fprintf(stderr, "sandbox: ending an agent's channel failed\n");
        }
      }
      self->on_frame_ = nullptr;
      return;
    }
    self->read_more();
  });
}

void Channel::send(Type type, std::uint32_t id, std::string_view payload) {
  enqueue({encode(type, id, payload), {}, 0});
}

void Channel::send_with_fds(Type type, std::uint32_t id, std::string_view payload, const std::vector<int>& fds) {
  Outgoing out{encode(type, id, payload), {}, 0};
  for (int fd : fds) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) throw_syscall("fcntl", errno, "F_DUPFD_CLOEXEC");
    out.fds.emplace_back(copy);
  }
  enqueue(std::move(out));
}

void Channel::enqueue(Outgoing out) {
  std::lock_guard lock(mutex_);
  if (closed_ || !broken_.empty())
    throw Error(errc::unavailable, "the session's agent is gone" + (broken_.empty() ? "" : ": " + broken_));
  // One frame always fits an empty queue (RUN carries code up to 16 MiB); more than the
  // bound waiting means the agent does not read.
  if (queued_bytes_ > 0 && queued_bytes_ + out.bytes.size() > bounds_.max_queued) {
    broken_ = fmt::format("the agent stopped reading (more than {} bytes waited for it)", bounds_.max_queued);
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->shut(); });
    throw Error(errc::unavailable, "the session's agent is gone: " + broken_);
  }
  queued_bytes_ += out.bytes.size();
  queue_.push_back(std::move(out));
  if (!pumping_) {
    pumping_ = true;
    progress_ = Clock::now();
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->pump(); });
  }
}

void Channel::pump() {
  std::unique_lock lock(mutex_);
  const int fd = socket_.native_handle();
  while (!queue_.empty() && !closed_ && broken_.empty()) {
    Outgoing& o = queue_.front();
    iovec iov{o.bytes.data() + o.sent, o.bytes.size() - o.sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (o.sent == 0 && !o.fds.empty()) {
      // The fds ride on the frame's first bytes.
      control.resize(CMSG_SPACE(sizeof(int) * o.fds.size()));
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * o.fds.size());
      for (std::size_t i = 0; i < o.fds.size(); ++i) {
        int v = o.fds[i].get();
        std::memcpy(CMSG_DATA(c) + i * sizeof(int), &v, sizeof(int));
      }
    }
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      o.sent += static_cast<std::size_t>(n);
      queued_bytes_ -= static_cast<std::size_t>(n);
      o.fds.clear();
      progress_ = Clock::now();
      if (o.sent == o.bytes.size()) queue_.pop_front();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      lock.unlock();
      socket_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->pump();
      });
      arm_deadline();
      return;
    }
    broken_ = std::string("cannot write to the agent: ") + std::strerror(n < 0 ? errno : EPIPE);
  }
  pumping_ = false;
  bool broke = !broken_.empty() && !closed_;
  lock.unlock();
  if (broke) shut();
}

void Channel::arm_deadline() {
  if (deadline_armed_) return;
  deadline_armed_ = true;
  Clock::time_point since;
  {
    std::lock_guard lock(mutex_);
    since = progress_;
  }
  deadline_timer_.expires_at(since + bounds_.deadline);
  deadline_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->deadline_armed_ = false;
    if (!ec) self->on_deadline();
  });
}

void Channel::on_deadline() {
  bool broke = false;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty() || closed_ || !broken_.empty()) return;
    if (Clock::now() - progress_ >= bounds_.deadline) {
      broken_ = fmt::format("the agent stopped reading (it took no byte for {} ms)", bounds_.deadline.count());
      broke = true;
    }
  }
  if (broke) shut();
  else arm_deadline();  // it took bytes meanwhile: a full deadline from its last progress
}

void Channel::shut() {
  // Both directions: the pending read then ends, and with it the channel (on_close).
  boost::system::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_both, ec);
  socket_.cancel(ec);
  deadline_timer_.cancel();
}

void Channel::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->shut(); });
}

std::size_t Channel::queued_bytes() const {
  std::lock_guard lock(mutex_);
  return queued_bytes_;
}

}  // namespace sandbox::agent
