// The runsc backend with real gVisor containers. Most tests replace the agent with a shell
// script (runtime/sandbox-agent) that runs runtime/cmd with its output on the control
// socket (the container's fd 0), so each test reads what the contained code printed. The
// last tests run the real agent through sandbox::Sandbox when the build has one.
//
// SANDBOX_RUNSC_MEASURE=1 also prints the cost of a session and of `1+1` (RunscMeasure).
#include "isolation/backends.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/protocol.hpp"
#include "isolation/runsc/runsc.hpp"
#include "sandbox/error.hpp"
#include "sandbox/sandbox.hpp"
#include "isolation/test_io.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace sandbox::isolation;
using namespace std::chrono_literals;

namespace {


std::vector<runsc::Container> containers_under(const fs::path& root) {
  return runsc::Cli({.root = root}).list();
}

class RunscTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_runsc_backend();
    auto support = backend_->probe();
    if (!support.available) GTEST_SKIP() << "runsc backend unavailable: " << support.reason;
    std::string tmpl = (fs::temp_directory_path() / "runsc_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0711);
    fs::create_directories(dir_ / "runtime");
    fs::create_directories(dir_ / "state" / "sessions" / "s1" / "workspace");
    // gVisor gives the container's first process its capabilities but keeps none across a
    // later exec (no ambient set), so the test agent drops to the code's uid itself.
    write(dir_ / "runtime" / "sandbox-agent",
          "#!/usr/bin/python3\n"
          "# test agent: runs cmd with its output on the control socket (fd 0), as the\n"
          "# real agent runs code: the code's uid, no capabilities in any set\n"
          "import ctypes, os\n"
          "libc = ctypes.CDLL(None)\n"
          "for cap in range(64):\n"
          "    libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP\n"
          "os.setresuid(101000, 101000, 101000)\n"
          "os.dup2(0, 1)\n"
          "os.dup2(0, 2)\n"
          "os.execv('/bin/sh', ['/bin/sh', '/opt/sandbox/cmd'])\n",
          fs::perms(0755));
    spec_.session_id = "rt" + std::to_string(::getpid()) + "-" + std::to_string(serial_++);
    spec_.session_dir = dir_ / "state" / "sessions" / "s1";
    spec_.workspace = spec_.session_dir / "workspace";
    spec_.runtime_dir = dir_ / "runtime";
  }
  void TearDown() override {
    if (!dir_.empty()) {
      backend_->recover(dir_ / "state");  // whatever a failed test left running
      fs::remove_all(dir_);
    }
  }

  std::unique_ptr<Instance> start(const std::string& script) {
    write(dir_ / "runtime" / "cmd", script);
    return backend_->launch(spec_);
  }
  std::string run(const std::string& script) {
    auto inst = start(script);
    return read_all(inst->control_fd());
  }
  fs::path root() const { return spec_.session_dir / "runsc-root"; }

  static inline int serial_ = 0;
  std::unique_ptr<Backend> backend_;
  fs::path dir_;
  LaunchSpec spec_;
};

TEST_F(RunscTest, ProbeNamesThePlatform) {
  auto s = backend_->probe();
  EXPECT_NE(s.reason.find("platform "), std::string::npos) << s.reason;
  EXPECT_FALSE(backend_->containment().contains.empty());
  // The probe's trivial container left no cgroup (runsc keeps an exited one's).
  const std::string rel = runsc::cgroups_path("probe-" + std::to_string(::getpid()) + "-cg").substr(1);
  for (const char* controller : {"memory", "pids"})
    EXPECT_FALSE(fs::exists(fs::path("/sys/fs/cgroup") / controller / rel)) << controller;
}

