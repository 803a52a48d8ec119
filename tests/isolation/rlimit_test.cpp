// The rlimit backend with real processes: the agent is replaced by a shell script in a test
// runtime dir, so each test sees how the backend started it.
#include "isolation/backends.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "sandbox/error.hpp"
#include "isolation/test_io.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace sandbox::isolation;
using namespace std::chrono_literals;

namespace {

// Gone, or a zombie waiting for whoever adopted it.
bool dead(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  auto stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || (close + 2 < stat.size() && stat[close + 2] == 'Z');
}

class RlimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "rlimit_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0711);  // uid 65533/65534 must reach the runtime and workspace
    fs::create_directories(dir_ / "runtime");
    fs::create_directories(dir_ / "session" / "workspace");
    ::chmod((dir_ / "runtime").c_str(), 0755);
    ::chmod((dir_ / "session").c_str(), 0711);
    write(dir_ / "runtime" / "sandbox-agent", "#!/bin/sh\nexec sleep 300\n", fs::perms(0755));
    spec_.session_id = "rlimit-test";
    spec_.session_dir = dir_ / "session";
    spec_.workspace = dir_ / "session" / "workspace";
    spec_.runtime_dir = dir_ / "runtime";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path dir_;
  LaunchSpec spec_;
};

// PR_SET_PDEATHSIG is cleared by a uid change: armed before setuid it never fired, and an
// agent whose server was killed lived on. A helper process launches the agent and is then
// SIGKILLed; the agent must die with it.
TEST_F(RlimitTest, AgentDiesWithItsParent) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    ::close(p[0]);
    pid_t agent = -1;
    try {
      auto inst = make_rlimit_backend()->launch(spec_);
      agent = inst->host_pid();
      (void)!::write(p[1], &agent, sizeof agent);
      inst.release();  // never torn down: the parent's death is the test
    } catch (...) {
      (void)!::write(p[1], &agent, sizeof agent);
    }
    for (;;) ::pause();
  }
  ::close(p[1]);
  pid_t agent = -1;
  pollfd pf{p[0], POLLIN, 0};
  ASSERT_EQ(::poll(&pf, 1, 20'000), 1) << "the helper did not launch an agent";
  ASSERT_EQ(::read(p[0], &agent, sizeof agent), static_cast<ssize_t>(sizeof agent));
  ::close(p[0]);
  ASSERT_GT(agent, 0) << "launch failed in the helper";
  EXPECT_FALSE(dead(agent));
  ::kill(helper, SIGKILL);
  ::waitpid(helper, nullptr, 0);
  bool gone = false;
  for (int i = 0; i < 100 && !(gone = dead(agent)); ++i) std::this_thread::sleep_for(100ms);
  if (!gone) ::kill(agent, SIGKILL);
  EXPECT_TRUE(gone) << "the agent outlived the process that started it";
}

// A step that fails before exec is the launch's error, naming the step, not an agent that
// silently never answers.
TEST_F(RlimitTest, FailedStartIsAnError) {
  fs::remove(dir_ / "runtime" / "sandbox-agent");
  try {
    auto inst = make_rlimit_backend()->launch(spec_);
    FAIL() << "launch without an agent binary succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("execve"), std::string::npos) << e.what();
  }
}

}  // namespace
