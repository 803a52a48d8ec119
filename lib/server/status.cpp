#include "server/status.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace sandbox::server {

int http_status(errc code, bool request_too_large) noexcept {
  switch (code) {
    case errc::ok: return 200;
    case errc::invalid_argument: return 400;
    case errc::not_found: return 404;
    case errc::already_exists: return 409;
    case errc::permission_denied: return 403;
    case errc::unauthenticated: return 401;
    case errc::resource_exhausted: return request_too_large ? 413 : 429;
    case errc::unavailable: return 503;
    case errc::failed_precondition: return 409;
    case errc::timeout: return 504;
    case errc::internal: return 500;
    case errc::session_lost: return 410;
  }
  return 500;
}

namespace {
bool path_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' ||
         c == '-' || c == '+' || c == '@' || c == '~' || c == '%' || c == '=';
}
}  // namespace

std::string without_host_paths(std::string_view m) {
  std::string out;
  out.reserve(m.size());
  for (std::size_t i = 0; i < m.size();) {
    if (m[i] == '/' && (i == 0 || !path_char(m[i - 1]))) {
      std::size_t j = i;
      while (j < m.size() && path_char(m[j])) ++j;
      auto token = m.substr(i, j - i);
      if (std::count(token.begin(), token.end(), '/') >= 2) {
        out += "<path>";
        i = j;
        continue;
      }
    }
    out += m[i++];
  }
  return out;
}

std::string error_body(errc code, std::string_view message, std::string_view quota) {
  nlohmann::json j = {{"error", {{"code", to_string(code)}, {"message", without_host_paths(message)}}}};
  if (!quota.empty()) j["error"]["quota"] = quota;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sandbox::server
