// The server's edges against greedy, slow and hostile clients (issue 11, items 9 and 10):
// header and body deadlines, early answers that clients sending whole bodies still read,
// output held per connection, the connection cap under a low descriptor limit, and
// readiness on a full state dir. Real loopback HTTP; timing checks have wide margins.
#include "sandbox/server.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "sandbox/sandbox.hpp"
#include "server/http_client.hpp"

#ifndef SANDBOX_TEST_PYTHON
#define SANDBOX_TEST_PYTHON "python3"
#endif

namespace sandbox::server {
namespace {

using test::Client;
using test::raw_exchange;
using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + (pid ? std::to_string(pid) : std::string("self")) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

fs::path temp_dir(const std::string& tag) {
  auto p = fs::temp_directory_path() / ("sandbox-edges-" + tag + "-" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p;
}

// A Sandbox (rlimit) and a Server on an ephemeral port, with the options a test tweaks.
struct Served {
  explicit Served(const std::string& tag, const std::function<void(Options&)>& tweak = {},
                  fs::path state = {}, std::uint64_t output_bytes = 1 << 20) {
    state_dir = state.empty() ? temp_dir(tag) : state;
    sandbox::Options so;
    so.state_dir = state_dir;
    so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    so.isolation = "rlimit";
    so.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
    so.limits.upload_bytes = 1 << 20;
    so.limits.output_bytes = output_bytes;
    sb = std::make_unique<Sandbox>(so);
    Options o;
    o.port = 0;
    o.quiet = true;
    if (tweak) tweak(o);
    srv = std::make_unique<Server>(*sb, o);
    srv->start();
  }
  ~Served() {
    srv.reset();
    sb.reset();
    std::error_code ec;
    fs::remove_all(state_dir, ec);
  }
  unsigned short port() const { return srv->port(); }
  fs::path state_dir;
  std::unique_ptr<Sandbox> sb;
  std::unique_ptr<Server> srv;
};

// A connected socket that has sent `bytes` and reads nothing (unless asked).
struct RawSocket {
  RawSocket(unsigned short port, const std::string& bytes, int rcvbuf = 0) : s(ioc) {
    s.open(test::tcp::v4());
    if (rcvbuf) {
      int v = rcvbuf;
      ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    s.connect({test::asio::ip::make_address("127.0.0.1"), port});
    if (!bytes.empty()) test::asio::write(s, test::asio::buffer(bytes));
  }
  // Everything until the peer closes or `timeout` passes; `closed` says which.
  std::string drain(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string out;
    s.non_blocking(true);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[65536];
    while (std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      auto n = s.read_some(test::asio::buffer(buf), ec);
      if (ec == test::asio::error::would_block) {
        pollfd pfd{s.native_handle(), POLLIN, 0};
        ::poll(&pfd, 1, 100);
        continue;
      }
      if (ec) {
        if (closed) *closed = true;
        return out;
      }
      out.append(buf, n);
    }
    if (closed) *closed = false;
    return out;
  }
  test::asio::io_context ioc;
  test::tcp::socket s;
};

// ---- deadlines ----------------------------------------------------------------------------

TEST(ServerEdges, SlowlorisHeaderGets408) {
  Served sv("slowloris", [](Options& o) { o.header_timeout = 2s; });
  RawSocket c(sv.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  std::string out = c.drain(15s, &closed);
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 12s);
  // An idle connection that never started a request is simply closed, without an answer.
  Client ok(sv.port());
  EXPECT_EQ(ok.get("/healthz").status, 200);
}

// Each read used to have to fill a 64 KiB chunk within the timeout, so a slow but steady
// upload was cut with no answer; the deadline is now by progress.
TEST(ServerEdges, SlowSteadyUploadSucceeds) {
  Served sv("slowupload", [](Options& o) { o.read_timeout = 2s; });
  const std::string b = "slowb";
  std::string body = test::multipart(b, "file", "slow.bin", std::string(16 * 1024, 'z'));
  std::string head = "POST /slow/files/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: multipart/form-data; boundary=" + b +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  RawSocket c(sv.port(), head);
  for (std::size_t at = 0; at < body.size(); at += 512) {  // 2 KiB/s, for about 8 s
    test::asio::write(c.s, test::asio::buffer(body.data() + at, std::min<std::size_t>(512, body.size() - at)));
    std::this_thread::sleep_for(250ms);
  }
  std::string out = c.drain(15s);
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("\"size\":16384"), std::string::npos) << out;
}

TEST(ServerEdges, TrickledBodyGets408) {
  Served sv("trickle", [](Options& o) { o.read_timeout = 2s; });
  std::string head = "POST /trickle/exec/shell HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100000\r\n\r\n";
  RawSocket c(sv.port(), head);
  std::string out;
  bool closed = false;
  for (int i = 0; i < 40 && !closed; ++i) {  // 100 bytes every 500 ms: below 1 KiB per 2 s
    boost::system::error_code ec;
    test::asio::write(c.s, test::asio::buffer(std::string(100, ' ')), ec);
    out += c.drain(500ms, &closed);
  }
  EXPECT_EQ(out.rfind("HTTP/1.1 408", 0), 0u) << out;
}

// ---- early answers ------------------------------------------------------------------------

// Python's urllib writes the whole body before it reads: the server must drain (bounded)
// before it closes, or the client sees "Broken pipe" instead of the 413.
TEST(ServerEdges, UrllibReadsThe413) {
  Served sv("urllib");
  const char* script = R"PY(
import sys, urllib.request, urllib.error
port, sid = int(sys.argv[1]), sys.argv[2]
def post(path, data, ctype):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return str(r.status)
    except urllib.error.HTTPError as e:
        return str(e.code)
    except Exception as e:
        return type(e).__name__
b = "pyb"
head = f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'.encode()
print(post(f"/{sid}/files/upload", head + b"x" * (12 << 20) + f"\r\n--{b}--\r\n".encode(),
           f"multipart/form-data; boundary={b}"))
print(post("/sessions", b'{"id": "' + b"x" * (8 << 20) + b'"}', "application/json"))
)PY";
  const fs::path file = sv.state_dir / "urllib_413.py";
  std::ofstream(file) << script;
  std::string cmd = std::string(SANDBOX_TEST_PYTHON) + " " + file.string() + " " +
                    std::to_string(sv.port()) + " urllib 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_EQ(out, "413\n413\n");
}

// ---- greedy clients -------------------------------------------------------------------------

// Event-stream clients that never read: each costs the server at most its output budget,
// and once it has taken nothing for write_timeout it is dropped.
TEST(ServerEdges, NonReadingStreamClientsAreBoundedAndDropped) {
  // The output is larger than the kernel's socket buffers (tcp_wmem's 4 MiB ceiling), so a
  // client that reads nothing really does stall its stream.
  Served sv("greedy", [](Options& o) { o.write_timeout = 3s; }, {}, 10u << 20);
  Client c(sv.port());
  auto r = c.post("/greedy/exec/python",
                  json{{"code", "import sys\nsys.stdout.write('o' * (10 << 20))\n"}}.dump());
  ASSERT_EQ(r.status, 202) << r.body;
  auto res = c.get("/greedy/result?wait=30000&limit=0");
  ASSERT_EQ(res.json()["status"], "Finished") << res.body.substr(0, 300);
  ASSERT_EQ(res.json()["stdout_total"], 10 << 20);

  const std::uint64_t before = rss_bytes(0);
  std::vector<std::unique_ptr<RawSocket>> greedy;
  for (int i = 0; i < 16; ++i)
    greedy.push_back(std::make_unique<RawSocket>(
        sv.port(), "GET /greedy/stream HTTP/1.1\r\nHost: x\r\n\r\n", 4096));
  std::this_thread::sleep_for(1500ms);  // every handler is now blocked on its client
  const std::uint64_t during = rss_bytes(0);
  EXPECT_LT(during, before + (40u << 20)) << "RSS grew by " << (during - before) / 1024 << " KiB";
  // A neighbour is served meanwhile.
  Client n(sv.port());
  EXPECT_EQ(n.get("/healthz").status, 200);
  // After write_timeout the server gives up on them: each connection ends short of the result.
  std::this_thread::sleep_for(5s);
  int dropped = 0;
  for (auto& g : greedy) {
    bool closed = false;
    std::string got = g->drain(10s, &closed);
    if (closed && got.find("event: result") == std::string::npos) ++dropped;
    else ADD_FAILURE() << "closed " << closed << ", " << got.size() << " bytes, result at " << got.find("event: result");
  }
  EXPECT_EQ(dropped, 16);
}

#ifdef SANDBOX_TEST_SANDBOXCTL
// sandboxctl serve in a child with a low descriptor limit (set before exec).
struct ChildServer {
  ChildServer(rlim_t nofile, const fs::path& state) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      rlimit rl{nofile, nofile};
      ::setrlimit(RLIMIT_NOFILE, &rl);
      ::execl(SANDBOX_TEST_SANDBOXCTL, "sandboxctl", "serve", "--listen", "127.0.0.1:0",
              "--isolation", "rlimit", "--close-sessions-on-exit", "--state-dir", state.c_str(), "--quiet", nullptr);
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* err = ::fdopen(fds[0], "r");
    char line[512];
    while (err && std::fgets(line, sizeof line, err)) {
      std::string l = line;
      auto at = l.find("listening on http://127.0.0.1:");
      if (at != std::string::npos) {
        port = static_cast<unsigned short>(std::stoi(l.substr(at + 30)));
        break;
      }
    }
    stderr_ = err;  // kept open: the server's later writes must not hit a closed pipe
  }
  ~ChildServer() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st = 0;
      for (int i = 0; i < 100 && ::waitpid(pid, &st, WNOHANG) == 0; ++i) std::this_thread::sleep_for(100ms);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
    }
    if (stderr_) std::fclose(stderr_);
  }
  pid_t pid = -1;
  unsigned short port = 0;
  FILE* stderr_ = nullptr;
};

