// The Kubernetes client against the fake API server: auth, TLS, every call, every failure.
#include "placement/kube_client.hpp"

#include "placement/fake_kube_fixture.hpp"
#include "placement/yaml.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

namespace sandbox::placement {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::FakeKube;

json web_pod(const std::string& name, bool probe = true) {
  json c = {{"name", "main"},
            {"image", "fake"},
            {"command", {"python3", "-m", "http.server", "--bind", "$(POD_IP)", "8080"}},
            {"env", {{{"name", "POD_IP"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "status.podIP"}}}}}}}},
            {"resources", {{"limits", {{"cpu", "250m"}, {"memory", "64Mi"}}}}}};
  if (probe) c["readinessProbe"] = {{"httpGet", {{"path", "/"}, {"port", 8080}}}};
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labels", {{"app", "libsandbox"}, {"test", "kube-client"}}}}},
          {"spec", {{"restartPolicy", "Never"}, {"containers", {c}}}}};
}

ClientOptions fast() {
  return {.call_timeout = 2s, .max_attempts = 3, .backoff_initial = 20ms, .backoff_max = 200ms};
}

errc code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc::ok;
}

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fk.ok()) GTEST_SKIP() << "fake_kube.py did not start (python3, openssl?): see " << fk.log();
  }
  FakeKube fk;
};

