// One Session contract, two implementations: every check runs against a local session and
// against a RemoteSession (sandbox::connect) on an in-process Server over loopback, both on
// the same Sandbox (isolation rlimit), so the two cannot drift.
#include "sandbox/remote.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "sandbox/sandbox.hpp"
#include "sandbox/server.hpp"

namespace sandbox {
namespace {

using namespace std::chrono_literals;

class SessionContract : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    state_ = std::filesystem::temp_directory_path() / ("sandbox-remote-test-" + std::to_string(::getpid()));
    Options so;
    so.state_dir = state_;
    so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    so.isolation = "rlimit";
    so.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
    so.preload.clear();  // nothing here plots
    so.limits.upload_bytes = 1 << 20;
    so.limits.timeout = 20s;
    sandbox_ = new Sandbox(so);
    server::Options o;
    o.port = 0;
    o.quiet = true;
    server_ = new server::Server(*sandbox_, o);
    server_->start();
    remote_ = connect(server_->url()).release();
  }
  static void TearDownTestSuite() {
    delete remote_;
    delete server_;
    delete sandbox_;
    std::error_code ec;
    std::filesystem::remove_all(state_, ec);
  }

  bool remote() const { return GetParam() == "remote"; }
  std::string sid() const {
    return (remote() ? "r-" : "l-") +
           std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 40);
  }
  // A session of this test's kind; ids differ by kind (both live on the one Sandbox).
  std::shared_ptr<Session> make(SessionOptions so = {}) {
    for (char& c : so.id = sid()) if (c == '/') c = '_';
    auto s = remote() ? remote_->create_session(so) : sandbox_->create_session(so);
    made_.push_back(s);
    return s;
  }
  void TearDown() override {
    for (auto& s : made_) {
      try {
        s->close();
      } catch (const Error&) {
      }
    }
  }

  static inline std::filesystem::path state_;
  static inline Sandbox* sandbox_ = nullptr;
  static inline server::Server* server_ = nullptr;
  static inline Remote* remote_ = nullptr;
  std::vector<std::shared_ptr<Session>> made_;
};

errc code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

TEST_P(SessionContract, RunKeepsStateAndReportsErrors) {
  auto s = make();
  EXPECT_EQ(s->status(), SessionStatus::ready);
  EXPECT_EQ(s->limits().upload_bytes, 1u << 20);
  EXPECT_EQ(s->isolation(), "rlimit");
  EXPECT_EQ(s->run({.code = "x = 20"}).status, Status::finished);
  Result r = s->run({.code = "print('out')\nx * 2 + 2"});
  EXPECT_EQ(r.status, Status::finished);
  ASSERT_TRUE(r.result);
  EXPECT_EQ(*r.result, "42");
  EXPECT_EQ(r.stdout_text, "out\n");
  EXPECT_EQ(r.language, Language::python);
  Result bad = s->run({.code = "1/0"});
  EXPECT_EQ(bad.status, Status::failed);
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->name, "ZeroDivisionError");
  Result sh = s->run({.language = Language::shell, .code = "read a; echo $a; exit 3", .stdin_text = "in\n"});
  EXPECT_EQ(sh.stdout_text, "in\n");
  EXPECT_EQ(sh.exit_code, 3);
  Result t = s->run({.language = Language::shell, .code = "sleep 30", .timeout = 500ms});
  EXPECT_EQ(t.status, Status::timeout);
}

