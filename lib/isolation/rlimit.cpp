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
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "isolation/backends.hpp"
#include "isolation/namespaces/namespaces.hpp"  // capabilities::, shared with the namespaces child
#include "sys/cstrings.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation {
namespace {

// Code runs as nobody; the agent's real and saved uid is a second dedicated id, so code
// cannot ptrace, read or signal it (its effective uid is the code's: lib/agent/main.cpp).
constexpr uid_t code_uid = 65534;
constexpr gid_t code_gid = 65534;
constexpr uid_t agent_uid = 65533;
constexpr int agent_fd = 3;
constexpr int report_at = agent_fd + 1;  // the child's failure report, close-on-exec

// The child's steps; each is its exit code when it fails.
enum class ChildStep : int {
  setpgid = 110, fds, chdir, rlimits, capabilities, setuid, pdeathsig, no_new_privs, execve,
};
const char* step_name(ChildStep s) {
  switch (s) {
    case ChildStep::setpgid: return "setpgid";
    case ChildStep::fds: return "placing fds";
    case ChildStep::chdir: return "chdir to the workspace";
    case ChildStep::rlimits: return "setrlimit";
    case ChildStep::capabilities: return "capabilities";
    case ChildStep::setuid: return "setuid";
    case ChildStep::pdeathsig: return "parent-death signal";
    case ChildStep::no_new_privs: return "no_new_privs";
    case ChildStep::execve: return "execve of the agent";
  }
  return "?";
}
struct ChildFailure {
  ChildStep step;
  int err;
};

// Waits for the child to exec (EOF on the report pipe) or to report the step that failed,
// which becomes the Error (the child is reaped then).
void await_exec(pid_t pid, int report_fd) {
  ChildFailure f{};
  ssize_t n;
  while ((n = ::read(report_fd, &f, sizeof f)) < 0 && errno == EINTR) {
  }
  if (n == 0) return;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof f))
    throw Error(errc::internal, "rlimit: the agent's child died before exec (status " + std::to_string(status) + ")");
  const errc code = f.err == EPERM || f.err == EACCES ? errc::permission_denied
                  : from_errno(f.err) == errc::resource_exhausted ? errc::resource_exhausted : errc::internal;
  throw Error(code, std::string("rlimit: starting the agent: ") + step_name(f.step) + ": " + std::strerror(f.err));
}

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
    return std::pair{code_uid, code_gid};
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
    const int cap_last = ns::capabilities::last_cap();
    const pid_t parent = ::getpid();
    int report[2];
    sys::check(::pipe2(report, O_CLOEXEC), "pipe2", "rlimit agent");
    sys::UniqueFd report_read(report[0]), report_write(report[1]);
    const int report_fd = report[1];
    pid_t pid = ::fork();
    if (pid < 0) throw_syscall("fork", errno, "rlimit agent");
    if (pid == 0) {
      // Child: async-signal-safe calls only. A failed step is reported ({step, errno} on
      // the close-on-exec pipe) and is the exit code, never skipped.
      int rfd = report_fd;
      auto fail_at = [&rfd](ChildStep step) {
        ChildFailure f{step, errno};
        (void)!::write(rfd, &f, sizeof f);
        ::_exit(static_cast<int>(step));
      };
      if (::setpgid(0, 0) != 0) fail_at(ChildStep::setpgid);
      // Both lifted above 10 first, so that placing one cannot clobber the other.
      const int control_high = ::fcntl(child_fd, F_DUPFD_CLOEXEC, 10);
      const int report_high = ::fcntl(report_fd, F_DUPFD_CLOEXEC, 10);
      if (control_high < 0 || report_high < 0 || ::dup2(control_high, agent_fd) < 0 ||
          ::dup3(report_high, report_at, O_CLOEXEC) < 0)
        fail_at(ChildStep::fds);
      rfd = report_at;
      if (::syscall(SYS_close_range, report_at + 1, ~0U, 0) != 0) fail_at(ChildStep::fds);
      // The workspace is the code's (mode 0700): entered while still root.
      if (::chdir(wsdir) < 0) fail_at(ChildStep::chdir);
      for (const auto& lim : lims) {
        // NPROC is per uid: only meaningful once we run as the dedicated uid.
        if (lim.res == RLIMIT_NPROC && !drop) continue;
        rlimit r{lim.value, lim.value};
        if (::setrlimit(lim.res, &r) < 0) fail_at(ChildStep::rlimits);
      }
      if (drop) {
        // The agent's own uid, with CAP_SETUID and CAP_SETPCAP kept (ambient, through exec) for
        // the one switch it makes at start, its effective uid to the code's, after which it
        // drops them (lib/agent/main.cpp).
        if (!ns::capabilities::drop_bounding(cap_last, ns::agent_caps)) fail_at(ChildStep::capabilities);
        if (::setgroups(0, nullptr) < 0 || ::setresgid(code_gid, code_gid, code_gid) < 0) fail_at(ChildStep::setuid);
        if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || ::setresuid(agent_uid, agent_uid, agent_uid) < 0)
          fail_at(ChildStep::setuid);
        if (!ns::capabilities::set(ns::agent_caps)) fail_at(ChildStep::capabilities);
      }
      // After the uid change, which clears it; then the parent may already be gone.
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_at(ChildStep::pdeathsig);
      if (::getppid() != parent) {
        errno = ESRCH;
        fail_at(ChildStep::pdeathsig);
      }
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail_at(ChildStep::no_new_privs);
      ::execve(argv.ptrs[0], argv.ptrs.data(), envp.ptrs.data());
      fail_at(ChildStep::execve);
    }
    report_write.reset();
    child.reset();
    await_exec(pid, report_read.get());
    return std::make_unique<RlimitInstance>(pid, std::move(host), ws, drop);
  }
};

}  // namespace

std::unique_ptr<Backend> make_rlimit_backend() { return std::make_unique<RlimitBackend>(); }

}  // namespace sandbox::isolation
