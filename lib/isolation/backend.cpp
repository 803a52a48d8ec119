#include <string>

#include "isolation/backends.hpp"
#include "sandbox/error.hpp"

namespace sandbox::isolation {

std::vector<std::string> backend_names() { return {"runsc", "namespaces", "rlimit"}; }

std::unique_ptr<Backend> make_backend_unchecked(std::string_view n) {
  if (n == "rlimit") return make_rlimit_backend();
  if (n == "namespaces") return make_namespaces_backend();
  if (n == "runsc") return make_runsc_backend();
  return nullptr;
}

std::unique_ptr<Backend> make_backend(std::string_view name) {
  auto make = make_backend_unchecked;
  if (name.empty() || name == "auto") {
    // The strongest that works here. runsc is the strongest wall but costs ~200 ms a session,
    // so the automatic choice prefers namespaces when both work; runsc is opt-in by name.
    for (std::string_view n : {"namespaces", "rlimit"}) {
      auto b = make(n);
      if (b && b->probe().available) return b;
    }
    throw Error(errc::unavailable, "no isolation backend works on this host (see sandboxctl doctor)");
  }
  auto b = make(name);
  if (!b) throw Error(errc::invalid_argument, "unknown isolation '" + std::string(name) + "' (runsc, namespaces, rlimit)");
  if (auto s = b->probe(); !s.available)
    throw Error(errc::unavailable, "isolation " + std::string(name) + " is not available here: " + s.reason);
  return b;
}

std::vector<std::string> agent_argv(const std::filesystem::path& agent, int control_fd,
                                    const std::string& workspace_inside,
                                    const std::filesystem::path& runtime_inside, const LaunchSpec& spec,
                                    int listen_fd) {
  std::vector<std::string> argv = {agent.string(),
                                   "--control-fd", std::to_string(control_fd),
                                   "--workspace", workspace_inside,
                                   "--runtime", runtime_inside.string(),
                                   "--python", spec.interpreters.python.string(),
                                   "--node", spec.interpreters.node.string(),
                                   "--shell", spec.interpreters.shell.string()};
  if (!spec.preload.empty()) {
    std::string joined;
    for (const auto& m : spec.preload) joined += (joined.empty() ? "" : ",") + m;
    argv.push_back("--preload");
    argv.push_back(joined);
  }
  if (spec.durable) {
    if (listen_fd < 0) throw Error(errc::invalid_argument, "a durable agent needs its listening socket's fd");
    argv.insert(argv.end(), {"--listen-fd", std::to_string(listen_fd)});
    // 0 is "unset" here (the agent's own default), not "end at once when orphaned".
    if (spec.orphan_timeout.count() > 0)
      argv.insert(argv.end(), {"--orphan-timeout-ms", std::to_string(spec.orphan_timeout.count())});
    argv.insert(argv.end(), {"--lifetime-deadline-ms", std::to_string(spec.lifetime_deadline_ms)});
  }
  return argv;
}

std::vector<std::string> agent_environment(const std::string& workspace_inside) {
  return {"PATH=/usr/local/bin:/usr/bin:/bin",
          "HOME=" + workspace_inside,
          "LANG=C.UTF-8",
          "LC_ALL=C.UTF-8",
          "TMPDIR=/tmp",
          "MPLBACKEND=Agg",
          "MPLCONFIGDIR=/tmp/.matplotlib",
          "PYTHONDONTWRITEBYTECODE=1",
          "PYTHONUNBUFFERED=1",
          "OPENBLAS_NUM_THREADS=1",
          "OMP_NUM_THREADS=1",
          "TERM=dumb"};
}

std::optional<BackendInfo> describe_backend(std::string_view name) {
  auto b = make_backend_unchecked(name);
  if (!b) return std::nullopt;
  return BackendInfo{std::string(b->name()), b->probe(), b->containment()};
}

std::vector<BackendInfo> describe_backends() {
  std::vector<BackendInfo> out;
  for (const auto& n : backend_names())
    if (auto b = describe_backend(n)) out.push_back(std::move(*b));
  return out;
}

std::string default_backend() { return std::string(make_backend("")->name()); }

}  // namespace sandbox::isolation
