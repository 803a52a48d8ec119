// What sandbox::Sandbox decides for every front-end (issue 12, deliverable 1): the reaper
// (Options::idle_timeout, lifetime) and the limits of a request (the one parse, the one
// narrowing rule). Timings have wide margins: the machine running the tests is shared.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "sandbox/sandbox.hpp"

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

Options rlimit_options() {
  Options o;
  o.isolation = "rlimit";
  o.preload = {};
  return o;
}

// Waits up to `limit` for `done`; whether it came true.
template <typename F>
bool eventually(F&& done, std::chrono::milliseconds limit = 20s) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

TEST(Reaper, ClosesAnIdleSession) {
  auto o = rlimit_options();
  o.idle_timeout = 1s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "idle"});
  EXPECT_TRUE(eventually([&] { return !sb.find("idle"); })) << "an idle session outlived 20 s";
  EXPECT_EQ(s->status(), SessionStatus::closed);
  EXPECT_EQ(sb.stats().sessions_closed, 1u);
}

TEST(Reaper, KeepsASessionWhileItRunsThenClosesIt) {
  auto o = rlimit_options();
  o.idle_timeout = 1s;
  o.limits.timeout = 60s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "busy"});
  auto ex = s->start({.language = Language::shell, .code = "sleep 4"});
  std::this_thread::sleep_for(2500ms);
  EXPECT_TRUE(sb.find("busy")) << "a running execution counts as use";
  EXPECT_EQ(ex->wait().status, Status::finished);
  EXPECT_TRUE(eventually([&] { return !sb.find("busy"); })) << "idle after its execution, yet kept";
}

TEST(Reaper, ClosesASessionAtItsLifetimeThoughUsed) {
  auto o = rlimit_options();
  o.lifetime = 2s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "old"});
  auto t0 = Clock::now();
  bool gone = eventually([&] {
    try {
      s->run({.language = Language::shell, .code = "true"});  // in use all along
    } catch (const Error&) {
      // closed under us: what the test waits for
    }
    return !sb.find("old");
  });
  EXPECT_TRUE(gone) << "the session outlived its lifetime by 20 s";
  EXPECT_GE(Clock::now() - t0, 1500ms) << "closed before its lifetime";
}

// The reaper sweeps every quarter of the shortest of idle_timeout and lifetime (at least
// 100 ms, at most 2 s): 750 ms for the 3 s below.
constexpr auto kSweep = 750ms;

TEST(Reaper, AQuickExecAfterALongOneKillsNothing) {
  auto o = rlimit_options();
  o.idle_timeout = 3s;
  o.limits.timeout = 60s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "long"});
  auto slow = s->start({.language = Language::shell, .code = "sleep 8; echo done"});
  std::this_thread::sleep_for(1s);
  Result quick = s->run({.language = Language::shell, .code = "echo quick"});
  EXPECT_EQ(quick.status, Status::finished) << to_json(quick);
  EXPECT_EQ(quick.stdout_text, "quick\n");
  // The latest execution ended at ~1 s; the sleep runs on past the idle timeout.
  ASSERT_TRUE(slow->wait_for(30s));
  Result r = slow->snapshot({});
  EXPECT_EQ(r.status, Status::finished) << "a running execution was reaped: " << to_json(r);
  EXPECT_EQ(r.stdout_text, "done\n");
  EXPECT_TRUE(sb.find("long"));
}

TEST(Reaper, ReadingResultsCountsAsUse) {
  auto o = rlimit_options();
  o.idle_timeout = 3s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "read"});
  auto ex = s->start({.language = Language::shell, .code = "echo hi"});
  ASSERT_EQ(ex->wait().status, Status::finished);
  // No request but reads of the result, each second, for three idle timeouts.
  for (int i = 0; i < 9; ++i) {
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(ex->snapshot({}).stdout_text, "hi\n");
    ASSERT_TRUE(sb.find("read")) << "reaped after " << i + 1 << " s though its result was read";
  }
  // Unread, it goes.
  EXPECT_TRUE(eventually([&] { return !sb.find("read"); })) << "idle yet kept for 20 s";
}

