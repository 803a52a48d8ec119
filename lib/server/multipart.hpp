// server/multipart.hpp: an incremental multipart/form-data parser (RFC 7578).
//
// Fed the request body chunk by chunk, it hands each part's bytes to a callback as they
// arrive and never holds more than a part header plus one boundary's worth of data, so an
// upload is streamed to disk instead of buffered whole.
//
//   auto boundary = server::multipart_boundary(content_type);   // nullopt: not multipart
//   server::MultipartParser p(*boundary, {
//       .on_part = [&](const server::Part& part) { ... },
//       .on_data = [&](std::string_view bytes) { ... },
//       .on_part_end = [&] { ... }});
//   p.feed(chunk1); p.feed(chunk2); p.finish();
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sandbox::server {

struct Part {
  std::string name;          // Content-Disposition name="..."
  std::optional<std::string> filename;  // Content-Disposition filename="..."
  std::string content_type;  // "" if absent
};

struct MultipartCallbacks {
  std::function<void(const Part&)> on_part;
  std::function<void(std::string_view)> on_data;
  std::function<void()> on_part_end;
};

class MultipartParser {
 public:
  // Throws sandbox::Error(invalid_argument) for an empty or over-long (> 70) boundary.
  MultipartParser(std::string_view boundary, MultipartCallbacks callbacks,
                  std::size_t max_header_bytes = 8192, std::size_t max_parts = 32);
  // Consumes a chunk; throws sandbox::Error(invalid_argument) on malformed input.
  void feed(std::string_view chunk);
  // Throws invalid_argument unless the closing boundary was seen.
  void finish() const;
  bool done() const { return state_ == State::done; }

 private:
  enum class State { preamble, after_boundary, headers, body, done };
  void parse_headers(std::string_view block);

  std::string delimiter_;  // "\r\n--" + boundary
  MultipartCallbacks cb_;
  std::size_t max_header_bytes_;
  std::size_t max_parts_;
  std::size_t parts_ = 0;
  State state_ = State::preamble;
  std::string pending_;
};

// The boundary parameter of a multipart/form-data Content-Type; nullopt otherwise.
std::optional<std::string> multipart_boundary(std::string_view content_type);

}  // namespace sandbox::server
