// The namespaces backend with real processes: the agent is replaced by a shell script in a
// test runtime dir (runtime/sandbox-agent) that runs runtime/cmd with its output on the
// control socket, so each test reads what the contained code printed.
#include "isolation/backends.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/protocol.hpp"
#include "isolation/namespaces/cgroup.hpp"
#include "sandbox/error.hpp"
#include "isolation/test_io.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace sandbox::isolation;

namespace {


bool mounted_under(const fs::path& dir) {
  return slurp("/proc/self/mountinfo").find(" " + dir.string()) != std::string::npos;
}

// This process's session cgroups still on the host.
int leftover_cgroups() {
  int n = 0;
  std::string mine = std::to_string(::getpid()) + ".";
  for (auto& root : isolation::ns::cgroup::Layout::detect().roots()) {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(root, ec))
      if (e.path().filename().string().rfind(mine, 0) == 0) ++n;
  }
  return n;
}

class NamespacesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_namespaces_backend();
    auto support = backend_->probe();
    if (!support.available) GTEST_SKIP() << "namespaces backend unavailable: " << support.reason;
    std::string tmpl = (fs::temp_directory_path() / "ns_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "runtime");
    fs::create_directories(dir_ / "session");
    write(dir_ / "runtime" / "sandbox-agent",
          "#!/bin/sh\n"
          "# test agent: runs cmd with its output on the control socket (fd 3), as the\n"
          "# real agent runs code: the code's uid, no capabilities in any set\n"
          "exec /usr/bin/setpriv --reuid 1000 --bounding-set -all --inh-caps -all --ambient-caps -all \\\n"
          "  /bin/sh /opt/sandbox/cmd >&3 2>&3\n",
          fs::perms(0755));
    spec_.session_id = "test";
    spec_.session_dir = dir_ / "session";
    spec_.workspace = dir_ / "session" / "workspace";
    spec_.runtime_dir = dir_ / "runtime";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::unique_ptr<Instance> start(const std::string& script) {
    write(dir_ / "runtime" / "cmd", script);
    return backend_->launch(spec_);
  }
  // Runs `script` inside and returns what it printed.
  std::string run(const std::string& script) {
    auto inst = start(script);
    return read_all(inst->control_fd());
  }

  std::unique_ptr<Backend> backend_;
  fs::path dir_;
  LaunchSpec spec_;
};

TEST_F(NamespacesTest, ChildIsInNewNamespaces) {
  auto inst = start("echo ready; exec sleep 30\n");
  ASSERT_NE(read_until(inst->control_fd(), "ready").find("ready"), std::string::npos);
  for (const char* ns : {"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"}) {
    struct stat mine {}, theirs {};
    ASSERT_EQ(::stat((std::string("/proc/self/ns/") + ns).c_str(), &mine), 0) << ns;
    auto path = "/proc/" + std::to_string(inst->host_pid()) + "/ns/" + ns;
    ASSERT_EQ(::stat(path.c_str(), &theirs), 0) << path;
    EXPECT_NE(mine.st_ino, theirs.st_ino) << ns << " namespace is shared with the host";
  }
}

TEST_F(NamespacesTest, UnprivilegedWithoutCapabilities) {
  auto out = run(
      "id -u; id -g; id -G\n"
      "grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status\n"
      "echo pid=$$\n"
      "hostname\n");
  EXPECT_NE(out.find("1000\n1000\n1000\n"), std::string::npos) << out;
  for (const char* cap : {"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000",
                          "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
                          "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"})
    EXPECT_NE(out.find(cap), std::string::npos) << cap << " in\n" << out;
  EXPECT_NE(out.find("pid=1\n"), std::string::npos) << out;  // init of its pid namespace
  EXPECT_NE(out.find("sandbox\n"), std::string::npos) << out;
}

TEST_F(NamespacesTest, ServerSignalStateIsNotInherited) {
  // A server typically ignores SIGPIPE and blocks signals in worker threads.
  struct sigaction ign {}, old_pipe {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old_pipe);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  std::string out;
  try {
    out = run("grep -E '^Sig(Blk|Ign):' /proc/self/status\n");
  } catch (...) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  EXPECT_NE(out.find("SigBlk:\t0000000000000000"), std::string::npos) << out;
  EXPECT_NE(out.find("SigIgn:\t0000000000000000"), std::string::npos) << out;
}

