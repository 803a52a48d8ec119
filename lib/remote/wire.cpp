#include "remote/wire.hpp"

#include <fmt/format.h>

#include "sandbox/sandbox.hpp"  // QuotaExceeded

namespace sandbox::remote {
namespace {

net::ClientOptions client_options(const ConnectOptions& o) {
  net::ClientOptions c;
  if (!o.token.empty()) c.authorization = "Bearer " + o.token;
  c.ca_file = o.ca_file;
  c.verify = o.verify_tls;
  c.allow_plaintext_token = o.allow_plaintext_token;
  c.timeout = o.timeout;
  c.user_agent = "libsandbox-remote";
  return c;
}

}  // namespace

errc errc_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(errc::session_lost); ++i)
    if (to_string(static_cast<errc>(i)) == name) return static_cast<errc>(i);
  return errc::internal;
}

std::string escape(std::string_view segment, bool keep_slash) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (char ch : segment) {
    auto c = static_cast<unsigned char>(ch);
    bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
    if (plain) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Wire::Wire(std::string_view url, const ConnectOptions& options)
    : url_(url), timeout_(options.timeout), client_(net::Url::parse(url), client_options(options)) {}

void Wire::fail(const net::Response& res) {
  auto j = nlohmann::json::parse(res.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& e = j["error"];
    std::string message = e.value("message", fmt::format("HTTP {}", res.status));
    if (e.contains("quota") && e["quota"].is_string())
      throw QuotaExceeded(e["quota"].get<std::string>(), std::move(message));
    throw Error(errc_named(e.value("code", "internal")), std::move(message));
  }
  // Not this API's answer (a proxy's page): keep the start of it for the reader.
  std::string head = res.body.substr(0, 200);
  errc code = res.status == 404 ? errc::not_found
              : res.status == 401 ? errc::unauthenticated
              : res.status == 403 ? errc::permission_denied
              : res.status == 502 || res.status == 503 ? errc::unavailable
              : res.status == 504 ? errc::timeout
                                  : errc::internal;
  throw Error(code, fmt::format("HTTP {}: {}", res.status, head));
}

std::string Wire::call(std::string method, std::string target, std::string body,
                       std::chrono::milliseconds timeout) {
  net::Request req;
  req.method = std::move(method);
  req.target = std::move(target);
  req.body = std::move(body);
  req.timeout = timeout;
  net::Response res = client_.request(req);
  if (res.status / 100 != 2) fail(res);
  return std::move(res.body);
}

nlohmann::json Wire::call_json(std::string method, std::string target, std::string body,
                               std::chrono::milliseconds timeout) {
  std::string text = call(std::move(method), std::move(target), std::move(body), timeout);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(errc::internal, "the server's answer is not JSON");
  return j;
}

}  // namespace sandbox::remote
