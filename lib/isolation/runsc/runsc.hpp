// The runsc backend's internals: the OCI bundle a session runs from (bundle.cpp) and the
// `runsc` command line that starts, lists, kills and deletes its container (runsc.cpp);
// backend.cpp puts them together behind isolation::Backend.
//
//   runsc::Cli cli({.root = session_dir / "runsc-root"});
//   auto bundle = runsc::write_bundle(spec, session_dir / "bundle", {.container_id = id});
//   auto started = cli.run_detached(id, bundle, control_fd);
//   ...
//   cli.kill(id, SIGKILL); cli.remove(id);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "isolation/backends.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation::runsc {

// The one user inside: unprivileged, and the same id the namespaces backend gives the host
// side of its sessions, so workspace files belong to no host account on either backend.
// gVisor's gofer creates host files with the caller's ids, so inside == host here.
inline constexpr uid_t user_uid = 101000;
inline constexpr gid_t user_gid = 101000;
// The agent's uid: code cannot ptrace, open or signal it. Unlike on the other backends the
// agent keeps it as its effective uid too, with CAP_SETUID and CAP_KILL (--keep-uid in
// lib/agent/main.cpp: gVisor's /proc/<pid>/fd follows file ownership).
inline constexpr uid_t agent_uid = 101001;

// Where things appear inside the container.
inline constexpr const char* workspace_inside = "/workspace";
inline constexpr const char* runtime_inside = "/opt/sandbox";
inline constexpr const char* hostname = "sandbox";
// runsc has no flag to pass extra fds: the control socket is the container's stdin.
inline constexpr int agent_control_fd = 0;
// gVisor's own kernel (the Sentry) and its file proxy (the gofer) live in the container's
// memory cgroup; this much is added to the session's limit so that code gets what it asked for.
inline constexpr std::uint64_t sentry_memory_bytes = 96ull << 20;
// The session's processes are counted inside gVisor (RLIMIT_NPROC: the sandbox has one
// uid, so it counts exactly the session's tasks, and fork fails with EAGAIN). The host pids
// cgroup is only a backstop for the host: each guest task costs ~4 host tasks on the ptrace
// platform (stub process, tracer threads), and if the Sentry cannot make a thread it dies.
inline constexpr std::uint64_t host_pids(std::uint32_t max_processes) {
  return 6ull * max_processes + 128;
}
// The cgroup parent of every runsc container this library starts ("<parent>/<container id>").
inline constexpr const char* cgroup_parent = "/libsandbox-runsc";

struct BundleOptions {
  std::string container_id;    // names the cgroup
  bool cgroups = true;         // false: no resources, no cgroupsPath (runsc --ignore-cgroups)
  std::vector<std::string> args;  // the container's process; empty = the agent
};

// Writes `dir`/config.json and `dir`/rootfs (a skeleton of mount points, a passwd/group and
// hosts file) for the session in `spec`; returns `dir`. Throws sandbox::Error.
std::filesystem::path write_bundle(const LaunchSpec& spec, const std::filesystem::path& dir,
                                   const BundleOptions& options);

// The container's cgroup, relative to each controller's root.
std::string cgroups_path(const std::string& container_id);

// A container id runsc accepts, from a session id.
std::string container_id(const std::string& session_id);

struct CliOptions {
  std::filesystem::path binary = "/usr/bin/runsc";
  std::filesystem::path root;        // --root: runsc's state files for these containers
  std::string platform = "ptrace";   // --platform
  bool cgroups = true;               // false adds --ignore-cgroups
};

// One container state as `runsc list` reports it.
struct Container {
  std::string id;
  std::string status;  // "created", "running", "stopped"
  pid_t pid = -1;      // the sandbox process on the host, -1 once stopped
};

// The runsc command line. Every call runs one `runsc` process to completion (or kills it at
// the timeout) and throws sandbox::Error naming the subcommand and runsc's own message.
class Cli {
 public:
  explicit Cli(CliOptions options) : options_(std::move(options)) {}
  const CliOptions& options() const { return options_; }

  struct Started {
    pid_t pid;            // the sandbox process on the host
    sys::UniqueFd output; // read end of the container's stdout and stderr (see run_detached)
  };
  // `runsc run --detach`: the container's stdin is `stdio_fd`. Its stdout and stderr, and
  // runsc's own diagnostics, go to a pipe: errors are read from it when runsc fails; later
  // the pipe just fills up and blocks a writer, so nothing inside can fill the host's disk.
  // Keep `output` open for the container's life (closing it would SIGPIPE the writer).
  Started run_detached(const std::string& id, const std::filesystem::path& bundle, int stdio_fd,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // `runsc run` in the foreground: waits for the container's process; returns its exit code.
  int run(const std::string& id, const std::filesystem::path& bundle,
          std::chrono::milliseconds timeout) const;
  // `runsc kill ID SIG`; false if the container is not running (already gone is fine).
  bool kill(const std::string& id, int signal) const noexcept;
  // `runsc delete --force ID`: kills what is left and removes the state and cgroups.
  void remove(const std::string& id) const;
  // `runsc list`: every container under the root.
  std::vector<Container> list() const;

 private:
  std::vector<std::string> command(std::initializer_list<std::string> subcommand) const;
  CliOptions options_;
};

}  // namespace sandbox::isolation::runsc
