// remote/remote_session.hpp: a Session that lives on a server (docs/http.md), reached
// through a Wire. Every call is one request (files stream through temporary files, never
// held whole); executions are RemoteExecutions.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "remote/remote_execution.hpp"
#include "remote/wire.hpp"
#include "sandbox/session.hpp"

namespace sandbox::remote {

// Limits as the server spells them (GET /sessions/{sid}: seconds, bytes).
Limits limits_from_json(const nlohmann::json& j);
// The fields of `l` that differ from Limits{}, for POST /sessions: the rest take the
// server's defaults (which are its ceilings, too).
nlohmann::json limits_request(const Limits& l);

class RemoteSession final : public Session, public std::enable_shared_from_this<RemoteSession> {
 public:
  // `info` is the server's session object.
  RemoteSession(std::shared_ptr<Wire> wire, const nlohmann::json& info);

  const std::string& id() const override { return id_; }
  const std::string& owner() const override { return owner_; }
  SessionStatus status() const override;
  const Limits& limits() const override { return limits_; }
  std::string_view isolation() const override { return isolation_; }
  std::string placement() const override { return placement_; }
  std::filesystem::path workspace() const override { return {}; }  // not on this host
  std::chrono::system_clock::time_point created() const override { return created_; }
  std::chrono::steady_clock::time_point last_used() const override;

  Files& files() override;
  std::vector<ProcessInfo> processes() override;
  void kill(int pid, int signal = 9) override;
  std::shared_ptr<Execution> start(ExecRequest req) override;
  std::shared_ptr<Execution> latest() const override;
  std::shared_ptr<Execution> execution(std::string_view id) const override;
  void close() override;

  // Throws failed_precondition once closed; marks the session used.
  void check_open() const;
  const std::string& path() const { return path_; }  // "/{escaped id}"
  Wire& wire() const { return *wire_; }

 private:
  std::shared_ptr<Execution> known(const std::string& id, Language language) const;

  std::shared_ptr<Wire> wire_;
  std::string id_, path_, owner_, isolation_, placement_;
  Limits limits_;
  std::chrono::system_clock::time_point created_;
  mutable std::atomic<std::int64_t> last_used_ns_;
  std::atomic<bool> closed_{false};
  std::unique_ptr<Files> files_;
  mutable std::mutex mu_;
  // Handles given out, so one id is one object while anyone holds it.
  mutable std::map<std::string, std::weak_ptr<Execution>, std::less<>> executions_;
};

}  // namespace sandbox::remote
