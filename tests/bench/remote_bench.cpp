// remote_bench: the p50 of `1+1` run in one session used locally, and through
// sandbox::connect() to an in-process Server on loopback (the same Sandbox, rlimit).
// Prints figures; asserts nothing. Run: build/tests/bench/remote_bench [runs]
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "sandbox/remote.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/server.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void report(const char* what, sandbox::Session& s, int runs) {
  for (int i = 0; i < 5; ++i) s.run({.code = "1+1"});  // warm the kernel and the connection
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    auto r = s.run({.code = "1+1"});
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!r.result || *r.result != "2") {
      fmt::print(stderr, "{}: unexpected result\n", what);
      std::exit(1);
    }
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[static_cast<std::size_t>(q * (ms.size() - 1))]; };
  fmt::print("{:<28} runs {:>4}  p50 {:7.3f} ms  p90 {:7.3f} ms  p99 {:7.3f} ms\n", what, runs,
             at(0.5), at(0.9), at(0.99));
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  auto state = std::filesystem::temp_directory_path() / ("sandbox-remote-bench-" + std::to_string(::getpid()));
  {
    sandbox::Options so;
    so.state_dir = state;
    so.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    so.isolation = "rlimit";
    so.preload.clear();
    sandbox::Sandbox sb(so);
    sandbox::server::Server srv(sb, {.port = 0, .quiet = true});
    srv.start();
    auto local = sb.create_session({.id = "bench"});
    report("local Session::run", *local, runs);
    auto remote = sandbox::connect(srv.url());
    auto same = remote->session("bench");  // the very session, through the server
    report("connect() RemoteSession::run", *same, runs);
    srv.stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
  return 0;
}
