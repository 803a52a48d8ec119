// lib/sys/base64.hpp: OpenSSL's block codec with padding and whitespace handled around it.
#include "sys/base64.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>

#include <string>

namespace sandbox::sys {
namespace {

errc code_of(std::string_view text) {
  try {
    base64_decode(text);
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

TEST(Base64, EncodesWithPadding) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\0\xff\xfe", 3)), "AP/+");
}

TEST(Base64, DecodesPaddedAndUnpadded) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zg"), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm8"), "fo");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64_decode("AP/+"), std::string("\0\xff\xfe", 3));
}

TEST(Base64, SkipsWhitespaceAnywhere) {
  EXPECT_EQ(base64_decode(" Zm9v\nYmFy\r\n"), "foobar");
  EXPECT_EQ(base64_decode("Zm\t9v YmE=\n"), "fooba");
  EXPECT_EQ(base64_decode("\n\n"), "");
}

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes) << i;
    bytes.push_back(static_cast<char>(i * 37));
  }
}

TEST(Base64, RefusesWhatNoEncoderWrites) {
  EXPECT_EQ(code_of("Zm9v!"), errc::invalid_argument);     // outside the alphabet
  EXPECT_EQ(code_of("Zm9v-_"), errc::invalid_argument);    // the URL alphabet is another one
  EXPECT_EQ(code_of("Z"), errc::invalid_argument);         // a lone sextet is no byte
  EXPECT_EQ(code_of("Zm9vY"), errc::invalid_argument);
  EXPECT_EQ(code_of("Zg=a"), errc::invalid_argument);      // data after padding
  EXPECT_EQ(code_of("Zg==="), errc::invalid_argument);     // too much padding
  EXPECT_EQ(code_of("Zm8=="), errc::invalid_argument);     // padding past the quantum
  EXPECT_EQ(code_of("===="), errc::invalid_argument);
}

}  // namespace
}  // namespace sandbox::sys
