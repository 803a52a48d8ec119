// server/json_body.hpp: the one bounded parser for JSON request bodies.
//
// Every route that takes JSON parses it here, so every route gets the same bounds: the
// nesting depth is checked by a scan of the bytes before nlohmann builds anything (a deep
// body costs a loop, never a recursion), the top level must be an object, and fields the
// route does not know are refused by name, so a typo like "tiemout" is a 400, not a default.
//
//   json body = server::parse_object(text, /*empty_ok=*/true);
//   server::only_fields(body, {"id", "language", "limits"}, "the request");
//   // {"tiemout": 1} -> Error(invalid_argument, "unknown field 'tiemout' in the request")
#pragma once

#include <cstddef>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string_view>

namespace sandbox::server {

// Deeper nesting than this is refused; no route needs more than three levels.
inline constexpr std::size_t kMaxJsonDepth = 32;

// More values (array elements and object members, counted by their separators) than this are
// refused before parsing: no route needs thousands, and a 20 MiB exec body of `[0,0,...]`
// would otherwise build a tree of hundreds of MiB.
inline constexpr std::size_t kMaxJsonValues = 4096;

// The number of values in `text`'s arrays and objects (commas and openers outside strings);
// stops counting once past `cap`.
std::size_t json_values(std::string_view text, std::size_t cap = kMaxJsonValues);

// The deepest nesting of arrays and objects in `text` (brackets inside strings do not
// count); stops counting once past `cap`.
std::size_t json_depth(std::string_view text, std::size_t cap = kMaxJsonDepth);

// Parses a JSON object body; "" counts as {} when `empty_ok`. Throws
// sandbox::Error(invalid_argument) for invalid JSON, a non-object, nesting deeper than
// kMaxJsonDepth, or more than kMaxJsonValues values.
nlohmann::json parse_object(std::string_view body, bool empty_ok);

// Throws sandbox::Error(invalid_argument): "unknown field '<key>' in <where>".
[[noreturn]] void unknown_field(std::string_view key, std::string_view where);
// Throws sandbox::Error(invalid_argument) naming the first member of `obj` that is not in
// `known`: "unknown field 'x' in <where>".
void only_fields(const nlohmann::json& obj, std::initializer_list<std::string_view> known,
                 std::string_view where);

}  // namespace sandbox::server
