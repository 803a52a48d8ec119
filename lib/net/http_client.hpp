// net/http_client.hpp: the library's one HTTP/1.1 client (Boost.Beast), used for every
// outbound call: the remote session, the gateway's calls and forwarding to pods and to the
// cloud gateway, the Kubernetes API, sandboxctl's client commands, the tests.
//
// One Client is one origin. It keeps idle connections alive and reuses them (a small pool,
// so concurrent callers on several threads do not serialise), speaks TLS for https://
// (verifying the peer by default against the system store or `ca_file`, SNI by name), and
// refuses to send a bearer token over plain HTTP to an address that is not loopback.
//
//   net::Client c(net::Url::parse("https://sb.example"), {.authorization = "Bearer t"});
//   auto r = c.request({.method = "POST", .target = "/sessions", .body = R"({"id":"a"})"});
//   // r.status == 201
//   c.stream({.target = "/a/stream"}, [](std::string_view chunk) { ...; return true; });
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/url.hpp"

namespace sandbox::net {

struct ClientOptions {
  std::string authorization;            // the Authorization header value; "" = none
  std::filesystem::path ca_file;        // PEM bundle to verify against; "" = system store
  std::filesystem::path client_cert, client_key;  // mutual TLS (the Kubernetes API)
  std::string ca_pem;                   // inline CA (kubeconfig certificate-authority-data)
  std::string client_cert_pem, client_key_pem;
  std::string server_name;              // verify and SNI as this name instead of the host
  bool verify = true;                   // false only when asked (--insecure)
  // Off by default: a token in clear to a non-loopback host throws permission_denied.
  bool allow_plaintext_token = false;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds timeout{60'000};   // a whole request() without a stream
  std::size_t max_idle = 8;             // idle connections kept for reuse
  std::uint64_t body_limit = 1ull << 30;
  std::string user_agent = "libsandbox";
};

struct Request {
  std::string method = "GET";
  std::string target = "/";             // path and query; the Url's path is prefixed
  std::string body;
  std::string content_type = "application/json";  // sent when body is not empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{0};  // 0 = the client's; a stream: idle time between chunks
};

struct Response {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;                      // for stream(): only when status is not 2xx
  std::string header(std::string_view name) const;  // "" when absent
};

class Client {
 public:
  // Throws Error(permission_denied) when options carry a token, the URL is plain http and
  // its host is not loopback (unless allow_plaintext_token).
  explicit Client(Url base, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one request and reads the whole answer. A connection that the peer closed while
  // idle is retried once on a fresh one. Throws Error(unavailable) when the peer cannot be
  // reached or the answer does not come in time; any HTTP status is returned, not thrown.
  Response request(const Request& req);

  // Sends one request and hands over the 2xx body chunk by chunk as it arrives (SSE, a
  // download); `on_chunk` returns false to stop (the connection is then closed, not reused).
  // A non-2xx answer is read whole into Response::body and on_chunk is not called.
  Response stream(const Request& req, const std::function<bool(std::string_view)>& on_chunk);

  // Streams a request body from `source` (called until it returns an empty view) with a
  // known or chunked length: uploads that are never held whole. `length` is the exact byte
  // count (Content-Length; a source that gives more or less throws invalid_argument), or
  // chunked_length for Transfer-Encoding: chunked. It is retried on a fresh connection only
  // when the reused one failed before `source` was first called.
  static constexpr std::uint64_t chunked_length = ~std::uint64_t{0};
  Response upload(const Request& req, std::uint64_t length,
                  const std::function<std::string_view()>& source);

  const Url& base() const;
  const ClientOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandbox::net
