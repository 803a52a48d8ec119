// The library end to end on the portable `rlimit` backend: real agent, real interpreters.
#include "sandbox/sandbox.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

Options rlimit_options() {
  Options o;
  o.isolation = "rlimit";
  o.limits.timeout = 10s;
  o.preload = {};  // most tests need no matplotlib; the plot test asks for it
  return o;
}

template <typename F>
errc code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

class SessionTest : public ::testing::Test {
 protected:
  Sandbox sb{rlimit_options()};
  std::shared_ptr<Session> s = sb.create_session({});
};

}  // namespace

TEST_F(SessionTest, LastExpressionAndStateAcrossExecutions) {
  Result r = s->run({.code = "x = 20\nx * 2 + 2"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.result, "42");
  r = s->run({.code = "x + 1"});
  EXPECT_EQ(r.result, "21") << "state must persist across executions";
  r = s->run({.code = "x", .fresh = true});
  EXPECT_EQ(r.status, Status::failed) << "a fresh interpreter has no x";
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->name, "NameError");
}

TEST_F(SessionTest, ExceptionIsFailedWithNameValueTraceback) {
  Result r = s->run({.code = "1/0"});
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->name, "ZeroDivisionError");
  EXPECT_EQ(r.error->value, "division by zero");
  EXPECT_NE(r.error->traceback.find("ZeroDivisionError"), std::string::npos);
}

TEST_F(SessionTest, StdoutStderrAndStdin) {
  Result r = s->run({.code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\ninput()",
                     .stdin_text = "typed\n"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.stdout_text, "out\n");
  EXPECT_EQ(r.stderr_text, "err\n");
  EXPECT_EQ(r.result, "'typed'");
}

TEST_F(SessionTest, InputWithoutStdinDoesNotBlock) {
  Result r = s->run({.code = "input()", .timeout = 5s});
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->name, "EOFError");
}

TEST_F(SessionTest, TimeoutKillsAndSessionKeepsWorking) {
  s->run({.code = "y = 5"});
  auto t0 = std::chrono::steady_clock::now();
  Result r = s->run({.code = "import time\ntime.sleep(30)", .timeout = 1s});
  EXPECT_EQ(r.status, Status::timeout);
  EXPECT_EQ(r.termination, Termination::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
  r = s->run({.code = "1+1"});
  EXPECT_EQ(r.status, Status::finished);
  EXPECT_EQ(r.result, "2");
  r = s->run({.code = "y"});
  EXPECT_EQ(r.status, Status::failed) << "the killed kernel's state is gone";
}

TEST_F(SessionTest, PartialOutputWhileRunning) {
  auto ex = s->start({.code = "import time\nprint('early', flush=True)\ntime.sleep(2)\nprint('late')"});
  // print() may arrive as two writes: wait for the whole line.
  Result partial = ex->snapshot();
  for (int i = 0; i < 50 && partial.stdout_text != "early\n"; ++i) {
    ex->wait_change(partial.stdout_text.size(), 0, 100ms);
    partial = ex->snapshot();
  }
  EXPECT_EQ(partial.status, Status::running);
  EXPECT_EQ(partial.stdout_text, "early\n");
  Result r = ex->wait();
  EXPECT_EQ(r.stdout_text, "early\nlate\n");
  Result page = ex->snapshot({.offset = 6, .limit = 2});
  EXPECT_EQ(page.stdout_text, "la");
  EXPECT_EQ(page.stdout_offset, 6u);
  EXPECT_EQ(page.stdout_total, 11u);
}

TEST_F(SessionTest, OutputFloodIsCapped) {
  Result r = s->run({.code = "import sys\nfor i in range(300000): sys.stdout.write('x' * 20)\n"
                             "for i in range(300000): sys.stderr.write('y' * 20)"});
  EXPECT_EQ(r.status, Status::finished);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.stdout_text.size(), 1u << 20);
  EXPECT_EQ(r.stderr_text.size(), 1u << 20);
}

TEST_F(SessionTest, ShellExitCodeAndBackgroundChildren) {
  Result r = s->run({.language = Language::shell, .code = "echo hi; exit 3"});
  EXPECT_EQ(r.status, Status::failed);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.stdout_text, "hi\n");
  auto t0 = std::chrono::steady_clock::now();
  r = s->run({.language = Language::shell, .code = "sleep 60 & echo started"});
  EXPECT_EQ(r.status, Status::finished);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "a background child must not hold the execution";
  // The background child may still be a forked shell about to exec sleep: look a few times.
  std::vector<ProcessInfo> procs;
  auto sleeper = [](const ProcessInfo& p) { return p.cmdline.find("sleep 60") != std::string::npos; };
  for (int i = 0; i < 40; ++i) {
    procs = s->processes();
    if (std::any_of(procs.begin(), procs.end(), sleeper)) break;
    std::this_thread::sleep_for(50ms);
  }
  auto it = std::find_if(procs.begin(), procs.end(), sleeper);
  ASSERT_NE(it, procs.end()) << "the background child is a process of the session";
  s->kill(it->pid);
  EXPECT_EQ(code_of([&] { s->kill(1); }), errc::not_found);
  EXPECT_EQ(code_of([&] { s->kill(::getpid()); }), errc::not_found);
}

