// The listener and the server's lifecycle (start, drain, stop); the Sandbox reaps sessions.
#include "sandbox/server.hpp"

#include <fmt/format.h>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <thread>

#include "net/tls.hpp"
#include "server/connection.hpp"
#include "server/openapi.hpp"

namespace sandbox::server {
namespace {

using asio::use_awaitable;
using beast::error_code;

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  return !ec && addr.is_loopback();
}

RequestLog::Sink make_sink(const Options& o) {
  if (o.quiet) return {};
  if (o.log) return o.log;
  return stderr_sink();
}

}  // namespace

struct Server::Impl {
  Impl(Sandbox& sb, Options o)
      : options(std::move(o)),
        shared(sb, options, load_tokens(options), make_sink(options), load_tls(options)),
        ioc(static_cast<int>(std::max<std::size_t>(options.io_threads, 1))),
        acceptor(ioc),
        sweep_timer(ioc) {
    shared.openapi = openapi_document(SANDBOX_SERVER_VERSION);
  }

  static std::shared_ptr<asio::ssl::context> load_tls(const Options& o) {
    if (o.tls_cert.empty() && o.tls_key.empty()) return nullptr;
    if (o.tls_cert.empty() || o.tls_key.empty())
      throw Error(errc::invalid_argument, "TLS needs both a certificate (--tls-cert) and its key (--tls-key)");
    return net::server_tls(o.tls_cert, o.tls_key);
  }

  static Tokens load_tokens(const Options& o) {
    if (o.token_file.empty()) {
      if (!is_loopback_host(o.host))
        throw Error(errc::permission_denied,
                    fmt::format("refusing to listen on {} without a token file: beyond loopback "
                                "every request must carry a bearer token (--token-file)",
                                o.host));
      return {};
    }
    return Tokens::load(o.token_file);
  }

