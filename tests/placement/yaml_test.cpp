// placement/yaml.hpp over yaml-cpp: what kubeconfigs and Pod templates use, and what it refuses.
#include "placement/yaml.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>

#include <string>

namespace sandbox::placement {
namespace {

errc code_of(std::string_view text) {
  try {
    parse_yaml(text);
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

TEST(Yaml, ScalarsStayStringsAndNullsAreNull) {
  auto doc = parse_yaml("port: 8080\nflag: true\nquoted: \"null\"\nnone: null\ntilde: ~\nempty:\n");
  EXPECT_EQ(doc["port"], "8080");
  EXPECT_EQ(doc["flag"], "true");
  EXPECT_EQ(doc["quoted"], "null");
  EXPECT_TRUE(doc["none"].is_null());
  EXPECT_TRUE(doc["tilde"].is_null());
  EXPECT_TRUE(doc["empty"].is_null());
}

TEST(Yaml, JsonDocumentsKeepTheirTypes) {
  auto doc = parse_yaml(R"({"kind": "Pod", "n": 3, "ok": true})");
  EXPECT_EQ(doc["n"], 3);
  EXPECT_EQ(doc["ok"], true);
  EXPECT_EQ(code_of("{\"kind\": "), errc::invalid_argument);
}

TEST(Yaml, ResolvesAnchorsAndAliases) {
  auto doc = parse_yaml(R"(
defaults: &res
  cpu: 250m
  memory: 64Mi
a: *res
b:
  <<: *res
list: [&x one, *x]
)");
  EXPECT_EQ(doc["a"]["cpu"], "250m");
  EXPECT_EQ(doc["a"]["memory"], "64Mi");
  EXPECT_EQ(doc["list"][1], "one");
  // yaml-cpp does not implement merge keys: "<<" is an ordinary key.
  EXPECT_EQ(doc["b"]["<<"]["cpu"], "250m");
}

TEST(Yaml, ReadsBlockScalars) {
  auto doc = parse_yaml("literal: |\n  line one\n  line two\nfolded: >\n  one\n  two\nstrip: |-\n  x\n");
  EXPECT_EQ(doc["literal"], "line one\nline two\n");
  EXPECT_EQ(doc["folded"], "one two\n");
  EXPECT_EQ(doc["strip"], "x");
}

TEST(Yaml, OneDocumentOnly) {
  EXPECT_EQ(parse_yaml("---\nkind: Pod\n")["kind"], "Pod");
  EXPECT_EQ(parse_yaml("kind: Pod\n...\n")["kind"], "Pod");
  EXPECT_TRUE(parse_yaml("").is_null());
  EXPECT_TRUE(parse_yaml("# only a comment\n").is_null());
  EXPECT_EQ(code_of("kind: Pod\n---\nkind: Service\n"), errc::invalid_argument);
}

TEST(Yaml, RefusesBrokenOrAmbiguousDocuments) {
  EXPECT_EQ(code_of("a: 1\n   b: 2\n"), errc::invalid_argument);  // bad indentation
  EXPECT_EQ(code_of("a: 1\na: 2\n"), errc::invalid_argument);       // duplicate key
  EXPECT_EQ(code_of("? [a, b]\n: c\n"), errc::invalid_argument);    // a key that is not a scalar
  EXPECT_EQ(code_of("a: *nowhere\n"), errc::invalid_argument);      // an unknown alias
  EXPECT_EQ(code_of("a: {b: 1\n"), errc::invalid_argument);       // an unclosed flow mapping
  try {
    parse_yaml("ok: 1\nbad: [\n");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("YAML line"), std::string::npos) << e.what();
  }
}

TEST(Yaml, BoundsWhatAliasesExpandTo) {
  // Each level doubles: 2^25 nodes from a few lines ("billion laughs").
  std::string text = "l0: &l0 [x, x]\n";
  for (int i = 1; i <= 25; ++i)
    text += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [*l" + std::to_string(i - 1) + ", *l" +
            std::to_string(i - 1) + "]\n";
  EXPECT_EQ(code_of(text), errc::invalid_argument);
}

}  // namespace
}  // namespace sandbox::placement
