#include "server/auth.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sandbox/error.hpp"

namespace sandbox::server {
namespace {

TEST(Tokens, NamedAndUnnamedTokens) {
  auto t = Tokens::parse("# comment\n\nalice: s3cret \nbare-token\n");
  EXPECT_TRUE(t.enabled());
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.owner_for("Bearer s3cret"), "alice");
  EXPECT_EQ(t.owner_for("bearer s3cret"), "alice");
  auto bare = t.owner_for("Bearer bare-token");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->rfind("token-", 0), 0u);
  EXPECT_EQ(Tokens::parse("x\nbare-token").owner_for("Bearer bare-token"), bare);  // stable
  EXPECT_FALSE(t.owner_for("Bearer s3cre"));
  EXPECT_FALSE(t.owner_for("Bearer s3crett"));
  EXPECT_FALSE(t.owner_for("Basic s3cret"));
  EXPECT_FALSE(t.owner_for(""));
  EXPECT_FALSE(t.owner_for("Bearer "));
}

TEST(Tokens, EmptyMeansOffAndBadFilesFail) {
  EXPECT_FALSE(Tokens().enabled());
  EXPECT_FALSE(Tokens().owner_for("Bearer x"));
  EXPECT_THROW(Tokens::parse("name:\n"), Error);
  EXPECT_THROW(Tokens::load("/nonexistent/tokens"), Error);
  auto path = std::filesystem::temp_directory_path() / "sandbox-auth-test-empty";
  std::ofstream(path) << "# nothing\n";
  EXPECT_THROW(Tokens::load(path), Error);
  std::filesystem::remove(path);
}

TEST(Tokens, AdminFlagAndOldFilesStillRead) {
  auto t = Tokens::parse("ops:t0ken admin\nalice : s3cret\nbare admin\ncarol:ccc\t admin \n");
  ASSERT_TRUE(t.identify("Bearer t0ken"));
  EXPECT_EQ(t.identify("Bearer t0ken")->owner, "ops");
  EXPECT_TRUE(t.identify("Bearer t0ken")->admin);
  EXPECT_EQ(t.owner_for("Bearer s3cret"), "alice");  // blanks around the colon, as before
  EXPECT_FALSE(t.identify("Bearer s3cret")->admin);
  EXPECT_TRUE(t.identify("Bearer bare")->admin);
  EXPECT_TRUE(t.identify("Bearer ccc")->admin);
  EXPECT_FALSE(t.identify("Bearer admin"));  // the flag is not a token
  EXPECT_THROW(Tokens::parse("ops:t0ken admn\n"), Error);  // a typo is refused, not ignored
}

}  // namespace
}  // namespace sandbox::server
