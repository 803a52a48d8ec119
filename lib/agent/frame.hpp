// The one framing codec of every stream the agent speaks: a u32 little-endian payload
// length, then a fixed number of header bytes the channel defines, then the payload.
//
//   host <-> agent control socket (agent/protocol.hpp): 8 more header bytes
//       {u8 type, u8 stream, u16 zero, u32 id}, then the payload.
//   agent <-> kernel pipes (runtime/kernel.py, runtime/kernel.js): no more header bytes,
//       the payload is JSON.
//
//   FrameReader r(8, max);           // one per stream
//   r.feed(buf, n);
//   while (auto f = r.next()) use(f->header, f->payload);
//   std::string bytes = frame_bytes(header8, payload);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sandbox::agent {

inline constexpr std::size_t length_size = 4;

void put_u32le(char* p, std::uint32_t v) noexcept;
std::uint32_t get_u32le(const char* p) noexcept;

// Length, `header` and `payload`, ready to write.
std::string frame_bytes(std::string_view header, std::string_view payload);

struct RawFrame {
  std::string header;  // the channel's header bytes after the length
  std::string payload;
};

// Incremental reader: feed bytes as they arrive, take whole frames out.
class FrameReader {
 public:
  FrameReader(std::size_t header_size, std::uint32_t max_payload) noexcept
      : header_size_(header_size), max_payload_(max_payload) {}
  void feed(const char* data, std::size_t n) { buf_.append(data, n); }
  // The next complete frame, or nullopt. Throws sandbox::Error(internal) on a length over
  // max_payload (a broken or hostile peer: the stream cannot be resynchronised).
  std::optional<RawFrame> next();

 private:
  std::size_t header_size_;
  std::uint32_t max_payload_;
  std::string buf_;
  std::size_t pos_ = 0;
};

// Blocking: reads one frame from `fd`; nullopt at EOF (also in the middle of a frame).
// Throws sandbox::Error on a read error or a length over max_payload.
std::optional<RawFrame> read_raw_frame(int fd, std::size_t header_size, std::uint32_t max_payload);
// Blocking: writes all of `bytes`. Throws sandbox::Error on a write error.
void write_all(int fd, std::string_view bytes);

}  // namespace sandbox::agent
