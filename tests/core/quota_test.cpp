// sandbox::Sandbox's quotas and tenant namespaces (issue 11, items 6 and 7), on the
// portable rlimit backend: every front-end gets these from the library.
#include <gtest/gtest.h>

#include <thread>

#include "sandbox/sandbox.hpp"

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

Options rlimit_options() {
  Options o;
  o.isolation = "rlimit";
  o.preload = {};
  return o;
}

SessionOptions of(std::string owner, std::string id = {}) {
  SessionOptions so;
  so.owner = std::move(owner);
  so.id = std::move(id);
  return so;
}

// The quota a call ran into, "" if it did not throw QuotaExceeded.
template <typename F>
std::string quota_of(F&& f) {
  try {
    f();
  } catch (const QuotaExceeded& e) {
    EXPECT_EQ(e.code_value(), errc::resource_exhausted);
    return e.quota() + ": " + e.message();
  }
  return "";
}

}  // namespace

TEST(Quota, SessionsPerTenantNamesTheQuotaAndSparesOthers) {
  Options o = rlimit_options();
  o.max_sessions_per_tenant = 2;
  Sandbox sb(o);
  sb.create_session(of("alice"));
  sb.create_session(of("alice"));
  EXPECT_EQ(quota_of([&] { sb.create_session(of("alice")); }),
            "sessions_per_tenant: tenant quota: 2 sessions per tenant");
  auto b = sb.create_session(of("bob"));
  EXPECT_EQ(b->run({.code = "1+1"}).result, "2");
}

TEST(Quota, MaxSessionsNamesTheQuota) {
  Options o = rlimit_options();
  o.max_sessions = 1;
  Sandbox sb(o);
  sb.create_session(of("alice"));
  EXPECT_EQ(quota_of([&] { sb.create_session(of("bob")); }), "sessions: server quota: 1 sessions");
}

TEST(Quota, WarmPoolSessionsAreNobodysUntilTaken) {
  Options o = rlimit_options();
  o.warm_pool = 2;
  o.max_sessions = 2;
  o.max_sessions_per_tenant = 1;
  Sandbox sb(o);
  std::this_thread::sleep_for(2s);  // the pool fills meanwhile (not needed for the check)
  auto a = sb.create_session(of("alice"));  // may be a pooled one
  auto b = sb.create_session(of("bob"));
  EXPECT_EQ(a->owner(), "alice");
  EXPECT_EQ(b->owner(), "bob");
  EXPECT_EQ(b->run({.code = "1+1"}).result, "2");
  EXPECT_FALSE(quota_of([&] { sb.create_session(of("carol")); }).empty());
}

TEST(Quota, ExecutionsPerTenantCountFromSubmitToEnd) {
  Options o = rlimit_options();
  o.max_executions_per_tenant = 2;
  Sandbox sb(o);
  auto a1 = sb.create_session(of("alice"));
  auto a2 = sb.create_session(of("alice"));
  auto b = sb.create_session(of("bob"));
  auto slow = a1->start({.code = "import time; time.sleep(2)"});
  auto queued = a1->start({.code = "1"});  // waits behind the first, and counts meanwhile
  EXPECT_EQ(quota_of([&] { a2->start({.code = "1"}); }),
            "executions_per_tenant: tenant quota: 2 concurrent executions per tenant");
  EXPECT_EQ(b->run({.code = "1+1"}).result, "2");
  slow->wait();
  queued->wait();
  EXPECT_EQ(a2->run({.code = "3+3"}).result, "6");
  // A failed or timed-out execution frees its count too.
  EXPECT_EQ(a2->run({.code = "1/0"}).status, Status::failed);
  EXPECT_EQ(a2->run({.code = "import time; time.sleep(5)", .timeout = 500ms}).status, Status::timeout);
  auto x = a1->start({.code = "1"});
  auto y = a2->start({.code = "2"});
  EXPECT_EQ(x->wait().result, "1");
  EXPECT_EQ(y->wait().result, "2");
}

TEST(Tenants, SameIdUnderTwoOwnersIsTwoSessions) {
  Sandbox sb(rlimit_options());
  auto a = sb.create_session(of("alice", "same"));
  auto b = sb.create_session(of("bob", "same"));
  EXPECT_NE(a, b);
  EXPECT_EQ(sb.find("same", "alice"), a);
  EXPECT_EQ(sb.find("same", "bob"), b);
  EXPECT_EQ(sb.find("same"), nullptr);  // nobody's (owner "") has none
  a->files().upload("a.txt", "alice's");
  a->run({.code = "x = 'alice'"});
  EXPECT_EQ(b->run({.code = "x"}).status, Status::failed);
  EXPECT_TRUE(b->files().list().empty());
  EXPECT_THROW(sb.create_session(of("alice", "same")), Error);  // the owner's own id is taken
  sb.close_session("same", "bob");
  EXPECT_EQ(sb.find("same", "bob"), nullptr);
  EXPECT_EQ(a->run({.code = "x"}).result, "'alice'");
}
