// The seccomp policy: default allow, deny what Docker's default profile denies an
// unprivileged container and a few more (io_uring, the new mount API, AF_ALG). Denials
// return EPERM; clone3 returns ENOSYS so libc falls back to clone, whose flags we can see.
// Foreign architectures (i386, x32) are killed outright.
//
// The filter is compiled once per process into BPF in memory; the child only loads it.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>
#include <mutex>

#include "isolation/namespaces/namespaces.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

namespace sandbox::isolation::ns::seccomp {
namespace {

// Denied outright, with EPERM.
constexpr const char* denied[] = {
    // other processes' memory and state
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    // mounts, old and new API, and escaping the root
    "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig",
    "move_mount", "open_tree", "fspick", "mount_setattr",
    // namespaces (clone's flags are checked below; clone3 hides them in memory)
    "unshare", "setns",
    // the kernel keyring
    "keyctl", "add_key", "request_key",
    // kernel attack surface
    "bpf", "userfaultfd", "perf_event_open", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "fanotify_init", "open_by_handle_at", "name_to_handle_at",
    "lookup_dcookie", "memfd_secret",
    // the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "nfsservctl", "_sysctl",
    "sysfs", "ustat", "uselib", "iopl", "ioperm", "vm86", "vm86old",
    // clocks
    "clock_settime", "clock_settime64", "settimeofday", "stime", "adjtimex",
    "clock_adjtime", "clock_adjtime64",
    // NUMA placement (Docker requires CAP_SYS_NICE)
    "mbind", "set_mempolicy", "migrate_pages", "move_pages",
    // identity of the (namespaced) host
    "sethostname", "setdomainname",
};

constexpr unsigned long namespace_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                          CLONE_NEWCGROUP;

void check(int rc, const char* what) {
  if (rc < 0) throw Error(errc::internal, std::string("seccomp: ") + what + ": " + std::strerror(-rc));
}

void deny(scmp_filter_ctx ctx, const char* name, std::uint32_t action,
          std::initializer_list<scmp_arg_cmp> args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return;  // not a syscall on this architecture
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? args.begin() : nullptr);
  if (rc < 0) throw Error(errc::internal, std::string("seccomp: rule for ") + name + ": " +
                                              std::strerror(-rc));
}

std::vector<sock_filter> compile() {
  struct Ctx {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    ~Ctx() { seccomp_release(ctx); }
  } c;
  if (!c.ctx) throw Error(errc::internal, "seccomp: seccomp_init failed");
  check(seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");
  // We load it ourselves after no_new_privs; libseccomp must not try to.
  check(seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0), "nnp attribute");

  const auto eperm = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : denied) deny(c.ctx, name, eperm);
  deny(c.ctx, "clone3", SCMP_ACT_ERRNO(ENOSYS));
  // clone with any namespace flag: one rule per flag (rules for a syscall are OR-ed).
  for (unsigned long bit = 1; bit != 0; bit <<= 1)
    if (namespace_flags & bit)
      deny(c.ctx, "clone", eperm, {SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)});
  // Pushing characters into a terminal's input queue; the command is an int, compare the
  // low 32 bits so a garbage upper half cannot dodge the rule.
  deny(c.ctx, "ioctl", eperm, {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI)});
  deny(c.ctx, "ioctl", eperm, {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX)});
  deny(c.ctx, "socket", eperm, {SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_VSOCK)});
  deny(c.ctx, "socket", eperm, {SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_ALG)});
  deny(c.ctx, "socket", eperm, {SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_NETLINK),
                                SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, NETLINK_AUDIT)});
  // personality: see personality_filter().

  // libseccomp 2.5 exports only to an fd; a memfd keeps it in memory.
  sys::UniqueFd fd(::memfd_create("seccomp-bpf", MFD_CLOEXEC));
  if (!fd) throw_syscall("memfd_create", errno, "seccomp");
  check(seccomp_export_bpf(c.ctx, fd.get()), "export");
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) throw Error(errc::internal, "seccomp: bad export");
  std::vector<sock_filter> prog(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(fd.get(), prog.data(), static_cast<std::size_t>(size), 0) != size)
    throw_syscall("pread", errno, "seccomp export");
  return prog;
}

#define SANDBOX_STMT(code, k) sock_filter{static_cast<unsigned short>(code), 0, 0, static_cast<unsigned>(k)}
#define SANDBOX_JUMP(code, k, jt, jf) \
  sock_filter{static_cast<unsigned short>(code), jt, jf, static_cast<unsigned>(k)}

// personality(2) is allowed only for the harmless personas: PER_LINUX (0), PER_LINUX32 (8),
// UNAME26 (0x20000), both (0x20008) and the query (0xffffffff). libseccomp cannot say
// "not one of these" (one comparison per argument per rule), so this is a second, tiny
// filter stacked on the first; the kernel applies the stricter answer.
std::vector<sock_filter> compile_personality() {
  constexpr unsigned allow = SECCOMP_RET_ALLOW;
  constexpr unsigned eperm = SECCOMP_RET_ERRNO | EPERM;
#if defined(__x86_64__)
  constexpr unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr unsigned arch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH"
#endif
  return {
      SANDBOX_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
      SANDBOX_STMT(BPF_RET | BPF_K, allow),  // the first filter kills foreign arches
      SANDBOX_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 1, 0),
      SANDBOX_STMT(BPF_RET | BPF_K, allow),
      // The kernel takes an unsigned int: the low 32 bits of the argument.
      SANDBOX_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0, 5, 0),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x8, 4, 0),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x20000, 3, 0),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x20008, 2, 0),
      SANDBOX_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 1, 0),
      SANDBOX_STMT(BPF_RET | BPF_K, eperm),
      SANDBOX_STMT(BPF_RET | BPF_K, allow),
  };
}

}  // namespace

const std::vector<sock_filter>& filter() {
  static const std::vector<sock_filter> prog = compile();
  return prog;
}

const std::vector<sock_filter>& personality_filter() {
  static const std::vector<sock_filter> prog = compile_personality();
  return prog;
}

// Child side: no_new_privs is already set, so an unprivileged process may load it.
bool load(const std::vector<sock_filter>& prog) {
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), const_cast<sock_filter*>(prog.data())};
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) == 0;
}

}  // namespace sandbox::isolation::ns::seccomp