TEST(Reaper, ClosesAnUnusedSessionAfterItsIdleTimeout) {
  auto o = rlimit_options();
  o.idle_timeout = 3s;
  Sandbox sb(o);
  auto t0 = Clock::now();
  auto s = sb.create_session({.id = "unused"});
  ASSERT_TRUE(eventually([&] { return !sb.find("unused"); }, 3s + kSweep + 10s)) << "idle yet kept";
  EXPECT_GE(Clock::now() - t0, 2900ms) << "closed before its idle timeout";
  EXPECT_EQ(s->status(), SessionStatus::closed);
}

TEST(Reaper, LifetimeEndsARunningExecutionAsLifetime) {
  auto o = rlimit_options();
  o.lifetime = 3s;
  o.limits.timeout = 60s;
  Sandbox sb(o);
  auto t0 = Clock::now();
  auto s = sb.create_session({.id = "mortal"});
  auto ex = s->start({.language = Language::shell, .code = "sleep 30"});
  // Lifetime, a sweep, and close()'s shutdown (up to 2 s), with a wide margin.
  ASSERT_TRUE(ex->wait_for(3s + kSweep + 2s + 8s)) << "the lifetime did not end a running execution";
  const auto took = Clock::now() - t0;
  Result r = ex->snapshot({});
  EXPECT_EQ(r.status, Status::killed) << to_json(r);
  EXPECT_EQ(r.termination, Termination::lifetime) << to_json(r);
  ASSERT_TRUE(r.note);
  EXPECT_NE(r.note->find("lifetime"), std::string::npos) << *r.note;
  EXPECT_GE(took, 2900ms) << "ended before the session's lifetime";
  EXPECT_FALSE(sb.find("mortal"));
}

TEST(Reaper, OffByDefault) {
  Sandbox sb(rlimit_options());
  EXPECT_EQ(sb.options().idle_timeout.count(), 0);
  sb.create_session({.id = "kept"});
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(sb.find("kept"));
}

