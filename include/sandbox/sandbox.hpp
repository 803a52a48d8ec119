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
  std::size_t max_sessions = 1000;
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

  // Throws already_exists, invalid_argument, resource_exhausted (max_sessions), unavailable.
  std::shared_ptr<Session> create_session(SessionOptions opts = {});
  // Throws not_found.
  std::shared_ptr<Session> session(std::string_view id) const;
  std::shared_ptr<Session> find(std::string_view id) const;  // null if absent
  std::vector<std::shared_ptr<Session>> sessions() const;
  // Throws not_found.
  void close_session(std::string_view id);

  // The watchdog: false when the library's I/O loop (which serves every session's agent)
  // has not turned for `max_lag`. A liveness probe (`/healthz`) asks this.
  bool responsive(std::chrono::milliseconds max_lag = std::chrono::seconds(5)) const;
  std::string_view isolation() const;   // the backend in use
  // "" when a new session could be created now, else why not (no host path): descriptors
  // near the limit, the state dir out of inodes or space, the agent or backend missing.
  std::string readiness() const;
  const Options& options() const;
  Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Where the agent and kernels live: the option, $SANDBOX_RUNTIME_DIR, <exe>/../libexec/sandbox,
// the install prefix, or the build tree. Throws unavailable if none holds sandbox-agent.
std::filesystem::path find_runtime_dir(const std::filesystem::path& configured = {});

}  // namespace sandbox
