// The Python template on the namespaces backend: a session's kernel is forked from one
// warm host process, and must still be walled in exactly like the session's agent.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "isolation/backends.hpp"
#include "sandbox/sandbox.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace std::chrono_literals;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "key=value" lines printed by the code, as a map.
std::map<std::string, std::string> fields(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

// Host pids of the forks (kernels) of this process's template, found by their parent.
std::set<pid_t> template_kernels() {
  std::set<pid_t> templates, kernels;
  std::map<pid_t, pid_t> parent;
  for (auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    std::string cmd = slurp(e.path() / "cmdline");
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find("kernel.py --template") == std::string::npos) continue;
    std::string stat = slurp(e.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    parent[pid] = ppid;
  }
  for (auto& [pid, ppid] : parent)
    if (ppid == ::getpid()) templates.insert(pid);
  for (auto& [pid, ppid] : parent)
    if (templates.count(ppid)) kernels.insert(pid);
  return kernels;
}

std::uint64_t shared_dirty_kib(pid_t pid) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/smaps_rollup"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Shared_Dirty:", 0) == 0) return std::stoull(line.substr(13));
  return 0;
}

class TemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = isolation::make_namespaces_backend();
    auto support = backend->probe();
    if (!support.available) GTEST_SKIP() << "namespaces backend unavailable: " << support.reason;
    const char* env = std::getenv("SANDBOX_RUNTIME_DIR");
    if (!env || !fs::exists(fs::path(env) / "_sandbox_template.so"))
      GTEST_SKIP() << "the runtime has no _sandbox_template module (built without python3-dev)";
    // Nothing of the server's environment may reach a kernel, template or not.
    ::setenv("SANDBOX_TEST_CANARY", "leaked", 1);
    Options o;
    o.isolation = "namespaces";
    o.limits.timeout = 20s;
    o.preload = {"numpy"};
    sb_ = std::make_unique<Sandbox>(o);
  }
  std::unique_ptr<Sandbox> sb_;
};

constexpr const char* kReport = R"(import os, sys, socket
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
    print(k + "=" + st[k].strip())
print("pid=%d" % os.getpid())
print("ppid=%d" % os.getppid())
print("ids=%d,%d,%s" % (os.getuid(), os.getgid(), os.getgroups()))
print("cwd=" + os.getcwd())
print("host=" + socket.gethostname())
print("net=" + ",".join(n for _, n in socket.if_nameindex()))
print("init=" + open("/proc/1/cmdline").read().split("\0")[0])
print("cgroup=" + ";".join(l.split(":", 2)[2] for l in open("/proc/self/cgroup").read().splitlines()))
print("fds=" + ",".join(sorted(os.listdir("/proc/self/fd"), key=int)))
print("canary=" + str("SANDBOX_TEST_CANARY" in os.environ))
print("home=" + os.environ.get("HOME", ""))
print("numpy=" + str("numpy" in sys.modules))
)";

}  // namespace

TEST_F(TemplateTest, ForkedKernelIsWalledInLikeTheAgent) {
  auto s = sb_->create_session({});
  Result r = s->run({.code = kReport});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  auto f = fields(r.stdout_text);
  // Its parent is outside the pid namespace: the template, not the agent.
  EXPECT_EQ(f["ppid"], "0") << "the kernel was not forked from the template:\n" << r.stdout_text;
  EXPECT_EQ(f["numpy"], "True") << "the template's preloaded modules come with the fork";
  EXPECT_EQ(f["init"], "/opt/sandbox/sandbox-agent") << "same pid namespace as the agent";
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(f[cap], "0000000000000000") << cap;
  EXPECT_EQ(f["NoNewPrivs"], "1");
  EXPECT_EQ(f["Seccomp"], "2");
  EXPECT_EQ(f["ids"], "1000,1000,[]");
  EXPECT_EQ(f["cwd"], "/workspace");
  EXPECT_EQ(f["host"], "sandbox");
  EXPECT_EQ(f["net"], "lo");
  // Inside the session's cgroup namespace, at its root, on every hierarchy.
  EXPECT_EQ(f["cgroup"].find("libsandbox"), std::string::npos) << f["cgroup"];
  // stdin, stdout, stderr, the listing's own fd, and the kernel's four hidden ones.
  EXPECT_EQ(f["fds"].substr(0, 6), "0,1,2,") << f["fds"];
  std::istringstream fds(f["fds"]);
  int count = 0;
  for (std::string fd; std::getline(fds, fd, ',');) ++count;
  EXPECT_LE(count, 8) << "fds of the template leaked into the kernel: " << f["fds"];
  EXPECT_EQ(f["canary"], "False");
  EXPECT_EQ(f["home"], "/workspace");
  // Writes land in the session's walls: read-only root, the workspace quota's tmpfs.
  r = s->run({.code = "open('/usr/x', 'w')"});
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->name, "OSError") << to_json(r);
  r = s->run({.code = "open('made-by-kernel', 'w').write('x')"});
  EXPECT_EQ(r.status, Status::finished) << to_json(r);
  struct stat st {};
  ASSERT_EQ(::stat((s->workspace() / "made-by-kernel").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 101000u) << "written as the session's unprivileged uid";
}

