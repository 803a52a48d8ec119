// sandbox/limits.hpp: the defaults, the caps they resolve to, and validate().
#include "sandbox/limits.hpp"

#include <string>

#include <gtest/gtest.h>

#include "sandbox/error.hpp"

using namespace sandbox;
using namespace std::chrono_literals;

namespace {

// The field validate() names, or "" if it passed.
std::string rejected(const Limits& l) {
  try {
    l.validate();
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::invalid_argument);
    return e.message();
  }
  return "";
}

}  // namespace

TEST(LimitsTest, DefaultsSuitAnInteractiveInterpreter) {
  Limits l;
  EXPECT_EQ(l.timeout, 10s);
  EXPECT_EQ(l.memory_bytes, 512ull << 20);
  EXPECT_EQ(l.max_processes, 128u);
  EXPECT_EQ(l.disk_bytes, 100ull << 20);
  EXPECT_EQ(l.output_bytes, 1ull << 20);
  EXPECT_EQ(l.upload_bytes, 10ull << 20);
  EXPECT_EQ(l.cpu_time, 300s);
  EXPECT_EQ(l.open_files, 1024u);
  EXPECT_DOUBLE_EQ(l.cpus, 1.0);
  EXPECT_EQ(rejected(l), "") << "the defaults are valid";
}

TEST(LimitsTest, CapsDefaultToMultiplesOfTheOutputCap) {
  Limits l;
  l.output_bytes = 1000;
  EXPECT_EQ(l.result_cap(), 1000u);
  EXPECT_EQ(l.image_cap(), 4000u);
  EXPECT_EQ(l.images_cap(), 8000u);
  EXPECT_EQ(l.history_cap(), 16000u);
  l.result_bytes = 10;
  l.image_bytes = 20;
  l.images_bytes = 30;
  l.history_bytes = 40;
  EXPECT_EQ(l.result_cap(), 10u);
  EXPECT_EQ(l.image_cap(), 20u);
  EXPECT_EQ(l.images_cap(), 30u);
  EXPECT_EQ(l.history_cap(), 40u);
}

TEST(LimitsTest, ValidateNamesTheField) {
  Limits l;
  l.timeout = 0ms;
  EXPECT_NE(rejected(l).find("limits.timeout"), std::string::npos);
  l = {};
  l.timeout = 25h;
  EXPECT_NE(rejected(l).find("limits.timeout"), std::string::npos);
  l = {};
  l.memory_bytes = (16ull << 20) - 1;
  EXPECT_NE(rejected(l).find("limits.memory"), std::string::npos);
  l.memory_bytes = 16ull << 20;
  EXPECT_EQ(rejected(l), "") << "16 MiB is the floor, not under it";
  l = {};
  l.max_processes = 3;
  EXPECT_NE(rejected(l).find("limits.processes"), std::string::npos);
  l = {};
  l.cpus = 0;
  EXPECT_NE(rejected(l).find("limits.cpus"), std::string::npos);
  l = {};
  l.open_files = 15;
  EXPECT_NE(rejected(l).find("limits.open_files"), std::string::npos);
  l = {};
  l.image_bytes = 2000;
  l.images_bytes = 1999;  // all images together must hold at least one
  EXPECT_NE(rejected(l).find("limits.images_bytes"), std::string::npos);
  l.images_bytes = 0;
  EXPECT_EQ(rejected(l), "") << "0 is the default, always valid";
}
