#include "server/connection.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "server/handlers.hpp"
#include "server/status.hpp"

namespace sandbox::server {
namespace {

using asio::use_awaitable;
using beast::error_code;

constexpr std::size_t kChunk = 64 * 1024;
// A body this small left unread by a handler is read and dropped to keep the connection;
// a larger one closes it.
constexpr std::uint64_t kDrainLimit = 1 << 20;

}  // namespace

std::function<void()> Signal::notifier() const {
  return [st = st_] {
    asio::post(st->ex, [st] {
      st->fired = true;
      st->timer.cancel();
    });
  };
}

asio::awaitable<bool> Signal::wait_until(std::chrono::steady_clock::time_point deadline) {
  if (!st_->fired) {
    st_->timer.expires_at(deadline);
    error_code ec;
    co_await st_->timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  bool fired = st_->fired;
  st_->fired = false;
  co_return fired;
}

Deadline::Deadline(Stream& stream)
    : st_(std::make_shared<State>(State{&stream})), timer_(stream.get_executor()) {}

void Deadline::arm(std::chrono::steady_clock::time_point at) {
  st_->armed = true;
  st_->expired = false;
  const std::uint64_t generation = ++st_->generation;
  timer_.expires_at(at);
  timer_.async_wait([st = st_, generation](const error_code& ec) {
    // A completion already queued when disarm() or a later arm() ran is not this deadline's.
    if (ec || !st->armed || st->generation != generation) return;
    st->expired = true;
    error_code ignored;
    st->stream->socket().cancel(ignored);
  });
}

void Deadline::disarm() {
  st_->armed = false;
  timer_.cancel();
}

bool Exchange::has_body() const {
  return parser_.chunked() || parser_.content_length().value_or(0) > 0;
}

asio::awaitable<std::string> Exchange::read_body(std::size_t limit) {
  std::string body;
  if (auto cl = content_length()) {
    if (*cl > limit) {
      too_large_context = true;
      throw Error(errc::resource_exhausted,
                  fmt::format("request body of {} bytes is over the limit of {}", *cl, limit));
    }
    body.reserve(*cl);
  }
  co_await read_body(limit, [&](std::string_view c) { body.append(c); });
  co_return body;
}

asio::awaitable<void> Exchange::read_body(std::uint64_t limit,
                                          const std::function<void(std::string_view)>& sink) {
  if (chunk_.empty()) chunk_.resize(kChunk);
  // The deadline is by progress, not by chunk: each window of read_timeout must bring
  // body_min_bytes, so a slow but steady upload goes on and a trickle is cut with a 408.
  const auto interval = shared_.options.read_timeout;
  const std::uint64_t min_bytes = shared_.options.body_min_bytes;
  auto window_end = std::chrono::steady_clock::now() + interval;
  std::uint64_t window_bytes = 0;
  std::uint64_t total = 0;
  Deadline deadline(stream_);
  while (!parser_.is_done()) {
    auto& body = parser_.get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    stream_.expires_never();
    deadline.arm(window_end);
    error_code ec;
    co_await http::async_read_some(stream_, buffer_, parser_,
                                   asio::redirect_error(use_awaitable, ec));
    deadline.disarm();
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      keep_alive = false;
      if (deadline.expired()) {
        client_too_slow = true;
        throw Error(errc::timeout,
                    fmt::format("the request body arrived slower than {} bytes in {} s",
                                min_bytes, interval.count()));
      }
      throw Error(errc::invalid_argument, "cannot read the request body: " + ec.message());
    }
    std::size_t n = chunk_.size() - body.size;
    total += n;
    bytes_in += n;
    window_bytes += n;
    if (window_bytes >= min_bytes) {
      window_end = std::chrono::steady_clock::now() + interval;
      window_bytes = 0;
    }
    if (total > limit) {
      too_large_context = true;
      keep_alive = false;
      throw Error(errc::resource_exhausted,
                  fmt::format("request body is over the limit of {} bytes", limit));
    }
    if (n) sink(std::string_view(chunk_.data(), n));
  }
}

void Exchange::finish_headers(http::fields& f, bool body_follows_without_length) {
  f.set("X-Request-Id", request_id);
  if (shared_.stopping.load(std::memory_order_relaxed) || body_follows_without_length)
    keep_alive = false;
  // A body the handler left unread is drained if small, else the connection closes.
  if (!parser_.is_done() &&
      (parser_.chunked() || parser_.content_length().value_or(0) > kDrainLimit))
    keep_alive = false;
}

asio::awaitable<void> Exchange::reply(int st, std::string body, std::string_view content_type,
                                     http::fields extra) {
  http::response<http::string_body> res{static_cast<http::status>(st), 11, std::move(body),
                                        std::move(extra)};
  finish_headers(res.base());
  res.set(http::field::content_type, bsv(content_type));
  res.keep_alive(keep_alive);
  res.prepare_payload();
  if (head()) res.body().clear();  // the same headers (Content-Length too), no body
  status = st;
  responded = true;
  bytes_out += res.body().size();
  stream_.expires_after(shared_.options.write_timeout);
  error_code ec;
  co_await http::async_write(stream_, res, asio::redirect_error(use_awaitable, ec));
  if (ec) keep_alive = false;
}

asio::awaitable<void> Exchange::reply_error(int st, errc code, std::string_view message,
                                            http::fields extra) {
  error_message = std::string(message);
  co_await reply(st, error_body(code, message), "application/json", std::move(extra));
}

asio::awaitable<void> Exchange::reply_header(http::response<http::empty_body>& res) {
  bool has_length = res.find(http::field::content_length) != res.end();
  finish_headers(res.base(), !has_length);
  res.keep_alive(keep_alive);
  status = res.result_int();
  responded = true;
  http::response_serializer<http::empty_body> sr{res};
  stream_.expires_after(shared_.options.write_timeout);
  error_code ec;
  co_await http::async_write_header(stream_, sr, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    keep_alive = false;
    throw Error(errc::unavailable, "the client went away");
  }
}

asio::awaitable<void> Exchange::write(std::string_view bytes) {
  if (head()) co_return;
  // A client that takes none of this within write_timeout is dropped: what we hold for it
  // is this one write (handlers keep each under output_budget), never a growing queue.
  stream_.expires_after(shared_.options.write_timeout);
  error_code ec;
  co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()),
                             asio::redirect_error(use_awaitable, ec));
  bytes_out += bytes.size();
  if (ec) {
    keep_alive = false;
    throw Error(errc::unavailable, "the client went away");
  }
}

