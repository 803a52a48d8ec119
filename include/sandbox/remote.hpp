// sandbox/remote.hpp: a server (`sandboxctl serve`, a gateway) used as if it were a local
// Sandbox. connect() gives a Remote whose sessions implement the same Session interface
// (files, processes, start/stream/wait, cancel) over the HTTP API of docs/http.md, on
// keep-alive connections, with SSE for output as it arrives.
//
//   auto server = sandbox::connect("https://sb.example", {.token = "t"});
//   auto s = server->create_session({});
//   auto r = s->run({.code = "1+1"});   // r.result == "2"
//   server->close_session(s->id());
#pragma once
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/session.hpp"

namespace sandbox {

struct ConnectOptions {
  std::string token;                      // bearer token; "" = none
  std::filesystem::path ca_file;          // verify https against this PEM; "" = system store
  bool verify_tls = true;                 // false only for tests (--insecure)
  // A token goes over plain http only to a loopback address unless this is set.
  bool allow_plaintext_token = false;
  std::chrono::milliseconds timeout{60'000};  // one request (a long-poll adds its wait)
};

class Remote {
 public:
  virtual ~Remote() = default;
  // The same contract as Sandbox's: errors come back as the sandbox::Error the server
  // named (not_found, already_exists, QuotaExceeded, ...).
  virtual std::shared_ptr<Session> create_session(SessionOptions opts = {}) = 0;
  virtual std::shared_ptr<Session> session(std::string_view id) = 0;   // throws not_found
  virtual std::vector<std::shared_ptr<Session>> sessions() = 0;
  virtual void close_session(std::string_view id) = 0;
  virtual const std::string& url() const = 0;
};

// Checks the URL (http:// or https://) and the token rule; connects lazily.
std::unique_ptr<Remote> connect(std::string_view url, ConnectOptions options = {});

}  // namespace sandbox
