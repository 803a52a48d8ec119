// A tenant that takes every session and execution it can, while another tenant still
// works (issue 11): the greedy one is held to its quotas (QuotaExceeded naming each) and
// the other's `1+1` answers within 2 s. Each backend gets a Sandbox of its own with quotas.
#include <fmt/format.h>

#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

class Quota : public Hostile {};

TEST_P(Quota, GreedyTenantWhileAnotherWorks) {
  sandbox::Options o;
  o.isolation = backend();
  o.state_dir = world().state_root / (backend() + "-quota");
  o.close_sessions_on_exit = true;  // sessions end with the Sandbox here
  o.limits = case_limits();
  o.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
  o.preload = {};
  o.max_sessions = 6;
  o.max_sessions_per_tenant = 3;
  o.max_executions_per_tenant = 3;
  auto sb = std::make_unique<sandbox::Sandbox>(o);

  // The greedy tenant: sessions until refused, then busy executions until refused.
  std::vector<std::shared_ptr<sandbox::Session>> mine;
  std::string session_quota, execution_quota;
  for (int i = 0; i < 10 && session_quota.empty(); ++i) {
    try {
      mine.push_back(sb->create_session({.owner = "greedy"}));
    } catch (const sandbox::QuotaExceeded& e) {
      session_quota = e.quota();
    }
  }
  std::vector<std::shared_ptr<sandbox::Execution>> busy;
  for (int i = 0; i < 10 && execution_quota.empty() && !mine.empty(); ++i) {
    try {
      busy.push_back(mine[static_cast<std::size_t>(i) % mine.size()]->start(
          {.code = "import time\nwhile True: time.sleep(0.1)", .timeout = 20s}));
    } catch (const sandbox::QuotaExceeded& e) {
      execution_quota = e.quota();
    }
  }

  // The other tenant: a session of its own, answering promptly while the greedy one is busy.
  std::string other_detail = "no session";
  bool other_ok = false;
  try {
    auto theirs = sb->create_session({.owner = "other"});
    long worst_ms = 0;
    int right = 0;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = theirs->run({.code = "1+1", .timeout = 10s});
      worst_ms = std::max<long>(worst_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - t0).count());
      right += r.result == "2";
    }
    other_ok = right == 5 && worst_ms < 2000;
    other_detail = fmt::format("{}/5 right, worst {} ms", right, worst_ms);
  } catch (const std::exception& e) {
    other_detail = e.what();
  }
  for (auto& ex : busy) ex->cancel();
  for (auto& ex : busy) ex->wait();
  const std::size_t sessions = mine.size();
  mine.clear();
  sb.reset();

  const bool held = session_quota == "sessions_per_tenant" && execution_quota == "executions_per_tenant";
  verdict(kAll, "a tenant exhausting quotas while another still works", held && other_ok,
          fmt::format("greedy: {} sessions then '{}', {} executions then '{}'; other: {}", sessions, session_quota,
                      busy.size(), execution_quota, other_detail));
}

std::string name_of(const ::testing::TestParamInfo<std::string>& info) { return info.param; }
INSTANTIATE_TEST_SUITE_P(Backends, Quota, ::testing::Values("rlimit", "namespaces", "runsc"), name_of);

}  // namespace
}  // namespace hostile
