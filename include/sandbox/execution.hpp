// sandbox/execution.hpp: one run of code in a session, observed while it runs.
//
//   auto ex = session.start({.language = Language::shell, .code = "sleep 1; echo done"});
//   auto partial = ex->snapshot();          // status Running, output so far
//   sandbox::Result r = ex->wait();         // blocks until it ends
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "sandbox/result.hpp"

namespace sandbox {

struct ExecRequest {
  Language language = Language::python;
  std::string code;
  std::string stdin_text;                               // never blocks: EOF after this
  std::optional<std::chrono::milliseconds> timeout;     // default: the session's limit
  bool fresh = false;                                   // python/nodejs: a new interpreter
};

// Which part of the output streams a snapshot carries.
struct Page {
  std::uint64_t offset = 0;
  std::uint64_t limit = UINT64_MAX;
};

class Execution;

// A callback registered with Execution::subscribe(); destroying (or reset()ting) the handle
// unregisters it, so no callback outlives its subscriber. Move-only; the Execution must
// outlive it (hold the shared_ptr alongside).
class Subscription {
 public:
  Subscription() = default;
  Subscription(Subscription&& o) noexcept : ex_(o.ex_), token_(o.token_) { o.ex_ = nullptr; }
  Subscription& operator=(Subscription&& o) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }
  // Unsubscribes now; `fn` is not called after this returns (except a call under way).
  void reset() noexcept;
  // Whether a callback is still registered (false once the execution had ended).
  bool active() const noexcept { return ex_ != nullptr; }

 private:
  friend class Execution;
  Subscription(Execution* ex, std::uint64_t token) noexcept : ex_(ex), token_(token) {}
  Execution* ex_ = nullptr;
  std::uint64_t token_ = 0;
};

class Execution {
 public:
  virtual ~Execution() = default;
  virtual const std::string& id() const = 0;
  virtual Language language() const = 0;
  virtual Status status() const = 0;
  virtual bool done() const = 0;
  // The result as it stands: partial output while running, the final object afterwards.
  virtual Result snapshot(Page page = {}) const = 0;
  // Blocks until the execution ends.
  virtual Result wait() = 0;
  // Blocks at most `d`; true if it ended.
  virtual bool wait_for(std::chrono::milliseconds d) = 0;
  // Blocks until the output grows past (stdout_size, stderr_size) or the execution ends,
  // at most `d`. True if something changed.
  virtual bool wait_change(std::uint64_t stdout_size, std::uint64_t stderr_size,
                           std::chrono::milliseconds d) = 0;
  // Calls `fn` (from the library's I/O thread; keep it short) on each output chunk or end,
  // until the returned handle is destroyed. If already done, `fn` is called once at once.
  [[nodiscard]] Subscription subscribe(std::function<void()> fn) {
    std::uint64_t token = add_subscriber(std::move(fn));
    return token ? Subscription(this, token) : Subscription();
  }
  // Kills every process of this execution; the result ends as Killed.
  virtual void cancel() = 0;

 protected:
  // What subscribe() is made of, for implementations: a non-zero token for a registered
  // callback, or 0 if `fn` was called at once (the execution had ended).
  virtual std::uint64_t add_subscriber(std::function<void()> fn) = 0;
  virtual void remove_subscriber(std::uint64_t token) noexcept = 0;

 private:
  friend class Subscription;
};

inline void Subscription::reset() noexcept {
  if (ex_) ex_->remove_subscriber(token_);
  ex_ = nullptr;
}

inline Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    reset();
    ex_ = o.ex_;
    token_ = o.token_;
    o.ex_ = nullptr;
  }
  return *this;
}

}  // namespace sandbox
