// The seccomp policy: an allowlist. A syscall runs only if it is named below (some only
// with the arguments shown); every other number, including syscalls newer than this list,
// gets EPERM. clone3 gets ENOSYS instead, so that libc falls back to clone, whose flags a
// filter can see. Foreign architectures (i386 via int 0x80, x32) are killed outright.
// The list is a subset of Docker's default profile for an unprivileged container, with
// narrower arguments in places; docs/isolation.md says where and why it differs.
//
// Two filters are stacked (the kernel applies the stricter answer): libseccomp's, and a
// small hand-written one for the argument checks libseccomp cannot express ("none of
// these values": personality's persona and ioctl's command). Both are compiled once per
// process into BPF in memory, before any clone; the child only loads them.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "isolation/namespaces/namespaces.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

namespace sandbox::isolation::ns::seccomp {
namespace {

// Allowed whatever the arguments. Names this libseccomp does not know are skipped (and so
// refused); the numbers are the native architecture's.
constexpr const char* allowed[] = {
    // processes and threads: the agent starts kernels and commands; Python, Node and
    // shells fork, exec, spawn threads and wait (clone: see the flag check below)
    "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid",
    "set_tid_address", "set_robust_list", "rseq", "arch_prctl", "prctl", "gettid",
    "getpid", "getppid", "sched_yield", "restart_syscall", "membarrier",
    // futexes: every lock and condition variable of glibc, CPython and V8
    "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
    // signals and timers: handlers, masks, signalfd in the agent, timeouts, alarm()
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "pause",
    "kill", "tkill", "tgkill", "signalfd", "signalfd4", "pidfd_open", "pidfd_send_signal",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete",
    // memory: the allocators, V8's heap and JIT (pkeys), numpy's buffers, mmap
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mincore", "mlock",
    "mlock2", "munlock", "mlockall", "munlockall", "memfd_create", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "map_shadow_stack",
    // file descriptors and I/O
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2",
    "pwritev", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
    "lseek", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "fsync", "fdatasync",
    "sync", "syncfs", "sync_file_range", "fallocate", "ftruncate", "truncate", "fadvise64",
    "readahead", "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
    // ioctl: terminals, FIONREAD, FICLONE... (its command is checked in the second filter)
    "ioctl",
    // the file tree (within the mount namespace's read-only root, /tmp and /workspace)
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
    "faccessat", "faccessat2", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link", "linkat",
    "symlink", "symlinkat", "unlink", "unlinkat", "readlink", "readlinkat", "chmod",
    "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask",
    "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat",
    // extended attributes: cp -a, ls and os.*xattr (not the *xattrat forms of Linux 6.13)
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    // file watching: Node's fs.watch, Python's watchers
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    // waiting for events: the agent's and libuv's epoll, asyncio, select()
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create",
    "timerfd_settime", "timerfd_gettime",
    // clocks, read only
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "times",
    // identity: without capabilities a process can only move among its own ids
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid", "setgroups", "capget", "capset", "getpgid", "getpgrp", "setpgid", "getsid",
    "setsid",
    // scheduling and resources: os.sched_*, nice, ulimit, getrusage, os.cpu_count
    "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getrlimit", "setrlimit",
    "getrusage", "sysinfo", "uname", "getcpu", "getrandom",
    // sockets, once made (socket and socketpair: see the family checks below)
    "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
    "recvmmsg", "shutdown",
    // System V IPC, private to the session's IPC namespace
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    // confining oneself further
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // personality: the persona is checked in the second filter
    "personality",
};

// clone flags that make namespaces (Docker's mask). clone() cannot ask for a time
// namespace: CLONE_NEWTIME shares its bit with the exit signal.
constexpr unsigned long namespace_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                          CLONE_NEWCGROUP;

// The kernel reads int arguments from the low 32 bits only: compare those, so that
// garbage in the upper half can neither dodge nor fake a match.
constexpr scmp_datum_t low32 = 0xffffffffu;

// socket(): the families a session uses in a network namespace that holds only lo.
// Netlink is for NETLINK_ROUTE only (getifaddrs, if_nameindex); every other family
// (AF_PACKET, AF_VSOCK, AF_ALG, AF_TIPC, AF_RDS, AF_CAN, ...) is refused.
constexpr int socket_families[] = {AF_UNIX, AF_INET, AF_INET6};

// personality(2): the harmless personas, as in Docker's profile: PER_LINUX, PER_LINUX32,
// UNAME26, both, and the query.
constexpr unsigned harmless_personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

// ioctl(2) commands refused: pushing characters into a terminal's input queue.
constexpr unsigned refused_ioctls[] = {TIOCSTI, TIOCLINUX};

void check(int rc, const char* what) {
  if (rc < 0) throw Error(errc::internal, std::string("seccomp: ") + what + ": " + std::strerror(-rc));
}

void rule(scmp_filter_ctx ctx, const char* name, std::uint32_t action,
          std::initializer_list<scmp_arg_cmp> args = {}) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return;  // unknown here: stays refused
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? args.begin() : nullptr);
  if (rc < 0) throw Error(errc::internal, std::string("seccomp: rule for ") + name + ": " +
                                              std::strerror(-rc));
}

