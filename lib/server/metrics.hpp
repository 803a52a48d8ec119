// server/metrics.hpp: the counters behind GET /metrics, in Prometheus text format.
//
// Request and byte counters are lock-free atomics bumped on the hot path; session and
// execution gauges are read from the Sandbox when scraped.
//
//   metrics.observe_execution(0.042);          // seconds, once per finished execution
//   std::string text = metrics.render(sandbox);
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "server/router.hpp"

namespace sandbox {
class Sandbox;
}

namespace sandbox::server {

class Metrics {
 public:
  // Upper bounds (seconds) of the execution latency histogram; +Inf is implicit.
  static constexpr std::array<double, 13> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  30, 60};

  void observe_execution(double seconds);
  // `route` may be null (no route matched); `status` is the HTTP status sent.
  void count_request(const Route* route, int status);
  void add_upload_bytes(std::uint64_t n) { upload_bytes_.fetch_add(n, std::memory_order_relaxed); }
  void add_download_bytes(std::uint64_t n) { download_bytes_.fetch_add(n, std::memory_order_relaxed); }
  void connection_opened() { connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { connections_.fetch_sub(1, std::memory_order_relaxed); }

  std::string render(const Sandbox& sandbox) const;

 private:
  static constexpr std::size_t kRoutes = 32;   // > number of RouteId values, plus "none"
  static constexpr std::size_t kClasses = 6;   // 0: other, 1xx..5xx
  std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1> buckets_{};
  std::atomic<std::uint64_t> latency_count_{0};
  std::atomic<std::uint64_t> latency_sum_us_{0};
  std::array<std::array<std::atomic<std::uint64_t>, kClasses>, kRoutes> requests_{};
  std::atomic<std::uint64_t> upload_bytes_{0}, download_bytes_{0};
  std::atomic<std::int64_t> connections_{0};
};

}  // namespace sandbox::server
