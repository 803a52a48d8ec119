// The gateway's pods: a session placed on the (fake) cluster is a real `sandboxctl serve`
// pod that runs code; any gateway finds it by its name; removing it kills the pod.
#include "placement/gateway.hpp"

#include "placement/forward.hpp"

#include "net/http_client.hpp"
#include "net/stream.hpp"
#include "net/test_pki.hpp"

#include "placement/fake_kube_fixture.hpp"
#include "placement/kube_client.hpp"
#include "placement/pod_spec.hpp"
#include "store/store.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <fstream>
#include <thread>

namespace sandbox::placement {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::FakeKube;

const std::string kSandboxctl = std::string(SANDBOX_TEST_BINARY_DIR) + "/cli/sandboxctl";

// A minimal gateway front: every request on every connection is forward()ed to `upstream`.
class Relay {
 public:
  explicit Relay(std::string upstream) : upstream_(std::move(upstream)) {
    acceptor_.open(boost::asio::ip::tcp::v4());
    acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    boost::asio::co_spawn(ioc_, accept(), boost::asio::detached);
    thread_ = std::jthread([this] { ioc_.run(); });
  }
  ~Relay() {
    ioc_.stop();
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", acceptor_.local_endpoint().port()); }

 private:
  boost::asio::awaitable<void> accept() {
    while (true) {
      auto sock = co_await acceptor_.async_accept(boost::asio::use_awaitable);
      boost::asio::co_spawn(ioc_, serve(std::move(sock)), boost::asio::detached);
    }
  }
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket sock) {
    namespace http = boost::beast::http;
    net::Stream stream(boost::beast::tcp_stream(std::move(sock)));
    boost::beast::flat_buffer buf;
    try {
      while (true) {
        http::request_parser<http::buffer_body> parser;
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: 1.74 takes "len > none" as true
        co_await http::async_read_header(stream, buf, parser, boost::asio::use_awaitable);
        auto r = co_await forward(stream, buf, parser, upstream_, "", std::chrono::seconds(30));
        if (!r.keep_alive) break;
      }
    } catch (const std::exception& e) {
      if (std::getenv("RELAY_DEBUG")) std::fprintf(stderr, "relay: %s\n", e.what());
    }
  }
  std::string upstream_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_{ioc_};
  std::jthread thread_;
};

HttpReply upload(const std::string& base, const std::string& target, const std::string& body,
                 const std::string& boundary) {
  // http_call sends JSON; a multipart upload needs its own content type.
  net::Client c(net::Url::parse(base));
  auto r = c.request({.method = "POST", .target = target, .body = body,
                      .content_type = "multipart/form-data; boundary=" + boundary});
  return {r.status, std::move(r.body)};
}

double p50_one_plus_one(const std::string& base, const std::string& sid, int n) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = http_call(base, "POST", "/" + sid + "/exec/shell", R"J({"code": "echo $((1+1))"})J", "", std::chrono::seconds(10));
    EXPECT_EQ(r.status, 202u) << r.body;
    r = http_call(base, "GET", "/" + sid + "/result?wait=10000", "", "", std::chrono::seconds(15));
    EXPECT_EQ(nlohmann::json::parse(r.body)["stdout"], "2\n") << r.body;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A port nobody listens on now at `address` (pods at ::1 share the one address).
unsigned short free_port(const std::string& address) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address(address), 0});
  return a.local_endpoint().port();
}

