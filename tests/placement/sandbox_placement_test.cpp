// A C++ user places sessions on Kubernetes through sandbox::Options::placement alone (issue
// 12, deliverable 1), against the strict fake API server whose pods are real
// `sandboxctl serve` processes: the pod is created, the session says where it is and is
// Pending until the pod is Ready, tenants do not see each other's placed ids, and closing
// the session deletes its pod.
#include "placement/fake_kube_fixture.hpp"
#include "placement/pod_spec.hpp"

#include <sandbox/sandbox.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

namespace sandbox {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using placement::testing::FakeKube;

const std::string kSandboxctl = std::string(SANDBOX_TEST_BINARY_DIR) + "/cli/sandboxctl";

class SandboxPlacement : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fk.ok()) GTEST_SKIP() << "fake_kube.py did not start: see " << fk.log();
    if (access(kSandboxctl.c_str(), X_OK) != 0) GTEST_SKIP() << "sandboxctl is not built";
    dir = fk.info()["dir"].get<std::string>();
    json tmpl = placement::load_pod_template("");
    auto& c = tmpl["spec"]["containers"][0];
    c["command"] = {kSandboxctl, "serve", "--listen", "$(POD_IP):8080", "--quiet", "--isolation", "rlimit",
                    "--close-sessions-on-exit", "--state-dir", dir + "/pod-$(POD_NAME)"};
    c["env"].push_back({{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}});
    std::ofstream(dir + "/template.json") << tmpl.dump();
    opts.isolation = "rlimit";
    opts.preload = {};
    opts.state_dir = dir + "/sandbox";
    opts.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    opts.placement.mode = placement::Mode::kubernetes;
    opts.placement.kubeconfig = fk.kubeconfig();
    opts.placement.pod_template = dir + "/template.json";
    opts.placement.ready_timeout = 60s;
    opts.placement.gateway_name = "lifecycle-test";
  }

  json pods() { return fk.control("GET", "/_fake/pods"); }

  SessionStatus settle(const Session& s) {
    auto deadline = Clock::now() + 60s;
    while (s.status() == SessionStatus::pending && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    return s.status();
  }

  FakeKube fk{FakeKube::default_prefix()};
  std::string dir;
  Options opts;
};

TEST_F(SandboxPlacement, ASessionGoesToAPodAndSaysSo) {
  Sandbox sb(opts);
  auto s = sb.create_session({.id = "k8s-1", .owner = "tenant-a"});
  EXPECT_EQ(s->placement(), "kubernetes");
  EXPECT_EQ(s->id(), "k8s-1");
  EXPECT_EQ(s->owner(), "tenant-a");
  auto first = s->status();
  EXPECT_TRUE(first == SessionStatus::pending || first == SessionStatus::ready) << to_string(first);
  ASSERT_TRUE(s->endpoint());
  EXPECT_EQ(s->endpoint()->pod, placement::pod_name("k8s-1"));
  auto listed = pods();
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["name"], placement::pod_name("k8s-1"));
  EXPECT_EQ(sb.find("k8s-1", "tenant-a"), s);
  EXPECT_EQ(sb.stats().sessions_active, 1u);

  ASSERT_EQ(settle(*s), SessionStatus::ready) << s->endpoint()->message << " (pod logs: " << dir << "/logs)";
  EXPECT_EQ(s->endpoint()->base_url.rfind("http://127.", 0), 0u) << s->endpoint()->base_url;

  // Another tenant's request for the same id learns nothing: its session is made here.
  auto other = sb.create_session({.id = "k8s-1", .owner = "tenant-b"});
  EXPECT_EQ(other->placement(), "local");
  EXPECT_EQ(other->status(), SessionStatus::ready);
  EXPECT_EQ(pods().size(), 1u);

  // A second Sandbox (a restarted or another gateway) finds the pod for its tenant only.
  {
    auto o2 = opts;
    o2.state_dir = dir + "/sandbox2";
    o2.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    Sandbox again(o2);
    auto found = again.locate("k8s-1", "tenant-a");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->placement(), "kubernetes");
    EXPECT_EQ(found->status(), SessionStatus::ready);
    EXPECT_FALSE(again.locate("k8s-1", "tenant-c"));
  }
  EXPECT_EQ(pods().size(), 1u) << "a Sandbox going away leaves the pods it placed";

  // The quota counts placed sessions too.
  {
    auto o3 = opts;
    o3.state_dir = dir + "/sandbox3";
    o3.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    o3.max_sessions_per_tenant = 1;
    Sandbox quota(o3);
    EXPECT_THROW(quota.create_session({.id = "k8s-2", .owner = "tenant-a"}), QuotaExceeded)
        << "tenant-a's pod (found at start) counts";
  }

  sb.close_session("k8s-1", "tenant-a");
  EXPECT_EQ(s->status(), SessionStatus::closed);
  EXPECT_FALSE(sb.find("k8s-1", "tenant-a"));
  auto deadline = Clock::now() + 20s;
  while (!pods().empty() && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(pods().empty()) << "closing the session deletes its pod";
}

TEST_F(SandboxPlacement, APodThatFailsMakesAFailedSession) {
  json tmpl = placement::load_pod_template("");
  tmpl["spec"]["containers"][0]["command"] = {"false"};
  std::ofstream(dir + "/bad.json") << tmpl.dump();
  opts.placement.pod_template = dir + "/bad.json";
  Sandbox sb(opts);
  auto s = sb.create_session({.id = "bad-1"});
  EXPECT_EQ(settle(*s), SessionStatus::failed);
  EXPECT_FALSE(s->endpoint()->message.empty());
  try {
    s->run({.language = Language::shell, .code = "true"});
    ADD_FAILURE() << "a failed session ran code";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable) << e.what();
  }
  sb.close_session("bad-1");
}

TEST_F(SandboxPlacement, APlacedSessionRunsCodeThroughConnect) {
  opts.idle_timeout = 600s;
  Sandbox sb(opts);
  auto s = sb.create_session({.id = "k8s-run", .language = Language::shell});
  // The data calls go to the pod's server through sandbox::connect().
  Result r = s->run({.language = Language::shell, .code = "echo $((1+1))"});
  EXPECT_EQ(r.status, Status::finished);
  EXPECT_EQ(r.stdout_text, "2\n");
  sb.close_session("k8s-run");
}

}  // namespace
}  // namespace sandbox
