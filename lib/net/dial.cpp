#include "net/dial.hpp"

#include <sandbox/error.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "net/tls.hpp"

namespace sandbox::net {

void check_token_transport(const Url& url, bool sends_token, bool allow_plaintext_token) {
  if (sends_token && !url.tls && !url.is_loopback() && !allow_plaintext_token)
    throw Error(errc::permission_denied,
                fmt::format("refusing to send a token in clear to {}: use https:// (or a loopback address)",
                            url.origin()));
}

Dialer::Dialer(Url url, ClientOptions options) : url_(std::move(url)), options_(std::move(options)) {
  if (url_.tls) tls_ = client_tls(options_);
}

asio::awaitable<Stream> Dialer::dial(asio::any_io_executor ex) const {
  using asio::ip::tcp;
  auto fail = [&](std::string_view what, const beast::error_code& ec) {
    return Error(errc::unavailable,
                 fmt::format("{}: {}: {}", url_.origin(), what,
                             ec == beast::error::timeout
                                 ? fmt::format("no connection within {} ms", options_.connect_timeout.count())
                                 : ec.message()));
  };
  beast::error_code ec;
  tcp::resolver resolver(ex);
  auto eps = co_await resolver.async_resolve(url_.host, std::to_string(url_.port), tcp::resolver::numeric_service,
                                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw fail("cannot resolve the host", ec);
  beast::tcp_stream plain(ex);
  plain.expires_after(options_.connect_timeout);
  co_await plain.async_connect(eps, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw fail("cannot connect", ec);
  plain.socket().set_option(tcp::no_delay(true), ec);  // small requests, answered at once
  if (!url_.tls) {
    plain.expires_never();
    co_return Stream(std::move(plain));
  }
  Stream s(std::move(plain), *tls_);
  prepare_client(*s.tls(), url_, options_);
  s.expires_after(options_.connect_timeout);
  co_await s.tls()->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (ec == beast::error::timeout) throw fail("TLS handshake", ec);
    throw Error(errc::unavailable, fmt::format("{}: TLS handshake failed: {}", url_.origin(), tls_failure(*s.tls(), ec)));
  }
  s.expires_never();
  co_return s;
}

}  // namespace sandbox::net