namespace {

// Answers a request whose header could not be parsed, then the connection closes.
asio::awaitable<void> reject(Stream& stream, int st, errc code, std::string_view message) {
  http::response<http::string_body> res{static_cast<http::status>(st), 11};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body() = error_body(code, message);
  res.prepare_payload();
  stream.expires_after(std::chrono::seconds(5));
  error_code ec;
  co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
}

struct Registration {
  Registration(Shared& s, std::shared_ptr<ConnectionState> st) : shared(s) {
    std::lock_guard lock(shared.mu);
    id = shared.next_connection++;
    if (shared.admitting > 0) --shared.admitting;
    shared.connections.emplace(id, std::move(st));
    shared.metrics.connection_opened();
  }
  ~Registration() {
    std::lock_guard lock(shared.mu);
    shared.connections.erase(id);
    shared.metrics.connection_closed();
    shared.drained.notify_all();
  }
  Shared& shared;
  std::uint64_t id = 0;
};

}  // namespace

asio::awaitable<void> serve_connection(Shared& shared, tcp::socket socket) {
  const Options& opt = shared.options;
  auto state = std::make_shared<ConnectionState>(socket.get_executor());
  Registration registration(shared, state);
  std::string remote;
  {
    error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) remote = fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }
  Stream stream = shared.tls ? Stream(beast::tcp_stream(std::move(socket)), *shared.tls)
                             : Stream(beast::tcp_stream(std::move(socket)));
  state->stream = &stream;
  struct Unhook {
    ConnectionState& s;
    ~Unhook() { s.stream = nullptr; }
  } unhook{*state};
  if (auto* tls = stream.tls()) {
    // The handshake is part of the request header's budget (a slow handshake is slowloris
    // too); a client that does not speak TLS is dropped here, with nothing to answer.
    stream.expires_after(opt.header_timeout);
    error_code ec;
    co_await tls->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      stream.close();
      co_return;
    }
    stream.expires_never();
  }

  // The read buffer holds one request header (plus what arrived with it): its cap is what
  // bounds how much a client can make us hold before we answer.
  beast::flat_buffer buffer(opt.header_limit + 4096);
  std::size_t pipelined = 0;
  Deadline header_deadline(stream);
  bool linger = false;  // we answered before reading all the client sent
  while (!shared.stopping.load(std::memory_order_relaxed)) {
    Parser parser;
    parser.header_limit(static_cast<std::uint32_t>(opt.header_limit));
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // each route checks its own
    pipelined = buffer.size() > 0 ? pipelined + 1 : 0;
    error_code ec;
    if (buffer.size() == 0) {
      // Idle until the next request starts: the keep-alive timeout, shorter under pressure.
      stream.expires_after(shared.under_pressure()
                               ? std::min(opt.keepalive_timeout, opt.pressure_keepalive)
                               : opt.keepalive_timeout);
      auto n = co_await stream.async_read_some(buffer.prepare(4096),
                                               asio::redirect_error(use_awaitable, ec));
      if (ec) break;  // gone, idle too long, evicted or stopping: nothing to answer
      buffer.commit(n);
    }
    // A request has begun: its header must be complete within header_timeout (slowloris).
    stream.expires_never();
    header_deadline.arm(std::chrono::steady_clock::now() + opt.header_timeout);
    co_await http::async_read_header(stream, buffer, parser,
                                     asio::redirect_error(use_awaitable, ec));
    header_deadline.disarm();
    if (ec && header_deadline.expired()) ec = beast::error::timeout;
    if (ec) {
      if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        co_await reject(stream, 431, errc::resource_exhausted, "request header fields too large");
        linger = true;
      } else if (ec == beast::error::timeout) {
        co_await reject(stream, 408, errc::timeout,
                        fmt::format("the request header was not complete within {} s",
                                    opt.header_timeout.count()));
        linger = true;
      } else if (ec != http::error::end_of_stream && ec != asio::error::eof &&
                 ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                 ec != asio::error::bad_descriptor) {
        co_await reject(stream, 400, errc::invalid_argument, "malformed request: " + ec.message());
        linger = true;
      }
      break;
    }
    // Framing we do not implement is refused before anything reads a body (RFC 9112 6.1):
    // only "chunked" alone; with a Content-Length beside it the framing is ambiguous.
    if (auto te = parser.get().find(http::field::transfer_encoding); te != parser.get().end()) {
      bool both = parser.get().find(http::field::content_length) != parser.get().end();
      bool one = parser.get().count(http::field::transfer_encoding) == 1;
      if (both || !one || !beast::iequals(te->value(), "chunked")) {
        if (both)
          co_await reject(stream, 400, errc::invalid_argument,
                          "Transfer-Encoding and Content-Length together are refused");
        else
          co_await reject(stream, 501, errc::invalid_argument,
                          "only Transfer-Encoding: chunked is implemented");
        linger = true;
        break;
      }
    }
    state->busy = true;
    auto start = std::chrono::steady_clock::now();
    Exchange x(shared, *state, stream, buffer, parser);
    x.request_id = shared.log.next_id();
    x.keep_alive = parser.get().keep_alive();
    if (pipelined > opt.max_pipelined) {
      x.keep_alive = false;
      co_await x.reply_error(429, errc::resource_exhausted, "too many pipelined requests");
    } else {
      co_await handle(shared, x);
    }
    // Drop a small body the handler did not read, so the next request parses cleanly.
    if (x.keep_alive && !parser.is_done()) {
      try {
        co_await x.read_body(kDrainLimit, [](std::string_view) {});
      } catch (const std::exception&) {
        x.keep_alive = false;
      }
    }
    state->busy = false;
    shared.metrics.count_request(x.match.route, x.status);
    if (shared.log.enabled()) {
      auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
      auto target = ssv(parser.get().target());
      shared.log.write({.request_id = x.request_id,
                        .method = ssv(parser.get().method_string()),
                        .path = target.substr(0, target.find('?')),
                        .route = x.match.route ? x.match.route->pattern : std::string_view{},
                        .owner = x.owner,
                        .remote = remote,
                        .status = x.status,
                        .duration_ms = ms.count(),
                        .bytes_in = x.bytes_in,
                        .bytes_out = x.bytes_out,
                        .error = x.error_message});
    }
    if (!x.keep_alive) {
      linger = !parser.is_done();
      break;
    }
  }
  error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (linger) {
    // Closing with unread input makes the kernel send RST, which can destroy our answer
    // (a 413, 401 or 431) before the client reads it; clients that send the whole body
    // before reading (Python's urllib) would see "Broken pipe". Read and drop what the
    // client still sends, bounded in bytes and time.
    stream.expires_after(opt.linger_timeout);
    std::vector<char> sink(64 * 1024);
    for (std::size_t total = 0; total < opt.linger_bytes;) {
      auto n = co_await stream.async_read_some(asio::buffer(sink),
                                               asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      total += n;
    }
  }
  stream.close();
}

}  // namespace sandbox::server
