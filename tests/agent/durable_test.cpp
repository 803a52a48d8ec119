// Durable agents (docs/agent.md, "Durable agents"): a real sandbox-agent with its launch
// socketpair and a listening unix socket in a temp dir, as the backend would bind it. The
// host goes (its end closed), code keeps running, the next host connects to the socket and
// is replayed what it missed. Every frame the agent sends goes through the host's decode().
#include <signal.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
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
using sandbox::sys::UniqueFd;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

fs::path runtime_dir() {
  if (const char* env = std::getenv("SANDBOX_RUNTIME_DIR")) return env;
  return SANDBOX_TEST_RUNTIME_DIR;
}

bool alive(int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

std::int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One host connection: frames in and out, each one decoded as the host would.
class Conn {
 public:
  explicit Conn(UniqueFd fd) : fd_(std::move(fd)) {}
  // The next frame within `ms`; nullopt at EOF or on timeout (`eof` tells which).
  std::optional<Frame> next(int ms = 10000) {
    pollfd p{fd_.get(), POLLIN, 0};
    eof = false;
    if (::poll(&p, 1, ms) <= 0) return std::nullopt;
    auto f = sandbox::agent::read_frame(fd_.get());
    if (!f) {
      eof = true;
      return f;
    }
    Frame copy = *f;
    sandbox::agent::decode(std::move(copy));  // throws on anything a host would refuse
    return f;
  }
  Frame expect(Type t, int ms = 10000) {
    auto f = next(ms);
    if (!f) throw std::runtime_error(eof ? "EOF waiting for a frame" : "timeout waiting for a frame");
    if (f->type != t)
      throw std::runtime_error("frame type " + std::to_string(int(f->type)) + ", wanted " + std::to_string(int(t)));
    return *f;
  }
  void send(Type t, std::uint32_t id, const json& j) { sandbox::agent::write_frame(fd_.get(), t, id, j.dump()); }
  void run(std::uint32_t id, const std::string& exec_id, const std::string& lang, const std::string& code) {
    send(Type::run, id, {{"lang", lang}, {"code", code}, {"timeout_ms", 30000}, {"exec_id", exec_id}});
  }
  // A request answered in order: once it is answered, everything sent before it was handled.
  void barrier() {
    send(Type::list, 999, json::object());
    for (;;) {
      auto f = expect_any();
      if (f.type == Type::reply && f.id == 999) return;
    }
  }
  Frame expect_any(int ms = 10000) {
    auto f = next(ms);
    if (!f) throw std::runtime_error(eof ? "EOF" : "timeout");
    return *f;
  }
  void close() { fd_.reset(); }
  bool eof = false;

 private:
  UniqueFd fd_;
};

class DurableAgent {
 public:
  explicit DurableAgent(std::vector<std::string> extra = {}, bool durable = true) {
    // A fresh dir every time: a dead run's socket under a reused pid would refuse the bind.
    std::string tmpl = (fs::temp_directory_path() / "durable-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    fs::create_directories(dir_ / "ws");
    sock_ = (dir_ / "agent.sock").string();
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = address();
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener.get(), 8) != 0)
      throw std::runtime_error("cannot bind " + sock_);
    ::chmod(sock_.c_str(), 0600);
    auto [host, child] = sandbox::sys::socket_pair();
    std::vector<std::string> args = {(runtime_dir() / "sandbox-agent").string(),
                                     "--control-fd", "3", "--workspace", (dir_ / "ws").string(),
                                     "--runtime", runtime_dir().string(), "--python", "/usr/bin/python3",
                                     "--node", "/usr/bin/node", "--shell", "/bin/sh"};
    if (durable) args.insert(args.end(), {"--listen-fd", "4"});
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Out of the way first: either may already be fd 3 or 4 (dup2 clears close-on-exec).
      const int c = ::fcntl(child.get(), F_DUPFD_CLOEXEC, 10), l = ::fcntl(listener.get(), F_DUPFD_CLOEXEC, 10);
      ::dup2(c, 3);
      ::dup2(l, 4);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    host_.emplace(std::move(host));
    auto hello = json::parse(host_->expect(Type::hello).payload);
    if (hello.value("resumed", true) || hello.value("protocol", 0) != sandbox::agent::protocol_version)
      throw std::runtime_error("bad first HELLO: " + hello.dump());
  }
  ~DurableAgent() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Conn& host() { return *host_; }
  // A new host: connects to the socket and takes its HELLO.
  Conn& reconnect() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = address();
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot connect to " + sock_);
    host_.emplace(std::move(fd));
    auto hello = json::parse(host_->expect(Type::hello).payload);
    EXPECT_TRUE(hello.value("resumed", false)) << hello.dump();
    EXPECT_EQ(hello.value("protocol", 0), sandbox::agent::protocol_version);
    EXPECT_EQ(hello.value("pid", 0), pid_);
    return *host_;
  }
  void detach() { host_->close(); }

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
  pid_t pid() const { return pid_; }

 private:
  sockaddr_un address() const {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (sock_.size() >= sizeof a.sun_path) throw std::runtime_error("socket path too long");
    std::copy(sock_.begin(), sock_.end(), a.sun_path);
    return a;
  }
  fs::path dir_;
  std::string sock_;
  std::optional<Conn> host_;
  pid_t pid_ = -1;
};

