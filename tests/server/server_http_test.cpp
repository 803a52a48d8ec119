// Every route, status and error of DESIGN section 4, over real loopback HTTP against a
// Server on an ephemeral port with a Sandbox on a temporary state dir (isolation rlimit).
#include "sandbox/server.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "sandbox/sandbox.hpp"
#include "server/http_client.hpp"
#include "server/router.hpp"

namespace sandbox::server {
namespace {

using test::Client;
using test::multipart;
using test::raw_exchange;
using json = nlohmann::json;
namespace http = test::http;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = std::filesystem::temp_directory_path() /
             ("sandbox-server-test-" + std::to_string(::getpid()));
    sandbox::Options so;
    so.state_dir = state_;
    so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    so.isolation = "rlimit";
    so.limits.upload_bytes = 1 << 20;
    so.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
    sandbox_ = new Sandbox(so);
    Options o;
    o.port = 0;
    o.quiet = true;
    o.max_pipelined = 8;
    server_ = new Server(*sandbox_, o);
    server_->start();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete sandbox_;
    std::error_code ec;
    std::filesystem::remove_all(state_, ec);
  }
  static unsigned short port() { return server_->port(); }
  // A fresh session id per test, so tests do not see each other's state.
  std::string sid() const {
    return std::string("t-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  // Runs code and waits for the result via ?wait=.
  json run(Client& c, const std::string& s, const std::string& lang, const std::string& code) {
    auto r = c.post("/" + s + "/exec/" + lang, json{{"code", code}}.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    if (r.status != 202) return json{};
    auto j = r.json();
    EXPECT_EQ(j["status"], "Running");
    EXPECT_TRUE(j["execution_id"].is_string());
    for (int i = 0; i < 40; ++i) {
      auto res = c.get("/" + s + "/result?wait=1000");
      EXPECT_EQ(res.status, 200);
      auto rj = res.json();
      if (rj["status"] != "Running") return rj;
    }
    ADD_FAILURE() << "execution did not end";
    return json{};
  }

  static inline std::filesystem::path state_;
  static inline Sandbox* sandbox_ = nullptr;
  static inline Server* server_ = nullptr;
};

void expect_error(const test::Response& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j["error"]["code"], code) << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string());
}

// ---- operations ------------------------------------------------------------------------

TEST_F(ServerTest, HealthzOpenApiAndMetrics) {
  Client c(port());
  auto h = c.get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json()["status"], "ok");
  EXPECT_EQ(h.json()["isolation"], "rlimit");
  EXPECT_FALSE(h.header("x-request-id").empty());

  auto o = c.get("/openapi.json");
  EXPECT_EQ(o.status, 200);
  EXPECT_TRUE(o.json()["paths"].contains("/{sid}/exec/python"));

