// sandboxctl serve: the HTTP server (sandbox::server) over a Sandbox, until SIGINT/SIGTERM.
#include <fmt/core.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <memory>

#include "commands.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/server.hpp"

namespace sandbox::cli {
namespace {

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

// Thousands of idle keep-alive connections each hold a descriptor: use the hard limit.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// What the flags say, before it is turned into the library's options.
struct ServeArgs {
  Options so;
  server::Options o;
  std::string listen = "127.0.0.1:8080", placement_mode, metrics_fallback;
  double timeout_s = 0;
  std::uint64_t memory_mb = 0, sessions_memory_mb = 0, sessions_processes = 0;
  std::uint64_t idle_s = 1800, lifetime_s = 0, threads = 2, max_connections = 20000;
  std::uint64_t header_s = 10, body_s = 10, write_s = 30;
  std::uint64_t lost_retention_s = 86400, orphan_s = 0;
  bool no_auto_create = false;
};

int serve(ServeArgs& a) {
  Options& so = a.so;
  server::Options& o = a.o;
  placement::Options& go = so.placement;
  split_listen(a.listen, o);
  o.auto_create = !a.no_auto_create;
  so.idle_timeout = std::chrono::seconds(a.idle_s);
  so.lifetime = std::chrono::seconds(a.lifetime_s);
  so.lost_retention = std::chrono::seconds(a.lost_retention_s);
  so.orphan_timeout = std::chrono::seconds(a.orphan_s);
  if (a.timeout_s) set_limit(so.limits, "timeout", a.timeout_s);
  if (a.memory_mb) so.limits.memory_bytes = a.memory_mb << 20;
  if (a.sessions_memory_mb) so.sessions_memory_bytes = a.sessions_memory_mb << 20;
  if (a.sessions_processes)
    so.sessions_processes = static_cast<std::uint32_t>(std::min<std::uint64_t>(a.sessions_processes, UINT32_MAX));
  o.io_threads = std::max<std::uint64_t>(1, a.threads);
  o.max_connections = std::max<std::uint64_t>(1, a.max_connections);
  o.header_timeout = std::chrono::seconds(std::max<std::uint64_t>(1, a.header_s));
  o.read_timeout = std::chrono::seconds(std::max<std::uint64_t>(1, a.body_s));
  o.write_timeout = std::chrono::seconds(std::max<std::uint64_t>(1, a.write_s));
  if (!a.placement_mode.empty()) go.mode = placement::mode_from_string(a.placement_mode);
  if (!a.metrics_fallback.empty()) go.metrics_fallback = placement::fallback_from_string(a.metrics_fallback);
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

}  // namespace

void add_serve(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ServeArgs>();
  auto* c = app.add_subcommand("serve",
      "Serve the HTTP API (docs/http.md) until SIGINT or SIGTERM, then drain in-flight requests; "
      "with --state-dir the sessions outlive the server and the next one on that directory "
      "adopts them (docs/durability.md)");
  c->add_option("--listen", a->listen, "address to listen on ([::1]:8080 for IPv6)")->type_name("HOST:PORT")->capture_default_str();
  c->add_option("--state-dir", a->so.state_dir, "where sessions live (default: a private temporary directory)")->type_name("DIR");
  c->add_option("--isolation", a->so.isolation, "runsc | namespaces | rlimit (default: the strongest this host has)");
  c->add_option("--token-file", a->o.token_file, "bearer tokens, one per line (`name:token`); required beyond loopback")->type_name("FILE");
  c->add_option("--tls-cert", a->o.tls_cert, "serve HTTPS with this PEM certificate chain (with --tls-key)")->type_name("FILE");
  c->add_option("--tls-key", a->o.tls_key, "the certificate's PEM private key")->type_name("FILE");
  c->add_flag("--no-auto-create", a->no_auto_create, "a seed route on an unknown session id answers 404 instead of creating it");
  c->add_option("--idle-timeout", a->idle_s, "close sessions unused for S seconds (0 = never)")->type_name("S")->capture_default_str();
  c->add_option("--lifetime", a->lifetime_s, "close sessions S seconds after creation (0 = never)")->type_name("S")->capture_default_str();
  c->add_option("--timeout", a->timeout_s, "default (and maximum) execution timeout in seconds (default 10)")->type_name("S");
  c->add_option("--memory", a->memory_mb, "session memory limit in MiB (default 512)")->type_name("MB");
  const char* durable = "Durability (docs/durability.md): with --state-dir sessions outlive the server";
  c->add_flag("--close-sessions-on-exit", a->so.close_sessions_on_exit,
              "the old end: close every session (and delete its workspace) when the server exits")->group(durable);
  c->add_option("--lost-retention", a->lost_retention_s,
                "keep a lost session's workspace (downloadable) S seconds, then delete it")->group(durable)->type_name("S")->capture_default_str();
  c->add_option("--orphan-timeout", a->orphan_s,
                "an agent with no server for S seconds ends its session (0 = the idle timeout, else 15 minutes)")
      ->group(durable)->type_name("S")->capture_default_str();
  c->add_option("--warm-pool", a->so.warm_pool, "keep N ready sessions in reserve")->type_name("N")->capture_default_str();

  const char* quotas = "Quotas (docs/http.md#quotas); over one: 429 resource_exhausted naming it. A tenant is a token.";
  c->add_option("--max-sessions", a->so.max_sessions, "open sessions of all tenants together")->group(quotas)->type_name("N")->capture_default_str();
  c->add_option("--max-sessions-per-tenant", a->so.max_sessions_per_tenant, "open sessions of one tenant (0 = no quota)")->group(quotas)->type_name("N")->capture_default_str();
  c->add_option("--max-executions-per-tenant", a->so.max_executions_per_tenant,
                "one tenant's executions, submitted and not yet ended (0 = no quota)")->group(quotas)->type_name("N")->capture_default_str();
  c->add_option("--sessions-memory", a->sessions_memory_mb,
                "all sessions' memory together, a parent cgroup (default: 80% of MemTotal or MemTotal minus 1 GiB, the lower; namespaces backend)")
      ->group(quotas)->type_name("MB");
  c->add_option("--sessions-processes", a->sessions_processes,
                "all sessions' processes together (default: 75% of the kernel's pid_max / threads-max, the lower)")->group(quotas)->type_name("N");

  const char* conn = "Connections";
  c->add_option("--threads", a->threads, "I/O threads")->group(conn)->type_name("N")->capture_default_str();
  c->add_option("--max-connections", a->max_connections, "connection cap (at most half the open-file limit)")->group(conn)->type_name("N")->capture_default_str();
  c->add_option("--header-timeout", a->header_s, "a started request header must be complete in S seconds (408)")->group(conn)->type_name("S")->capture_default_str();
  c->add_option("--body-timeout", a->body_s, "a request body must bring 1 KiB every S seconds (408)")->group(conn)->type_name("S")->capture_default_str();
  c->add_option("--write-timeout", a->write_s, "drop a client that takes none of an answer for S seconds")->group(conn)->type_name("S")->capture_default_str();

  const char* place = "Placement (docs/kubernetes.md): where new sessions run";
  c->add_option("--placement", a->placement_mode,
                "local (default) | kubernetes (a pod per session) | hybrid (the local cluster below the water level, else the cloud gateway)")
      ->group(place)->type_name("MODE");
  c->add_option("--kubeconfig", a->so.placement.kubeconfig, "the cluster's credentials (default: the pod's service account)")->group(place)->type_name("FILE");
  c->add_option("--namespace", a->so.placement.namespace_, "where session pods go (default: the kubeconfig's)")->group(place)->type_name("NS");
  c->add_option("--pod-template", a->so.placement.pod_template, "a Pod manifest (YAML or JSON) for session pods (default: built-in)")->group(place)->type_name("FILE");
  c->add_option("--runtime-class", a->so.placement.runtime_class, "the pods' runtimeClassName, e.g. gvisor")->group(place)->type_name("RC");
  c->add_option("--pod-token-file", a->so.placement.pod_token_file, "bearer token for the pods' servers (`name:token`)")->group(place)->type_name("F");
  c->add_option("--cloud-gateway", a->so.placement.cloud_gateway, "hybrid: the cloud cluster's gateway (http(s)://HOST:PORT)")->group(place)->type_name("URL");
  c->add_option("--cloud-token-file", a->so.placement.cloud_token_file, "hybrid: bearer token for the cloud gateway")->group(place)->type_name("F");
  c->add_option("--water-level", a->so.placement.water_level, "hybrid: burst to the cloud at or above this level")->group(place)->type_name("X")->capture_default_str();
  c->add_option("--metrics-fallback", a->metrics_fallback, "hybrid, metrics unreadable: local (default) | cloud | refuse")->group(place)->type_name("P");
  c->add_option("--gateway-name", a->so.placement.gateway_name, "recorded on the pods this gateway creates (default: the host name)")->group(place)->type_name("NAME");
  c->add_flag("--quiet", a->o.quiet, "no request log on stderr");
  c->callback([a, &exit_code] { exit_code = serve(*a); });
}

}  // namespace sandbox::cli
