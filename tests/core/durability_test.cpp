// Durable sessions (DESIGN section 7) in the library: a Sandbox on a state dir leaves its
// sessions running when it ends, and the next Sandbox on that dir adopts them: variables,
// files, a running execution's whole output, stored results. One that cannot be adopted is
// reported lost, never recreated.
#include "sandbox/sandbox.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

using namespace sandbox;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

template <typename F>
errc code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

class DurabilityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto info = isolation::describe_backend(GetParam());
    if (!info || !info->support.available) GTEST_SKIP() << GetParam() << " is not available on this host";
    dir_ = fs::temp_directory_path() / ("sandbox-durable-" + GetParam() + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) {
      // Whatever a failed test left: a last Sandbox that closes it all.
      try {
        Options o = options();
        o.close_sessions_on_exit = true;
        Sandbox sb(o);
        for (auto& s : sb.sessions()) sb.close_session(s->id(), s->owner());
      } catch (const std::exception&) {
      }
      fs::remove_all(dir_, ec);
    }
  }
  Options options() const {
    Options o;
    o.state_dir = dir_;
    o.isolation = GetParam();
    o.limits.timeout = 30s;
    o.preload = {};
    return o;
  }
  fs::path dir_;
};

std::string counted(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += std::to_string(i) + "\n";
  return s;
}

}  // namespace

TEST_P(DurabilityTest, TheNextSandboxAdoptsVariablesFilesAndARunningExecution) {
  std::string first_id, long_id, ws;
  {
    Sandbox sb(options());
    auto s = sb.create_session({.id = "a", .owner = "t1"});
    Result r = s->run({.code = "x = 41"});
    ASSERT_EQ(r.status, Status::finished) << r.note.value_or("");
    first_id = r.execution_id;
    s->files().upload("keep.txt", "kept\n");
    auto ex = s->start({.language = Language::shell, .code = "for i in $(seq 1 30); do echo $i; sleep 0.1; done"});
    long_id = ex->id();
    ASSERT_TRUE(ex->wait_change(0, 0, 10s));  // it runs and prints before the Sandbox goes
    ws = s->workspace().string();
  }  // released: the agent runs on
  {
    Sandbox sb(options());
    auto s = sb.find("a", "t1");
    ASSERT_TRUE(s) << "the session was not adopted";
    EXPECT_EQ(s->status(), SessionStatus::ready);
    EXPECT_EQ(s->workspace().string(), ws);
    EXPECT_FALSE(sb.find("a", "t2")) << "owners stay apart";
    Result r = s->run({.code = "x + 1"});
    EXPECT_EQ(r.result.value_or(""), "42") << r.note.value_or("") << r.stderr_text;
    EXPECT_EQ(s->files().download("keep.txt"), "kept\n");
    Result whole = s->execution(long_id)->wait();
    EXPECT_EQ(whole.status, Status::finished) << whole.note.value_or("");
    EXPECT_EQ(whole.stdout_text, counted(30)) << "every line, in order, none twice";
    Result stored = s->execution(first_id)->snapshot({});
    EXPECT_EQ(stored.status, Status::finished) << "results from before the restart are served";
    EXPECT_NE(s->latest()->id(), long_id);  // x + 1 came after
  }
  {
    Sandbox sb(options());  // a second restart, nothing running this time
    auto s = sb.find("a", "t1");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->run({.code = "x"}).result.value_or(""), "41");
    EXPECT_EQ(s->execution(long_id)->snapshot({}).stdout_text, counted(30));
    sb.close_session("a", "t1");
    EXPECT_FALSE(fs::exists(ws));
  }
  Sandbox sb(options());
  EXPECT_TRUE(sb.sessions().empty()) << "a closed session stays closed";
}

TEST_P(DurabilityTest, OneServerPerStateDirectory) {
  Sandbox sb(options());
  try {
    Sandbox second(options());
    FAIL() << "two Sandboxes on one state dir";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::already_exists);
    EXPECT_NE(std::string(e.what()).find(std::to_string(::getpid())), std::string::npos) << e.what();
  }
}

