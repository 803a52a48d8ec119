// Resource exhaustion: every bomb is bounded by the session's limits (case_limits(): 64
// processes, 256 MiB, 20 MiB disk, 256 fds, 1 MiB output) and ends; the host stays clean.
// The attack code bounds its own loops in count and time too, so a miss cannot run away.
#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

bool ended(const sandbox::Result& r) { return r.status != sandbox::Status::running; }

// The largest integer printed on its own line (progress reports of the bombs).
long max_progress(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  long best = -1;
  while (std::getline(in, line)) {
    try {
      std::size_t used = 0;
      long v = std::stol(line, &used);
      if (used == line.size()) best = std::max(best, v);
    } catch (...) {
    }
  }
  return best;
}

}  // namespace

TEST_P(Resource, ForkBomb) {
  auto j = py_json(R"(
import os, time
n, err, t0 = 0, None, time.time()
while n < 1000 and time.time() - t0 < 2.0:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(20)
        os._exit(0)
    n += 1
out(forks=n, errno=err)
)");
  const int forks = j.is_object() ? j["forks"].get<int>() : -1;
  // Refused forks, or the session's limits killed the bomb outright.
  const bool stopped = forks < 0 && ended(last_) && last_.status != sandbox::Status::finished;
  verdict(kAll, "a fork bomb (processes capped)", (forks >= 0 && forks < 64 && !j["errno"].is_null()) || stopped,
          fmt::format("{} forks before refusal, {}", forks, brief(last_)));
}

TEST_P(Resource, ForkBombShell) {
  auto r = sh("f() { f | f & }; f; sleep 2", 2s);
  last_ = r;
  verdict(kAll, "the classic shell fork bomb", ended(r) && r.duration_ms < 6000,
          fmt::format("{} after {} ms", brief(r), r.duration_ms));
}

TEST_P(Resource, ThreadBomb) {
  auto j = py_json(R"(
import threading, time
ev, n, err, t0 = threading.Event(), 0, None, time.time()
while n < 5000 and time.time() - t0 < 2.0:
    try:
        threading.Thread(target=ev.wait, args=(10,), daemon=True).start()
        n += 1
    except Exception as e:
        err = repr(e)
        break
ev.set()
out(threads=n, error=err)
)");
  const int n = j.is_object() ? j["threads"].get<int>() : -1;
  const bool stopped = n < 0 && ended(last_) && last_.status != sandbox::Status::finished;
  verdict(kAll, "a thread bomb (threads count as processes)", (n >= 0 && n < 64) || stopped,
          fmt::format("{} threads started, {}", n, brief(last_)));
}

TEST_P(Resource, MemoryBomb) {
  auto r = py(R"(
held, mb = [], 0
try:
    while mb < 2048:
        held.append(b"\x01" * (16 << 20))
        mb += 16
        print(mb, flush=True)
except MemoryError:
    out(error="MemoryError", mb=mb)
)", 8s);
  last_ = r;
  const long mb = max_progress(r.stdout_text);
  // runsc's cgroup also holds gVisor's sentry, so it grants 96 MiB more (runsc.hpp); 32 MiB
  // of slack covers the interpreter and a chunk in flight.
  const long cap = 256 + 32 + (backend() == "runsc" ? 96 : 0);
  verdict(kAll, "a memory bomb in one process (256 MiB)", mb >= 0 && mb <= cap,
          fmt::format("held {} MiB at most, {}", mb, brief(r)));
}

TEST_P(Resource, MemoryBombChildren) {
  auto j = py_json(R"(
import os, time
kids = []
for i in range(6):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            x = b"\x01" * (64 << 20)
            os.write(w, b"1")
        except MemoryError:
            os.write(w, b"0")
        time.sleep(3)
        os._exit(0)
    os.close(w)
    kids.append((pid, r))
reported = []
for pid, r in kids:
    if os.read(r, 1) == b"1":
        reported.append(pid)
# What counts is memory held at the same time: a child the OOM killer took after it
# reported holds nothing now (every child still sleeps for seconds; a victim takes a
# moment to exit).
time.sleep(0.3)
held, killed = 0, 0
for pid in reported:
    if os.waitpid(pid, os.WNOHANG)[0] == 0:
        held += 64
    else:
        killed += 1
out(held_mb=held, reported=len(reported), killed_after=killed)
for pid, r in kids:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
)", 8s);
  const int held = j.is_object() ? j["held_mb"].get<int>() : -1;
  // Either the total stayed under the limit, or the whole attempt was OOM-killed.
  const bool contained = held >= 0 ? held <= 256 : last_.status != sandbox::Status::finished;
  verdict(kWalled, "memory spread over many processes (session total 256 MiB)", contained,
          fmt::format("children held {} MiB together ({}), {}", held, j.is_object() ? j.dump() : "no report",
                      brief(last_)));
}