// The cap used to equal the descriptor limit: with 256 descriptors, 300 idle connections
// starved accept() and /healthz timed out. Now the cap is half the limit and the oldest
// idle connections make room.
TEST(ServerEdges, ConnectionCapLeavesHealthzAnswering) {
  auto state = temp_dir("cap");
  ChildServer child(256, state);
  ASSERT_GT(child.port, 0) << "sandboxctl serve did not start";
  test::asio::io_context ioc;
  std::vector<test::tcp::socket> idle;
  for (int i = 0; i < 300; ++i) {
    idle.emplace_back(ioc);
    boost::system::error_code ec;
    idle.back().connect({test::asio::ip::make_address("127.0.0.1"), child.port}, ec);
  }
  std::this_thread::sleep_for(500ms);
  int ok = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int attempt = 0; attempt < 5 && !ok; ++attempt) {
    std::string out = raw_exchange(child.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3s);
    if (out.rfind("HTTP/1.1 200", 0) == 0) ok = 1;
  }
  EXPECT_TRUE(ok) << "no /healthz answer with 300 idle connections open";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 12s);
  // Readiness tells why sessions would fail here: 256 descriptors are fewer than the
  // sessions' open_files limit (1024).
  std::string out = raw_exchange(child.port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5s);
  EXPECT_EQ(out.rfind("HTTP/1.1 503", 0), 0u) << out;
  EXPECT_NE(out.find("open-file limit"), std::string::npos) << out;
  idle.clear();
  std::error_code ec;
  fs::remove_all(state, ec);
}
#endif

