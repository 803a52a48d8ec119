// remote/wire.hpp: the remote client's calls to a server: one net::Client (keep-alive,
// TLS), answers that are not 2xx turned back into the sandbox::Error their body names.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "net/http_client.hpp"
#include "sandbox/error.hpp"
#include "sandbox/remote.hpp"

namespace sandbox::remote {

// The errc whose wire name (to_string) is `name`; internal for a name this build lacks.
errc errc_named(std::string_view name);

// Percent-encodes a path segment (ids, file names); `keep_slash` for a name whose '/'
// separates directories (the routes' tail parameter).
std::string escape(std::string_view segment, bool keep_slash = false);

class Wire {
 public:
  Wire(std::string_view url, const ConnectOptions& options);

  // Throws the error a non-2xx answer names: QuotaExceeded when it names a quota, else
  // sandbox::Error with the errc of its "code" (internal for a body that is no error).
  [[noreturn]] static void fail(const net::Response& res);

  // One request; the answer's body when 2xx, else fail().
  std::string call(std::string method, std::string target, std::string body = {},
                   std::chrono::milliseconds timeout = {});
  nlohmann::json call_json(std::string method, std::string target, std::string body = {},
                           std::chrono::milliseconds timeout = {});

  net::Client& client() { return client_; }
  const std::string& url() const { return url_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::string url_;
  std::chrono::milliseconds timeout_;
  net::Client client_;
};

}  // namespace sandbox::remote
