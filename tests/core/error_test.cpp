// sandbox/error.hpp: the one error vocabulary, its category, names and errno mapping.
#include "sandbox/error.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

using namespace sandbox;

TEST(ErrorTest, EveryCodeHasItsWireName) {
  const std::pair<errc, const char*> names[] = {
      {errc::ok, "ok"},
      {errc::invalid_argument, "invalid_argument"},
      {errc::not_found, "not_found"},
      {errc::already_exists, "already_exists"},
      {errc::permission_denied, "permission_denied"},
      {errc::unauthenticated, "unauthenticated"},
      {errc::resource_exhausted, "resource_exhausted"},
      {errc::unavailable, "unavailable"},
      {errc::failed_precondition, "failed_precondition"},
      {errc::timeout, "timeout"},
      {errc::internal, "internal"},
  };
  for (auto [code, name] : names) EXPECT_EQ(to_string(code), name);
}

TEST(ErrorTest, IsASystemErrorOnSandboxsCategory) {
  Error e(errc::not_found, "no such session 'a'");
  const std::system_error& base = e;  // front-ends may catch std::system_error
  EXPECT_EQ(base.code(), errc::not_found);
  EXPECT_EQ(&e.code().category(), &error_category());
  EXPECT_EQ(e.code_value(), errc::not_found);
  EXPECT_EQ(e.message(), "no such session 'a'") << "message() carries no category suffix";
  EXPECT_NE(std::string(e.what()).find("no such session 'a'"), std::string::npos);
  EXPECT_NE(e.code(), errc::already_exists);
  // errc converts implicitly: is_error_code_enum.
  std::error_code ec = errc::timeout;
  EXPECT_EQ(ec.value(), 9);
  EXPECT_FALSE(error_category().message(static_cast<int>(errc::unavailable)).empty());
}

TEST(ErrorTest, FromErrnoMapsOntoTheVocabulary) {
  EXPECT_EQ(from_errno(ENOENT), errc::not_found);
  EXPECT_EQ(from_errno(EEXIST), errc::already_exists);
  EXPECT_EQ(from_errno(EACCES), errc::permission_denied);
  EXPECT_EQ(from_errno(EPERM), errc::permission_denied);
  EXPECT_EQ(from_errno(ENOSPC), errc::resource_exhausted);
  EXPECT_EQ(from_errno(EDQUOT), errc::resource_exhausted);
  EXPECT_EQ(from_errno(EINVAL), errc::invalid_argument);
}

TEST(ErrorTest, ThrowSyscallNamesTheCallTheObjectAndTheErrno) {
  try {
    throw_syscall("openat2", ENOENT, "report.csv");
    FAIL() << "throw_syscall returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::not_found);
    EXPECT_NE(e.message().find("openat2"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("report.csv"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(std::strerror(ENOENT)), std::string::npos) << e.message();
  }
}
