#include "placement/yaml.hpp"

#include <sandbox/error.hpp>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace sandbox::placement {
namespace {

// Aliases share nodes in yaml-cpp but are copied into JSON: bound what one text can become.
constexpr std::size_t kMaxNodes = 1u << 18;
constexpr int kMaxDepth = 128;

[[noreturn]] void fail(const YAML::Mark& mark, std::string_view what) {
  if (mark.is_null()) throw Error(errc::invalid_argument, fmt::format("YAML: {}", what));
  throw Error(errc::invalid_argument, fmt::format("YAML line {}: {}", mark.line + 1, what));
}

class ToJson {
 public:
  nlohmann::json operator()(const YAML::Node& n, int depth = 0) {
    if (++nodes_ > kMaxNodes) fail(n.Mark(), "the document expands too far");
    if (depth > kMaxDepth) fail(n.Mark(), "the document nests too deep");
    switch (n.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null: return nullptr;
      case YAML::NodeType::Scalar: return n.Scalar();
      case YAML::NodeType::Sequence: {
        auto out = nlohmann::json::array();
        for (const auto& item : n) out.push_back((*this)(item, depth + 1));
        return out;
      }
      case YAML::NodeType::Map: {
        auto out = nlohmann::json::object();
        for (const auto& kv : n) {
          if (!kv.first.IsScalar()) fail(kv.first.Mark(), "keys must be strings");
          const std::string& key = kv.first.Scalar();
          if (out.contains(key)) fail(kv.first.Mark(), fmt::format("duplicate key '{}'", key));
          out[key] = (*this)(kv.second, depth + 1);
        }
        return out;
      }
    }
    return nullptr;
  }

 private:
  std::size_t nodes_ = 0;
};

}  // namespace

nlohmann::json parse_yaml(std::string_view text) {
  std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    auto j = nlohmann::json::parse(text, nullptr, false);  // JSON is YAML
    if (j.is_discarded()) throw Error(errc::invalid_argument, "bad JSON document");
    return j;
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    fail(e.mark, e.msg);
  }
  if (docs.empty()) return nullptr;
  if (docs.size() > 1) fail(docs[1].Mark(), "more than one document");
  try {
    return ToJson{}(docs[0]);
  } catch (const YAML::Exception& e) {
    fail(e.mark, e.msg);
  }
}

}  // namespace sandbox::placement
