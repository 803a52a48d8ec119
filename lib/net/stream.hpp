// net/stream.hpp: one byte stream that is plain TCP or TLS over TCP, so the HTTP code above
// it (the client, the server's connections, the gateway's relay) is written once for both.
//
//   net::Stream s(beast::tcp_stream(std::move(socket)), tls_context);   // TLS, server side
//   co_await s.tls()->async_handshake(ssl::stream_base::server, use_awaitable);
//   co_await http::async_read(s, buffer, request, use_awaitable);
//
// Timeouts are the TCP layer's (tcp_stream::expires_*), which cover the TLS records too.
#pragma once

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <variant>

namespace sandbox::net {

namespace asio = boost::asio;
namespace beast = boost::beast;

class Stream {
 public:
  using executor_type = asio::any_io_executor;
  using Tls = beast::ssl_stream<beast::tcp_stream>;

  explicit Stream(beast::tcp_stream tcp) : s_(std::in_place_type<beast::tcp_stream>, std::move(tcp)) {}
  // TLS over `tcp`; the handshake is the caller's (client or server side).
  Stream(beast::tcp_stream tcp, asio::ssl::context& ctx) : s_(std::in_place_type<Tls>, std::move(tcp), ctx) {}

  executor_type get_executor() { return tcp().get_executor(); }
  bool is_tls() const { return std::holds_alternative<Tls>(s_); }
  Tls* tls() { return std::get_if<Tls>(&s_); }
  beast::tcp_stream& tcp() { return is_tls() ? std::get<Tls>(s_).next_layer() : std::get<beast::tcp_stream>(s_); }
  asio::ip::tcp::socket& socket() { return tcp().socket(); }

  template <class Duration>
  void expires_after(Duration d) { tcp().expires_after(d); }
  void expires_at(std::chrono::steady_clock::time_point t) { tcp().expires_at(t); }
  void expires_never() { tcp().expires_never(); }
  void cancel() { tcp().cancel(); }
  void close() { tcp().close(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (auto* t = tls()) t->async_read_some(b, std::move(handler));
          else std::get<beast::tcp_stream>(s_).async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (auto* t = tls()) t->async_write_some(b, std::move(handler));
          else std::get<beast::tcp_stream>(s_).async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

 private:
  std::variant<beast::tcp_stream, Tls> s_;
};

}  // namespace sandbox::net