TEST_F(RunscTest, BundleIsAReadOnlyRootWithoutNetworkOrPrivilege) {
  runsc::write_bundle(spec_, dir_ / "bundle", {.container_id = "x"});
  auto config = slurp(dir_ / "bundle" / "config.json");
  for (const char* want : {"\"readonly\": true", "\"noNewPrivileges\": true", "\"type\": \"network\"",
                           "\"destination\": \"/workspace\"", "\"cgroupsPath\": \"/libsandbox-runsc/x\"",
                           "\"RLIMIT_NOFILE\"", "\"--control-fd\"", "\"HOME=/workspace\""})
    EXPECT_NE(config.find(want), std::string::npos) << want << " in\n" << config;
  // The agent's own uid with the capabilities it needs (lib/agent/main.cpp, --keep-uid).
  auto process = nlohmann::json::parse(config)["process"];
  EXPECT_EQ(process["user"]["uid"], runsc::agent_uid);
  for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"})
    EXPECT_EQ(process["capabilities"][set], nlohmann::json::array({"CAP_SETUID", "CAP_SETPCAP", "CAP_KILL"})) << set;
  EXPECT_TRUE(fs::exists(dir_ / "bundle" / "rootfs" / "usr"));
  EXPECT_NE(slurp(dir_ / "bundle" / "rootfs" / "etc" / "passwd").find("sandbox:x:101000:"), std::string::npos);
}

TEST_F(RunscTest, UnprivilegedInAReadOnlyRootWithoutNetwork) {
  auto out = run(
      "echo uid=$(id -u) gid=$(id -g)\n"
      "grep -E '^(CapEff|CapPrm|CapBnd):' /proc/self/status\n"
      "echo pid=$$ host=$(hostname)\n"
      "for p in /etc/shadow /root /home /var /usr/bin/python3 /opt/sandbox/sandbox-agent /dev/null; do\n"
      "  if [ -e $p ]; then echo \"yes $p\"; else echo \"no $p\"; fi\n"
      "done\n"
      "touch /usr/x 2>/dev/null && echo usr-writable\n"
      "touch /x 2>/dev/null && echo root-writable\n"
      "touch /opt/sandbox/x 2>/dev/null && echo runtime-writable\n"
      "echo hi > /tmp/t && echo tmp-ok\n"
      "python3 - <<'EOF'\n"
      "import socket\n"
      "print('ifs', sorted(n for _, n in socket.if_nameindex()))\n"
      "try:\n"
      "    socket.create_connection(('1.1.1.1', 80), timeout=2); print('connected')\n"
      "except OSError as e:\n"
      "    print('refused')\n"
      "EOF\n"
      "ulimit -n; ulimit -c\n");
  EXPECT_NE(out.find("uid=101000 gid=101000"), std::string::npos) << out;
  for (const char* cap : {"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000"})
    EXPECT_NE(out.find(cap), std::string::npos) << cap << " in\n" << out;
  EXPECT_NE(out.find("pid=1 host=sandbox"), std::string::npos) << out;
  for (const char* absent : {"/etc/shadow", "/root", "/home", "/var"})
    EXPECT_NE(out.find(std::string("no ") + absent + "\n"), std::string::npos) << absent << "\n" << out;
  for (const char* present : {"/usr/bin/python3", "/opt/sandbox/sandbox-agent", "/dev/null"})
    EXPECT_NE(out.find(std::string("yes ") + present + "\n"), std::string::npos) << present << "\n" << out;
  for (const char* bad : {"usr-writable", "root-writable", "runtime-writable", "connected"})
    EXPECT_EQ(out.find(bad), std::string::npos) << out;
  EXPECT_NE(out.find("tmp-ok"), std::string::npos) << out;
  EXPECT_NE(out.find("ifs ['lo']"), std::string::npos) << out;
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
  EXPECT_NE(out.find(std::to_string(spec_.limits.open_files) + "\n0\n"), std::string::npos) << out;
}

