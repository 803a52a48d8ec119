// The host's end of one agent's control socket: frames in on the I/O thread, decoded and
// checked (agent/protocol.hpp); frames out from any thread, without ever blocking it.
//
// Outgoing frames wait in a bounded per-agent queue that the I/O thread writes as the
// socket takes them. An agent that lets the queue overflow, or takes no byte for the
// deadline, is cut off: the channel closes with a reason and its owner kills the agent.
// One slow or hostile agent thus never holds the thread every session shares.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/protocol.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {

class Channel : public std::enable_shared_from_this<Channel> {
 public:
  using FrameHandler = std::function<void(Decoded&&)>;
  // Runs once when the channel ends: `why` is empty when the agent closed it or exited,
  // else what broke (a malformed frame, a full queue, no progress within the deadline).
  using CloseHandler = std::function<void(const std::string& why)>;

  struct Bounds {
    std::size_t max_queued = 32u << 20;               // bytes waiting for the agent to read
    std::chrono::milliseconds deadline{5000};         // longest wait for the agent to take a byte
  };

  // Takes ownership of `fd` (a connected SOCK_STREAM socket).
  Channel(boost::asio::io_context& io, int fd, Bounds bounds);
  Channel(boost::asio::io_context& io, int fd) : Channel(io, fd, Bounds{}) {}
  // Starts the read loop; handlers run on the I/O thread.
  void start(FrameHandler on_frame, CloseHandler on_close);
  // Queues one frame and returns at once. Throws unavailable if the channel is closed or
  // broken, or if this frame overflows the queue (which breaks the channel).
  void send(Type type, std::uint32_t id, std::string_view payload);
  // The same, with `fds` passed to the agent (SCM_RIGHTS on the frame's first bytes), in
  // queue order. The channel holds its own copies until they are sent.
  void send_with_fds(Type type, std::uint32_t id, std::string_view payload, const std::vector<int>& fds);
  void close();
  std::size_t queued_bytes() const;

 private:
  struct Outgoing {
    std::string bytes;
    std::vector<sys::UniqueFd> fds;
    std::size_t sent = 0;
  };
  void enqueue(Outgoing out);
  void read_more();
  void pump();            // I/O thread: writes what the socket takes now
  void arm_deadline();    // I/O thread
  void on_deadline();     // I/O thread
  void shut();            // I/O thread: ends both directions; the read loop then closes

  boost::asio::local::stream_protocol::socket socket_;
  const Bounds bounds_;
  boost::asio::steady_timer deadline_timer_;
  bool deadline_armed_ = false;  // I/O thread only
  Decoder decoder_;
  std::array<char, 65536> buf_{};
  FrameHandler on_frame_;
  CloseHandler on_close_;

  mutable std::mutex mutex_;  // guards what follows
  std::deque<Outgoing> queue_;
  std::size_t queued_bytes_ = 0;
  bool pumping_ = false;  // a pump is posted or waits for the socket
  bool closed_ = false;
  std::string broken_;    // why the channel was cut off, once it was
  std::chrono::steady_clock::time_point progress_{};  // the agent last took bytes
};

}  // namespace sandbox::agent
