// The namespaces backend: the agent as init of fresh user/pid/mount/net/ipc/uts/cgroup
// namespaces, in its own cgroup, in a read-only root, without capabilities, under seccomp.
//
// launch() in the parent: workspace quota mounted, plan built, cgroup made, clone(), child
// added to the cgroup and its ids mapped, child released; then contain.cpp runs in the
// child and either execs the agent (the sync socket closes: EOF) or names the failed step.
//
// Durable sessions (LaunchSpec::durable) differ in three ways: the agent also gets a
// listening socket (fd 8) and no death signal, so it outlives the server as a child of the
// host's init; its cgroup sits in a group named after the state dir ("d<hash>"), which a later
// server reuses and recover() sweeps only of sessions the store does not keep; and adopt()
// takes such an agent over from its handle (pid + start time, cgroup, workspace mount).
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <functional>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "isolation/backends.hpp"
#include "isolation/namespaces/cgroup.hpp"
#include "isolation/namespaces/namespaces.hpp"
#include "isolation/namespaces/template.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"
#include "sys/pidfd.hpp"
#include "sys/spawn.hpp"
#include "sys/unix_socket.hpp"

namespace sandbox::isolation {
namespace {
namespace fs = std::filesystem;
using namespace ns;

constexpr int clone_flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
                            CLONE_NEWIPC | CLONE_NEWUTS;
constexpr std::size_t stack_size = 256 * 1024;

// The cgroup layout, looked up once per process.
struct Host {
  cgroup::Layout layout = cgroup::Layout::detect();
};
const Host& host() {
  static const Host h;
  return h;
}

// A mapped stack for clone(); the child gets its own copy (no CLONE_VM).
struct Stack {
  void* base = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  ~Stack() {
    if (base != MAP_FAILED) ::munmap(base, stack_size);
  }
  void* top() const { return static_cast<char*>(base) + stack_size; }
};

// The child's Progress, on a page shared across clone() (MAP_SHARED survives it).
class SharedProgress {
 public:
  SharedProgress() {
    void* p = ::mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_syscall("mmap", errno, "child progress page");
    progress_ = new (p) Progress;
  }
  ~SharedProgress() {
    progress_->~Progress();
    ::munmap(progress_, sizeof(Progress));
  }
  SharedProgress(const SharedProgress&) = delete;
  SharedProgress& operator=(const SharedProgress&) = delete;
  Progress* get() const { return progress_; }
  int step() const { return progress_->step.load(std::memory_order_acquire); }
  // The step the child last recorded, as a number and a name.
  std::string last_step() const { return std::to_string(step()) + " (" + step_name(step()) + ")"; }

 private:
  Progress* progress_ = nullptr;
};

// The backend's python template, behind one lock: a restart must not replace it while a
// request is being written.
struct TemplateSlot {
  std::mutex mutex;
  std::unique_ptr<PythonTemplate> process;
  // A kernel from the template into the namespaces of `agent`; never blocks.
  bool fork(const LaunchSpec& spec, pid_t agent, const std::vector<fs::path>& cgroups,
            const std::vector<Rlimit>& rlimits, std::array<sys::UniqueFd, 4> ends) {
    std::lock_guard lock(mutex);
    if (!process || !process->serves(spec)) return false;
    return process->fork_into(agent, cgroups, rlimits, std::move(ends), spec.durable);
  }
};

class NamespacesInstance final : public Instance {
 public:
  ~NamespacesInstance() override {
    if (released_) return;  // every member lets go: see release()
    terminate();
    // The agent was init: its death took the whole pid namespace along.
    if (child_) child_.wait();
    else sys::wait_pidfd(pidfd_.get(), std::chrono::seconds(5));
    cgroup_.reset();
    workspace_.reset();
  }

  int control_fd() const override { return control_.get(); }
  pid_t host_pid() const override { return pid_; }
  std::string workspace_inside() const override { return ns::workspace_inside; }
  std::optional<std::pair<uid_t, gid_t>> file_owner() const override {
    return std::pair{host_uid, host_gid};
  }
  Usage usage() const override { return cgroup_ ? cgroup_->usage() : Usage{}; }
  void terminate() override {
    if (released_) return;
    if (cgroup_) cgroup_->kill_all();
    if (child_) child_.kill();
    else sys::kill_pidfd(pidfd_.get(), pid_);
  }

