// server/connection.hpp: one HTTP connection as a coroutine (read, route, write, repeat),
// the per-request Exchange that handlers talk to, and the state every connection shares.
//
// Each connection runs on its own strand, so a connection's coroutine, its timers and the
// wake-ups posted to it from library threads never run at the same time. Handlers never
// block an I/O thread for long: blocking library calls go through offload() to a small
// thread pool and the coroutine resumes on its strand.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <map>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/stream.hpp"

#include "sandbox/sandbox.hpp"
#include "sandbox/server.hpp"
#include "server/auth.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"
#include "server/router.hpp"

namespace sandbox::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Stream = net::Stream;  // plain TCP or TLS (Options::tls_cert): one code path for both
using Parser = http::request_parser<http::buffer_body>;

// Beast 1.74 speaks boost::string_view; these convert at the edge.
inline beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view ssv(beast::string_view s) { return {s.data(), s.size()}; }

// Wakes one coroutine from any thread: notifier() may be called from a library thread; the
// wake-up is posted to the coroutine's strand, so no wake-up is lost between a check and
// a wait.
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : st_(std::make_shared<State>(std::move(ex))) {}
  std::function<void()> notifier() const;
  void notify() const { notifier()(); }
  // True if notified (since the last wait), false if the deadline passed first.
  asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline);

 private:
  struct State {
    explicit State(asio::any_io_executor e) : ex(e), timer(e) {}
    asio::any_io_executor ex;
    asio::steady_timer timer;
    bool fired = false;
  };
  std::shared_ptr<State> st_;
};

// Cancels the stream's pending operations at a deadline without closing the socket (a
// tcp_stream timeout closes it), so a late client can still be told so (408).
class Deadline {
 public:
  explicit Deadline(Stream& stream);
  ~Deadline() { disarm(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  void arm(std::chrono::steady_clock::time_point at);
  void disarm();
  bool expired() const { return st_->expired; }

 private:
  struct State {
    Stream* stream;
    bool armed = false, expired = false;
    std::uint64_t generation = 0;  // a completion of an earlier arm() must not fire a later one
  };
  std::shared_ptr<State> st_;
  asio::steady_timer timer_;
};

// What the server's stop() and the connection cap need to reach a live connection (touched on
// its strand, but for `busy`).
struct ConnectionState {
  explicit ConnectionState(asio::any_io_executor e) : ex(e), signal(e) {}
  asio::any_io_executor ex;
  Stream* stream = nullptr;  // null once the connection ended
  std::atomic<bool> busy{false};  // inside a request (read by the acceptor to pick idle ones)
  Signal signal;             // long-polls and event streams wait on this
};

// Everything the connections of one server share.
struct Shared {
  Shared(Sandbox& sb, const Options& o, Tokens t, RequestLog::Sink sink,
         std::shared_ptr<asio::ssl::context> tls_context = nullptr)
      : sandbox(sb), options(o), tokens(std::move(t)), log(std::move(sink)),
        pool(o.blocking_threads ? o.blocking_threads : 1), tls(std::move(tls_context)) {}

  Sandbox& sandbox;
  const Options& options;
  Tokens tokens;
  Metrics metrics;
  RequestLog log;
  asio::thread_pool pool;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain HTTP
  std::string openapi;  // generated once
  std::atomic<bool> stopping{false};

  // Live connections, for stop() and the connection cap (ordered: oldest first).
  std::mutex mu;
  std::condition_variable drained;
  std::map<std::uint64_t, std::shared_ptr<ConnectionState>> connections;
  std::uint64_t next_connection = 0;
  std::size_t admitting = 0;  // accepted by admit(), not yet registered: counted against the cap
  std::size_t connection_cap = 0;  // min(options.max_connections, RLIMIT_NOFILE / 2)
  // Past half the cap, idle connections get pressure_keepalive instead of keepalive_timeout.
  bool under_pressure() {
    std::lock_guard lock(mu);
    return connections.size() * 2 >= connection_cap;
  }

  // Executions started over HTTP, until they end (for the latency histogram).
  struct Tracked {
    std::weak_ptr<Execution> execution;
  };
  std::mutex tracked_mu;
  std::vector<Tracked> tracked;
  void track(const std::shared_ptr<Execution>& ex) {
    std::lock_guard lock(tracked_mu);
    tracked.push_back({ex});
  }
};

// Runs `fn` on the blocking pool and resumes the caller on its own executor, with the
// value or the exception. `fn` is taken by reference and must be a named local of the
// caller: GCC 12 destroys temporaries passed into a co_await expression twice.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> offload(asio::thread_pool& pool, F& fn) {
  using R = std::invoke_result_t<F&>;
  using Slot = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;
  Slot value{};
  std::exception_ptr error;
  co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [&](auto handler) {
        asio::post(pool, [&, handler = std::move(handler)]() mutable {
          try {
            if constexpr (std::is_void_v<R>) fn();
            else value.emplace(fn());
          } catch (...) {
            error = std::current_exception();
          }
          asio::post(std::move(handler));  // back to the caller's strand
        });
      },
      asio::use_awaitable);
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<R>) co_return std::move(*value);
}

