// Library-level figures for the fast path (issue 7): session creation, execution round trip
// and memory per idle session, per isolation backend. Medians: --benchmark_repetitions=N
// --benchmark_report_aggregates_only=true.
#include <benchmark/benchmark.h>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>
#include <sstream>
#include <thread>

#include "sandbox/sandbox.hpp"

namespace {

using namespace sandbox;

bool available(const std::string& backend) {
  auto b = isolation::describe_backend(backend);
  return b && b->support.available;
}

Options options_for(const std::string& backend, bool preload) {
  Options o;
  o.isolation = backend;
  if (!preload) o.preload = {};
  return o;
}

// From a new session to its first `1+1` result (kernel started on demand, no pool).
void SessionCreateAndFirstResult(benchmark::State& state, std::string backend, bool pooled,
                                 bool preload = false) {
  if (!available(backend)) return state.SkipWithError(("backend unavailable: " + backend).c_str());
  Options o = options_for(backend, preload);
  o.warm_pool = pooled ? 4 : 0;
  Sandbox sb(o);
  // One untimed session first: the python template (namespaces) starts with the first.
  sb.create_session({.id = "warm-up"})->run({.code = "1+1"});
  sb.close_session("warm-up");
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    if (pooled) {
      // Let the pool refill between iterations: we measure a hit, not the refill.
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
    state.ResumeTiming();
    auto s = sb.create_session({.id = "b" + std::to_string(n++)});
    auto r = s->run({.code = "1+1"});
    if (r.result != "2") state.SkipWithError("wrong result");
    state.PauseTiming();
    sb.close_session(s->id());
    state.ResumeTiming();
  }
}

// Creating a session (isolation set up, agent up and answering) and closing it; no kernel.
void SessionCreate(benchmark::State& state, std::string backend) {
  if (!available(backend)) return state.SkipWithError(("backend unavailable: " + backend).c_str());
  Sandbox sb(options_for(backend, false));
  int n = 0;
  for (auto _ : state) {
    auto s = sb.create_session({.id = "c" + std::to_string(n++), .language = Language::shell});
    state.PauseTiming();
    sb.close_session(s->id());
    state.ResumeTiming();
  }
}

// A second execution in a warm session: the pipe round trip through agent and kernel.
void WarmExecution(benchmark::State& state, std::string backend, Language lang, std::string code) {
  if (!available(backend)) return state.SkipWithError(("backend unavailable: " + backend).c_str());
  Sandbox sb(options_for(backend, false));
  auto s = sb.create_session({.language = lang});
  s->run({.language = lang, .code = code});
  for (auto _ : state) {
    auto r = s->run({.language = lang, .code = code});
    benchmark::DoNotOptimize(r);
  }
}

// PSS of idle warm python sessions (agents, kernels and the python template, which the
// kernels share pages with), summed over every process below this one, per session.
// From /proc/PID/smaps_rollup; the Python kernels preload the default modules.
void IdleSessionMemory(benchmark::State& state, std::string backend, int sessions) {
  if (!available(backend)) return state.SkipWithError(("backend unavailable: " + backend).c_str());
  Sandbox sb(options_for(backend, true));
  std::vector<std::shared_ptr<Session>> held;
  for (auto _ : state) {
    for (int i = 0; i < sessions; ++i) {
      auto s = sb.create_session({});
      s->run({.code = "1+1"});
      held.push_back(s);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // pid -> ppid for every process, then everything below us.
  std::map<pid_t, std::vector<pid_t>> children;
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char st;
    pid_t ppid = 0;
    rest >> st >> ppid;
    children[ppid].push_back(std::stoi(name));
  }
  double total_kib = 0;
  std::vector<pid_t> todo = children[::getpid()];
  while (!todo.empty()) {
    pid_t pid = todo.back();
    todo.pop_back();
    for (pid_t c : children[pid]) todo.push_back(c);
    std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
    for (std::string line; std::getline(f, line);)
      if (line.rfind("Pss:", 0) == 0) total_kib += std::stod(line.substr(4));
  }
  state.counters["sessions"] = sessions;
  state.counters["pss_mib_per_session"] = total_kib / 1024.0 / sessions;
}

// New namespaces session to its first `1+1` with the python template off, for the ratio
// against the same with it on: the cost of starting a kernel versus forking one.
void SessionCreateAndFirstResultNoTemplate(benchmark::State& state, bool preload) {
  ::setenv("SANDBOX_PYTHON_TEMPLATE", "0", 1);
  SessionCreateAndFirstResult(state, "namespaces", false, preload);
  ::unsetenv("SANDBOX_PYTHON_TEMPLATE");
}

}  // namespace

BENCHMARK_CAPTURE(WarmExecution, rlimit_python_1plus1, std::string("rlimit"), Language::python, std::string("1+1"))
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(WarmExecution, namespaces_python_1plus1, std::string("namespaces"), Language::python, std::string("1+1"))
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(WarmExecution, rlimit_shell_true, std::string("rlimit"), Language::shell, std::string("true"))
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(WarmExecution, rlimit_nodejs_1plus1, std::string("rlimit"), Language::nodejs, std::string("1+1"))
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(WarmExecution, runsc_python_1plus1, std::string("runsc"), Language::python, std::string("1+1"))
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(SessionCreate, rlimit, std::string("rlimit"))->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);
BENCHMARK_CAPTURE(SessionCreate, namespaces, std::string("namespaces"))->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);
BENCHMARK_CAPTURE(SessionCreate, runsc, std::string("runsc"))->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(SessionCreateAndFirstResult, rlimit_cold, std::string("rlimit"), false)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(SessionCreateAndFirstResult, namespaces_cold, std::string("namespaces"), false)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(SessionCreateAndFirstResult, runsc_cold, std::string("runsc"), false)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);
BENCHMARK_CAPTURE(SessionCreateAndFirstResult, namespaces_pooled, std::string("namespaces"), true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(SessionCreateAndFirstResultNoTemplate, bare, false)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(SessionCreateAndFirstResult, namespaces_cold_preloaded, std::string("namespaces"), false, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(SessionCreateAndFirstResultNoTemplate, preloaded, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK_CAPTURE(IdleSessionMemory, rlimit, std::string("rlimit"), 8)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(IdleSessionMemory, namespaces, std::string("namespaces"), 32)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