TEST_F(TemplateTest, PagesAreSharedAndEachSessionHasItsOwnRandomState) {
  auto a = sb_->create_session({});
  auto b = sb_->create_session({});
  const char* code = "import random, numpy\n(random.random(), float(numpy.random.rand()))";
  Result ra = a->run({.code = code});
  Result rb = b->run({.code = code});
  ASSERT_EQ(ra.status, Status::finished) << to_json(ra);
  ASSERT_EQ(rb.status, Status::finished) << to_json(rb);
  EXPECT_NE(ra.result, rb.result) << "two sessions forked from one template share a random state";
  auto kernels = template_kernels();
  ASSERT_GE(kernels.size(), 2u);
  // numpy's pages came from the template and stay shared until written.
  for (pid_t k : kernels) EXPECT_GT(shared_dirty_kib(k), 4096u) << "kernel " << k;
}

TEST_F(TemplateTest, DeadKernelsAreForkedAgainAndNothingOutlivesTheSession) {
  auto s = sb_->create_session({});
  const char* where = "import os, sys\n(os.getppid(), 'numpy' in sys.modules)";
  Result r = s->run({.code = where});
  ASSERT_EQ(r.result, "(0, True)") << to_json(r);
  // The session lists and can kill its forked kernel like any of its processes.
  int kernel_pid = 0;
  for (const auto& p : s->processes())
    if (p.cmdline.find("kernel.py") != std::string::npos) kernel_pid = p.pid;
  ASSERT_GT(kernel_pid, 0);
  s->kill(kernel_pid);
  r = s->run({.code = where});
  if (r.status == Status::failed) r = s->run({.code = where});  // the kill may race the next run
  EXPECT_EQ(r.result, "(0, True)") << "the next kernel comes from the template too: " << to_json(r);
  // Killed from the inside, and by the timeout: forked again each time.
  r = s->run({.code = "import os\nos._exit(3)"});
  EXPECT_EQ(r.status, Status::failed);
  r = s->run({.code = where});
  EXPECT_EQ(r.result, "(0, True)") << to_json(r);
  r = s->run({.code = "while True: pass", .timeout = 500ms});
  EXPECT_EQ(r.status, Status::timeout) << to_json(r);
  r = s->run({.code = where});
  EXPECT_EQ(r.result, "(0, True)") << to_json(r);
  auto forked = template_kernels();
  ASSERT_FALSE(forked.empty());
  s->close();
  sb_.reset();
  // Every fork is gone, reaped rather than left a zombie.
  for (pid_t pid : forked) {
    bool gone = false;
    for (int i = 0; i < 50 && !gone; ++i) {
      gone = ::kill(pid, 0) != 0;
      if (!gone) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(gone) << "forked kernel " << pid << " outlived its session";
  }
}

TEST_F(TemplateTest, ForksShareNothingTheyChange) {
  // A changes its globals, modules both got from the template (json is the kernel's own
  // channel too: A must still get its answer), a file and a process; B, forked later from
  // the same template, sees none of it.
  auto a = sb_->create_session({});
  Result r = a->run({.code = "import json, subprocess\n"
                             "secret = 'A-secret'\n"
                             "json.planted = 'by A'\n"
                             "json.dumps = lambda *a, **k: 'hijacked'\n"
                             "open('a-only', 'w').write('A')\n"
                             "p = subprocess.Popen(['sleep', '30'])\n"
                             "p.pid"});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  auto b = sb_->create_session({});
  r = b->run({.code = "import json, os\n"
                      "(globals().get('secret'), getattr(json, 'planted', None), json.dumps(1),\n"
                      " os.path.exists('a-only'), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.result, "(None, None, '1', False, [1, 2])") << "B saw A's state, files or processes";
}

TEST_F(TemplateTest, MultiprocessingSpawnWorksInAForkedKernel) {
  // spawn and forkserver re-run __main__.__file__ in their workers: it must name the kernel
  // as the session sees it, not the host path (or fd) the template was started from.
  auto s = sb_->create_session({});
  Result r = s->run({.code = "import multiprocessing as mp, sys\n"
                             "out = [sys.modules['__main__'].__file__]\n"
                             "for how in ('spawn', 'forkserver'):\n"
                             "    with mp.get_context(how).Pool(1) as p: out.append(p.map(abs, [-1, -2]))\n"
                             "out",
                     .timeout = 60s});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.result, "['/opt/sandbox/kernel.py', [1, 2], [1, 2]]") << to_json(r);
}

TEST_F(TemplateTest, ABrokenTemplateCostsAFallbackNotTheSession) {
  // A runtime without the template's module: the template dies at start, and the agents
  // that were promised its kernels start their own.
  const char* env = std::getenv("SANDBOX_RUNTIME_DIR");
  fs::path runtime = fs::temp_directory_path() / ("template-test-" + std::to_string(::getpid()));
  fs::create_directories(runtime);
  for (const char* f : {"sandbox-agent", "kernel.py"}) fs::copy_file(fs::path(env) / f, runtime / f);
  fs::permissions(runtime, fs::perms(0755));
  Options o;
  o.isolation = "namespaces";
  o.runtime_dir = runtime;
  o.preload = {};
  {
    Sandbox sb(o);
    auto a = sb.create_session({});
    auto b = sb.create_session({});
    for (auto& s : {a, b}) {
      Result r = s->run({.code = "import os\nos.getppid()"});
      EXPECT_EQ(r.status, Status::finished) << to_json(r);
      EXPECT_EQ(r.result, "1") << "the agent's own kernel: " << to_json(r);
    }
  }
  fs::remove_all(runtime);
}

TEST_F(TemplateTest, ASessionStartedForShellGetsItsPythonKernelFromTheTemplateToo) {
  auto s = sb_->create_session({.language = Language::shell});
  Result r = s->run({.language = Language::shell, .code = "echo hi"});
  ASSERT_EQ(r.stdout_text, "hi\n") << to_json(r);
  r = s->run({.code = "import os, sys\n(os.getppid(), 'numpy' in sys.modules)"});
  EXPECT_EQ(r.result, "(0, True)") << "asked for on first use: " << to_json(r);
}

TEST_F(TemplateTest, AForkedKernelIsConfinedLikeAnAgentStartedOne) {
  // One confinement plan (lib/isolation/namespaces/confinement.cpp) for both ways a kernel
  // starts: read from session code in a forked kernel and in one the agent spawned.
  const char* code = R"(import ctypes, os
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
sig = ctypes.c_int(-1)
ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
out = {k: st[k].strip() for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                  "NoNewPrivs", "Seccomp")}
out["pdeathsig"] = sig.value
out["cwd"] = os.getcwd()
sorted(out.items()))";
  auto forked = sb_->create_session({});
  Result from_template = forked->run({.code = "import os\nos.getppid()"});
  ASSERT_EQ(from_template.result, "0") << "not forked from the template: " << to_json(from_template);
  from_template = forked->run({.code = code});
  ASSERT_EQ(from_template.status, Status::finished) << to_json(from_template);

  ::setenv("SANDBOX_PYTHON_TEMPLATE", "0", 1);
  std::shared_ptr<Session> direct;
  try {
    direct = sb_->create_session({});
  } catch (...) {
    ::unsetenv("SANDBOX_PYTHON_TEMPLATE");
    throw;
  }
  ::unsetenv("SANDBOX_PYTHON_TEMPLATE");
  Result from_agent = direct->run({.code = "import os\nos.getppid()"});
  ASSERT_EQ(from_agent.result, "1") << "not started by the agent: " << to_json(from_agent);
  from_agent = direct->run({.code = code});
  ASSERT_EQ(from_agent.status, Status::finished) << to_json(from_agent);

  const std::string walls = from_template.result.value_or("");
  EXPECT_EQ(walls, from_agent.result.value_or("-"));
  EXPECT_NE(walls.find("('Groups', '')"), std::string::npos) << "supplementary groups: " << walls;
  EXPECT_NE(walls.find("('pdeathsig', 9)"), std::string::npos) << "PDEATHSIG: " << walls;
}