// One request and its answer, as the handlers see it.
class Exchange {
 public:
  Exchange(Shared& shared, ConnectionState& conn, Stream& stream, beast::flat_buffer& buffer,
           Parser& parser)
      : shared_(shared), conn_(conn), stream_(stream), buffer_(buffer), parser_(parser) {}

  const http::request_header<>& request() const { return parser_.get(); }
  std::optional<std::uint64_t> content_length() const {
    auto cl = parser_.content_length();
    return cl ? std::optional<std::uint64_t>(*cl) : std::nullopt;
  }
  bool has_body() const;
  // HEAD: answered like GET, headers only.
  bool head() const { return parser_.get().method() == http::verb::head; }

  // Reads the whole body (at most `limit` bytes; more: resource_exhausted, 413). The body
  // must keep arriving: body_min_bytes per read_timeout, else timeout (408).
  asio::awaitable<std::string> read_body(std::size_t limit);
  // Streams the body to `sink` chunk by chunk (at most `limit` bytes in all).
  asio::awaitable<void> read_body(std::uint64_t limit,
                                  const std::function<void(std::string_view)>& sink);
  bool body_done() const { return parser_.is_done(); }

  // A complete answer.
  asio::awaitable<void> reply(int status, std::string body,
                              std::string_view content_type = "application/json",
                              http::fields extra = {});
  asio::awaitable<void> reply_error(int status, errc code, std::string_view message,
                                    http::fields extra = {});
  // The header of a streamed answer; then write() the body.
  asio::awaitable<void> reply_header(http::response<http::empty_body>& res);
  asio::awaitable<void> write(std::string_view bytes);

  Signal& signal() { return conn_.signal; }
  // The raw connection, for relaying the request, body unread, elsewhere (placement::forward).
  Stream& stream() { return stream_; }
  beast::flat_buffer& buffer() { return buffer_; }
  Parser& parser() { return parser_; }
  bool stopping() const { return shared_.stopping.load(std::memory_order_relaxed); }

  // Set by the connection before the handler runs.
  Match match;
  Query query;
  std::string owner;       // the tenant, "" when auth is off
  std::string request_id;
  // Set by handlers and reply*().
  bool too_large_context = false;  // resource_exhausted here means 413
  bool client_too_slow = false;    // the request did not arrive in time: 408
  bool keep_alive = true;
  bool responded = false;
  int status = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0;
  std::string error_message;

 private:
  void finish_headers(http::fields& f, bool body_follows_without_length = false);
  Shared& shared_;
  ConnectionState& conn_;
  Stream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  std::vector<char> chunk_;
};

// Serves one accepted socket until the peer goes, a limit trips or the server stops.
asio::awaitable<void> serve_connection(Shared& shared, tcp::socket socket);

}  // namespace sandbox::server
