// sandbox/isolation.hpp: the backends as a user chooses among them (`sandboxctl doctor`).
#include "sandbox/isolation.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "sandbox/error.hpp"

using namespace sandbox;

TEST(IsolationTest, EveryBackendIsDescribedStrongestFirst) {
  EXPECT_EQ(isolation::backend_names(), (std::vector<std::string>{"runsc", "namespaces", "rlimit"}));
  auto all = isolation::describe_backends();
  ASSERT_EQ(all.size(), 3u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].name, isolation::backend_names()[i]);
    EXPECT_FALSE(all[i].support.reason.empty()) << all[i].name << ": say why, or what it uses";
    EXPECT_FALSE(all[i].containment.contains.empty()) << all[i].name;
  }
}

TEST(IsolationTest, RlimitRunsAnywhereAndSaysWhatItDoesNotContain) {
  auto rlimit = isolation::describe_backend("rlimit");
  ASSERT_TRUE(rlimit);
  EXPECT_TRUE(rlimit->support.available) << rlimit->support.reason;
  const auto& gaps = rlimit->containment.does_not_contain;
  EXPECT_NE(std::find(gaps.begin(), gaps.end(), "the network"), gaps.end());
  EXPECT_FALSE(isolation::describe_backend("chroot"));
}

TEST(IsolationTest, TheDefaultIsAnAvailableBackend) {
  std::string chosen = isolation::default_backend();
  auto info = isolation::describe_backend(chosen);
  ASSERT_TRUE(info) << chosen;
  EXPECT_TRUE(info->support.available);
  EXPECT_NE(chosen, "runsc") << "runsc is opt-in by name (a session costs ~250 ms)";
}

TEST(IsolationTest, InterpretersDefaultToTheSystemOnes) {
  isolation::Interpreters i;
  EXPECT_EQ(i.python, "/usr/bin/python3");
  EXPECT_EQ(i.node, "/usr/bin/node");
  EXPECT_EQ(i.shell, "/bin/bash");
}
