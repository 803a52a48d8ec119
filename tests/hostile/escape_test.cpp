// Process escape: daemons that try to outlive their session, kill -1, zombies, killing the
// agent, closing a session while its code runs. The host check in verdict() is the real
// assertion here: after close, nothing the session started may still run.
#include <fmt/format.h>

#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {

TEST_P(Escape, DoubleForkDaemon) {
  auto j = py_json(R"(
import time
pid = _os.fork()
if pid == 0:
    _os.setsid()
    if _os.fork() == 0:
        for fd in (0, 1, 2):
            _os.close(fd)
        _os.execv("/bin/sleep", ["@M@-daemon", "300"])
    _os._exit(0)
_os.waitpid(pid, 0)
time.sleep(0.3)
out(started=True)
)");
  // While the session lives, its daemon is its own business; it must die with the session.
  verdict(kAll, "a double-forked daemon outliving its session", j.is_object(), brief(last_));
}

TEST_P(Escape, SetsidEscape) {
  auto r = sh("setsid -f bash -c 'trap \"\" TERM HUP; exec -a @M@-setsid sleep 300' </dev/null >/dev/null 2>&1; "
              "nohup bash -c 'exec -a @M@-nohup sleep 300' </dev/null >/dev/null 2>&1 & disown; echo started");
  last_ = r;
  verdict(kAll, "setsid/nohup processes outliving their session", r.status == sandbox::Status::finished, brief(r));
}

TEST_P(Escape, KillMinusOne) {
  if (backend() == "rlimit") {
    // Every rlimit session, and anyone else's process running as uid 65534 on this shared
    // host, would be killed: the attack is real, so it is not run here.
    not_run(kWalled, "kill -1 reaching processes outside the session",
            "rlimit runs every session as uid 65534; kill(-1) would kill every such process on the host");
    return;
  }
  host::HostSleep as_root("hh" + marker_.substr(2) + "-root", 60);
  host::HostSleep as_nobody("hh" + marker_.substr(2) + "-nobody", 60, 65534);
  host::HostSleep as_mapped("hh" + marker_.substr(2) + "-mapped", 60, 101000);
  auto a = new_session("A");
  auto ex = start_sh("exec -a @M@-A sleep 30", 20s, a.get());
  std::this_thread::sleep_for(300ms);
  auto r = py(R"(
import signal
try:
    _os.kill(-1, signal.SIGKILL)
except OSError as e:
    print("kill -1:", e)
)", 5s);
  last_ = r;
  std::this_thread::sleep_for(200ms);
  const bool host_alive = as_root.alive() && as_nobody.alive() && as_mapped.alive();
  const bool a_alive = !ex->done();
  ex->cancel();
  verdict(kWalled, "kill -1 reaching processes outside the session", host_alive && a_alive,
          fmt::format("host sleeps {}; session A's process {}; {}", host_alive ? "alive" : "KILLED",
                      a_alive ? "alive" : "KILLED", brief(r)));
}

TEST_P(Escape, ZombiesReaped) {
  // Orphans whose parents exit at once end up with the agent, which must reap them.
  py(R"(
import time
for i in range(20):
    pid = _os.fork()
    if pid == 0:
        if _os.fork() == 0:
            time.sleep(0.3)
            _os._exit(0)
        _os._exit(0)
    _os.waitpid(pid, 0)
time.sleep(1.0)
)");
  int zombies = 0;
  for (int i = 0; i < 20; ++i) {
    zombies = 0;
    for (auto& p : s().processes())
      if (p.state == sandbox::ProcessState::zombie) ++zombies;
    if (!zombies) break;
    std::this_thread::sleep_for(100ms);
  }
  verdict(kAll, "zombies left unreaped", zombies == 0, fmt::format("{} zombies in the session", zombies));
}

TEST_P(Escape, KillAgent) {
  auto r = py(R"(
import signal
for pid in (_os.getppid(), 1):
    try:
        _os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
)", 5s);
  std::this_thread::sleep_for(300ms);
  sandbox::Result after;
  try {
    after = py("1+1");
  } catch (const sandbox::Error& e) {
    after.stderr_text = e.what();
  }
  last_ = after;
  verdict(kAll, "the code killing its agent", after.result == "2",
          fmt::format("attack {}; next execution {}", brief(r), brief(after)));
}

TEST_P(Escape, CloseWhileRunning) {
  auto ex = start_sh("for i in 1 2 3 4; do (trap '' TERM HUP INT; exec -a @M@-busy sleep 300) & done; "
                     "setsid bash -c 'exec -a @M@-lead sleep 300' & sleep 300",
                     30s);
  std::this_thread::sleep_for(500ms);
  snapshot();
  // verdict() closes the session while all of this runs.
  verdict(kAll, "processes of an execution still running at close", true, "closed mid-execution");
}

}  // namespace hostile