TEST_F(RunscTest, WorkspaceWritesAreVisibleBothWays) {
  auto inst = start(
      "wait_for() { i=0; while [ ! -e /workspace/$1 ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; }\n"
      "wait_for flag1\n"
      "echo \"FIRST:$(cat /workspace/host.txt)\"\n"
      "echo inside > /workspace/inside.txt\n"
      "echo READY\n"
      "wait_for flag2\n"
      "echo \"AGAIN:$(cat /workspace/host.txt)\"\n"
      "echo \"NEW:$(cat /workspace/new.txt)\"\n"
      "echo END\n");
  auto owner = inst->file_owner();
  ASSERT_TRUE(owner);
  write(spec_.workspace / "host.txt", "first");
  write(spec_.workspace / "flag1", "");
  auto out = read_until(inst->control_fd(), "READY");
  EXPECT_NE(out.find("FIRST:first"), std::string::npos) << out;
  EXPECT_EQ(slurp(spec_.workspace / "inside.txt"), "inside\n");
  struct stat st {};
  ASSERT_EQ(::stat((spec_.workspace / "inside.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, owner->first);
  // Change a file the sandbox has already read (cached inside gVisor) and add a new one.
  write(spec_.workspace / "host.txt", "second version, longer");
  write(spec_.workspace / "new.txt", "brand new");
  write(spec_.workspace / "flag2", "");
  out += read_until(inst->control_fd(), "END");
  EXPECT_NE(out.find("AGAIN:second version, longer"), std::string::npos) << out;
  EXPECT_NE(out.find("NEW:brand new"), std::string::npos) << out;
}

TEST_F(RunscTest, LimitsReachTheCgroupAndRlimits) {
  spec_.limits.memory_bytes = 256ull << 20;
  spec_.limits.max_processes = 64;
  spec_.limits.open_files = 333;
  auto inst = start("ulimit -n; ulimit -f; echo nproc=$(python3 -c \"import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])\"); echo READY; exec sleep 30\n");
  auto out = read_until(inst->control_fd(), "READY");
  EXPECT_NE(out.find("333\n"), std::string::npos) << out;
  EXPECT_NE(out.find("nproc=63\n"), std::string::npos) << out;  // the agent is the 64th
  EXPECT_NE(out.find(std::to_string(spec_.limits.disk_bytes / 512) + "\n"), std::string::npos) << out;
  const std::string rel = runsc::cgroups_path(runsc::container_id(spec_.session_id)).substr(1);
  const fs::path memory = fs::path("/sys/fs/cgroup/memory") / rel / "memory.limit_in_bytes";
  if (!fs::exists(memory)) GTEST_SKIP() << "no cgroup v1 memory controller (or cgroups unusable): " << memory;
  EXPECT_EQ(std::stoull(slurp(memory)), (256ull << 20) + runsc::sentry_memory_bytes);
  EXPECT_EQ(std::stoull(slurp(fs::path("/sys/fs/cgroup/pids") / rel / "pids.max")), runsc::host_pids(64));
  auto usage = inst->usage();
  ASSERT_TRUE(usage.memory_peak_bytes);
  EXPECT_GT(*usage.memory_peak_bytes, 0u);
  ASSERT_TRUE(usage.cpu_time_us);
}

TEST_F(RunscTest, MemoryHogIsStoppedAtTheLimit) {
  spec_.limits.memory_bytes = 128ull << 20;
  auto out = run(
      "python3 -c \"\n"
      "x = []\n"
      "for i in range(100):\n"
      "    x.append(bytearray(b'x' * (10 << 20)))\n"
      "print('allocated 1 GiB')\n"
      "\"\n"
      "echo after\n");
  EXPECT_EQ(out.find("allocated 1 GiB"), std::string::npos) << out;
}

TEST_F(RunscTest, ForkBombIsContained) {
  spec_.limits.max_processes = 32;
  auto out = run(
      "python3 - <<'EOF'\n"
      "import os, time\n"
      "n = 0\n"
      "for i in range(400):\n"
      "    try:\n"
      "        if os.fork() == 0:\n"
      "            time.sleep(3); os._exit(0)\n"
      "        n += 1\n"
      "    except OSError:\n"
      "        break\n"
      "print('forked', n, flush=True)\n"
      "EOF\n");
  // fork fails inside (EAGAIN) and the session survives: the host's pids cgroup is never hit.
  auto pos = out.find("forked ");
  ASSERT_NE(pos, std::string::npos) << "the sandbox died\n" << out;
  EXPECT_LT(std::stoi(out.substr(pos + 7)), 32) << out;
}

// terminate() runs on the session library's I/O thread: it only signals (no `runsc`
// subprocess), yet every process of the session is gone at once; destroying the instance
// then removes the container's state, cgroups and workspace mount.
TEST_F(RunscTest, TerminateLeavesNoContainerNoProcess) {
  auto inst = start("echo READY; exec sleep 60\n");
  ASSERT_NE(read_until(inst->control_fd(), "READY").find("READY"), std::string::npos);
  const std::string id = runsc::container_id(spec_.session_id);
  ASSERT_EQ(containers_under(root()).size(), 1u);
  EXPECT_GT(host_processes_with(id), 0);
  EXPECT_GT(inst->host_pid(), 0);
  const auto t0 = std::chrono::steady_clock::now();
  inst->terminate();
  inst->terminate();  // idempotent
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 100ms) << "terminate() must not wait for runsc";
  EXPECT_EQ(read_all(inst->control_fd()), "");  // the agent's end is gone
  // SIGKILL is delivered at once; exits (the gofer follows the Sentry) take a moment.
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       host_processes_with(id) > 0 && std::chrono::steady_clock::now() < deadline;)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(host_processes_with(id), 0);
  inst.reset();
  EXPECT_TRUE(containers_under(root()).empty());
  const std::string rel = runsc::cgroups_path(id).substr(1);
  EXPECT_FALSE(fs::exists(fs::path("/sys/fs/cgroup/memory") / rel));
  // The workspace tmpfs is unmounted with the instance.
  EXPECT_EQ(slurp("/proc/self/mountinfo").find(spec_.workspace.string()), std::string::npos);
}

// The session library keeps a dead agent's instance until its successor is up: both
// containers of one session exist at once (distinct container ids, one shared workspace
// mount), and once both are destroyed no container and no mount is left.
TEST_F(RunscTest, SuccessorStartsWhileItsPredecessorExistsAndBothCleanUp) {
  auto count_mounts = [&] {
    std::istringstream in(slurp("/proc/self/mountinfo"));
    int n = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find(" " + spec_.workspace.string() + " ") != std::string::npos) ++n;
    return n;
  };
  auto first = start("echo READY; exec sleep 60\n");
  ASSERT_NE(read_until(first->control_fd(), "READY").find("READY"), std::string::npos);
  first->terminate();  // the agent died; its instance lives on
  auto second = backend_->launch(spec_);
  ASSERT_NE(read_until(second->control_fd(), "READY").find("READY"), std::string::npos);
  EXPECT_EQ(count_mounts(), 1);
  first.reset();
  EXPECT_EQ(count_mounts(), 1) << "the successor's workspace went with its predecessor";
  auto third = backend_->launch(spec_);  // the first id is free again
  ASSERT_NE(read_until(third->control_fd(), "READY").find("READY"), std::string::npos);
  second.reset();
  third.reset();
  EXPECT_EQ(count_mounts(), 0);
  EXPECT_TRUE(containers_under(root()).empty());
}

