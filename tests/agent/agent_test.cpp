// The agent driven directly: a real sandbox-agent process on one end of a socketpair, real
// kernels, real processes. Covers the protocol in lib/agent/protocol.hpp and docs/agent.md.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/protocol.hpp"
#include "sys/fd.hpp"

namespace {

using json = nlohmann::json;
using sandbox::agent::Frame;
using sandbox::agent::Type;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

fs::path runtime_dir() {
  if (const char* env = std::getenv("SANDBOX_RUNTIME_DIR")) return env;
  return SANDBOX_TEST_RUNTIME_DIR;
}

struct Outcome {
  json done;
  std::string out, err;
  bool started = false;
  std::vector<std::pair<std::int64_t, std::string>> chunks;  // ms since RUN, stdout bytes
  std::int64_t elapsed_ms = 0;
};

struct RunOpts {
  std::string stdin_text;
  std::int64_t timeout_ms = 10000;
  bool fresh = false;
  std::size_t output_cap = 1u << 20;
};

class Agent {
 public:
  // `wrapper` is put before the agent's argv (e.g. unshare to make it PID 1).
  explicit Agent(std::vector<std::string> extra = {}, std::vector<std::string> wrapper = {}) {
    workspace_ = fs::temp_directory_path() / ("agent-test-" + std::to_string(::getpid()) + "-" +
                                              std::to_string(counter_++));
    fs::create_directories(workspace_);
    auto [host, child] = sandbox::sys::socket_pair();
    host_ = std::move(host);
    std::string agent = (runtime_dir() / "sandbox-agent").string();
    std::vector<std::string> args = {agent,       "--control-fd", "3",
                                     "--workspace", workspace_.string(), "--runtime",
                                     runtime_dir().string(), "--python", "/usr/bin/python3",
                                     "--node",      "/usr/bin/node", "--shell", "/bin/sh"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.begin(), wrapper.begin(), wrapper.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(child.get(), 3);  // dup2 clears close-on-exec
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    child.reset();
    auto hello = next(10000);
    if (!hello || hello->type != Type::hello) throw std::runtime_error("no HELLO from the agent");
    agent_pid_ = json::parse(hello->payload).at("pid").get<int>();
  }
  ~Agent() {
    if (pid_ > 0) {
      try {
        sandbox::agent::write_frame(host_.get(), Type::shutdown, 0, "{}");
      } catch (...) {
      }
      wait_exit(10000);
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ec;
    fs::remove_all(workspace_, ec);
  }

  // Waits up to `ms` for the agent to exit; its exit status, or nullopt.
  std::optional<int> wait_exit(int ms) {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return st;
      }
      ::usleep(10000);
    }
    return std::nullopt;
  }

  std::optional<Frame> next(int timeout_ms) {
    pollfd p{host_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    return sandbox::agent::read_frame(host_.get());
  }

  void send(Type t, std::uint32_t id, const json& j) { sandbox::agent::write_frame(host_.get(), t, id, j.dump()); }

  std::uint32_t start(const std::string& lang, const std::string& code, const RunOpts& o = {}) {
    std::uint32_t id = next_id_++;
    send(Type::run, id,
         {{"lang", lang}, {"code", code}, {"stdin", o.stdin_text}, {"timeout_ms", o.timeout_ms},
          {"fresh", o.fresh}, {"output_cap", o.output_cap}});
    return id;
  }

  // Collects frames of execution `id` until its DONE (frames of others are kept aside).
  Outcome wait(std::uint32_t id, int timeout_ms = 30000) {
    Outcome r;
    auto t0 = Clock::now();
    auto until = t0 + std::chrono::milliseconds(timeout_ms);
    // Frames of this execution read earlier while waiting for another come first.
    std::deque<Frame> mine;
    for (auto it = aside_.begin(); it != aside_.end();) {
      if (it->id == id && it->type != Type::reply) {
        mine.push_back(std::move(*it));
        it = aside_.erase(it);
      } else {
        ++it;
      }
    }
    for (;;) {
      std::optional<Frame> f;
      if (!mine.empty()) {
        f = std::move(mine.front());
        mine.pop_front();
      } else {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
        if (left <= 0) throw std::runtime_error("no DONE for execution " + std::to_string(id));
        f = next(static_cast<int>(left));
      }
      if (!f) continue;
      if (f->id != id || f->type == Type::reply) {
        aside_.push_back(std::move(*f));
        continue;
      }
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
      if (f->type == Type::started) r.started = true;
      if (f->type == Type::output) {
        (f->stream == 1 ? r.out : r.err) += f->payload;
        if (f->stream == 1) r.chunks.emplace_back(ms, f->payload);
      }
      if (f->type == Type::done) {
        r.done = json::parse(f->payload);
        r.elapsed_ms = ms;
        return r;
      }
    }
  }

  Outcome run(const std::string& lang, const std::string& code, const RunOpts& o = {}) {
    return wait(start(lang, code, o));
  }

  json request(Type t, const json& body) {
    std::uint32_t id = next_id_++;
    send(t, id, body);
    auto until = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < until) {
      auto f = next(1000);
      if (f && f->id == id && f->type == Type::reply) return json::parse(f->payload);
    }
    throw std::runtime_error("no REPLY");
  }

