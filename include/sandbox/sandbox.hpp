// sandbox/sandbox.hpp: the entry point. Owns sessions, the isolation backend, the warm
// pool and the I/O thread; every front-end (C++, Python, sandboxctl, HTTP) wraps this.
//
//   #include <sandbox/sandbox.hpp>
//   sandbox::Sandbox sb({.state_dir = "/var/lib/libsandbox"});
//   auto s = sb.create_session({});
//   auto r = s->run({.code = "x = 20\nx * 2 + 2"});   // r.result == "42"
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/error.hpp"
#include "sandbox/execution.hpp"
#include "sandbox/files.hpp"
#include "sandbox/isolation.hpp"
#include "sandbox/limits.hpp"
#include "sandbox/placement.hpp"
#include "sandbox/processes.hpp"
#include "sandbox/result.hpp"
#include "sandbox/session.hpp"

namespace sandbox {

struct Options {
  std::filesystem::path state_dir;     // "" = a private temporary dir, removed at the end
  std::string isolation;               // "" = the strongest backend this host supports
  Limits limits;                       // defaults for new sessions
  std::filesystem::path runtime_dir;   // "" = $SANDBOX_RUNTIME_DIR, installed, or build tree
  isolation::Interpreters interpreters;
  std::vector<std::string> preload = {"numpy", "matplotlib.pyplot"};  // imported by warm kernels
  std::size_t warm_pool = 0;           // ready sessions kept in reserve
  // Quotas (docs/http.md#quotas). A tenant is a session's owner; "" is one tenant too.
  std::size_t max_sessions = 1000;             // open sessions of every tenant together
  std::size_t max_sessions_per_tenant = 0;     // open sessions of one owner; 0 = no quota
  std::size_t max_executions_per_tenant = 0;   // one owner's executions from submit to end; 0 = none
  // The ceiling of every session of this Sandbox together (a parent cgroup, on backends
  // with cgroups); 0 = the default, below the host's (see default_sessions_ceiling()).
  std::uint64_t sessions_memory_bytes = 0;
  std::uint32_t sessions_processes = 0;
  // Where new sessions run (DESIGN section 6): local (every session here), kubernetes (a
  // pod per session) or hybrid (the local cluster below the water level, else the cloud
  // gateway). A placed session is a Session like any other; its placement() says where.
  placement::Options placement;
  // The reaper, on the Sandbox's own thread (0 = never): closes sessions, placed ones too,
  // unused this long (any execution running, and reading results, count as use) or this
  // old (its running executions end Killed, termination lifetime).
  std::chrono::seconds idle_timeout{0};
  std::chrono::seconds lifetime{0};
  // Durability (DESIGN section 7). With a state_dir, sessions outlive this Sandbox: its
  // destruction (or its process's death) leaves every agent running, and the next Sandbox
  // on the same state_dir adopts them. True restores the old end: every session closed.
  bool close_sessions_on_exit = false;
  // A session that could not be adopted keeps its workspace this long (then it is deleted).
  std::chrono::seconds lost_retention{std::chrono::hours(24)};
  // An agent with no server attached ends itself and its session after this long
  // (0 = idle_timeout, else 15 minutes); lifetime still ends it sooner.
  std::chrono::seconds orphan_timeout{0};
};

// The all-sessions ceiling a Sandbox uses when Options leave it 0: memory 80% of MemTotal
// or MemTotal minus 1 GiB, whichever is lower (never under half of MemTotal); processes
// 75% of the lower of kernel.pid_max and kernel.threads-max.
struct SessionsCeiling {
  std::uint64_t memory_bytes = 0;
  std::uint32_t processes = 0;
};
SessionsCeiling default_sessions_ceiling();

// Over a quota of Options: resource_exhausted, and which quota ("sessions",
// "sessions_per_tenant", "executions_per_tenant"), for front-ends to report.
class QuotaExceeded : public Error {
 public:
  QuotaExceeded(std::string quota, std::string message)
      : Error(errc::resource_exhausted, std::move(message)), quota_(std::move(quota)) {}
  const std::string& quota() const noexcept { return quota_; }

 private:
  std::string quota_;
};

// Counters for metrics, read without locks.
struct Stats {
  std::uint64_t sessions_created = 0, sessions_closed = 0, sessions_active = 0;
  std::map<std::string, std::uint64_t> executions_by_status;
};

class Sandbox {
 public:
  explicit Sandbox(Options options = {});
  ~Sandbox();  // closes every session
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Sessions are keyed by (owner, id): each tenant has its own ids, so two owners may each
  // have a session "a", and neither can learn that the other's exists.
  // Throws already_exists (this owner has the id), invalid_argument, QuotaExceeded
  // (max_sessions, max_sessions_per_tenant), unavailable.
  std::shared_ptr<Session> create_session(SessionOptions opts = {});
  // A session is placed by Options::placement; limits (the request's, else the Sandbox's)
  // size its pod. Another tenant's placed session of the same id is not disclosed: this
  // owner's session is made here instead.
  // Throws not_found.
  std::shared_ptr<Session> session(std::string_view id, std::string_view owner = {}) const;
  // This Sandbox's record only (no I/O): its local sessions and those it placed or located.
  std::shared_ptr<Session> find(std::string_view id, std::string_view owner = {}) const;  // null if absent
  // find(), else (placement on) a session another Sandbox placed: the pod named from the id
  // or the cloud gateway's, when it belongs to `owner`; then recorded. May call the cluster.
  std::shared_ptr<Session> locate(std::string_view id, std::string_view owner = {});
  std::vector<std::shared_ptr<Session>> sessions() const;  // every owner's
  // Throws not_found. A placed session's pod (or cloud session) is deleted.
  void close_session(std::string_view id, std::string_view owner = {});
  // A front-end that relays a placed session's requests itself (the HTTP server forwards
  // them to the pod as they are) holds the session for each request: the reaper counts it
  // as in use until the hold is let go. Null for a session that is not placed.
  [[nodiscard]] std::shared_ptr<void> hold(std::string_view id, std::string_view owner = {});

  // The watchdog: false when the library's I/O loop (which serves every session's agent)
  // has not turned for `max_lag`. A liveness probe (`/healthz`) asks this.
  bool responsive(std::chrono::milliseconds max_lag = std::chrono::seconds(5)) const;
  std::string_view isolation() const;   // the backend in use
  // "" when a new session could be created now, else why not (no host path): descriptors
  // near the limit, the state dir out of inodes or space, the agent or backend missing.
  std::string readiness() const;
  const Options& options() const;  // with the ceiling's defaults filled in
  Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Where the agent and kernels live: the option, $SANDBOX_RUNTIME_DIR, <exe>/../libexec/sandbox,
// beside the installed libsandbox.so (<libdir>/../libexec/sandbox), the install prefix, or
// the build tree. Throws unavailable if none holds sandbox-agent.
std::filesystem::path find_runtime_dir(const std::filesystem::path& configured = {});

}  // namespace sandbox