TEST_F(NamespacesTest, RootHoldsOnlyWhatInterpretersNeed) {
  auto out = run(
      "for p in /etc/shadow /root /home /var /etc/ssh /boot /sys /etc/ld.so.cache /usr/bin/python3 \\\n"
      "         /workspace /tmp /dev/null /dev/urandom /opt/sandbox/sandbox-agent /proc/self; do\n"
      "  if [ -e $p ]; then echo \"yes $p\"; else echo \"no $p\"; fi\n"
      "done\n"
      "touch /usr/x 2>/dev/null && echo usr-writable\n"
      "touch /x 2>/dev/null && echo root-writable\n"
      "touch /opt/sandbox/x 2>/dev/null && echo runtime-writable\n"
      "echo hi > /workspace/w && echo workspace-ok\n"
      "echo hi > /tmp/t && echo tmp-ok\n"
      "echo hi > /dev/null && echo devnull-ok\n"
      "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable\n"
      "ls /proc/sys | wc -l\n"
      "echo procs: /proc/[0-9]*\n");  // a builtin glob: the shell alone
  for (const char* absent : {"/etc/shadow", "/root", "/home", "/var", "/etc/ssh", "/boot", "/sys"})
    EXPECT_NE(out.find(std::string("no ") + absent + "\n"), std::string::npos) << absent << "\n" << out;
  for (const char* present : {"/etc/ld.so.cache", "/usr/bin/python3", "/workspace", "/tmp",
                              "/dev/null", "/dev/urandom", "/opt/sandbox/sandbox-agent", "/proc/self"})
    EXPECT_NE(out.find(std::string("yes ") + present + "\n"), std::string::npos) << present << "\n" << out;
  for (const char* bad : {"usr-writable", "root-writable", "runtime-writable", "sysrq-writable"})
    EXPECT_EQ(out.find(bad), std::string::npos) << out;
  for (const char* good : {"workspace-ok", "tmp-ok", "devnull-ok"})
    EXPECT_NE(out.find(good), std::string::npos) << out;
  EXPECT_NE(out.find("\n0\n"), std::string::npos) << "/proc/sys is not covered\n" << out;
  EXPECT_NE(out.find("procs: /proc/1\n"), std::string::npos) << "only the agent's shell\n" << out;
}

// mountinfo names a bind's root as its path in the source filesystem: the runtime is bound
// from a staged tmpfs, so no host path (runtime or session dir) shows inside.
TEST_F(NamespacesTest, NoHostPathInMountinfo) {
  auto out = run("cat /proc/self/mountinfo; echo; cat /proc/1/cmdline | tr '\\0' ' '\n");
  EXPECT_EQ(out.find(dir_.string()), std::string::npos) << out;
  EXPECT_NE(out.find(" / /opt/sandbox "), std::string::npos) << out;
  EXPECT_NE(out.find("sandbox-runtime"), std::string::npos) << out;
}

TEST_F(NamespacesTest, HostSeesTheWorkspace) {
  auto inst = start("echo hi > /workspace/w; echo ready; exec sleep 30\n");
  read_until(inst->control_fd(), "ready");
  EXPECT_EQ(slurp(spec_.workspace / "w"), "hi\n");
  inst.reset();
  EXPECT_FALSE(fs::exists(spec_.workspace / "w")) << "the workspace is ephemeral (a tmpfs)";
}

TEST_F(NamespacesTest, OnlyLoopbackNetwork) {
  auto out = run(
      "python3 - <<'EOF'\n"
      "import socket\n"
      "print(sorted(n for _, n in socket.if_nameindex()))\n"
      "try:\n"
      "    socket.create_connection(('1.1.1.1', 80), timeout=2); print('connected')\n"
      "except OSError as e:\n"
      "    print('refused', e.errno)\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname())\n"
      "print('loopback ok')\n"
      "EOF\n");
  EXPECT_NE(out.find("['lo']"), std::string::npos) << out;
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
  EXPECT_NE(out.find("loopback ok"), std::string::npos) << out;
}