// ---- readiness ----------------------------------------------------------------------------

// A state dir out of inodes: /readyz says so (503), a create is resource_exhausted (429),
// and no answer names a host path; /healthz stays 200 (liveness).
TEST(ServerEdges, FullStateDirIsNotReadyAndResourceExhausted) {
  auto mnt = temp_dir("full");
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64m,nr_inodes=400") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  struct Unmount {
    fs::path p;
    ~Unmount() {
      ::umount2(p.c_str(), MNT_DETACH);
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } unmount{mnt};
  {
    Served sv("full", {}, mnt / "state");
    Client c(sv.port());
    auto ready = c.get("/readyz");
    EXPECT_EQ(ready.status, 200) << ready.body;
    // Use up the inodes.
    fs::create_directories(mnt / "filler");
    for (int i = 0; i < 2000; ++i) {
      std::ofstream f(mnt / "filler" / std::to_string(i));
      if (!f) break;
    }
    ready = c.get("/readyz");
    EXPECT_EQ(ready.status, 503) << ready.body;
    EXPECT_EQ(ready.json()["error"]["code"], "unavailable");
    EXPECT_NE(ready.body.find("inodes"), std::string::npos) << ready.body;
    auto created = c.post("/sessions", "{}");
    EXPECT_EQ(created.status, 429) << created.body;
    EXPECT_EQ(created.json()["error"]["code"], "resource_exhausted") << created.body;
    for (const auto& r : {ready, created}) {
      EXPECT_EQ(r.body.find(mnt.string()), std::string::npos) << r.body;
      EXPECT_EQ(r.body.find("/tmp/"), std::string::npos) << r.body;
    }
    EXPECT_EQ(c.get("/healthz").status, 200);
  }
}

}  // namespace
}  // namespace sandbox::server
