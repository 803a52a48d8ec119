// placement/forward.cpp: Beast's relay pattern (parser and serializer over one buffer_body
// message), as coroutines, read_some so events pass as soon as they arrive.
#include "placement/forward.hpp"

#include <sandbox/error.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

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
asio::awaitable<std::uint64_t> relay_body(beast::tcp_stream& out, beast::tcp_stream& in,
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

}  // namespace

asio::awaitable<Forwarded> forward(beast::tcp_stream& client, beast::flat_buffer& client_buffer,
                                   http::request_parser<http::buffer_body>& parser,
                                   const std::string& upstream, const std::string& authorization,
                                   std::chrono::seconds idle_timeout) {
  std::string_view url = upstream;
  if (!url.starts_with("http://"))
    throw Error(errc::invalid_argument, fmt::format("only http:// upstreams are supported, not '{}'", upstream));
  url.remove_prefix(7);
  url = url.substr(0, url.find('/'));
  auto colon = url.rfind(':');
  std::string host(url.substr(0, colon));
  std::string port = colon == std::string_view::npos ? "80" : std::string(url.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);

  Forwarded out;
  bool client_keep_alive = parser.get().keep_alive();
  auto ex = co_await asio::this_coro::executor;
  beast::tcp_stream up(ex);
  try {
    asio::ip::tcp::resolver resolver(ex);
    up.expires_after(std::chrono::seconds(10));
    auto eps = co_await resolver.async_resolve(host, port, asio::use_awaitable);
    co_await up.async_connect(eps, asio::use_awaitable);
  } catch (const boost::system::system_error& e) {
    throw Error(errc::unavailable, fmt::format("the session's server at {} is unreachable: {}", upstream, e.code().message()));
  }

  // Up: the request, its body streamed from the client as it arrives.
  auto& req = parser.get();
  drop_hop_by_hop(req);
  req.set(http::field::host, std::string(url));
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
  co_return out;
}

}  // namespace sandbox::placement