std::vector<sock_filter> compile() {
  struct Ctx {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    ~Ctx() { seccomp_release(ctx); }
  } c;
  if (!c.ctx) throw Error(errc::internal, "seccomp: seccomp_init failed");
  check(seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");
  // We load it ourselves after no_new_privs; libseccomp must not try to.
  check(seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0), "nnp attribute");
  // A binary search over ~270 syscalls rather than a linear scan (the kernel's cache
  // skips the filter altogether for the syscalls allowed whatever their arguments).
  // Speed only: a libseccomp without it (before 2.5) still builds the same policy.
  (void)seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

  for (const char* name : allowed) rule(c.ctx, name, SCMP_ACT_ALLOW);
  // By number: were it refused with EPERM for want of a name, glibc would not fall back
  // and no thread could start.
  check(seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(ENOSYS), __NR_clone3, 0), "rule for clone3");
  rule(c.ctx, "clone", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags, 0)});
  for (int family : socket_families)
    rule(c.ctx, "socket", SCMP_ACT_ALLOW,
         {SCMP_A0(SCMP_CMP_MASKED_EQ, low32, static_cast<scmp_datum_t>(family))});
  rule(c.ctx, "socket", SCMP_ACT_ALLOW,
       {SCMP_A0(SCMP_CMP_MASKED_EQ, low32, AF_NETLINK), SCMP_A2(SCMP_CMP_MASKED_EQ, low32, NETLINK_ROUTE)});
  // socketpair: Unix sockets (Python's socket.socketpair, multiprocessing).
  rule(c.ctx, "socketpair", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_MASKED_EQ, low32, AF_UNIX)});
  // prlimit64: one's own limits (glibc's setrlimit passes pid 0), or only reading
  // another's: a process of the same uid must not shrink the agent's.
  rule(c.ctx, "prlimit64", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_MASKED_EQ, low32, 0)});
  rule(c.ctx, "prlimit64", SCMP_ACT_ALLOW, {SCMP_A2(SCMP_CMP_EQ, 0)});

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

sock_filter stmt(unsigned short code, unsigned k) { return sock_filter{code, 0, 0, k}; }
sock_filter jeq(unsigned k, unsigned char jt, unsigned char jf) {
  return sock_filter{BPF_JMP | BPF_JEQ | BPF_K, jt, jf, k};
}

// Appends: load the low 32 bits of the argument at `offset`; `on_match` if it equals one
// of `values`, else `otherwise`. Takes values.size() + 3 instructions.
template <std::size_t N>
void match(std::vector<sock_filter>& prog, std::size_t offset, const unsigned (&values)[N],
           unsigned on_match, unsigned otherwise) {
  static_assert(N < 250, "BPF jumps are 8 bits");
  prog.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<unsigned>(offset)));
  for (std::size_t i = 0; i < N; ++i) prog.push_back(jeq(values[i], static_cast<unsigned char>(N - i), 0));
  prog.push_back(stmt(BPF_RET | BPF_K, otherwise));
  prog.push_back(stmt(BPF_RET | BPF_K, on_match));
}

// The second filter: personality only with a harmless persona, ioctl never with a refused
// command; everything else is left to the first filter.
std::vector<sock_filter> compile_arguments() {
  constexpr unsigned allow = SECCOMP_RET_ALLOW;
  constexpr unsigned eperm = SECCOMP_RET_ERRNO | EPERM;
#if defined(__x86_64__)
  constexpr unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr unsigned arch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH"
#endif
  // seccomp_data.args are 64-bit; on these little-endian machines the low half comes first.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  constexpr unsigned char persona_block = std::size(harmless_personas) + 3;
  constexpr unsigned char ioctl_block = std::size(refused_ioctls) + 3;
  std::vector<sock_filter> prog = {
      stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      jeq(arch, 1, 0),
      stmt(BPF_RET | BPF_K, allow),  // the first filter kills foreign arches
      stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      jeq(__NR_personality, 0, persona_block),
  };
  match(prog, offsetof(seccomp_data, args[0]), harmless_personas, allow, eperm);
  prog.push_back(jeq(__NR_ioctl, 0, ioctl_block));  // the accumulator still holds nr
  match(prog, offsetof(seccomp_data, args[1]), refused_ioctls, eperm, allow);
  prog.push_back(stmt(BPF_RET | BPF_K, allow));
  return prog;
}

}  // namespace

const std::vector<sock_filter>& filter() {
  static const std::vector<sock_filter> prog = compile();
  return prog;
}

// Named for its first use; it holds every argument check libseccomp cannot express.
const std::vector<sock_filter>& personality_filter() {
  static const std::vector<sock_filter> prog = compile_arguments();
  return prog;
}

}  // namespace sandbox::isolation::ns::seccomp
