// The `rlimit` backend: resource limits, a process group and an unprivileged uid. Portable and
// the weakest: code can read whatever that uid can read on the host and use the network.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>

#include "isolation/backends.hpp"
#include "sys/cstrings.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation {
namespace {

constexpr uid_t nobody_uid = 65534;
constexpr gid_t nogroup_gid = 65534;
constexpr int agent_fd = 3;

std::string fmt_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

class RlimitInstance final : public Instance {
 public:
  RlimitInstance(pid_t pid, sys::UniqueFd control, std::string workspace, bool dropped)
      : pid_(pid), control_(std::move(control)), workspace_(std::move(workspace)), dropped_(dropped) {}
  ~RlimitInstance() override { terminate(); }

  int control_fd() const override { return control_.get(); }
  pid_t host_pid() const override { return pid_; }
  std::string workspace_inside() const override { return workspace_; }
  std::optional<std::pair<uid_t, gid_t>> file_owner() const override {
    if (!dropped_) return std::nullopt;
    return std::pair{nobody_uid, nogroup_gid};
  }
  void terminate() override {
    if (reaped_.exchange(true)) return;
    // The agent kills its descendants on SHUTDOWN or when this socket closes; its own group
    // goes here. Processes that escaped the agent are beyond this backend (see containment()).
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }

 private:
  pid_t pid_;
  sys::UniqueFd control_;
  std::string workspace_;
  bool dropped_;
  std::atomic<bool> reaped_{false};
};

class RlimitBackend final : public Backend {
 public:
  std::string_view name() const override { return "rlimit"; }
  Support probe() const override {
    return {true, ::geteuid() == 0 ? "runs code as uid 65534 with rlimits" : "runs code as this uid with rlimits"};
  }
  Containment containment() const override {
    return {{"CPU time, data size, file size, open files and core dumps per process",
             "wall-clock timeout", "processes per uid (shared by every rlimit session)",
             "root: code runs as uid 65534"},
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
      sys::check(::chown(spec.workspace.c_str(), nobody_uid, nogroup_gid), "chown", spec.workspace.string());
    }
    ::chmod(spec.workspace.c_str(), 0700);
    auto [host, child] = sys::socket_pair();
    const std::string ws = spec.workspace.string();
    sys::CStrings argv(agent_argv(spec.runtime_dir / "sandbox-agent", agent_fd, ws, spec.runtime_dir, spec));
    sys::CStrings envp(agent_environment(ws));
    const Limits& l = spec.limits;
    struct Lim { int res; rlim_t value; };
    // RLIMIT_DATA rather than RLIMIT_AS: V8 reserves gigabytes of address space it never
    // touches, so an AS limit that lets Node start would not bound memory at all.
    const Lim lims[] = {
        {RLIMIT_CPU, static_cast<rlim_t>(l.cpu_time.count())},
        {RLIMIT_DATA, static_cast<rlim_t>(l.memory_bytes)},
        {RLIMIT_FSIZE, static_cast<rlim_t>(l.disk_bytes)},
        {RLIMIT_NOFILE, static_cast<rlim_t>(l.open_files)},
        {RLIMIT_CORE, 0},
        {RLIMIT_NPROC, static_cast<rlim_t>(l.max_processes)},
    };
    const int child_fd = child.get();
    const char* wsdir = ws.c_str();
    pid_t pid = ::fork();
    if (pid < 0) throw_syscall("fork", errno, "rlimit agent");
    if (pid == 0) {
      // Child: async-signal-safe calls only.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::dup2(child_fd, agent_fd) < 0) ::_exit(120);
      ::syscall(SYS_close_range, agent_fd + 1, ~0U, 0);
      for (const auto& lim : lims) {
        // NPROC is per uid: only meaningful once we run as the dedicated uid.
        if (lim.res == RLIMIT_NPROC && !drop) continue;
        rlimit r{lim.value, lim.value};
        if (::setrlimit(lim.res, &r) < 0) ::_exit(121);
      }
      if (drop) {
        if (::setgroups(0, nullptr) < 0 || ::setgid(nogroup_gid) < 0 || ::setuid(nobody_uid) < 0) ::_exit(122);
      }
      ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
      if (::chdir(wsdir) < 0) ::_exit(123);
      ::execve(argv.ptrs[0], argv.ptrs.data(), envp.ptrs.data());
      ::_exit(127);
    }
    child.reset();
    return std::make_unique<RlimitInstance>(pid, std::move(host), ws, drop);
  }
};

}  // namespace

std::unique_ptr<Backend> make_rlimit_backend() { return std::make_unique<RlimitBackend>(); }

}  // namespace sandbox::isolation
