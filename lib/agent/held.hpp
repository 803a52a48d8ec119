// What a durable agent (--listen-fd) keeps of each execution from RUN until the host ACKs
// its DONE, so that a host attaching again is replayed all of it (RESUME, OUTPUT, DONE).
// Running executions hold at most their output cap per stream (forward() truncates
// first); ended ones not ACKed are bounded here, oldest dropped, so that a host that never
// ACKs (protocol 1) cannot grow us forever.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/reactor.hpp"
#include "sandbox/result.hpp"

namespace sandbox::agent {

inline constexpr std::size_t kHeldEnded = 64;              // ended, not ACKed: how many
inline constexpr std::size_t kHeldEndedBytes = 64u << 20;  // and how many bytes

class Held {
 public:
  struct Chunk {
    int stream = 1;
    std::string bytes;
  };
  struct Entry {
    std::string exec_id;
    Language lang = Language::shell;
    bool started = false;
    Clock::time_point start{};
    std::vector<Chunk> output;  // in order; consecutive chunks of one stream merged
    std::optional<std::string> done;
    std::size_t bytes = 0;
  };

  void begin(std::uint32_t id, std::string exec_id, Language lang);
  // Each is a no-op for an execution not held.
  void started(std::uint32_t id, Clock::time_point at);
  void output(std::uint32_t id, int stream, std::string_view bytes);
  void done(std::uint32_t id, std::string payload);
  // The host stored DONE id: forget it. An ACK of a running execution is ignored.
  void ack(std::uint32_t id);

  const std::map<std::uint32_t, Entry>& entries() const { return entries_; }

 private:
  std::map<std::uint32_t, Entry> entries_;  // by id: the replay order
  std::deque<std::uint32_t> ended_;         // in the order they ended
  std::size_t ended_bytes_ = 0;
};

}  // namespace sandbox::agent