class GatewayTestBase : public ::testing::Test {
 protected:
  GatewayTestBase(std::string prefix, std::uint16_t port) : fk{std::move(prefix)}, pod_port(port) {}
  void SetUp() override {
    if (!fk.ok()) GTEST_SKIP() << "fake_kube.py did not start: see " << fk.log();
    if (access(kSandboxctl.c_str(), X_OK) != 0) GTEST_SKIP() << "sandboxctl is not built";
    dir = fk.info()["dir"].get<std::string>();
    // The operator's template, with the binary from this build tree.
    json tmpl = load_pod_template("");
    auto& c = tmpl["spec"]["containers"][0];
    c["command"] = {kSandboxctl, "serve", "--listen", fmt::format("$(POD_IP):{}", pod_port), "--quiet",
                    "--isolation", "rlimit", "--close-sessions-on-exit", "--state-dir", dir + "/pod-$(POD_NAME)"};
    c["ports"][0]["containerPort"] = pod_port;
    c["readinessProbe"]["httpGet"]["port"] = pod_port;
    opts.placement.pod_port = pod_port;
    c["env"].push_back({{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}});
    std::ofstream(dir + "/template.json") << tmpl.dump();
    opts.placement.mode = Mode::kubernetes;
    opts.placement.kubeconfig = fk.kubeconfig();
    opts.placement.pod_template = dir + "/template.json";
    store = store::Store::open(dir + "/gw");
    opts.store = store.get();
    opts.placement.ready_timeout = 30s;
  }

  Location wait_ready(Gateway& gw, const std::string& id) {
    auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline) {
      auto loc = gw.find(id);
      if (loc && loc->status != State::pending) return *loc;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "never left Pending";
    return {};
  }

  FakeKube fk;
  std::uint16_t pod_port;
  std::string dir;
  std::unique_ptr<store::Store> store;  // before opts: the gateways' store outlives them
  GatewayOptions opts;
};

class GatewayTest : public GatewayTestBase {
 protected:
  GatewayTest() : GatewayTestBase("127.0.10", 8080) {}
};

TEST_F(GatewayTest, SessionOnAPodRunsCodeAndIsFoundByAnyGateway) {
  Gateway gw(opts);
  EXPECT_EQ(gw.place({}).target, Target::kubernetes);
  auto t0 = Clock::now();
  auto loc = gw.create("pod-s1", Target::kubernetes, Limits{}, json::object(), "tenant-a");
  EXPECT_EQ(loc.status, State::pending);
  EXPECT_EQ(loc.owner, "tenant-a");
  EXPECT_EQ(loc.pod, pod_name("pod-s1"));
  loc = wait_ready(gw, "pod-s1");
  ASSERT_EQ(loc.status, State::ready) << loc.message << " (pod log: " << dir << "/logs)";
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  std::printf("POST -> Ready on the fake: %lld ms\n", static_cast<long long>(ms));
  EXPECT_EQ(loc.base_url.rfind("http://127.0.10.", 0), 0u) << loc.base_url;

  // Shell, not Python: the code path through the pod is the same and does not depend on
  // the Python kernel's state in this tree.
  auto r = http_call(loc.base_url, "POST", "/pod-s1/exec/shell", R"J({"code": "echo $((1+1))"})J", "", 10s);
  ASSERT_EQ(r.status, 202u) << r.body;
  r = http_call(loc.base_url, "GET", "/pod-s1/result?wait=10000", "", "", 15s);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(json::parse(r.body)["stdout"], "2\n") << r.body;

  // Through a gateway front (forward()): code runs, files round-trip, events stream.
  {
    Relay relay(loc.base_url);
    std::string boundary = "XyZ123";
    std::string payload(300000, 'q');
    std::string mp = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n" + payload + "\r\n--" + boundary + "--\r\n";
    HttpReply up;
    try {
      up = upload(relay.url(), "/pod-s1/files/upload", mp, boundary);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "upload through the relay: " << e.what();
    }
    EXPECT_LT(up.status, 300u) << up.body;
    auto down = http_call(relay.url(), "GET", "/pod-s1/files/download/big.txt", "", "", 10s);
    EXPECT_EQ(down.status, 200u);
    EXPECT_EQ(down.body, payload);
    r = http_call(relay.url(), "POST", "/pod-s1/exec/shell", R"({"code": "for i in 1 2 3; do echo $i; sleep 0.1; done"})", "", 10s);
    ASSERT_EQ(r.status, 202u) << r.body;
    auto events = http_call(relay.url(), "GET", "/pod-s1/stream", "", "", 15s);
    EXPECT_EQ(events.status, 200u);
    EXPECT_NE(events.body.find("data:"), std::string::npos) << events.body;
    double direct = p50_one_plus_one(loc.base_url, "pod-s1", 30);
    double relayed = p50_one_plus_one(relay.url(), "pod-s1", 30);
    std::printf("p50 of 1+1 (exec + result?wait): direct to the pod %.2f ms, through forward() %.2f ms\n",
                direct, relayed);
  }

  // Another gateway (NGINX rehashed after a restart) finds it through the pod.
  Gateway other(opts);
  auto found = other.find("pod-s1");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->status, State::ready);
  EXPECT_EQ(found->owner, "tenant-a") << "the owner travels with the pod, for every gateway to check";
  EXPECT_EQ(found->base_url, loc.base_url);
  EXPECT_FALSE(other.find("no-such-session"));
  EXPECT_EQ(other.rebuild(), 1u);

  EXPECT_THROW(gw.create("pod-s1", Target::kubernetes, Limits{}, json::object()), Error);
  EXPECT_TRUE(gw.remove("pod-s1"));
  EXPECT_FALSE(gw.find("pod-s1"));
  EXPECT_TRUE(fk.control("GET", "/_fake/pods").empty()) << "no pod left";
}

