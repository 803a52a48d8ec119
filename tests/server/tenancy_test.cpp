// Quotas and tenants over real loopback HTTP (issue 11, items 6 and 7): a tenant over its
// quota gets 429 naming it while another still works; ids are per tenant; /metrics is for
// admin tokens; `sandboxctl serve --max-sessions` holds.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sandbox/sandbox.hpp"
#include "sandbox/server.hpp"
#include "server/http_client.hpp"

namespace sandbox::server {
namespace {

using test::Client;
using json = nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;
using namespace std::chrono_literals;

const Headers alice = {{"Authorization", "Bearer aaa"}};
const Headers bob = {{"Authorization", "Bearer bbb"}};
const Headers ops = {{"Authorization", "Bearer ooo"}};

// A Sandbox (rlimit) and a Server with three tokens: alice, bob and ops (admin).
struct Tenancy {
  explicit Tenancy(sandbox::Options so_in = {}, bool tokens = true) {
    tokens_ = std::filesystem::temp_directory_path() / ("sandbox-tenancy-" + std::to_string(::getpid()));
    std::ofstream(tokens_) << "alice:aaa\nbob:bbb\nops:ooo admin\n";
    so_in.isolation = "rlimit";
    so_in.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
    so_in.preload = {};
    sb = std::make_unique<Sandbox>(so_in);
    server::Options o;
    o.port = 0;
    o.quiet = true;
    if (tokens) o.token_file = tokens_;
    srv = std::make_unique<Server>(*sb, o);
    srv->start();
  }
  ~Tenancy() {
    srv->stop();
    srv.reset();
    sb.reset();
    std::filesystem::remove(tokens_);
  }
  std::filesystem::path tokens_;
  std::unique_ptr<Sandbox> sb;
  std::unique_ptr<Server> srv;
};

// Runs code in session `sid` as `who` and returns the final result.
json run(Client& c, const std::string& sid, const std::string& code, const Headers& who) {
  auto r = c.post("/" + sid + "/exec/python", json{{"code", code}}.dump(), who);
  EXPECT_EQ(r.status, 202) << r.body;
  if (r.status != 202) return json{};
  for (int i = 0; i < 40; ++i) {
    auto res = c.get("/" + sid + "/result?wait=1000", who).json();
    if (res["status"] != "Running") return res;
  }
  ADD_FAILURE() << "execution did not end";
  return json{};
}

void expect_quota(const test::Response& r, const std::string& quota, const std::string& says) {
  EXPECT_EQ(r.status, 429) << r.body;
  auto j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j["error"]["code"], "resource_exhausted") << r.body;
  EXPECT_EQ(j["error"]["quota"], quota) << r.body;
  EXPECT_NE(j["error"]["message"].get<std::string>().find(says), std::string::npos) << r.body;
}

TEST(Quotas, SessionsPerTenantIs429NamingItWhileAnotherTenantWorks) {
  Tenancy t({.max_sessions_per_tenant = 2});
  Client c(t.srv->port());
  ASSERT_EQ(c.post("/sessions", R"({"id":"a1"})", alice).status, 201);
  ASSERT_EQ(c.post("/sessions", "", alice).status, 201);
  expect_quota(c.post("/sessions", R"({"id":"a3"})", alice), "sessions_per_tenant", "2 sessions per tenant");
  // A seed route's auto-create is held to the same quota.
  expect_quota(c.post("/a4/exec/python", R"({"code":"1"})", alice), "sessions_per_tenant", "per tenant");
  // Another tenant is untouched: it creates sessions and runs code.
  ASSERT_EQ(c.post("/sessions", R"({"id":"b1"})", bob).status, 201);
  EXPECT_EQ(run(c, "b1", "1+1", bob)["result"], "2");
  EXPECT_EQ(run(c, "b2", "2+2", bob)["result"], "4");  // auto-created
  // Closing one frees the slot.
  EXPECT_EQ(c.del("/sessions/a1", alice).status, 200);
  EXPECT_EQ(c.post("/sessions", R"({"id":"a3"})", alice).status, 201);
}

TEST(Quotas, ExecutionsPerTenantCountFromSubmitToEnd) {
  Tenancy t({.max_executions_per_tenant = 1});
  Client c(t.srv->port());
  auto slow = c.post("/a1/exec/python", R"J({"code":"import time; time.sleep(3)"})J", alice);
  ASSERT_EQ(slow.status, 202) << slow.body;
  // Another of alice's sessions: the quota is the tenant's, not the session's.
  expect_quota(c.post("/a2/exec/python", R"({"code":"1"})", alice), "executions_per_tenant",
               "1 concurrent executions per tenant");
  EXPECT_EQ(run(c, "b1", "1+1", bob)["result"], "2");
  // Once it ends, alice may run again.
  auto done = c.get("/a1/result?wait=10000", alice).json();
  EXPECT_EQ(done["status"], "Finished") << done.dump();
  EXPECT_EQ(run(c, "a2", "3+3", alice)["result"], "6");
}

TEST(Tenants, SameIdUnderTwoTokensIsTwoSessions) {
  Tenancy t;
  Client c(t.srv->port());
  ASSERT_EQ(c.post("/sessions", R"({"id":"same"})", alice).status, 201);
  // Not 409 "exists": bob's id space is his own.
  auto b = c.post("/sessions", R"({"id":"same"})", bob);
  ASSERT_EQ(b.status, 201) << b.body;
  EXPECT_EQ(run(c, "same", "x = 'alice'; open('a.txt', 'w').write('hi'); x", alice)["result"], "'alice'");
  auto bx = run(c, "same", "x", bob);
  EXPECT_EQ(bx["status"], "Failed") << bx.dump();
  EXPECT_EQ(bx["error"]["name"], "NameError");
  EXPECT_EQ(c.get("/same/files/list", bob).json()["files"].size(), 0u);
  EXPECT_EQ(c.get("/same/files/list", alice).json()["files"].size(), 1u);
  EXPECT_EQ(c.del("/sessions/same", bob).status, 200);
  EXPECT_EQ(run(c, "same", "x", alice)["result"], "'alice'");  // alice's lives on
}

TEST(Tenants, AnotherTenantsIdAnswersLikeAFreeOne) {
  Tenancy t;
  Client c(t.srv->port());
  ASSERT_EQ(c.post("/sessions", R"({"id":"secret1"})", alice).status, 201);
  // What bob sees for alice's id, and for an id nobody has, must be the same.
  auto strip = [](test::Response r, const std::string& id) {
    std::string body = r.body;
    for (auto at = body.find(id); at != std::string::npos; at = body.find(id)) body.replace(at, id.size(), "ID");
    return std::to_string(r.status) + " " + body;
  };
  EXPECT_EQ(strip(c.get("/sessions/secret1", bob), "secret1"), strip(c.get("/sessions/free1", bob), "free1"));
  EXPECT_EQ(strip(c.del("/sessions/secret1", bob), "secret1"), strip(c.del("/sessions/free1", bob), "free1"));
  auto made = c.post("/sessions", R"({"id":"secret1"})", bob);
  EXPECT_EQ(made.status, 201) << made.body;
  auto free = c.post("/sessions", R"({"id":"free1"})", bob);
  EXPECT_EQ(free.status, 201) << free.body;
  EXPECT_EQ(c.get("/sessions", bob).json()["sessions"].size(), 2u);
  EXPECT_EQ(c.get("/sessions", alice).json()["sessions"].size(), 1u);
}

TEST(Tenants, MetricsNeedAnAdminTokenWhenTokensAreOn) {
  Tenancy t;
  Client c(t.srv->port());
  EXPECT_EQ(c.get("/metrics").status, 401);
  auto denied = c.get("/metrics", alice);
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_EQ(denied.body.find("sandbox_sessions"), std::string::npos);
  auto m = c.get("/metrics", ops);
  EXPECT_EQ(m.status, 200) << m.body;
  EXPECT_NE(m.body.find("sandbox_sessions_created_total"), std::string::npos);
  // An admin token is a tenant like any other for sessions.
  EXPECT_EQ(c.post("/sessions", R"({"id":"o1"})", ops).status, 201);
}

TEST(Tenants, MetricsAreOpenWhenTokensAreOff) {
  Tenancy t({}, false);
  Client c(t.srv->port());
  EXPECT_EQ(c.get("/metrics").status, 200);
}

// `sandboxctl serve --max-sessions 2 --max-sessions-per-tenant 1`: the flags reach the Sandbox.
TEST(Quotas, ServeFlags) {
  const std::string exe = std::string(SANDBOX_TEST_BINARY_DIR) + "/cli/sandboxctl";
  if (!std::filesystem::exists(exe)) GTEST_SKIP() << "no " << exe;
  auto log = std::filesystem::temp_directory_path() / ("sandbox-serve-flags-" + std::to_string(::getpid()));
  auto tokens = log.string() + ".tokens";
  std::ofstream(tokens) << "alice:aaa\nbob:bbb\ncarol:ccc\n";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(log.c_str(), "w", stderr);
    ::execl(exe.c_str(), exe.c_str(), "serve", "--listen", "127.0.0.1:0", "--isolation", "rlimit", "--quiet",
            "--token-file", tokens.c_str(), "--max-sessions", "2", "--max-sessions-per-tenant", "1",
            "--max-executions-per-tenant", "3", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  unsigned short port = 0;
  for (int i = 0; i < 300 && port == 0; ++i) {  // up to 30 s on a busy host
    std::this_thread::sleep_for(100ms);
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    if (auto at = text.find("listening on http://127.0.0.1:"); at != std::string::npos)
      port = static_cast<unsigned short>(std::stoi(text.substr(at + 30)));
  }
  ASSERT_NE(port, 0) << "sandboxctl serve did not start";
  {
    Client c(port);
    EXPECT_EQ(c.post("/sessions", "", alice).status, 201);
    expect_quota(c.post("/sessions", "", alice), "sessions_per_tenant", "1 sessions per tenant");
    EXPECT_EQ(c.post("/sessions", "", bob).status, 201);
    expect_quota(c.post("/sessions", "", {{"Authorization", "Bearer ccc"}}), "sessions", "2 sessions");
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::filesystem::remove(log);
  std::filesystem::remove(tokens);
}

}  // namespace
}  // namespace sandbox::server
