// The agent's one loop: epoll over fds, each with its handler, and one timerfd armed at the
// earliest deadline its owner computes. Single-threaded; handlers run on the loop.
//
//   Reactor r;
//   auto tok = r.watch(fd, EPOLLIN, [&](std::uint32_t events) { ... });
//   r.on_timer([&] { ...; r.arm(next_deadline()); });
//   r.run([&] { return quit; }, [&] { flush(); });
//   r.unwatch(tok);
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>

#include "sys/fd.hpp"

namespace sandbox::agent {

using Clock = std::chrono::steady_clock;

class Reactor {
 public:
  using Handler = std::function<void(std::uint32_t events)>;

  Reactor();
  // A token for unwatch/modify (never 0). Throws sandbox::Error when epoll refuses the fd.
  std::uint64_t watch(int fd, std::uint32_t events, Handler handler);
  // Stops watching (the fd stays open); sets `tok` to 0. A handler of this batch whose
  // watch is gone is not run.
  void unwatch(std::uint64_t& tok);
  void modify(std::uint64_t tok, std::uint32_t events);

  // The timer fires once at `at` (never when nullopt) and runs the handler; re-arming at
  // the same time is free.
  void arm(std::optional<Clock::time_point> at);
  void on_timer(std::function<void()> handler) { on_timer_ = std::move(handler); }

  // Waits and dispatches until `stop()` is true, checked before each handler; runs
  // `after_batch` after every batch of events. A handler's exception is logged to stderr
  // and the loop goes on: one bad child or request must not take the session down.
  void run(const std::function<bool()>& stop, const std::function<void()>& after_batch);

 private:
  struct Watch {
    int fd;
    Handler handler;
  };
  void fire_timer();

  sys::UniqueFd epoll_, timerfd_;
  std::uint64_t next_tok_ = 1;
  std::unordered_map<std::uint64_t, Watch> watches_;
  std::optional<Clock::time_point> armed_;
  std::function<void()> on_timer_;
};

}  // namespace sandbox::agent
