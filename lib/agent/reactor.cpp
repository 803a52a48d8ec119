#include "agent/reactor.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <array>
#include <cerrno>
#include <cstdio>

#include "sandbox/error.hpp"

namespace sandbox::agent {

Reactor::Reactor()
    : epoll_(sys::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
      timerfd_(sys::check(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), "timerfd_create")) {
  watch(timerfd_.get(), EPOLLIN, [this](std::uint32_t) { fire_timer(); });
}

std::uint64_t Reactor::watch(int fd, std::uint32_t events, Handler handler) {
  std::uint64_t tok = next_tok_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tok;
  sys::check(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
  watches_.emplace(tok, Watch{fd, std::move(handler)});
  return tok;
}

void Reactor::unwatch(std::uint64_t& tok) {
  if (!tok) return;
  auto it = watches_.find(tok);
  if (it != watches_.end()) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
    watches_.erase(it);
  }
  tok = 0;
}

void Reactor::modify(std::uint64_t tok, std::uint32_t events) {
  auto it = watches_.find(tok);
  if (it == watches_.end()) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tok;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second.fd, &ev);
}

void Reactor::arm(std::optional<Clock::time_point> at) {
  if (at == armed_) return;
  armed_ = at;
  itimerspec its{};
  if (at) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at->time_since_epoch()).count();
    if (ns <= 0) ns = 1;
    its.it_value.tv_sec = ns / 1'000'000'000;
    its.it_value.tv_nsec = ns % 1'000'000'000;
  }
  ::timerfd_settime(timerfd_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

void Reactor::fire_timer() {
  std::uint64_t expirations;
  (void)!::read(timerfd_.get(), &expirations, sizeof expirations);
  armed_.reset();
  if (on_timer_) on_timer_();
}

void Reactor::run(const std::function<bool()>& stop, const std::function<void()>& after_batch) {
  std::array<epoll_event, 64> events{};
  while (!stop()) {
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_syscall("epoll_wait", errno);
    }
    for (int i = 0; i < n && !stop(); ++i) {
      const epoll_event& ev = events[static_cast<std::size_t>(i)];
      auto it = watches_.find(ev.data.u64);
      if (it == watches_.end()) continue;  // closed earlier in this batch
      Handler handler = it->second.handler;  // a copy: the handler may unwatch itself
      try {
        handler(ev.events);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "sandbox-agent: %s\n", e.what());
      }
    }
    after_batch();
  }
}

}  // namespace sandbox::agent
