// The rlimit backend with real processes: the agent is replaced by a shell script in a test
// runtime dir, so each test sees how the backend started it.
#include "isolation/backends.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "sandbox/error.hpp"
#include "sandbox/sandbox.hpp"
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

// The backend's limits with the real agent and interpreters (rlimits per process), and the
// gaps its containment() documents, each shown by code that walks through one.
class RlimitSession : public ::testing::Test {
 protected:
  std::shared_ptr<Session> session(Limits limits = {}) {
    Options o;
    o.isolation = "rlimit";
    o.preload = {};
    o.limits = limits;
    sandboxes_.push_back(std::make_unique<Sandbox>(o));
    return sandboxes_.back()->create_session({.language = Language::shell});
  }
  static Result shell(Session& s, std::string code) {
    return s.run({.language = Language::shell, .code = std::move(code), .timeout = 20s});
  }
  std::vector<std::unique_ptr<Sandbox>> sandboxes_;
};

TEST_F(RlimitSession, MemoryIsBoundPerProcess) {
  Limits l;
  l.memory_bytes = 128ull << 20;
  auto s = session(l);
  Result r = s->run({.code = "b = bytearray(512 << 20)"});
  EXPECT_EQ(r.status, Status::failed) << to_json(r);
  ASSERT_TRUE(r.error) << to_json(r);
  EXPECT_EQ(r.error->name, "MemoryError");
  r = s->run({.code = "len(bytearray(16 << 20))"});
  EXPECT_EQ(r.result, "16777216") << "the kernel lives on under its limit: " << to_json(r);
}

TEST_F(RlimitSession, ProcessesAreBoundPerUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "RLIMIT_NPROC applies once code runs as its own uid (root only)";
  Limits l;
  l.max_processes = 16;
  auto s = session(l);
  Result r = s->run({.code = R"(import os, time
pids, err = [], None
for _ in range(64):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    pids.append(pid)
for p in pids:
    os.kill(p, 9)
    os.waitpid(p, 0)
(len(pids) < 16, err)
)"});
  EXPECT_EQ(r.result, "(True, 11)") << "fork fails with EAGAIN before 16 processes: " << to_json(r);
}

TEST_F(RlimitSession, CpuTimeKillsTheSpinningProcess) {
  Limits l;
  l.cpu_time = 1s;
  auto s = session(l);
  // Wall clock to spare: on a loaded host a second of CPU takes many.
  Result r = s->run({.language = Language::shell, .code = "bash -c 'while :; do :; done'; echo rc=$?", .timeout = 120s});
  // Soft and hard limit are one: the kernel sends SIGKILL (137) where a soft limit alone
  // would send SIGXCPU (152). Either way the spinner died, and not by the wall clock.
  EXPECT_TRUE(r.stdout_text == "rc=137\n" || r.stdout_text == "rc=152\n") << to_json(r);
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.termination, Termination::none) << to_json(r);
}

TEST_F(RlimitSession, FileSizeIsBoundByTheDiskLimit) {
  Limits l;
  l.disk_bytes = 1ull << 20;
  auto s = session(l);
  Result r = shell(*s, "head -c 3000000 /dev/zero > big; echo rc=$?; stat -c %s big");
  EXPECT_EQ(r.stdout_text, "rc=153\n1048576\n") << "SIGXFSZ (128 + 25) at 1 MiB: " << to_json(r);
}

// Documented: "the network", "the host filesystem (readable as that uid)", "other sessions'
// processes (same uid)". Each is reachable from code on this backend.
TEST_F(RlimitSession, DocumentedGapsAreReal) {
  auto info = isolation::describe_backend("rlimit");
  ASSERT_TRUE(info);
  auto documented = [&](std::string_view gap) {
    const auto& d = info->containment.does_not_contain;
    return std::find(d.begin(), d.end(), gap) != d.end();
  };
  ASSERT_TRUE(documented("the network"));
  ASSERT_TRUE(documented("the host filesystem (readable as that uid)"));
  ASSERT_TRUE(documented("other sessions' processes (same uid)"));

  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto s = session();
  Result r = shell(*s, "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(ntohs(addr.sin_port)) + " && echo reached");
  ::close(listener);
  EXPECT_EQ(r.stdout_text, "reached\n") << "the host's loopback: " << to_json(r);

  r = shell(*s, "head -c 5 /etc/passwd");
  EXPECT_EQ(r.stdout_text, "root:") << "the host's files: " << to_json(r);

  auto other = session();
  auto sleeper = other->start({.language = Language::shell, .code = "sleep 30"});
  int pid = 0;
  for (int i = 0; i < 50 && !pid; ++i) {
    std::this_thread::sleep_for(100ms);
    for (const auto& p : other->processes())
      if (p.cmdline == "sleep 30") pid = p.pid;
  }
  ASSERT_GT(pid, 0);
  r = shell(*s, "kill -0 " + std::to_string(pid) + " && echo visible");
  EXPECT_EQ(r.stdout_text, "visible\n") << "another session's process: " << to_json(r);
  sleeper->cancel();
}

}  // namespace
