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
  // Calls `fn` (from the library's I/O thread; keep it short) on each output chunk or end.
  // Returns a token for unsubscribe(). If already done, `fn` is called once at once.
  virtual std::uint64_t subscribe(std::function<void()> fn) = 0;
  virtual void unsubscribe(std::uint64_t token) = 0;
  // Kills every process of this execution; the result ends as Killed.
  virtual void cancel() = 0;
};

}  // namespace sandbox
