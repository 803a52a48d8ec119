#include "placed_session.hpp"

#include <fmt/format.h>

#include <thread>

#include "sandbox/error.hpp"

namespace sandbox {

using placement::State;
using placement::Target;
using Clock = std::chrono::steady_clock;

PlacedSession::PlacedSession(std::shared_ptr<placement::Gateway> gateway, placement::Location loc,
                             std::string owner, Limits limits, std::string reason,
                             std::chrono::milliseconds ready_timeout)
    : gateway_(std::move(gateway)),
      id_(loc.id),
      owner_(std::move(owner)),
      limits_(limits),
      target_(loc.target),
      reason_(std::move(reason)),
      ready_timeout_(ready_timeout),
      cached_(std::move(loc)),
      refreshed_(Clock::now()) {
  touch();
}

placement::Location PlacedSession::record() const {
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  // A pod's state is in this process's record (its waiter updates it); a cloud session's
  // is the cloud gateway's, asked over the network: not on every call.
  if (target_ == Target::kubernetes || (cached_.status == State::pending && now - refreshed_ > std::chrono::milliseconds(500))) {
    refreshed_ = now;
    if (auto loc = target_ == Target::cloud ? gateway_->refresh(id_) : gateway_->find(id_)) {
      // Idle counts from when it could first be used: a slow pod start is no idleness.
      if (cached_.status == State::pending && loc->status == State::ready) touch();
      cached_ = std::move(*loc);
    } else {
      cached_.status = State::failed;
      cached_.message = "the session is gone";
    }
  }
  return cached_;
}

SessionStatus PlacedSession::status() const {
  if (closed_) return SessionStatus::closed;
  switch (record().status) {
    case State::pending: return SessionStatus::pending;
    case State::ready: return SessionStatus::ready;
    case State::failed: return SessionStatus::failed;
  }
  return SessionStatus::failed;
}

std::optional<Endpoint> PlacedSession::endpoint() const {
  auto loc = record();
  return Endpoint{loc.base_url, loc.authorization, loc.pod, loc.message, reason_};
}

std::chrono::steady_clock::time_point PlacedSession::last_used() const {
  if (use_->holds > 0) return Clock::now();  // a request is being relayed
  return Clock::time_point(Clock::duration(use_->last_ns.load()));
}

std::shared_ptr<void> PlacedSession::hold() {
  touch();
  ++use_->holds;
  return std::shared_ptr<void>(nullptr, [use = use_](void*) {
    use->last_ns = Clock::now().time_since_epoch().count();
    --use->holds;
  });
}

void PlacedSession::touch() const noexcept { use_->last_ns = Clock::now().time_since_epoch().count(); }

Session& PlacedSession::remote() {
  if (closed_) throw Error(errc::failed_precondition, "session " + id_ + " is closed");
  touch();
  if (auto s = remote_if_connected()) return *s;
  // A starting pod is waited for: callers of a placed session, like the seed's clients of
  // a gateway, know nothing of Pending.
  const auto deadline = Clock::now() + ready_timeout_;
  placement::Location loc = record();
  while (loc.status == State::pending && target_ == Target::kubernetes) {
    if (Clock::now() > deadline || closed_)
      throw Error(errc::unavailable, fmt::format("session '{}' is still starting", id_));
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    loc = record();
  }
  if (loc.status == State::failed)
    throw Error(errc::unavailable, fmt::format("session '{}' failed: {}", id_, loc.message));
  ConnectOptions co;
  std::string_view auth = loc.authorization;
  if (auth.starts_with("Bearer ")) co.token = std::string(auth.substr(7));
  // Pods are reached on their cluster address over plain HTTP, as the gateway always did;
  // the cloud gateway is reached by the token rule like any server.
  co.allow_plaintext_token = target_ == Target::kubernetes;
  auto r = connect(loc.base_url, co);
  auto s = r->session(id_);
  std::lock_guard lock(mu_);
  if (!remote_session_) {
    remote_ = std::move(r);
    remote_session_ = std::move(s);
  }
  return *remote_session_;
}

std::shared_ptr<Session> PlacedSession::remote_if_connected() const {
  std::lock_guard lock(mu_);
  return remote_session_;
}

Files& PlacedSession::files() { return remote().files(); }
std::vector<ProcessInfo> PlacedSession::processes() { return remote().processes(); }
void PlacedSession::kill(int pid, int signal) { remote().kill(pid, signal); }
std::shared_ptr<Execution> PlacedSession::start(ExecRequest req) { return remote().start(std::move(req)); }

std::shared_ptr<Execution> PlacedSession::latest() const {
  auto s = remote_if_connected();
  return s ? s->latest() : nullptr;  // nothing ran through this handle yet
}

std::shared_ptr<Execution> PlacedSession::execution(std::string_view id) const {
  auto s = remote_if_connected();
  return s ? s->execution(id) : nullptr;
}

void PlacedSession::close() {
  if (closed_.exchange(true)) return;
  try {
    gateway_->remove(id_);
  } catch (...) {
    closed_ = false;  // the cluster or the cloud is unreachable now: the pod is still there
    throw;
  }
}

}  // namespace sandbox
