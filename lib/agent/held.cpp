#include "agent/held.hpp"

#include <algorithm>

namespace sandbox::agent {

void Held::begin(std::uint32_t id, std::string exec_id, Language lang) {
  ack(id);  // an ended execution of that id, not ACKed: the host reused its id
  Entry e;
  e.exec_id = std::move(exec_id);
  e.lang = lang;
  entries_[id] = std::move(e);
}

void Held::started(std::uint32_t id, Clock::time_point at) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.started = true;
  it->second.start = at;
}

void Held::output(std::uint32_t id, int stream, std::string_view bytes) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.done) return;
  auto& out = it->second.output;
  if (!out.empty() && out.back().stream == stream) out.back().bytes.append(bytes);
  else out.push_back({stream, std::string(bytes)});
  it->second.bytes += bytes.size();
}

void Held::done(std::uint32_t id, std::string payload) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.done) return;
  it->second.bytes += payload.size();
  it->second.done = std::move(payload);
  ended_.push_back(id);
  ended_bytes_ += it->second.bytes;
  // Keep the latest even when it alone is over the byte bound.
  while (ended_.size() > kHeldEnded || (ended_bytes_ > kHeldEndedBytes && ended_.size() > 1)) {
    auto old = entries_.find(ended_.front());
    ended_bytes_ -= old->second.bytes;
    entries_.erase(old);
    ended_.pop_front();
  }
}

void Held::ack(std::uint32_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.done) return;
  ended_bytes_ -= it->second.bytes;
  entries_.erase(it);
  ended_.erase(std::find(ended_.begin(), ended_.end(), id));
}

}  // namespace sandbox::agent
