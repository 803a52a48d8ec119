// A real HTTP/1.1 server for the client tests (Beast, blocking, a thread per connection) on
// 127.0.0.1 or ::1, plain or TLS (optionally requiring a client certificate). It counts the
// connections it accepted, so a test can prove keep-alive reuse.
//
//   GET  /echo      -> JSON of the request (method, target, headers, body size and body)
//   GET  /sse?n=3   -> chunked, n events 50 ms apart
//   GET  /slow      -> answers after 1.5 s
//   GET  /drop-next -> 200; the next request on this connection is read and dropped (closed)
//   GET  /status/N  -> status N with a small body
// (a leading /base is ignored: the path prefix of a Url)
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <openssl/x509.h>

#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sandbox::test {

class TestServer {
 public:
  struct Tls {
    std::filesystem::path cert, key;
    std::filesystem::path client_ca;  // non-empty: a client certificate is required
  };

  explicit TestServer(const std::string& address = "127.0.0.1", std::optional<Tls> tls = std::nullopt)
      : acceptor_(ioc_) {
    namespace asio = boost::asio;
    if (tls) {
      ctx_.emplace(asio::ssl::context::tls_server);
      ctx_->use_certificate_chain_file(tls->cert.string());
      ctx_->use_private_key_file(tls->key.string(), asio::ssl::context::pem);
      if (!tls->client_ca.empty()) {
        ctx_->load_verify_file(tls->client_ca.string());
        ctx_->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
      }
    }
    asio::ip::tcp::endpoint ep(asio::ip::make_address(address), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { accept_loop(); });
  }

  ~TestServer() {
    stopping_ = true;
    boost::system::error_code ec;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    acceptor_.close(ec);
    thread_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
  }

  unsigned short port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void accept_loop() {
    while (!stopping_) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec) {
        if (stopping_) return;
        continue;
      }
      ++accepted_;
      std::lock_guard lock(mu_);
      fds_.push_back(s.native_handle());
      workers_.emplace_back([this, s = std::move(s)]() mutable { serve(std::move(s)); });
    }
  }

  void serve(boost::asio::ip::tcp::socket s) {
    namespace asio = boost::asio;
    boost::system::error_code ec;
    if (ctx_) {
      asio::ssl::stream<asio::ip::tcp::socket> tls(std::move(s), *ctx_);
      tls.handshake(asio::ssl::stream_base::server, ec);
      if (ec) return;
      std::string peer;
      if (X509* c = SSL_get_peer_certificate(tls.native_handle())) {
        char buf[256];
        X509_NAME_oneline(X509_get_subject_name(c), buf, sizeof buf);
        peer = buf;
        X509_free(c);
      }
      loop(tls, peer);
    } else {
      loop(s, "");
    }
  }

  template <class S>
  void loop(S& s, const std::string& peer) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    bool drop_next = false;
    for (;;) {
      boost::system::error_code ec;
      http::request_parser<http::string_body> p;
      p.body_limit(1ull << 30);
      http::read(s, buf, p, ec);
      if (ec) return;
      if (drop_next) return;  // as a server whose keep-alive timeout fired just then
      auto& req = p.get();
      std::string target(req.target());
      std::string route = target.rfind("/base/", 0) == 0 ? target.substr(5) : target;  // a Url's path prefix
      http::response<http::string_body> res{http::status::ok, 11};
      res.keep_alive(req.keep_alive());
      if (route == "/drop-next") {
        drop_next = true;
      } else if (route.rfind("/status/", 0) == 0) {
        res.result(static_cast<unsigned>(std::stoi(route.substr(8))));
        res.body() = "status body";
      } else if (route == "/slow") {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        res.body() = "slow";
      } else if (route.rfind("/sse", 0) == 0) {
        int n = route.find("n=") != std::string::npos ? std::stoi(route.substr(route.find("n=") + 2)) : 3;
        http::response<http::empty_body> h{http::status::ok, 11};
        h.set(http::field::content_type, "text/event-stream");
        h.chunked(true);
        http::response_serializer<http::empty_body> sr(h);
        http::write_header(s, sr, ec);
        for (int i = 0; i < n && !ec; ++i) {
          std::string ev = "data: " + std::to_string(i) + "\n\n";
          boost::asio::write(s, http::make_chunk(boost::asio::buffer(ev)), ec);
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!ec) boost::asio::write(s, http::make_chunk_last(), ec);
        if (ec || !req.keep_alive()) return;
        continue;
      } else {
        nlohmann::json j = {{"method", std::string(req.method_string())},
                            {"target", target},
                            {"host", std::string(req[http::field::host])},
                            {"authorization", std::string(req[http::field::authorization])},
                            {"content_type", std::string(req[http::field::content_type])},
                            {"transfer_encoding", std::string(req[http::field::transfer_encoding])},
                            {"x_test", std::string(req["X-Test"])},
                            {"peer", peer},
                            {"size", req.body().size()},
                            {"body", req.body().size() < 4096 ? req.body() : std::string()}};
        res.set(http::field::content_type, "application/json");
        res.body() = j.dump();
      }
      res.prepare_payload();
      http::write(s, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::optional<boost::asio::ssl::context> ctx_;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> workers_;
  std::thread thread_;
};

}  // namespace sandbox::test
