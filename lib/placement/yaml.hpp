// placement/yaml.hpp: YAML (kubeconfig files, Pod manifests) as nlohmann::json, by yaml-cpp.
//
// Scalars stay strings ("true", "8080"): the reader of a field knows its type; a plain
// null, ~ or nothing is null. A document that starts with '{' is read as JSON, numbers and
// booleans kept. Anchors and aliases are resolved, block scalars (| and >) read, tags
// ignored. Refused as invalid_argument: more than one document, duplicate keys, keys that
// are not scalars, and documents that expand past a size bound (aliases of aliases).
//
//   auto doc = placement::parse_yaml(text);        // nlohmann::json
//   doc["current-context"].get<std::string>();
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace sandbox::placement {

// Throws sandbox::Error(invalid_argument) naming the line of the first problem.
nlohmann::json parse_yaml(std::string_view text);

}  // namespace sandbox::placement
