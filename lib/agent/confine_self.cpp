#include "agent/confine_self.hpp"

#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/options.hpp"

namespace sandbox::agent {

// Session code must not reach the agent: not its memory (/proc/<agent>/mem,
// process_vm_writev, ptrace), its fds or its signals. The kernel allows those to a process
// whose uid matches the target's real *and* saved uid (ptrace) or its real or saved uid
// (signals). So the agent keeps its own real and saved uid and takes the code's as its
// effective uid: it can still signal code, read its /proc and enter the workspace, and
// every child drops to the code's uid before exec with no privilege (spawn()); code, whose
// ids are all the code's, matches neither of the agent's. The backend starts the agent
// with CAP_SETUID and CAP_SETPCAP (ambient) for this switch; every capability, bounding
// set included, goes right after it.
// Non-dumpable on top, so /proc/<agent> belongs to root (not to the effective uid).
//
// --keep-uid (runsc): gVisor (release 20221219) lets a task open another's /proc/<pid>/fd/N
// by the file's ownership, and the agent's pipes would belong to its effective uid, the
// code's. There the agent keeps all three of its own uids, with CAP_SETUID (a child's uid)
// and CAP_KILL (signals to code) effective; both reach only this sandbox's tasks.
void confine_self(std::optional<uid_t> code_uid, bool keep_uid, bool durable) {
  constexpr std::uint32_t kept_caps = 1u << CAP_SETUID | 1u << CAP_KILL;
  const pid_t parent = ::getppid();
  if (code_uid && keep_uid && ::getuid() == *code_uid) usage("--code-uid must differ from the agent's uid");
  if (code_uid && !keep_uid) {
    uid_t r = 0, e = 0, s = 0;
    ::getresuid(&r, &e, &s);
    if (r == *code_uid) usage("--code-uid must differ from the agent's uid");
    if (::setresuid(r, *code_uid, r) != 0) {
      std::fprintf(stderr, "sandbox-agent: setresuid(%u, %u, %u): %s\n", r, *code_uid, r, std::strerror(errno));
      std::exit(3);
    }
    ::getresuid(&r, &e, &s);
    if (e != *code_uid || r == *code_uid || s == *code_uid) {
      std::fprintf(stderr, "sandbox-agent: uids are %u/%u/%u after the switch\n", r, e, s);
      std::exit(3);
    }
  }
  // Capabilities are the backend's to hand out: without --code-uid (a test, or rlimit
  // without root) they are left as they are.
  if (code_uid) {
    // The bounding set too (code inherits it): that takes the CAP_SETPCAP we came with.
    for (int cap = 0; cap < 64; ++cap) {
      if (keep_uid && (kept_caps >> cap & 1)) continue;
      if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
        std::fprintf(stderr, "sandbox-agent: dropping capability %d from the bounding set: %s\n", cap, std::strerror(errno));
        std::exit(3);
      }
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
    // Kept ones are effective and permitted only: not inheritable or ambient, so no exec
    // (every child's) carries them on.
    if (keep_uid) caps[0] = {kept_caps, kept_caps, 0};
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);  // EINVAL before Linux 4.3
    if (::syscall(SYS_capset, &header, caps) != 0) {
      std::fprintf(stderr, "sandbox-agent: dropping capabilities: %s\n", std::strerror(errno));
      std::exit(3);
    }
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    std::fprintf(stderr, "sandbox-agent: PR_SET_DUMPABLE: %s\n", std::strerror(errno));
    std::exit(3);
  }
  // A durable agent outlives its server (a later one adopts it): no death signal for it.
  if (durable) return;
  // The uid switch above cleared the parent-death signal the backend armed: arm it again,
  // then make sure the server did not die in between (pid 1 of a namespace sees 0 both times).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent) {
    std::fprintf(stderr, "sandbox-agent: the server is gone, or PR_SET_PDEATHSIG failed\n");
    std::exit(3);
  }
}

}  // namespace sandbox::agent
