// The all-sessions ceiling (issue 11, item 6): a Sandbox's sessions live under one parent
// cgroup of its own, libsandbox/<pid>.g<n>, whose memory and pids limits bound their sum.
// Real cgroups through the namespaces backend; skipped where the host has none.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "isolation/namespaces/cgroup.hpp"
#include "sandbox/sandbox.hpp"

namespace {

namespace fs = std::filesystem;
namespace cg = sandbox::isolation::ns::cgroup;
using namespace std::chrono_literals;

constexpr std::uint64_t kCeiling = 256ull << 20;

std::unique_ptr<sandbox::Sandbox> namespaces_sandbox(sandbox::Options o, std::string& skip) {
  o.isolation = "namespaces";
  o.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
  o.preload = {};
  try {
    return std::make_unique<sandbox::Sandbox>(o);
  } catch (const sandbox::Error& e) {
    skip = e.what();
    return nullptr;
  }
}

// This process's groups (one per live Sandbox), in every hierarchy.
std::vector<fs::path> own_groups(const cg::Layout& layout) {
  std::vector<fs::path> out;
  const std::string prefix = std::to_string(::getpid()) + ".g";
  for (auto& root : layout.roots()) {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(root, ec))
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  return out;
}

std::optional<std::uint64_t> limit_in(const std::vector<fs::path>& dirs, const char* v1, const char* v2) {
  for (auto& d : dirs) {
    if (auto n = cg::read_number(d / v1)) return n;
    if (auto n = cg::read_number(d / v2)) return n;
  }
  return std::nullopt;
}

TEST(SessionsCeiling, ParentCgroupBoundsTheSumOfSessions) {
  auto layout = cg::Layout::detect();
  if (layout.version == 0) GTEST_SKIP() << "no cgroups: " << layout.reason;
  sandbox::Options o;
  o.sessions_memory_bytes = kCeiling;
  o.sessions_processes = 300;
  o.limits.memory_bytes = 200ull << 20;
  std::string skip;
  auto sb = namespaces_sandbox(o, skip);
  if (!sb) GTEST_SKIP() << "namespaces backend unavailable: " << skip;

  auto groups = own_groups(layout);
  ASSERT_FALSE(groups.empty()) << "no libsandbox/" << ::getpid() << ".g* group";
  EXPECT_EQ(limit_in(groups, "memory.limit_in_bytes", "memory.max"), kCeiling);
  EXPECT_EQ(limit_in(groups, "pids.max", "pids.max"), 300u);

  // Each session may take 200 MiB alone; together they may not pass 256 MiB.
  auto a = sb->create_session({});
  auto b = sb->create_session({});
  const std::string grab = "held = b'x' * (150 << 20)\nlen(held)";
  const std::string held = std::to_string(150ull << 20);
  auto ra = a->run({.code = grab, .timeout = 30s});
  ASSERT_EQ(ra.result, held) << sandbox::to_json(ra);
  auto rb = b->run({.code = grab, .timeout = 30s});
  auto ra2 = a->run({.code = "len(held)", .timeout = 30s});
  const int holding = (rb.result == held) + (ra2.result == held);
  EXPECT_LT(holding, 2) << "both sessions hold 150 MiB under a 256 MiB ceiling: b " << sandbox::to_json(rb)
                        << " a " << sandbox::to_json(ra2);
}

TEST(SessionsCeiling, EachSandboxHasItsOwnGroupAndRemovesOnlyIt) {
  auto layout = cg::Layout::detect();
  if (layout.version == 0) GTEST_SKIP() << "no cgroups: " << layout.reason;
  std::string skip;
  auto one = namespaces_sandbox({.sessions_memory_bytes = kCeiling}, skip);
  if (!one) GTEST_SKIP() << "namespaces backend unavailable: " << skip;
  auto before = own_groups(layout);
  auto two = namespaces_sandbox({.sessions_memory_bytes = 2 * kCeiling}, skip);
  ASSERT_TRUE(two) << skip;
  auto s = two->create_session({});
  auto both = own_groups(layout);
  ASSERT_GT(both.size(), before.size());
  one.reset();  // its group goes; the other's group and session stay
  auto after = own_groups(layout);
  for (auto& g : before) EXPECT_FALSE(fs::exists(g)) << g;
  EXPECT_EQ(limit_in(after, "memory.limit_in_bytes", "memory.max"), 2 * kCeiling);
  EXPECT_EQ(s->run({.code = "1+1"}).result, "2");
  two.reset();
  EXPECT_TRUE(own_groups(layout).empty());
}

TEST(SessionsCeiling, DefaultIsBelowTheHost) {
  auto c = sandbox::default_sessions_ceiling();
  ASSERT_GT(c.memory_bytes, 0u);
  ASSERT_GT(c.processes, 0u);
  std::uint64_t total = 0;
  {
    std::ifstream in("/proc/meminfo");
    std::string k;
    in >> k >> total;
    total *= 1024;
  }
  EXPECT_LT(c.memory_bytes, total);
  EXPECT_GE(c.memory_bytes, total / 2);
  std::uint64_t pid_max = 0;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  EXPECT_LT(c.processes, pid_max);
}

}  // namespace
