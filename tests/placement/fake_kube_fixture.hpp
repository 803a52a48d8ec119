// tests/placement/fake_kube_fixture.hpp: runs tests/placement/fake_kube.py as a subprocess.
//
//   FakeKube fk;                       // skips the test when python3/openssl are missing
//   auto cfg = fk.config();            // a KubeConfig from the fake's kubeconfig
//   fk.control("PUT", "/_fake/nodes", {...});
#pragma once

#include "placement/kube_client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fcntl.h>
#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sandbox::placement::testing {

class FakeKube {
 public:
  // Each test process gets its own 127.X.Y. range of pod addresses: ctest runs tests in
  // parallel, and two fakes handing out the same pod address would see each other's pods.
  static std::string default_prefix() {
    unsigned p = static_cast<unsigned>(::getpid());
    return "127." + std::to_string(30 + p % 200) + "." + std::to_string((p / 200) % 250);
  }

  explicit FakeKube(std::string ip_prefix = default_prefix()) {
    char tmpl[] = "/tmp/fake-kube-XXXXXX";
    dir_ = mkdtemp(tmpl);
    chmod(dir_.c_str(), 0711);  // session pods running code as another uid pass through it
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    std::string script = std::string(SANDBOX_TEST_SOURCE_DIR) + "/tests/placement/fake_kube.py";
    std::string log = dir_ + "/fake.log";
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // a test that aborts takes its fake (and pods) along
      dup2(out[1], 1);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) dup2(fd, 2);
      execlp("python3", "python3", script.c_str(), "--dir", dir_.c_str(), "--ip-prefix",
             ip_prefix.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char* line = nullptr;
    size_t cap = 0;
    if (f && getline(&line, &cap, f) > 0) info_ = nlohmann::json::parse(line, nullptr, false);
    free(line);
    if (f) fclose(f);
  }
  ~FakeKube() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      waitpid(pid_, &st, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  FakeKube(const FakeKube&) = delete;
  FakeKube& operator=(const FakeKube&) = delete;

  bool ok() const { return info_.is_object(); }
  const nlohmann::json& info() const { return info_; }
  std::string kubeconfig() const { return info_["kubeconfig"]; }
  std::string log() const { return dir_ + "/fake.log"; }
  KubeConfig config() const { return KubeConfig::from_kubeconfig(kubeconfig()); }

  nlohmann::json control(std::string_view method, const std::string& path,
                         const nlohmann::json& body = nullptr) {
    KubeClient c(config(), ClientOptions{.max_attempts = 1});
    return c.call(method, path, body.is_null() ? nullptr : &body);
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  nlohmann::json info_;
};

}  // namespace sandbox::placement::testing
