// The child's whole setup, in order. It runs between clone() and execve(): no allocation,
// no exceptions; every step is a syscall wrapper that returns false with errno set, and the
// first failure is reported to the parent (step name + errno) over the sync socket.
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

[[noreturn]] void fail(const ChildPlan& plan, const char* step, const char* detail) {
  ChildFailure f{};
  f.err = errno;
  std::size_t n = 0;
  for (const char* s : {step, detail ? ": " : "", detail ? detail : ""})
    for (; *s && n + 1 < sizeof f.step; ++s) f.step[n++] = *s;
  (void)!::write(plan.sync_fd, &f, sizeof f);
  ::_exit(127);
}

}  // namespace

// stdio on /dev/null, the control socket at fd 3, the sync socket kept (close-on-exec, so
// exec success shows as EOF in the parent), everything else closed.
bool keep_only_fds(ChildPlan& plan) {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return false;
  int control = ::fcntl(plan.control_fd, F_DUPFD_CLOEXEC, 10);
  int sync = ::fcntl(plan.sync_fd, F_DUPFD_CLOEXEC, 10);
  if (control < 0 || sync < 0) return false;
  for (int fd = 0; fd <= 2; ++fd)
    if (::dup2(null, fd) < 0) return false;
  if (::dup2(control, agent_control_fd) < 0) return false;  // dup2 clears close-on-exec
  int sync_at = agent_control_fd + 1;
  if (::dup3(sync, sync_at, O_CLOEXEC) < 0) return false;
  plan.sync_fd = sync_at;
  plan.control_fd = agent_control_fd;
  return ::syscall(SYS_close_range, sync_at + 1, ~0u, 0) == 0;
}

int contain(void* arg) {
  ChildPlan& plan = *static_cast<ChildPlan*>(arg);
  const char* target = nullptr;

  if (!pid::reset_signals()) fail(plan, "signals", nullptr);
  // Two releases from the parent: uid/gid maps written, then cgroup joined. Joining a
  // cgroup and detaching the old root both wait out an RCU grace period (milliseconds),
  // so the parent joins us to the cgroup while we build the root. A read of EOF means the
  // parent is gone.
  char go = 0;
  if (::read(plan.sync_fd, &go, 1) != 1) ::_exit(127);

  if (!mount::open_sources(plan, &target)) fail(plan, "open bind source", target);
  // The inside user first: files we create in the new root must belong to a mapped id.
  // Our host ids (root) are unmapped here, so the switch keeps our namespace capabilities.
  if (!user::init_ns()) fail(plan, "setuid", nullptr);
  if (!mount::init_ns(plan, &target)) fail(plan, "mount", target);
  if (!net::init_ns()) fail(plan, "loopback up", nullptr);
  if (!ipc_uts::init_ns()) fail(plan, "hostname", nullptr);
  if (!keep_only_fds(plan)) fail(plan, "close fds", nullptr);
  if (!rlimits::apply(plan.rlimits)) fail(plan, "rlimits", nullptr);

  if (::read(plan.sync_fd, &go, 1) != 1) ::_exit(127);
  if (!cgroup::init_ns()) fail(plan, "cgroup namespace", nullptr);
  if (!pid::init_ns(plan.sync_fd)) fail(plan, "parent-death signal, setsid", nullptr);
  if (!capabilities::drop(plan.cap_last)) fail(plan, "drop capabilities", nullptr);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(plan, "no_new_privs", nullptr);
  if (::chdir(workspace_inside) != 0) fail(plan, "chdir", workspace_inside);
  // Seccomp last: nothing after it but execve.
  if (!seccomp::load(*plan.personality)) fail(plan, "seccomp (personality)", nullptr);
  if (!seccomp::load(*plan.seccomp)) fail(plan, "seccomp", nullptr);
  ::execve(plan.agent.c_str(), plan.argv_ptrs.data(), plan.env_ptrs.data());
  fail(plan, "execve", plan.agent.c_str());
}

}  // namespace sandbox::isolation::ns
