// The `runsc` backend: the agent runs as the only process of a gVisor container.
//
// Per session, under its session dir:
//   workspace/     a sized tmpfs on the host (the disk quota), owned by the sandbox user,
//                  bound read-write at /workspace: host and container see each other's writes
//   runsc-bundle/  config.json + rootfs skeleton (bundle.cpp), sandbox.pid
//   runsc-root/    runsc's state (--root): recover() lists it, so a crashed server's
//                  container is found through the session dir it left behind
// The agent's control socket is the container's stdin (runsc passes stdio only).
//
// Configuration (environment, read once): SANDBOX_RUNSC_PLATFORM (ptrace, kvm, systrap where
// this runsc has it; default ptrace, the one that works on any host and in VMs),
// SANDBOX_RUNSC_BINARY (default /usr/bin/runsc).
#include <signal.h>
#include <stdlib.h>  // getenv, mkdtemp
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "isolation/backends.hpp"
#include "isolation/namespaces/namespaces.hpp"
#include "isolation/runsc/runsc.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// One value from a cgroup file: the first number, or the number after `key`.
std::optional<std::uint64_t> cgroup_value(const fs::path& file, std::string_view key = {}) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::string k;
  std::uint64_t v;
  if (key.empty()) return (in >> v) ? std::optional(v) : std::nullopt;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

// Removes the container's cgroup in every hierarchy. `runsc delete` leaves it behind when
// the container never started or its processes were still exiting; rmdir fails (EBUSY)
// until the last task has left, so retry for a moment.
void remove_cgroups(const std::string& id) noexcept {
  const std::string rel = runsc::cgroups_path(id).substr(1);
  std::vector<fs::path> dirs;
  std::error_code ec;
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers", ec)) {
    dirs.push_back(fs::path("/sys/fs/cgroup") / rel);
  } else {
    for (auto& h : fs::directory_iterator("/sys/fs/cgroup", ec))
      if (!h.is_symlink(ec) && h.is_directory(ec)) dirs.push_back(h.path() / rel);  // "cpu,cpuacct" links skipped
  }
  for (const auto& dir : dirs) {
    for (int i = 0; i < 100 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(10ms);
  }
}

// Container ids in use by this process. A session's dead agent keeps its container (and
// runsc's lock on that id) until its successor is up, so the successor needs another id:
// "r2-<id>", "r3-<id>", ... (still ending in the session's key, which names the cgroup).
class LiveIds {
 public:
  std::string claim(const std::string& base) {
    std::lock_guard lock(mutex_);
    std::string id = base;
    for (int n = 2; ids_.count(id); ++n) id = "r" + std::to_string(n) + "-" + base;
    ids_.insert(id);
    return id;
  }
  void release(const std::string& id) {
    std::lock_guard lock(mutex_);
    ids_.erase(id);
  }

 private:
  std::mutex mutex_;
  std::set<std::string> ids_;
};
LiveIds live_ids;

class RunscInstance final : public Instance {
 public:
  RunscInstance(runsc::Cli cli, std::string id, bool cgroups)
      : cli_(std::move(cli)), id_(std::move(id)), cgroups_(cgroups) {}
  ~RunscInstance() override {
    terminate();
    remove();
    live_ids.release(id_);
    workspace_.reset();  // after the container: its gofer holds the workspace open
  }

  int control_fd() const override { return control_.get(); }
  pid_t host_pid() const override { return pid_; }
  std::string workspace_inside() const override { return runsc::workspace_inside; }
  std::optional<std::pair<uid_t, gid_t>> file_owner() const override {
    return std::pair{runsc::user_uid, runsc::user_gid};
  }

  Usage usage() const override {
    Usage u;
    if (!cgroups_) return u;
    const fs::path base = "/sys/fs/cgroup";
    const std::string rel = runsc::cgroups_path(id_).substr(1);
    if (fs::exists(base / "cgroup.controllers")) {  // v2: one tree
      const fs::path dir = base / rel;
      u.memory_peak_bytes = cgroup_value(dir / "memory.peak");
      if (auto cpu = cgroup_value(dir / "cpu.stat", "usage_usec")) u.cpu_time_us = cpu;
      u.oom_kills = cgroup_value(dir / "memory.events", "oom_kill");
      u.pids_denied = cgroup_value(dir / "pids.events", "max");
    } else {
      u.memory_peak_bytes = cgroup_value(base / "memory" / rel / "memory.max_usage_in_bytes");
      if (auto ns = cgroup_value(base / "cpuacct" / rel / "cpuacct.usage")) u.cpu_time_us = *ns / 1000;
      u.oom_kills = cgroup_value(base / "memory" / rel / "memory.oom_control", "oom_kill");
      u.pids_denied = cgroup_value(base / "pids" / rel / "pids.events", "max");
    }
    return u;
  }

