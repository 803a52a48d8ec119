#include "remote/remote_execution.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "remote/sse_reader.hpp"

namespace sandbox::remote {

using namespace std::chrono_literals;
using nlohmann::json;

struct RemoteExecution::State {
  std::mutex mu;
  std::condition_variable changed;
  std::optional<Result> final_result;  // whole streams
  bool done = false;
  std::uint64_t out_total = 0, err_total = 0;  // what the event stream has shown
  bool watching = false, stop = false;
  std::map<std::uint64_t, std::function<void()>> subscribers;
  std::uint64_t next_token = 1;

  void notify(std::unique_lock<std::mutex>& lock) {
    auto subs = subscribers;  // called unlocked: a subscriber may unsubscribe
    lock.unlock();
    changed.notify_all();
    for (auto& [t, fn] : subs) fn();
    lock.lock();
  }
};

namespace {

// A slice of a whole result, as a local snapshot(page) gives it.
Result slice(const Result& whole, Page page) {
  Result r = whole;
  auto cut = [&](std::string& s, std::uint64_t& offset) {
    std::uint64_t from = std::min<std::uint64_t>(page.offset, s.size());
    std::uint64_t n = std::min<std::uint64_t>(page.limit, s.size() - from);
    s = s.substr(from, n);
    offset = from;
  };
  cut(r.stdout_text, r.stdout_offset);
  cut(r.stderr_text, r.stderr_offset);
  return r;
}

bool whole(const Result& r) {
  return r.stdout_offset == 0 && r.stderr_offset == 0 && r.stdout_text.size() == r.stdout_total &&
         r.stderr_text.size() == r.stderr_total;
}

}  // namespace

RemoteExecution::RemoteExecution(std::shared_ptr<Wire> wire, std::string session, std::string id,
                                 Language language)
    : wire_(std::move(wire)),
      session_(std::move(session)),
      id_(std::move(id)),
      language_(language),
      state_(std::make_shared<State>()) {}

RemoteExecution::~RemoteExecution() {
  // The stream thread sees this at its next event (or the server's keep-alive) and ends;
  // it owns what it uses, so it is not joined here.
  std::lock_guard lock(state_->mu);
  state_->stop = true;
  state_->subscribers.clear();
}

std::string RemoteExecution::result_target(std::string_view query) const {
  return fmt::format("/{}/result?execution_id={}&{}", session_, escape(id_), query);
}

Result RemoteExecution::fetch(Page page, std::chrono::milliseconds wait) const {
  std::string query = fmt::format("wait={}&offset={}", wait.count(), page.offset);
  if (page.limit != UINT64_MAX) query += fmt::format("&limit={}", page.limit);
  Result r = parse_result(wire_->call("GET", result_target(query), {}, wire_->timeout() + wait));
  if (r.status != Status::running) {
    std::unique_lock lock(state_->mu);
    bool was_done = state_->done;
    state_->done = true;
    if (!state_->final_result && whole(r)) state_->final_result = r;
    if (!was_done) state_->notify(lock);
  }
  return r;
}

Status RemoteExecution::status() const {
  {
    std::lock_guard lock(state_->mu);
    if (state_->final_result) return state_->final_result->status;
  }
  return fetch({0, 0}, 0ms).status;
}

bool RemoteExecution::done() const {
  {
    std::lock_guard lock(state_->mu);
    if (state_->done) return true;
  }
  return fetch({0, 0}, 0ms).status != Status::running;
}

Result RemoteExecution::snapshot(Page page) const {
  {
    std::lock_guard lock(state_->mu);
    if (state_->final_result) return slice(*state_->final_result, page);
  }
  return fetch(page, 0ms);
}

Result RemoteExecution::wait() {
  while (true) {
    {
      std::lock_guard lock(state_->mu);
      if (state_->final_result) return *state_->final_result;
    }
    // The server caps a long-poll (60 s by default): ask again until it ended.
    Result r = fetch({}, 60'000ms);
    if (r.status != Status::running) return r;
  }
}

bool RemoteExecution::wait_for(std::chrono::milliseconds d) {
  {
    std::lock_guard lock(state_->mu);
    if (state_->done) return true;
  }
  return fetch({0, 0}, std::max(d, 0ms)).status != Status::running;
}

bool RemoteExecution::wait_change(std::uint64_t stdout_size, std::uint64_t stderr_size,
                                  std::chrono::milliseconds d) {
  watch();
  std::unique_lock lock(state_->mu);
  auto changed = [&] {
    return state_->done || state_->out_total > stdout_size || state_->err_total > stderr_size;
  };
  return state_->changed.wait_for(lock, d, changed);
}

std::uint64_t RemoteExecution::add_subscriber(std::function<void()> fn) {
  std::uint64_t token = 0;
  {
    std::lock_guard lock(state_->mu);
    if (!state_->done) {
      token = state_->next_token++;
      state_->subscribers.emplace(token, fn);
    }
  }
  if (!token) fn();  // already over: called once, at once, and nothing to unsubscribe
  else watch();
  return token;
}

void RemoteExecution::remove_subscriber(std::uint64_t token) noexcept {
  std::lock_guard lock(state_->mu);
  state_->subscribers.erase(token);
}

void RemoteExecution::cancel() {
  wire_->call("POST", fmt::format("/{}/cancel?execution_id={}", session_, escape(id_)));
}

void RemoteExecution::watch() {
  {
    std::lock_guard lock(state_->mu);
    if (state_->watching || state_->done) return;
    state_->watching = true;
  }
  // The thread holds the state and the wire itself: it may outlive this object by one event.
  std::thread([wire = wire_, state = state_, target = fmt::format("/{}/stream?execution_id={}",
                                                                   session_, escape(id_))] {
    int failures = 0;
    while (true) {
      std::uint64_t resume;
      {
        std::lock_guard lock(state->mu);
        if (state->stop || state->done) break;
        resume = std::min(state->out_total, state->err_total);
      }
      SseReader reader([&](std::string_view event, std::string_view data) {
        std::unique_lock lock(state->mu);
        if (state->stop) return false;
        if (event == "stdout" || event == "stderr") {
          // A server's event is untrusted: one that is not {offset, text} is skipped.
          auto j = json::parse(data, nullptr, false);
          if (!j.is_object() || !j["offset"].is_number_unsigned() || !j["text"].is_string()) return true;
          std::uint64_t end = j["offset"].get<std::uint64_t>() + j["text"].get_ref<const std::string&>().size();
          auto& total = event == "stdout" ? state->out_total : state->err_total;
          total = std::max(total, end);
        } else if (event == "result") {
          try {
            Result r = parse_result(std::string(data));
            state->done = true;
            if (!state->final_result && whole(r)) state->final_result = std::move(r);
          } catch (const std::exception&) {
            state->done = true;  // the end all the same; wait() fetches the result
          }
        } else {
          return true;
        }
        failures = 0;
        state->notify(lock);
        return !state->done;
      });
      net::Request req;
      req.target = target + fmt::format("&offset={}", resume);
      req.timeout = 30s;  // idle time between events: the server sends a keep-alive every 15 s
      try {
        net::Response res = wire->client().stream(req, [&](std::string_view chunk) { return reader.feed(chunk); });
        if (res.status / 100 != 2) break;  // the execution or session is gone: waits time out
      } catch (const std::exception&) {
        // Unreachable for a moment, the stream stalled, or it was garbled: resume where it was.
      }
      if (++failures > 3) break;
      std::this_thread::sleep_for(100ms * failures);
    }
    std::unique_lock lock(state->mu);
    state->watching = false;
    state->changed.notify_all();
  }).detach();
}

}  // namespace sandbox::remote
