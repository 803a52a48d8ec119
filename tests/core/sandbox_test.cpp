// sandbox/sandbox.hpp: the Sandbox (sessions by id and owner, warm pool, watchdog, options)
// and find_runtime_dir, on the portable rlimit backend. Quotas: quota_test.cpp.
#include "sandbox/sandbox.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

Options rlimit_options() {
  Options o;
  o.isolation = "rlimit";
  o.limits.timeout = 10s;
  o.preload = {};
  return o;
}

template <typename F>
errc code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

}  // namespace

TEST(SandboxTest, SessionIdsAndLifecycle) {
  Sandbox sb(rlimit_options());
  EXPECT_EQ(code_of([&] { sb.create_session({.id = "../etc"}); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { sb.create_session({.id = std::string(65, 'a')}); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { sb.create_session({.id = "a b"}); }), errc::invalid_argument);
  auto s = sb.create_session({.id = "my-session_1"});
  EXPECT_EQ(s->id(), "my-session_1");
  EXPECT_EQ(code_of([&] { sb.create_session({.id = "my-session_1"}); }), errc::already_exists);
  auto gen = sb.create_session({});
  EXPECT_EQ(gen->id().size(), 18u);
  auto ws = s->workspace();
  EXPECT_TRUE(std::filesystem::exists(ws));
  Result r = s->run({.language = Language::shell, .code = "sleep 100 & (setsid sleep 101 &) ; echo $$"});
  auto procs = s->processes();
  EXPECT_GE(procs.size(), 2u);
  sb.close_session("my-session_1");
  EXPECT_FALSE(std::filesystem::exists(ws)) << "teardown removes the workspace";
  for (auto& p : procs) {
    // rlimit pids are host pids: every process of the session is gone.
    std::this_thread::sleep_for(50ms);
    EXPECT_NE(::kill(p.pid, 0) == 0 && std::filesystem::exists("/proc/" + std::to_string(p.pid)) &&
                  p.pid != ::getpid(), true)
        << "pid " << p.pid << " (" << p.cmdline << ") outlived its session";
  }
  EXPECT_EQ(code_of([&] { sb.close_session("my-session_1"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { s->run({.code = "1"}); }), errc::failed_precondition);
}

TEST(SandboxTest, WarmPoolHandsOutReadySessions) {
  Options o = rlimit_options();
  o.warm_pool = 2;
  Sandbox sb(o);
  std::this_thread::sleep_for(1500ms);
  auto s = sb.create_session({.id = "pooled"});
  EXPECT_EQ(s->id(), "pooled");
  EXPECT_EQ(s->run({.code = "1+1"}).result, "2");
}

TEST(SandboxTest, TheIOLoopIsResponsive) {
  Sandbox sb(rlimit_options());
  EXPECT_TRUE(sb.responsive(std::chrono::seconds(5)));
}

TEST(SandboxTest, OptionsNameTheBackendAndRefuseAnUnknownOne) {
  Sandbox sb(rlimit_options());
  EXPECT_EQ(sb.isolation(), "rlimit");
  EXPECT_EQ(sb.options().isolation, "rlimit");
  EXPECT_GT(sb.options().sessions_memory_bytes, 0u) << "the ceiling's default is filled in";
  EXPECT_EQ(sb.readiness(), "") << "a fresh Sandbox can create sessions";
  Options bad = rlimit_options();
  bad.isolation = "chroot";
  EXPECT_EQ(code_of([&] { Sandbox x(bad); }), errc::invalid_argument);
}

TEST(SandboxTest, SessionsAreFoundByIdAndClosed) {
  Sandbox sb(rlimit_options());
  auto a = sb.create_session({.id = "a"});
  EXPECT_EQ(sb.session("a"), a);
  EXPECT_EQ(sb.find("a"), a);
  EXPECT_EQ(sb.find("b"), nullptr);
  EXPECT_EQ(code_of([&] { sb.session("b"); }), errc::not_found);
  EXPECT_EQ(sb.sessions().size(), 1u);
  auto stats = sb.stats();
  EXPECT_EQ(stats.sessions_active, 1u);
  sb.close_session("a");
  EXPECT_EQ(sb.find("a"), nullptr);
  EXPECT_EQ(a->status(), SessionStatus::closed);
  EXPECT_EQ(sb.stats().sessions_closed, stats.sessions_closed + 1);
}

TEST(SandboxTest, FindRuntimeDirTakesTheOptionThenTheEnvironment) {
  const char* env = std::getenv("SANDBOX_RUNTIME_DIR");
  ASSERT_TRUE(env) << "ctest sets SANDBOX_RUNTIME_DIR";
  EXPECT_EQ(find_runtime_dir(), std::filesystem::absolute(env));
  EXPECT_EQ(find_runtime_dir(env), std::filesystem::absolute(env));
  EXPECT_EQ(code_of([] { find_runtime_dir("/nonexistent"); }), errc::invalid_argument);
}