  json list() { return request(Type::list, json::object()); }
  void close_control() { host_.reset(); }

  int agent_pid() const { return agent_pid_; }
  pid_t host_pid() const { return pid_; }
  const fs::path& workspace() const { return workspace_; }

 private:
  static inline int counter_ = 0;
  fs::path workspace_;
  sandbox::sys::UniqueFd host_;
  pid_t pid_ = -1;
  int agent_pid_ = 0;
  std::uint32_t next_id_ = 1;
  std::vector<Frame> aside_;
};

bool has_python_module(const char* mod) {
  std::string cmd = std::string("/usr/bin/python3 -c 'import ") + mod + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

bool has_vm2() { return fs::exists(runtime_dir() / "node_modules" / "vm2" / "package.json"); }

bool alive(int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// ---------------------------------------------------------------- python

TEST(AgentPython, LastExpressionAndStatePersists) {
  Agent a;
  auto r = a.run("python", "x = 20\nx * 2 + 2");
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.done["status"], "Finished") << r.done.dump();
  EXPECT_EQ(r.done["result"], "42");
  EXPECT_TRUE(r.done["exit_code"].is_null());
  EXPECT_EQ(r.done["termination"], "none");
  r = a.run("python", "print('x is', x)\nx");
  EXPECT_EQ(r.out, "x is 20\n");
  EXPECT_EQ(r.done["result"], "20");
  r = a.run("python", "y = None\ny");
  EXPECT_TRUE(r.done["result"].is_null());
}

TEST(AgentPython, ExceptionIsFailedWithUserTraceback) {
  Agent a;
  auto r = a.run("python", "def f():\n    return 1/0\nf()");
  EXPECT_EQ(r.done["status"], "Failed");
  ASSERT_TRUE(r.done["error"].is_object()) << r.done.dump();
  EXPECT_EQ(r.done["error"]["name"], "ZeroDivisionError");
  EXPECT_EQ(r.done["error"]["value"], "division by zero");
  std::string tb = r.done["error"]["traceback"];
  EXPECT_NE(tb.find("<cell>"), std::string::npos) << tb;
  EXPECT_EQ(tb.find("kernel.py"), std::string::npos) << tb;
  r = a.run("python", "1 +");
  EXPECT_EQ(r.done["error"]["name"], "SyntaxError");
  r = a.run("python", "raise SystemExit(3)");
  EXPECT_EQ(r.done["status"], "Failed");
  EXPECT_EQ(r.done["exit_code"], 3);
  r = a.run("python", "import sys; sys.exit()");
  EXPECT_EQ(r.done["status"], "Finished");
  EXPECT_EQ(r.done["exit_code"], 0);
}

TEST(AgentPython, PlotShowGivesOnePng) {
  if (!has_python_module("matplotlib")) GTEST_SKIP() << "matplotlib is not installed";
  Agent a;
  auto r = a.run("python", "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()");
  ASSERT_EQ(r.done["status"], "Finished") << r.done.dump() << r.err;
  ASSERT_EQ(r.done["images"].size(), 1u) << r.err;
  EXPECT_EQ(r.done["images"][0]["mime"], "image/png");
  EXPECT_EQ(r.done["images"][0]["data"].get<std::string>().rfind("iVBORw0KGgo", 0), 0u);  // \x89PNG
  // A figure left open is captured at the end, like a notebook; none is captured twice.
  r = a.run("python", "fig = plt.figure(); plt.plot([3, 1])\nNone");
  EXPECT_EQ(r.done["images"].size(), 1u);
  r = a.run("python", "1");
  EXPECT_EQ(r.done["images"].size(), 0u);
}

TEST(AgentPython, PreloadedMatplotlibIsPatched) {
  if (!has_python_module("matplotlib")) GTEST_SKIP() << "matplotlib is not installed";
  Agent a({"--preload", "matplotlib.pyplot,no_such_module_xyz", "--warm", "python"});
  auto r = a.run("python", "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(); ax.plot([1]); fig.show()");
  EXPECT_EQ(r.done["status"], "Finished") << r.done.dump();
  EXPECT_EQ(r.done["images"].size(), 1u) << r.err;
}

TEST(AgentPython, TimeoutKillsKernelAndNextRunWorks) {
  Agent a;
  a.run("python", "state = 1");
  auto t0 = Clock::now();
  auto r = a.run("python", "import time\ntime.sleep(30)", {.timeout_ms = 2000});
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.done["status"], "Timeout");
  EXPECT_EQ(r.done["termination"], "timeout");
  EXPECT_TRUE(r.done["note"].is_string());
  EXPECT_LT(secs, 3.5);
  EXPECT_GE(secs, 1.9);
  r = a.run("python", "1 + 1");
  EXPECT_EQ(r.done["result"], "2");
  r = a.run("python", "state");
  EXPECT_EQ(r.done["error"]["name"], "NameError");  // state lost, as the note said
}

TEST(AgentPython, InputWithEmptyStdinIsEOFError) {
  Agent a;
  auto r = a.run("python", "input()", {.timeout_ms = 5000});
  EXPECT_EQ(r.done["status"], "Failed");
  EXPECT_EQ(r.done["error"]["name"], "EOFError");
  // Subprocesses get EOF too, never the agent's stdin.
  r = a.run("python", "import subprocess; subprocess.run(['cat'], capture_output=True).stdout", {.timeout_ms = 5000});
  EXPECT_EQ(r.done["result"], "b''");
}

TEST(AgentPython, StdinTextIsReadable) {
  Agent a;
  auto r = a.run("python", "name = input()\nrest = __import__('sys').stdin.read()\n(name, rest)",
                 {.stdin_text = "ada\nline two\n"});
  EXPECT_EQ(r.done["result"], "('ada', 'line two\\n')") << r.done.dump();
}

TEST(AgentPython, OutputFloodIsCapped) {
  Agent a;
  const std::size_t cap = 100000;
  auto r = a.run("python", "for i in range(100000):\n    print('x' * 50)", {.output_cap = cap});
  EXPECT_EQ(r.done["status"], "Finished");
  EXPECT_TRUE(r.done["truncated"].get<bool>());
  EXPECT_EQ(r.out.size(), cap);
  r = a.run("python", "print('small')", {.output_cap = cap});
  EXPECT_FALSE(r.done["truncated"].get<bool>());
  EXPECT_EQ(r.out, "small\n");
}

TEST(AgentPython, PartialOutputArrivesWhileRunning) {
  Agent a;
  auto r = a.run("python", "import time\nprint('first')\ntime.sleep(1.5)\nprint('second')");
  // Everything up to "first\n" arrived well before DONE.
  std::string early;
  for (const auto& [ms, bytes] : r.chunks)
    if (ms + 1000 < r.elapsed_ms) early += bytes;
  EXPECT_EQ(early, "first\n");
  EXPECT_EQ(r.out, "first\nsecond\n");
}

TEST(AgentPython, KernelDeathIsReportedAndKernelRestarts) {
  Agent a;
  a.run("python", "kept = 1");
  auto r = a.run("python", "import os\nos.kill(os.getpid(), 9)");
  EXPECT_EQ(r.done["status"], "Failed");
  EXPECT_EQ(r.done["termination"], "kernel_died");
  EXPECT_EQ(r.done["error"]["name"], "KernelDied");
  EXPECT_EQ(r.done["error"]["value"], "the python kernel exited (signal 9)");
  EXPECT_TRUE(r.done["note"].is_string());
  r = a.run("python", "print('before'); import os; os._exit(3)");
  EXPECT_EQ(r.out, "before\n");
  EXPECT_EQ(r.done["error"]["value"], "the python kernel exited (code 3)");
  r = a.run("python", "'alive'");
  EXPECT_EQ(r.done["result"], "'alive'");
}

TEST(AgentPython, SurvivesClosedStdoutAndReplacedStreams) {
  Agent a;
  a.run("python", "import os, sys\nsys.stdout = open(os.devnull, 'w')\nos.close(1)\nos.close(2)\nos.close(3)\nos.close(4)");
  auto r = a.run("python", "print('still here')\n6 * 7");
  EXPECT_EQ(r.out, "still here\n");
  EXPECT_EQ(r.done["result"], "42");
}

TEST(AgentPython, MissingInterpreterFailsTheRunNotTheAgent) {
  Agent a({"--python", "/nonexistent/python3"});
  auto r = a.run("python", "1");
  EXPECT_EQ(r.done["status"], "Failed");
  EXPECT_EQ(r.done["termination"], "kernel_died");
  std::string value = r.done["error"]["value"];
  EXPECT_NE(value.find("code 127"), std::string::npos) << value;
  EXPECT_NE(value.find("/nonexistent/python3"), std::string::npos) << value;
  EXPECT_EQ(a.run("shell", "echo ok").out, "ok\n");
}

TEST(AgentPython, FreshRunsInItsOwnInterpreter) {
  Agent a;
  a.run("python", "v = 5");
  auto r = a.run("python", "v", {.fresh = true});
  EXPECT_EQ(r.done["error"]["name"], "NameError");
  r = a.run("python", "v");
  EXPECT_EQ(r.done["result"], "5");
}

TEST(AgentPython, CancelRunningAndQueued) {
  Agent a;
  auto running = a.start("python", "import time\ntime.sleep(30)");
  auto queued = a.start("python", "'never'");
  a.send(Type::cancel, queued, json::object());
  auto q = a.wait(queued);
  EXPECT_EQ(q.done["status"], "Killed");
  EXPECT_EQ(q.done["termination"], "cancelled");
  a.send(Type::cancel, running, json::object());
  auto r = a.wait(running, 5000);
  EXPECT_EQ(r.done["status"], "Killed");
  EXPECT_EQ(r.done["termination"], "cancelled");
  EXPECT_EQ(a.run("python", "2 + 2").done["result"], "4");
}

TEST(AgentPython, QueuedRunsKeepOrder) {
  Agent a;
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(a.start("python", "n = globals().get('n', 0) + 1\nn"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.wait(ids[static_cast<std::size_t>(i)]).done["result"], std::to_string(i + 1));
}

// ---------------------------------------------------------------- nodejs

TEST(AgentNode, CompletionValueConsoleAndPromises) {
  if (!has_vm2()) GTEST_SKIP() << "vm2 is not installed in the runtime directory (npm ci --prefix runtime)";
  Agent a;
  auto r = a.run("nodejs", "[1,2].map(x => x * 2)");
  ASSERT_EQ(r.done["status"], "Finished") << r.done.dump() << r.err;
  std::string res = r.done["result"];
  EXPECT_NE(res.find('2'), std::string::npos);
  EXPECT_NE(res.find('4'), std::string::npos);
  EXPECT_EQ(res, "[ 2, 4 ]");
  r = a.run("nodejs", "console.log('hi')");
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_TRUE(r.done["result"].is_null());
  r = a.run("nodejs", "Promise.resolve(5)");
  EXPECT_EQ(r.done["result"], "5");
  r = a.run("nodejs", "globalThis.kept = {a: 1, b: 'x'}; class Foo { constructor() { this.v = 1 } }; new Foo()");
  EXPECT_EQ(r.done["result"], "Foo { v: 1 }");
  r = a.run("nodejs", "kept");
  EXPECT_EQ(r.done["result"], "{ a: 1, b: 'x' }");
  r = a.run("nodejs", "new Map([[1, 'one']])");
  EXPECT_EQ(r.done["result"], "Map(1) { 1 => 'one' }");
  r = a.run("nodejs", "new Promise(res => setTimeout(() => res('later'), 50))");
  EXPECT_EQ(r.done["result"], "'later'");
}

TEST(AgentNode, ErrorsAndNoRequire) {
  if (!has_vm2()) GTEST_SKIP() << "vm2 is not installed in the runtime directory";
  Agent a;
  auto r = a.run("nodejs", "throw new TypeError('bad thing')");
  EXPECT_EQ(r.done["status"], "Failed");
  EXPECT_EQ(r.done["error"]["name"], "TypeError");
  EXPECT_EQ(r.done["error"]["value"], "bad thing");
  r = a.run("nodejs", "Promise.reject(new RangeError('nope'))");
  EXPECT_EQ(r.done["error"]["name"], "RangeError");
  r = a.run("nodejs", "require('fs')");
  EXPECT_EQ(r.done["status"], "Failed");
  EXPECT_EQ(r.done["error"]["name"], "ReferenceError");
  r = a.run("nodejs", "while (true) {}", {.timeout_ms = 1000});
  EXPECT_EQ(r.done["status"], "Timeout");
  EXPECT_EQ(a.run("nodejs", "1 + 1").done["result"], "2");
}

// ---------------------------------------------------------------- shell

TEST(AgentShell, ExitCodeAndOutput) {
  Agent a;
  auto r = a.run("shell", "echo hi; echo oops >&2; exit 3");
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.done["exit_code"], 3);
  EXPECT_EQ(r.done["status"], "Failed");
  r = a.run("shell", "pwd; cat", {.stdin_text = "from stdin"});
  EXPECT_EQ(r.out, a.workspace().string() + "\nfrom stdin");
  EXPECT_EQ(r.done["status"], "Finished");
  EXPECT_EQ(r.done["exit_code"], 0);
  r = a.run("shell", "kill -9 $$");
  EXPECT_EQ(r.done["exit_code"], 137);
}

TEST(AgentShell, BackgroundChildDoesNotDelayDone) {
  Agent a;
  auto r = a.run("shell", "sleep 100 & echo started");
  EXPECT_EQ(r.out, "started\n");
  EXPECT_EQ(r.done["status"], "Finished");
  EXPECT_LT(r.elapsed_ms, 2000);
  // The background child may still be a forked shell about to exec sleep: look a few times.
  bool found = false;
  for (int i = 0; i < 40 && !found; ++i) {
    for (const auto& p : a.list()) found |= p["name"] == "sleep";
    if (!found) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(found);
}

TEST(AgentShell, RunsConcurrently) {
  Agent a;
  auto t0 = Clock::now();
  auto s1 = a.start("shell", "sleep 1; echo one");
  auto s2 = a.start("shell", "sleep 1; echo two");
  EXPECT_EQ(a.wait(s1).out, "one\n");
  EXPECT_EQ(a.wait(s2).out, "two\n");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.9);
}

TEST(AgentShell, TimeoutKillsSetsidDescendants) {
  Agent a;
  auto r = a.run("shell", "setsid sleep 1000 & sleep 1000 & sleep 100", {.timeout_ms = 1000});
  EXPECT_EQ(r.done["status"], "Timeout");
  EXPECT_EQ(r.done["termination"], "timeout");
  EXPECT_LT(r.elapsed_ms, 2500);
  ::usleep(200000);
  for (const auto& p : a.list()) EXPECT_NE(p["name"], "sleep") << p.dump();
}

// ---------------------------------------------------------------- processes

TEST(AgentProcesses, ListKillAndShutdownLeavesNothing) {
  auto a = std::make_unique<Agent>();
  a->run("shell", "sleep 300 & sleep 301 &");
  a->run("python", "import subprocess\np = subprocess.Popen(['sleep', '302'])");
  json procs = a->list();
  std::vector<int> pids;
  int sleeper = 0;
  for (const auto& p : procs) {
    pids.push_back(p["pid"]);
    EXPECT_NE(p["pid"], a->agent_pid());
    EXPECT_GT(p["start_time"].get<std::int64_t>(), 1'500'000'000);
    EXPECT_FALSE(p["state"].get<std::string>().empty());
    if (p["cmdline"] == "sleep 300") sleeper = p["pid"];
  }
  EXPECT_GE(pids.size(), 4u) << procs.dump();  // 3 sleeps + the kernel
  ASSERT_NE(sleeper, 0) << procs.dump();

  EXPECT_EQ(a->request(Type::kill, {{"pid", sleeper}, {"signal", 15}}), json({{"ok", true}}));
  EXPECT_EQ(a->request(Type::kill, {{"pid", a->agent_pid()}, {"signal", 9}})["error"], "not_found");
  EXPECT_EQ(a->request(Type::kill, {{"pid", 1}, {"signal", 0}})["error"], "not_found");
  EXPECT_EQ(a->request(Type::kill, {{"pid", ::getpid()}, {"signal", 0}})["error"], "not_found");

  a->send(Type::shutdown, 0, json::object());
  auto st = a->wait_exit(10000);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  for (int pid : pids) EXPECT_FALSE(alive(pid)) << "pid " << pid << " survived SHUTDOWN";
}

TEST(AgentProcesses, ControlEofShutsDown) {
  auto a = std::make_unique<Agent>();
  a->run("shell", "sleep 300 &");
  std::vector<int> pids;
  for (const auto& p : a->list()) pids.push_back(p["pid"]);
  ASSERT_FALSE(pids.empty());
  a->close_control();
  auto st = a->wait_exit(10000);
  ASSERT_TRUE(st.has_value()) << "the agent ignored EOF on its control socket";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  for (int pid : pids) EXPECT_FALSE(alive(pid));
}

TEST(AgentProcesses, AsPid1OfAPidNamespace) {
  if (::geteuid() != 0 || std::system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "cannot create a pid namespace here";
  Agent a({}, {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--kill-child"});
  EXPECT_EQ(a.agent_pid(), 1);
  // An orphan (its parent exits at once) is re-parented to PID 1 and reaped by the agent.
  auto r = a.run("shell", "(sleep 0.2 &) ; echo $$");
  EXPECT_EQ(r.done["status"], "Finished");
  EXPECT_EQ(a.run("python", "import os; os.getppid()").done["result"], "1");
  ::usleep(500000);
  for (const auto& p : a.list()) {
    EXPECT_NE(p["state"], "Z") << "unreaped zombie: " << p.dump();
    EXPECT_NE(p["pid"], 1);
  }
  EXPECT_EQ(a.request(Type::kill, {{"pid", 1}, {"signal", 9}})["error"], "not_found");
}

TEST(AgentNode, SandboxGlobals) {
  if (!has_vm2()) GTEST_SKIP() << "vm2 is not installed in the runtime directory";
  Agent a;
  auto r = a.run("nodejs", "[typeof require, typeof process, typeof setTimeout, typeof console.log].join(' ')");
  EXPECT_EQ(r.done["result"], "'undefined undefined function function'");
  r = a.run("nodejs", "setTimeout(() => console.log('late'), 10); 'now'");
  EXPECT_EQ(r.done["result"], "'now'");
  r = a.run("nodejs", "new Promise(res => setTimeout(res, 50)).then(() => 'after')");
  EXPECT_EQ(r.done["result"], "'after'");
  r = a.run("nodejs", "let z = 1");
  EXPECT_EQ(r.done["status"], "Finished");
  r = a.run("nodejs", "z + 1");
  EXPECT_EQ(r.done["result"], "2");
}

// ---------------------------------------------------------------- speed (printed, not asserted)

TEST(AgentSpeed, WarmPythonRoundTrip) {
  Agent a({"--warm", "python"});
  a.run("python", "1+1");
  const int n = 200;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) ASSERT_EQ(a.run("python", "1+1").done["result"], "2");
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count() / n;
  std::printf("[ speed    ] python 1+1 round trip through the agent: %lld us\n", static_cast<long long>(us));
}

}  // namespace
