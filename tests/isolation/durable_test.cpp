// Durable sessions at the backend level, with real processes: an agent that outlives the
// process that launched it (released, or its "server" SIGKILLed), adopted through its pid,
// start time and listening socket; recover() sparing kept sessions; lost sessions reaped.
// The agent is a small Python stand-in speaking the durable half of the protocol (a HELLO on
// every connection, RUN of shell code), so these run whatever the real agent's state; the
// real agent gets one test of its own once it takes --listen-fd.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/protocol.hpp"
#include "isolation/backends.hpp"
#include "isolation/namespaces/cgroup.hpp"
#include "isolation/namespaces/namespaces.hpp"
#include "isolation/test_io.hpp"
#include "sandbox/error.hpp"
#include "sys/pidfd.hpp"
#include "sys/unix_socket.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace sandbox::isolation;
using namespace std::chrono_literals;

namespace {

// The stand-in agent. It says its argv in HELLO, so tests see the flags it was given.
constexpr const char* fake_agent = R"PY(#!/usr/bin/python3
# test agent: HELLO on fd 3, then (durable) on each connection to --listen-fd; RUN runs
# shell code and answers OUTPUT + DONE. Orphaned for --orphan-timeout-ms: it exits.
import json, os, socket, struct, subprocess, sys
args = sys.argv[1:]
opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
def frame(t, i, payload, stream=0):
    return struct.pack("<IBBHI", len(payload), t, stream, 0, i) + payload
def serve(sock, resumed):
    hello = {"pid": os.getpid(), "version": "fake", "protocol": 2, "resumed": resumed, "argv": sys.argv}
    sock.sendall(frame(64, 0, json.dumps(hello).encode()))
    buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        while len(buf) >= 12:
            n, t, st, _, i = struct.unpack("<IBBHI", buf[:12])
            if len(buf) < 12 + n:
                break
            payload, buf = buf[12:12 + n], buf[12 + n:]
            if t == 1:
                out = subprocess.run(["/bin/sh", "-c", json.loads(payload)["code"]], capture_output=True).stdout
                sock.sendall(frame(66, i, out, 1) + frame(67, i, b'{"status":"ok","exit_code":0}'))
serve(socket.socket(fileno=3), False)
if "--listen-fd" not in opt:
    sys.exit(0)
listener = socket.socket(fileno=int(opt["--listen-fd"]))
listener.settimeout(int(opt.get("--orphan-timeout-ms", 900000)) / 1000)
while True:
    try:
        conn, _ = listener.accept()
    except socket.timeout:
        sys.exit(0)
    conn.settimeout(None)
    serve(conn, True)
    conn.close()
)PY";

// Gone, or a zombie nobody reaped yet.
bool dead(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  auto stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || (close + 2 < stat.size() && stat[close + 2] == 'Z');
}

bool dies_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!dead(pid)) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

nlohmann::json hello_of(int fd) {
  auto f = agent::read_frame(fd);
  if (!f) return nullptr;
  EXPECT_EQ(f->type, agent::Type::hello);
  return nlohmann::json::parse(f->payload);
}

// RUN `code` and what it printed, once DONE arrives.
std::string run(int fd, std::uint32_t id, const std::string& code, const std::string& lang = "shell") {
  nlohmann::json req{{"lang", lang}, {"code", code}, {"stdin", ""}, {"timeout_ms", 30000},
                     {"fresh", false}, {"output_cap", 65536}, {"exec_id", "e" + std::to_string(id)}};
  agent::write_frame(fd, agent::Type::run, id, req.dump());
  std::string out;
  while (auto f = agent::read_frame(fd)) {
    if (f->id != id) continue;
    if (f->type == agent::Type::output) out += f->payload;
    if (f->type == agent::Type::done) return out;
  }
  return out + "<EOF>";
}

bool is_mounted(const fs::path& dir) { return ns::mount::mounted_at(dir); }

class DurableTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = make_backend_unchecked(GetParam());
    ASSERT_TRUE(backend_);
    if (auto s = backend_->probe(); !s.available) GTEST_SKIP() << GetParam() << " unavailable: " << s.reason;
    ASSERT_TRUE(backend_->durable());
    // The stand-in runtime has no kernel.py for a Python template to start from.
    ::setenv("SANDBOX_PYTHON_TEMPLATE", "0", 1);
    std::string tmpl = (fs::temp_directory_path() / "durable_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0711);  // rlimit's uids must reach the runtime and workspace
    fs::create_directories(dir_ / "runtime");
    fs::create_directories(dir_ / "state" / "sessions");
    for (auto d : {dir_ / "runtime", dir_ / "state", dir_ / "state" / "sessions"}) ::chmod(d.c_str(), 0755);
    write(dir_ / "runtime" / "sandbox-agent", fake_agent, fs::perms(0755));
  }
  void TearDown() override {
    backend_.reset();
    if (!dir_.empty()) {
      ns::mount::remove_stale(dir_);
      fs::remove_all(dir_);
    }
  }

  LaunchSpec spec(const std::string& id) {
    LaunchSpec s;
    s.session_id = id;
    s.session_dir = dir_ / "state" / "sessions" / id;  // the layout lib/sandbox.cpp uses
    s.workspace = s.session_dir / "workspace";
    s.runtime_dir = dir_ / "runtime";
    s.durable = true;
    s.control_socket = s.session_dir / "control" / "agent.sock";
    s.orphan_timeout = 60s;
    s.lifetime_deadline_ms = 0;
    fs::create_directories(s.workspace);
    ::chmod(s.session_dir.c_str(), 0711);
    return s;
  }

  // The cgroup directories a namespaces handle names (none for rlimit).
  static std::vector<fs::path> cgroups_of(const std::string& handle) {
    std::vector<fs::path> out;
    auto j = nlohmann::json::parse(handle);
    for (auto& p : j.value("cgroups", nlohmann::json::array())) out.emplace_back(p.get<std::string>());
    return out;
  }
  static pid_t pid_of(const std::string& handle) { return nlohmann::json::parse(handle).at("pid").get<pid_t>(); }

  bool namespaces() const { return GetParam() == "namespaces"; }

  std::unique_ptr<Backend> backend_;
  fs::path dir_;
};