TEST_F(RunscTest, RecoverRemovesAContainerLeftByACrashedServer) {
  write(dir_ / "runtime" / "cmd", "exec sleep 600\n");
  const std::string id = runsc::container_id(spec_.session_id);
  // A "server" that launches a session and dies without any cleanup.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      auto inst = backend_->launch(spec_);
      (void)inst.release();
      ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(containers_under(root()).size(), 1u);
  EXPECT_GT(host_processes_with(id), 0);

  make_runsc_backend()->recover(dir_ / "state");
  EXPECT_TRUE(containers_under(root()).empty());
  EXPECT_EQ(host_processes_with(id), 0);
  EXPECT_EQ(slurp("/proc/self/mountinfo").find(spec_.workspace.string()), std::string::npos);
}

TEST_F(RunscTest, LaunchFailureSaysWhy) {
  spec_.interpreters.python = "/usr/bin/python3";
  fs::remove(dir_ / "runtime" / "sandbox-agent");
  write(dir_ / "runtime" / "cmd", "");
  try {
    auto inst = backend_->launch(spec_);
    // runsc may report a missing binary at start (an error) or as an exit: either way EOF.
    EXPECT_EQ(read_all(inst->control_fd()), "");
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable);
    EXPECT_NE(e.message().find("runsc run"), std::string::npos) << e.message();
  }
  EXPECT_TRUE(containers_under(root()).empty());
  // A container that never started leaves no cgroup behind either.
  const std::string rel = runsc::cgroups_path(runsc::container_id(spec_.session_id)).substr(1);
  for (const char* controller : {"memory", "pids", "cpu"})
    EXPECT_FALSE(fs::exists(fs::path("/sys/fs/cgroup") / controller / rel)) << controller;
}

