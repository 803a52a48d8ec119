// How the library starts a session's agent inside a backend's isolation (internal).
//
// A backend starts the agent (the session's first process, see docs/agent.md) inside its
// isolation and hands back an Instance: the host end of the agent's control socket plus
// the means to account for and tear down everything the session started. Backends differ
// only in how they start the agent; everything else speaks the one agent protocol. Users
// choose among them by name (include/sandbox/isolation.hpp); none is implemented outside.
//
//   auto backend = sandbox::isolation::make_backend("");   // the strongest this host has
//   auto instance = backend->launch(spec);                  // agent running, fd ready
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sandbox/error.hpp"
#include "sandbox/isolation.hpp"
#include "sandbox/limits.hpp"

namespace sandbox::isolation {

struct LaunchSpec {
  std::string session_id;
  std::filesystem::path session_dir;  // host dir owned by this session (state, bundles)
  std::filesystem::path workspace;    // host dir, read-write inside (at /workspace if moved)
  std::filesystem::path runtime_dir;  // sandbox-agent, kernel.py, kernel.js, node_modules
  Interpreters interpreters;
  Limits limits;
  std::vector<std::string> preload;   // python modules the kernel imports while warming
  // Start the Python kernel with the agent. Backends with a template process (namespaces)
  // fork it from there, sharing the imported modules' pages across sessions.
  bool python_kernel = false;
  // Durable sessions (DESIGN section 7): the agent survives its server. The backend binds a
  // listening unix socket at `control_socket` (its directory mode 0700, the socket 0600),
  // hands it to the agent (`--listen-fd`), and arms no parent-death signal; a later server
  // connects there. The agent ends itself after `orphan_timeout` without a server (0: the
  // agent's default, 15 minutes), or at `lifetime_deadline_ms` (ms since the epoch; 0 = none).
  bool durable = false;
  std::filesystem::path control_socket;
  std::chrono::milliseconds orphan_timeout{0};
  std::int64_t lifetime_deadline_ms = 0;
};

// Resource usage of the whole session, where the backend can measure it (cgroups).
struct Usage {
  std::optional<std::uint64_t> memory_peak_bytes;
  std::optional<std::uint64_t> cpu_time_us;
  std::optional<std::uint64_t> oom_kills;     // count since the session started
  std::optional<std::uint64_t> pids_denied;   // forks refused by the pids limit
};

// A running agent. Destroying it kills every process of the session and undoes every
// mount, cgroup and file the backend made outside the session directory.
class Instance {
 public:
  virtual ~Instance() = default;
  Instance() = default;
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Host end of the control socket (SOCK_STREAM); the agent speaks lib/agent/protocol.hpp.
  virtual int control_fd() const = 0;
  // Host pid of the agent (or of the runtime process that holds it).
  virtual pid_t host_pid() const = 0;
  // Where the workspace appears to code inside ("/workspace" or the host path).
  virtual std::string workspace_inside() const = 0;
  // The owner the host gives files it writes into the workspace, if not its own.
  virtual std::optional<std::pair<uid_t, gid_t>> file_owner() const { return std::nullopt; }
  virtual Usage usage() const { return {}; }
  // Kills every process of the session now; idempotent and safe from any thread.
  virtual void terminate() = 0;
  // Another Python kernel forked from the backend's template into this session, for an
  // agent whose first one died: the agent's ends of its four pipes (stdout, stderr,
  // requests, replies), owned by the caller. Empty where the backend has no template.
  virtual std::vector<int> fork_python_kernel() { return {}; }
  // What a later server needs to adopt this instance (Backend::adopt): a JSON object of the
  // agent's host pid and start time, the cgroup, mounts and names it holds. Durable only.
  virtual std::string handle() const { return {}; }
  // Lets go of the instance without ending it (the server stops, the session lives on): after
  // this, destruction kills nothing and removes no cgroup, mount or file.
  virtual void release() {}
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual Support probe() const = 0;
  virtual Containment containment() const = 0;
  // Starts the agent; throws sandbox::Error (unavailable, resource_exhausted, internal)
  // naming the step that failed.
  virtual std::unique_ptr<Instance> launch(const LaunchSpec& spec) = 0;
  // Removes what a crashed earlier run left under `state_dir` (containers, cgroups, mounts).
  // Sessions whose LaunchSpec::session_id is in `keep` are left alone (a restarted server
  // adopts them, or keeps a lost one's workspace).
  virtual void recover(const std::filesystem::path& state_dir, const std::set<std::string>& keep = {}) {
    (void)state_dir;
    (void)keep;
  }
  // The instance `handle` (Instance::handle()) names, left running by an earlier server, with
  // `spec` as it was launched. The control connection is made: control_fd() is a fresh
  // connection to spec.control_socket. Throws unavailable when the agent is gone (its pid
  // exited or was reused, its socket refuses) or the backend cannot adopt.
  virtual std::unique_ptr<Instance> adopt(const LaunchSpec& spec, std::string_view handle) {
    (void)spec;
    (void)handle;
    throw Error(errc::unavailable, std::string(name()) + " sessions cannot be adopted by a new server");
  }
  // Ends what a lost session (its agent gone) left: processes, cgroups; its workspace (and a
  // quota mount under it) stays until forget_lost(). Idempotent.
  virtual void reap_lost(const LaunchSpec& spec, std::string_view handle) {
    (void)spec;
    (void)handle;
  }
  // The lost session is being deleted: undoes what reap_lost() kept (the workspace's quota
  // mount), so the caller can remove the session directory. Idempotent.
  virtual void forget_lost(const LaunchSpec& spec, std::string_view handle) {
    (void)spec;
    (void)handle;
  }
  // Whether launch() honours LaunchSpec::durable and adopt() works: its agents can outlive
  // the server. False: durable is ignored and sessions end with their server.
  virtual bool durable() const { return false; }
  // Bounds the memory and processes of every session this backend starts, together (a
  // parent cgroup of them all). Backends without one ignore it; containment() says so.
  virtual void bound_sessions(std::uint64_t memory_bytes, std::uint32_t processes) {
    (void)memory_bytes;
    (void)processes;
  }
};

// The named backend; "" or "auto" picks the strongest whose probe() is available.
// Throws invalid_argument for an unknown name, unavailable if it cannot run here.
std::unique_ptr<Backend> make_backend(std::string_view name);

// The named backend whether or not it can run here (for `doctor`); null if unknown.
std::unique_ptr<Backend> make_backend_unchecked(std::string_view name);

// The argv that starts the agent: `agent --control-fd FD --workspace DIR ...`, with the
// paths the agent will see. Every backend uses this, so the agent has one command line.
// A durable spec adds `--listen-fd L --orphan-timeout-ms T --lifetime-deadline-ms D`, L being
// where the backend put the listening socket (required then: invalid_argument without).
std::vector<std::string> agent_argv(const std::filesystem::path& agent,
                                    int control_fd,
                                    const std::string& workspace_inside,
                                    const std::filesystem::path& runtime_inside,
                                    const LaunchSpec& spec,
                                    int listen_fd = -1);

// Environment every backend gives the agent: a fixed allow-list, nothing from the server.
std::vector<std::string> agent_environment(const std::string& workspace_inside);

// The backends this build carries; isolation/backend.cpp picks among them.
std::unique_ptr<Backend> make_rlimit_backend();
std::unique_ptr<Backend> make_namespaces_backend();
std::unique_ptr<Backend> make_runsc_backend();

}  // namespace sandbox::isolation
