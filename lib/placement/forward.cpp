// placement/forward.cpp: Beast's relay pattern (parser and serializer over one buffer_body
// message), as coroutines, read_some so events pass as soon as they arrive.
#include "placement/forward.hpp"

#include <sandbox/error.hpp>

#include "net/dial.hpp"
#include "net/url.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <mutex>

namespace sandbox::placement {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

template <class Fields>
void drop_hop_by_hop(Fields& f) {
  for (auto field : {http::field::connection, http::field::keep_alive, http::field::proxy_authenticate,
                     http::field::proxy_authorization, http::field::te, http::field::trailer,
                     http::field::upgrade})
    f.erase(field);
}

// Moves the body of the message `p` is parsing from `in` to `out` through `sr`.
template <bool isRequest>
asio::awaitable<std::uint64_t> relay_body(net::Stream& out, net::Stream& in,
                                          beast::flat_buffer& in_buf,
                                          http::parser<isRequest, http::buffer_body>& p,
                                          http::serializer<isRequest, http::buffer_body>& sr,
                                          std::chrono::seconds idle) {
  char buf[16384];
  std::uint64_t total = 0;
  do {
    if (!p.is_done()) {
      p.get().body().data = buf;
      p.get().body().size = sizeof buf;
      boost::system::error_code ec;
      in.expires_after(idle);
      co_await http::async_read_some(in, in_buf, p, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) throw boost::system::system_error(ec);
      p.get().body().size = sizeof buf - p.get().body().size;
      p.get().body().data = buf;
      p.get().body().more = !p.is_done();
      total += p.get().body().size;
    } else {
      p.get().body().data = nullptr;
      p.get().body().size = 0;
      p.get().body().more = false;
    }
    boost::system::error_code ec;
    out.expires_after(idle);
    co_await http::async_write(out, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) throw boost::system::system_error(ec);
  } while (!p.is_done() || !sr.is_done());
  co_return total;
}

// One Dialer per upstream origin: an https:// upstream's TLS context (the system store
// loaded once) is shared by every relay to it. Upstreams are few (pods, a cloud gateway);
// the map is bounded anyway.
std::shared_ptr<const net::Dialer> dialer_for(const net::Url& url) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const net::Dialer>> dialers;
  std::lock_guard lock(mu);
  if (auto it = dialers.find(url.origin()); it != dialers.end()) return it->second;
  if (dialers.size() >= 1024) dialers.clear();
  auto d = std::make_shared<const net::Dialer>(url, net::ClientOptions{});
  dialers.emplace(url.origin(), d);
  return d;
}

}  // namespace

asio::awaitable<Forwarded> forward(net::Stream& client, beast::flat_buffer& client_buffer,
                                   http::request_parser<http::buffer_body>& parser,
                                   const std::string& upstream, const std::string& authorization,
                                   std::chrono::seconds idle_timeout, bool allow_plaintext_token) {
  const auto url = net::Url::parse(upstream);
  auto& req = parser.get();
  net::check_token_transport(url, !authorization.empty() || req.find(http::field::authorization) != req.end(),
                             allow_plaintext_token);
  auto dialer = dialer_for(url);

  Forwarded out;
  bool client_keep_alive = parser.get().keep_alive();
  auto ex = co_await asio::this_coro::executor;
  auto up = co_await dialer->dial(ex);  // Error(unavailable) names the upstream and why

  // Up: the request, its body streamed from the client as it arrives.
  drop_hop_by_hop(req);
  req.set(http::field::host, url.authority());
  if (!url.path.empty()) req.target(url.path + std::string(req.target()));
  if (!authorization.empty()) req.set(http::field::authorization, authorization);
  req.keep_alive(false);  // one upstream connection per request: nothing to pool or poison
  try {
    http::request_serializer<http::buffer_body> sr(req);
    out.bytes_in = co_await relay_body(up, client, client_buffer, parser, sr, idle_timeout);
  } catch (const boost::system::system_error& e) {
    throw Error(errc::unavailable, fmt::format("relaying the request to {}: {}", upstream, e.code().message()));
  }

  // Down: the answer, streamed as the upstream writes it (events pass one by one).
  beast::flat_buffer up_buffer;
  http::response_parser<http::buffer_body> rp;
  rp.body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: 1.74 takes "len > none" as true
  try {
    up.expires_after(idle_timeout);
    co_await http::async_read_header(up, up_buffer, rp, asio::use_awaitable);
  } catch (const boost::system::system_error& e) {
    throw Error(errc::unavailable, fmt::format("no answer from {}: {}", upstream, e.code().message()));
  }
  auto& res = rp.get();
  out.status = res.result_int();
  drop_hop_by_hop(res);
  // A body that ends only when the upstream closes ends our connection the same way.
  bool delimited = rp.content_length().has_value() || rp.chunked() || rp.is_done();
  out.keep_alive = client_keep_alive && delimited;
  res.keep_alive(out.keep_alive);
  out.responded = true;
  try {
    http::response_serializer<http::buffer_body> sr(res);
    out.bytes_out = co_await relay_body(client, up, up_buffer, rp, sr, idle_timeout);
  } catch (const boost::system::system_error&) {
    out.keep_alive = false;  // mid-answer: closing is the only honest signal
  }
  beast::error_code ignored;
  up.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  up.close();
  co_return out;
}

}  // namespace sandbox::placement
