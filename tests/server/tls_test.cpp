// `serve --tls-cert/--tls-key`: the server over HTTPS (Beast ssl_stream on the listening
// side) serves exec + result, server-sent events and uploads to net::Client verifying
// against the test's CA, and a plain-HTTP client to it fails cleanly.
#include "sandbox/server.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <thread>

#include <unistd.h>

#include "net/http_client.hpp"
#include "net/test_pki.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class TlsServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("sandbox-tls-test-" + std::to_string(::getpid()));
    pki_ = new test::Pki(test::Pki::make(dir_ / "pki"));
    sandbox::Options so;
    so.state_dir = dir_ / "state";
    so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    so.isolation = "rlimit";
    so.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
    sandbox_ = new Sandbox(so);
    Options o;
    o.port = 0;
    o.quiet = true;
    o.tls_cert = pki_->server_cert;
    o.tls_key = pki_->server_key;
    server_ = new Server(*sandbox_, o);
    server_->start();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete sandbox_;
    delete pki_;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  net::Client client() { return net::Client(net::Url::parse(server_->url()), {.ca_file = pki_->ca}); }

  static inline std::filesystem::path dir_;
  static inline test::Pki* pki_ = nullptr;
  static inline Sandbox* sandbox_ = nullptr;
  static inline Server* server_ = nullptr;
};

TEST_F(TlsServerTest, UrlSaysHttps) { EXPECT_EQ(server_->url().rfind("https://127.0.0.1:", 0), 0u) << server_->url(); }

TEST_F(TlsServerTest, ExecAndResult) {
  auto c = client();
  auto r = c.request({.method = "POST", .target = "/tls-a/exec/shell", .body = R"J({"code": "echo $((1+1))"})J"});
  ASSERT_EQ(r.status, 202u) << r.body;
  r = c.request({.target = "/tls-a/result?wait=10000"});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(json::parse(r.body)["stdout"], "2\n");
}

TEST_F(TlsServerTest, ServerSentEventsArriveOneByOne) {
  auto c = client();
  auto r = c.request({.method = "POST", .target = "/tls-b/exec/shell",
                      .body = R"({"code": "for i in 1 2 3; do echo $i; sleep 0.2; done"})"});
  ASSERT_EQ(r.status, 202u) << r.body;
  std::string all;
  int chunks = 0;
  auto s = c.stream({.target = "/tls-b/stream", .timeout = 15s}, [&](std::string_view chunk) {
    all += chunk;
    ++chunks;
    return true;
  });
  EXPECT_EQ(s.status, 200u) << s.body;
  EXPECT_EQ(s.header("content-type").rfind("text/event-stream", 0), 0u);
  EXPECT_NE(all.find("data:"), std::string::npos) << all;
  EXPECT_NE(all.find("3"), std::string::npos) << all;
  EXPECT_GT(chunks, 1) << "events came as they happened, not at the end";
}

TEST_F(TlsServerTest, UploadAndDownload) {
  auto c = client();
  std::string payload(300'000, 'u');
  std::string mp = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"up.bin\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n" + payload + "\r\n--B--\r\n";
  std::size_t off = 0;
  auto r = c.upload({.method = "POST", .target = "/tls-c/files/upload", .content_type = "multipart/form-data; boundary=B"},
                    net::Client::chunked_length, [&]() -> std::string_view {
                      auto n = std::min<std::size_t>(65536, mp.size() - off);
                      std::string_view piece(mp.data() + off, n);
                      off += n;
                      return piece;
                    });
  EXPECT_LT(r.status, 300u) << r.body;
  auto d = c.request({.target = "/tls-c/files/download/up.bin"});
  EXPECT_EQ(d.status, 200u);
  EXPECT_EQ(d.body, payload);
}

TEST_F(TlsServerTest, PlainHttpAndUnverifiedClientsFailCleanly) {
  auto port = std::to_string(server_->port());
  net::Client plain(net::Url::parse("http://127.0.0.1:" + port), {.timeout = 3s});
  auto t0 = std::chrono::steady_clock::now();
  try {
    plain.request({.target = "/healthz"});
    ADD_FAILURE() << "plain HTTP to a TLS server answered";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::unavailable) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "dropped at once, not timed out";
  net::Client unverified(net::Url::parse(server_->url()), {.ca_file = pki_->other_ca});
  EXPECT_THROW(unverified.request({.target = "/healthz"}), Error);
  // The server is still fine.
  EXPECT_EQ(client().request({.target = "/healthz"}).status, 200u);
}

TEST(TlsServerOptions, NeedBothCertificateAndKey) {
  sandbox::Options so;
  so.state_dir = std::filesystem::temp_directory_path() / ("sandbox-tls-opt-" + std::to_string(::getpid()));
  so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
  so.isolation = "rlimit";
  so.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
  Sandbox sb(so);
  Options o;
  o.port = 0;
  o.quiet = true;
  o.tls_cert = "/nonexistent/cert.pem";
  try {
    Server s(sb, o);
    ADD_FAILURE() << "a certificate without a key was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
  o.tls_key = "/nonexistent/key.pem";
  EXPECT_THROW(Server(sb, o), Error);
  std::error_code ec;
  std::filesystem::remove_all(so.state_dir, ec);
}

}  // namespace
}  // namespace sandbox::server
