// sandboxctl serve: the HTTP server (sandbox::server) over a Sandbox, until SIGINT/SIGTERM.
#include <fmt/core.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/server.hpp"

namespace sandbox::cli {
namespace {

constexpr const char* serve_usage = R"(usage: sandboxctl serve [options]

Serve the HTTP API (docs/http.md) until SIGINT or SIGTERM, then drain in-flight requests
and close every session.

  --listen HOST:PORT   address to listen on (default 127.0.0.1:8080; [::1]:8080 for IPv6)
  --state-dir DIR      where sessions live (default: a private temporary directory)
  --isolation NAME     runsc | namespaces | rlimit (default: the strongest this host has)
  --token-file FILE    bearer tokens, one per line (`name:token`); required beyond loopback
  --tls-cert FILE      serve HTTPS with this PEM certificate chain (with --tls-key)
  --tls-key FILE       the certificate's PEM private key
  --no-auto-create     a seed route on an unknown session id answers 404 instead of creating it
  --idle-timeout S     close sessions unused for S seconds (default 1800; 0 = never)
  --lifetime S         close sessions S seconds after creation (default 0 = never)
  --timeout S          default (and maximum) execution timeout in seconds (default 10)
  --memory MB          session memory limit in MiB (default 512)
  --warm-pool N        keep N ready sessions in reserve (default 0)

Quotas (docs/http.md#quotas); over one: 429 resource_exhausted naming it. A tenant is a token.
  --max-sessions N     open sessions of all tenants together (default 1000)
  --max-sessions-per-tenant N    open sessions of one tenant (default 0 = no quota)
  --max-executions-per-tenant N  one tenant's executions, submitted and not yet ended
                       (default 0 = no quota)
  --sessions-memory MB all sessions' memory together, a parent cgroup (default: 80% of
                       MemTotal or MemTotal minus 1 GiB, the lower; namespaces backend)
  --sessions-processes N  all sessions' processes together (default: 75% of the kernel's
                       pid_max / threads-max, the lower)
  --threads N          I/O threads (default 2)
  --max-connections N  connection cap (default 20000, at most half the open-file limit)
  --header-timeout S   a started request header must be complete in S seconds (default 10; 408)
  --body-timeout S     a request body must bring 1 KiB every S seconds (default 10; 408)
  --write-timeout S    drop a client that takes none of an answer for S seconds (default 30)

Placement (docs/kubernetes.md): where new sessions run.
  --placement MODE     local (default) | kubernetes (a pod per session) | hybrid (the local
                       cluster below the water level, else the cloud gateway)
  --kubeconfig FILE    the cluster's credentials (default: the pod's service account)
  --namespace NS       where session pods go (default: the kubeconfig's)
  --pod-template FILE  a Pod manifest (YAML or JSON) for session pods (default: built-in)
  --runtime-class RC   the pods' runtimeClassName, e.g. gvisor
  --pod-token-file F   bearer token for the pods' servers (`name:token`)
  --cloud-gateway URL  hybrid: the cloud cluster's gateway (http://HOST:PORT)
  --cloud-token-file F hybrid: bearer token for the cloud gateway
  --water-level X      hybrid: burst to the cloud at or above this level (default 0.8)
  --metrics-fallback P hybrid, metrics unreadable: local (default) | cloud | refuse
  --gateway-name NAME  recorded on the pods this gateway creates (default: the host name)
  --quiet              no request log on stderr
  --help               this text
)";

[[noreturn]] void usage_error(const std::string& msg) {
  throw Error(errc::invalid_argument, msg + " (see sandboxctl serve --help)");
}

std::uint64_t number(std::string_view flag, std::string_view v) {
  std::uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc{} || p != v.data() + v.size())
    usage_error(fmt::format("{} wants a non-negative integer, not '{}'", flag, v));
  return out;
}

void split_listen(std::string_view v, server::Options& o) {
  auto colon = v.rfind(':');
  if (colon == std::string_view::npos) usage_error("--listen wants HOST:PORT");
  std::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) usage_error("--listen wants HOST:PORT");
  auto port = number("--listen", v.substr(colon + 1));
  if (port > 65535) usage_error("--listen: port out of range");
  o.host = std::string(host);
  o.port = static_cast<std::uint16_t>(port);
}

double water_level(std::string_view v) {
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc{} || p != v.data() + v.size())
    usage_error(fmt::format("--water-level wants a number in (0, 1], not '{}'", v));
  return out;  // range: placement::Options::validate()
}