  // Runs on the session library's I/O thread (an agent that died, the backstop), so it only
  // sends signals: runsc subprocesses there took seconds under memory pressure and stalled
  // every other session's traffic. The sandbox process is the Sentry; with it die the
  // guest tasks (ptrace stubs are its children, with a parent-death SIGKILL) and then the
  // gofer. `runsc delete` (state, cgroups) runs when the instance is destroyed.
  void terminate() override {
    std::lock_guard lock(mutex_);
    if (!started_ || killed_) return;
    killed_ = true;
    if (!pidfd_ && !cgroups_) {  // nothing to signal directly: let runsc do it, slowly
      remove_locked();
      return;
    }
    if (pidfd_) (void)::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0u);
    // Everything else of the container on the host: its cgroup's members (v1 pids
    // controller, or the v2 tree). A member cannot be reaped, so its pid not reused, before
    // it has left the cgroup.
    if (cgroups_) {
      const std::string rel = runsc::cgroups_path(id_).substr(1);
      for (const fs::path& dir : {fs::path("/sys/fs/cgroup/pids") / rel, fs::path("/sys/fs/cgroup") / rel}) {
        std::ifstream in(dir / "cgroup.procs");
        if (!in) continue;
        for (pid_t p; in >> p;)
          if (p > 0) ::kill(p, SIGKILL);
        break;
      }
    }
  }

  // Kills what is left and removes the container (sandbox, gofer, cgroups, state files).
  void remove() {
    std::lock_guard lock(mutex_);
    remove_locked();
  }

  // Filled in by launch(), in this order; the destructor undoes them in reverse.
  std::unique_ptr<ns::mount::Workspace> workspace_;
  bool started_ = false;  // a container may exist from here on (even if `run` failed)
  pid_t pid_ = -1;
  sys::UniqueFd pidfd_;   // the sandbox process, so a signal never hits a reused pid
  sys::UniqueFd output_;  // the container's stdout/stderr pipe, never read after start
  sys::UniqueFd control_;

 private:
  void remove_locked() {
    if (!started_ || removed_) return;
    try {
      cli_.remove(id_);
    } catch (...) {
      // Last resort: the sandbox process itself, so nothing of the session keeps running.
      if (pidfd_) {
        (void)::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0u);
      } else if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
      }
    }
    if (cgroups_) remove_cgroups(id_);
    removed_ = true;
  }

  runsc::Cli cli_;
  std::string id_;
  bool cgroups_;
  std::mutex mutex_;
  bool killed_ = false;
  bool removed_ = false;
};

class RunscBackend final : public Backend {
 public:
  RunscBackend() {
    if (const char* p = ::getenv("SANDBOX_RUNSC_PLATFORM"); p && *p) platform_ = p;
    if (const char* b = ::getenv("SANDBOX_RUNSC_BINARY"); b && *b) binary_ = b;
  }

  std::string_view name() const override { return "runsc"; }

  Support probe() const override {
    std::call_once(probed_, [this] { support_ = run_probe(); });
    return support_;
  }

  Containment containment() const override {
    Containment c{
        {"the host kernel: system calls are served by gVisor's Sentry, a user-space kernel",
         "host files (read-only root of system dirs and an /etc subset, through the gofer)",
         "other sessions' files and processes", "network (loopback only, --network=none)",
         "privilege (unprivileged uid, no capabilities, no_new_privs)",
         "workspace size (tmpfs quota)", "file size, open files, CPU seconds (rlimits)"},
        {"CPU cache and timing side channels", "disk I/O bandwidth",
         "bugs in gVisor itself (a smaller, memory-safe attack surface)"},
    };
    if (cgroups_) {
      c.contains.push_back("memory, processes and CPU of the whole sandbox (cgroup)");
    } else {
      c.does_not_contain.push_back("memory, processes and CPU (cgroups unusable here)");
    }
    // runsc makes each sandbox's cgroup itself, outside the Sandbox's parent cgroup.
    c.does_not_contain.push_back("all sessions' memory and processes together (no parent cgroup)");
    return c;
  }

  std::unique_ptr<Instance> launch(const LaunchSpec& spec) override {
    if (auto s = probe(); !s.available) throw Error(errc::unavailable, "runsc: " + s.reason);
    if (spec.session_dir.empty() || spec.workspace.empty() || spec.runtime_dir.empty())
      throw Error(errc::invalid_argument, "runsc: session_dir, workspace and runtime_dir are required");

    const fs::path root = spec.session_dir / "runsc-root";
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec) throw Error(from_errno(ec.value()), "runsc: mkdir " + root.string() + ": " + ec.message());
    ::chmod(root.c_str(), 0700);