TEST_F(NamespacesTest, SeccompDeniesDangerousSyscalls) {
  // x86_64 syscall numbers; each line prints "name errno".
  auto out = run(
      "python3 - <<'EOF'\n"
      "import ctypes, os\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "calls = {'ptrace': (101, 16, 1), 'mount': (165, 0, 0, 0, 0, 0), 'umount2': (166, 0, 0),\n"
      "  'pivot_root': (155, 0, 0), 'chroot': (161, 0), 'unshare': (272, 0x10000000), 'setns': (308, 0, 0),\n"
      "  'keyctl': (250, 0), 'add_key': (248, 0, 0, 0, 0, 0), 'bpf': (321, 0, 0, 0), 'userfaultfd': (323, 0),\n"
      "  'perf_event_open': (298, 0, 0, 0, 0, 0), 'io_uring_setup': (425, 1, 0), 'kexec_load': (246, 0, 0, 0, 0),\n"
      "  'init_module': (175, 0, 0, 0), 'reboot': (169, 0, 0, 0, 0), 'settimeofday': (164, 0, 0),\n"
      "  'fsopen': (430, 0, 0), 'open_tree': (428, 0, 0, 0), 'move_mount': (429, 0, 0, 0, 0, 0),\n"
      "  'process_vm_readv': (310, 1, 0, 0, 0, 0, 0), 'clone_newuser': (56, 0x10000000 | 17, 0, 0, 0, 0),\n"
      "  'clone3': (435, 0, 0), 'personality_bad': (135, 0x0040000), 'personality_query': (135, 0xffffffff),\n"
      "  'personality_linux32': (135, 8), 'socket_vsock': (41, 40, 1, 0), 'socket_alg': (41, 38, 5, 0),\n"
      "  'socket_audit': (41, 16, 3, 9), 'ioctl_tiocsti': (16, 0, 0x5412, 0),\n"
      "  'ioctl_tiocsti_high': (16, 0, 0x100005412, 0), 'getpid': (39,)}\n"
      "for name, args in calls.items():\n"
      "    ctypes.set_errno(0)\n"
      "    r = libc.syscall(*[ctypes.c_long(a) for a in args])\n"
      "    print(name, ctypes.get_errno() if r == -1 else 'ok')\n"
      "EOF\n");
  auto expect = [&](const std::string& name, const std::string& result) {
    EXPECT_NE(out.find(name + " " + result + "\n"), std::string::npos) << name << " -> " << result << "\n" << out;
  };
  for (const char* name : {"ptrace", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
                           "keyctl", "add_key", "bpf", "userfaultfd", "perf_event_open",
                           "io_uring_setup", "kexec_load", "init_module", "reboot", "settimeofday",
                           "fsopen", "open_tree", "move_mount", "process_vm_readv", "clone_newuser",
                           "personality_bad", "socket_vsock", "socket_alg", "socket_audit",
                           "ioctl_tiocsti", "ioctl_tiocsti_high"})
    expect(name, "1");  // EPERM
  expect("clone3", "38");  // ENOSYS: libc falls back to clone
  expect("personality_query", "ok");
  expect("personality_linux32", "ok");
  expect("getpid", "ok");
}

TEST_F(NamespacesTest, InterpretersWorkInTheNewRoot) {
  auto out = run(
      "python3 -c 'import matplotlib, numpy, json, ssl; import matplotlib.pyplot as plt; "
      "plt.plot([1,2]); plt.savefig(\"/workspace/f.png\"); print(\"python ok\")'\n"
      "test -s /workspace/f.png && echo png ok\n"
      "node -e 'require(\"os\").cpus(); console.log(\"node ok\")'\n"
      "python3 -c 'import subprocess; print(subprocess.run([\"echo\", \"sub ok\"], capture_output=True, text=True).stdout, end=\"\")'\n");
  EXPECT_NE(out.find("python ok"), std::string::npos) << out;
  EXPECT_NE(out.find("png ok"), std::string::npos) << out;
  EXPECT_NE(out.find("node ok"), std::string::npos) << out;
  EXPECT_NE(out.find("sub ok"), std::string::npos) << out;
}

TEST_F(NamespacesTest, MemoryLimitKillsAHog) {
  spec_.limits.memory_bytes = 64ull << 20;
  auto inst = start(
      "python3 -c 'b = bytearray(256 << 20); print(\"survived\")'\n"
      "echo exit=$?\n");
  auto out = read_all(inst->control_fd());
  EXPECT_EQ(out.find("survived"), std::string::npos) << out;
  EXPECT_NE(out.find("exit=137"), std::string::npos) << out;  // SIGKILL by the OOM killer
  auto usage = inst->usage();
  ASSERT_TRUE(usage.oom_kills.has_value());
  EXPECT_GE(*usage.oom_kills, 1u);
  ASSERT_TRUE(usage.memory_peak_bytes.has_value());
  EXPECT_LE(*usage.memory_peak_bytes, spec_.limits.memory_bytes);
}

TEST_F(NamespacesTest, PidsLimitStopsAForkBomb) {
  spec_.limits.max_processes = 16;
  auto inst = start(
      "python3 - <<'EOF'\n"
      "import os, time\n"
      "kids, refused = 0, 0\n"
      "for _ in range(200):\n"
      "    try:\n"
      "        if os.fork() == 0:\n"
      "            time.sleep(30); os._exit(0)\n"
      "        kids += 1\n"
      "    except OSError:\n"
      "        refused += 1\n"
      "print('kids', kids, 'refused', refused, flush=True)\n"
      "EOF\n");
  auto out = read_until(inst->control_fd(), "\n");
  int kids = -1, refused = -1;
  std::istringstream(out.substr(out.find("kids"))) >> std::skipws >> out >> kids >> out >> refused;
  EXPECT_LT(kids, 16);
  EXPECT_GT(refused, 100);
  auto usage = inst->usage();
  ASSERT_TRUE(usage.pids_denied.has_value());
  EXPECT_GT(*usage.pids_denied, 0u);
  inst.reset();  // kills the sleeping children with it
  EXPECT_EQ(leftover_cgroups(), 0);
}

TEST_F(NamespacesTest, TeardownLeavesNothingBehind) {
  // Daemonised processes that escape the agent's process tree, and a forking loop.
  auto inst = start(
      "setsid sh -c 'exec sleep 1234.5' &\n"
      "(while true; do sleep 1234.5 & sleep 0.01; done) &\n"
      "echo ready\n"
      "exec sleep 1234.5\n");
  read_until(inst->control_fd(), "ready");
  ::usleep(100'000);
  EXPECT_GT(host_processes_with("sleep 1234.5"), 2);
  EXPECT_TRUE(mounted_under(spec_.workspace));
  EXPECT_GT(leftover_cgroups(), 0);
  pid_t agent = inst->host_pid();
  inst.reset();
  EXPECT_EQ(host_processes_with("sleep 1234.5"), 0);
  EXPECT_FALSE(mounted_under(spec_.workspace));
  EXPECT_EQ(leftover_cgroups(), 0);
  EXPECT_NE(::kill(agent, 0), 0);
}

TEST_F(NamespacesTest, TerminateKillsEverythingAndIsIdempotent) {
  auto inst = start("sleep 1234.6 & echo ready; wait\n");
  read_until(inst->control_fd(), "ready");
  inst->terminate();
  inst->terminate();
  read_all(inst->control_fd());  // EOF: nothing inside holds the socket any more
  EXPECT_EQ(host_processes_with("sleep 1234.6"), 0);
}

TEST_F(NamespacesTest, WorkspaceQuotaInsideAndOnTheHost) {
  spec_.limits.disk_bytes = 2ull << 20;
  auto inst = start(
      "dd if=/dev/zero of=/workspace/big bs=64k count=64 2>/dev/null; echo dd=$?\n"
      "echo ready; exec sleep 30\n");
  auto out = read_until(inst->control_fd(), "ready");
  EXPECT_NE(out.find("dd=1"), std::string::npos) << out;
  // The host's side: writing past the quota fails with ENOSPC (or EFBIG), files are owned by
  // the inside user's host uid.
  auto owner = inst->file_owner();
  ASSERT_TRUE(owner.has_value());
  struct stat st {};
  ASSERT_EQ(::stat((spec_.workspace / "big").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, owner->first);
  fs::remove(spec_.workspace / "big");
  std::ofstream f(spec_.workspace / "host-file", std::ios::binary);
  std::string chunk(1 << 20, 'x');
  for (int i = 0; i < 4 && f; ++i) f.write(chunk.data(), static_cast<std::streamsize>(chunk.size())), f.flush();
  EXPECT_FALSE(f.good()) << "host wrote 4 MiB into a 2 MiB workspace";
}

TEST_F(NamespacesTest, FailingStepIsNamed) {
  fs::remove(dir_ / "runtime" / "sandbox-agent");
  try {
    backend_->launch(spec_);
    FAIL() << "launch without an agent succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("execve"), std::string::npos) << e.what();
  }
  EXPECT_EQ(leftover_cgroups(), 0);
  EXPECT_FALSE(mounted_under(spec_.workspace));
}

// Regression: launch() used to hang ("the agent did not start within 10 s") when the
// server had just created a thread that had not started running at the moment of clone():
// glibc's setgroups() in the child waited for that thread forever. Threads come and go
// here while two threads launch sessions; every agent must come up.
TEST_F(NamespacesTest, EveryLaunchStartsItsAgentWhileThreadsComeAndGo) {
  constexpr int launches_per_thread = 30;
  write(dir_ / "runtime" / "cmd", "echo ok\n");
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop) std::thread([] {}).join();
  });
  std::mutex mu;
  std::vector<std::string> failures;
  // Stops at its first failure: a hang costs 10 s, and one is enough to fail the test.
  auto launcher = [&](LaunchSpec spec) {
    for (int i = 0; i < launches_per_thread; ++i) {
      std::string what;
      try {
        auto inst = backend_->launch(spec);
        auto out = read_all(inst->control_fd());
        if (out != "ok\n") what = "agent printed '" + out + "'";
      } catch (const std::exception& e) {
        what = e.what();
      }
      if (!what.empty()) {
        std::lock_guard lock(mu);
        failures.push_back(spec.session_id + " launch " + std::to_string(i) + ": " + what);
        return;
      }
    }
  };
  LaunchSpec second = spec_;
  second.session_id = "test-second";
  second.session_dir = dir_ / "session2";
  second.workspace = second.session_dir / "workspace";
  fs::create_directories(second.session_dir);
  std::thread other(launcher, second);
  launcher(spec_);
  other.join();
  stop = true;
  churn.join();
  for (auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(leftover_cgroups(), 0);
  EXPECT_FALSE(mounted_under(spec_.workspace));
  EXPECT_FALSE(mounted_under(second.workspace));
}

TEST_F(NamespacesTest, LaunchCostIsSmall) {
  // Not a timed assertion (benchmarks measure speed); printed for the report.
  constexpr int n = 20;
  using ms = std::chrono::duration<double, std::milli>;
  ms launch{}, teardown{};
  write(dir_ / "runtime" / "cmd", "exit 0\n");
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto inst = backend_->launch(spec_);
    auto t1 = std::chrono::steady_clock::now();
    read_all(inst->control_fd());
    auto t2 = std::chrono::steady_clock::now();
    inst.reset();
    auto t3 = std::chrono::steady_clock::now();
    launch += t1 - t0;
    teardown += t3 - t2;
  }
  std::printf("launch (to execve of the agent): %.2f ms, teardown: %.2f ms per session\n",
              launch.count() / n, teardown.count() / n);
  EXPECT_EQ(leftover_cgroups(), 0);
}