// Frames of the replay, up to SYNCED.
struct Replay {
  std::vector<Frame> frames;
  std::vector<json> resumes;
  std::string out;
  std::optional<json> done;
};
Replay read_replay(Conn& c) {
  Replay r;
  for (;;) {
    Frame f = c.expect_any();
    if (f.type == Type::synced) return r;
    if (f.type == Type::resume) r.resumes.push_back(json::parse(f.payload));
    if (f.type == Type::output) r.out += f.payload;
    if (f.type == Type::done) r.done = json::parse(f.payload);
    r.frames.push_back(std::move(f));
  }
}

std::string lines(int from, int to) {
  std::string s;
  for (int i = from; i <= to; ++i) s += "line" + std::to_string(i) + "\n";
  return s;
}

// (a) Output produced while no host was attached is all replayed, in order, then live.
TEST(AgentDurable, RunningExecutionSurvivesTheHost) {
  DurableAgent a;
  a.host().run(1, "exec-a", "shell", "for i in $(seq 1 30); do echo line$i; sleep 0.1; done");
  std::string first;
  while (first.size() < lines(1, 3).size()) {
    Frame f = a.host().expect_any();
    if (f.type == Type::output) first += f.payload;
    ASSERT_NE(f.type, Type::done);
  }
  a.detach();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  Conn& h = a.reconnect();
  Replay r = read_replay(h);
  ASSERT_EQ(r.resumes.size(), 1u);
  EXPECT_EQ(r.resumes[0]["exec_id"], "exec-a");
  EXPECT_EQ(r.resumes[0]["lang"], "shell");
  EXPECT_EQ(r.resumes[0]["started"], true);
  EXPECT_GE(r.resumes[0]["elapsed_ms"].get<std::int64_t>(), 900);
  EXPECT_FALSE(r.done.has_value()) << "ended early: " << r.out;
  // The replay carries everything from the start: what the first host saw is its prefix,
  // and it went on while nobody listened (the host dedups what it already had).
  EXPECT_EQ(r.out.rfind(first, 0), 0u) << r.out;
  EXPECT_GE(r.out.size(), lines(1, 8).size()) << r.out;
  std::string live;
  json done;
  for (;;) {
    Frame f = h.expect_any();
    if (f.type == Type::output) live += f.payload;
    if (f.type == Type::done) {
      done = json::parse(f.payload);
      break;
    }
  }
  EXPECT_EQ(done["status"], "Finished");
  EXPECT_EQ(r.out + live, lines(1, 30));  // none lost, none twice
}