TEST_P(DurabilityTest, CloseSessionsOnExitKeepsNothing) {
  Options o = options();
  o.close_sessions_on_exit = true;
  std::string ws;
  {
    Sandbox sb(o);
    ws = sb.create_session({.id = "gone"})->workspace().string();
  }
  EXPECT_FALSE(fs::exists(ws));
  Sandbox sb(options());
  EXPECT_TRUE(sb.sessions().empty());
}

// The agent of an rlimit session is the parent of its shell runs, a host pid.
TEST_P(DurabilityTest, ASessionWhoseAgentDiedIsReportedLostNotRecreated) {
  if (GetParam() != "rlimit") GTEST_SKIP() << "the agent's host pid is known from inside only with rlimit";
  pid_t agent = 0;
  {
    Sandbox sb(options());
    auto s = sb.create_session({.id = "doomed"});
    s->files().upload("notes.txt", "still here\n");
    Result r = s->run({.language = Language::shell, .code = "echo $PPID"});
    agent = std::stoi(r.stdout_text);
    sb.create_session({.id = "fine"});
  }
  ASSERT_GT(agent, 1);
  ASSERT_EQ(::kill(agent, SIGKILL), 0);
  // It was this process's child (rlimit spawns it): reaped here, or it lingers as a zombie.
  for (int i = 0; i < 100 && ::waitpid(agent, nullptr, WNOHANG) == 0; ++i) std::this_thread::sleep_for(50ms);
  {
    Sandbox sb(options());
    auto lost = sb.find("doomed");
    ASSERT_TRUE(lost);
    EXPECT_EQ(lost->status(), SessionStatus::lost);
    EXPECT_EQ(code_of([&] { lost->start({.code = "1"}); }), errc::session_lost);
    EXPECT_EQ(code_of([&] { lost->processes(); }), errc::session_lost);
    EXPECT_EQ(code_of([&] { sb.create_session({.id = "doomed"}); }), errc::already_exists);
    EXPECT_EQ(lost->files().download("notes.txt"), "still here\n") << "its workspace is kept";
    auto fine = sb.find("fine");
    ASSERT_TRUE(fine);
    EXPECT_EQ(fine->run({.code = "1 + 1"}).result.value_or(""), "2");
  }
  {
    Sandbox sb(options());  // still lost after another restart, until deleted
    ASSERT_TRUE(sb.find("doomed"));
    EXPECT_EQ(sb.find("doomed")->status(), SessionStatus::lost);
    auto ws = sb.find("doomed")->workspace();
    sb.close_session("doomed");
    EXPECT_FALSE(fs::exists(ws));
  }
  Sandbox sb(options());
  EXPECT_FALSE(sb.find("doomed"));
}

// This process's child named sandbox-agent (a released agent stays the child of who launched it).
pid_t child_agent() {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string line;
    std::getline(in, line);
    auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (line.substr(open + 1, close - open - 1) == "sandbox-agent" && ppid == ::getpid()) return std::stoi(name);
  }
  return 0;
}

// An agent that is alive but does not answer (stopped) is not adopted: the session is lost,
// and its workspace (a tmpfs under namespaces) is kept, not torn down with the attempt.
TEST_P(DurabilityTest, AHungAgentIsLostWithItsWorkspaceKept) {
  {
    Sandbox sb(options());
    auto s = sb.create_session({.id = "hung"});
    s->files().upload("notes.txt", "kept\n");
  }
  const pid_t agent = child_agent();
  ASSERT_GT(agent, 1) << "the released agent is not this process's child";
  ASSERT_EQ(::kill(agent, SIGSTOP), 0);
  {
    Sandbox sb(options());  // waits for the hung agent's HELLO, a bounded time
    auto s = sb.find("hung");
    ::kill(agent, SIGCONT);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status(), SessionStatus::lost);
    EXPECT_EQ(s->files().download("notes.txt"), "kept\n");
    sb.close_session("hung");
  }
  for (int i = 0; i < 100 && ::waitpid(agent, nullptr, WNOHANG) == 0; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_NE(::kill(agent, 0), 0) << "the hung agent was ended with its lost session";
}

INSTANTIATE_TEST_SUITE_P(Backends, DurabilityTest, ::testing::Values("rlimit", "namespaces"),
                         [](const auto& p) { return p.param; });