  asio::awaitable<void> accept_loop() {
    while (!shared.stopping.load()) {
      error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(
          asio::any_io_executor(asio::make_strand(ioc)), asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (shared.stopping.load() || ec == asio::error::operation_aborted) break;
        // Out of descriptors (or a transient error): back off instead of spinning.
        asio::steady_timer t(ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      if (!admit()) {
        socket.close(ec);  // refused at once, not left to starve in the backlog
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      auto ex = socket.get_executor();
      asio::co_spawn(ex, serve_connection(shared, std::move(socket)), asio::detached);
    }
  }

  // Whether one more connection fits. Near the cap (7/8 of it) the oldest idle connections
  // are asked to close, so a flood of idle sockets cannot lock out the next real request;
  // at the cap a newcomer is refused while every connection is busy.
  bool admit() {
    std::lock_guard lock(shared.mu);
    // Accepted ones count from here, not from when their coroutine registers: a burst of
    // accepts cannot pass the cap.
    const std::size_t cap = shared.connection_cap, n = shared.connections.size() + shared.admitting;
    if (n >= cap - cap / 8) {
      int asked = 0;
      for (auto& [id, st] : shared.connections) {
        if (st->busy.load(std::memory_order_relaxed)) continue;
        if (++asked > 4) break;
        asio::post(st->ex, [st = st] {
          if (st->stream && !st->busy) st->stream->cancel();
        });
      }
    }
    if (n >= cap) return false;
    ++shared.admitting;
    return true;
  }

  // The connection cap: at most half the descriptors, the rest stays for sessions (each
  // holds a few here) and for the state dir.
  static std::size_t connection_cap(std::size_t configured) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return configured;
    return std::max<std::size_t>(1, std::min<std::size_t>(configured, rl.rlim_cur / 2));
  }

  // Every 250 ms: record finished executions in the latency histogram.
  asio::awaitable<void> sweep_loop() {
    while (!shared.stopping.load()) {
      sweep_timer.expires_after(std::chrono::milliseconds(250));
      error_code ec;
      co_await sweep_timer.async_wait(asio::redirect_error(use_awaitable, ec));
      if (shared.stopping.load()) break;
      sweep_executions();
    }
  }

  void sweep_executions() {
    std::vector<std::shared_ptr<Execution>> ended;
    {
      std::lock_guard lock(shared.tracked_mu);
      auto& v = shared.tracked;
      for (std::size_t i = 0; i < v.size();) {
        auto ex = v[i].execution.lock();
        if (!ex || ex->done()) {
          if (ex) ended.push_back(std::move(ex));
          v[i] = std::move(v.back());
          v.pop_back();
        } else {
          ++i;
        }
      }
    }
    for (auto& ex : ended)
      shared.metrics.observe_execution(
          static_cast<double>(ex->snapshot(Page{0, 0}).duration_ms) / 1000);
  }

  void start() {
    if (started) throw Error(errc::failed_precondition, "the server is already started");
    tcp::endpoint ep;
    error_code ec;
    auto addr = asio::ip::make_address(options.host, ec);
    if (!ec) {
      ep = tcp::endpoint(addr, options.port);
    } else {
      tcp::resolver resolver(ioc);
      auto results = resolver.resolve(options.host, std::to_string(options.port), ec);
      if (ec || results.empty())
        throw Error(errc::invalid_argument, fmt::format("cannot resolve '{}'", options.host));
      ep = *results.begin();
    }
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw Error(errc::unavailable, fmt::format("cannot listen on {}:{}: {}", options.host,
                                                 options.port, ec.message()));
    bound_port = acceptor.local_endpoint().port();
    shared.connection_cap = connection_cap(options.max_connections);
    asio::co_spawn(ioc, accept_loop(), asio::detached);
    asio::co_spawn(ioc, sweep_loop(), asio::detached);
    work.emplace(ioc.get_executor());
    for (std::size_t i = 0; i < std::max<std::size_t>(options.io_threads, 1); ++i)
      threads.emplace_back([this] { ioc.run(); });
    started = true;
  }

  void stop() {
    if (!started || stopped) return;
    stopped = true;
    shared.stopping = true;
    asio::post(ioc, [this] {
      error_code ec;
      acceptor.close(ec);
      sweep_timer.cancel();
    });
    {
      // Idle connections close now; busy ones finish their request (long-polls and event
      // streams are woken to answer early) and then close.
      std::lock_guard lock(shared.mu);
      for (auto& [id, st] : shared.connections) {
        asio::post(st->ex, [st = st] {
          if (st->stream && !st->busy) st->stream->cancel();
          st->signal.notify();
        });
      }
    }
    {
      std::unique_lock lock(shared.mu);
      shared.drained.wait_for(lock, options.drain_timeout,
                              [this] { return shared.connections.empty(); });
    }
    work.reset();
    ioc.stop();
    for (auto& t : threads) t.join();
    threads.clear();
    shared.pool.join();
  }

  Options options;
  Shared shared;  // declared before ioc: outlives the coroutine frames ioc destroys
  asio::io_context ioc;
  tcp::acceptor acceptor;
  asio::steady_timer sweep_timer;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::uint16_t bound_port = 0;
  bool started = false, stopped = false;
};

Server::Server(Sandbox& sandbox, Options options)
    : impl_(std::make_unique<Impl>(sandbox, std::move(options))) {}

Server::~Server() { stop(); }

void Server::start() { impl_->start(); }

std::uint16_t Server::port() const { return impl_->bound_port; }

std::string Server::url() const {
  const std::string& h = impl_->options.host;
  bool v6 = h.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}:{}", impl_->shared.tls ? "https" : "http", v6 ? "[" : "", h, v6 ? "]" : "",
                     port());
}

void Server::stop() { impl_->stop(); }

void Server::run() {
  // Signals are caught before the server starts, so an early SIGTERM still drains.
  asio::io_context signals_ioc;
  asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  signals.async_wait([](const error_code&, int) {});
  if (!impl_->started) start();
  signals_ioc.run();
  // Sessions are the Sandbox's to keep or close (Options::close_sessions_on_exit): with a
  // state dir they outlive this server and the next one adopts them.
  stop();
}

}  // namespace sandbox::server
