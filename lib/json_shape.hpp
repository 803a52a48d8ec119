// json_shape.hpp: how deep and how wide a JSON text is, read from its bytes before any parser
// builds a tree. Every decoder of untrusted JSON (HTTP bodies, agent frames) asks this first,
// so that a deep body costs a loop rather than a recursion, and a wide one a count rather
// than a tree of hundreds of MiB.
//
//   auto shape = json_shape(R"({"a": [1, "]"]})");   // shape.depth == 2, shape.values == 3
#pragma once

#include <cstddef>
#include <limits>
#include <string_view>

namespace sandbox {

struct JsonShape {
  std::size_t depth = 0;   // the deepest nesting of arrays and objects
  std::size_t values = 0;  // commas and openers: an upper bound on the values inside containers
};

// Brackets and commas inside strings do not count; counting stops once either cap is passed,
// so the answer is exact up to the caps and "over" beyond them.
inline JsonShape json_shape(std::string_view text,
                            std::size_t max_depth = std::numeric_limits<std::size_t>::max(),
                            std::size_t max_values = std::numeric_limits<std::size_t>::max()) {
  JsonShape shape;
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > shape.depth) shape.depth = depth;
        ++shape.values;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      case ',': ++shape.values; break;
      default: break;
    }
    if (shape.depth > max_depth || shape.values > max_values) break;
  }
  return shape;
}

}  // namespace sandbox