TEST_P(DurableTest, AgentIsToldToListenAndHowLongToWait) {
  auto s = spec("argv");
  s.orphan_timeout = 12345ms;
  s.lifetime_deadline_ms = 1700000000123;
  auto inst = backend_->launch(s);
  auto hello = hello_of(inst->control_fd());
  ASSERT_TRUE(hello.is_object());
  std::string argv;
  for (auto& a : hello["argv"]) argv += a.get<std::string>() + " ";
  EXPECT_NE(argv.find("--listen-fd "), std::string::npos) << argv;
  EXPECT_NE(argv.find("--orphan-timeout-ms 12345 "), std::string::npos) << argv;
  EXPECT_NE(argv.find("--lifetime-deadline-ms 1700000000123 "), std::string::npos) << argv;
  struct stat st{};
  ASSERT_EQ(::lstat(s.control_socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(s.control_socket.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

// release() and destruction leave it running; adopt() connects, RUN works; terminate() ends
// it and leaves no process, cgroup or mount.
TEST_P(DurableTest, ReleasedAgentLivesOnAndIsAdopted) {
  auto s = spec("release");
  auto inst = backend_->launch(s);
  ASSERT_TRUE(hello_of(inst->control_fd()).is_object());
  EXPECT_EQ(run(inst->control_fd(), 1, "echo before"), "before\n");
  const std::string handle = inst->handle();
  ASSERT_FALSE(handle.empty());
  const pid_t pid = pid_of(handle);
  EXPECT_EQ(pid, inst->host_pid());
  EXPECT_EQ(nlohmann::json::parse(handle).at("start_ticks").get<std::uint64_t>(), sys::start_ticks(pid).value());
  const auto cgroups = cgroups_of(handle);
  EXPECT_EQ(cgroups.empty(), !namespaces());
  inst->release();
  inst.reset();
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(dead(pid)) << "destroying a released instance killed its agent";
  for (auto& c : cgroups) EXPECT_TRUE(fs::is_directory(c)) << c;
  if (namespaces()) {
    EXPECT_TRUE(is_mounted(s.workspace));
  }

  auto adopted = backend_->adopt(s, handle);
  EXPECT_EQ(adopted->host_pid(), pid);
  auto hello = hello_of(adopted->control_fd());
  ASSERT_TRUE(hello.is_object());
  EXPECT_TRUE(hello.value("resumed", false));
  EXPECT_EQ(run(adopted->control_fd(), 2, "echo after"), "after\n");
  if (namespaces()) {
    EXPECT_TRUE(adopted->usage().pids_denied.has_value());
  }
  adopted->terminate();
  EXPECT_TRUE(dies_within(pid, 6s));
  adopted.reset();
  for (auto& c : cgroups) EXPECT_FALSE(fs::exists(c)) << c;
  EXPECT_FALSE(is_mounted(s.workspace));
}

// The real case: the "server" that launched it is SIGKILLed. The agent has no death signal
// and its own session, and a new process adopts it.
TEST_P(DurableTest, AgentSurvivesItsServersDeath) {
  auto s = spec("crash");
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const pid_t server = ::fork();
  ASSERT_GE(server, 0);
  if (server == 0) {
    ::close(p[0]);
    std::string handle;
    try {
      auto inst = make_backend_unchecked(GetParam())->launch(s);
      if (hello_of(inst->control_fd()).is_object()) handle = inst->handle();
      (void)!::write(p[1], handle.data(), handle.size());
      ::close(p[1]);
      ::kill(::getpid(), SIGKILL);  // a crash: no release, no destructor
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(p[1]);
  const std::string handle = read_all(p[0]);
  ::close(p[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(server, &status, 0), server);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_FALSE(handle.empty()) << "the server could not launch";
  const pid_t pid = pid_of(handle);
  std::this_thread::sleep_for(300ms);
  ASSERT_FALSE(dead(pid)) << "the agent died with its server";
  EXPECT_EQ(::getsid(pid), pid) << "not in a session of its own: the server's group signals reach it";

  auto adopted = backend_->adopt(s, handle);
  ASSERT_TRUE(hello_of(adopted->control_fd()).is_object());
  EXPECT_EQ(run(adopted->control_fd(), 3, "echo adopted"), "adopted\n");
  const auto cgroups = cgroups_of(handle);
  adopted.reset();  // not ours by birth: killed through the pidfd, waited for by polling it
  EXPECT_TRUE(dies_within(pid, 6s));
  for (auto& c : cgroups) EXPECT_FALSE(fs::exists(c)) << c;
  EXPECT_FALSE(is_mounted(s.workspace));
}

TEST_P(DurableTest, AdoptRefusesAReusedPid) {
  auto s = spec("reused");
  auto inst = backend_->launch(s);
  ASSERT_TRUE(hello_of(inst->control_fd()).is_object());
  auto j = nlohmann::json::parse(inst->handle());
  j["start_ticks"] = j["start_ticks"].get<std::uint64_t>() + 1;
  try {
    backend_->adopt(s, j.dump());
    ADD_FAILURE() << "adopted a process with another start time";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable) << e.what();
  }
  // The failed adoption ended nothing.
  EXPECT_FALSE(dead(inst->host_pid()));
  for (auto& c : cgroups_of(inst->handle())) EXPECT_TRUE(fs::is_directory(c)) << c;
  EXPECT_EQ(run(inst->control_fd(), 4, "echo still"), "still\n");
}

TEST_P(DurableTest, AdoptRefusesAnAgentThatIsGone) {
  auto s = spec("gone");
  auto inst = backend_->launch(s);
  ASSERT_TRUE(hello_of(inst->control_fd()).is_object());
  const std::string handle = inst->handle();
  inst.reset();  // not released: ended
  try {
    backend_->adopt(s, handle);
    ADD_FAILURE() << "adopted a dead agent";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable) << e.what();
  }
}

// recover(state_dir, keep): a kept session's agent, cgroup and workspace mount survive; an
// unkept one's go.
TEST_P(DurableTest, RecoverSparesKeptSessions) {
  if (!namespaces()) GTEST_SKIP() << "rlimit leaves nothing for recover() to remove";
  auto kept_spec = spec("kept");
  auto gone_spec = spec("unkept");
  auto kept = backend_->launch(kept_spec);
  auto gone = backend_->launch(gone_spec);
  ASSERT_TRUE(hello_of(kept->control_fd()).is_object());
  ASSERT_TRUE(hello_of(gone->control_fd()).is_object());
  const std::string kept_handle = kept->handle(), gone_handle = gone->handle();
  kept->release();
  gone->release();
  kept.reset();
  gone.reset();
  // A new server on the same state dir.
  backend_ = make_backend_unchecked(GetParam());
  backend_->recover(dir_ / "state", {"kept"});
  EXPECT_TRUE(dies_within(pid_of(gone_handle), 6s));
  for (auto& c : cgroups_of(gone_handle)) EXPECT_FALSE(fs::exists(c)) << c;
  EXPECT_FALSE(is_mounted(gone_spec.workspace));
  EXPECT_FALSE(dead(pid_of(kept_handle)));
  for (auto& c : cgroups_of(kept_handle)) EXPECT_TRUE(fs::is_directory(c)) << c;
  EXPECT_TRUE(is_mounted(kept_spec.workspace));
  auto adopted = backend_->adopt(kept_spec, kept_handle);
  ASSERT_TRUE(hello_of(adopted->control_fd()).is_object());
  adopted.reset();
  EXPECT_TRUE(dies_within(pid_of(kept_handle), 6s));
  for (auto& c : cgroups_of(kept_handle)) EXPECT_FALSE(fs::exists(c)) << c;
}

// A lost session: reap_lost() ends its processes and cgroup, keeps the workspace (and its
// files) until forget_lost().
TEST_P(DurableTest, LostSessionIsReapedItsWorkspaceKept) {
  auto s = spec("lost");
  auto inst = backend_->launch(s);
  ASSERT_TRUE(hello_of(inst->control_fd()).is_object());
  const std::string handle = inst->handle();
  inst->release();
  inst.reset();
  write(s.workspace / "keep.txt", "data");
  backend_->reap_lost(s, handle);
  EXPECT_TRUE(dies_within(pid_of(handle), 6s));
  for (auto& c : cgroups_of(handle)) EXPECT_FALSE(fs::exists(c)) << c;
  EXPECT_EQ(slurp(s.workspace / "keep.txt"), "data");
  if (namespaces()) {
    EXPECT_TRUE(is_mounted(s.workspace));
  }
  backend_->reap_lost(s, handle);  // idempotent
  backend_->forget_lost(s, handle);
  EXPECT_FALSE(is_mounted(s.workspace));
}

// The real agent, once it takes --listen-fd (issue #13's agent branch; until that is merged,
// SANDBOX_TEST_DURABLE_AGENT=<its build>/libexec/sandbox/sandbox-agent runs this with it):
// Python state set before a release is there after the adoption, by a new backend (so a new
// template: the namespaces kernel forked by the old one must outlive it).
TEST_P(DurableTest, RealAgentIsAdoptedWithItsKernel) {
  fs::path runtime = SANDBOX_TEST_RUNTIME_DIR;
  if (!fs::exists(runtime / "sandbox-agent")) GTEST_SKIP() << "sandbox-agent not built";
  if (const char* other = std::getenv("SANDBOX_TEST_DURABLE_AGENT")) {
    fs::copy(runtime, dir_ / "real-runtime", fs::copy_options::recursive);
    fs::copy_file(other, dir_ / "real-runtime" / "sandbox-agent", fs::copy_options::overwrite_existing);
    runtime = dir_ / "real-runtime";
    ::chmod(runtime.c_str(), 0755);
  }
  if (slurp(runtime / "sandbox-agent").find("--listen-fd") == std::string::npos)
    GTEST_SKIP() << "this build's agent does not take --listen-fd yet";
  ::unsetenv("SANDBOX_PYTHON_TEMPLATE");
  auto s = spec("real");
  s.runtime_dir = runtime;
  s.python_kernel = true;
  auto inst = backend_->launch(s);
  auto hello = hello_of(inst->control_fd());
  ASSERT_TRUE(hello.is_object());
  EXPECT_EQ(run(inst->control_fd(), 1, "x = 6 * 7\nprint('set')", "python"), "set\n");
  const std::string handle = inst->handle();
  inst->release();
  inst.reset();
  backend_ = make_backend_unchecked(GetParam());  // a new server: a new template
  auto adopted = backend_->adopt(s, handle);
  hello = hello_of(adopted->control_fd());
  ASSERT_TRUE(hello.is_object());
  EXPECT_TRUE(hello.value("resumed", false)) << hello.dump();
  // What it replays (the unacknowledged DONE of RUN 1) comes before SYNCED.
  if (hello.value("resumed", false))
    while (auto f = agent::read_frame(adopted->control_fd()))
      if (f->type == agent::Type::synced) break;
  EXPECT_EQ(run(adopted->control_fd(), 2, "print(x)", "python"), "42\n");
  EXPECT_EQ(run(adopted->control_fd(), 3, "echo real"), "real\n");
  const pid_t pid = pid_of(handle);
  const auto cgroups = cgroups_of(handle);
  adopted.reset();
  EXPECT_TRUE(dies_within(pid, 6s));
  for (auto& c : cgroups) EXPECT_FALSE(fs::exists(c)) << c;
  EXPECT_FALSE(is_mounted(s.workspace));
}

INSTANTIATE_TEST_SUITE_P(Backends, DurableTest, ::testing::Values("rlimit", "namespaces"),
                         [](const auto& p) { return p.param; });

// ---- sys::listen_unix / connect_unix ----

TEST(UnixSocket, ListensConnectsAndReplacesAStaleSocket) {
  std::string tmpl = (fs::temp_directory_path() / "unix_socket.XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  // Longer than sun_path's 108 bytes: bound and reached through the directory's fd.
  fs::path deep = dir;
  while (deep.string().size() < 150) deep /= "deeper-directory-name";
  for (const fs::path& path : {dir / "ctl" / "a.sock", deep / "ctl" / "a.sock"}) {
    SCOPED_TRACE(path.string());
    {
      auto l = sys::listen_unix(path);
      struct stat st{};
      ASSERT_EQ(::stat(path.parent_path().c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0700u);
      ASSERT_EQ(::lstat(path.c_str(), &st), 0);
      EXPECT_TRUE(S_ISSOCK(st.st_mode));
      EXPECT_EQ(st.st_mode & 0777, 0600u);
      auto c = sys::connect_unix(path, 1s);
      sys::UniqueFd a(::accept(l.get(), nullptr, nullptr));
      ASSERT_TRUE(a);
      ASSERT_EQ(::write(c.get(), "x", 1), 1);
      char ch = 0;
      ASSERT_EQ(::read(a.get(), &ch, 1), 1);
      EXPECT_EQ(ch, 'x');
    }
    // The listener is gone, its socket file stays: refused, then a new listener replaces it.
    try {
      sys::connect_unix(path, 1s);
      ADD_FAILURE() << "connected to nobody";
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::unavailable);
      EXPECT_NE(e.message().find("nobody listens"), std::string::npos) << e.message();
    }
    auto again = sys::listen_unix(path);
    EXPECT_NO_THROW(sys::connect_unix(path, 1s));
  }
  try {
    sys::connect_unix(dir / "none.sock", 1s);
    ADD_FAILURE() << "connected to a missing socket";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable);
  }
  fs::remove_all(dir);
}

}  // namespace