TEST_F(NamespacesTest, RecoverRemovesADeadServersCgroups) {
  // A crashed server: a cgroup named after a pid that no longer exists, a process in it.
  auto layout = isolation::ns::cgroup::Layout::detect();
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  auto name = std::to_string(dead) + ".0.crashed";
  pid_t victim = ::fork();
  if (victim == 0) {
    ::pause();
    ::_exit(0);
  }
  {
    auto cg = isolation::ns::cgroup::Cgroup::create(layout, name, {});
    cg->add(victim);
    // Leak it as a crash would: move the directories out of the object's reach.
    cg.release();  // NOLINT: intentionally leaked to simulate the crash
  }
  backend_->recover(dir_ / "session");
  int status = 0;
  EXPECT_EQ(::waitpid(victim, &status, 0), victim);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  for (auto& root : layout.roots()) EXPECT_FALSE(fs::exists(root / name)) << root;
}

}  // namespace

namespace {
// The real agent (built into the runtime dir) says HELLO and runs Python in the new root.
TEST_F(NamespacesTest, RealAgentRunsPython) {
  fs::path runtime = SANDBOX_TEST_RUNTIME_DIR;
  if (!fs::exists(runtime / "sandbox-agent")) GTEST_SKIP() << "sandbox-agent not built";
  spec_.runtime_dir = runtime;
  auto inst = backend_->launch(spec_);
  auto hello = agent::read_frame(inst->control_fd());
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(hello->type, agent::Type::hello) << hello->payload;
  agent::write_frame(inst->control_fd(), agent::Type::run, 7,
                     R"J({"lang":"python","code":"import os\nprint(os.getuid(), 6*7)","stdin":"",)J"
                     R"J("timeout_ms":30000,"fresh":false,"output_cap":65536})J");
  std::string output, done;
  while (auto f = agent::read_frame(inst->control_fd())) {
    if (f->type == agent::Type::output) output += f->payload;
    if (f->type == agent::Type::done) {
      done = f->payload;
      break;
    }
  }
  EXPECT_NE(output.find("1000 42"), std::string::npos) << output << "\n" << done;
}

// For poking at the sandbox by hand: SANDBOX_NS_SCRIPT=file ./namespaces_test
// --gtest_also_run_disabled_tests --gtest_filter=*Explore
TEST_F(NamespacesTest, DISABLED_Explore) {
  const char* script = std::getenv("SANDBOX_NS_SCRIPT");
  if (!script) GTEST_SKIP() << "set SANDBOX_NS_SCRIPT";
  std::printf("%s", run(slurp(script)).c_str());
}
}  // namespace
