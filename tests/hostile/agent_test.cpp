// Touching the agent: its memory, its fds, its signals, and the host paths a session could
// learn from it. Code runs under another uid than the agent on every backend (its real and
// saved uid differ from the code's: docs/isolation.md), so the kernel refuses each of these;
// before, code shared the agent's uid and could rewrite it through /proc/<agent>/mem.
#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

// The agent's pid as code sees it: the nearest ancestor running sandbox-agent, or 1 (a
// kernel forked from the namespaces template has its parent outside the pid namespace).
const char* kAgentPid = R"PY(
def agent_pid():
    p = _os.getpid()
    for _ in range(16):
        try:
            ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            if ppid <= 0:
                break
            if b"sandbox-agent" in open(f"/proc/{ppid}/cmdline", "rb").read():
                return ppid
        except OSError:
            break
        p = ppid
    return 1
A = agent_pid()
import platform as _pf
_NR = {"x86_64": {"ptrace": 101, "vm_readv": 310, "vm_writev": 311},
       "aarch64": {"ptrace": 117, "vm_readv": 270, "vm_writev": 271}}[_pf.machine()]
def refused(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return _os.strerror(e.errno)
)PY";

std::string reversed(std::string s) {
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace

TEST_P(Agent, Memory) {
  auto j = py_json(std::string(kAgentPid) + R"PY(
import ctypes
res = {"agent": A}
res["open /proc/A/mem r+b"] = refused(lambda: open(f"/proc/{A}/mem", "r+b", buffering=0).close())
res["open /proc/A/mem rb"] = refused(lambda: open(f"/proc/{A}/mem", "rb", buffering=0).close())
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = iovec(0x400000, 64)  # the errno, not the address, is the answer: EPERM before EFAULT
for name in ("vm_readv", "vm_writev"):
    r, e = sc(_NR[name], A, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
    res["process_" + name] = "allowed" if r >= 0 or e == 14 else _os.strerror(e)
r, e = sc(_NR["ptrace"], 16, A, 0, 0)  # PTRACE_ATTACH
res["ptrace attach"] = "allowed" if r == 0 else _os.strerror(e)
if r == 0:
    _os.waitpid(A, 0x40000000)  # __WALL
    sc(_NR["ptrace"], 17, A, 0, 0)  # PTRACE_DETACH
r, e = sc(_NR["ptrace"], 0x4206, A, 0, 0)  # PTRACE_SEIZE
res["ptrace seize"] = "allowed" if r == 0 else _os.strerror(e)
out(**res)
)PY");
  auto sh_r = sh("A=$PPID; [ \"$A\" -gt 0 ] 2>/dev/null || A=1; "
                 "if (exec 3<>/proc/$A/mem) 2>/dev/null; then echo shell-mem-opened; else echo shell-mem-refused; fi");
  bool contained = j.is_object() && sh_r.stdout_text.find("shell-mem-refused") != std::string::npos;
  for (auto& [k, v] : j.items())
    if (v == "allowed") contained = false;
  verdict(kAll, "the agent's memory: /proc/<agent>/mem, process_vm_readv/writev, ptrace", contained,
          fmt::format("{}; shell: {}", j.dump(), brief(sh_r)));
}

TEST_P(Agent, Fds) {
  auto j = py_json(std::string(kAgentPid) + R"PY(
res = {"agent": A}
def link(fd):
    try:
        return " (" + _os.readlink(f"/proc/{A}/fd/{fd}") + ")"
    except OSError:
        return ""
for fd in range(0, 8):
    r = refused(lambda: _os.close(_os.open(f"/proc/{A}/fd/{fd}", _os.O_RDWR)))
    res[f"open /proc/A/fd/{fd}"] = r if r != "allowed" else "allowed" + link(fd)
res["readlink /proc/A/cwd"] = refused(lambda: _os.readlink(f"/proc/{A}/cwd"))
out(**res)
)PY");
  bool contained = j.is_object();
  for (auto& [k, v] : j.items())
    if (v.is_string() && v.get<std::string>().rfind("allowed", 0) == 0) contained = false;
  auto g = py_json(std::string(kAgentPid) + R"PY(
try:
    pfd = _os.pidfd_open(A)
    r, e = sc(438, pfd, 3, 0)
    out(getfd="allowed" if r >= 0 else _os.strerror(e))
except OSError as e:
    out(getfd="pidfd_open: " + _os.strerror(e.errno))
)PY");
  if (!g.is_object() || g.value("getfd", "") == "allowed") contained = false;
  verdict(kAll, "the agent's fds opened: /proc/<agent>/fd/N, pidfd_getfd", contained,
          fmt::format("{}; {}", j.dump(), g.dump()));
}

// What /proc tells about the agent without touching it. gVisor's /proc (runsc 20221219)
// serves these to every task of the sandbox whatever its uid: there they are an expected
// miss (the agent's environment is the sessions' own; maps and fdinfo are layout only).
TEST_P(Agent, ProcDisclosure) {
  auto j = py_json(std::string(kAgentPid) + R"PY(
res = {"agent": A}
res["read /proc/A/maps"] = refused(lambda: open(f"/proc/{A}/maps").read())
res["read /proc/A/environ"] = refused(lambda: open(f"/proc/{A}/environ", "rb").read())
res["list /proc/A/fd"] = refused(lambda: _os.listdir(f"/proc/{A}/fd"))
res["readlink /proc/A/fd/3"] = refused(lambda: _os.readlink(f"/proc/{A}/fd/3"))
res["read /proc/A/fdinfo/3"] = refused(lambda: open(f"/proc/{A}/fdinfo/3").read())
out(**res)
)PY");
  bool contained = j.is_object();
  for (auto& [k, v] : j.items())
    if (v == "allowed") contained = false;
  verdict({"rlimit", "namespaces"}, "the agent's maps, environ, fd list and fdinfo read through /proc",
          contained, j.dump());
}

TEST_P(Agent, Signals) {
  auto j = py_json(std::string(kAgentPid) + R"PY(
import signal, time
def state():
    try:
        return open(f"/proc/{A}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError as e:
        return "gone"
res = {"agent": A}
stopped = False
for name in ("SIGSTOP", "SIGTSTP", "SIGUSR1", "SIGTERM", "SIGHUP", "SIGINT"):
    res[name] = refused(lambda: _os.kill(A, getattr(signal, name)))
    time.sleep(0.05)
    stopped = stopped or state() == "T"
try:
    res["killpg SIGSTOP"] = refused(lambda: _os.killpg(_os.getpgid(A), signal.SIGSTOP))
except OSError as e:
    res["killpg SIGSTOP"] = _os.strerror(e.errno)
time.sleep(0.1)
res["state"] = state()
stopped = stopped or res["state"] == "T"
res["stopped"] = stopped
_os.kill(A, signal.SIGCONT) if stopped else None  # let the rest of the case run
out(**res)
)PY");
  sandbox::Result after;
  try {
    after = py("1+1", 10s);
  } catch (const sandbox::Error& e) {
    after.stderr_text = e.what();
  }
  const bool contained = j.is_object() && !j.value("stopped", true) && after.result == "2";
  verdict(kAll, "signals to the agent: SIGSTOP, SIGTSTP, SIGUSR1, SIGTERM, SIGHUP, SIGINT", contained,
          fmt::format("{}; next execution {}", j.dump(), brief(after)));
}

TEST_P(Agent, HostPaths) {
  // The needles travel reversed, so that the code (a shell's argv) never holds them itself.
  define("RUNTIME_REV", reversed(expand("@RUNTIME_DIR@")));
  define("STATE_REV", reversed(expand("@STATE_DIR@")));
  auto j = py_json(R"PY(
needles = ["@RUNTIME_REV@"[::-1].encode(), "@STATE_REV@"[::-1].encode()]
hits, readable = [], {}
pids = [p for p in _os.listdir("/proc") if p.isdigit()]
for pid in pids:
    for f in ("mountinfo", "environ", "cmdline"):
        try:
            data = open(f"/proc/{pid}/{f}", "rb").read()
        except OSError:
            continue
        readable[f] = readable.get(f, 0) + 1
        for n in needles:
            if n in data:
                hits.append(f"{pid}/{f}: {n.decode()}")
out(hits=hits[:20], readable=readable, processes=len(pids))
)PY");
  const bool contained = j.is_object() && j["hits"].empty() && j["readable"].value("mountinfo", 0) > 0;
  verdict(kWalled, "host paths (runtime, state dir) in any visible process's mountinfo, environ, cmdline",
          contained, j.dump());
}

}  // namespace hostile
