// Escape from the filesystem: host secrets, writes outside the workspace, symlink and hard
// link tricks against the host-side file API, special files, /proc and /sys.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "hostile/hostile.hpp"

namespace hostile {
namespace fs = std::filesystem;

namespace {
// Python: try(name, fn) records whether fn() succeeded; the verdict reads "got".
const char* kTry = R"(
got, failed = {}, {}
def attempt(name, fn):
    try:
        v = fn()
        got[name] = (v if isinstance(v, str) else repr(v))[:200]
    except Exception as e:
        failed[name] = repr(e)[:120]
def read(p):
    with open(p, "rb") as f:
        return f.read(4096).decode("latin-1")
def write(p, text="@M@"):
    with open(p, "w") as f:
        f.write(text)
    return "wrote " + p
)";

std::string got_of(const Json& j) { return j.is_object() ? j["got"].dump() : "no report"; }
bool nothing_got(const Json& j) { return j.is_object() && j["got"].empty(); }
}  // namespace

TEST_P(Filesystem, ReadShadow) {
  auto j = py_json(std::string(kTry) + R"(
attempt("shadow", lambda: read("/etc/shadow"))
attempt("gshadow", lambda: read("/etc/gshadow"))
attempt("root home", lambda: _os.listdir("/root"))
attempt("ssh host key", lambda: read("/etc/ssh/ssh_host_rsa_key"))
out(got=got, failed=failed)
)");
  verdict(kWalled, "reading /etc/shadow, /root and host keys", nothing_got(j), got_of(j));
}

TEST_P(Filesystem, ReadHostSecret) {
  auto j = py_json(std::string(kTry) + R"(
attempt("secret", lambda: read("@SECRET_FILE@"))
attempt("state dir", lambda: _os.listdir("@STATE_DIR@"))
out(got=got, failed=failed)
)");
  verdict(kWalled, "reading a world-readable host file by its path", nothing_got(j), got_of(j));
}

TEST_P(Filesystem, ProcOneRoot) {
  auto j = py_json(std::string(kTry) + R"(
attempt("secret", lambda: read("/proc/1/root@SECRET_FILE@"))
attempt("shadow", lambda: read("/proc/1/root/etc/shadow"))
attempt("root home", lambda: _os.listdir("/proc/1/root/root"))
attempt("pid1 cwd", lambda: _os.listdir("/proc/1/cwd/@STATE_DIR@"))
out(got=got, failed=failed)
)");
  verdict(kWalled, "host files through /proc/1/root", nothing_got(j), got_of(j));
}

TEST_P(Filesystem, ProcSelfRoot) {
  auto j = py_json(std::string(kTry) + R"(
attempt("self root", lambda: read("/proc/self/root@SECRET_FILE@"))
attempt("cwd dots", lambda: read("/proc/self/cwd/" + "../" * 12 + "@SECRET_FILE@"))
attempt("workspace dots", lambda: read(W + "/" + "../" * 12 + "@SECRET_FILE@"))
def via_fd():
    fd = _os.open("/", _os.O_PATH)
    return read("/proc/self/fd/%d/../../..@SECRET_FILE@" % fd)
attempt("fd dots", via_fd)
def via_parent():
    return read("/proc/%d/root@SECRET_FILE@" % _os.getppid())
attempt("parent root", via_parent)
out(got=got, failed=failed)
)");
  verdict(kWalled, "host files through /proc/self/root, cwd and fd tricks", nothing_got(j), got_of(j));
}

TEST_P(Filesystem, WriteOutside) {
  auto j = py_json(std::string(kTry) + R"(
for d in ["/usr", "/etc", "", "/bin", "/var", "/opt/sandbox", "@RUNTIME_DIR@", "/usr/lib/python3/dist-packages"]:
    attempt("write " + (d or "/"), lambda d=d: write(d + "/@M@"))
attempt("chmod /etc/passwd", lambda: _os.chmod("/etc/passwd", 0o666))
out(got=got, failed=failed)
)");
  // The host decides: nothing may have appeared in these directories.
  std::string appeared;
  for (const char* d : {"/usr", "/etc", "", "/bin", "/var", "/opt/sandbox", SANDBOX_TEST_RUNTIME_DIR,
                        "/usr/lib/python3/dist-packages"}) {
    fs::path p = fs::path(std::string(d) + "/" + marker_);
    std::error_code ec;
    if (fs::exists(p, ec)) {
      appeared += " " + p.string();
      fs::remove(p, ec);
    }
  }
  verdict(kAll, "writes to /usr, /etc, / and the runtime", appeared.empty(),
          "appeared on the host:" + (appeared.empty() ? std::string(" nothing") : appeared) + "; inside: " + got_of(j));
}