  auto m = c.get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("sandbox_info{isolation=\"rlimit\"} 1"), std::string::npos);
  EXPECT_NE(m.body.find("sandbox_sessions{state=\"Ready\"}"), std::string::npos);
  EXPECT_NE(m.body.find("sandbox_executions_total{status=\"Finished\"}"), std::string::npos);
  EXPECT_NE(m.body.find("sandbox_execution_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
  EXPECT_NE(m.body.find("sandbox_upload_bytes_total"), std::string::npos);
  EXPECT_NE(m.body.find("sandbox_http_requests_total{route=\"GET /healthz\",code=\"2xx\"}"),
            std::string::npos);
}

// ---- routing and hostile input ------------------------------------------------------------

TEST_F(ServerTest, UnknownRoutesMethodsAndTraversal) {
  Client c(port());
  expect_error(c.get("/nope/nothing/here"), 404, "not_found");
  auto r = c.get("/" + sid() + "/exec/python");
  expect_error(r, 405, "invalid_argument");
  EXPECT_EQ(r.header("allow"), "POST");
  for (const char* t : {"/s/files/download/%2e%2e", "/s/files/download/%2E%2E/etc/passwd",
                        "/s/files/download/a%2fb", "/%2e%2e/result", "/s/files/download/..%2f..%2fx",
                        "/s/files/delete/%2e%2e"}) {
    Client c2(port());
    expect_error(c2.get(t), 400, "invalid_argument");
  }
  expect_error(c.get("/bad%20id!/result"), 400, "invalid_argument");
}

TEST_F(ServerTest, BadJsonAndWrongTypesAre400) {
  Client c(port());
  std::string p = "/" + sid() + "/exec/python";
  expect_error(c.post(p, "{not json"), 400, "invalid_argument");
  expect_error(c.post(p, "[1,2]"), 400, "invalid_argument");
  expect_error(c.post(p, "{}"), 400, "invalid_argument");
  expect_error(c.post(p, R"({"code": 1})"), 400, "invalid_argument");
  expect_error(c.post(p, R"({"code": "1", "timeout": "10"})"), 400, "invalid_argument");
  expect_error(c.post(p, R"({"code": "1", "timeout": -1})"), 400, "invalid_argument");
  expect_error(c.post(p, R"({"code": "1", "fresh": "yes"})"), 400, "invalid_argument");
  expect_error(c.post(p, R"({"code": "1", "stdin": 5})"), 400, "invalid_argument");
  expect_error(c.post(p, R"({"code": "1", "timeout": 100000})"), 403, "permission_denied");
  expect_error(c.get("/" + sid() + "/result?offset=-3"), 400, "invalid_argument");
  expect_error(c.post("/sessions", R"({"id": 5})"), 400, "invalid_argument");
  expect_error(c.post("/sessions", R"({"id": "a/b"})"), 400, "invalid_argument");
  expect_error(c.post("/sessions", R"({"language": "cobol"})"), 400, "invalid_argument");
  expect_error(c.post("/sessions", R"({"limits": {"bogus": 1}})"), 400, "invalid_argument");
  expect_error(c.post("/sessions", R"({"limits": {"memory_bytes": "lots"}})"), 400, "invalid_argument");
  expect_error(c.post("/sessions", R"({"limits": {"memory_bytes": 1099511627776}})"), 403,
               "permission_denied");
  // The connection survives every one of these.
  EXPECT_EQ(c.get("/healthz").status, 200);
}

// Deep nesting is refused before a tree is built, on every route that takes JSON, and the
// server survives it (a 150,000-deep "limits.timeout" used to overflow the stack).
TEST_F(ServerTest, DeepJsonOnEveryRouteIs400) {
  auto deep = [](std::size_t n) { return std::string(n, '[') + "1" + std::string(n, ']'); };
  {
    Client c(port());
    auto r = c.post("/sessions", R"({"limits":{"timeout": )" + deep(150'000) + "}}");
    EXPECT_TRUE(r.status == 400 || r.status == 413) << r.status << ' ' << r.body.substr(0, 200);
  }
  std::size_t body_routes = 0;
  for (const Route& route : routes()) {
    if (route.body != BodyKind::exec && route.body != BodyKind::session) continue;
    ++body_routes;
    std::string target(route.pattern);
    if (auto at = target.find("{sid}"); at != std::string::npos) target.replace(at, 5, sid());
    for (const std::string& body :
         {R"({"code": "1", "timeout": )" + deep(30'000) + "}", deep(30'000),
          R"({"limits": {"timeout": )" + deep(33) + "}}", std::string(40, '{')}) {
      Client c(port());
      auto r = c.post(target, body);
      expect_error(r, 400, "invalid_argument");
      EXPECT_NE(r.body.find("deeper than 32"), std::string::npos) << target << ": " << r.body;
    }
  }
  EXPECT_EQ(body_routes, 4u);  // POST /sessions and the three exec routes
  Client c(port());
  EXPECT_EQ(c.get("/healthz").status, 200);
  // Brackets inside strings are text, not nesting.
  auto ok = c.post("/" + sid() + "/exec/shell", json{{"code", "echo '" + std::string(100, '[') + "'"}}.dump());
  EXPECT_EQ(ok.status, 202) << ok.body;
}

TEST_F(ServerTest, UnknownFieldsAre400NamingThem) {
  Client c(port());
  std::string p = "/" + sid() + "/exec/python";
  auto r = c.post(p, R"({"code": "1", "tiemout": 5})");
  expect_error(r, 400, "invalid_argument");
  EXPECT_EQ(r.json()["error"]["message"], "unknown field 'tiemout' in the request");
  r = c.post("/sessions", R"({"limits": {"tiemout": 5}})");
  expect_error(r, 400, "invalid_argument");
  EXPECT_EQ(r.json()["error"]["message"], "unknown field 'tiemout' in limits");
  r = c.post("/sessions", R"({"idd": "x"})");
  expect_error(r, 400, "invalid_argument");
  EXPECT_EQ(r.json()["error"]["message"], "unknown field 'idd' in the request");
  // Every field the seed's clients send still passes (null counts as absent).
  r = c.post(p, R"({"code": "1", "stdin": "", "timeout": 5, "fresh": false})");
  EXPECT_EQ(r.status, 202) << r.body;
  r = c.post("/sessions", json{{"id", sid() + "-s"}, {"language", "python"},
                               {"limits", {{"timeout", 5}, {"memory_bytes", nullptr}}}}.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  c.del("/sessions/" + sid() + "-s");
}

TEST_F(ServerTest, ScalarFieldsRefuseContainers) {
  Client c(port());
  std::string p = "/" + sid() + "/exec/python";
  for (const char* body : {R"({"code": ["1"]})", R"({"code": "1", "timeout": [5]})",
                           R"({"code": "1", "fresh": {"a": 1}})", R"({"code": "1", "stdin": ["x"]})"})
    expect_error(c.post(p, body), 400, "invalid_argument");
  for (const char* body : {R"({"id": {"a": 1}})", R"({"language": ["python"]})", R"({"limits": 5})",
                           R"({"limits": [1]})", R"({"limits": {"timeout": {"s": 1}}})",
                           R"({"limits": {"cpus": "2"}})", R"({"limits": {"memory_bytes": [1]}})"})
    expect_error(c.post("/sessions", body), 400, "invalid_argument");
  EXPECT_EQ(c.get("/healthz").status, 200);
}

// Framing this server does not implement is refused before any body is read (RFC 9112).
TEST_F(ServerTest, TransferEncodingOtherThanChunkedIsRefused) {
  std::string head = "POST /" + sid() + "/exec/shell HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
  std::string body = R"({"code":"echo 1"})";
  auto out = raw_exchange(port(), head + "Transfer-Encoding: xchunked\r\nContent-Length: " +
                                      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out.substr(0, 200);
  out = raw_exchange(port(), head + "Transfer-Encoding: gzip, chunked\r\n\r\n11\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 501", 0), 0u) << out.substr(0, 200);
  out = raw_exchange(port(), head + "Transfer-Encoding: xchunked\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 501", 0), 0u) << out.substr(0, 200);
  out = raw_exchange(port(), head + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 501", 0), 0u) << out.substr(0, 200);
  // Plain chunked still works.
  out = raw_exchange(port(), head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n11\r\n" +
                                 body + "\r\n0\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 202", 0), 0u) << out.substr(0, 200);
}

TEST_F(ServerTest, HeadWhereverGetIsAllowed) {
  Client c(port());
  auto get = c.get("/healthz");
  auto out = raw_exchange(port(), "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Length: " + std::to_string(get.body.size()) + "\r\n"), std::string::npos) << out;
  auto end = out.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(end + 4, out.size()) << "a HEAD answer has no body: " << out;

  std::string b = "hb";
  auto up = c.post("/" + sid() + "/files/upload", multipart(b, "file", "h.txt", "twelve bytes"),
                   {{"Content-Type", "multipart/form-data; boundary=" + b}});
  ASSERT_EQ(up.status, 200) << up.body;
  out = raw_exchange(port(), "HEAD /" + sid() + "/files/download/h.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Length: 12\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("twelve"), std::string::npos) << out;
  // On one keep-alive connection a HEAD leaves the next request intact.
  auto h = c.request(http::verb::head, "/" + sid() + "/files/list");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(c.get("/healthz").status, 200);
  auto r = c.request(http::verb::head, "/" + sid() + "/exec/python");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "POST");
  r = c.post("/" + sid() + "/result");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, HEAD");
}

TEST_F(ServerTest, HeaderLimitIs431) {
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') +
                    "\r\n\r\n";
  auto out = raw_exchange(port(), req);
  EXPECT_EQ(out.rfind("HTTP/1.1 431", 0), 0u) << out.substr(0, 200);
}

TEST_F(ServerTest, BodyLimitIs413FromContentLengthBeforeTheBody) {
  // Only the header is sent: the answer must come without waiting for 100 MB.
  std::string req = "POST /" + sid() + "/exec/python HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n";
  auto t0 = std::chrono::steady_clock::now();
  auto out = raw_exchange(port(), req, std::chrono::seconds(5));
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out.substr(0, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
}

TEST_F(ServerTest, MalformedRequestLineIs400) {
  auto out = raw_exchange(port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
}

TEST_F(ServerTest, PipelinedRequestsAreCapped) {
  std::string one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string many;
  for (int i = 0; i < 50; ++i) many += one;
  auto out = raw_exchange(port(), many);
  std::size_t ok = 0, pos = 0;
  while ((pos = out.find("HTTP/1.1 200", pos)) != std::string::npos) ++ok, ++pos;
  EXPECT_GE(ok, 8u);
  EXPECT_LT(ok, 50u);
  EXPECT_NE(out.find("HTTP/1.1 429"), std::string::npos);
}

TEST_F(ServerTest, ThousandsOfIdleConnections) {
  test::asio::io_context ioc;
  std::vector<test::tcp::socket> idle;
  for (int i = 0; i < 2000; ++i) {
    idle.emplace_back(ioc);
    boost::system::error_code ec;
    idle.back().connect({test::asio::ip::make_address("127.0.0.1"), port()}, ec);
    if (ec) {
      idle.pop_back();
      break;  // the test process ran out of descriptors first
    }
  }
  EXPECT_GE(idle.size(), 500u);
  Client c(port());
  EXPECT_EQ(c.get("/healthz").status, 200);
}

// ---- sessions -------------------------------------------------------------------------------

TEST_F(ServerTest, SessionLifecycle) {
  Client c(port());
  auto r = c.post("/sessions", json{{"id", sid()}, {"limits", {{"timeout", 5}}}}.dump());
  ASSERT_EQ(r.status, 201) << r.body;
  auto j = r.json();
  EXPECT_EQ(j["id"], sid());
  EXPECT_TRUE(j["status"] == "Pending" || j["status"] == "Ready");
  EXPECT_EQ(j["placement"], "local");
  EXPECT_EQ(j["limits"]["timeout"], 5.0);

  expect_error(c.post("/sessions", json{{"id", sid()}}.dump()), 409, "already_exists");
  auto g = c.get("/sessions/" + sid());
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.json()["id"], sid());
  auto l = c.get("/sessions");
  EXPECT_EQ(l.status, 200);
  bool listed = false;
  auto lj = l.json();
  for (auto& s : lj["sessions"]) listed |= s["id"] == sid();
  EXPECT_TRUE(listed) << l.body;

  auto anon = c.post("/sessions");  // no body: every field is optional
  EXPECT_EQ(anon.status, 201) << anon.body;
  EXPECT_EQ(c.del("/sessions/" + anon.json()["id"].get<std::string>()).status, 200);

  auto d = c.del("/sessions/" + sid());
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.json()["status"], "Closed");
  expect_error(c.get("/sessions/" + sid()), 404, "not_found");
  expect_error(c.del("/sessions/" + sid()), 404, "not_found");
}

// ---- files ---------------------------------------------------------------------------------

TEST_F(ServerTest, FilesUploadListDownloadDelete) {
  Client c(port());
  std::string base = "/" + sid() + "/files/";
  std::vector<std::pair<std::string, std::string>> mp = {
      {"Content-Type", "multipart/form-data; boundary=BOUNDARY"}};
  std::string data = "x,y\n1,2\n";
  data += std::string("\0\r\n--BOUND", 10);  // binary, and a near-boundary
  auto up = c.post(base + "upload", multipart("BOUNDARY", "file", "a.csv", data), mp);
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(up.json()["name"], "a.csv");
  EXPECT_EQ(up.json()["size"], data.size());

  expect_error(c.post(base + "upload", multipart("BOUNDARY", "file", "a.csv", "new"), mp), 409,
               "already_exists");
  auto over = c.post(base + "upload?overwrite=true", multipart("BOUNDARY", "file", "a.csv", data), mp);
  EXPECT_EQ(over.status, 200) << over.body;

  auto list = c.get(base + "list");
  ASSERT_EQ(list.status, 200);
  bool found = false;
  auto files = list.json();
  for (auto& f : files["files"]) {
    if (f["name"] != "a.csv") continue;
    found = true;
    EXPECT_EQ(f["size"], data.size());
    EXPECT_EQ(f["type"], "file");
    EXPECT_TRUE(f["modified"].is_number());
  }
  EXPECT_TRUE(found) << list.body;

  auto dl = c.get(base + "download/a.csv");
  EXPECT_EQ(dl.status, 200);
  EXPECT_EQ(dl.body, data);
  EXPECT_EQ(dl.header("content-type"), "application/octet-stream");
  expect_error(c.get(base + "download/missing.txt"), 404, "not_found");

  EXPECT_EQ(c.del(base + "delete/a.csv").status, 200);
  expect_error(c.del(base + "delete/a.csv"), 404, "not_found");
  c.post(base + "upload", multipart("BOUNDARY", "file", "b.txt", "b"), mp);
  EXPECT_EQ(c.post(base + "delete/b.txt").status, 200);
  expect_error(c.post(base + "delete/b.txt"), 404, "not_found");
}

TEST_F(ServerTest, UploadErrors) {
  Client c(port());
  std::string up = "/" + sid() + "/files/upload";
  std::vector<std::pair<std::string, std::string>> mp = {
      {"Content-Type", "multipart/form-data; boundary=B"}};
  expect_error(c.post(up, "plain"), 400, "invalid_argument");
  expect_error(c.post(up, multipart("B", "other", "x.txt", "x"), mp), 400, "invalid_argument");
  expect_error(c.post(up, "--B\r\nContent-Disposition: form-data; name=file; filename=x\r\n\r\nabc", mp),
               400, "invalid_argument");
  {
    Client c2(port());
    expect_error(c2.post(up, multipart("B", "file", "../x.txt", "x"), mp), 400, "invalid_argument");
  }
  // Over the session's upload limit (1 MiB here), decided from Content-Length up front.
  std::string req = "POST " + up + " HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                    "boundary=B\r\nContent-Length: 50000000\r\n\r\n";
  auto out = raw_exchange(port(), req);
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out.substr(0, 200);
  // Chunked, no Content-Length: stopped while streaming.
  test::RawConnection c3(port());  // chunked, answered early: a raw write
  std::string big = multipart("B", "file", "big.bin", std::string(2 << 20, 'z'));
  http::request<http::string_body> chunked{http::verb::post, up, 11};
  chunked.set(http::field::host, "x");
  chunked.set(http::field::content_type, "multipart/form-data; boundary=B");
  chunked.chunked(true);
  chunked.body() = big;
  boost::system::error_code ec;
  http::write(c3.socket(), chunked, ec);
  test::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(c3.socket(), buf, res, ec);
  EXPECT_EQ(res.result_int(), 413) << res.body();
  Client c4(port());
  auto list = c4.get("/" + sid() + "/files/list").json();
  for (auto& f : list["files"]) EXPECT_NE(f["name"], "big.bin");
}

// ---- executions -------------------------------------------------------------------------------

TEST_F(ServerTest, ExecPythonNodeShell) {
  Client c(port());
  auto py = run(c, sid(), "python", "1+1");
  EXPECT_EQ(py["status"], "Finished") << py.dump();
  EXPECT_EQ(py["result"], "2");
  auto sh = run(c, sid(), "shell", "echo hi; echo err >&2; exit 3");
  EXPECT_EQ(sh["status"], "Failed") << sh.dump();
  EXPECT_EQ(sh["stdout"], "hi\n");
  EXPECT_EQ(sh["stderr"], "err\n");
  EXPECT_EQ(sh["exit_code"], 3);
  auto js = run(c, sid(), "nodejs", "console.log('n'); 6*7");
  EXPECT_EQ(js["status"], "Finished") << js.dump();
  EXPECT_EQ(js["stdout"], "n\n");
  EXPECT_EQ(js["result"], "42");
}

TEST_F(ServerTest, ResultPagingLongPollAndExecutionId) {
  Client c(port());
  auto r = run(c, sid(), "shell", "printf 'abcdefghij'");
  ASSERT_EQ(r["status"], "Finished") << r.dump();
  auto page = c.get("/" + sid() + "/result?offset=2&limit=3").json();
  EXPECT_EQ(page["stdout"], "cde") << page.dump();

  auto started = c.post("/" + sid() + "/exec/shell", json{{"code", "sleep 0.5; echo late"}}.dump());
  ASSERT_EQ(started.status, 202);
  std::string id = started.json()["execution_id"];
  auto now = c.get("/" + sid() + "/result").json();
  EXPECT_EQ(now["status"], "Running");
  auto t0 = std::chrono::steady_clock::now();
  auto waited = c.get("/" + sid() + "/result?wait=10000").json();
  EXPECT_EQ(waited["status"], "Finished");
  EXPECT_EQ(waited["stdout"], "late\n");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  auto by_id = c.get("/" + sid() + "/result?execution_id=" + id).json();
  EXPECT_EQ(by_id["execution_id"], id);
  expect_error(c.get("/" + sid() + "/result?execution_id=nope"), 404, "not_found");
}

TEST_F(ServerTest, ResultBeforeAnyExecutionIs404) {
  Client c(port());
  expect_error(c.get("/" + sid() + "/result"), 404, "not_found");
}

TEST_F(ServerTest, StreamSendsOutputThenResult) {
  Client c(port());
  auto started = c.post("/" + sid() + "/exec/shell",
                        json{{"code", "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"}}.dump());
  ASSERT_EQ(started.status, 202);
  std::string out = raw_exchange(port(), "GET /" + sid() + "/stream HTTP/1.1\r\nHost: x\r\n\r\n",
                                 std::chrono::seconds(10));
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("text/event-stream"), std::string::npos);
  EXPECT_NE(out.find("event: stdout\ndata: {\"offset\":0,\"text\":\"one\\n\"}"), std::string::npos) << out;
  EXPECT_NE(out.find("event: stderr"), std::string::npos) << out;
  EXPECT_NE(out.find("three"), std::string::npos) << out;
  auto result_at = out.find("event: result");
  ASSERT_NE(result_at, std::string::npos) << out;
  EXPECT_NE(out.find("\"status\":\"Finished\"", result_at), std::string::npos) << out;
}

TEST_F(ServerTest, ProcessesAndKill) {
  Client c(port());
  auto started = c.post("/" + sid() + "/exec/shell", json{{"code", "sleep 30"}}.dump());
  ASSERT_EQ(started.status, 202);
  int pid = 0;
  for (int i = 0; i < 50 && !pid; ++i) {
    auto ps = c.get("/" + sid() + "/processes");
    ASSERT_EQ(ps.status, 200) << ps.body;
    auto pj = ps.json();
    for (auto& p : pj["processes"]) {
      EXPECT_TRUE(p.contains("ppid") && p.contains("cmdline") && p.contains("state") &&
                  p.contains("rss") && p.contains("cpu_time_ms"));
      if (p["name"] == "sleep") pid = p["pid"];
    }
    if (!pid) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(pid, 0) << c.get("/" + sid() + "/processes").body;
  expect_error(c.post("/" + sid() + "/process/kill/1"), 404, "not_found");  // not this session's
  expect_error(c.post("/" + sid() + "/process/kill/abc"), 400, "invalid_argument");
  auto k = c.post("/" + sid() + "/process/kill/" + std::to_string(pid));
  EXPECT_EQ(k.status, 200) << k.body;
  auto r = c.get("/" + sid() + "/result?wait=5000").json();
  EXPECT_NE(r["status"], "Running");
}

// ---- tenancy, auth and configuration ----------------------------------------------------------

TEST(ServerConfig, RefusesNonLoopbackWithoutTokens) {
  Sandbox sb({.isolation = "rlimit", .runtime_dir = SANDBOX_TEST_RUNTIME_DIR});
  EXPECT_THROW(Server(sb, {.host = "0.0.0.0", .port = 0, .quiet = true}), Error);
  EXPECT_NO_THROW(Server(sb, {.host = "::1", .port = 0, .quiet = true}));
  EXPECT_NO_THROW(Server(sb, {.host = "localhost", .port = 0, .quiet = true}));
}

TEST(ServerConfig, TokensAndTenancy) {
  auto tokens = std::filesystem::temp_directory_path() / ("sandbox-tokens-" + std::to_string(::getpid()));
  std::ofstream(tokens) << "alice:aaa\nbob:bbb\n";
  Sandbox sb({.isolation = "rlimit", .runtime_dir = SANDBOX_TEST_RUNTIME_DIR});
  Server srv(sb, {.host = "0.0.0.0", .port = 0, .token_file = tokens, .quiet = true});
  srv.start();
  Client c(srv.port());
  expect_error(c.get("/sessions"), 401, "unauthenticated");
  auto r = c.get("/sessions", {{"Authorization", "Bearer wrong"}});
  expect_error(r, 401, "unauthenticated");
  EXPECT_EQ(r.header("www-authenticate"), "Bearer");
  EXPECT_EQ(c.get("/healthz").status, 200);  // probes need no token
  std::vector<std::pair<std::string, std::string>> alice = {{"Authorization", "Bearer aaa"}};
  std::vector<std::pair<std::string, std::string>> bob = {{"Authorization", "Bearer bbb"}};
  ASSERT_EQ(c.post("/sessions", R"({"id":"mine"})", alice).status, 201);
  expect_error(c.get("/sessions/mine", bob), 404, "not_found");
  expect_error(c.del("/sessions/mine", bob), 404, "not_found");
  EXPECT_EQ(c.get("/sessions", bob).json()["sessions"].size(), 0u);
  // Ids are per tenant: bob's seed route makes bob's own "mine", as for a free id.
  auto bob_mp = bob;
  bob_mp.emplace_back("Content-Type", "multipart/form-data; boundary=B");
  ASSERT_EQ(c.post("/mine/files/upload", multipart("B", "file", "b.txt", "bob's"), bob_mp).status, 200);
  EXPECT_EQ(c.get("/sessions", bob).json()["sessions"].size(), 1u);
  EXPECT_EQ(c.get("/sessions", alice).json()["sessions"].size(), 1u);
  auto files = c.get("/mine/files/list", alice);
  EXPECT_EQ(files.status, 200);
  EXPECT_EQ(files.json()["files"].size(), 0u) << files.body;
  srv.stop();
  std::filesystem::remove(tokens);
}

TEST(ServerConfig, AutoCreateOff) {
  Sandbox sb({.isolation = "rlimit", .runtime_dir = SANDBOX_TEST_RUNTIME_DIR});
  Server srv(sb, {.port = 0, .auto_create = false, .quiet = true});
  srv.start();
  Client c(srv.port());
  expect_error(c.post("/nosuch/exec/python", R"({"code":"1"})"), 404, "not_found");
  expect_error(c.get("/nosuch/files/list"), 404, "not_found");
  EXPECT_EQ(c.post("/sessions", R"({"id":"made"})").status, 201);
  EXPECT_EQ(c.get("/made/files/list").status, 200);
}

TEST(ServerConfig, RequestLogHasOneJsonLinePerRequest) {
  std::mutex mu;
  std::vector<std::string> lines;
  Sandbox sb({.isolation = "rlimit", .runtime_dir = SANDBOX_TEST_RUNTIME_DIR});
  Options o;
  o.port = 0;
  o.log = [&](std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  };
  Server srv(sb, o);
  srv.start();
  Client c(srv.port());
  auto h = c.get("/healthz");
  c.get("/missing");
  srv.stop();
  ASSERT_EQ(lines.size(), 2u);
  auto j = json::parse(lines[0]);
  EXPECT_EQ(j["path"], "/healthz");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["request_id"], h.header("x-request-id"));
  EXPECT_EQ(json::parse(lines[1])["status"], 404);
}

TEST(ServerConfig, StopDrainsALongPoll) {
  Sandbox sb({.isolation = "rlimit", .runtime_dir = SANDBOX_TEST_RUNTIME_DIR});
  Server srv(sb, {.port = 0, .quiet = true});
  srv.start();
  Client c(srv.port());
  ASSERT_EQ(c.post("/d/exec/shell", R"({"code":"sleep 20"})").status, 202);
  auto poll = std::async(std::launch::async, [&] { return c.get("/d/result?wait=30000"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  srv.stop();
  auto r = poll.get();
  // Answered, not dropped, and not as a 200 Running a client would take for its deadline:
  // the execution goes on (docs/durability.md), the next server has its result.
  expect_error(r, 503, "unavailable");
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("poll GET /{sid}/result again"),
            std::string::npos) << r.body;
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(ServerConfig, StopEndsAStreamWithAnErrorEvent) {
  Sandbox sb({.isolation = "rlimit", .runtime_dir = SANDBOX_TEST_RUNTIME_DIR});
  Server srv(sb, {.port = 0, .quiet = true});
  srv.start();
  Client c(srv.port());
  ASSERT_EQ(c.post("/e/exec/shell", R"({"code":"echo started; sleep 20"})").status, 202);
  auto port = srv.port();
  auto events = std::async(std::launch::async, [port] {
    return raw_exchange(port, "GET /e/stream HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::seconds(15));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  srv.stop();
  std::string out = events.get();
  EXPECT_NE(out.find("event: stdout"), std::string::npos) << out;
  auto err = out.find("event: error");
  ASSERT_NE(err, std::string::npos) << out;
  EXPECT_NE(out.find(R"("code":"unavailable")", err), std::string::npos) << out;
  EXPECT_NE(out.find("server restarting", err), std::string::npos) << out;
  EXPECT_EQ(out.find("event: result"), std::string::npos) << out;
}

}  // namespace
}  // namespace sandbox::server
