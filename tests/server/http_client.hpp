// A small blocking HTTP client for the server tests (Boost.Beast), plus a raw-bytes helper
// for the hostile-client cases.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  nlohmann::json json() const { return nlohmann::json::parse(body); }
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Client {
 public:
  explicit Client(unsigned short port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  Response request(http::verb method, const std::string& target, std::string body = {},
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() && req.find(http::field::content_type) == req.end())
      req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(socket_, req);
    http::response_parser<http::string_body> p;
    p.body_limit(1ull << 30);
    p.skip(method == http::verb::head);  // a HEAD answer has headers only
    http::read(socket_, buffer_, p);
    Response r;
    r.status = p.get().result_int();
    r.body = p.get().body();
    for (auto& f : p.get()) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    return r;
  }
  Response get(const std::string& t, std::vector<std::pair<std::string, std::string>> h = {}) {
    return request(http::verb::get, t, {}, std::move(h));
  }
  Response post(const std::string& t, std::string body = {},
                std::vector<std::pair<std::string, std::string>> h = {}) {
    return request(http::verb::post, t, std::move(body), std::move(h));
  }
  Response del(const std::string& t, std::vector<std::pair<std::string, std::string>> h = {}) {
    return request(http::verb::delete_, t, {}, std::move(h));
  }
  tcp::socket& socket() { return socket_; }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

// Sends `bytes` on a fresh connection and returns everything the server sends back until
// it closes (or `timeout` passes).
inline std::string raw_exchange(unsigned short port, const std::string& bytes,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(s, asio::buffer(bytes));
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  s.non_blocking(true);
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    beast::error_code ec;
    auto n = s.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::would_block) {
      pollfd pfd{s.native_handle(), POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      ::poll(&pfd, 1, static_cast<int>(std::max<long>(left.count(), 0)));
      continue;
    }
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

inline std::string multipart(const std::string& boundary, const std::string& field,
                             const std::string& filename, const std::string& data) {
  return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + field +
         "\"; filename=\"" + filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
         data + "\r\n--" + boundary + "--\r\n";
}

}  // namespace sandbox::test
