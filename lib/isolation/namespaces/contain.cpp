// The child's whole setup, in order. It runs between clone() and execve(): no allocation,
// no exceptions; every step is a syscall wrapper that returns false with errno set, and the
// first failure is reported to the parent (step name + errno) over the sync socket.
// Before each step the child records it in the shared Progress page, so a child that hangs
// is named too. glibc's thread bookkeeping is the server's, not ours (clone() copied its
// thread list but none of its threads): no glibc call that coordinates threads (set*id,
// malloc, locks) may run here; raw syscalls do.
//
// clone() gave us new user, pid, mount, net, ipc and uts namespaces; the parent maps our
// ids and puts us in the session's cgroup, releasing us after each (see below).
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns {
namespace {

// Records the step we are about to take (the parent names it if we hang there).
void at(const ChildPlan& plan, Step step) {
  plan.progress->step.store(static_cast<int>(step), std::memory_order_release);
}

// Reports the current step (and `detail`, if any) with errno to the parent, and exits.
[[noreturn]] void fail(const ChildPlan& plan, const char* detail = nullptr) {
  ChildFailure f{};
  f.err = errno;
  std::size_t n = 0;
  const char* step = step_name(plan.progress->step.load(std::memory_order_relaxed));
  for (const char* s : {step, detail ? ": " : "", detail ? detail : ""})
    for (; *s && n + 1 < sizeof f.step; ++s) f.step[n++] = *s;
  (void)!::write(plan.sync_fd, &f, sizeof f);
  ::_exit(127);
}

}  // namespace

// stdio on /dev/null, the control socket at fd 3, the sync socket kept (close-on-exec, so
// exec success shows as EOF in the parent), a template kernel's pipes at 5-8 when there is
// one, everything else closed.
bool keep_only_fds(ChildPlan& plan) {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return false;
  // Everything lifted above 10 first, so that placing one cannot clobber another.
  int control = ::fcntl(plan.control_fd, F_DUPFD_CLOEXEC, 10);
  int sync = ::fcntl(plan.sync_fd, F_DUPFD_CLOEXEC, 10);
  if (control < 0 || sync < 0) return false;
  int kernel[4];
  const bool with_kernel = plan.kernel_fds[0] >= 0;
  for (int i = 0; with_kernel && i < 4; ++i)
    if ((kernel[i] = ::fcntl(plan.kernel_fds[i], F_DUPFD_CLOEXEC, 10)) < 0) return false;
  for (int fd = 0; fd <= 2; ++fd)
    if (::dup2(null, fd) < 0) return false;
  if (::dup2(control, agent_control_fd) < 0) return false;  // dup2 clears close-on-exec
  int sync_at = agent_control_fd + 1;
  if (::dup3(sync, sync_at, O_CLOEXEC) < 0) return false;
  plan.sync_fd = sync_at;
  plan.control_fd = agent_control_fd;
  int last = sync_at;
  for (int i = 0; with_kernel && i < 4; ++i) {
    if (::dup2(kernel[i], agent_kernel_fd + i) < 0) return false;
    last = agent_kernel_fd + i;
  }
  return ::syscall(SYS_close_range, last + 1, ~0u, 0) == 0;
}

int contain(void* arg) {
  ChildPlan& plan = *static_cast<ChildPlan*>(arg);
  const char* target = nullptr;

  at(plan, Step::signals);
  if (!pid::reset_signals()) fail(plan);
  // Two releases from the parent: uid/gid maps written, then cgroup joined. Joining a
  // cgroup and detaching the old root both wait out an RCU grace period (milliseconds),
  // so the parent joins us to the cgroup while we build the root. A read of EOF means the
  // parent is gone.
  char go = 0;
  at(plan, Step::await_id_maps);
  if (::read(plan.sync_fd, &go, 1) != 1) ::_exit(127);

  at(plan, Step::open_sources);
  if (!mount::open_sources(plan, &target)) fail(plan, target);
  // The inside user first: files we create in the new root must belong to a mapped id.
  // Our host ids (root) are unmapped here, so the switch keeps our namespace capabilities.
  at(plan, Step::setuid);
  if (!user::init_ns()) fail(plan);
  at(plan, Step::mount);
  if (!mount::init_ns(plan, &target)) fail(plan, target);
  at(plan, Step::loopback);
  if (!net::init_ns()) fail(plan);
  at(plan, Step::set_hostname);
  if (!ipc_uts::init_ns()) fail(plan);
  at(plan, Step::close_fds);
  if (!keep_only_fds(plan)) fail(plan);
  at(plan, Step::rlimits);
  if (!rlimits::apply(plan.rlimits)) fail(plan);

  at(plan, Step::await_cgroup);
  if (::read(plan.sync_fd, &go, 1) != 1) ::_exit(127);
  at(plan, Step::cgroup_ns);
  if (!cgroup::init_ns()) fail(plan);
  at(plan, Step::pdeathsig_setsid);
  if (!pid::init_ns(plan.sync_fd)) fail(plan);
  // The workspace is the code's (mode 0700): entered while capabilities allow it.
  at(plan, Step::chdir);
  if (::chdir(workspace_inside) != 0) fail(plan, workspace_inside);
  // All but CAP_SETUID, which the agent execs with (ambient) and drops once it has set its
  // effective uid to the code's.
  at(plan, Step::drop_caps);
  if (!capabilities::drop_bounding(plan.cap_last, agent_caps) || !capabilities::set(agent_caps)) fail(plan);
  at(plan, Step::no_new_privs);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(plan);
  // Seccomp last: nothing after it but execve.
  at(plan, Step::seccomp_personality);
  if (!seccomp::load(*plan.personality)) fail(plan);
  at(plan, Step::seccomp);
  if (!seccomp::load(*plan.seccomp)) fail(plan);
  at(plan, Step::execve);
  ::execve(plan.agent.c_str(), plan.argv_ptrs.data(), plan.env_ptrs.data());
  fail(plan, plan.agent.c_str());
}

}  // namespace sandbox::isolation::ns
