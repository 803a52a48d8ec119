// placement/forward.hpp: relays one HTTP request to the server that holds the session (a
// session pod, the cloud gateway) and its answer back, streaming both bodies.
//
// Uploads go up chunk by chunk as they arrive, downloads and server-sent events come back
// the same way: nothing is buffered whole, so a 10 MiB upload or an endless event stream
// costs a 16 KiB buffer. The upstream is dialed through net::Dialer, as the sync client does. Hop-by-hop headers are dropped; Authorization is replaced when the
// upstream has its own token (the client's token authenticated it to this gateway).
//
//   // in a connection coroutine, after the request header was read into `parser`:
//   auto r = co_await placement::forward(stream, buffer, parser, "http://10.1.2.3:8080",
//                                        "Bearer pod-token", std::chrono::seconds(120));
//   keep_alive = r.keep_alive;
#pragma once

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/stream.hpp"

#include <chrono>
#include <limits>
#include <cstdint>
#include <string>

namespace sandbox::placement {

struct Forwarded {
  unsigned status = 0;            // the upstream's status, relayed
  std::uint64_t bytes_in = 0;     // request body bytes relayed up
  std::uint64_t bytes_out = 0;    // response body bytes relayed down
  bool keep_alive = true;         // false: the client connection must close now
  bool responded = false;         // something was written to the client
};

// Relays the request whose header `parser` holds (its body not yet read) from `client` (plain
// or TLS) to `upstream` (any URL net::Url takes: http:// or https:// verified against the
// system store, IPv4, [IPv6], a path prefix). Throws sandbox::Error(unavailable) when the
// upstream cannot be reached or fails before anything was written to the client (the caller
// answers 502/503); a failure after that returns with keep_alive = false. A token (ours or
// the client's) is refused in clear to a non-loopback upstream (permission_denied) unless
// `allow_plaintext_token` (a pod on the cluster network).
boost::asio::awaitable<Forwarded> forward(
    net::Stream& client, boost::beast::flat_buffer& client_buffer,
    boost::beast::http::request_parser<boost::beast::http::buffer_body>& parser,
    const std::string& upstream, const std::string& authorization,
    std::chrono::seconds idle_timeout, bool allow_plaintext_token = false);

}  // namespace sandbox::placement
