#include "server/log.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

namespace sandbox::server {

std::string RequestLog::next_id() {
  auto n = counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  return fmt::format("r{:x}-{}", static_cast<std::uint32_t>(::getpid()), n);
}

void RequestLog::write(const LogEntry& e) const {
  if (!sink_) return;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  nlohmann::json j = {
      {"ts", std::chrono::duration<double>(now).count()},
      {"request_id", e.request_id},
      {"method", e.method},
      {"path", e.path},
      {"status", e.status},
      {"duration_ms", static_cast<double>(static_cast<long long>(e.duration_ms * 1000)) / 1000},
      {"bytes_in", e.bytes_in},
      {"bytes_out", e.bytes_out},
  };
  if (!e.route.empty()) j["route"] = e.route;
  if (!e.owner.empty()) j["owner"] = e.owner;
  if (!e.remote.empty()) j["remote"] = e.remote;
  if (!e.error.empty()) j["error"] = e.error;
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  sink_(line);
}

RequestLog::Sink stderr_sink() {
  return [](std::string_view line) {
    // One write per line; a short write to a pipe is not worth retrying for a log.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
  };
}

}  // namespace sandbox::server
