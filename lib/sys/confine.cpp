#include "sys/confine.hpp"

#include <linux/capability.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>

namespace sandbox::sys {
namespace {

constexpr const char* step_names[] = {
    "chdir", "rlimits", "setgroups", "setresgid", "setresuid", "PR_SET_DUMPABLE", "capabilities",
    "parent-death signal", "setsid", "no_new_privs", "seccomp",
};
static_assert(std::size(step_names) == static_cast<std::size_t>(ConfineStep::seccomp) + 1);

bool fail(ConfineStep* failed, ConfineStep step) {
  if (failed) *failed = step;
  return false;
}

// Effective := permitted: after a switch away from root with PR_SET_KEEPCAPS the effective
// set is empty, and cutting the bounding set needs CAP_SETPCAP effective.
bool raise_effective() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  for (auto& d : data) d.effective = d.permitted;
  return ::syscall(SYS_capset, &header, data) == 0;
}

}  // namespace

const char* confine_step_name(ConfineStep step) {
  const auto i = static_cast<std::size_t>(step);
  return i < std::size(step_names) ? step_names[i] : "?";
}

bool drop_bounding(int cap_last, std::uint64_t keep) {
  for (int cap = 0; cap <= cap_last; ++cap)
    if (!(keep >> cap & 1) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
  return true;
}

bool set_caps(std::uint64_t keep) {
  // EINVAL: no ambient set here (gVisor's older kernels), so none to clear.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return false;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    const auto bits = static_cast<__u32>(keep >> (32 * i));
    data[i] = {bits, bits, bits};  // effective, permitted, inheritable
  }
  if (::syscall(SYS_capset, &header, data) != 0) return false;
  for (int cap = 0; cap < 64; ++cap)
    if ((keep >> cap & 1) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) return false;
  return true;
}

int last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  in >> last;
  return last;
}

bool become(const Confinement& c, ConfineStep* failed) {
  if (c.set_groups && ::syscall(SYS_setgroups, c.ngroups, c.groups) != 0) return fail(failed, ConfineStep::groups);
  if (c.gid != Confinement::keep_gid && ::syscall(SYS_setresgid, c.gid, c.gid, c.gid) != 0)
    return fail(failed, ConfineStep::gid);
  if (c.uid != Confinement::keep_uid) {
    if (c.keep_caps_over_uid && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return fail(failed, ConfineStep::uid);
    if (::syscall(SYS_setresuid, c.uid, c.uid, c.uid) != 0) return fail(failed, ConfineStep::uid);
  }
  if (c.dumpable && ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return fail(failed, ConfineStep::dumpable);
  return true;
}

bool confine(const Confinement& c, ConfineStep* failed) {
  if (c.cwd && c.cwd_before_ids && ::chdir(c.cwd) != 0) return fail(failed, ConfineStep::chdir);
  for (int i = 0; i < c.nrlimits; ++i) {
    rlimit r{static_cast<rlim_t>(c.rlimits[i].value), static_cast<rlim_t>(c.rlimits[i].value)};
    if (::setrlimit(static_cast<__rlimit_resource>(c.rlimits[i].resource), &r) != 0)
      return fail(failed, ConfineStep::rlimits);
  }
  if (!become(c, failed)) return false;
  if (c.cwd && !c.cwd_before_ids && ::chdir(c.cwd) != 0) return fail(failed, ConfineStep::chdir);
  if (c.caps == Confinement::Caps::set) {
    if ((c.cap_last >= 0 && (!raise_effective() || !drop_bounding(c.cap_last, c.keep_caps))) || !set_caps(c.keep_caps))
      return fail(failed, ConfineStep::capabilities);
  }
  if (c.pdeathsig) {
    if (::prctl(PR_SET_PDEATHSIG, c.pdeathsig, 0, 0, 0) != 0) return fail(failed, ConfineStep::pdeathsig);
    // The parent may have gone before the signal was armed.
    bool gone = c.parent > 0 && ::getppid() != c.parent;
    if (c.parent_fd >= 0) {
      pollfd p{c.parent_fd, c.parent_gone, 0};
      gone = gone || (::poll(&p, 1, 0) > 0 && (p.revents & (c.parent_gone | POLLHUP)));
    }
    if (gone) {
      errno = ESRCH;
      return fail(failed, ConfineStep::pdeathsig);
    }
  }
  if (c.setsid && ::setsid() < 0) return fail(failed, ConfineStep::setsid);
  if (c.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(failed, ConfineStep::no_new_privs);
  for (int i = 0; i < 2; ++i) {
    if (!c.filters[i]) continue;
    sock_fprog prog{static_cast<unsigned short>(c.filter_lens[i]), const_cast<sock_filter*>(c.filters[i])};
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return fail(failed, ConfineStep::seccomp);
  }
  return true;
}

}  // namespace sandbox::sys
