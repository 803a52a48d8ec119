// A session the Sandbox placed elsewhere (a pod, the cloud gateway): the same Session
// interface, its state read from the placement record, its data calls made through
// sandbox::connect() to the server that holds it once that server is up.
#pragma once

#include <atomic>
#include <mutex>

#include "placement/gateway.hpp"
#include "sandbox/remote.hpp"
#include "sandbox/session.hpp"

namespace sandbox {

class PlacedSession final : public Session {
 public:
  // `loc` as the gateway created or found it; `owner` its tenant ("" for a session whose
  // owner no gateway can know).
  PlacedSession(std::shared_ptr<placement::Gateway> gateway, placement::Location loc, std::string owner,
                Limits limits, std::string reason, std::chrono::milliseconds ready_timeout);

  const std::string& id() const override { return id_; }
  const std::string& owner() const override { return owner_; }
  SessionStatus status() const override;
  const Limits& limits() const override { return limits_; }
  std::string_view isolation() const override { return "remote"; }
  std::string placement() const override { return std::string(placement::to_string(target_)); }
  std::optional<Endpoint> endpoint() const override;
  std::filesystem::path workspace() const override { return {}; }  // not on this host
  std::chrono::system_clock::time_point created() const override { return created_; }
  std::chrono::steady_clock::time_point last_used() const override;

  Files& files() override;
  std::vector<ProcessInfo> processes() override;
  void kill(int pid, int signal) override;
  std::shared_ptr<Execution> start(ExecRequest req) override;
  std::shared_ptr<Execution> latest() const override;
  std::shared_ptr<Execution> execution(std::string_view id) const override;
  // Deletes the pod or the cloud session.
  void close() override;

  // In use until the hold is let go (a request relayed by a front-end itself).
  std::shared_ptr<void> hold();
  void touch() const noexcept;

 private:
  // The record, refreshed (the cloud's state at most every half second).
  placement::Location record() const;
  // The remote handle, once the session's server is up: waits for a starting pod up to
  // the ready timeout. Throws unavailable (failed, still starting), not_found (gone).
  Session& remote();
  std::shared_ptr<Session> remote_if_connected() const;

  std::shared_ptr<placement::Gateway> gateway_;
  const std::string id_, owner_;
  const Limits limits_;
  const placement::Target target_;
  const std::string reason_;
  const std::chrono::milliseconds ready_timeout_;
  const std::chrono::system_clock::time_point created_ = std::chrono::system_clock::now();
  std::atomic<bool> closed_{false};
  // Last use (from creation, again from Ready, and at the end of each relayed request) and
  // the requests being relayed; shared with the holds, which may outlive the session.
  struct Use {
    std::atomic<int> holds{0};
    std::atomic<std::int64_t> last_ns{0};
  };
  const std::shared_ptr<Use> use_ = std::make_shared<Use>();

  mutable std::mutex mu_;
  mutable placement::Location cached_;
  mutable std::chrono::steady_clock::time_point refreshed_{};
  std::unique_ptr<Remote> remote_;
  std::shared_ptr<Session> remote_session_;
};

}  // namespace sandbox
