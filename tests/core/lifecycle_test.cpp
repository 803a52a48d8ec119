// What sandbox::Sandbox decides for every front-end (issue 12, deliverable 1): the reaper
// (Options::idle_timeout, lifetime) and the limits of a request (the one parse, the one
// narrowing rule). Timings have wide margins: the machine running the tests is shared.
#include <gtest/gtest.h>

#include <thread>

#include "sandbox/sandbox.hpp"

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

Options rlimit_options() {
  Options o;
  o.isolation = "rlimit";
  o.preload = {};
  return o;
}

// Waits up to `limit` for `done`; whether it came true.
template <typename F>
bool eventually(F&& done, std::chrono::seconds limit = 20s) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

TEST(Reaper, ClosesAnIdleSession) {
  auto o = rlimit_options();
  o.idle_timeout = 1s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "idle"});
  EXPECT_TRUE(eventually([&] { return !sb.find("idle"); })) << "an idle session outlived 20 s";
  EXPECT_EQ(s->status(), SessionStatus::closed);
  EXPECT_EQ(sb.stats().sessions_closed, 1u);
}

TEST(Reaper, KeepsASessionWhileItRunsThenClosesIt) {
  auto o = rlimit_options();
  o.idle_timeout = 1s;
  o.limits.timeout = 60s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "busy"});
  auto ex = s->start({.language = Language::shell, .code = "sleep 4"});
  std::this_thread::sleep_for(2500ms);
  EXPECT_TRUE(sb.find("busy")) << "a running execution counts as use";
  EXPECT_EQ(ex->wait().status, Status::finished);
  EXPECT_TRUE(eventually([&] { return !sb.find("busy"); })) << "idle after its execution, yet kept";
}

TEST(Reaper, ClosesASessionAtItsLifetimeThoughUsed) {
  auto o = rlimit_options();
  o.lifetime = 2s;
  Sandbox sb(o);
  auto s = sb.create_session({.id = "old"});
  auto t0 = Clock::now();
  bool gone = eventually([&] {
    try {
      s->run({.language = Language::shell, .code = "true"});  // in use all along
    } catch (const Error&) {
      // closed under us: what the test waits for
    }
    return !sb.find("old");
  });
  EXPECT_TRUE(gone) << "the session outlived its lifetime by 20 s";
  EXPECT_GE(Clock::now() - t0, 1500ms) << "closed before its lifetime";
}

TEST(Reaper, OffByDefault) {
  Sandbox sb(rlimit_options());
  EXPECT_EQ(sb.options().idle_timeout.count(), 0);
  sb.create_session({.id = "kept"});
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(sb.find("kept"));
}

TEST(Limits, OneParseRoundsOnce) {
  const Limits base;
  Limits l = parse_limits(R"({"timeout": 2.5, "cpu_time": 0.2, "memory_bytes": 268435456, "cpus": 0.5,
                              "disk_bytes": null})",
                          base);
  EXPECT_EQ(l.timeout, 2500ms);
  EXPECT_EQ(l.cpu_time, 1s) << "cpu_time rounds up to a whole second";
  EXPECT_EQ(l.memory_bytes, 256u << 20);
  EXPECT_EQ(l.cpus, 0.5);
  EXPECT_EQ(l.disk_bytes, base.disk_bytes) << "null is absent";
  Limits k;
  set_limit(k, "timeout", 0.0004);
  EXPECT_EQ(k.timeout, 0ms) << "nearest millisecond";
  set_limit(k, "timeout", 0.0006);
  EXPECT_EQ(k.timeout, 1ms);

  EXPECT_EQ(code_of([&] { parse_limits(R"({"memory_bytes": 1.5})", base); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { parse_limits(R"({"memory_bytes": "lots"})", base); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { parse_limits(R"({"timeout": -1})", base); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { parse_limits("[1]", base); }), errc::invalid_argument);
  try {
    parse_limits(R"({"tiemout": 5})", base);
    ADD_FAILURE() << "an unknown field was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "unknown field 'tiemout' in limits");
  }
}

TEST(Limits, ARequestMayOnlyLowerTheCeiling) {
  Limits ceiling;
  ceiling.timeout = 30s;
  Limits lower = ceiling;
  lower.timeout = 5s;
  lower.memory_bytes = 64u << 20;
  EXPECT_EQ(narrow(ceiling, lower).timeout, 5s);
  EXPECT_EQ(narrow(ceiling, ceiling).timeout, 30s) << "equal is not above";
  for (const char* field : {"timeout", "memory_bytes", "cpus", "result_bytes", "open_files"}) {
    Limits higher = ceiling;
    set_limit(higher, field, std::string_view(field) == "timeout" ? 31.0
                             : std::string_view(field) == "cpus"  ? 2.0
                             : std::string_view(field) == "open_files" ? 4096.0
                                                                      : static_cast<double>(2ull << 30));
    try {
      narrow(ceiling, higher);
      ADD_FAILURE() << field << " above the ceiling was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::permission_denied) << field;
      EXPECT_NE(e.message().find(field), std::string::npos) << e.message();
    }
  }
}

}  // namespace