// (b) A DONE that came while detached is replayed until ACKed, then forgotten.
TEST(AgentDurable, EndedExecutionReplayedUntilAcked) {
  DurableAgent a;
  a.host().run(1, "exec-b1", "shell", "echo before");
  a.host().expect(Type::started);
  a.host().expect(Type::output);
  a.host().expect(Type::done);  // seen but not ACKed: replayed too
  a.host().run(2, "exec-b2", "shell", "sleep 0.5; echo hi; echo err >&2; exit 3");
  a.host().expect(Type::started);
  a.detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Conn& h = a.reconnect();
  Replay r = read_replay(h);
  ASSERT_EQ(r.resumes.size(), 2u);
  EXPECT_EQ(r.resumes[0]["exec_id"], "exec-b1");
  EXPECT_EQ(r.resumes[1]["exec_id"], "exec-b2");
  // In id order, each: RESUME, OUTPUT*, DONE.
  ASSERT_EQ(r.frames.size(), 7u);
  EXPECT_EQ(r.frames[0].type, Type::resume);
  EXPECT_EQ(r.frames[1].payload, "before\n");
  EXPECT_EQ(r.frames[2].type, Type::done);
  EXPECT_EQ(r.frames[3].type, Type::resume);
  EXPECT_EQ(r.frames[4].payload, "hi\n");
  EXPECT_EQ(r.frames[4].stream, 1);
  EXPECT_EQ(r.frames[5].payload, "err\n");
  EXPECT_EQ(r.frames[5].stream, 2);
  ASSERT_EQ(r.frames[6].type, Type::done);
  EXPECT_EQ(r.frames[6].id, 2u);
  auto done = json::parse(r.frames[6].payload);
  EXPECT_EQ(done["status"], "Failed");
  EXPECT_EQ(done["exit_code"], 3);
  h.send(Type::ack, 2, json::object());
  h.barrier();
  a.detach();
  Conn& h2 = a.reconnect();
  r = read_replay(h2);
  ASSERT_EQ(r.resumes.size(), 1u);  // exec-b1, still not ACKed
  EXPECT_EQ(r.resumes[0]["exec_id"], "exec-b1");
  h2.send(Type::ack, 1, json::object());
  h2.barrier();
  a.detach();
  r = read_replay(a.reconnect());
  EXPECT_TRUE(r.frames.empty());
}

// (c) The kernel, and its variables, outlive the host.
TEST(AgentDurable, PythonStateSurvives) {
  DurableAgent a;
  a.host().run(1, "exec-c1", "python", "x = 41");
  for (;;) {
    Frame f = a.host().expect_any(30000);
    if (f.type == Type::done) {
      EXPECT_EQ(json::parse(f.payload)["status"], "Finished") << f.payload;
      break;
    }
  }
  a.host().send(Type::ack, 1, json::object());
  a.host().barrier();
  a.detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Conn& h = a.reconnect();
  EXPECT_TRUE(read_replay(h).frames.empty());
  h.run(2, "exec-c2", "python", "x + 1");
  for (;;) {
    Frame f = h.expect_any(30000);
    if (f.type == Type::done) {
      EXPECT_EQ(json::parse(f.payload)["result"], "42") << f.payload;
      break;
    }
  }
}

// While detached, a Python kernel is not asked of the host (nobody would answer).
TEST(AgentDurable, DetachedAgentStartsItsOwnKernel) {
  DurableAgent a({"--host-kernels"});
  a.host().run(1, "exec-k", "python", "import time; time.sleep(0.3); print('own'); 6 * 7");
  a.host().expect(Type::need_kernel);
  a.detach();  // never answered
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Conn& h = a.reconnect();
  Replay r = read_replay(h);
  ASSERT_EQ(r.resumes.size(), 1u);
  std::string out = r.out;
  json done = r.done.value_or(json());
  while (done.is_null()) {
    Frame f = h.expect_any(30000);
    ASSERT_NE(f.type, Type::need_kernel) << "asked the host again";
    if (f.type == Type::output) out += f.payload;
    if (f.type == Type::done) done = json::parse(f.payload);
  }
  EXPECT_EQ(done["result"], "42") << done.dump();
  EXPECT_EQ(out, "own\n");
}

