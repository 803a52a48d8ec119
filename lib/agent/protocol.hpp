// The host <-> agent protocol: one framed byte stream over a SOCK_STREAM socket.
//
// Frame: a 12-byte header {u32 length of payload, u8 type, u8 stream, u16 zero, u32 id}
// in little-endian order, then `length` payload bytes. Control payloads are JSON; OUTPUT
// payloads are raw bytes. The same code is compiled into the library and the agent.
//
// host -> agent                               agent -> host
//   RUN id {lang, code, stdin, timeout_ms,      HELLO 0 {pid, version}          (once, ready)
//           fresh, output_cap}                  STARTED id {}                   (exec began)
//   CANCEL id {}                                OUTPUT id stream=1|2 <bytes>
//   LIST id {}          -> REPLY id [procs]     DONE id {status, exit_code, result, images,
//   KILL id {pid, signal} -> REPLY id {ok|error}        error, truncated, cpu_ms, peak_rss,
//   WARM 0 {lang}                                        duration_ms, termination, note}
//   SHUTDOWN 0 {}                               REPLY id <json>
//   KERNEL 0 {lang} + 4 fds (SCM_RIGHTS)        NEED_KERNEL 0 {lang}
//     (or {error} without fds)                    (its forked kernel died: another, please)
// Executions of one kernel language run one at a time in RUN order; shell runs at once.
// The agent enforces each execution's timeout from the moment it starts (STARTED); the host
// keeps a backstop that tears the instance down if the agent stops answering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sandbox::agent {

enum class Type : std::uint8_t {
  // host -> agent
  run = 1,
  cancel = 2,
  list = 3,
  kill = 4,
  warm = 5,
  shutdown = 6,
  kernel = 7,  // a kernel's pipes, forked in by the host, as SCM_RIGHTS on this frame
  // agent -> host
  hello = 64,
  started = 65,
  output = 66,
  done = 67,
  reply = 68,
  need_kernel = 69,
};

inline constexpr std::size_t header_size = 12;
inline constexpr std::uint32_t max_payload = 64u << 20;

struct Frame {
  Type type{};
  std::uint8_t stream = 0;  // 1 stdout, 2 stderr (OUTPUT only)
  std::uint32_t id = 0;
  std::string payload;
};

// Header followed by payload, ready to write.
std::string encode(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream = 0);

// Incremental decoder: feed bytes as they arrive, take whole frames out.
class Decoder {
 public:
  void feed(const char* data, std::size_t n) { buf_.append(data, n); }
  // The next complete frame, or nullopt. Throws sandbox::Error(internal) on a frame
  // larger than max_payload (a broken or hostile peer).
  std::optional<Frame> next();
 private:
  std::string buf_;
  std::size_t pos_ = 0;
};

// Blocking helpers for the agent and tests: write all / read one frame (nullopt at EOF).
void write_frame(int fd, Type type, std::uint32_t id, std::string_view payload,
                 std::uint8_t stream = 0);
std::optional<Frame> read_frame(int fd);

}  // namespace sandbox::agent