TEST_P(Filesystem, WriteHostTmp) {
  py_json(std::string(kTry) + R"(
for d in ["/tmp", "/var/tmp", "/dev/shm"]:
    attempt(d, lambda d=d: write(d + "/@M@"))
out(got=got, failed=failed)
)");
  std::string appeared;
  for (const char* d : {"/tmp", "/var/tmp", "/dev/shm"}) {
    fs::path p = fs::path(d) / marker_;
    std::error_code ec;
    if (fs::exists(p, ec)) {
      appeared += " " + p.string();
      fs::remove(p, ec);
    }
  }
  verdict(kWalled, "writes to the host's /tmp, /var/tmp, /dev/shm", appeared.empty(),
          "appeared on the host:" + (appeared.empty() ? std::string(" nothing") : appeared));
}

TEST_P(Filesystem, SymlinkDownload) {
  py(R"(
_os.symlink("/etc/passwd", W + "/link")
_os.makedirs(W + "/sub", exist_ok=True)
_os.symlink("/etc/shadow", W + "/sub/link2")
_os.symlink("/etc", W + "/dirlink")
_os.symlink("../" * 12 + "etc/passwd", W + "/rel")
_os.symlink("@SECRET_FILE@", W + "/secret")
)");
  std::string leaked;
  for (const char* name : {"link", "sub/link2", "dirlink/passwd", "rel", "secret"}) {
    try {
      auto data = s().files().download(name);
      leaked += fmt::format(" {} ({} bytes)", name, data.size());
    } catch (const sandbox::Error&) {
    }
    try {
      auto reader = s().files().open_download(name);
      leaked += fmt::format(" open_download {}", name);
    } catch (const sandbox::Error&) {
    }
  }
  verdict(kAll, "symlinks to host files fetched through the file API", leaked.empty(),
          "downloaded:" + (leaked.empty() ? std::string(" nothing") : leaked));
}

TEST_P(Filesystem, SymlinkRace) {
  // The code flips a name between a regular file and a symlink to the host secret while the
  // host downloads it: no download may ever return the secret.
  auto ex = start_py(std::string(kTry) + R"(
import time
p, t0, n = W + "/flip", time.time(), 0
while time.time() - t0 < 3.0 and n < 200000:
    try:
        write(p + ".tmp", "harmless")
        _os.replace(p + ".tmp", p)
        _os.symlink("@SECRET_FILE@", p + ".lnk")
        _os.replace(p + ".lnk", p)
    except OSError:
        pass
    n += 1
)", 6s);
  int tries = 0, leaks = 0, ok = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (!ex->done() && tries < 400 && std::chrono::steady_clock::now() - t0 < 4s) {
    ++tries;
    try {
      auto data = s().files().download("flip");
      if (data.find(world().secret_file_text) != std::string::npos) ++leaks;
      else ++ok;
    } catch (const sandbox::Error&) {
    }
  }
  ex->cancel();
  last_ = ex->wait();
  snapshot();
  verdict(kAll, "a symlink swapped in while the host downloads", leaks == 0,
          fmt::format("{} downloads, {} harmless, {} returned the host secret", tries, ok, leaks));
}

TEST_P(Filesystem, SymlinkUpload) {
  py(R"(
_os.symlink("/etc/@M@", W + "/up.txt")
_os.makedirs(W + "/d", exist_ok=True)
_os.symlink("/etc", W + "/etcdir")
)");
  std::string results;
  try {
    s().files().upload("up.txt", "owned", {.overwrite = true});
    results += " up.txt accepted;";
  } catch (const sandbox::Error& e) {
    results += std::string(" up.txt refused (") + e.what() + ");";
  }
  try {
    s().files().upload("etcdir/" + marker_, "owned");
    results += " etcdir/ accepted;";
  } catch (const sandbox::Error& e) {
    results += std::string(" etcdir/ refused (") + e.what() + ");";
  }
  std::string appeared;
  std::error_code ec;
  if (fs::exists("/etc/" + marker_, ec)) {
    appeared = "/etc/" + marker_;
    fs::remove("/etc/" + marker_, ec);
  }
  verdict(kAll, "uploads through planted symlinks", appeared.empty(),
          "on the host: " + (appeared.empty() ? std::string("nothing") : appeared) + ";" + results);
}