// (d) No host for the orphan timeout: everything is killed and the agent exits.
TEST(AgentDurable, OrphanTimeoutEndsEverything) {
  DurableAgent a({"--orphan-timeout-ms", "1000"});
  a.host().run(1, "exec-d", "shell", "sleep 100 & echo $$ $!; sleep 100");
  std::string out;
  while (out.find('\n') == std::string::npos) {
    Frame f = a.host().expect_any();
    if (f.type == Type::output) out += f.payload;
  }
  int sh = 0, bg = 0;
  ASSERT_EQ(std::sscanf(out.c_str(), "%d %d", &sh, &bg), 2) << out;
  ASSERT_TRUE(alive(sh) && alive(bg));
  auto t0 = Clock::now();
  a.detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(a.wait_exit(0).has_value()) << "a durable agent exited on EOF";
  auto st = a.wait_exit(15000);
  ASSERT_TRUE(st.has_value()) << "the orphan timeout did not end the agent";
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_GE(secs, 0.9);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  EXPECT_FALSE(alive(sh));
  EXPECT_FALSE(alive(bg));
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(bg)));
}

// A host that comes back before the orphan timeout cancels it.
TEST(AgentDurable, ReconnectCancelsTheOrphanTimer) {
  DurableAgent a({"--orphan-timeout-ms", "1000"});
  a.detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  Conn& h = a.reconnect();
  read_replay(h);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(a.wait_exit(0).has_value());
  h.barrier();
}

// (e) The lifetime deadline ends the agent, attached or not.
TEST(AgentDurable, LifetimeDeadlineEndsIt) {
  DurableAgent a({"--lifetime-deadline-ms", std::to_string(epoch_ms() + 1500)});
  a.host().run(1, "exec-e", "shell", "sleep 100");
  a.host().expect(Type::started);
  auto t0 = Clock::now();
  auto st = a.wait_exit(15000);
  ASSERT_TRUE(st.has_value()) << "the lifetime deadline did not end the agent";
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - t0).count(), 0.8);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  // The host saw the end as EOF.
  for (;;) {
    auto f = a.host().next(5000);
    if (!f) break;
  }
  EXPECT_TRUE(a.host().eof);
}

TEST(AgentDurable, LifetimeDeadlineWhileDetached) {
  DurableAgent a({"--lifetime-deadline-ms", std::to_string(epoch_ms() + 1000)});
  a.detach();
  auto st = a.wait_exit(15000);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
}

// (f) A second connection replaces the first, which is closed.
TEST(AgentDurable, SecondConnectionReplacesTheFirst) {
  DurableAgent a;
  a.host().run(1, "exec-f", "shell", "sleep 0.5; echo late");
  a.host().expect(Type::started);
  // Not detached: the first host is still there when the second connects.
  Conn old = std::move(a.host());
  Conn& h = a.reconnect();
  Replay r = read_replay(h);
  ASSERT_EQ(r.resumes.size(), 1u);
  EXPECT_EQ(r.resumes[0]["exec_id"], "exec-f");
  for (;;) {  // the old connection: EOF, nothing more
    auto f = old.next(5000);
    if (!f) break;
    ASSERT_NE(f->type, Type::output);
  }
  EXPECT_TRUE(old.eof);
  std::string out = r.out;
  for (;;) {
    Frame f = h.expect_any();
    if (f.type == Type::output) out += f.payload;
    if (f.type == Type::done) break;
  }
  EXPECT_EQ(out, "late\n");
}

// (g) Without --listen-fd nothing changes: EOF ends the agent (also AgentProcesses.EofKills...).
TEST(AgentDurable, NonDurableAgentExitsOnEof) {
  DurableAgent a({}, false);
  a.host().run(1, "exec-g", "shell", "sleep 100");
  a.host().expect(Type::started);
  a.detach();
  auto st = a.wait_exit(10000);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
}

TEST(AgentDurable, ListenFdMustBeAListeningSocket) {
  std::string cmd = (runtime_dir() / "sandbox-agent").string() + " --control-fd 0 --listen-fd 1 </dev/null >/dev/null 2>&1";
  int st = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

}  // namespace