TEST(Yaml, ReadsKubectlStyleKubeconfig) {
  auto doc = parse_yaml(R"(apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: QUJD   # a comment
    server: https://127.0.0.1:6443
  name: one
contexts:
- context: {cluster: one, user: u}
  name: c
current-context: "c"
preferences: {}
users:
- name: u
  user:
    token: 'it''s'
list:
  - a
  - b: 1
    c: 2
)");
  EXPECT_EQ(doc["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443");
  EXPECT_EQ(doc["clusters"][0]["cluster"]["certificate-authority-data"], "QUJD");
  EXPECT_EQ(doc["clusters"][0]["name"], "one");
  EXPECT_EQ(doc["current-context"], "c");
  EXPECT_EQ(doc["contexts"][0]["context"]["cluster"], "one");
  EXPECT_EQ(doc["users"][0]["user"]["token"], "it's");
  EXPECT_TRUE(doc["preferences"].is_object());
  EXPECT_EQ(doc["list"][0], "a");
  EXPECT_EQ(doc["list"][1]["c"], "2");
  EXPECT_EQ(code_of([] { parse_yaml("a: 1\n   b: 2\n"); }), errc::invalid_argument);
  EXPECT_EQ(parse_yaml(R"({"kind": "Pod", "spec": {"containers": []}})")["kind"], "Pod");
}

TEST(Quantity, ParsesEveryForm) {
  EXPECT_DOUBLE_EQ(parse_quantity("500m"), 0.5);
  EXPECT_DOUBLE_EQ(parse_quantity("2"), 2);
  EXPECT_DOUBLE_EQ(parse_quantity("1.5"), 1.5);
  EXPECT_DOUBLE_EQ(parse_quantity("250000000n"), 0.25);
  EXPECT_DOUBLE_EQ(parse_quantity("1Gi"), 1073741824.0);
  EXPECT_DOUBLE_EQ(parse_quantity("1048576Ki"), 1073741824.0);
  EXPECT_DOUBLE_EQ(parse_quantity("1e3"), 1000);
  EXPECT_DOUBLE_EQ(parse_quantity("2k"), 2000);
  EXPECT_DOUBLE_EQ(parse_quantity("1E"), 1e18);
  EXPECT_EQ(code_of([] { parse_quantity("1Q"); }), errc::invalid_argument);
  EXPECT_EQ(code_of([] { parse_quantity("abc"); }), errc::invalid_argument);
}

TEST_F(KubeClientTest, TokenAndClientCertificateKubeconfigs) {
  for (const char* which : {"kubeconfig", "kubeconfig_cert"}) {
    KubeClient c(KubeConfig::from_kubeconfig(fk.info()[which].get<std::string>()), fast());
    EXPECT_NO_THROW(c.list_pods("app=libsandbox")) << which;
  }
}

TEST_F(KubeClientTest, TlsIsVerified) {
  auto cfg = fk.config();
  std::ifstream in(fk.info()["wrong_ca_file"].get<std::string>());
  cfg.ca_pem.assign(std::istreambuf_iterator<char>(in), {});
  KubeClient bad(cfg, fast());
  auto t0 = std::chrono::steady_clock::now();
  try {
    bad.list_pods({});
    FAIL() << "a server signed by another CA was trusted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable);
    EXPECT_NE(e.message().find("TLS"), std::string::npos) << e.message();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "a TLS failure is not retried";
  cfg.insecure_skip_tls_verify = true;
  KubeClient insecure(cfg, fast());
  EXPECT_NO_THROW(insecure.list_pods({}));
  // The certificate names 127.0.0.1 and localhost, nothing else.
  cfg = fk.config();
  cfg.tls_server_name = "kubernetes.default.svc";
  EXPECT_EQ(code_of([&] { KubeClient(cfg, fast()).list_pods({}); }), errc::unavailable);
}

TEST_F(KubeClientTest, AuthFailuresAreClear) {
  auto cfg = fk.config();
  cfg.token = "wrong";
  EXPECT_EQ(code_of([&] { KubeClient(cfg, fast()).list_pods({}); }), errc::unauthenticated);
  cfg.token = fk.info()["readonly_token"];
  KubeClient ro(cfg, fast());
  EXPECT_NO_THROW(ro.list_pods({}));
  EXPECT_EQ(code_of([&] { ro.create_pod(web_pod("ro")); }), errc::permission_denied);
}

TEST_F(KubeClientTest, InClusterServiceAccount) {
  auto dir = std::filesystem::path(fk.info()["dir"].get<std::string>()) / "sa";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fk.info()["ca_file"].get<std::string>(), dir / "ca.crt");
  std::ofstream(dir / "token") << fk.info()["token"].get<std::string>() << "\n";
  std::ofstream(dir / "namespace") << "sandboxes";
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", std::to_string(fk.info()["port"].get<int>()).c_str(), 1);
  auto cfg = KubeConfig::in_cluster(dir);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  EXPECT_EQ(cfg.namespace_, "sandboxes");
  KubeClient c(cfg, fast());
  EXPECT_NO_THROW(c.list_pods({}));
  EXPECT_EQ(code_of([&] { KubeConfig::in_cluster(dir); }), errc::unavailable);
}

TEST_F(KubeClientTest, PodLifecycle) {
  KubeClient c(fk.config(), fast());
  auto created = c.create_pod(web_pod("life-1"));
  EXPECT_EQ(created["status"]["phase"], "Pending");
  auto st = c.wait_pod("life-1", [](const PodState& s) { return s.ready; }, 15s);
  EXPECT_TRUE(st.ready);
  EXPECT_EQ(st.phase, "Running");
  EXPECT_EQ(st.pod_ip.rfind(FakeKube::default_prefix() + ".", 0), 0u) << st.pod_ip;
  EXPECT_DOUBLE_EQ(st.cpu_requests, 0.25);  // requests default to limits
  EXPECT_EQ(code_of([&] { c.create_pod(web_pod("life-1")); }), errc::already_exists);
  auto list = c.list_pods("app=libsandbox,test=kube-client");
  ASSERT_EQ(list.items.size(), 1u);
  EXPECT_FALSE(list.resource_version.empty());
  EXPECT_TRUE(c.delete_pod("life-1"));
  EXPECT_FALSE(c.delete_pod("life-1"));
  EXPECT_FALSE(c.get_pod("life-1").has_value());
  EXPECT_EQ(code_of([&] { c.create_pod(web_pod("Not_A_Name")); }), errc::invalid_argument);
}

TEST_F(KubeClientTest, WaitSeesDeletionAndTimesOut) {
  KubeClient c(fk.config(), fast());
  json never = web_pod("never-ready");
  never["spec"]["containers"][0]["command"] = {"sleep", "30"};  // the probe never answers
  c.create_pod(never);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(code_of([&] { c.wait_pod("never-ready", [](const PodState& s) { return s.ready; }, 700ms); }),
            errc::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);  // the deadline holds (loose: busy CI hosts)
  std::jthread deleter([&] {
    std::this_thread::sleep_for(200ms);
    KubeClient(fk.config(), fast()).delete_pod("never-ready");
  });
  auto st = c.wait_pod("never-ready", [](const PodState& s) { return s.ready; }, 10s);
  EXPECT_TRUE(st.gone);
}

TEST_F(KubeClientTest, ExpiredWatchRelists) {
  KubeClient c(fk.config(), fast());
  auto rv = c.list_pods({}).resource_version;
  c.create_pod(web_pod("w-1", false));
  fk.control("POST", "/_fake/compact");
  EXPECT_EQ(code_of([&] {
              c.watch_pods({}, {}, rv, [](const WatchEvent&) { return true; },
                           std::chrono::steady_clock::now() + 2s);
            }),
            errc::failed_precondition);
  // A watch answered 410 outright (some API servers do) is re-listed too.
  c.create_pod(web_pod("w-2"));
  fk.control("POST", "/_fake/faults", {{"method", "GET"}, {"path", "watch=true"}, {"code", 410}, {"count", 2}});
  auto st = c.wait_pod("w-2", [](const PodState& s) { return s.ready; }, 15s);
  EXPECT_TRUE(st.ready);
}

TEST_F(KubeClientTest, RetriesThrottlingAndServerErrors) {
  KubeClient c(fk.config(), fast());
  fk.control("POST", "/_fake/faults", {{"method", "GET"}, {"path", "/pods"}, {"code", 429}, {"count", 2}, {"retry_after", 0}});
  EXPECT_NO_THROW(c.list_pods({}));
  fk.control("POST", "/_fake/faults", {{"method", "GET"}, {"path", "/pods"}, {"code", 429}, {"count", 3}});
  EXPECT_EQ(code_of([&] { c.list_pods({}); }), errc::resource_exhausted);
  fk.control("POST", "/_fake/faults", {{"method", "GET"}, {"path", "/nodes"}, {"code", 503}, {"count", 2}});
  EXPECT_NO_THROW(c.nodes_allocatable());
  fk.control("POST", "/_fake/faults", {{"method", "GET"}, {"path", "/nodes"}, {"code", 500}, {"count", 3}});
  EXPECT_EQ(code_of([&] { c.nodes_allocatable(); }), errc::unavailable);
}

TEST_F(KubeClientTest, TimeoutsAreRetriedThenUnavailable) {
  ClientOptions o = fast();
  o.call_timeout = 300ms;
  o.max_attempts = 2;
  KubeClient c(fk.config(), o);
  fk.control("POST", "/_fake/faults", {{"method", "GET"}, {"path", "/nodes"}, {"delay", 2}, {"count", 2}});
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(code_of([&] { c.nodes_allocatable(); }), errc::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  // A create whose answer was lost is not an error when the retry finds our pod.
  fk.control("POST", "/_fake/faults", {{"method", "POST"}, {"path", "/pods"}, {"delay", 0.5}, {"count", 1}});
  auto pod = c.create_pod(web_pod("slow-create", false));
  EXPECT_EQ(pod["metadata"]["name"], "slow-create");
}

TEST_F(KubeClientTest, NodesAndMetrics) {
  KubeClient c(fk.config(), fast());
  fk.control("PUT", "/_fake/nodes",
             {{"a", {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}}}, {"usage", {{"cpu", "1"}, {"memory", "2Gi"}}}}},
              {"b", {{"allocatable", {{"cpu", "2"}, {"memory", "4Gi"}}}, {"usage", {{"cpu", "500m"}, {"memory", "1Gi"}}}}}});
  auto alloc = c.nodes_allocatable();
  EXPECT_EQ(alloc.nodes, 2u);
  EXPECT_DOUBLE_EQ(alloc.cpu, 6);
  EXPECT_DOUBLE_EQ(alloc.memory, 12.0 * (1 << 30));
  auto usage = c.nodes_usage();
  EXPECT_DOUBLE_EQ(usage.cpu, 1.5);
  EXPECT_DOUBLE_EQ(usage.memory, 3.0 * (1 << 30));
  fk.control("PUT", "/_fake/metrics", {{"available", false}});
  EXPECT_EQ(code_of([&] { c.nodes_usage(); }), errc::unavailable);
}

}  // namespace
}  // namespace sandbox::placement
