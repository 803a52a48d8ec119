// The library's Execution: filled by the session from agent frames, read by any thread.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "agent/protocol.hpp"
#include "sandbox/execution.hpp"
#include "sandbox/limits.hpp"

namespace sandbox {

class SessionImpl;

class ExecutionImpl final : public Execution {
 public:
  // `limits` gives the caps: output per stream, result, images (Limits::*_cap()).
  ExecutionImpl(std::string id, std::uint32_t wire_id, ExecRequest req, const Limits& limits,
                std::weak_ptr<SessionImpl> session);

  const std::string& id() const override { return id_; }
  Language language() const override { return language_; }
  Status status() const override;
  bool done() const override;
  Result snapshot(Page page) const override;
  Result wait() override;
  bool wait_for(std::chrono::milliseconds d) override;
  bool wait_change(std::uint64_t stdout_size, std::uint64_t stderr_size,
                   std::chrono::milliseconds d) override;
  void cancel() override;

  // Called by the session on the I/O thread.
  std::uint32_t wire_id() const { return wire_id_; }
  void on_started();
  void on_output(int stream, std::string_view bytes);
  // Applies the agent's DONE, within the host's own caps (the agent's are not trusted).
  // `refine` may adjust the result before it is published (e.g. out-of-memory from the
  // cgroup's counters).
  void on_done(agent::Done&& done, const std::function<void(Result&)>& refine);
  // Bytes this execution holds (streams, result, images, error): what history counts.
  std::uint64_t footprint() const;
  // An execution a previous server finished, from its stored result (a restart).
  void restore(Result stored);
  // Ends the execution without the agent (agent lost, backstop timeout).
  void fail(Status status, Termination why, std::string note);
  // Kept until the execution ends, let go before anyone can see it ended (a tenant's
  // execution count). Set before the execution can end.
  void hold_until_done(std::shared_ptr<void> hold) { hold_ = std::move(hold); }

 protected:
  std::uint64_t add_subscriber(std::function<void()> fn) override;
  void remove_subscriber(std::uint64_t token) noexcept override;

 private:
  void publish(std::unique_lock<std::mutex>& lock);
  // Marks it done (letting go of its quota hold) and publishes; unlocks.
  void finish(std::unique_lock<std::mutex>& lock);
  Result snapshot_locked(Page page) const;
  void used() const;  // touches the session

  const std::string id_;
  const std::uint32_t wire_id_;
  const Language language_;
  const std::uint64_t output_cap_, result_cap_, image_cap_, images_cap_;
  std::weak_ptr<SessionImpl> session_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Result result_;
  bool done_ = false;
  std::shared_ptr<void> hold_;
  std::chrono::steady_clock::time_point submitted_, started_;
  std::map<std::uint64_t, std::function<void()>> subscribers_;
  // Callbacks running now, by token and thread, and their end: what remove_subscriber waits for.
  std::multimap<std::uint64_t, std::thread::id> calling_;
  std::condition_variable calls_done_;
  std::uint64_t next_token_ = 1;
};

}  // namespace sandbox
