// placement/yaml.hpp: the small YAML subset kubeconfig files and Pod manifests are written in.
//
// Block mappings and block sequences by indentation (including kubectl's style of sequences at
// the same indent as their key), plain, 'single' and "double" quoted scalars, comments, empty
// flow collections ({} and []), and JSON flow collections ({"a": [1]}), which YAML includes.
// Scalars stay strings ("true", "8080"): the reader of a field knows its type. Not supported,
// and refused as invalid_argument: anchors, aliases, tags, multi-line scalars, documents.
//
//   auto doc = placement::parse_yaml(text);        // nlohmann::json
//   doc["current-context"].get<std::string>();
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace sandbox::placement {

// Throws sandbox::Error(invalid_argument) naming the line of the first unsupported construct.
nlohmann::json parse_yaml(std::string_view text);

}  // namespace sandbox::placement