    const std::string base = runsc::container_id(spec.session_id);
    const std::string id = live_ids.claim(base);
    // A successor's bundle must not overwrite the rootfs its predecessor may still hold.
    const fs::path bundle_dir = spec.session_dir / (id == base ? "runsc-bundle" : "runsc-bundle-" + id);
    auto inst = std::make_unique<RunscInstance>(cli(root), id, cgroups_);  // releases the id
    inst->workspace_ = std::make_unique<ns::mount::Workspace>(spec.workspace, spec.limits.disk_bytes);
    // Not durable (durable() is false): its agent ends with the server, listening for none.
    LaunchSpec plain = spec;
    plain.durable = false;
    const fs::path bundle = runsc::write_bundle(plain, bundle_dir, {.container_id = id, .cgroups = cgroups_, .args = {}});
    auto [host, child] = sys::socket_pair();
    inst->started_ = true;
    auto started = cli(root).run_detached(id, bundle, child.get());
    inst->pid_ = started.pid;
    // Fails (ESRCH) only if the sandbox is already gone; terminate() has nothing to kill then.
    inst->pidfd_ = sys::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, started.pid, 0)));
    inst->output_ = std::move(started.output);
    inst->control_ = std::move(host);
    return inst;
  }

  void recover(const fs::path& state_dir, const std::set<std::string>& keep) override {
    if (state_dir.empty() || !probe().available) return;
    std::error_code ec;
    for (auto& session : fs::directory_iterator(state_dir / "sessions", ec)) {
      if (keep.count(session.path().filename().string())) continue;  // a kept (lost) session's
      const fs::path root = session.path() / "runsc-root";
      if (!fs::is_directory(root)) continue;
      auto c = cli(root);
      try {
        for (const auto& container : c.list()) {
          c.kill(container.id, SIGKILL);
          c.remove(container.id);
          if (cgroups_) remove_cgroups(container.id);
        }
      } catch (const Error&) {
        // A broken state file: nothing more runsc can do with it; the dir goes with the session.
      }
    }
    // The workspaces' tmpfs mounts of those sessions; a kept one's stays (it is downloadable).
    std::vector<fs::path> except;
    for (const auto& id : keep) except.push_back(state_dir / "sessions" / id);
    ns::mount::remove_stale(state_dir / "sessions", except);
  }

 private:
  runsc::Cli cli(const fs::path& root) const {
    return runsc::Cli({.binary = binary_, .root = root, .platform = platform_, .cgroups = cgroups_});
  }

  // Starts a trivial container (~200 ms): with cgroups first, then without.
  Support run_probe() const {
    if (::access(binary_.c_str(), X_OK) != 0) return {false, binary_.string() + " not found (apt-get install runsc)"};
    if (::geteuid() != 0) return {false, "runsc needs root here (rootless mode is not supported)"};
    char tmpl[] = "/tmp/libsandbox-runsc-probe-XXXXXX";
    if (!::mkdtemp(tmpl)) return {false, std::string("mkdtemp: ") + std::strerror(errno)};
    const fs::path dir = tmpl;
    LaunchSpec spec;
    spec.session_id = "probe-" + std::to_string(::getpid());
    spec.workspace = dir / "workspace";
    std::error_code ec;
    fs::create_directories(spec.workspace, ec);
    std::string first_error;
    Support result{false, ""};
    for (bool cgroups : {true, false}) {
      const std::string id = runsc::container_id(spec.session_id + (cgroups ? "-cg" : ""));
      runsc::Cli c({.binary = binary_, .root = dir / "root", .platform = platform_, .cgroups = cgroups});
      try {
        auto bundle = runsc::write_bundle(spec, dir / "bundle", {.container_id = id, .cgroups = cgroups,
                                                                 .args = {"/bin/true"}});
        int code = c.run(id, bundle, 15s);
        try {
          c.remove(id);
        } catch (...) {
        }
        if (cgroups) remove_cgroups(id);  // runsc leaves an exited container's cgroup
        if (code == 0) {
          cgroups_ = cgroups;
          result = {true, "platform " + platform_ +
                              (cgroups ? "; cgroup limits" : "; no cgroup limits (" + first_error + ")")};
          break;
        }
        if (first_error.empty()) first_error = "runsc run exited " + std::to_string(code);
      } catch (const Error& e) {
        try {
          c.remove(id);
        } catch (...) {
        }
        if (cgroups) remove_cgroups(id);  // runsc leaves an exited container's cgroup
        if (first_error.empty()) first_error = e.message();
      }
    }
    fs::remove_all(dir, ec);
    if (!result.available) result.reason = "a trivial container does not start (platform " + platform_ + "): " + first_error;
    return result;
  }

  fs::path binary_ = "/usr/bin/runsc";
  std::string platform_ = "ptrace";
  mutable std::once_flag probed_;
  mutable Support support_;
  mutable bool cgroups_ = true;
};

}  // namespace

std::unique_ptr<Backend> make_runsc_backend() { return std::make_unique<RunscBackend>(); }

}  // namespace sandbox::isolation