TEST_F(GatewayTest, APodThatFailsIsReported) {
  json tmpl = load_pod_template("");
  tmpl["spec"]["containers"][0]["command"] = {"false"};
  std::ofstream(dir + "/bad.json") << tmpl.dump();
  opts.placement.pod_template = dir + "/bad.json";
  Gateway gw(opts);
  gw.create("bad-1", Target::kubernetes, Limits{}, json::object());
  auto loc = wait_ready(gw, "bad-1");
  EXPECT_EQ(loc.status, State::failed);
  EXPECT_FALSE(loc.message.empty());
  EXPECT_TRUE(gw.remove("bad-1"));
}

bool has_ipv6_loopback() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc);
  boost::system::error_code ec;
  a.open(boost::asio::ip::tcp::v6(), ec);
  if (!ec) a.bind({boost::asio::ip::make_address("::1"), 0}, ec);
  return !ec;
}

// The fake hands out the pod address ::1: the gateway's calls and forward() go to [::1].
class GatewayV6Test : public GatewayTestBase {
 protected:
  GatewayV6Test() : GatewayTestBase("::1", has_ipv6_loopback() ? free_port("::1") : 0) {}
  void SetUp() override {
    if (!has_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback here";
    GatewayTestBase::SetUp();
  }
};

TEST_F(GatewayV6Test, APodAtAnIpv6AddressRunsCode) {
  Gateway gw(opts);
  gw.create("v6-s1", Target::kubernetes, Limits{}, json::object(), "tenant-a");
  auto loc = wait_ready(gw, "v6-s1");
  ASSERT_EQ(loc.status, State::ready) << loc.message << " (pod log: " << dir << "/logs)";
  EXPECT_EQ(loc.base_url, fmt::format("http://[::1]:{}", pod_port));
  auto r = http_call(loc.base_url, "POST", "/v6-s1/exec/shell", R"J({"code": "echo $((1+1))"})J", "", 10s);
  ASSERT_EQ(r.status, 202u) << r.body;
  {
    Relay relay(loc.base_url);
    r = http_call(relay.url(), "GET", "/v6-s1/result?wait=10000", "", "", 15s);
    ASSERT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(json::parse(r.body)["stdout"], "2\n") << r.body;
  }
  EXPECT_TRUE(gw.remove("v6-s1"));
}

}  // namespace
}  // namespace sandbox::placement