// ---- the real agent, through the library -------------------------------------------------

fs::path agent_runtime() {
  const char* env = std::getenv("SANDBOX_RUNTIME_DIR");
  fs::path dir = env && *env ? fs::path(env) : fs::path(SANDBOX_TEST_RUNTIME_DIR);
  return fs::exists(dir / "sandbox-agent") && fs::exists(dir / "kernel.py") ? dir : fs::path();
}

class RunscSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto s = make_runsc_backend()->probe(); !s.available) GTEST_SKIP() << "runsc unavailable: " << s.reason;
    runtime_ = agent_runtime();
    if (runtime_.empty()) GTEST_SKIP() << "no sandbox-agent + kernel.py in " << SANDBOX_TEST_RUNTIME_DIR;
  }
  fs::path runtime_;
};

TEST_F(RunscSessionTest, AgentSaysHello) {
  auto backend = make_runsc_backend();
  std::string tmpl = (fs::temp_directory_path() / "runsc_hello.XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  fs::path dir = tmpl;
  ::chmod(dir.c_str(), 0711);
  LaunchSpec spec;
  spec.session_id = "hello" + std::to_string(::getpid());
  spec.session_dir = dir / "session";
  spec.workspace = spec.session_dir / "workspace";
  spec.runtime_dir = runtime_;
  fs::create_directories(spec.workspace);
  {
    auto inst = backend->launch(spec);
    auto frame = agent::read_frame(inst->control_fd());
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->type, agent::Type::hello) << frame->payload;
  }
  fs::remove_all(dir);
}

