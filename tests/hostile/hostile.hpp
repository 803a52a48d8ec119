// The hostile suite's fixture. Every case is a real attack run through the library on each
// backend ("rlimit", "namespaces", "runsc"); it ends with verdict(), which:
//   1. closes the case's sessions and checks the host: no process, mount or cgroup of them
//      left, and the backend's neighbour session still answers;
//   2. records the outcome as test properties (the docs table is generated from them);
//   3. fails if a backend that claims to contain the attack did not, and otherwise marks a
//      non-claiming backend's miss as a skip that says so ("expected miss"), never a pass.
//
//   TEST_P(Filesystem, ReadShadow) {
//     auto j = py_json("out(ok=...)");
//     verdict(kWalled, "/etc/shadow unreadable", !j["ok"], j.dump());
//   }
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hostile/host_check.hpp"
#include "sandbox/sandbox.hpp"

namespace hostile {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// Which backends claim to contain an attack.
using Claims = std::set<std::string, std::less<>>;
inline const Claims kAll = {"rlimit", "namespaces", "runsc"};
inline const Claims kWalled = {"namespaces", "runsc"};  // the ones with OS walls

// Limits every case's session gets: bombs stay small.
sandbox::Limits case_limits();

// Things the whole run shares: the host secret file, the secret environment variable.
struct World {
  std::string secret_env_value;           // value of SANDBOX_TEST_SECRET in this process
  std::filesystem::path secret_file;      // world-readable host file code must not read
  std::string secret_file_text;
  std::filesystem::path state_root;       // parent of each backend's state dir
};
const World& world();

class Hostile : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& backend() const { return GetParam(); }
  sandbox::Sandbox& sb();
  // The case's main session (made in SetUp) and any extra ones; all are closed and
  // checked by verdict().
  sandbox::Session& s() { return *session_; }
  std::shared_ptr<sandbox::Session> new_session(std::string_view tag);
  // Replaces @M@ (this case's marker), @SECRET_FILE@, @SECRET_ENV@, @PORT@ and friends.
  std::string expand(std::string code) const;
  void define(std::string key, std::string value) { vars_[std::move(key)] = std::move(value); }

  // Runs code in the main session (or `on`); the python and node helpers prepend a prelude
  // with out(**kw) / out(obj) printing one "@@{json}" line, and sc() (python) for syscalls.
  sandbox::Result py(std::string code, std::chrono::milliseconds timeout = 5s, sandbox::Session* on = nullptr);
  sandbox::Result sh(std::string code, std::chrono::milliseconds timeout = 5s, sandbox::Session* on = nullptr);
  sandbox::Result js(std::string code, std::chrono::milliseconds timeout = 5s, sandbox::Session* on = nullptr);
  std::shared_ptr<sandbox::Execution> start_py(std::string code, std::chrono::milliseconds timeout,
                                               sandbox::Session* on = nullptr);
  std::shared_ptr<sandbox::Execution> start_sh(std::string code, std::chrono::milliseconds timeout,
                                               sandbox::Session* on = nullptr);
  // The last "@@{json}" line of the result's stdout, or null.
  static Json json_of(const sandbox::Result& r);
  Json py_json(std::string code, std::chrono::milliseconds timeout = 5s) { return json_of(last_ = py(std::move(code), timeout)); }
  // Remembers host processes started by the session so far (call while an attack runs).
  void snapshot();

  // Ends the case: host checks, outcome recorded, claim enforced. Call exactly once, last.
  void verdict(const Claims& claims, std::string_view what, bool contained, std::string detail,
               std::string_view contained_as = "");
  // For an attack not run on this backend because it would harm the shared host.
  void not_run(const Claims& claims, std::string_view what, std::string why);

  std::string marker_;                 // unique per case: in code, cmdlines and comms
  sandbox::Result last_;               // the last result, for details
  std::chrono::steady_clock::time_point started_;

 private:
  std::string host_leaks();
  std::shared_ptr<sandbox::Session> session_;
  std::vector<std::shared_ptr<sandbox::Session>> sessions_;
  std::vector<host::Proc> baseline_;   // our descendants before the case
  std::set<host::Proc> seen_;          // new descendants seen during the case
  std::map<std::string, std::string> vars_;
  bool judged_ = false;
};

// One fixture per group, so `--gtest_filter='*/Kernel.*'` picks a group.
class Resource : public Hostile {};
class Filesystem : public Hostile {};
class Leaks : public Hostile {};
class Kernel : public Hostile {
 protected:
  // verdict() for a syscall family: claimed by namespaces (seccomp); under runsc recorded as
  // "emulated" (gVisor's sentry answers, the host kernel is not reached).
  void kernel_verdict(std::string_view what, bool refused, std::string detail);
};
class Network : public Hostile {};
class Escape : public Hostile {};
class Agent : public Hostile {};
class Node : public Hostile {};
class Neighbour : public Hostile {
 protected:
  // Runs `bomb` (python) in the case's session while a second session answers `1+1`.
  void bomb_with_neighbour(std::string_view what, const std::string& bomb);
};

// Short human summary of a result for details.
std::string brief(const sandbox::Result& r);

}  // namespace hostile
