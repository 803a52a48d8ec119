#include "server/metrics.hpp"

#include <fmt/format.h>

#include <map>

#include "sandbox/sandbox.hpp"

namespace sandbox::server {

void Metrics::observe_execution(double seconds) {
  std::size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);  // cumulated when rendered
  latency_count_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Metrics::count_request(const Route* route, int status) {
  std::size_t r = route ? static_cast<std::size_t>(route - routes().data()) + 1 : 0;
  std::size_t c = status >= 100 && status < 600 ? static_cast<std::size_t>(status / 100) : 0;
  if (r < kRoutes) requests_[r][c].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::render(const Sandbox& sandbox) const {
  std::string out;
  auto line = [&]<typename... A>(fmt::format_string<A...> f, A&&... a) {
    fmt::format_to(std::back_inserter(out), f, std::forward<A>(a)...);
  };

  line("# HELP sandbox_info The isolation backend and version of this server.\n"
       "# TYPE sandbox_info gauge\n"
       "sandbox_info{{isolation=\"{}\"}} 1\n",
       sandbox.isolation());

  std::map<std::string, std::uint64_t> by_state = {{"Pending", 0}, {"Ready", 0}, {"Closed", 0}, {"Lost", 0}};
  for (auto& s : sandbox.sessions()) ++by_state[std::string(to_string(s->status()))];
  line("# HELP sandbox_sessions Sessions by state.\n# TYPE sandbox_sessions gauge\n");
  for (auto& [state, n] : by_state) line("sandbox_sessions{{state=\"{}\"}} {}\n", state, n);

  Stats st = sandbox.stats();
  line("# HELP sandbox_sessions_created_total Sessions created.\n"
       "# TYPE sandbox_sessions_created_total counter\n"
       "sandbox_sessions_created_total {}\n",
       st.sessions_created);
  line("# HELP sandbox_executions_total Executions by status.\n"
       "# TYPE sandbox_executions_total counter\n");
  for (std::string_view s : {"Running", "Finished", "Failed", "Timeout", "Killed"}) {
    auto it = st.executions_by_status.find(std::string(s));
    line("sandbox_executions_total{{status=\"{}\"}} {}\n", s,
         it == st.executions_by_status.end() ? 0 : it->second);
  }

  line("# HELP sandbox_execution_seconds Wall time from submission to the end of an execution.\n"
       "# TYPE sandbox_execution_seconds histogram\n");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    line("sandbox_execution_seconds_bucket{{le=\"{}\"}} {}\n", kBuckets[i], cumulative);
  }
  cumulative += buckets_[kBuckets.size()].load(std::memory_order_relaxed);
  line("sandbox_execution_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
  line("sandbox_execution_seconds_sum {}\n",
       static_cast<double>(latency_sum_us_.load(std::memory_order_relaxed)) / 1e6);
  line("sandbox_execution_seconds_count {}\n", latency_count_.load(std::memory_order_relaxed));

  line("# HELP sandbox_upload_bytes_total Bytes received in file uploads.\n"
       "# TYPE sandbox_upload_bytes_total counter\n"
       "sandbox_upload_bytes_total {}\n"
       "# HELP sandbox_download_bytes_total Bytes sent in file downloads.\n"
       "# TYPE sandbox_download_bytes_total counter\n"
       "sandbox_download_bytes_total {}\n",
       upload_bytes_.load(std::memory_order_relaxed),
       download_bytes_.load(std::memory_order_relaxed));
  line("# HELP sandbox_http_connections Open HTTP connections.\n"
       "# TYPE sandbox_http_connections gauge\n"
       "sandbox_http_connections {}\n",
       connections_.load(std::memory_order_relaxed));

  line("# HELP sandbox_http_requests_total HTTP requests by route and status class.\n"
       "# TYPE sandbox_http_requests_total counter\n");
  auto table = routes();
  for (std::size_t r = 0; r < kRoutes; ++r) {
    std::string route = "none";
    if (r > 0) {
      if (r - 1 >= table.size()) break;
      const Route& rt = table[r - 1];
      route = fmt::format("{} {}", rt.method, rt.pattern);
    }
    for (std::size_t c = 0; c < kClasses; ++c) {
      auto n = requests_[r][c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      line("sandbox_http_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", route,
           c == 0 ? std::string("other") : fmt::format("{}xx", c), n);
    }
  }
  return out;
}

}  // namespace sandbox::server