TEST_F(RunscSessionTest, PythonAndShellExecutionsAndFiles) {
  Sandbox sb({.isolation = "runsc", .runtime_dir = runtime_, .preload = {}});
  auto s = sb.create_session({});
  auto r = s->run({.language = Language::python, .code = "x = 20\nx * 2 + 2"});
  EXPECT_EQ(r.status, Status::finished) << r.stderr_text;
  EXPECT_EQ(r.result.value_or(""), "42") << r.stderr_text;
  r = s->run({.language = Language::python, .code = "open('made.txt', 'w').write('py'); print(x)"});
  EXPECT_EQ(r.stdout_text, "20\n") << r.stderr_text;
  r = s->run({.language = Language::shell, .code = "cat made.txt; echo; id -u; echo err >&2; exit 3"});
  EXPECT_EQ(r.stdout_text, "py\n101000\n") << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "err\n");
  EXPECT_EQ(r.exit_code.value_or(-1), 3);

  // Host-side files: an upload is readable inside, a file made inside downloads.
  s->files().upload("up.txt", "from the host");
  r = s->run({.language = Language::python, .code = "open('up.txt').read()"});
  EXPECT_EQ(r.result.value_or(""), "'from the host'") << r.stderr_text;
  EXPECT_EQ(s->files().download("made.txt"), "py");

  // Process list and kill go through the agent.
  auto bg = s->start({.language = Language::shell, .code = "exec sleep 77"});
  std::vector<ProcessInfo> procs;
  int sleeper = 0;
  for (int i = 0; i < 100 && sleeper == 0; ++i, std::this_thread::sleep_for(50ms)) {
    procs = s->processes();
    for (auto& p : procs)
      if (p.cmdline.find("sleep 77") != std::string::npos) sleeper = p.pid;
  }
  ASSERT_NE(sleeper, 0);
  s->kill(sleeper, SIGKILL);
  auto killed = bg->wait();
  EXPECT_NE(killed.status, Status::finished);
}

// Prints the cost of a session (launch until HELLO) and of `1+1` in a warm one, beside
// `runsc do python3 -c 1+1`, medians of N runs. Opt-in: it takes a minute.
TEST(RunscMeasure, SessionAndWarmExecution) {
  if (!std::getenv("SANDBOX_RUNSC_MEASURE")) GTEST_SKIP() << "set SANDBOX_RUNSC_MEASURE=1";
  auto runtime = agent_runtime();
  if (runtime.empty()) GTEST_SKIP() << "no agent";
  if (auto s = make_runsc_backend()->probe(); !s.available) GTEST_SKIP() << s.reason;
  const int n = std::atoi(std::getenv("SANDBOX_RUNSC_MEASURE")) > 1 ? std::atoi(std::getenv("SANDBOX_RUNSC_MEASURE")) : 15;
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };

  std::vector<double> launch, exec, runsc_do;
  auto backend = make_runsc_backend();
  std::string tmpl = (fs::temp_directory_path() / "runsc_measure.XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  fs::path dir = tmpl;
  ::chmod(dir.c_str(), 0711);
  for (int i = 0; i < n; ++i) {
    LaunchSpec spec;
    spec.session_id = "m" + std::to_string(::getpid()) + "-" + std::to_string(i);
    spec.session_dir = dir / spec.session_id;
    spec.workspace = spec.session_dir / "workspace";
    spec.runtime_dir = runtime;
    fs::create_directories(spec.workspace);
    auto t0 = clock::now();
    auto inst = backend->launch(spec);
    auto hello = agent::read_frame(inst->control_fd());
    launch.push_back(ms(clock::now() - t0));
    ASSERT_TRUE(hello && hello->type == agent::Type::hello);
  }
  {
    Sandbox sb({.isolation = "runsc", .runtime_dir = runtime, .preload = {}});
    auto s = sb.create_session({});
    s->run({.code = "1+1"});
    for (int i = 0; i < n; ++i) {
      auto t0 = clock::now();
      auto r = s->run({.code = "1+1"});
      exec.push_back(ms(clock::now() - t0));
      ASSERT_EQ(r.result.value_or(""), "2");
    }
  }
  for (int i = 0; i < n; ++i) {
    auto t0 = clock::now();
    int rc = std::system("runsc --network=none do /usr/bin/python3 -c 1+1 >/dev/null 2>&1");
    runsc_do.push_back(ms(clock::now() - t0));
    ASSERT_EQ(rc, 0);
  }
  fs::remove_all(dir);
  std::printf("runsc session (launch until HELLO): median %.1f ms\n", median(launch));
  std::printf("1+1 in a warm runsc session:       median %.1f ms\n", median(exec));
  std::printf("runsc --network=none do python3 -c 1+1: median %.1f ms\n", median(runsc_do));
}

}  // namespace
