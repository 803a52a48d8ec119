// sandbox/result.hpp: names of the enums, to_json (base64 only there) and parse_result.
#include "sandbox/result.hpp"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sandbox/error.hpp"

using namespace sandbox;
using nlohmann::json;

namespace {

errc code_of_parse(std::string_view text) {
  try {
    parse_result(text);
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

// Every field set, an image with every byte value.
Result full_result() {
  Result r;
  r.execution_id = "e-7";
  r.language = Language::nodejs;
  r.status = Status::killed;
  r.stdout_text = "out\n";
  r.stderr_text = "err\n";
  r.result = "42";
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  r.images = {{"image/png", bytes}, {"image/svg+xml", "<svg/>"}};
  r.error = ErrorInfo{"RangeError", "too big", "at f (x.js:1)"};
  r.exit_code = 137;
  r.duration_ms = 1234;
  r.truncated = true;
  r.cpu_time_ms = 56;
  r.peak_memory_bytes = 7u << 20;
  r.termination = Termination::out_of_memory;
  r.stdout_offset = 10;
  r.stderr_offset = 20;
  r.stdout_total = 14;
  r.stderr_total = 24;
  r.note = "kernel restarted";
  return r;
}

}  // namespace

TEST(ResultTest, EnumNamesAreTheWireNames) {
  EXPECT_EQ(to_string(Language::python), "python");
  EXPECT_EQ(to_string(Language::nodejs), "nodejs");
  EXPECT_EQ(to_string(Language::shell), "shell");
  EXPECT_EQ(to_string(Status::running), "Running");
  EXPECT_EQ(to_string(Status::finished), "Finished");
  EXPECT_EQ(to_string(Status::failed), "Failed");
  EXPECT_EQ(to_string(Status::timeout), "Timeout");
  EXPECT_EQ(to_string(Status::killed), "Killed");
  EXPECT_EQ(to_string(Termination::none), "none");
  EXPECT_EQ(to_string(Termination::process_limit), "process_limit");
  EXPECT_EQ(to_string(Termination::kernel_died), "kernel_died");
  EXPECT_EQ(to_string(Termination::lifetime), "lifetime");
  Result r;
  r.termination = Termination::lifetime;
  EXPECT_EQ(parse_result(to_json(r)).termination, Termination::lifetime);
}

TEST(ResultTest, ParseLanguageTakesTheUsualAliases) {
  for (const char* s : {"python", "python3", "py"}) EXPECT_EQ(parse_language(s), Language::python) << s;
  for (const char* s : {"nodejs", "node", "javascript", "js"}) EXPECT_EQ(parse_language(s), Language::nodejs) << s;
  for (const char* s : {"shell", "bash", "sh"}) EXPECT_EQ(parse_language(s), Language::shell) << s;
  try {
    parse_language("ruby");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::invalid_argument);
    EXPECT_NE(e.message().find("ruby"), std::string::npos);
  }
}

TEST(ResultTest, JsonHasDesignFields) {
  Result r;
  r.status = Status::failed;
  r.error = ErrorInfo{"E", "v", "tb"};
  r.stdout_text = std::string("bad \xff utf8");
  std::string j = to_json(r, true);
  for (const char* f : {"\"status\":\"Failed\"", "\"stdout\"", "\"stderr\"", "\"result\":null", "\"images\":[]",
                        "\"error\":{", "\"exit_code\":null", "\"duration_ms\"", "\"truncated\":false"})
    EXPECT_NE(j.find(f), std::string::npos) << f << " in " << j;
  EXPECT_EQ(j.find("execution_id"), std::string::npos) << "design_only keeps section 3's fields";
  EXPECT_EQ(json::parse(j)["stdout"], "bad \xef\xbf\xbd utf8") << "invalid UTF-8 is replaced, not fatal";
  auto full = json::parse(to_json(r));
  for (const char* f : {"execution_id", "language", "cpu_time_ms", "peak_memory_bytes", "termination",
                        "stdout_offset", "stderr_offset", "stdout_total", "stderr_total", "note"})
    EXPECT_TRUE(full.contains(f)) << f;
}

// Images are bytes in the library; base64 exists in the JSON only.
TEST(ResultTest, ImagesAreBytesAndBase64OnlyInJson) {
  Result r;
  r.images = {{"image/png", std::string("\x89PNG\r\n\x1a\n", 8)}};
  auto j = json::parse(to_json(r));
  EXPECT_EQ(j["images"][0]["mime"], "image/png");
  EXPECT_EQ(j["images"][0]["data"], "iVBORw0KGgo=");
  EXPECT_EQ(parse_result(to_json(r)).images[0].data, std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST(ResultTest, ParseResultRoundTripsEveryField) {
  Result in = full_result();
  Result out = parse_result(to_json(in));
  EXPECT_EQ(out.execution_id, in.execution_id);
  EXPECT_EQ(out.language, in.language);
  EXPECT_EQ(out.status, in.status);
  EXPECT_EQ(out.stdout_text, in.stdout_text);
  EXPECT_EQ(out.stderr_text, in.stderr_text);
  EXPECT_EQ(out.result, in.result);
  ASSERT_EQ(out.images.size(), 2u);
  EXPECT_EQ(out.images[0].mime, "image/png");
  EXPECT_EQ(out.images[0].data, in.images[0].data);
  EXPECT_EQ(out.images[1].data, "<svg/>");
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->name, "RangeError");
  EXPECT_EQ(out.error->value, "too big");
  EXPECT_EQ(out.error->traceback, "at f (x.js:1)");
  EXPECT_EQ(out.exit_code, 137);
  EXPECT_EQ(out.duration_ms, 1234u);
  EXPECT_TRUE(out.truncated);
  EXPECT_EQ(out.cpu_time_ms, 56u);
  EXPECT_EQ(out.peak_memory_bytes, 7u << 20);
  EXPECT_EQ(out.termination, Termination::out_of_memory);
  EXPECT_EQ(out.stdout_offset, 10u);
  EXPECT_EQ(out.stderr_offset, 20u);
  EXPECT_EQ(out.stdout_total, 14u);
  EXPECT_EQ(out.stderr_total, 24u);
  EXPECT_EQ(out.note, "kernel restarted");
  EXPECT_EQ(to_json(out), to_json(in)) << "byte-identical after a round trip";
}

TEST(ResultTest, ParseResultOfTheDesignFormKeepsDefaults) {
  Result in = full_result();
  Result out = parse_result(to_json(in, /*design_only=*/true));
  EXPECT_EQ(out.status, Status::killed);
  EXPECT_EQ(out.result, "42");
  EXPECT_EQ(out.images.size(), 2u);
  EXPECT_EQ(out.execution_id, "");
  EXPECT_EQ(out.termination, Termination::none);
  EXPECT_FALSE(out.cpu_time_ms);
  EXPECT_EQ(out.stdout_total, in.stdout_text.size());
}

TEST(ResultTest, ParseResultRefusesWhatIsNotAResult) {
  EXPECT_EQ(code_of_parse("not json"), errc::invalid_argument);
  EXPECT_EQ(code_of_parse("[1]"), errc::invalid_argument);
  EXPECT_EQ(code_of_parse(R"({"status":"Sleeping"})"), errc::invalid_argument);
  EXPECT_EQ(code_of_parse(R"({"stdout":3})"), errc::invalid_argument);
  EXPECT_EQ(code_of_parse(R"({"images":[{"mime":"image/png","data":"not base64!"}]})"), errc::invalid_argument);
  EXPECT_EQ(code_of_parse(R"({"images":[{"mime":"image/png","data":"Y=Q="}]})"), errc::invalid_argument);
  EXPECT_EQ(code_of_parse(R"({"status":"Finished"})"), errc::ok);
}
