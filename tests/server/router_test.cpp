#include "server/router.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sandbox/error.hpp"
#include "server/json_body.hpp"
#include "server/status.hpp"

namespace sandbox::server {
namespace {

TEST(Router, MatchesEverySeedRouteWithItsParameters) {
  auto m = match("POST", "/s1/exec/python");
  ASSERT_EQ(m.outcome, Outcome::matched);
  EXPECT_EQ(m.route->id, RouteId::exec_python);
  EXPECT_EQ(m.param("sid"), "s1");

  m = match("GET", "/s1/files/download/a%20b.txt?x=1");
  ASSERT_EQ(m.outcome, Outcome::matched);
  EXPECT_EQ(m.route->id, RouteId::files_download);
  EXPECT_EQ(m.param("name"), "a b.txt");
  EXPECT_EQ(m.query, "x=1");

  m = match("GET", "/s1/files/download/data/a.csv");
  ASSERT_EQ(m.outcome, Outcome::matched);
  EXPECT_EQ(m.param("name"), "data/a.csv");

  EXPECT_EQ(match("DELETE", "/s1/files/delete/a.txt").route->id, RouteId::files_delete);
  EXPECT_EQ(match("POST", "/s1/files/delete/a.txt").route->id, RouteId::files_delete_post);
  EXPECT_EQ(match("POST", "/s1/process/kill/12").param("pid"), "12");
  EXPECT_EQ(match("GET", "/sessions/abc").route->id, RouteId::session_get);
  EXPECT_EQ(match("GET", "/sessions").route->id, RouteId::sessions_list);
  EXPECT_EQ(match("GET", "/healthz").route->id, RouteId::healthz);
}

TEST(Router, UnknownPathsAndMethods) {
  EXPECT_EQ(match("GET", "/nope").outcome, Outcome::not_found);
  EXPECT_EQ(match("GET", "/s1/exec/ruby").outcome, Outcome::not_found);
  EXPECT_EQ(match("GET", "/s1/result/extra").outcome, Outcome::not_found);
  EXPECT_EQ(match("GET", "//result").outcome, Outcome::not_found);
  auto m = match("GET", "/s1/exec/python");
  EXPECT_EQ(m.outcome, Outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");
  m = match("PUT", "/s1/files/delete/x");
  EXPECT_EQ(m.outcome, Outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "DELETE, POST");
}

TEST(Router, HeadIsServedWhereverGetIs) {
  EXPECT_EQ(match("HEAD", "/healthz").route->id, RouteId::healthz);
  EXPECT_EQ(match("HEAD", "/readyz").route->id, RouteId::readyz);
  EXPECT_EQ(match("HEAD", "/s1/files/download/a/b.txt").param("name"), "a/b.txt");
  auto m = match("POST", "/s1/result");
  EXPECT_EQ(m.outcome, Outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, HEAD");
  m = match("HEAD", "/s1/exec/python");
  EXPECT_EQ(m.outcome, Outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");
}

TEST(JsonBody, DepthIsCountedOutsideStringsOnly) {
  EXPECT_EQ(json_depth("{}"), 1u);
  EXPECT_EQ(json_depth(R"({"a": [[1], {"b": 2}]})"), 3u);
  EXPECT_EQ(json_depth(R"({"a": "[[[[[[\"[[[["})"), 1u);
  EXPECT_EQ(json_depth(std::string(1000000, '[')), kMaxJsonDepth + 1);  // stops counting early
  EXPECT_THROW(parse_object(std::string(33, '[') + std::string(33, ']'), false), Error);
  EXPECT_EQ(parse_object("", true), nlohmann::json::object());
  EXPECT_THROW(parse_object("[]", false), Error);
  auto j = parse_object(R"({"code": "1", "tiemout": 2})", false);
  try {
    only_fields(j, {"code", "timeout"}, "the request");
    ADD_FAILURE() << "an unknown field passed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::invalid_argument);
    EXPECT_EQ(e.message(), "unknown field 'tiemout' in the request");
  }
}

TEST(JsonBody, ValuesAreCountedBeforeParsing) {
  EXPECT_EQ(json_values(R"({"a": [1, 2], "b": "x,y,[{"})"), 4u);  // {, [, two commas
  // A flat array of zeros: shallow, small on the wire, huge as a tree. Refused unparsed.
  std::string wide = R"({"code": "", "stdin": [)";
  for (int i = 0; i < 100000; ++i) wide += "0,";
  wide += "0]}";
  EXPECT_EQ(json_values(wide), kMaxJsonValues + 1);  // stops counting early
  try {
    parse_object(wide, false);
    ADD_FAILURE() << "a body of 100,000 values was parsed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::invalid_argument);
    EXPECT_NE(e.message().find("values"), std::string::npos) << e.message();
  }
  EXPECT_NO_THROW(parse_object(R"j({"code": "print(1, 2, [3])"})j", false));  // commas in strings
}

TEST(ErrorMessages, HostPathsAreRemoved) {
  EXPECT_EQ(without_host_paths("mkdir(/var/lib/libsandbox/sessions/s1): No space left on device"),
            "mkdir(<path>): No space left on device");
  EXPECT_EQ(without_host_paths("filesystem error: cannot create directories [/tmp/x/y]"),
            "filesystem error: cannot create directories [<path>]");
  EXPECT_EQ(without_host_paths("no session 'abc'"), "no session 'abc'");
  EXPECT_EQ(without_host_paths("openat2(dir/a.txt): not found"), "openat2(dir/a.txt): not found");
}

TEST(Router, RefusesTraversalInAnySegment) {
  for (const char* t : {"/s1/files/download/..", "/s1/files/download/%2e%2e",
                        "/s1/files/download/%2E%2e/etc/passwd", "/s1/files/download/a%2fb",
                        "/s1/files/download/a/%2e%2e/b", "/%2e%2e/result", "/s1/files/download/a%00",
                        "/s1/files/download/.", "/s1/files/download/a%5cb", "/s1/files/download/%zz"}) {
    EXPECT_EQ(match("GET", t).outcome, Outcome::bad_path) << t;
  }
  EXPECT_EQ(match("GET", "relative").outcome, Outcome::bad_path);
}

TEST(Router, QueryParsing) {
  Query q("offset=10&limit=&wait=5&flag&name=a%20b+c&overwrite=true");
  EXPECT_EQ(q.get_uint("offset"), 10u);
  EXPECT_EQ(q.get("name"), "a b c");
  EXPECT_TRUE(q.get_bool("overwrite"));
  EXPECT_TRUE(q.get_bool("flag"));
  EXPECT_FALSE(q.get_bool("absent"));
  EXPECT_THROW(q.get_uint("limit"), Error);
  EXPECT_THROW(Query("a=%zz"), Error);
  EXPECT_THROW(Query("n=-1").get_uint("n"), Error);
  EXPECT_THROW(Query("b=maybe").get_bool("b"), Error);
}

TEST(Router, PercentDecode) {
  EXPECT_EQ(percent_decode("a%41%2f"), "aA/");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_FALSE(percent_decode("%4"));
  EXPECT_FALSE(percent_decode("%"));
}

}  // namespace
}  // namespace sandbox::server
