// The host's end of one agent's control socket: frames in on the I/O thread, frames out
// from any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "agent/protocol.hpp"

namespace sandbox::agent {

class Channel : public std::enable_shared_from_this<Channel> {
 public:
  using FrameHandler = std::function<void(Frame&&)>;
  using CloseHandler = std::function<void()>;

  // Takes ownership of `fd` (a connected SOCK_STREAM socket).
  Channel(boost::asio::io_context& io, int fd);
  // Starts the read loop; handlers run on the I/O thread. `on_close` runs once, at EOF or error.
  void start(FrameHandler on_frame, CloseHandler on_close);
  // Writes one frame whole; throws unavailable if the agent is gone.
  void send(Type type, std::uint32_t id, std::string_view payload);
  // The same, with `fds` passed to the agent (SCM_RIGHTS on the frame's first bytes). The
  // caller keeps its copies.
  void send_with_fds(Type type, std::uint32_t id, std::string_view payload, const std::vector<int>& fds);
  void close();

 private:
  void read_more();

  boost::asio::local::stream_protocol::socket socket_;
  std::mutex write_mutex_;
  Decoder decoder_;
  std::array<char, 65536> buf_{};
  FrameHandler on_frame_;
  CloseHandler on_close_;
};

}  // namespace sandbox::agent
