#include "server/status.hpp"

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
  }
  return 500;
}

std::string error_body(errc code, std::string_view message, std::string_view quota) {
  nlohmann::json j = {{"error", {{"code", to_string(code)}, {"message", message}}}};
  if (!quota.empty()) j["error"]["quota"] = quota;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sandbox::server