TEST_P(Resource, CpuSpin) {
  auto r = py("while True:\n    pass\n", 2s);
  last_ = r;
  auto after = py("1+1");
  verdict(kAll, "a CPU spin past the timeout",
          r.status == sandbox::Status::timeout && r.duration_ms < 4500 && after.result == "2",
          fmt::format("{} after {} ms; next execution: {}", brief(r), r.duration_ms, brief(after)));
}

TEST_P(Resource, CpuSpinChildren) {
  auto r = sh("for i in 1 2; do (trap '' TERM HUP INT; exec -a @M@-spin bash -c 'while :; do :; done') & done; wait", 2s);
  last_ = r;
  // Every process of the execution dies with it, even those that ignore SIGTERM.
  std::string left;
  for (int i = 0; i < 40; ++i) {
    left.clear();
    for (auto& p : s().processes())
      if (p.cmdline.find(marker_ + "-spin") != std::string::npos) left += " " + std::to_string(p.pid);
    if (left.empty()) break;
    std::this_thread::sleep_for(50ms);
  }
  verdict(kAll, "spinning children that ignore SIGTERM, at the timeout",
          r.status == sandbox::Status::timeout && left.empty(),
          fmt::format("{}; spinners left after timeout:{}", brief(r), left.empty() ? " none" : left));
}

TEST_P(Resource, DiskFillOneFile) {
  auto j = py_json(R"(
n, err = 0, None
try:
    with open(W + "/big", "wb") as f:
        for i in range(64):
            f.write(b"\0" * (1 << 20))
            f.flush()
            n += 1
except OSError as e:
    err = e.errno
out(mb=n, errno=err)
)");
  const int mb = j.is_object() ? j["mb"].get<int>() : -1;
  verdict(kAll, "one file filling the disk past the 20 MiB quota", mb >= 0 && mb <= 20 && !j["errno"].is_null(),
          fmt::format("wrote {} MiB, {}", mb, brief(last_)));
}

TEST_P(Resource, DiskFillManyFiles) {
  auto j = py_json(R"(
n, err = 0, None
try:
    for i in range(40):
        with open(W + "/f%d" % i, "wb") as f:
            f.write(b"\0" * (1 << 20))
        n += 1
except OSError as e:
    err = e.errno
out(mb=n, errno=err)
)");
  const int mb = j.is_object() ? j["mb"].get<int>() : -1;
  verdict(kWalled, "many files filling the workspace past the 20 MiB quota", mb >= 0 && mb <= 20,
          fmt::format("wrote {} MiB in 1 MiB files, {}", mb, brief(last_)));
}

TEST_P(Resource, DiskQuotaUpload) {
  const std::string eight_mib(8u << 20, 'u');
  int accepted = 0;
  std::string error;
  for (int i = 0; i < 4; ++i) {
    try {
      s().files().upload(fmt::format("up{}.bin", i), eight_mib);
      ++accepted;
    } catch (const sandbox::Error& e) {
      error = e.what();
      break;
    }
  }
  verdict(kWalled, "uploads past the 20 MiB workspace quota", accepted <= 2,
          fmt::format("{} uploads of 8 MiB accepted; {}", accepted, error.empty() ? "none refused" : error));
}