// Thousands of idle keep-alive connections each hold a descriptor: use the hard limit.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int serve_main(int argc, char** argv) {
  Options so;
  so.idle_timeout = std::chrono::seconds(1800);
  server::Options o;
  placement::Options& go = so.placement;
  o.host = "127.0.0.1";
  o.port = 8080;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(fmt::format("{} wants a value", a));
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      fmt::print("{}", serve_usage);
      return 0;
    } else if (a == "--listen") split_listen(value(), o);
    else if (a == "--state-dir") so.state_dir = std::string(value());
    else if (a == "--isolation") so.isolation = std::string(value());
    else if (a == "--token-file") o.token_file = std::string(value());
    else if (a == "--tls-cert") o.tls_cert = std::string(value());
    else if (a == "--tls-key") o.tls_key = std::string(value());
    else if (a == "--no-auto-create") o.auto_create = false;
    else if (a == "--idle-timeout") so.idle_timeout = std::chrono::seconds(number(a, value()));
    else if (a == "--lifetime") so.lifetime = std::chrono::seconds(number(a, value()));
    else if (a == "--timeout") set_limit(so.limits, "timeout", static_cast<double>(number(a, value())));
    else if (a == "--memory") so.limits.memory_bytes = number(a, value()) << 20;
    else if (a == "--warm-pool") so.warm_pool = number(a, value());
    else if (a == "--max-sessions") so.max_sessions = number(a, value());
    else if (a == "--max-sessions-per-tenant") so.max_sessions_per_tenant = number(a, value());
    else if (a == "--max-executions-per-tenant") so.max_executions_per_tenant = number(a, value());
    else if (a == "--sessions-memory") so.sessions_memory_bytes = number(a, value()) << 20;
    else if (a == "--sessions-processes")
      so.sessions_processes = static_cast<std::uint32_t>(std::min<std::uint64_t>(number(a, value()), UINT32_MAX));
    else if (a == "--threads") o.io_threads = std::max<std::uint64_t>(1, number(a, value()));
    else if (a == "--max-connections") o.max_connections = std::max<std::uint64_t>(1, number(a, value()));
    else if (a == "--header-timeout") o.header_timeout = std::chrono::seconds(std::max<std::uint64_t>(1, number(a, value())));
    else if (a == "--body-timeout") o.read_timeout = std::chrono::seconds(std::max<std::uint64_t>(1, number(a, value())));
    else if (a == "--write-timeout") o.write_timeout = std::chrono::seconds(std::max<std::uint64_t>(1, number(a, value())));
    else if (a == "--quiet") o.quiet = true;
    else if (a == "--placement") go.mode = placement::mode_from_string(value());
    else if (a == "--kubeconfig") go.kubeconfig = std::string(value());
    else if (a == "--namespace") go.namespace_ = std::string(value());
    else if (a == "--pod-template") go.pod_template = std::string(value());
    else if (a == "--runtime-class") go.runtime_class = std::string(value());
    else if (a == "--pod-token-file") go.pod_token_file = std::string(value());
    else if (a == "--cloud-gateway") go.cloud_gateway = std::string(value());
    else if (a == "--cloud-token-file") go.cloud_token_file = std::string(value());
    else if (a == "--water-level") go.water_level = water_level(value());
    else if (a == "--metrics-fallback") go.metrics_fallback = placement::fallback_from_string(value());
    else if (a == "--gateway-name") go.gateway_name = std::string(value());
    else usage_error(fmt::format("unknown option '{}'", a));
  }
  so.limits.validate();
  raise_fd_limit();
  if (go.mode != placement::Mode::local && go.gateway_name == "gateway") {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0 && host[0]) go.gateway_name = host;
  }
  Sandbox sb(so);  // places sessions, and finds those placed before a restart
  if (go.mode != placement::Mode::local) {
    std::size_t known = 0;
    for (auto& s : sb.sessions()) known += s->placement() != "local";
    fmt::print(stderr, "sandboxctl serve: placement {}, {} session(s) placed elsewhere\n",
               placement::to_string(go.mode), known);
  }
  server::Server srv(sb, o);
  // Printed before serving, so scripts can wait for this line (and learn an ephemeral port).
  srv.start();
  fmt::print(stderr, "sandboxctl serve: listening on {} (isolation {}{})\n", srv.url(),
             sb.isolation(), o.token_file.empty() ? ", no auth" : ", bearer tokens");
  std::fflush(stderr);
  srv.run();
  return 0;
}

}  // namespace sandbox::cli
