// Kernel surface: each case calls the syscall family through libc's syscall() from Python
// (ctypes) and must get a refusal: EPERM or ENOSYS from the seccomp filter (EACCES where the
// kernel itself refuses first). Under runsc no call reaches the host kernel at all: gVisor's
// sentry answers each one itself, so there the outcome is recorded as "emulated" whatever
// the answer, and only the host checks apply. Calls that would change the calling process (unshare,
// personality, ptrace, clone) run in a forked child, so a backend that lets them through
// does not break its own session. The numbers are x86_64's.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

const char* kHarness = R"(
results = {}
def call(name, fn):
    try:
        results[name] = fn()
    except Exception as e:
        results[name] = ["exception", repr(e)[:120]]
def in_child(name, fn):
    r, w = _os.pipe()
    pid = _os.fork()
    if pid == 0:
        try:
            res = fn()
        except BaseException as e:
            res = ["exception", repr(e)[:120]]
        _os.write(w, _json.dumps(res).encode())
        _os._exit(0)
    _os.close(w)
    data = b""
    while True:
        chunk = _os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    _os.close(r)
    _, status = _os.waitpid(pid, 0)
    if _os.WIFSIGNALED(status):
        results[name] = ["killed", _os.WTERMSIG(status)]
    else:
        results[name] = _json.loads(data) if data else ["no answer", status]
def buf(n):
    return _c.create_string_buffer(n)
)";

// Every call refused with an allowed errno (or the caller killed by the filter).
std::pair<bool, std::string> judge(const Json& j, std::set<int> allowed = {EPERM, ENOSYS, EACCES}) {
  if (!j.is_object() || !j.contains("results")) return {false, "no report"};
  bool ok = true;
  std::string detail;
  for (auto& [name, v] : j["results"].items()) {
    std::string verdict;
    if (v.is_array() && v.size() == 2 && v[0] == "killed") {
      verdict = fmt::format("killed by signal {}", v[1].get<int>());
    } else if (v.is_array() && v.size() == 2 && v[0] == "exception" &&
               v[1].get<std::string>().find("Error(") != std::string::npos) {
      verdict = "could not even be attempted: " + v[1].get<std::string>();
    } else if (v.is_array() && v.size() == 2 && v[0].is_number() && v[0].get<long>() == -1 &&
               allowed.count(v[1].get<int>())) {
      verdict = fmt::format("refused ({})", std::strerror(v[1].get<int>()));
    } else {
      ok = false;
      verdict = "ALLOWED " + v.dump();
      if (v.is_array() && v.size() == 2 && v[0].is_number() && v[0].get<long>() == -1)
        verdict = fmt::format("reached the kernel ({})", std::strerror(v[1].get<int>()));
    }
    detail += (detail.empty() ? "" : "; ") + name + ": " + verdict;
  }
  return {ok, detail};
}

}  // namespace

#define KERNEL_CASE(Name, What, ...)                                                          \
  TEST_P(Kernel, Name) {                                                                      \
    auto [ok, detail] = judge(py_json(std::string(kHarness) + __VA_ARGS__ + "\nout(results=results)\n")); \
    kernel_verdict(What, ok, detail);                                                         \
  }

KERNEL_CASE(Ptrace, "ptrace (attach to the agent, traceme)", R"(
ppid = _os.getppid()
def attach():
    r = sc(101, 16, ppid, 0, 0)          # PTRACE_ATTACH
    if r[0] == 0:
        sc(101, 17, ppid, 0, 0)          # PTRACE_DETACH at once
    return r
in_child("attach parent", attach)
in_child("traceme", lambda: sc(101, 0, 0, 0, 0))
)")

KERNEL_CASE(ProcessVmReadv, "process_vm_readv/writev on the agent", R"(
ppid = _os.getppid()
addr = 0x400000
try:
    addr = int(open("/proc/%d/maps" % ppid).readline().split("-")[0], 16)
except OSError:
    pass
local = buf(64)
liov = (_c.c_void_p * 2)(_c.cast(local, _c.c_void_p), 64)
riov = (_c.c_void_p * 2)(addr, 64)
call("process_vm_readv", lambda: sc(310, ppid, liov, 1, riov, 1, 0))
call("process_vm_writev", lambda: sc(311, ppid, liov, 1, (_c.c_void_p * 2)(0, 0), 1, 0))
)")

KERNEL_CASE(Mount, "mount, umount, pivot_root, chroot", R"(
_os.makedirs(W + "/mnt", exist_ok=True)
call("mount tmpfs", lambda: sc(165, b"none", (W + "/mnt").encode(), b"tmpfs", 0, 0))
call("mount bind /", lambda: sc(165, b"/", (W + "/mnt").encode(), 0, 4096, 0))
call("umount2 /proc", lambda: sc(166, b"/proc", 2))
call("pivot_root", lambda: sc(155, W.encode(), (W + "/mnt").encode()))
call("chroot", lambda: sc(161, W.encode()))
)")

