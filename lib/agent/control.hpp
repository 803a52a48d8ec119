// The agent's end of the control socket (agent/protocol.hpp): frames in, handed over in
// order; frames out through a buffer the loop flushes as the socket takes them; fds the
// host passes (SCM_RIGHTS on KERNEL frames) kept in arrival order.
//
// A host that stops reading stalls the agent once the buffer passes a high-water mark
// rather than growing memory forever. A host that is gone (EOF, a write error) or a stream
// that cannot be resynchronised (a frame over the limit) ends the connection: gone(). A
// durable agent then close()s it and, later, replace()s it with the next host's; while
// none is attached, send() drops what it is given (agent/held.hpp keeps what matters).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/protocol.hpp"
#include "agent/reactor.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {

class Control {
 public:
  // Returns false to stop taking frames for now (the agent is quitting).
  using FrameHandler = std::function<bool(const Frame&)>;

  // `fd` is the connected socket (owned from now on), made close-on-exec and non-blocking
  // here; `takes_fds` reads with recvmsg so that passed fds are kept (the host forks
  // kernels for us).
  Control(Reactor& reactor, int fd, bool takes_fds);
  void start(FrameHandler on_frame);
  // Ends the connection: unwatched, closed, what was queued or half-read dropped, the fds
  // passed on it closed. attached() is false until replace().
  void close();
  // close(), then `fd` (owned) is the connection.
  void replace(int fd);
  bool attached() const { return fd_ && !gone_; }

  void send(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream = 0);
  // Writes what the socket takes; with `block`, all of it (waiting for the host).
  void flush(bool block);
  // The host went (EOF, write error, garbage): nothing more is written or read on it.
  bool gone() const { return gone_; }
  bool open() const { return bool(fd_); }
  // The oldest passed fd not taken yet.
  std::size_t passed_fds() const { return passed_fds_.size(); }
  int take_fd();

 private:
  void on_readable();
  void watch();

  Reactor& reactor_;
  sys::UniqueFd fd_;
  bool takes_fds_;
  std::uint64_t tok_ = 0;
  bool want_out_ = false;  // EPOLLOUT is watched
  bool gone_ = false;
  FrameHandler on_frame_;
  Decoder decoder_;
  std::string outbuf_;
  std::size_t outpos_ = 0;
  std::deque<int> passed_fds_;
};

}  // namespace sandbox::agent
