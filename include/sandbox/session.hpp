// sandbox/session.hpp: one isolated place where code runs: workspace, agent, executions.
//
//   auto s = sb.create_session({});
//   s->files().upload("a.txt", "hello");
//   auto r = s->run({.language = sandbox::Language::python, .code = "open('a.txt').read()"});
//   // r.result == "'hello'"
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/execution.hpp"
#include "sandbox/files.hpp"
#include "sandbox/limits.hpp"
#include "sandbox/processes.hpp"

namespace sandbox {

// A placed session is pending until its pod (or the cloud's session) serves, and failed if
// it never will; a local one is ready once its agent said hello.
// lost: a session a restarted Sandbox could not adopt (DESIGN section 7); every call on it
// throws session_lost except reading its workspace, until it is closed.
enum class SessionStatus { pending, ready, failed, closed, lost };
std::string_view to_string(SessionStatus) noexcept;  // "Pending", "Ready", "Failed", "Closed", "Lost"

// Where a session placed elsewhere is served (Session::endpoint()), for front-ends that
// relay requests as they are (the HTTP server forwards a pod's requests).
struct Endpoint {
  std::string base_url;       // "http://10.1.2.3:8080", the cloud gateway's; "" while a pod starts
  std::string authorization;  // the Authorization header to send there; "" = the client's
  std::string pod;            // the pod's name (kubernetes)
  std::string message;        // why it is Failed or still Pending
  std::string reason;         // the placement decision ("water level 0.41 < 0.80: local cluster")
};

struct SessionOptions {
  std::string id;                  // "" = generated; else [A-Za-z0-9_-]{1,64}
  std::optional<Limits> limits;    // default: the Sandbox's
  std::string owner;               // tenant (an auth token's name); "" = none
  Language language = Language::python;  // the kernel warmed first
};

class Session {
 public:
  virtual ~Session() = default;
  virtual const std::string& id() const = 0;
  virtual const std::string& owner() const = 0;
  virtual SessionStatus status() const = 0;
  virtual const Limits& limits() const = 0;
  virtual std::string_view isolation() const = 0;  // backend name
  virtual std::string placement() const = 0;       // "local", "kubernetes" or "cloud"
  // Where a placed session is served; nullopt for a local one (and a remote handle).
  virtual std::optional<Endpoint> endpoint() const { return std::nullopt; }
  virtual std::filesystem::path workspace() const = 0;
  virtual std::chrono::system_clock::time_point created() const = 0;
  virtual std::chrono::steady_clock::time_point last_used() const = 0;

  virtual Files& files() = 0;
  virtual std::vector<ProcessInfo> processes() = 0;
  // Throws not_found for a pid that is not a process of this session.
  virtual void kill(int pid, int signal = 9) = 0;

  // Returns at once; executions of one language run in submission order.
  virtual std::shared_ptr<Execution> start(ExecRequest req) = 0;
  Result run(ExecRequest req) { return start(std::move(req))->wait(); }
  // The most recent execution, or null.
  virtual std::shared_ptr<Execution> latest() const = 0;
  virtual std::shared_ptr<Execution> execution(std::string_view id) const = 0;

  // Kills everything and removes the workspace; later calls throw failed_precondition.
  virtual void close() = 0;
};

// Throws invalid_argument unless `id` matches [A-Za-z0-9_-]{1,64}.
void validate_session_id(std::string_view id);

}  // namespace sandbox