KERNEL_CASE(NewMountApi, "the new mount API (fsopen, open_tree, move_mount, fsmount)", R"(
call("fsopen tmpfs", lambda: sc(430, b"tmpfs", 0))
call("open_tree clone /", lambda: sc(428, -100, b"/", 1))
call("move_mount", lambda: sc(429, -100, b"/proc", -100, W.encode(), 0))
call("fspick", lambda: sc(433, -100, b"/", 0))
call("mount_setattr", lambda: sc(442, -100, b"/", 0, buf(32), 32))
)")

KERNEL_CASE(Unshare, "unshare of every namespace", R"(
for name, flag in [("user", 0x10000000), ("mount", 0x20000), ("net", 0x40000000), ("pid", 0x20000000),
                   ("ipc", 0x08000000), ("uts", 0x04000000), ("cgroup", 0x02000000), ("time", 0x80)]:
    in_child("unshare " + name, lambda flag=flag: sc(272, flag))
)")

KERNEL_CASE(CloneNamespaces, "clone and clone3 with namespace flags", R"(
def clone(flags):
    r = sc(56, flags | 17, 0, 0, 0, 0)
    if r[0] == 0:
        _os._exit(0)
    if r[0] > 0:
        _os.waitpid(r[0], 0)
    return r
def clone3(flags):
    import struct
    args = buf(88)
    struct.pack_into("QQQQQQQ", args, 0, flags, 0, 0, 0, 17, 0, 0)
    r = sc(435, args, 88)
    if r[0] == 0:
        _os._exit(0)
    if r[0] > 0:
        _os.waitpid(r[0], 0)
    return r
in_child("clone NEWUSER", lambda: clone(0x10000000))
in_child("clone NEWNS|NEWPID", lambda: clone(0x20000 | 0x20000000))
in_child("clone NEWNET, high bits set", lambda: clone(0x40000000 | (1 << 40)))
in_child("clone3 NEWUSER", lambda: clone3(0x10000000))
)")

KERNEL_CASE(Setns, "setns into other namespaces", R"(
def into(path, nstype):
    fd = _os.open(path, _os.O_RDONLY)
    try:
        return sc(308, fd, nstype)
    finally:
        _os.close(fd)
in_child("setns own net", lambda: into("/proc/self/ns/net", 0))
in_child("setns own mnt", lambda: into("/proc/self/ns/mnt", 0x20000))
def pid1():
    try:
        return into("/proc/1/ns/mnt", 0)
    except OSError as e:
        return [-1, e.errno]
in_child("setns pid 1 mnt", pid1)
)")

KERNEL_CASE(Keyring, "the kernel keyring (keyctl, add_key, request_key)", R"(
in_child("keyctl join session keyring", lambda: sc(250, 1, 0))
in_child("add_key", lambda: sc(248, b"user", b"@M@", b"secret", 6, -3 & 0xffffffff))
in_child("request_key", lambda: sc(249, b"user", b"@M@", 0, 0))
)")

KERNEL_CASE(Bpf, "bpf (map create, prog load)", R"(
import struct
attr = buf(128)
struct.pack_into("IIII", attr, 0, 1, 4, 4, 1)
call("bpf map create", lambda: sc(321, 0, attr, 128))
prog = buf(16)
struct.pack_into("BBhi", prog, 0, 0xb7, 0, 0, 0)   # r0 = 0
struct.pack_into("BBhi", prog, 8, 0x95, 0, 0, 0)   # exit
lic = _c.create_string_buffer(b"GPL")
attr2 = buf(128)
struct.pack_into("IIQQ", attr2, 0, 1, 2, _c.addressof(prog), _c.addressof(lic))  # socket filter
call("bpf prog load", lambda: sc(321, 5, attr2, 128))
)")

KERNEL_CASE(Userfaultfd, "userfaultfd", R"(
call("userfaultfd", lambda: sc(323, 0o2000000))
call("userfaultfd user-mode-only", lambda: sc(323, 0o2000000 | 1))
)")

KERNEL_CASE(PerfEventOpen, "perf_event_open", R"(
import struct
attr = buf(128)
struct.pack_into("IIQ", attr, 0, 1, 128, 0)        # software cpu-clock
struct.pack_into("Q", attr, 40, (1 << 5) | (1 << 6))  # exclude_kernel, exclude_hv
call("perf_event_open self", lambda: sc(298, attr, 0, -1, -1, 0))
call("perf_event_open cpu-wide", lambda: sc(298, attr, -1, 0, -1, 0))
)")

KERNEL_CASE(IoUring, "io_uring_setup, io_uring_enter, io_uring_register", R"(
params = buf(120)
call("io_uring_setup", lambda: sc(425, 8, params))
call("io_uring_enter", lambda: sc(426, 0, 0, 0, 0, 0, 0))
call("io_uring_register", lambda: sc(427, 0, 0, 0, 0))
)")

