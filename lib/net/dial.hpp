// net/dial.hpp: the one place that turns a Url into a connected stream: resolve, connect
// (IPv4 or IPv6), TLS handshake with verification. The sync Client and the gateway's
// asynchronous relay (placement/forward.cpp) both dial through it.
//
//   net::Dialer d(net::Url::parse("https://[::1]:8443"), {.ca_file = "ca.pem"});
//   net::Stream s = co_await d.dial(co_await asio::this_coro::executor);
#pragma once

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "net/http_client.hpp"
#include "net/stream.hpp"
#include "net/url.hpp"

namespace sandbox::net {

// The token rule, in one place for the Client and the gateway's relay: a bearer token goes in
// clear only to a loopback host, or where the caller said plaintext is the deployment's
// choice (allow_plaintext_token: a pod's server on the cluster network). Throws
// Error(permission_denied).
void check_token_transport(const Url& url, bool sends_token, bool allow_plaintext_token);

class Dialer {
 public:
  // Builds the TLS context once for an https:// URL (see client_tls()).
  Dialer(Url url, ClientOptions options);

  // A connected stream (TLS handshake done) within options.connect_timeout. Throws
  // Error(unavailable) naming the origin and the reason (resolve, connect, timeout, TLS and
  // the certificate verdict).
  asio::awaitable<Stream> dial(asio::any_io_executor ex) const;

  const Url& url() const { return url_; }
  const ClientOptions& options() const { return options_; }

 private:
  Url url_;
  ClientOptions options_;
  std::shared_ptr<asio::ssl::context> tls_;
};

}  // namespace sandbox::net
