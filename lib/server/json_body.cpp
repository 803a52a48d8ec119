#include "server/json_body.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string>

#include "json_shape.hpp"
#include "sandbox/error.hpp"

namespace sandbox::server {

std::size_t json_depth(std::string_view text, std::size_t cap) { return json_shape(text, cap).depth; }

std::size_t json_values(std::string_view text, std::size_t cap) {
  return json_shape(text, std::numeric_limits<std::size_t>::max(), cap).values;
}

nlohmann::json parse_object(std::string_view body, bool empty_ok) {
  if (body.empty() && empty_ok) return nlohmann::json::object();
  if (json_depth(body) > kMaxJsonDepth)
    throw Error(errc::invalid_argument,
                fmt::format("the request body nests deeper than {} levels", kMaxJsonDepth));
  if (json_values(body) > kMaxJsonValues)
    throw Error(errc::invalid_argument,
                fmt::format("the request body holds more than {} values", kMaxJsonValues));
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(errc::invalid_argument, "the request body is not valid JSON");
  if (!j.is_object()) throw Error(errc::invalid_argument, "the request body must be a JSON object");
  return j;
}

void unknown_field(std::string_view key, std::string_view where) {
  std::string shown(key.substr(0, 64));  // echo a bounded piece of what the client sent
  if (key.size() > shown.size()) shown += "...";
  throw Error(errc::invalid_argument, fmt::format("unknown field '{}' in {}", shown, where));
}

void only_fields(const nlohmann::json& obj, std::initializer_list<std::string_view> known,
                 std::string_view where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(known.begin(), known.end(), key) == known.end()) unknown_field(key, where);
  }
}

}  // namespace sandbox::server
