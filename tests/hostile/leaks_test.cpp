// Information leaks: the server's environment, other sessions' files and processes, host
// processes, the host's name.
#include <fmt/format.h>
#include <unistd.h>

#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {

TEST_P(Leaks, EnvironmentSecret) {
  auto j = py_json(R"(
import glob
hits = []
if any("@SECRET_ENV@" in v for v in _os.environ.values()):
    hits.append("os.environ")
for p in ["/proc/self/environ", "/proc/1/environ", "/proc/%d/environ" % _os.getppid()] + glob.glob("/proc/[0-9]*/environ"):
    try:
        if b"@SECRET_ENV@" in open(p, "rb").read():
            hits.append(p)
    except OSError:
        pass
out(hits=sorted(set(hits)))
)");
  verdict(kAll, "the server's environment (SANDBOX_TEST_SECRET) seen from Python",
          j.is_object() && j["hits"].empty(), j.is_object() ? "found in " + j["hits"].dump() : brief(last_));
}

TEST_P(Leaks, EnvironmentSecretShell) {
  // The marker keeps grep's own command line from matching itself.
  auto r = sh("env; set; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo @M@ done");
  last_ = r;
  const bool leaked = r.stdout_text.find(world().secret_env_value) != std::string::npos;
  verdict(kAll, "the server's environment seen from the shell",
          !leaked && r.stdout_text.find(marker_ + " done") != std::string::npos,
          leaked ? "SANDBOX_TEST_SECRET value printed" : brief(r));
}

TEST_P(Leaks, OtherSessionFiles) {
  auto a = new_session("A");
  const std::string secret = "SESSION-A-SECRET-" + marker_;
  a->files().upload("a-secret.txt", secret);
  define("A_WS_HOST", a->workspace().string());
  define("A_SECRET", secret);
  auto j = py_json(R"(
import glob
hits = []
def check(p):
    try:
        if b"@A_SECRET@" in open(p, "rb").read():
            hits.append(p)
    except OSError:
        pass
check("@A_WS_HOST@/a-secret.txt")
check(W + "/../@A_WS_HOST@/a-secret.txt")
for p in glob.glob("/proc/[0-9]*/cwd/a-secret.txt") + glob.glob("/proc/[0-9]*/root/workspace/a-secret.txt") + \
         glob.glob("/proc/[0-9]*/root@A_WS_HOST@/a-secret.txt"):
    check(p)
for d in ["/tmp", "/workspace", W + "/..", W + "/../.."]:
    try:
        for e in _os.listdir(d):
            check(d + "/" + e + "/a-secret.txt")
            check(d + "/" + e + "/workspace/a-secret.txt")
    except OSError:
        pass
out(hits=hits)
)");
  verdict(kWalled, "another session's files, by any path", j.is_object() && j["hits"].empty(),
          j.is_object() ? "read through " + j["hits"].dump() : brief(last_));
}

TEST_P(Leaks, OtherSessionProcesses) {
  auto a = new_session("A");
  auto ex = start_sh("exec -a @M@-A sleep 30", 20s, a.get());
  std::this_thread::sleep_for(300ms);
  auto j = py_json(R"(
import signal
hits, killed = [], []
for p in [p for p in _os.listdir("/proc") if p.isdigit()]:
    try:
        if b"@M@-A" in open("/proc/%s/cmdline" % p, "rb").read():
            hits.append(int(p))
    except OSError:
        pass
for p in hits:
    try:
        _os.kill(p, signal.SIGKILL)
        killed.append(p)
    except OSError:
        pass
out(hits=hits, killed=killed)
)");
  const bool alive = !ex->done();
  ex->cancel();
  verdict(kWalled, "another session's processes seen or killed",
          j.is_object() && j["hits"].empty() && alive,
          j.is_object() ? fmt::format("seen {}, killed {}; A's sleep {}", j["hits"].dump(), j["killed"].dump(),
                                      alive ? "survived" : "died")
                        : brief(last_));
}

TEST_P(Leaks, HostProcesses) {
  host::HostSleep sleeper("hh" + marker_.substr(2) + "-host", 60);
  define("HOST_MARK", "hh" + marker_.substr(2));
  auto j = py_json(R"(
hits, n = [], 0
for p in [p for p in _os.listdir("/proc") if p.isdigit()]:
    n += 1
    try:
        if b"@HOST_MARK@" in open("/proc/%s/cmdline" % p, "rb").read():
            hits.append(int(p))
    except OSError:
        pass
out(hits=hits, visible=n)
)");
  verdict(kWalled, "host processes visible in /proc", j.is_object() && j["hits"].empty(),
          j.is_object() ? fmt::format("host sleep seen as {}; {} processes visible", j["hits"].dump(),
                                      j["visible"].get<int>())
                        : brief(last_));
}

TEST_P(Leaks, Hostname) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  auto r = py("import socket\nsocket.gethostname()");
  last_ = r;
  const std::string inside = r.result.value_or("");
  verdict(kWalled, "the host's name", !inside.empty() && inside != "'" + std::string(host) + "'",
          fmt::format("inside {} vs host '{}'", inside, host));
}

}  // namespace hostile
