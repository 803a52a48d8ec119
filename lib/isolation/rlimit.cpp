// The `rlimit` backend: resource limits, a process group and an unprivileged uid. Portable and
// the weakest: code can read whatever that uid can read on the host and use the network.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "isolation/backends.hpp"
#include "isolation/namespaces/namespaces.hpp"  // agent_caps, as the namespaces agent has them
#include "sys/cstrings.hpp"
#include "sys/fd.hpp"
#include "sys/pidfd.hpp"
#include "sys/spawn.hpp"
#include "sys/unix_socket.hpp"

namespace sandbox::isolation {
namespace {

// Code runs as nobody; the agent's real and saved uid is a second dedicated id, so code
// cannot ptrace, read or signal it (its effective uid is the code's: lib/agent/main.cpp).
constexpr uid_t code_uid = 65534;
constexpr gid_t code_gid = 65534;
constexpr uid_t agent_uid = 65533;
constexpr int agent_fd = 3;
constexpr int listen_fd = 4;  // a durable agent's listening socket (--listen-fd)

std::string fmt_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// A handle's fields (Instance::handle()), or unavailable naming what is missing.
struct Handle {
  pid_t pid = 0;
  std::uint64_t start_ticks = 0;
  bool dropped = false;
};

Handle parse_handle(std::string_view text) {
  try {
    auto j = nlohmann::json::parse(text);
    Handle h;
    h.pid = j.at("pid").get<pid_t>();
    h.start_ticks = j.at("start_ticks").get<std::uint64_t>();
    h.dropped = j.value("dropped", false);
    return h;
  } catch (const std::exception& e) {
    throw Error(errc::unavailable, std::string("rlimit: not a handle of this backend: ") + e.what());
  }
}

class RlimitInstance final : public Instance {
 public:
  // Launched: the agent is our child.
  RlimitInstance(sys::Child agent, sys::UniqueFd control, std::string workspace, bool dropped, bool durable)
      : pid_(agent.pid()), ticks_(sys::start_ticks(pid_).value_or(0)), agent_(std::move(agent)),
        control_(std::move(control)), workspace_(std::move(workspace)), dropped_(dropped), durable_(durable) {}
  // Adopted from an earlier server: held through a pidfd (it is not our child).
  RlimitInstance(const Handle& h, sys::UniqueFd pidfd, sys::UniqueFd control, std::string workspace)
      : pid_(h.pid), ticks_(h.start_ticks), pidfd_(std::move(pidfd)), control_(std::move(control)),
        workspace_(std::move(workspace)), dropped_(h.dropped), durable_(true) {}
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
    if (agent_) {
      agent_.kill();
      agent_.wait();
    } else {
      sys::kill_pidfd(pidfd_.get(), pid_);
      sys::wait_pidfd(pidfd_.get(), std::chrono::seconds(5));
    }
  }
  std::string handle() const override {
    if (!durable_) return {};
    return nlohmann::json{{"backend", "rlimit"}, {"pid", pid_}, {"start_ticks", ticks_}, {"dropped", dropped_}}.dump();
  }
  void release() override {
    if (reaped_.exchange(true)) return;
    (void)agent_.release();  // not killed, not waited for: it outlives us
    pidfd_.reset();
  }

 private:
  pid_t pid_;
  std::uint64_t ticks_;
  sys::Child agent_;    // launched here
  sys::UniqueFd pidfd_;  // adopted
  sys::UniqueFd control_;
  std::string workspace_;
  bool dropped_;
  bool durable_;
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
    // Durable: the socket a later server connects to, bound here (root's) and listened on
    // by the agent.
    sys::UniqueFd listening;
    if (spec.durable) {
      if (spec.control_socket.empty()) throw Error(errc::invalid_argument, "rlimit: a durable session needs a control_socket");
      listening = sys::listen_unix(spec.control_socket);
    }
    const std::string ws = spec.workspace.string();
    auto args = agent_argv(spec.runtime_dir / "sandbox-agent", agent_fd, ws, spec.runtime_dir, spec,
                           spec.durable ? listen_fd : -1);
    if (drop) {
      args.push_back("--code-uid");
      args.push_back(std::to_string(code_uid));
    }
    sys::CStrings argv(std::move(args));
    sys::CStrings envp(agent_environment(ws));
    const Limits& l = spec.limits;
    // A durable agent's stderr is /dev/null: the server's (a pipe, a terminal) may be gone
    // long before it, and a reader waiting for that pipe's EOF would wait for the agent.
    static_assert(listen_fd == agent_fd + 1);
    sys::SpawnSpec start{argv.ptrs[0], argv.ptrs.data(), envp.ptrs.data(),
                         {-1, -1, spec.durable ? -1 : STDERR_FILENO, child.get(), listening.get()},
                         spec.durable ? listen_fd + 1 : agent_fd + 1};
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
    if (spec.durable) {
      // It outlives the server: no death signal, and a session of its own, so that a signal
      // to the server's process group (a Ctrl-C, a supervisor's stop) does not reach it.
      c.setsid = true;
    } else {
      c.pdeathsig = SIGKILL;
      c.parent = ::getpid();
    }
    c.no_new_privs = true;
    sys::Child agent = sys::spawn(start);
    child.reset();
    return std::make_unique<RlimitInstance>(std::move(agent), std::move(host), ws, drop, spec.durable);
  }

  bool durable() const override { return true; }

  std::unique_ptr<Instance> adopt(const LaunchSpec& spec, std::string_view handle) override {
    const Handle h = parse_handle(handle);
    sys::UniqueFd pidfd;
    try {
      pidfd = sys::open_pidfd(h.pid, h.start_ticks);
    } catch (const Error& e) {
      throw Error(errc::unavailable, "rlimit: the agent of " + spec.session_id + " is gone: " + e.message());
    }
    sys::UniqueFd control;
    try {
      control = sys::connect_unix(spec.control_socket, std::chrono::seconds(2));
    } catch (const Error& e) {
      throw Error(errc::unavailable, "rlimit: the agent of " + spec.session_id + " does not answer: " + e.message());
    }
    return std::make_unique<RlimitInstance>(h, std::move(pidfd), std::move(control), spec.workspace.string());
  }

  void reap_lost(const LaunchSpec& spec, std::string_view handle) override {
    (void)spec;
    Handle h;
    try {
      h = parse_handle(handle);
    } catch (const Error&) {
      return;  // nothing we could have started
    }
    // An agent that lives but could not be adopted (its socket refused, it hung) ends here.
    sys::end_process(h.pid, h.start_ticks, std::chrono::seconds(5));
  }
};

}  // namespace

std::unique_ptr<Backend> make_rlimit_backend() { return std::make_unique<RlimitBackend>(); }

}  // namespace sandbox::isolation
