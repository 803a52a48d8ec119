// The host <-> agent protocol: one framed byte stream over a SOCK_STREAM socket.
//
// Frame: a 12-byte header {u32 length of payload, u8 type, u8 stream, u16 zero, u32 id}
// in little-endian order, then `length` payload bytes (agent/frame.hpp's codec). Control payloads are JSON; OUTPUT
// payloads are raw bytes. The same code is compiled into the library and the agent.
//
// host -> agent                               agent -> host
//   RUN id {lang, code, stdin, timeout_ms,      HELLO 0 {pid, version}          (once, ready)
//           fresh, output_cap, caps}            STARTED id {}                   (exec began)
//   CANCEL id {}                                OUTPUT id stream=1|2 <bytes>
//   LIST id {}          -> REPLY id [procs]     DONE id {status, exit_code, result, images,
//   KILL id {pid, signal} -> REPLY id {ok|error}        error, truncated, cpu_ms, peak_rss,
//   WARM 0 {lang}                                        duration_ms, termination, note}
//   SHUTDOWN 0 {}                               REPLY id <json>
//   KERNEL 0 {lang} + 4 fds (SCM_RIGHTS)        NEED_KERNEL 0 {lang}
//     (or {error} without fds)                    (its forked kernel died: another, please)
//   ACK id {}  (the host stored DONE id)       RESUME id {exec_id, lang, started, elapsed_ms,
//                                                         timeout_ms, fresh}
//                                               SYNCED 0 {}                     (replay ended)
// Durable agents (--listen-fd) outlive their host: on EOF they keep running, keep what they
// would have sent, and accept the next host on the listening socket. Each host connection
// starts with HELLO {pid, version, protocol, resumed}; a resumed agent then replays, per
// execution it still holds (running, or DONE not yet ACKed), RESUME, its OUTPUT so far in
// order, and DONE if it ended; then SYNCED. RUN carries the host's `exec_id` for this.
// Executions of one kernel language run one at a time in RUN order; shell runs at once.
// The agent enforces each execution's timeout from the moment it starts (STARTED); the host
// keeps a backstop that tears the instance down if the agent stops answering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/frame.hpp"
#include "sandbox/processes.hpp"
#include "sandbox/result.hpp"

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
  ack = 8,     // DONE id is stored by the host: the agent may forget execution id
  // agent -> host
  hello = 64,
  started = 65,
  output = 66,
  done = 67,
  reply = 68,
  need_kernel = 69,
  resume = 70,   // replay of one held execution to a host that attached again
  synced = 71,   // the replay is complete
};

// The protocol this build speaks (HELLO's "protocol"); a host refuses any other, by name.
inline constexpr int protocol_version = 2;

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
  void feed(const char* data, std::size_t n) { reader_.feed(data, n); }
  // The next complete frame, or nullopt. Throws sandbox::Error(internal) on a frame
  // larger than max_payload (a broken or hostile peer).
  std::optional<Frame> next();
 private:
  FrameReader reader_{header_size - length_size, max_payload};
};

// ---- agent -> host, decoded -----------------------------------------------------------
// Everything an agent sends is untrusted (session code may have rewritten it): decode()
// is the one place that checks a frame's type, size, JSON depth and field types, and the
// host consumes only these typed values. A frame that does not fit marks the agent broken.

inline constexpr std::size_t max_control_payload = 4u << 20;  // HELLO, STARTED, REPLY, ...
inline constexpr int max_json_depth = 16;

struct Hello {
  std::int64_t pid = 0;
  std::string version;
  int protocol = 1;      // agents before durability sent none
  bool resumed = false;  // a later connection of a durable agent: RESUMEs follow, then SYNCED
};
struct Resume {
  std::string exec_id;   // as the host's RUN named it
  Language lang = Language::shell;
  bool started = false;
  std::uint64_t elapsed_ms = 0;  // since it started
  std::uint64_t timeout_ms = 0;  // its RUN's, while it runs (0: ended, or not said)
  bool fresh = false;            // its own kernel: not queued behind others of its language
};
struct Synced {};
struct Started {};
struct Output {
  int stream = 1;  // 1 stdout, 2 stderr
  std::string bytes;
};
struct Done {
  Status status = Status::failed;
  std::optional<int> exit_code;
  std::optional<std::string> result;
  std::vector<Image> images;
  std::optional<ErrorInfo> error;
  bool truncated = false;
  std::optional<std::uint64_t> cpu_ms;
  std::optional<std::uint64_t> peak_rss_bytes;
  Termination termination = Termination::none;
  std::optional<std::string> note;
};
struct Reply {
  std::string json;  // well-formed JSON within the depth bound; typed by the requester
};
struct NeedKernel {
  std::string lang;
};
using Message = std::variant<Hello, Started, Output, Done, Reply, NeedKernel, Resume, Synced>;

struct Decoded {
  std::uint32_t id = 0;
  Message message;
};

// Throws sandbox::Error(internal) naming what is wrong with the frame; nothing else.
Decoded decode(Frame&& f);
// REPLY payloads, by request. Throw sandbox::Error(internal) on a malformed reply.
std::vector<ProcessInfo> decode_processes(std::string_view reply);
// KILL's reply: nullopt when it worked, else the agent's error word ("not_found", ...).
std::optional<std::string> decode_kill_reply(std::string_view reply);
// True when `text`'s arrays and objects nest at most `max_depth` deep (strings skipped).
bool json_depth_within(std::string_view text, int max_depth);

// Blocking helpers for the agent and tests: write all / read one frame (nullopt at EOF).
void write_frame(int fd, Type type, std::uint32_t id, std::string_view payload,
                 std::uint8_t stream = 0);
std::optional<Frame> read_frame(int fd);

}  // namespace sandbox::agent
