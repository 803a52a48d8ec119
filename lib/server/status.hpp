// server/status.hpp: the one place where the error vocabulary becomes HTTP.
//
//   int s = server::http_status(errc::not_found);          // 404
//   std::string body = server::error_body(errc::not_found, "no session 'x'");
//   // {"error":{"code":"not_found","message":"no session 'x'"}}
#pragma once

#include <string>
#include <string_view>

#include "sandbox/error.hpp"

namespace sandbox::server {

// The HTTP status for an error code. `request_too_large` marks a resource_exhausted that
// came from what the client sent (an upload over the limit): 413 instead of 429.
int http_status(errc code, bool request_too_large = false) noexcept;

// {"error": {"code": "<snake_case>", "message": "..."}}, plus "quota": "<name>" when the
// error is a QuotaExceeded ("sessions_per_tenant").
std::string error_body(errc code, std::string_view message, std::string_view quota = {});

// `message` with every absolute path of two or more components replaced by "<path>":
// library errors name files for the operator's log, but a client must not learn the
// server's layout ("mkdir(/var/lib/x/sessions/s1): ..." -> "mkdir(<path>): ...").
std::string without_host_paths(std::string_view message);

}  // namespace sandbox::server