TEST_P(Filesystem, HardlinkHostFile) {
  auto j = py_json(std::string(kTry) + R"(
attempt("link passwd", lambda: _os.link("/etc/passwd", W + "/pw") or "linked")
attempt("link secret", lambda: _os.link("@SECRET_FILE@", W + "/sec") or "linked")
attempt("link agent", lambda: _os.link("@RUNTIME_DIR@/sandbox-agent", W + "/agent") or "linked")
out(got=got, failed=failed)
)");
  std::string leaked;
  for (const char* name : {"pw", "sec", "agent"}) {
    try {
      auto data = s().files().download(name);
      leaked += fmt::format(" {} ({} bytes)", name, data.size());
    } catch (const sandbox::Error&) {
    }
    try {
      s().files().upload(name, "overwritten", {.overwrite = true});
    } catch (const sandbox::Error&) {
    }
  }
  std::string damaged;
  {
    std::ifstream in(world().secret_file);
    std::string line;
    std::getline(in, line);
    if (line != world().secret_file_text) damaged = " the host secret file was overwritten";
  }
  verdict(kAll, "hard links to host files read or written through the file API",
          leaked.empty() && damaged.empty(),
          "links made: " + got_of(j) + "; downloaded:" + (leaked.empty() ? std::string(" nothing") : leaked) + damaged);
}

TEST_P(Filesystem, HardlinkOverwrite) {
  py(std::string(kTry) + R"(
write(W + "/a.txt", "OLD")
_os.link(W + "/a.txt", W + "/b.txt")
)");
  std::string note;
  try {
    s().files().upload("a.txt", "NEW", {.overwrite = true});
  } catch (const sandbox::Error& e) {
    note = std::string("upload refused: ") + e.what();
  }
  auto r = py("read(W + '/b.txt')");
  last_ = r;
  verdict(kAll, "an upload writing through a planted hard link", r.result == "'OLD'",
          fmt::format("b.txt now {}; {}", r.result.value_or("?"), note));
}

TEST_P(Filesystem, FifoDownload) {
  py("_os.mkfifo(W + '/pipe')\n_os.mkfifo(W + '/pipe2')\n");
  auto fut = std::async(std::launch::async, [this] {
    std::string outcome;
    for (const char* name : {"pipe", "pipe2"}) {
      try {
        s().files().download(name);
        outcome += std::string(" ") + name + " returned data";
      } catch (const sandbox::Error&) {
      }
    }
    return outcome;
  });
  const bool hung = fut.wait_for(5s) != std::future_status::ready;
  if (hung) {
    // Unblock the host by opening the FIFOs for writing from inside, then collect.
    py("import threading\nfor n in ('pipe','pipe2'):\n    threading.Thread(target=lambda n=n: open(W+'/'+n,'w').close(), daemon=True).start()\n");
  }
  std::string got = fut.get();
  verdict(kAll, "a FIFO in the workspace fetched by the host", !hung && got.empty(),
          hung ? std::string("the host download blocked on the FIFO") : "returned:" + (got.empty() ? std::string(" nothing") : got));
}

TEST_P(Filesystem, MknodDevices) {
  auto j = py_json(std::string(kTry) + R"(
import stat
attempt("block sda", lambda: _os.mknod(W + "/sda", stat.S_IFBLK | 0o666, _os.makedev(8, 0)) or "made")
attempt("char mem", lambda: _os.mknod(W + "/mem", stat.S_IFCHR | 0o666, _os.makedev(1, 1)) or "made")
attempt("char kmsg", lambda: _os.mknod(W + "/kmsg", stat.S_IFCHR | 0o666, _os.makedev(1, 11)) or "made")
attempt("dev mem", lambda: read("/dev/mem"))
attempt("dev kmem", lambda: read("/dev/kmem"))
attempt("dev port", lambda: read("/dev/port"))
out(got=got, failed=failed)
)");
  std::string leaked;
  for (const char* name : {"sda", "mem", "kmsg"}) {
    try {
      auto data = s().files().download(name);
      leaked += fmt::format(" {} ({} bytes)", name, data.size());
    } catch (const sandbox::Error&) {
    }
  }
  verdict(kAll, "device nodes made or opened", nothing_got(j) && leaked.empty(),
          "inside: " + got_of(j) + "; host downloads:" + (leaked.empty() ? std::string(" none") : leaked));
}