TEST_P(Resource, InodeExhaustion) {
  const auto state = world().state_root;
  auto j = py_json(R"(
import os, time
d = W + "/inodes"
os.makedirs(d, exist_ok=True)
n, err, t0 = 0, None, time.time()
try:
    while n < 30000 and time.time() - t0 < 3.0:
        os.close(os.open("%s/%d" % (d, n), os.O_CREAT | os.O_WRONLY, 0o600))
        n += 1
except OSError as e:
    err = e.errno
out(files=n, errno=err)
)", 8s);
  const int files = j.is_object() ? j["files"].get<int>() : -1;
  const int err = j.is_object() && j["errno"].is_number() ? j["errno"].get<int>() : 0;
  // Contained when the files landed on a filesystem of the session's own (not the one
  // holding the state directory, which the host and every other session share) and that
  // filesystem ran out of inodes. Counting the host's free inodes instead is noisy: other
  // tests write to the same disk at the same time.
  struct stat ws {}, host_fs {};
  const bool own_fs = ::stat((s().workspace() / "inodes").c_str(), &ws) == 0 &&
                      ::stat(state.c_str(), &host_fs) == 0 && ws.st_dev != host_fs.st_dev;
  verdict(kWalled, "inode exhaustion of the host filesystem", files >= 0 && own_fs && err == ENOSPC,
          fmt::format("{} files made, errno {}; on {} filesystem; {}", files, err,
                      own_fs ? "the session's own" : "the host's", brief(last_)));
}

TEST_P(Resource, FdExhaustion) {
  auto j = py_json(R"(
fds, err = [], None
try:
    while len(fds) < 100000:
        fds.append(_os.open("/dev/null", _os.O_RDONLY))
except OSError as e:
    err = e.errno
n = len(fds)
for fd in fds:
    _os.close(fd)
out(fds=n, errno=err)
)");
  const int n = j.is_object() ? j["fds"].get<int>() : -1;
  verdict(kAll, "fd exhaustion (256 per process)", n >= 0 && n <= 256,
          fmt::format("{} fds opened, {}", n, brief(last_)));
}

namespace {
// Contained: the execution ended, the stream was cut at its cap, the host did not buffer it.
std::pair<bool, std::string> flood_outcome(int fd, const sandbox::Result& r, std::uint64_t rss_before) {
  const std::string& text = fd == 1 ? r.stdout_text : r.stderr_text;
  const auto grew = static_cast<long>(host::rss_bytes()) - static_cast<long>(rss_before);
  const bool ok = r.status != sandbox::Status::running && r.truncated && text.size() <= (1u << 20) + (64u << 10) &&
                  grew < (64l << 20);
  return {ok, fmt::format("{}; kept {} bytes, truncated={}, host RSS grew {} KiB", brief(r), text.size(),
                          r.truncated, grew / 1024)};
}
}  // namespace

TEST_P(Resource, StdoutFlood) {
  const auto rss = host::rss_bytes();
  last_ = py("block = b'x' * (1 << 20)\nfor i in range(64):\n    _os.write(1, block)\n", 8s);
  auto [ok, detail] = flood_outcome(1, last_, rss);
  verdict(kAll, "a 64 MiB stdout flood (1 MiB cap)", ok, detail);
}

TEST_P(Resource, StderrFlood) {
  const auto rss = host::rss_bytes();
  last_ = py("block = b'x' * (1 << 20)\nfor i in range(64):\n    _os.write(2, block)\n", 8s);
  auto [ok, detail] = flood_outcome(2, last_, rss);
  verdict(kAll, "a 64 MiB stderr flood (1 MiB cap)", ok, detail);
}

TEST_P(Resource, ShellOutputFlood) {
  const auto rss = host::rss_bytes();
  auto r = sh("yes @M@ & yes @M@ >&2", 2s);
  last_ = r;
  const auto grew = static_cast<long>(host::rss_bytes()) - static_cast<long>(rss);
  const bool ok = r.status == sandbox::Status::timeout && r.truncated &&
                  r.stdout_text.size() <= (1u << 20) + (64u << 10) && r.stderr_text.size() <= (1u << 20) + (64u << 10) &&
                  grew < (64l << 20);
  verdict(kAll, "`yes` on both streams until the timeout", ok,
          fmt::format("{}; kept {}+{} bytes, host RSS grew {} KiB", brief(r), r.stdout_text.size(),
                      r.stderr_text.size(), grew / 1024));
}

}  // namespace hostile