TEST_F(SessionTest, NodeResultConsoleAndPromise) {
  Result r = s->run({.language = Language::nodejs, .code = "[1,2].map(x => x * 2)"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  ASSERT_TRUE(r.result);
  EXPECT_NE(r.result->find('2'), std::string::npos);
  EXPECT_NE(r.result->find('4'), std::string::npos);
  r = s->run({.language = Language::nodejs, .code = "console.log('hi')"});
  EXPECT_EQ(r.stdout_text, "hi\n");
  r = s->run({.language = Language::nodejs, .code = "Promise.resolve(5)"});
  EXPECT_EQ(r.result, "5");
  r = s->run({.language = Language::nodejs, .code = "throw new TypeError('bad')"});
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->name, "TypeError");
}

TEST_F(SessionTest, FilesAreSharedWithCode) {
  s->files().upload("data/in.txt", "hello");
  Result r = s->run({.code = "open('data/in.txt').read()"});
  EXPECT_EQ(r.result, "'hello'");
  r = s->run({.language = Language::shell, .code = "echo made > out.txt"});
  EXPECT_EQ(s->files().download("out.txt"), "made\n");
  EXPECT_EQ(code_of([&] { s->files().upload("data/in.txt", "x"); }), errc::already_exists);
}

TEST_F(SessionTest, CancelKills) {
  auto ex = s->start({.language = Language::shell, .code = "sleep 30"});
  std::this_thread::sleep_for(200ms);
  ex->cancel();
  EXPECT_TRUE(ex->wait_for(5s));
  EXPECT_EQ(ex->status(), Status::killed);
}

TEST_F(SessionTest, AgentKilledRecovers) {
  // Code cannot kill its own agent (it runs under another uid) ...
  Result r = s->run({.language = Language::shell, .code = "kill -9 $PPID 2>/dev/null || echo refused; echo $PPID"});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  ASSERT_EQ(r.stdout_text.substr(0, 8), "refused\n") << to_json(r);
  const int agent_pid = std::stoi(r.stdout_text.substr(8));
  ASSERT_GT(agent_pid, 1);
  // ... but an agent that dies anyway (killed here from the host) must not wedge the session.
  auto ex = s->start({.language = Language::shell, .code = "sleep 5", .timeout = 8s});
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(::kill(agent_pid, SIGKILL), 0);
  ASSERT_TRUE(ex->wait_for(20s));
  EXPECT_NE(ex->status(), Status::finished);
  r = s->run({.code = "1+1"});
  EXPECT_EQ(r.result, "2") << to_json(r);
}

TEST(Plot, FigureCapturedAsPng) {
  Options o = rlimit_options();
  o.preload = Options{}.preload;  // the default: numpy and pyplot, warmed with one render
  Sandbox sb(o);
  auto s = sb.create_session({});
  Result r = s->run({.code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].mime, "image/png");
  EXPECT_EQ(r.images[0].data.substr(0, 8), "\x89PNG\r\n\x1a\n");  // the PNG signature, as bytes
  r = s->run({.code = "import matplotlib.pyplot as plt\nplt.figure(); plt.plot([3, 1])"});
  EXPECT_EQ(r.images.size(), 1u) << "a figure left open is captured at the end";
}

TEST_F(SessionTest, QueuedRunsTimeoutCountsFromItsStartNotItsSubmission) {
  // The second run waits ~7 s behind the first; its own 1 s limit (and the host's backstop
  // of limit + 5 s) must count from when it starts, or it would be cut while still queued.
  auto first = s->start({.code = "import time\ntime.sleep(7)\n'slept'", .timeout = 10s});
  auto second = s->start({.code = "1+1", .timeout = 1s});
  Result r2 = second->wait();
  Result r1 = first->wait();
  EXPECT_EQ(r1.status, Status::finished) << to_json(r1);
  EXPECT_EQ(r1.result, "'slept'");
  EXPECT_EQ(r2.status, Status::finished) << to_json(r2);
  EXPECT_EQ(r2.result, "2");
}

// Issue 11, item 5: the host caps the result with its own limit, whole UTF-8 characters only.
TEST(ResultCaps, ResultOverItsCapIsCutWithANote) {
  Options o = rlimit_options();
  o.limits.result_bytes = 4096;
  Sandbox sb(o);
  auto s = sb.create_session({});
  Result r = s->run({.code = "'\\u00e9' * 10000"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  ASSERT_TRUE(r.result);
  EXPECT_LE(r.result->size(), 4096u);
  EXPECT_GT(r.result->size(), 4000u);
  // Every cut character is whole: the repr's quote, then two-byte characters only.
  EXPECT_EQ((r.result->size() - 1) % 2, 0u);
  EXPECT_TRUE(r.truncated);
  ASSERT_TRUE(r.note);
  EXPECT_NE(r.note->find("result cut to 4096"), std::string::npos) << *r.note;
  r = s->run({.code = "'short'"});
  EXPECT_EQ(r.result, "'short'");
  EXPECT_FALSE(r.truncated);
}

// The history a session keeps is bounded in bytes: the oldest finished executions go, the
// latest stays whatever its size.
TEST(ResultCaps, HistoryIsBoundedInBytes) {
  Options o = rlimit_options();
  o.limits.history_bytes = 4u << 20;
  Sandbox sb(o);
  auto s = sb.create_session({});
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    auto ex = s->start({.code = "print('A' * ((1 << 20) - 100))"});
    ids.push_back(ex->id());
    Result r = ex->wait();
    ASSERT_EQ(r.status, Status::finished) << to_json(r);
  }
  int kept = 0;
  for (const auto& id : ids) {
    try {
      s->execution(id);
      ++kept;
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::not_found);
    }
  }
  EXPECT_GE(kept, 1);
  EXPECT_LE(kept, 4) << "10 executions of 1 MiB each, 4 MiB of history";
  EXPECT_EQ(s->latest()->id(), ids.back());
  EXPECT_NO_THROW(s->execution(ids.back()));
  EXPECT_THROW(s->execution(ids.front()), Error);
}