TEST_P(Filesystem, ProcHostInfo) {
  host::HostSleep sleeper("hh" + marker_.substr(2) + "-host", 60);
  host::HostServices services(marker_);
  define("HOST_MARK", "hh" + marker_.substr(2));
  define("PORT_HEX", fmt::format("{:04X}", services.port()));
  define("ABSTRACT", services.abstract_name());
  auto j = py_json(std::string(kTry) + R"(
import glob
pids = [p for p in _os.listdir("/proc") if p.isdigit()]
def scan():
    hits = []
    for p in pids:
        try:
            if b"@HOST_MARK@" in open("/proc/%s/cmdline" % p, "rb").read():
                hits.append(p)
        except OSError:
            pass
    if hits:
        return "host process visible: " + ",".join(hits)
    raise LookupError("not visible")
attempt("host process", scan)
def tcp():
    t = open("/proc/net/tcp").read()
    if ":@PORT_HEX@ " in t:
        return "host listening port in /proc/net/tcp"
    raise LookupError("no")
attempt("proc net tcp", tcp)
def unix():
    if "@ABSTRACT@" in open("/proc/net/unix").read():
        return "host abstract socket in /proc/net/unix"
    raise LookupError("no")
attempt("proc net unix", unix)
out(got=got, failed=failed, visible_pids=len(pids))
)");
  verdict(kWalled, "host processes and sockets found by walking /proc", nothing_got(j),
          got_of(j) + (j.is_object() ? fmt::format("; {} pids visible", j["visible_pids"].get<int>()) : ""));
}

TEST_P(Filesystem, ProcSensitiveFiles) {
  auto j = py_json(std::string(kTry) + R"(
def same(p):
    v = open(p).read()
    with open(p, "w") as f:
        f.write(v)
    return "rewrote " + p
attempt("sysrq-trigger", lambda: write("/proc/sysrq-trigger", "h"))
attempt("core_pattern", lambda: same("/proc/sys/kernel/core_pattern"))
attempt("modprobe", lambda: same("/proc/sys/kernel/modprobe"))
attempt("kcore", lambda: read("/proc/kcore"))
attempt("kmsg", lambda: read("/proc/kmsg"))
if "@BACKEND@" != "runsc":  # gVisor's /proc is the sentry's: nothing reaches the host's OOM killer
    attempt("oom_score_adj -1000", lambda: write("/proc/self/oom_score_adj", "-1000"))
out(got=got, failed=failed)
)");
  verdict(kAll, "writes to /proc/sysrq-trigger, /proc/sys; reading kcore and kmsg", nothing_got(j), got_of(j));
}

TEST_P(Filesystem, SysWrites) {
  auto j = py_json(std::string(kTry) + R"(
import glob
def same(p):
    v = open(p).read()
    with open(p, "w") as f:
        f.write(v)
    return "rewrote " + p
for p in ["/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/uevent_helper",
          "/sys/class/net/lo/mtu", "/sys/power/state", "/sys/kernel/profiling"]:
    attempt(p, lambda p=p: same(p))
out(got=got, failed=failed)
)");
  verdict(kAll, "writes under /sys", nothing_got(j), got_of(j));
}

TEST_P(Filesystem, CgroupEscape) {
  auto j = py_json(std::string(kTry) + R"(
import glob
me = str(_os.getpid())
targets = ["/sys/fs/cgroup/cgroup.procs"] + glob.glob("/sys/fs/cgroup/*/cgroup.procs") + glob.glob("/sys/fs/cgroup/*/tasks")
def same(p):
    v = open(p).read()
    with open(p, "w") as f:
        f.write(v)
    return "rewrote " + p
for p in targets:
    attempt("join " + p, lambda p=p: write(p, me))
# Rewriting the current value proves write access without changing the host.
for p in (glob.glob("/sys/fs/cgroup/*/memory.limit_in_bytes") + glob.glob("/sys/fs/cgroup/memory.max") +
          glob.glob("/sys/fs/cgroup/*/pids.max") + glob.glob("/sys/fs/cgroup/*/release_agent"))[:20]:
    attempt("write " + p, lambda p=p: same(p))
out(got=got, failed=failed, cgroup=open("/proc/self/cgroup").read()[:300])
)");
  verdict(kAll, "leaving the session's cgroup or raising its limits", nothing_got(j), got_of(j));
}

}  // namespace hostile