namespace sandbox::placement {
namespace {

// A `sandboxctl serve` standing in for the cloud cluster's gateway.
class CloudGateway {
 public:
  // With `pki`: HTTPS (serve --tls-cert/--tls-key), verified by the callers' system store.
  explicit CloudGateway(const std::string& state_dir, const test::Pki* pki = nullptr) : tls_(pki != nullptr) {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port_ = a.local_endpoint().port();
    a.close();
    std::string listen = fmt::format("127.0.0.1:{}", port_);
    pid_ = fork();
    if (pid_ == 0) {
      if (pki)
        execl(kSandboxctl.c_str(), "sandboxctl", "serve", "--listen", listen.c_str(), "--quiet", "--isolation",
              "rlimit", "--close-sessions-on-exit", "--state-dir", state_dir.c_str(), "--tls-cert", pki->server_cert.c_str(), "--tls-key",
              pki->server_key.c_str(), static_cast<char*>(nullptr));
      else
        execl(kSandboxctl.c_str(), "sandboxctl", "serve", "--listen", listen.c_str(), "--quiet", "--isolation",
              "rlimit", "--close-sessions-on-exit", "--state-dir", state_dir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      try {
        if (http_call(url(), "GET", "/healthz", "", "", std::chrono::seconds(1)).status == 200) return;
      } catch (const Error&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ~CloudGateway() {
    kill(pid_, SIGTERM);
    int st;
    waitpid(pid_, &st, 0);
  }
  std::string url() const { return fmt::format("{}://127.0.0.1:{}", tls_ ? "https" : "http", port_); }

 private:
  bool tls_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
};

TEST_F(GatewayTest, CloudSessionsAreRecordedAndSurviveARestart) {
  std::filesystem::create_directories(dir + "/cloud");
  chmod((dir + "/cloud").c_str(), 0711);
  CloudGateway cloud(dir + "/cloud");
  opts.placement.mode = Mode::hybrid;
  opts.placement.cloud_gateway = cloud.url();
  {
    Gateway gw(opts);
    auto loc = gw.create("cloud-1", Target::cloud, Limits{}, json::object(), "tenant-b");
    EXPECT_EQ(loc.target, Target::cloud);
    EXPECT_EQ(loc.base_url, cloud.url());
    auto records = store->records("cloud");
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].first, "cloud-1");
    EXPECT_FALSE(std::filesystem::exists(dir + "/gw/remote.json")) << "the store is the record";
  }
  // A restarted gateway (and store) knows it from its record, and the session works there.
  opts.store = nullptr;
  store.reset();
  store = store::Store::open(dir + "/gw");
  opts.store = store.get();
  Gateway gw(opts);
  EXPECT_EQ(gw.rebuild(), 1u);
  auto loc = gw.find("cloud-1");
  ASSERT_TRUE(loc);
  EXPECT_EQ(loc->target, Target::cloud);
  EXPECT_EQ(loc->owner, "tenant-b") << "the record keeps the owner";
  auto r = http_call(loc->base_url, "POST", "/cloud-1/exec/shell", R"J({"code": "echo $((1+1))"})J", "", 10s);
  ASSERT_EQ(r.status, 202u) << r.body;
  r = http_call(loc->base_url, "GET", "/cloud-1/result?wait=10000", "", "", 15s);
  EXPECT_EQ(json::parse(r.body)["stdout"], "2\n") << r.body;
  EXPECT_TRUE(gw.remove("cloud-1"));
  EXPECT_EQ(http_call(cloud.url(), "GET", "/sessions/cloud-1", "", "", 5s).status, 404u);
  EXPECT_FALSE(Gateway(opts).find("cloud-1")) << "the record forgot it";
  EXPECT_TRUE(store->records("cloud").empty());
}

// The cloud gateway over https://: created, found, relayed to (forward() over TLS) and
// removed through the gateway's code path, verified against the test CA installed as the
// system store (SSL_CERT_FILE, as an operator installs a private CA).
TEST_F(GatewayTest, ACloudGatewayOverHttps) {
  auto pki = test::Pki::make(dir + "/pki");
  setenv("SSL_CERT_FILE", pki.ca.c_str(), 1);
  struct Unset {
    ~Unset() { unsetenv("SSL_CERT_FILE"); }
  } unset;
  std::filesystem::create_directories(dir + "/cloud");
  chmod((dir + "/cloud").c_str(), 0711);
  CloudGateway cloud(dir + "/cloud", &pki);
  ASSERT_EQ(cloud.url().rfind("https://", 0), 0u);
  opts.placement.mode = Mode::hybrid;
  opts.placement.cloud_gateway = cloud.url();
  Gateway gw(opts);
  auto loc = gw.create("tls-1", Target::cloud, Limits{}, json::object(), "tenant-c");
  EXPECT_EQ(loc.base_url, cloud.url());
  {
    Relay relay(loc.base_url);  // forward() to an https:// upstream
    auto r = http_call(relay.url(), "POST", "/tls-1/exec/shell", R"J({"code": "echo $((1+1))"})J", "", 10s);
    ASSERT_EQ(r.status, 202u) << r.body;
    r = http_call(relay.url(), "GET", "/tls-1/result?wait=10000", "", "", 15s);
    EXPECT_EQ(json::parse(r.body)["stdout"], "2\n") << r.body;
  }
  EXPECT_TRUE(gw.find("tls-1"));
  EXPECT_TRUE(gw.remove("tls-1"));
  EXPECT_EQ(http_call(cloud.url(), "GET", "/sessions/tls-1", "", "", 5s).status, 404u);
  // The cloud gateway speaks only TLS: plain HTTP to it fails cleanly.
  auto plain = "http" + cloud.url().substr(5);
  EXPECT_THROW(http_call(plain, "GET", "/healthz", "", "", 2s), Error);
}

// A state dir of a version before the store: its remote.json becomes the store's records
// once, and is renamed so that it is not imported again (or after the records changed).
TEST(GatewayImport, RemoteJsonIsImportedOnceIntoTheStore) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "gateway_import.XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  std::filesystem::path dir = tmpl;
  struct Cleanup {
    std::filesystem::path d;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  } cleanup{dir};
  std::ofstream(dir / "remote.json") << R"([
    {"id": "c1", "target": "cloud", "status": "Ready", "message": "", "base_url": "https://cloud.example:8443", "pod": "", "owner": "tenant-a"},
    {"id": "c2", "target": "cloud", "status": "Pending", "message": "", "base_url": "https://cloud.example:8443", "pod": ""},
    {"id": "p1", "target": "kubernetes", "status": "Ready", "base_url": "http://10.0.0.1:8080", "pod": "sbx-p1"},
    "garbage"
  ])";
  auto st = store::Store::open(dir / "state");
  GatewayOptions opts;
  opts.store = st.get();
  opts.import_dir = dir;
  {
    Gateway gw(opts);
    auto c1 = gw.find("c1");
    ASSERT_TRUE(c1);
    EXPECT_EQ(c1->target, Target::cloud);
    EXPECT_EQ(c1->status, State::ready);
    EXPECT_EQ(c1->base_url, "https://cloud.example:8443");
    EXPECT_EQ(c1->owner, "tenant-a");
    auto c2 = gw.find("c2");
    ASSERT_TRUE(c2);
    EXPECT_FALSE(c2->owner) << "no owner recorded: nobody's";
    EXPECT_FALSE(gw.find("p1")) << "pods are their own record";
    EXPECT_EQ(gw.list().size(), 2u);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "remote.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "remote.json.imported"));
  auto records = st->records("cloud");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].first, "c1");
  EXPECT_EQ(records[1].first, "c2");

  // The records are the truth from now on: a forgotten session stays forgotten.
  st->remove_record("cloud", "c2");
  Gateway again(opts);
  EXPECT_EQ(again.rebuild(), 1u);
  EXPECT_TRUE(again.find("c1"));
  EXPECT_FALSE(again.find("c2"));

  // Without a store nothing is read or imported.
  std::filesystem::rename(dir / "remote.json.imported", dir / "remote.json");
  GatewayOptions none;
  none.import_dir = dir;
  Gateway unrecorded(none);
  EXPECT_TRUE(unrecorded.list().empty());
  EXPECT_TRUE(std::filesystem::exists(dir / "remote.json"));
}

}  // namespace
}  // namespace sandbox::placement