  std::vector<int> fork_python_kernel() override {
    if (!fork_kernel_) return {};
    auto pipes = KernelPipes::make();
    if (!fork_kernel_(pid_, std::move(pipes.kernel))) return {};
    std::vector<int> out;
    for (auto& fd : pipes.agent) out.push_back(fd.release());
    return out;
  }

  std::string handle() const override {
    if (!durable_) return {};
    nlohmann::json cgroups = nlohmann::json::array();
    if (cgroup_)
      for (const auto& p : cgroup_->paths()) cgroups.push_back(p.string());
    return nlohmann::json{{"backend", "namespaces"}, {"pid", pid_}, {"start_ticks", ticks_},
                          {"group", group_ ? group_->layout().group : std::string()},
                          {"cgroup", cgroup_name_}, {"cgroups", cgroups}}
        .dump();
  }

  void release() override {
    if (released_) return;
    released_ = true;
    (void)child_.release();
    pidfd_.reset();
    if (cgroup_) cgroup_->release();
    if (workspace_) workspace_->release();
  }

  // Asks the backend's template for a kernel in this session (set when it has one).
  std::function<bool(pid_t, std::array<sys::UniqueFd, 4>)> fork_kernel_;
  // Filled in by launch() (or adopt()), in this order; destroyed in reverse by the destructor.
  std::unique_ptr<mount::Workspace> workspace_;
  std::shared_ptr<cgroup::Group> group_;  // the Sandbox's ceiling; outlives cgroup_
  std::unique_ptr<cgroup::Cgroup> cgroup_;
  std::string cgroup_name_;
  pid_t pid_ = -1;
  std::uint64_t ticks_ = 0;
  sys::Child child_;      // launched: killed through its pidfd, so never a recycled pid
  sys::UniqueFd pidfd_;   // adopted: not our child, held through a pidfd
  sys::UniqueFd control_;
  bool durable_ = false;
  std::atomic<bool> released_{false};
};

// A session id as it appears in cgroup names: [A-Za-z0-9_-], at most 64 characters.
std::string cgroup_safe(const std::string& session_id) {
  std::string safe;
  for (char c : session_id.substr(0, 64))
    safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return safe;
}

// The session part of a cgroup name ("<pid>.<n>.<safe id>"), empty if it has none.
std::string session_of(const std::string& cgroup_name) {
  auto a = cgroup_name.find('.');
  auto b = a == std::string::npos ? a : cgroup_name.find('.', a + 1);
  return b == std::string::npos ? std::string() : cgroup_name.substr(b + 1);
}

// The group durable sessions whose dirs are in `sessions_dir` (<state dir>/sessions) share
// across servers: "d<FNV-1a of the dir>", so a later server on the same state dir finds it
// (the pid-named groups of bound_sessions() go with their server).
std::string durable_group_name(const fs::path& sessions_dir) {
  std::error_code ec;
  auto abs = fs::absolute(sessions_dir, ec).lexically_normal().string();
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : abs) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "d%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// A handle's fields (Instance::handle()), or unavailable naming what is missing.
struct Handle {
  pid_t pid = 0;
  std::uint64_t start_ticks = 0;
  std::string group, cgroup;
  std::vector<fs::path> cgroups;
};

Handle parse_handle(std::string_view text) {
  try {
    auto j = nlohmann::json::parse(text);
    Handle h;
    h.pid = j.at("pid").get<pid_t>();
    h.start_ticks = j.at("start_ticks").get<std::uint64_t>();
    h.group = j.at("group").get<std::string>();
    h.cgroup = j.at("cgroup").get<std::string>();
    for (const auto& p : j.value("cgroups", nlohmann::json::array())) h.cgroups.emplace_back(p.get<std::string>());
    return h;
  } catch (const std::exception& e) {
    throw Error(errc::unavailable, std::string("namespaces: not a handle of this backend: ") + e.what());
  }
}

// "<server pid>.<n>.<session id>": unique across servers sharing the host, and recover()
// can tell a dead server's cgroups from a live one's.
std::string cgroup_name(const std::string& session_id) {
  static std::atomic<unsigned> counter{0};
  return std::to_string(::getpid()) + "." + std::to_string(counter++) + "." + cgroup_safe(session_id);
}

errc classify(int err) {
  switch (err) {
    case EPERM: case EACCES: case ENOSYS: case EOPNOTSUPP: case EINVAL: return errc::unavailable;
    default: {
      auto e = from_errno(err);
      return e == errc::resource_exhausted ? e : errc::internal;
    }
  }
}

// One "go" byte to the child. If it already died, its failure report is what matters:
// await_exec() reads it, so EPIPE is not an error here.
void release(int sync_fd) {
  char go = 1;
  if (::send(sync_fd, &go, 1, MSG_NOSIGNAL) != 1 && errno != EPIPE && errno != ECONNRESET)
    throw_syscall("send", errno, "releasing the child");
}

// Waits for the child to exec (EOF on the sync socket) or to report its failing step. A
// child that does neither is named by the last step it recorded.
void await_exec(int sync_fd, const SharedProgress& progress) {
  pollfd p{sync_fd, POLLIN, 0};
  int rc;
  while ((rc = ::poll(&p, 1, 10'000)) < 0 && errno == EINTR) {
  }
  if (rc < 0) throw_syscall("poll", errno, "waiting for the agent to start");
  if (rc == 0)
    throw Error(errc::timeout, "namespaces: the agent did not start within 10 s; the child "
                               "is stuck at setup step " + progress.last_step());
  ChildFailure f{};
  ssize_t n;
  while ((n = ::read(sync_fd, &f, sizeof f)) < 0 && errno == EINTR) {
  }
  // EOF: exec closed the child's end, or the child was killed before it got there.
  if (n == 0 && progress.step() == static_cast<int>(Step::execve)) return;
  if (n != static_cast<ssize_t>(sizeof f))
    throw Error(errc::internal,
                "namespaces: the child died during setup step " + progress.last_step());
  f.step[sizeof f.step - 1] = '\0';
  throw Error(classify(f.err),
              std::string("namespaces: ") + f.step + ": " + std::strerror(f.err));
}

class NamespacesBackend final : public Backend {
 public:
  std::string_view name() const override { return "namespaces"; }

  Support probe() const override {
    std::call_once(probed_, [this] { support_ = run_probe(); });
    return support_;
  }

  Containment containment() const override {
    return {
        {"host files (read-only root of system dirs and an /etc subset)",
         "other sessions' files and processes", "network (loopback only)",
         "memory, processes and CPU (cgroup)",
         "all sessions' memory and processes together (the Sandbox's parent cgroup)",
         "workspace size (tmpfs quota)",
         "privilege (unprivileged uid, no capabilities, no_new_privs)",
         "syscalls off an allowlist (seccomp, stricter than Docker's default)",
         "hostname, IPC objects, cgroup view"},
        {"kernel bugs reachable through allowed syscalls (shared kernel)",
         "CPU cache and timing side channels", "disk I/O bandwidth"},
    };
  }

  std::unique_ptr<Instance> launch(const LaunchSpec& spec) override {
    auto support = probe();
    if (!support.available) throw Error(errc::unavailable, "namespaces: " + support.reason);
    if (spec.workspace.empty() || spec.runtime_dir.empty())
      throw Error(errc::invalid_argument, "namespaces: workspace and runtime_dir are required");

    if (spec.durable && spec.control_socket.empty())
      throw Error(errc::invalid_argument, "namespaces: a durable session needs a control_socket");

    auto inst = std::make_unique<NamespacesInstance>();
    inst->durable_ = spec.durable;
    inst->workspace_ = std::make_unique<mount::Workspace>(spec.workspace, spec.limits.disk_bytes);
    // Durable: the socket a later server connects to, bound here (root's, in the session dir
    // on the host) and listened on by the agent.
    sys::UniqueFd listening;
    if (spec.durable) listening = sys::listen_unix(spec.control_socket);

    SharedProgress progress;
    ChildPlan plan;
    plan.progress = progress.get();
    plan.new_root = new_root_dir;
    const auto staged = mount::staged_runtime(spec.runtime_dir);  // held until the child execs
    plan.mounts = mount::plan(spec, plan.new_root, staged->get());
    const auto limits = rlimits::plan(spec.limits);
    // Durable: no death with the server; the agent is init of its pid namespace, so the host's
    // init (or a subreaper) inherits it when the server goes.
    plan.confine = confinement(limits, /*agent=*/true, spec.durable);
    plan.listen_fd = listening.get();
    plan.agent = std::string(runtime_inside) + "/sandbox-agent";
    plan.argv = agent_argv(plan.agent, agent_control_fd, ns::workspace_inside, runtime_inside, spec,
                           spec.durable ? agent_listen_fd : -1);
    plan.env = agent_environment(ns::workspace_inside);
    plan.argv.push_back("--code-uid");
    plan.argv.push_back(std::to_string(inside_uid));
    // Python kernels forked from the template: the first one's pipes handed to the agent
    // at clone when the session wants one now, later ones when the agent asks.
    std::optional<KernelPipes> kernel;
    const bool templated = template_for(spec);
    if (templated) plan.argv.push_back("--host-kernels");
    if (templated && spec.python_kernel) {
      kernel = KernelPipes::make();
      for (std::size_t i = 0; i < 4; ++i) plan.kernel_fds[i] = kernel->agent[i].get();
      plan.argv.push_back("--kernel-fds");
      plan.argv.push_back(std::to_string(agent_kernel_fd));
    }
    for (auto& a : plan.argv) plan.argv_ptrs.push_back(a.data());
    plan.argv_ptrs.push_back(nullptr);
    for (auto& e : plan.env) plan.env_ptrs.push_back(e.data());
    plan.env_ptrs.push_back(nullptr);

    inst->group_ = spec.durable ? durable_group(durable_group_name(spec.session_dir.parent_path())) : group_;
    inst->cgroup_name_ = cgroup_name(spec.session_id);
    inst->cgroup_ = cgroup::Cgroup::create(inst->group_ ? inst->group_->layout() : host().layout,
                                           inst->cgroup_name_, cgroup::from(spec.limits));

    auto [control_host, control_child] = sys::socket_pair();
    auto [sync_parent, sync_child] = sys::socket_pair();
    plan.control_fd = control_child.get();
    plan.sync_fd = sync_child.get();

    Stack stack;
    if (stack.base == MAP_FAILED) throw_syscall("mmap", errno, "clone stack");
    // No signal may run a server handler in the child before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = ::clone(contain, stack.top(), clone_flags | SIGCHLD, &plan);
    int clone_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0)
      throw Error(classify(clone_errno), std::string("namespaces: clone: ") + std::strerror(clone_errno));
    inst->child_ = sys::Child(pid);
    inst->pid_ = pid;
    inst->ticks_ = sys::start_ticks(pid).value_or(0);
    control_child.reset();
    listening.reset();
    sync_child.reset();
    if (kernel) kernel->agent = {};

    try {
      user::init_ns_from_parent(pid);
    } catch (const Error& e) {
      throw Error(errc::unavailable, "namespaces: uid/gid map: " + e.message());
    }
    release(sync_parent.get());  // the child builds its root meanwhile
    try {
      inst->cgroup_->add(pid);
    } catch (const Error& e) {
      throw Error(e.code_value(), "namespaces: joining the cgroup: " + e.message());
    }
    release(sync_parent.get());
    await_exec(sync_parent.get(), progress);
    // The agent runs in its finished namespaces now, so the kernel can join them.
    if (templated) {
      inst->fork_kernel_ = [slot = template_, spec, cgroups = inst->cgroup_->paths(), rlimits = limits](
                               pid_t agent, std::array<sys::UniqueFd, 4> ends) {
        return slot->fork(spec, agent, cgroups, rlimits, std::move(ends));
      };
      if (kernel) inst->fork_kernel_(pid, std::move(kernel->kernel));
    }

    inst->control_ = std::move(control_host);
    return inst;
  }

  bool durable() const override { return true; }

  std::unique_ptr<Instance> adopt(const LaunchSpec& spec, std::string_view handle) override {
    auto support = probe();
    if (!support.available) throw Error(errc::unavailable, "namespaces: " + support.reason);
    const Handle h = parse_handle(handle);
    const std::string who = "namespaces: the agent of " + spec.session_id;
    auto inst = std::make_unique<NamespacesInstance>();
    inst->durable_ = true;
    try {
      try {
        inst->pidfd_ = sys::open_pidfd(h.pid, h.start_ticks);
      } catch (const Error& e) {
        throw Error(errc::unavailable, who + " is gone: " + e.message());
      }
      inst->pid_ = h.pid;
      inst->ticks_ = h.start_ticks;
      try {
        inst->control_ = sys::connect_unix(spec.control_socket, std::chrono::seconds(2));
      } catch (const Error& e) {
        throw Error(errc::unavailable, who + " does not answer: " + e.message());
      }
      // Ours from here: closing the session unmounts the quota, removes the cgroup.
      inst->workspace_ = std::make_unique<mount::Workspace>(spec.workspace, mount::Workspace::Existing{});
      inst->group_ = durable_group(h.group.empty() ? durable_group_name(spec.session_dir.parent_path()) : h.group);
      inst->cgroup_name_ = h.cgroup;
      inst->cgroup_ = cgroup::Cgroup::open(inst->group_->layout(), h.cgroup);
    } catch (...) {
      inst->release();  // a failed adoption ends nothing: reap_lost() does, if asked
      throw;
    }
    // New kernels come from this server's template, into the agent's namespaces and cgroup.
    if (template_for(spec)) {
      inst->fork_kernel_ = [slot = template_, spec, cgroups = inst->cgroup_->paths(),
                            rlimits = rlimits::plan(spec.limits)](pid_t agent, std::array<sys::UniqueFd, 4> ends) {
        return slot->fork(spec, agent, cgroups, rlimits, std::move(ends));
      };
    }
    return inst;
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
    // Its cgroups, wherever the handle says they are, but only inside our hierarchy.
    std::vector<fs::path> dirs = h.cgroups;
    if (!h.group.empty() && !h.cgroup.empty() && h.cgroup.find('/') == std::string::npos)
      for (const auto& root : host().layout.roots()) dirs.push_back(root / h.group / h.cgroup);
    for (const auto& dir : dirs) {
      const auto d = dir.lexically_normal();
      bool ours = false;
      for (const auto& root : host().layout.roots()) {
        auto rel = d.lexically_relative(root);
        ours = ours || (!rel.empty() && *rel.begin() != ".." && rel != ".");
      }
      if (ours && fs::is_directory(d)) cgroup::remove_stale(d);
    }
    // The workspace (and its quota mount) stays until forget_lost().
  }

  void forget_lost(const LaunchSpec& spec, std::string_view handle) override {
    (void)handle;
    if (!spec.workspace.empty()) mount::remove_stale(spec.workspace);
  }

  void bound_sessions(std::uint64_t memory_bytes, std::uint32_t processes) override {
    if (!probe().available) return;  // launch() refuses anyway
    static std::atomic<unsigned> groups{0};
    cgroup::Limits ceiling;
    if (memory_bytes) ceiling.memory_bytes = memory_bytes;
    if (processes) ceiling.pids = processes;
    {
      std::lock_guard lock(durable_mutex_);
      ceiling_ = ceiling;  // durable sessions' group gets it too (durable_group())
    }
    // "<pid>.g<n>": one per Sandbox, named like sessions so recover() knows its server.
    group_ = cgroup::Group::create(host().layout, std::to_string(::getpid()) + ".g" + std::to_string(groups++),
                                   ceiling);
  }

  void recover(const fs::path& state_dir, const std::set<std::string>& keep) override {
    std::set<std::string> kept;  // as in cgroup names
    for (const auto& id : keep) kept.insert(cgroup_safe(id));
    // Cgroups of servers that are gone ("<pid>.<n>.<sid>" with no such pid), and their
    // groups ("<pid>.g<n>"). Durable sessions are in a group named after their state dir.
    for (auto& root : host().layout.roots()) {
      std::error_code ec;
      for (auto& entry : fs::directory_iterator(root, ec)) {
        auto name = entry.path().filename().string();
        pid_t owner = 0;
        try {
          owner = static_cast<pid_t>(std::stol(name.substr(0, name.find('.'))));
        } catch (...) {
          continue;
        }
        if (kept.count(session_of(name))) continue;
        if (owner > 0 && owner != ::getpid() && ::kill(owner, 0) != 0 && errno == ESRCH)
          cgroup::remove_stale(entry.path());
      }
    }
    if (state_dir.empty()) return;
    // This state dir's durable sessions that the store does not keep.
    const auto group = durable_group_name(state_dir / "sessions");
    for (auto& root : host().layout.roots()) {
      std::error_code ec;
      for (auto& entry : fs::directory_iterator(root / group, ec))
        if (entry.is_directory(ec) && !kept.count(session_of(entry.path().filename().string())))
          cgroup::remove_stale(entry.path());
    }
    // Workspace mounts, but the kept sessions' (<state dir>/sessions/<id>, lib/sandbox.cpp).
    std::vector<fs::path> except;
    for (const auto& id : keep) except.push_back(state_dir / "sessions" / id);
    mount::remove_stale(state_dir, except);
  }

 private:
  // Whether a template serves `spec`: started on first use (it imports while this and later
  // sessions launch) and again if it died, at most once a minute. False when `spec` asks
  // for other modules than the running one, or SANDBOX_PYTHON_TEMPLATE=0.
  bool template_for(const LaunchSpec& spec) {
    if (const char* v = std::getenv("SANDBOX_PYTHON_TEMPLATE"); v && std::string_view(v) == "0") return false;
    std::lock_guard lock(template_->mutex);
    auto& tpl = template_->process;
    if (tpl && tpl->alive()) return tpl->serves(spec);
    if (tpl && std::chrono::steady_clock::now() - tpl->started() < std::chrono::minutes(1)) return false;
    try {
      tpl = std::make_unique<PythonTemplate>(spec);
    } catch (const Error& e) {
      std::fprintf(stderr, "libsandbox: cannot start the python template: %s\n", e.what());
      return false;
    }
    return true;
  }

  static Support run_probe() {
    const auto& h = host();
    if (h.layout.version == 0) return {false, h.layout.reason};
    try {
      (void)seccomp::filter();
    } catch (const Error& e) {
      return {false, e.message()};
    }
    // Can we make the namespaces at all? A child that exits at once.
    Stack stack;
    if (stack.base == MAP_FAILED) return {false, "mmap failed"};
    pid_t pid = ::clone([](void*) -> int { ::_exit(0); }, stack.top(),
                        clone_flags | CLONE_NEWCGROUP | SIGCHLD, nullptr);
    if (pid < 0) return {false, std::string("clone(CLONE_NEWUSER|...): ") + std::strerror(errno)};
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    // And a session cgroup with every limit (on v2 this is where a non-delegated cgroup
    // shows): made and removed at once.
    try {
      cgroup::Cgroup::create(h.layout, std::to_string(::getpid()) + ".probe",
                             cgroup::from(sandbox::Limits{}));
    } catch (const Error& e) {
      return {false, e.message()};
    }
    return {true, h.layout.reason};
  }

  // The durable sessions' group `name`, opened (or made) once per backend and shared.
  std::shared_ptr<cgroup::Group> durable_group(const std::string& name) {
    std::lock_guard lock(durable_mutex_);
    auto& g = durable_groups_[name];
    if (!g) g = cgroup::Group::open_durable(host().layout, name, ceiling_);
    return g;
  }

  mutable std::once_flag probed_;
  std::shared_ptr<cgroup::Group> group_;  // set by bound_sessions(); shared with the instances
  std::mutex durable_mutex_;
  cgroup::Limits ceiling_;  // bound_sessions()'s, for the durable groups
  std::map<std::string, std::shared_ptr<cgroup::Group>> durable_groups_;
  // Shared with the instances, which ask it for kernels later and may outlive us.
  std::shared_ptr<TemplateSlot> template_ = std::make_shared<TemplateSlot>();
  mutable Support support_;
};

}  // namespace

std::unique_ptr<Backend> make_namespaces_backend() { return std::make_unique<NamespacesBackend>(); }

}  // namespace sandbox::isolation
