// The server tests' HTTP client (net::Client underneath), plus raw-bytes helpers for the
// hostile-client cases.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>

#include "net/http_client.hpp"

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

// The tests' client for normal requests is the library's one client (net::Client) over
// http://127.0.0.1:PORT; hostile cases write raw bytes (RawConnection, raw_exchange).
class Client {
 public:
  explicit Client(unsigned short port)
      : client_(net::Url::parse("http://127.0.0.1:" + std::to_string(port)), {.max_idle = 1}) {}
  Response request(http::verb method, const std::string& target, std::string body = {},
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto m = http::to_string(method);
    auto r = client_.request(
        {.method = std::string(m.data(), m.size()), .target = target, .body = std::move(body), .headers = std::move(headers)});
    Response out;
    out.status = static_cast<int>(r.status);
    out.body = std::move(r.body);
    for (auto& [k, v] : r.headers) out.headers[k] = v;
    return out;
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

 private:
  net::Client client_;
};

// One raw connection, for writing what a well-behaved client would not.
class RawConnection {
 public:
  explicit RawConnection(unsigned short port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  tcp::socket& socket() { return socket_; }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
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