TEST_P(SessionContract, ExecutionsAreObservedWhileTheyRun) {
  auto s = make();
  auto ex = s->start({.language = Language::shell, .code = "echo first; sleep 1; echo second >&2"});
  EXPECT_EQ(s->latest()->id(), ex->id());
  EXPECT_EQ(s->execution(ex->id())->id(), ex->id());
  EXPECT_EQ(code_of([&] { s->execution("no-such-execution"); }), errc::not_found);
  std::atomic<int> calls{0};
  auto sub = ex->subscribe([&] { ++calls; });
  // The output grows before the end, and wait_change sees it as it comes.
  EXPECT_TRUE(ex->wait_change(0, 0, 5s));
  Result partial = ex->snapshot();
  EXPECT_EQ(partial.stdout_text, "first\n");
  EXPECT_EQ(partial.status, Status::running);
  EXPECT_FALSE(ex->done());
  EXPECT_FALSE(ex->wait_for(50ms));
  EXPECT_TRUE(ex->wait_for(10s));
  Result r = ex->wait();
  EXPECT_EQ(r.stdout_text, "first\n");
  EXPECT_EQ(r.stderr_text, "second\n");
  EXPECT_EQ(ex->status(), Status::finished);
  EXPECT_TRUE(ex->done());
  for (int i = 0; i < 100 && calls < 2; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_GE(calls.load(), 2);  // the first line, and the end at least
  sub.reset();
  Result page = ex->snapshot({.offset = 2, .limit = 3});
  EXPECT_EQ(page.stdout_text, "rst");
  EXPECT_EQ(page.stdout_offset, 2u);
  EXPECT_EQ(page.stdout_total, 6u);
  // Subscribing to what ended calls back at once.
  std::atomic<bool> now{false};
  ex->subscribe([&] { now = true; }).reset();
  EXPECT_TRUE(now);
}

TEST_P(SessionContract, CancelKillsTheExecution) {
  auto s = make();
  auto ex = s->start({.language = Language::shell, .code = "sleep 30"});
  std::this_thread::sleep_for(100ms);
  ex->cancel();
  ASSERT_TRUE(ex->wait_for(10s));
  Result r = ex->wait();
  EXPECT_EQ(r.status, Status::killed);
  EXPECT_EQ(r.termination, Termination::cancelled);
  EXPECT_EQ(s->run({.code = "1 + 1"}).result, "2");
}

TEST_P(SessionContract, Files) {
  auto s = make();
  std::string blob;
  for (int i = 0; i < 3000; ++i) blob += static_cast<char>(i % 256);
  FileInfo up = s->files().upload("data/blob.bin", blob);
  EXPECT_EQ(up.name, "data/blob.bin");
  EXPECT_EQ(up.size, blob.size());
  EXPECT_EQ(s->files().download("data/blob.bin"), blob);
  EXPECT_EQ(s->files().stat("data/blob.bin").size, blob.size());
  bool dir = false;
  for (auto& f : s->files().list()) dir |= f.name == "data" && f.type == FileType::directory;
  EXPECT_TRUE(dir);
  EXPECT_EQ(code_of([&] { s->files().upload("data/blob.bin", "x"); }), errc::already_exists);
  s->files().upload("data/blob.bin", "x", {.overwrite = true});
  EXPECT_EQ(s->files().download("data/blob.bin"), "x");

  // Streaming both ways: a writer in chunks, a reader from a descriptor.
  auto w = s->files().open_upload("big.txt", {}, 64 * 1024);
  std::string chunk(16 * 1024, 'a');
  for (int i = 0; i < 4; ++i) w->write(chunk);
  EXPECT_EQ(w->commit().size, 64u * 1024);
  FileReader rd = s->files().open_download("big.txt");
  EXPECT_EQ(rd.size(), 64u * 1024);
  std::string back(70 * 1024, '\0');
  std::size_t got = 0, n;
  while ((n = rd.read(std::span<char>(back.data() + got, back.size() - got))) > 0) got += n;
  EXPECT_EQ(got, 64u * 1024);
  EXPECT_EQ(s->run({.code = "len(open('big.txt').read())"}).result, "65536");

  EXPECT_EQ(code_of([&] { s->files().upload("huge.bin", std::string((1 << 20) + 1, 'x')); }),
            errc::resource_exhausted);
  EXPECT_EQ(code_of([&] { s->files().open_upload("huge.bin", {}, (1 << 20) + 1); }), errc::resource_exhausted);
  EXPECT_EQ(code_of([&] { s->files().upload("../escape", "x"); }), errc::invalid_argument);
  s->files().remove("big.txt");
  EXPECT_EQ(code_of([&] { s->files().download("big.txt"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { s->files().remove("big.txt"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { s->files().stat("big.txt"); }), errc::not_found);
}

TEST_P(SessionContract, ProcessesAndKill) {
  auto s = make();
  auto ex = s->start({.language = Language::shell, .code = "exec sleep 30"});
  int pid = 0;
  for (int i = 0; i < 200 && pid == 0; ++i) {
    for (auto& p : s->processes())
      if (p.name == "sleep" && p.cmdline.find("sleep 30") != std::string::npos) pid = p.pid;
    if (pid == 0) std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(pid, 0);
  s->kill(pid, 15);
  ASSERT_TRUE(ex->wait_for(10s));
  EXPECT_NE(ex->wait().status, Status::finished);
  EXPECT_EQ(code_of([&] { s->kill(1 << 22); }), errc::not_found);
}

TEST_P(SessionContract, ClosedSessionsRefuseCalls) {
  auto s = make();
  s->close();
  EXPECT_EQ(s->status(), SessionStatus::closed);
  EXPECT_EQ(code_of([&] { s->start({.code = "1"}); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { s->files().list(); }), errc::failed_precondition);
}

INSTANTIATE_TEST_SUITE_P(LocalAndRemote, SessionContract, ::testing::Values("local", "remote"),
                         [](const auto& p) { return p.param; });

// ---- what only the client has ----------------------------------------------------------------

class RemoteClient : public SessionContract {};

TEST_F(RemoteClient, ServerErrorsComeBackAsTheirErrc) {
  auto s = remote_->create_session({.id = "remote-errors"});
  EXPECT_EQ(remote_->session("remote-errors")->id(), "remote-errors");
  EXPECT_EQ(code_of([&] { remote_->create_session({.id = "remote-errors"}); }), errc::already_exists);
  EXPECT_EQ(code_of([&] { remote_->session("nobody"); }), errc::not_found);
  // Above the server's ceiling (its defaults): refused, as by the server.
  Limits big;
  big.timeout = 3600s;
  EXPECT_EQ(code_of([&] { remote_->create_session({.limits = big}); }), errc::permission_denied);
  bool listed = false;
  for (auto& x : remote_->sessions()) listed |= x->id() == "remote-errors";
  EXPECT_TRUE(listed);
  remote_->close_session("remote-errors");
  EXPECT_EQ(code_of([&] { remote_->close_session("remote-errors"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { connect("ftp://x"); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { connect("http://192.0.2.1:1", {.token = "t"}); }), errc::permission_denied);
  EXPECT_EQ(code_of([&] { connect("http://127.0.0.1:1")->sessions(); }), errc::unavailable);
}

TEST_F(RemoteClient, QuotaExceededNamesTheQuota) {
  Options so;
  so.state_dir = state_ / "quota";
  so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
  so.isolation = "rlimit";
  so.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
  so.preload.clear();
  so.max_sessions = 1;
  Sandbox sb(so);
  server::Server srv(sb, {.port = 0, .quiet = true});
  srv.start();
  auto r = connect(srv.url());
  auto one = r->create_session({});
  try {
    r->create_session({});
    ADD_FAILURE() << "no quota error";
  } catch (const QuotaExceeded& e) {
    EXPECT_EQ(e.quota(), "sessions");
    EXPECT_EQ(e.code_value(), errc::resource_exhausted);
  }
  one->close();
  srv.stop();
}

}  // namespace
}  // namespace sandbox