// The live sandbox-agent processes descended from this test (host pids, whatever the
// backend's pid namespace), from /proc.
std::vector<int> our_agents() {
  std::map<int, int> parent;
  std::map<int, std::string> comm;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces, so split at the last ')'.
    auto close = line.rfind(')');
    auto open = line.find('(');
    if (close == std::string::npos || open == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    if (state == 'Z' || state == 'X') continue;
    const int pid = std::stoi(name);
    parent[pid] = ppid;
    comm[pid] = line.substr(open + 1, close - open - 1);
  }
  std::vector<int> out;
  const int self = ::getpid();
  for (const auto& [pid, c] : comm) {
    if (c != "sandbox-agent") continue;
    for (int p = parent[pid], hops = 0; p > 1 && hops < 64; p = parent[p], ++hops) {
      if (p == self) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

// A SIGSTOPped agent, let go (continued, then killed if it is still there) however the test ends.
struct Stopped {
  int pid;
  ~Stopped() {
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
  }
};

void stopped_agent_times_out(Sandbox& sb) {
  auto s = sb.create_session({.id = "stopped"});
  ASSERT_EQ(s->run({.code = "1+1"}).result, "2");  // the python kernel is up
  auto agents = our_agents();
  ASSERT_EQ(agents.size(), 1u) << "expected one agent under this process";
  Stopped stopped{agents[0]};
  ASSERT_EQ(::kill(stopped.pid, SIGSTOP), 0);
  auto t0 = Clock::now();
  auto ex = s->start({.code = "1+1", .timeout = 2s});
  // Its timeout, the backstop's grace (5 s) and a margin: never minutes.
  ASSERT_TRUE(ex->wait_for(20s)) << "a stopped agent kept an execution Running for 20 s";
  const auto took = Clock::now() - t0;
  Result r = ex->snapshot({});
  EXPECT_EQ(r.status, Status::timeout) << to_json(r);
  EXPECT_EQ(r.termination, Termination::timeout);
  ASSERT_TRUE(r.note);
  EXPECT_NE(r.note->find("did not answer"), std::string::npos) << *r.note;
  EXPECT_GE(took, 2s) << "ended before its own timeout";
  // The stopped agent was torn down; the next execution gets a new one.
  r = s->run({.language = Language::shell, .code = "echo ok"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.stdout_text, "ok\n");
  r = s->run({.code = "40+2"});
  EXPECT_EQ(r.result, "42") << to_json(r);
  agents = our_agents();
  EXPECT_EQ(std::count(agents.begin(), agents.end(), stopped.pid), 0) << "the stopped agent is still there";
}

TEST(Backstop, AStoppedAgentsExecutionTimesOutFromSubmission) {
  auto o = rlimit_options();
  o.limits.timeout = 60s;
  Sandbox sb(o);
  stopped_agent_times_out(sb);
}

TEST(Backstop, AStoppedAgentsExecutionTimesOutInNamespaces) {
  auto o = rlimit_options();
  o.isolation = "namespaces";
  o.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
  o.limits.timeout = 60s;
  std::unique_ptr<Sandbox> sb;
  try {
    sb = std::make_unique<Sandbox>(o);
  } catch (const Error& e) {
    GTEST_SKIP() << "namespaces backend unavailable: " << e.what();
  }
  stopped_agent_times_out(*sb);
}

TEST(Backstop, AQueuedExecutionCountsFromTheOnesBeforeIt) {
  auto o = rlimit_options();
  o.limits.timeout = 60s;
  Sandbox sb(o);
  auto s = sb.create_session({});
  ASSERT_EQ(s->run({.code = "1+1"}).result, "2");
  // The second waits ~6 s behind the first, longer than its own timeout plus the grace: the
  // host's clock for it starts when the first one's may end, not at its submission.
  auto first = s->start({.code = "import time\ntime.sleep(6)", .timeout = 20s});
  auto second = s->start({.code = "1+1", .timeout = 500ms});
  ASSERT_TRUE(second->wait_for(40s));
  Result r = second->snapshot({});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.result, "2");
  EXPECT_EQ(first->wait().status, Status::finished);
}

TEST(Limits, OneParseRoundsOnce) {
  const Limits base;
  Limits l = parse_limits(R"({"timeout": 2.5, "cpu_time": 0.2, "memory_bytes": 268435456, "cpus": 0.5,
                              "disk_bytes": null})",
                          base);
  EXPECT_EQ(l.timeout, 2500ms);
  EXPECT_EQ(l.cpu_time, 1s) << "cpu_time rounds up to a whole second";
  EXPECT_EQ(l.memory_bytes, 256u << 20);
  EXPECT_EQ(l.cpus, 0.5);
  EXPECT_EQ(l.disk_bytes, base.disk_bytes) << "null is absent";
  Limits k;
  set_limit(k, "timeout", 0.0004);
  EXPECT_EQ(k.timeout, 0ms) << "nearest millisecond";
  set_limit(k, "timeout", 0.0006);
  EXPECT_EQ(k.timeout, 1ms);

  EXPECT_EQ(code_of([&] { parse_limits(R"({"memory_bytes": 1.5})", base); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { parse_limits(R"({"memory_bytes": "lots"})", base); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { parse_limits(R"({"timeout": -1})", base); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { parse_limits("[1]", base); }), errc::invalid_argument);
  try {
    parse_limits(R"({"tiemout": 5})", base);
    ADD_FAILURE() << "an unknown field was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "unknown field 'tiemout' in limits");
  }
}

TEST(Limits, ARequestMayOnlyLowerTheCeiling) {
  Limits ceiling;
  ceiling.timeout = 30s;
  Limits lower = ceiling;
  lower.timeout = 5s;
  lower.memory_bytes = 64u << 20;
  EXPECT_EQ(narrow(ceiling, lower).timeout, 5s);
  EXPECT_EQ(narrow(ceiling, ceiling).timeout, 30s) << "equal is not above";
  for (const char* field : {"timeout", "memory_bytes", "cpus", "result_bytes", "open_files"}) {
    Limits higher = ceiling;
    set_limit(higher, field, std::string_view(field) == "timeout" ? 31.0
                             : std::string_view(field) == "cpus"  ? 2.0
                             : std::string_view(field) == "open_files" ? 4096.0
                                                                      : static_cast<double>(2ull << 30));
    try {
      narrow(ceiling, higher);
      ADD_FAILURE() << field << " above the ceiling was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::permission_denied) << field;
      EXPECT_NE(e.message().find(field), std::string::npos) << e.message();
    }
  }
}

}  // namespace
