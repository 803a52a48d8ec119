#include "server/openapi.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "server/router.hpp"

namespace sandbox::server {
namespace {

// The document and the router agree route for route: every route is documented, every
// documented operation is served, and a request shaped after each documented path reaches
// exactly that route.
TEST(OpenApi, MatchesTheRouterRouteForRoute) {
  auto doc = nlohmann::json::parse(openapi_document("test"));
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::pair<std::string, std::string>> documented;
  for (auto& [path, ops] : doc["paths"].items())
    for (auto& [method, op] : ops.items()) {
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::toupper(c); });
      documented.insert({m, path});
      // Fill each {param} with a sample and route it.
      std::string target;
      for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '{') {
          auto close = path.find('}', i);
          target += path.substr(i + 1, close - i - 1) == "pid" ? "42" : "sample";
          i = close;
        } else {
          target += path[i];
        }
      }
      auto mt = match(m, target);
      ASSERT_EQ(mt.outcome, Outcome::matched) << m << ' ' << path;
      EXPECT_EQ(mt.route->pattern, path);
      EXPECT_EQ(mt.route->method, m == "HEAD" ? "GET" : m);  // HEAD is served by GET's route
      EXPECT_TRUE(op.contains("responses"));
      EXPECT_TRUE(op["responses"].contains(std::to_string(mt.route->ok_status)));
    }
  std::set<std::pair<std::string, std::string>> served;
  for (auto& r : routes()) {
    served.insert({std::string(r.method), std::string(r.pattern)});
    if (r.method == "GET") served.insert({"HEAD", std::string(r.pattern)});
  }
  EXPECT_EQ(documented, served);
}

}  // namespace
}  // namespace sandbox::server
