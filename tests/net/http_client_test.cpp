// net::Client against real servers on loopback (tests/net/test_server.hpp): keep-alive by
// counting accepted connections, the retry of a connection the peer dropped, streaming both
// ways, timeouts, the token rule, TLS verification (by name and by IP, mutual TLS), IPv6.
#include "net/http_client.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <thread>

#include <unistd.h>

#include "net/test_pki.hpp"
#include "net/test_server.hpp"

using namespace std::chrono_literals;
using sandbox::errc;
using sandbox::net::Client;
using sandbox::net::ClientOptions;
using sandbox::net::Request;
using sandbox::net::Url;
using sandbox::test::TestServer;
using json = nlohmann::json;

namespace {

Url url(const std::string& scheme, const std::string& host, unsigned short port, const std::string& path = "") {
  return Url::parse(scheme + "://" + host + ":" + std::to_string(port) + path);
}

bool has_ipv6_loopback() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc);
  boost::system::error_code ec;
  a.open(boost::asio::ip::tcp::v6(), ec);
  if (!ec) a.bind({boost::asio::ip::make_address("::1"), 0}, ec);
  return !ec;
}

const sandbox::test::Pki& pki() {
  static auto p = sandbox::test::Pki::make(std::filesystem::temp_directory_path() /
                                           ("net-test-pki-" + std::to_string(::getpid())));
  return p;
}

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sandbox::Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

}  // namespace

TEST(HttpClient, RequestAndKeepAlive) {
  TestServer srv;
  Client c(url("http", "127.0.0.1", srv.port(), "/base"));
  for (int i = 0; i < 5; ++i) {
    auto r = c.request({.method = "POST", .target = "/echo?i=1", .body = R"({"a":1})",
                        .headers = {{"X-Test", "yes"}}});
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    auto j = json::parse(r.body);
    EXPECT_EQ(j["method"], "POST");
    EXPECT_EQ(j["target"], "/base/echo?i=1");
    EXPECT_EQ(j["body"], R"({"a":1})");
    EXPECT_EQ(j["content_type"], "application/json");
    EXPECT_EQ(j["x_test"], "yes");
    EXPECT_EQ(j["host"], "127.0.0.1:" + std::to_string(srv.port()));
  }
  EXPECT_EQ(srv.accepted(), 1);  // five requests, one connection
  auto r = c.request({.target = "/status/404"});
  EXPECT_EQ(r.status, 404u);  // a status is returned, not thrown
  EXPECT_EQ(r.body, "status body");
  EXPECT_EQ(srv.accepted(), 1);
}

TEST(HttpClient, ConcurrentCallersUseSeveralConnections) {
  TestServer srv;
  Client c(url("http", "127.0.0.1", srv.port()));
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10; ++i)
        if (c.request({.target = "/echo"}).status == 200) ++ok;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 40);
  EXPECT_GE(srv.accepted(), 1);
  EXPECT_LE(srv.accepted(), 4);  // reused across calls, at most one per concurrent caller
}

TEST(HttpClient, RetriesOnceWhenTheIdleConnectionWasDropped) {
  TestServer srv;
  Client c(url("http", "127.0.0.1", srv.port()));
  EXPECT_EQ(c.request({.target = "/drop-next"}).status, 200u);
  // The server reads this request on the pooled connection and closes without answering.
  auto r = c.request({.method = "POST", .target = "/echo", .body = "again"});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["body"], "again");
  EXPECT_EQ(srv.accepted(), 2);
}

