// sandbox/server.hpp: the HTTP front-end (DESIGN section 4) over a Sandbox.
//
// A thin Boost.Beast server: it parses requests, calls the library and formats answers; the
// library decides policy (placement, the reaper, ceilings, quotas: sandbox::Options). Routes, statuses and bodies are documented in docs/http.md and
// served as an OpenAPI document at /openapi.json.
//
//   sandbox::Sandbox sb({.state_dir = "/var/lib/libsandbox"});
//   sandbox::server::Server srv(sb, {.host = "127.0.0.1", .port = 8080});
//   srv.run();   // serves until SIGINT/SIGTERM, then drains (sessions are the Sandbox's)
//
// Or, embedded (tests, a larger program):
//   srv.start();  auto port = srv.port();  ...  srv.stop();
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace sandbox {
class Sandbox;
}

namespace sandbox::server {

struct Options {
  std::string host = "127.0.0.1";      // listen address; beyond loopback needs token_file
  std::uint16_t port = 8080;           // 0 = an ephemeral port (see Server::port())
  std::filesystem::path token_file;    // bearer tokens, one per line (`name:token`); "" = open
  bool auto_create = true;             // a seed route on an unknown session id creates it
  // Where sessions run (placement), when idle ones close (the reaper) and the limit
  // ceilings are the Sandbox's (sandbox::Options); the server relays the requests of a
  // session placed elsewhere to it.
  // TLS (PEM files: the certificate chain and its key); both empty = plain HTTP. With them
  // every connection is HTTPS and url() says https://.
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;

  // Threads.
  std::size_t io_threads = 2;          // run the event loop (parsing, routing, writing)
  std::size_t blocking_threads = 4;    // run blocking library calls (create, files, processes)

  // Hostile-client limits.
  std::size_t header_limit = 16 * 1024;          // request line + headers; over: 431
  std::size_t json_body_limit = 64 * 1024;       // JSON bodies other than exec; over: 413
  std::size_t exec_body_limit = 20u << 20;       // exec bodies (16 MiB of code plus escaping and stdin); over: 413
  std::chrono::seconds header_timeout{10};       // a started request header must be complete; then 408
  std::chrono::seconds read_timeout{10};         // a request body must bring body_min_bytes per this; else 408
  std::size_t body_min_bytes = 1024;             // (an upload at 2 KB/s keeps going; a trickle is cut)
  std::chrono::seconds write_timeout{30};        // a client that takes none of our answer this long is dropped
  std::size_t output_budget = 256 * 1024;        // bytes of a streamed answer held for one connection
  std::chrono::seconds keepalive_timeout{75};    // an idle connection is closed after this
  std::chrono::seconds pressure_keepalive{5};    // ... or this, once half the connection cap is in use
  // Accepted beyond min(this, RLIMIT_NOFILE / 2) are closed at once: the other half of the
  // descriptors stays for sessions. Near the cap the oldest idle connections are closed first.
  std::size_t max_connections = 20000;
  std::size_t linger_bytes = 32u << 20;          // after an early answer, read and drop this much
  std::chrono::seconds linger_timeout{5};        // ... for at most this long, so the client reads it
  std::size_t max_pipelined = 32;                // requests queued back to back; then 429
  std::chrono::milliseconds max_wait{60'000};    // cap on ?wait=MS long-polls
  // GET /{sid}/result without ?wait answers at the first change (new output, the end) or
  // after this long: tight poll loops get every change at once and stop burning a core.
  // ?wait=0 answers at once; 0 here turns the hold off.
  std::chrono::milliseconds poll_hold{50};
  std::chrono::seconds drain_timeout{15};        // stop(): in-flight requests get this long

  // One JSON line per request; unset = stderr. `quiet` turns the log off.
  std::function<void(std::string_view line)> log;
  bool quiet = false;
};

class Server {
 public:
  // Reads the token file. Throws sandbox::Error: permission_denied when `host` is not a
  // loopback address and no token file is given; invalid_argument/not_found for a bad one.
  Server(Sandbox& sandbox, Options options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens, then runs the event loop on `io_threads` threads; returns at once.
  // Throws sandbox::Error(unavailable) if the address cannot be bound.
  void start();
  // The bound port (after start()).
  std::uint16_t port() const;
  // "http://127.0.0.1:PORT" ("https://..." with TLS, "[::1]" bracketed)
  std::string url() const;
  // Stops accepting, lets in-flight requests finish (up to drain_timeout), closes idle
  // connections and joins the threads. Idempotent.
  void stop();
  // start() (unless already started), serve until SIGINT or SIGTERM, then stop(). Sessions
  // stay the Sandbox's: with a state dir they outlive the server (docs/durability.md).
  void run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandbox::server
