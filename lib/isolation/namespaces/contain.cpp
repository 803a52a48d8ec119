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
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "isolation/namespaces/namespaces.hpp"
#include "sys/spawn.hpp"

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

// stdio on /dev/null, the control socket at fd 3, a template kernel's pipes at 4-7 when
// there is one (else /dev/null there when a listening socket follows), a durable agent's
// listening socket at 8, the sync socket after them (close-on-exec, so exec success shows as
// EOF in the parent), everything else closed.
bool keep_only_fds(ChildPlan& plan) {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return false;
  int map[agent_listen_fd + 1] = {null, null, null, plan.control_fd};
  static_assert(agent_control_fd == 3 && agent_kernel_fd == 4 && agent_listen_fd == agent_kernel_fd + 4);
  const bool with_kernel = plan.kernel_fds[0] >= 0;
  for (int i = 0; i < 4; ++i) map[agent_kernel_fd + i] = with_kernel ? plan.kernel_fds[i] : null;
  map[agent_listen_fd] = plan.listen_fd;
  const int n = plan.listen_fd >= 0 ? agent_listen_fd + 1 : with_kernel ? agent_kernel_fd + 4 : agent_kernel_fd;
  if (!sys::place_fds(map, n, &plan.sync_fd)) return false;
  plan.control_fd = agent_control_fd;
  return true;
}

int contain(void* arg) {
  ChildPlan& plan = *static_cast<ChildPlan*>(arg);
  const char* target = nullptr;
  sys::ConfineStep failed{};

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
  // The agent's ids first (user.cpp): files we create in the new root must belong to them.
  at(plan, Step::setuid);
  if (!sys::become(plan.confine, &failed)) fail(plan, sys::confine_step_name(failed));
  at(plan, Step::mount);
  if (!mount::init_ns(plan, &target)) fail(plan, target);
  at(plan, Step::loopback);
  if (!net::init_ns()) fail(plan);
  at(plan, Step::set_hostname);
  if (!ipc_uts::init_ns()) fail(plan);
  at(plan, Step::close_fds);
  if (!keep_only_fds(plan)) fail(plan);

  at(plan, Step::await_cgroup);
  if (::read(plan.sync_fd, &go, 1) != 1) ::_exit(127);
  at(plan, Step::cgroup_ns);
  if (!cgroup::init_ns()) fail(plan);
  // The parent holds the sync socket open until we exec: a hang-up means it is gone.
  plan.confine.parent_fd = plan.sync_fd;
  plan.confine.parent_gone = POLLRDHUP;
  at(plan, Step::confine);
  if (!sys::confine(plan.confine, &failed)) fail(plan, sys::confine_step_name(failed));
  at(plan, Step::execve);
  ::execve(plan.agent.c_str(), plan.argv_ptrs.data(), plan.env_ptrs.data());
  fail(plan, plan.agent.c_str());
}

}  // namespace sandbox::isolation::ns
