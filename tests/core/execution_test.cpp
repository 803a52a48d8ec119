// sandbox/execution.hpp: one run observed while it runs (snapshot, waits, pages, cancel) and
// the Subscription handle, with real code on the rlimit backend.
#include "sandbox/execution.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "sandbox/sandbox.hpp"

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

class ExecutionTest : public ::testing::Test {
 protected:
  static Options options() {
    Options o;
    o.isolation = "rlimit";
    o.preload = {};
    return o;
  }
  std::shared_ptr<Execution> shell(std::string code) {
    return s->start({.language = Language::shell, .code = std::move(code)});
  }
  Sandbox sb{options()};
  std::shared_ptr<Session> s = sb.create_session({.language = Language::shell});
};

}  // namespace

TEST_F(ExecutionTest, SnapshotWhileRunningThenTheFinalResult) {
  auto ex = shell("echo first; sleep 1; echo second");
  EXPECT_FALSE(ex->id().empty());
  EXPECT_EQ(ex->language(), Language::shell);
  ASSERT_TRUE(ex->wait_change(0, 0, 5s)) << "the first line arrives";
  Result partial = ex->snapshot();
  EXPECT_EQ(partial.status, Status::running);
  EXPECT_FALSE(ex->done());
  EXPECT_EQ(partial.stdout_text, "first\n");
  EXPECT_FALSE(ex->wait_for(10ms));
  Result r = ex->wait();
  EXPECT_TRUE(ex->done());
  EXPECT_EQ(ex->status(), Status::finished);
  EXPECT_EQ(r.status, Status::finished);
  EXPECT_EQ(r.stdout_text, "first\nsecond\n");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.execution_id, ex->id());
  EXPECT_TRUE(ex->wait_for(0ms));
}

TEST_F(ExecutionTest, PagesSliceTheStreams) {
  Result r = shell("printf 0123456789")->wait();
  ASSERT_EQ(r.stdout_text, "0123456789");
  auto ex = s->latest();
  Result page = ex->snapshot({.offset = 3, .limit = 4});
  EXPECT_EQ(page.stdout_text, "3456");
  EXPECT_EQ(page.stdout_offset, 3u);
  EXPECT_EQ(page.stdout_total, 10u);
  EXPECT_EQ(ex->snapshot({.offset = 20}).stdout_text, "");
}

TEST_F(ExecutionTest, CancelKillsTheRun) {
  auto ex = shell("sleep 30");
  std::this_thread::sleep_for(200ms);
  ex->cancel();
  ASSERT_TRUE(ex->wait_for(10s));
  Result r = ex->snapshot();
  EXPECT_EQ(r.status, Status::killed) << to_json(r);
  EXPECT_EQ(r.termination, Termination::cancelled);
}

TEST_F(ExecutionTest, SubscriptionIsCalledOnOutputAndAtTheEnd) {
  std::atomic<int> calls{0};
  auto ex = shell("sleep 0.3; echo a; sleep 0.3; echo b");
  Subscription sub = ex->subscribe([&] { ++calls; });
  EXPECT_TRUE(sub.active());
  ex->wait();
  // The end's call may run just after wait() returns (callbacks run unlocked).
  for (int i = 0; i < 50 && calls.load() < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(calls.load(), 2) << "output chunks and the end";
}

TEST_F(ExecutionTest, DestroyingTheSubscriptionUnsubscribes) {
  std::atomic<int> calls{0};
  auto ex = shell("sleep 0.5; for i in 1 2 3; do echo $i; sleep 0.1; done");
  {
    Subscription sub = ex->subscribe([&] { ++calls; });
  }
  Subscription reset = ex->subscribe([&] { ++calls; });
  reset.reset();
  EXPECT_FALSE(reset.active());
  ex->wait();
  EXPECT_EQ(calls.load(), 0) << "no callback after its handle went";
}

TEST_F(ExecutionTest, AMovedSubscriptionStaysSubscribed) {
  std::atomic<int> calls{0};
  auto ex = shell("sleep 0.3; echo a");
  Subscription outer;
  {
    Subscription inner = ex->subscribe([&] { ++calls; });
    outer = std::move(inner);
    EXPECT_FALSE(inner.active());  // NOLINT(bugprone-use-after-move): moved-from is empty
  }
  EXPECT_TRUE(outer.active());
  ex->wait();
  EXPECT_GE(calls.load(), 1);
}

TEST_F(ExecutionTest, SubscribingToAnEndedRunCallsOnceAtOnce) {
  auto ex = shell("true");
  ex->wait();
  int calls = 0;
  Subscription sub = ex->subscribe([&] { ++calls; });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(sub.active()) << "nothing left to unsubscribe";
}
