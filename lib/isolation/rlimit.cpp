// The `rlimit` backend: resource limits, a process group and an unprivileged uid. Portable and
// the weakest: code can read whatever that uid can read on the host and use the network.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>

#include "isolation/backends.hpp"
#include "isolation/namespaces/namespaces.hpp"  // agent_caps, as the namespaces agent has them
#include "sys/cstrings.hpp"
#include "sys/fd.hpp"
#include "sys/spawn.hpp"

namespace sandbox::isolation {
namespace {

// Code runs as nobody; the agent's real and saved uid is a second dedicated id, so code
// cannot ptrace, read or signal it (its effective uid is the code's: lib/agent/main.cpp).
constexpr uid_t code_uid = 65534;
constexpr gid_t code_gid = 65534;
constexpr uid_t agent_uid = 65533;
constexpr int agent_fd = 3;

std::string fmt_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

class RlimitInstance final : public Instance {
 public:
  RlimitInstance(sys::Child agent, sys::UniqueFd control, std::string workspace, bool dropped)
      : pid_(agent.pid()), agent_(std::move(agent)), control_(std::move(control)), workspace_(std::move(workspace)),
        dropped_(dropped) {}
  ~RlimitInstance() override { terminate(); }

  int control_fd() const override { return control_.get(); }
  pid_t host_pid() const override { return pid_; }
  std::string workspace_inside() const override { return workspace_; }
  std::optional<std::pair<uid_t, gid_t>> file_owner() const override {
    if (!dropped_) return std::nullopt;
    return std::pair{code_uid, code_gid};
  }
  void terminate() override {
    if (reaped_.exchange(true)) return;
    // The agent kills its descendants on SHUTDOWN or when this socket closes; its own group
    // goes here. Processes that escaped the agent are beyond this backend (see containment()).
    agent_.kill();
    agent_.wait();
  }

 private:
  pid_t pid_;
  sys::Child agent_;
  sys::UniqueFd control_;
  std::string workspace_;
  bool dropped_;
  std::atomic<bool> reaped_{false};
};

class RlimitBackend final : public Backend {
 public:
  std::string_view name() const override { return "rlimit"; }
  Support probe() const override {
    return {true, ::geteuid() == 0 ? "runs code as uid 65534 (its agent as 65533) with rlimits" : "runs code as this uid with rlimits"};
  }
  Containment containment() const override {
    return {{"CPU time, data size, file size, open files and core dumps per process",
             "wall-clock timeout", "processes per uid (shared by every rlimit session)",
             "root: code runs as uid 65534", "the agent (its own uid: no ptrace, memory, fds or signals from code)"},
            {"the host filesystem (readable as that uid)", "the network", "other sessions' processes (same uid)",
             "memory of the whole session", "all sessions' memory and processes together (no parent cgroup)",
             "daemons that escape after the agent dies", "kernel attack surface"}};
  }

  std::unique_ptr<Instance> launch(const LaunchSpec& spec) override {
    const bool drop = ::geteuid() == 0;
    if (drop) {
      // The agent runs as uid 65534 from the runtime dir, in the workspace: every directory
      // above them must let others search it, or the agent dies at exec or chdir with
      // nothing to say why.
      for (const auto& leaf : {spec.workspace.parent_path(), spec.runtime_dir}) {
        for (auto dir = leaf;; dir = dir.parent_path()) {
          struct stat st{};
          if (::stat(dir.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH))
            throw Error(errc::permission_denied, "rlimit runs code as uid 65534, which cannot enter " + dir.string() +
                                                     " (mode " + fmt_mode(st.st_mode) + "): chmod o+x it or choose another directory");
          if (dir == dir.root_path() || dir.empty()) break;
        }
      }
      sys::check(::chown(spec.workspace.c_str(), code_uid, code_gid), "chown", spec.workspace.string());
    }
    ::chmod(spec.workspace.c_str(), 0700);
    auto [host, child] = sys::socket_pair();
    const std::string ws = spec.workspace.string();
    auto args = agent_argv(spec.runtime_dir / "sandbox-agent", agent_fd, ws, spec.runtime_dir, spec);
    if (drop) {
      args.push_back("--code-uid");
      args.push_back(std::to_string(code_uid));
    }
    sys::CStrings argv(std::move(args));
    sys::CStrings envp(agent_environment(ws));
    const Limits& l = spec.limits;
    sys::SpawnSpec start{argv.ptrs[0], argv.ptrs.data(), envp.ptrs.data(), {-1, -1, STDERR_FILENO, child.get()}, agent_fd + 1};
    start.who = "rlimit: starting the agent";
    sys::Confinement& c = start.confine;
    c.cwd = ws.c_str();  // the workspace is the code's (mode 0700): entered while still root
    c.cwd_before_ids = true;
    // RLIMIT_DATA rather than RLIMIT_AS: V8 reserves gigabytes of address space it never
    // touches, so an AS limit that lets Node start would not bound memory at all.
    const sys::Rlimit lims[] = {
        {RLIMIT_CPU, static_cast<std::uint64_t>(l.cpu_time.count())},
        {RLIMIT_DATA, l.memory_bytes},
        {RLIMIT_FSIZE, l.disk_bytes},
        {RLIMIT_NOFILE, l.open_files},
        {RLIMIT_CORE, 0},
        {RLIMIT_NPROC, l.max_processes},  // per uid: only meaningful as the dedicated uid
    };
    for (const auto& lim : lims)
      if (lim.resource != RLIMIT_NPROC || drop) c.rlimits[c.nrlimits++] = lim;
    if (drop) {
      // The agent's own uid, with CAP_SETUID and CAP_SETPCAP kept (ambient, through exec) for
      // the one switch it makes at start, its effective uid to the code's, after which it
      // drops them (lib/agent/main.cpp).
      c.set_groups = true;
      c.gid = code_gid;
      c.uid = agent_uid;
      c.keep_caps_over_uid = true;
      c.caps = sys::Confinement::Caps::set;
      c.keep_caps = ns::agent_caps;
      c.cap_last = sys::last_cap();
    }
    c.pdeathsig = SIGKILL;
    c.parent = ::getpid();
    c.no_new_privs = true;
    sys::Child agent = sys::spawn(start);
    child.reset();
    return std::make_unique<RlimitInstance>(std::move(agent), std::move(host), ws, drop);
  }
};

}  // namespace

std::unique_ptr<Backend> make_rlimit_backend() { return std::make_unique<RlimitBackend>(); }

}  // namespace sandbox::isolation