TEST(HttpClient, StreamsChunksAsTheyArrive) {
  TestServer srv;
  Client c(url("http", "127.0.0.1", srv.port()));
  std::vector<std::string> chunks;
  std::vector<std::chrono::steady_clock::time_point> at;
  auto r = c.stream({.target = "/sse?n=4"}, [&](std::string_view s) {
    chunks.emplace_back(s);
    at.push_back(std::chrono::steady_clock::now());
    return true;
  });
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  std::string all;
  for (auto& s : chunks) all += s;
  EXPECT_EQ(all, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n");
  ASSERT_GE(chunks.size(), 2u);  // not held until the end
  EXPECT_GE(at.back() - at.front(), 100ms);
  // Stopping early closes that connection; the next call dials anew.
  int seen = 0;
  c.stream({.target = "/sse?n=10"}, [&](std::string_view) { return ++seen < 1; });
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(c.request({.target = "/echo"}).status, 200u);
  EXPECT_EQ(srv.accepted(), 2);
  // A non-2xx answer comes whole in the body, on_chunk untouched.
  bool called = false;
  auto e = c.stream({.target = "/status/500"}, [&](std::string_view) { return called = true; });
  EXPECT_EQ(e.status, 500u);
  EXPECT_EQ(e.body, "status body");
  EXPECT_FALSE(called);
}

TEST(HttpClient, UploadsKnownAndChunkedLengths) {
  TestServer srv;
  Client c(url("http", "127.0.0.1", srv.port()));
  std::string piece(100'000, 'x');
  int left = 30;
  auto src = [&]() -> std::string_view { return left-- > 0 ? std::string_view(piece) : std::string_view(); };
  auto r = c.upload({.method = "PUT", .target = "/echo", .content_type = "application/octet-stream"},
                    30 * piece.size(), src);
  ASSERT_EQ(r.status, 200u);
  auto j = json::parse(r.body);
  EXPECT_EQ(j["size"], 3'000'000);
  EXPECT_EQ(j["content_type"], "application/octet-stream");
  left = 3;
  r = c.upload({.method = "POST", .target = "/echo"}, Client::chunked_length, src);
  j = json::parse(r.body);
  EXPECT_EQ(j["size"], 300'000);
  EXPECT_EQ(j["transfer_encoding"], "chunked");
  EXPECT_EQ(srv.accepted(), 1);
  left = 1;
  EXPECT_EQ(code_of([&] { c.upload({.method = "POST", .target = "/echo"}, 5, src); }), errc::invalid_argument);
}

TEST(HttpClient, TimeoutsAndUnreachablePeersAreUnavailable) {
  TestServer srv;
  Client c(url("http", "127.0.0.1", srv.port()), {.timeout = 300ms});
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(code_of([&] { c.request({.target = "/slow"}); }), errc::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1200ms);
  EXPECT_EQ(c.request({.target = "/slow", .timeout = 5s}).status, 200u);  // per request
  unsigned short dead;
  {
    TestServer gone;
    dead = gone.port();
  }
  Client d(url("http", "127.0.0.1", dead));
  EXPECT_EQ(code_of([&] { d.request({.target = "/"}); }), errc::unavailable);
}

TEST(HttpClient, RefusesATokenInClearToANonLoopbackHost) {
  EXPECT_EQ(code_of([] { Client c(Url::parse("http://10.1.2.3:8080"), {.authorization = "Bearer t"}); }),
            errc::permission_denied);
  EXPECT_EQ(code_of([] { Client c(Url::parse("http://sb.example"), {.authorization = "Bearer t"}); }),
            errc::permission_denied);
  EXPECT_EQ(code_of([] { Client c(Url::parse("https://sb.example"), {.authorization = "Bearer t"}); }), errc::ok);
  EXPECT_EQ(code_of([] { Client c(Url::parse("http://10.1.2.3"), {.authorization = "Bearer t", .allow_plaintext_token = true}); }),
            errc::ok);
  EXPECT_EQ(code_of([] { Client c(Url::parse("http://10.1.2.3")); }), errc::ok);  // no token: fine
  TestServer srv;
  Client c(url("http", "localhost", srv.port()), {.authorization = "Bearer t"});
  EXPECT_EQ(json::parse(c.request({.target = "/echo"}).body)["authorization"], "Bearer t");
}

TEST(HttpClient, Ipv6) {
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  TestServer srv("::1");
  Client c(url("http", "[::1]", srv.port()), {.authorization = "Bearer t"});  // ::1 is loopback
  auto r = c.request({.target = "/echo"});
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["host"], "[::1]:" + std::to_string(srv.port()));
  EXPECT_EQ(c.request({.target = "/echo"}).status, 200u);
  EXPECT_EQ(srv.accepted(), 1);
}

TEST(HttpClient, TlsVerifiesByNameAndByAddress) {
  auto& p = pki();
  TestServer srv("127.0.0.1", TestServer::Tls{p.server_cert, p.server_key, {}});
  // By IP: the certificate's IP SAN; by name: its DNS SAN and SNI.
  for (auto host : {"127.0.0.1", "localhost"}) {
    Client c(url("https", host, srv.port()), {.authorization = "Bearer t", .ca_file = p.ca});
    for (int i = 0; i < 3; ++i) {
      auto r = c.request({.method = "POST", .target = "/echo", .body = "over tls"});
      ASSERT_EQ(r.status, 200u) << host;
      EXPECT_EQ(json::parse(r.body)["body"], "over tls");
      EXPECT_EQ(json::parse(r.body)["authorization"], "Bearer t");
    }
    std::string all;
    c.stream({.target = "/sse?n=2"}, [&](std::string_view s) { all += s; return true; });
    EXPECT_EQ(all, "data: 0\n\ndata: 1\n\n");
  }
  EXPECT_EQ(srv.accepted(), 2);  // kept alive over TLS too
  // An inline CA (kubeconfig certificate-authority-data) works the same.
  std::ifstream in(p.ca);
  std::string pem((std::istreambuf_iterator<char>(in)), {});
  Client inline_ca(url("https", "127.0.0.1", srv.port()), {.ca_pem = pem});
  EXPECT_EQ(inline_ca.request({.target = "/echo"}).status, 200u);
}

TEST(HttpClient, TlsRefusesAPeerItCannotVerify) {
  auto& p = pki();
  TestServer srv("127.0.0.1", TestServer::Tls{p.server_cert, p.server_key, {}});
  auto fails = [&](const std::string& host, ClientOptions o) {
    Client c(url("https", host, srv.port()), std::move(o));
    try {
      c.request({.target = "/echo"});
    } catch (const sandbox::Error& e) {
      EXPECT_EQ(e.code(), errc::unavailable);
      return std::string(e.what());
    }
    return std::string();
  };
  auto m = fails("127.0.0.1", {.ca_file = p.other_ca});
  EXPECT_NE(m.find("certificate verify failed"), std::string::npos) << m;
  EXPECT_FALSE(fails("127.0.0.1", {}).empty());                                  // system store
  EXPECT_FALSE(fails("127.0.0.1", {.ca_file = p.ca, .server_name = "other.example"}).empty());  // wrong name
  Client insecure(url("https", "127.0.0.1", srv.port()), {.verify = false});     // only when asked
  EXPECT_EQ(insecure.request({.target = "/echo"}).status, 200u);
  // A plain client to a TLS server fails cleanly.
  Client plain(url("http", "127.0.0.1", srv.port()), {.timeout = 2s});
  EXPECT_EQ(code_of([&] { plain.request({.target = "/echo"}); }), errc::unavailable);
}

TEST(HttpClient, MutualTls) {
  auto& p = pki();
  TestServer srv("127.0.0.1", TestServer::Tls{p.server_cert, p.server_key, p.ca});
  Client without(url("https", "127.0.0.1", srv.port()), {.ca_file = p.ca});
  EXPECT_EQ(code_of([&] { without.request({.target = "/echo"}); }), errc::unavailable);
  Client with(url("https", "127.0.0.1", srv.port()),
              {.ca_file = p.ca, .client_cert = p.client_cert, .client_key = p.client_key});
  auto r = with.request({.target = "/echo"});
  ASSERT_EQ(r.status, 200u);
  EXPECT_NE(json::parse(r.body)["peer"].get<std::string>().find("test client"), std::string::npos);
}

TEST(HttpClient, TlsOverIpv6) {
  if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  auto& p = pki();
  TestServer srv("::1", TestServer::Tls{p.server_cert, p.server_key, {}});
  Client c(url("https", "[::1]", srv.port()), {.ca_file = p.ca});
  EXPECT_EQ(c.request({.target = "/echo"}).status, 200u);
}
