// placement::Policy and the session pod manifest, against the fake API server.
#include <sandbox/placement.hpp>

#include "placement/fake_kube_fixture.hpp"
#include "placement/kube_client.hpp"
#include "placement/pod_spec.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>

#include <regex>

namespace sandbox::placement {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::FakeKube;

TEST(PodSpec, NamesAreDnsLabelsAndDistinct) {
  std::regex label("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  for (const std::string& sid : std::vector<std::string>{"s1", "S1", "a_b", "-x-", "_", std::string(64, 'Z'), "abc-DEF_123"}) {
    auto n = pod_name(sid);
    EXPECT_TRUE(std::regex_match(n, label)) << sid << " -> " << n;
    EXPECT_LE(n.size(), 63u);
    EXPECT_EQ(n, pod_name(sid)) << "deterministic";
  }
  EXPECT_NE(pod_name("S1"), pod_name("s1"));
  EXPECT_NE(pod_name("a_b"), pod_name("a-b"));
  EXPECT_EQ(session_label("s1"), "s1");
  EXPECT_EQ(session_label("_x").rfind("h-", 0), 0u) << "not a valid label value: hashed";
  EXPECT_EQ(session_selector("s1"), "app=libsandbox,libsandbox.io/session=s1");
}

TEST(PodSpec, ManifestFromTheBuiltinTemplate) {
  Limits l;
  l.cpus = 0.5;
  l.memory_bytes = 256ull << 20;
  auto pod = make_pod(load_pod_template(""), "Sess_1", l, "gvisor", "gw-1");
  EXPECT_EQ(pod["metadata"]["name"], pod_name("Sess_1"));
  EXPECT_EQ(pod["metadata"]["labels"]["app"], "libsandbox");
  EXPECT_EQ(pod["metadata"]["labels"]["libsandbox.io/session"], "Sess_1");
  EXPECT_EQ(pod["metadata"]["annotations"]["libsandbox.io/session-id"], "Sess_1");
  EXPECT_EQ(pod["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(pod["spec"]["runtimeClassName"], "gvisor");
  auto& c = pod["spec"]["containers"][0];
  EXPECT_EQ(c["resources"]["limits"]["cpu"], "500m");
  EXPECT_DOUBLE_EQ(parse_quantity(c["resources"]["limits"]["memory"].get<std::string>()), (384ull << 20));
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/healthz");
  try {
    load_pod_template("/nonexistent.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::not_found);
  }
}

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fk.ok()) GTEST_SKIP() << "fake_kube.py did not start (python3, openssl?): see " << fk.log();
    fk.control("PUT", "/_fake/nodes",
               {{"n1", {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}}}, {"usage", {{"cpu", "1"}, {"memory", "1Gi"}}}}}});
    opts.mode = Mode::hybrid;
    opts.kubeconfig = fk.kubeconfig();
    opts.cloud_gateway = "http://127.0.0.1:1";
    opts.log = [this](std::string_view l) { logged.emplace_back(l); };
  }
  void usage(const char* cpu, const char* mem) {
    fk.control("PUT", "/_fake/nodes",
               {{"n1", {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}}}, {"usage", {{"cpu", cpu}, {"memory", mem}}}}}});
  }
  FakeKube fk;
  Options opts;
  std::vector<std::string> logged;
};

TEST_F(PolicyTest, LocalAndKubernetesNeedNoCluster) {
  Options o;
  EXPECT_EQ(make_policy(o)->place({}).target, Target::local);
  o.mode = Mode::kubernetes;
  EXPECT_EQ(make_policy(o)->place({}).target, Target::kubernetes);
  o.mode = Mode::hybrid;
  EXPECT_THROW(make_policy(o), Error) << "hybrid without a cloud gateway";
  o.cloud_gateway = "http://x";
  o.water_level = 1.5;
  EXPECT_THROW(make_policy(o), Error);
  EXPECT_EQ(mode_from_string("hybrid"), Mode::hybrid);
  EXPECT_THROW(mode_from_string("cloud"), Error);
}

TEST_F(PolicyTest, HybridBurstsAboveTheWaterLevel) {
  auto p = make_policy(opts);
  auto d = p->place({});
  EXPECT_EQ(d.target, Target::kubernetes) << d.reason;
  EXPECT_NEAR(d.water_level, 0.25, 1e-9);  // cpu 1/4 > memory 1/8
  usage("1", "7Gi");
  d = p->place({});
  EXPECT_EQ(d.target, Target::cloud) << d.reason;
  EXPECT_NEAR(d.water_level, 0.875, 1e-9);
  EXPECT_NE(d.reason.find("0.88 >= 0.80"), std::string::npos) << d.reason;
}

TEST_F(PolicyTest, StartingPodsCountByTheirRequests) {
  auto p = make_policy(opts);
  usage("2", "1Gi");
  EXPECT_EQ(p->place({}).target, Target::kubernetes);
  // A session pod that never turns Ready: its 1.5 cores are spoken for.
  Limits l;
  l.cpus = 1.5;
  auto pod = make_pod(load_pod_template(""), "starting", l, "");
  pod["spec"]["containers"][0]["command"] = {"sleep", "30"};
  KubeClient(fk.config()).create_pod(pod);
  auto d = p->place({});
  EXPECT_NEAR(d.water_level, 0.875, 1e-9);
  EXPECT_EQ(d.target, Target::cloud) << d.reason;
}

TEST_F(PolicyTest, MetricsUnavailableFallsBackAndLogs) {
  fk.control("PUT", "/_fake/metrics", {{"available", false}});
  auto d = make_policy(opts)->place({});
  EXPECT_EQ(d.target, Target::kubernetes);
  EXPECT_EQ(d.water_level, -1);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("fallback local cluster"), std::string::npos) << logged[0];
  opts.metrics_fallback = MetricsFallback::cloud;
  EXPECT_EQ(make_policy(opts)->place({}).target, Target::cloud);
  opts.metrics_fallback = MetricsFallback::refuse;
  try {
    make_policy(opts)->place({});
    FAIL() << "refuse placed a session";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable);
  }
}

}  // namespace
}  // namespace sandbox::placement