KERNEL_CASE(Kexec, "kexec_load, kexec_file_load", R"(
call("kexec_load", lambda: sc(246, 0, 0, 0, 0))
call("kexec_file_load", lambda: sc(320, -1, -1, 1, b"", 0))
)")

KERNEL_CASE(KernelModules, "init_module, finit_module, delete_module", R"(
image = buf(64)
call("init_module", lambda: sc(175, image, 64, b""))
fd = _os.open("/dev/null", _os.O_RDONLY)
call("finit_module", lambda: sc(313, fd, b"", 0))
call("delete_module", lambda: sc(176, b"@M@", 0o4000))
)")

KERNEL_CASE(Reboot, "reboot", R"(
# LINUX_REBOOT_CMD_CAD_OFF: the least harmful command, should a backend let it through.
call("reboot cad off", lambda: sc(169, 0xfee1dead, 672274793, 0, 0))
)")

KERNEL_CASE(ClockSettime, "setting the clocks", R"(
import struct, time
ts = buf(16)
struct.pack_into("qq", ts, 0, int(time.time()), 0)   # now: harmless if it got through
call("clock_settime realtime", lambda: sc(227, 0, ts))
call("settimeofday", lambda: sc(164, ts, 0))
tx = buf(208)
struct.pack_into("I", tx, 0, 0x0001)                  # ADJ_OFFSET of 0
call("adjtimex offset", lambda: sc(159, tx))
)")

KERNEL_CASE(Personality, "personality flags that weaken the process", R"(
def set_and_check(p):
    r = sc(135, p)
    if r[0] == -1:
        return r
    now = sc(135, 0xffffffff)[0]
    return [now, 0] if now & p == p else [-1, 1]
in_child("READ_IMPLIES_EXEC", lambda: set_and_check(0x0400000))
in_child("ADDR_NO_RANDOMIZE", lambda: set_and_check(0x0040000))
in_child("PER_BSD", lambda: set_and_check(0x0006))
)")

TEST_P(Kernel, Tiocsti) {
  // No terminal is shared with the host; the filter refuses TIOCSTI whatever the fd.
  auto [ok, detail] = judge(py_json(std::string(kHarness) + R"(
ch = buf(1)
ch[0] = b"x"
call("TIOCSTI stdin", lambda: sc(16, 0, 0x5412, ch))
def tty():
    try:
        fd = _os.open("/dev/tty", _os.O_RDWR)
    except OSError as e:
        return [-1, e.errno]
    return sc(16, fd, 0x5412, ch)
call("TIOCSTI /dev/tty", tty)
call("TIOCSTI high bits", lambda: sc(16, 0, 0x5412 | (1 << 32), ch))
call("TIOCLINUX", lambda: sc(16, 0, 0x541C, ch))
out(results=results)
)"), {EPERM, ENOSYS, EACCES, ENOTTY, ENXIO, EBADF, EIO});
  kernel_verdict("TIOCSTI / TIOCLINUX terminal injection", ok, detail);
}

TEST_P(Kernel, AfVsock) {
  auto [ok, detail] = judge(py_json(std::string(kHarness) + R"(
call("socket AF_VSOCK", lambda: sc(41, 40, 1, 0))
call("socket AF_VSOCK, high bits", lambda: sc(41, 40 | (1 << 32), 1, 0))
out(results=results)
)"), {EPERM, EAFNOSUPPORT});
  kernel_verdict("AF_VSOCK sockets", ok, detail);
}

TEST_P(Kernel, AfAlg) {
  auto [ok, detail] = judge(py_json(std::string(kHarness) + R"(
call("socket AF_ALG", lambda: sc(41, 38, 5, 0))
call("socket AF_ALG, high bits", lambda: sc(41, 38 | (1 << 32), 5, 0))
out(results=results)
)"), {EPERM, EAFNOSUPPORT});
  kernel_verdict("AF_ALG sockets", ok, detail);
}

KERNEL_CASE(NetlinkAudit, "the audit netlink socket", R"(
call("socket AF_NETLINK NETLINK_AUDIT", lambda: sc(41, 16, 3, 9))
)")

KERNEL_CASE(Int80, "the 32-bit syscall ABI (int 0x80) and x32", R"(
import mmap
def int80():
    # mov eax, 20 (getpid in the i386 table); int 0x80; ret
    code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = _c.addressof(_c.c_char.from_buffer(m))
    r = _c.CFUNCTYPE(_c.c_int)(addr)()
    return [r, 0] if r >= 0 else [-1, -r]
in_child("int 0x80 getpid", int80)
in_child("x32 getpid", lambda: sc(0x40000000 | 39))
)")

}  // namespace hostile
