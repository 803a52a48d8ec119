// A session a restarted Sandbox found in its store but could not adopt (its agent died with
// the server, the host rebooted): reported, never recreated. Every call throws session_lost
// except reading its workspace, which is kept until close() or the retention time.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "isolation/backends.hpp"
#include "sandbox/session.hpp"
#include "store/store.hpp"

namespace sandbox {

class LostSession final : public Session {
 public:
  LostSession(store::SessionRecord record, Limits limits, isolation::LaunchSpec spec,
              isolation::Backend& backend, store::Store* store);

  const std::string& id() const override { return record_.id; }
  const std::string& owner() const override { return record_.owner; }
  SessionStatus status() const override { return closed_ ? SessionStatus::closed : SessionStatus::lost; }
  const Limits& limits() const override { return limits_; }
  std::string_view isolation() const override { return record_.backend; }
  std::string placement() const override { return record_.placement; }
  std::filesystem::path workspace() const override { return spec_.workspace; }
  std::chrono::system_clock::time_point created() const override;
  std::chrono::steady_clock::time_point last_used() const override;
  // When it was found lost, and why.
  std::chrono::system_clock::time_point lost_at() const;
  const std::string& reason() const { return record_.lost_reason; }

  Files& files() override;  // the kept workspace
  std::vector<ProcessInfo> processes() override;
  void kill(int pid, int signal) override;
  std::shared_ptr<Execution> start(ExecRequest req) override;
  std::shared_ptr<Execution> latest() const override;
  std::shared_ptr<Execution> execution(std::string_view id) const override;
  // Deletes the kept workspace and the record.
  void close() override;

 private:
  [[noreturn]] void lost() const;

  const store::SessionRecord record_;
  const Limits limits_;
  const isolation::LaunchSpec spec_;
  isolation::Backend& backend_;
  store::Store* store_;
  std::atomic<bool> closed_{false};
  std::mutex mutex_;
  std::unique_ptr<Files> files_;
};

}  // namespace sandbox
