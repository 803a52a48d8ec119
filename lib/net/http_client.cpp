// net/http_client.cpp: each pooled connection owns a private io_context; a call runs its
// coroutine there on the caller's thread, so the sync API gets Beast's timeouts (tcp_stream
// expiry) and the same code path as the asynchronous users of Dialer.
#include "net/http_client.hpp"

#include <sandbox/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <mutex>
#include <optional>

#include "net/dial.hpp"

namespace sandbox::net {

namespace http = beast::http;
using Clock = std::chrono::steady_clock;

std::string Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (beast::iequals(k, beast::string_view(name.data(), name.size()))) return v;
  return {};
}

namespace {

struct Conn {
  asio::io_context ioc;
  std::optional<Stream> stream;
  beast::flat_buffer buffer;
};

// A pooled connection is worth reusing while the peer has neither closed it nor sent
// anything unasked (a peek that would block means: open and quiet).
bool alive(Conn& c) {
  if (!c.stream || c.buffer.size() != 0 || !c.stream->socket().is_open()) return false;
  char b;
  ssize_t n = ::recv(c.stream->socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// What one attempt is asked to do and what it did.
struct Call {
  const Request& req;
  const std::function<bool(std::string_view)>* on_chunk = nullptr;  // stream()
  const std::function<std::string_view()>* source = nullptr;        // upload()
  std::uint64_t length = 0;
  Response res;
  bool answered = false;     // a byte of the answer arrived: not retryable
  bool source_used = false;  // the upload began: not retryable
  bool reusable = false;     // the connection may go back to the pool
};

bool ok_status(unsigned s) { return s >= 200 && s < 300; }

}  // namespace

struct Client::Impl {
  Impl(Url u, ClientOptions o) : base(u), options(o), dialer(std::move(u), std::move(o)) {}
  Url base;
  ClientOptions options;
  Dialer dialer;
  std::mutex mu;
  std::vector<std::unique_ptr<Conn>> idle;

  std::unique_ptr<Conn> take(bool& reused) {
    {
      std::lock_guard lock(mu);
      while (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        if (alive(*c)) {
          reused = true;
          return c;
        }
      }
    }
    reused = false;
    return std::make_unique<Conn>();
  }

  void give(std::unique_ptr<Conn> c) {
    std::lock_guard lock(mu);
    if (idle.size() < options.max_idle) idle.push_back(std::move(c));
  }

  std::chrono::milliseconds timeout_of(const Request& r) const {
    return r.timeout.count() > 0 ? r.timeout : options.timeout;
  }

  Error failure(const Call& call, std::string_view what, const beast::error_code& ec) const {
    std::string why = ec == beast::error::timeout
                          ? fmt::format("no answer within {} ms", timeout_of(call.req).count())
                          : ec.message();
    return Error(errc::unavailable, fmt::format("{} {}{}{}: {}: {}", call.req.method, base.origin(), base.path,
                                                call.req.target, what, why));
  }

  asio::awaitable<void> exchange(Conn& c, Call& call);
  Response perform(const Request& req, const std::function<bool(std::string_view)>* on_chunk,
                   const std::function<std::string_view()>* source, std::uint64_t length);
};

asio::awaitable<void> Client::Impl::exchange(Conn& c, Call& call) {
  using asio::redirect_error;
  using asio::use_awaitable;
  const Request& req = call.req;
  if (!c.stream) {
    auto s = co_await dialer.dial(c.ioc.get_executor());
    c.stream.emplace(std::move(s));
  }
  Stream& s = *c.stream;
  // request(): one deadline for the whole exchange; stream() and upload(): per operation.
  const auto budget = timeout_of(req);
  const bool per_op = call.on_chunk || call.source;
  const auto deadline = Clock::now() + budget;
  auto arm = [&] {
    if (per_op) s.expires_after(budget);
    else s.expires_at(deadline);
  };

  http::request<http::string_body> head;
  head.method_string(beast::string_view(req.method.data(), req.method.size()));
  head.target(base.path + req.target);
  head.version(11);
  head.set(http::field::host, base.authority());
  head.set(http::field::user_agent, options.user_agent);
  if (!options.authorization.empty()) head.set(http::field::authorization, options.authorization);
  if (!req.body.empty() || call.source) head.set(http::field::content_type, req.content_type);
  for (const auto& [k, v] : req.headers) head.set(k, v);
  head.keep_alive(true);

  beast::error_code ec;
  if (!call.source) {
    head.body() = req.body;
    head.prepare_payload();
    arm();
    co_await http::async_write(s, head, redirect_error(use_awaitable, ec));
    if (ec) throw failure(call, "sending the request", ec);
  } else {
    http::request<http::empty_body> up(std::move(head.base()));
    if (call.length == chunked_length) up.chunked(true);
    else up.content_length(call.length);
    http::request_serializer<http::empty_body> sr(up);
    arm();
    co_await http::async_write_header(s, sr, redirect_error(use_awaitable, ec));
    if (ec) throw failure(call, "sending the request", ec);
    std::uint64_t sent = 0;
    for (;;) {
      call.source_used = true;
      std::string_view piece = (*call.source)();
      if (piece.empty()) break;
      sent += piece.size();
      if (call.length != chunked_length && sent > call.length)
        throw Error(errc::invalid_argument, fmt::format("upload: the source gave more than the {} bytes announced", call.length));
      arm();
      if (call.length == chunked_length) {
        auto chunk = http::make_chunk(asio::const_buffer(piece.data(), piece.size()));
        co_await asio::async_write(s, chunk, redirect_error(use_awaitable, ec));
      } else {
        co_await asio::async_write(s, asio::const_buffer(piece.data(), piece.size()), redirect_error(use_awaitable, ec));
      }
      if (ec) throw failure(call, "sending the body", ec);
    }
    if (call.length == chunked_length) {
      arm();
      auto last = http::make_chunk_last();
      co_await asio::async_write(s, last, redirect_error(use_awaitable, ec));
      if (ec) throw failure(call, "sending the body", ec);
    } else if (sent != call.length) {
      throw Error(errc::invalid_argument, fmt::format("upload: the source gave {} of the {} bytes announced", sent, call.length));
    }
  }

  http::response_parser<http::buffer_body> p;
  p.header_limit(64 * 1024);
  p.body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: 1.74 takes "len > none" as true
  if (req.method == "HEAD") p.skip(true);
  arm();
  co_await http::async_read_header(s, c.buffer, p, redirect_error(use_awaitable, ec));
  call.answered = p.got_some();
  if (ec) throw failure(call, "reading the answer", ec);
  call.res.status = p.get().result_int();
  for (const auto& f : p.get()) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char ch) { return static_cast<char>(std::tolower(static_cast<unsigned char>(ch))); });
    call.res.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  const bool streaming = call.on_chunk && ok_status(call.res.status);
  char buf[16384];
  while (!p.is_done()) {
    p.get().body().data = buf;
    p.get().body().size = sizeof buf;
    arm();
    // read_some: a stream's chunk goes to the caller as soon as it arrives.
    co_await http::async_read_some(s, c.buffer, p, redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    // A TLS peer that ends a close-delimited body without close_notify: the end, still.
    if (ec == asio::ssl::error::stream_truncated && p.need_eof()) {
      p.put_eof(ec);
      if (!ec && !p.is_done()) ec = http::error::partial_message;
    }
    if (ec) throw failure(call, "reading the body", ec);
    std::size_t n = sizeof buf - p.get().body().size;
    if (n == 0) continue;
    if (streaming) {
      if (!(*call.on_chunk)(std::string_view(buf, n))) co_return;  // stopped: not reusable
    } else {
      if (call.res.body.size() + n > options.body_limit)
        throw Error(errc::resource_exhausted, fmt::format("{} {}: the answer is over {} bytes", req.method,
                                                          base.origin(), options.body_limit));
      call.res.body.append(buf, n);
    }
  }
  call.reusable = p.keep_alive() && c.buffer.size() == 0;
}

Response Client::Impl::perform(const Request& req, const std::function<bool(std::string_view)>* on_chunk,
                               const std::function<std::string_view()>* source, std::uint64_t length) {
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto c = take(reused);
    Call call{.req = req, .on_chunk = on_chunk, .source = source, .length = length};
    std::exception_ptr error;
    asio::co_spawn(c->ioc, exchange(*c, call), [&](std::exception_ptr e) { error = e; });
    c->ioc.restart();
    c->ioc.run();
    if (!error) {
      if (call.reusable) give(std::move(c));
      return std::move(call.res);
    }
    // The peer closed a reused idle connection before answering: once more on a new one.
    if (reused && attempt == 0 && !call.answered && !call.source_used) {
      try {
        std::rethrow_exception(error);
      } catch (const Error& e) {
        if (e.code() == errc::unavailable) continue;
      } catch (...) {
      }
    }
    std::rethrow_exception(error);
  }
}

Client::Client(Url base, ClientOptions options) {
  check_token_transport(base, !options.authorization.empty(), options.allow_plaintext_token);
  impl_ = std::make_unique<Impl>(std::move(base), std::move(options));
}

Client::~Client() = default;

Response Client::request(const Request& req) { return impl_->perform(req, nullptr, nullptr, 0); }

Response Client::stream(const Request& req, const std::function<bool(std::string_view)>& on_chunk) {
  return impl_->perform(req, &on_chunk, nullptr, 0);
}

Response Client::upload(const Request& req, std::uint64_t length, const std::function<std::string_view()>& source) {
  return impl_->perform(req, nullptr, &source, length);
}

const Url& Client::base() const { return impl_->base; }
const ClientOptions& Client::options() const { return impl_->options; }

}  // namespace sandbox::net
