// server/log.hpp: one JSON line per request, tagged with a request id.
//
//   server::RequestLog log([](std::string_view line) { std::fputs(line.data(), stderr); });
//   log.write({.request_id = log.next_id(), .method = "GET", .path = "/healthz", .status = 200});
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace sandbox::server {

struct LogEntry {
  std::string_view request_id;
  std::string_view method;
  std::string_view path;     // without the query
  std::string_view route;    // the route's pattern, "" if none matched
  std::string_view owner;    // the tenant, "" if anonymous
  std::string_view remote;   // "127.0.0.1:53422"
  int status = 0;
  double duration_ms = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::string_view error;    // the error message of a 4xx/5xx answer
};

class RequestLog {
 public:
  using Sink = std::function<void(std::string_view line)>;  // the line ends with '\n'
  explicit RequestLog(Sink sink) : sink_(std::move(sink)) {}
  bool enabled() const { return static_cast<bool>(sink_); }
  // "r-<boot>-<n>": unique within this process, ordered, cheap.
  std::string next_id();
  void write(const LogEntry& e) const;

 private:
  Sink sink_;
  std::atomic<std::uint64_t> counter_{0};
};

// The default sink: stderr, one write(2) per line so lines from threads never interleave.
RequestLog::Sink stderr_sink();

}  // namespace sandbox::server
