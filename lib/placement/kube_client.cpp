// placement/kube_client.cpp: configuration, the HTTP exchange, the retry policy, the calls.
#include "placement/kube_client.hpp"

#include "placement/yaml.hpp"
#include "sys/base64.hpp"

#include <sandbox/error.hpp>

#include "net/http_client.hpp"
#include "net/url.hpp"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace sandbox::placement {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Quantities

double parse_quantity(std::string_view q) {
  std::string_view s = q;
  double sign = 1;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    sign = s.front() == '-' ? -1 : 1;
    s.remove_prefix(1);
  }
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s.front())) || s.front() == '.'))
    throw Error(errc::invalid_argument, fmt::format("bad quantity '{}'", q));
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, std::chars_format::general);
  if (ec != std::errc{}) throw Error(errc::invalid_argument, fmt::format("bad quantity '{}'", q));
  std::string_view suffix(end, static_cast<std::size_t>(s.data() + s.size() - end));
  static const std::pair<std::string_view, double> suffixes[] = {
      {"", 1},         {"n", 1e-9},     {"u", 1e-6},     {"m", 1e-3},     {"k", 1e3},
      {"M", 1e6},      {"G", 1e9},      {"T", 1e12},     {"P", 1e15},     {"E", 1e18},
      {"Ki", 0x1p10},  {"Mi", 0x1p20},  {"Gi", 0x1p30},  {"Ti", 0x1p40},  {"Pi", 0x1p50},
      {"Ei", 0x1p60}};
  for (auto [name, mult] : suffixes)
    if (suffix == name) return sign * value * mult;
  throw Error(errc::invalid_argument, fmt::format("bad quantity suffix in '{}'", q));
}

namespace {

double quantity_or_zero(const json& j) {
  if (j.is_string()) return parse_quantity(j.get<std::string>());
  if (j.is_number()) return j.get<double>();
  return 0;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(errc::not_found, fmt::format("cannot read {}", p.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string str(const json& j, std::string_view key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

const json& named(const json& doc, std::string_view list, std::string_view entry,
                  const std::string& name) {
  auto l = doc.find(list);
  if (l != doc.end() && l->is_array())
    for (const auto& e : *l)
      if (e.is_object() && str(e, "name") == name && e.contains(entry)) return e[std::string(entry)];
  throw Error(errc::invalid_argument, fmt::format("kubeconfig: no {} named '{}'", list, name));
}

// "data" wins over the file, as in kubectl; file paths are relative to the kubeconfig.
std::string data_or_file(const json& j, std::string_view data_key, std::string_view file_key,
                         const std::filesystem::path& dir) {
  if (auto d = str(j, data_key); !d.empty()) return sys::base64_decode(d);
  if (auto f = str(j, file_key); !f.empty()) return read_file(dir / f);
  return {};
}

void set_server(KubeConfig& c, std::string_view server) {
  net::Url u;
  try {
    u = net::Url::parse(server);
  } catch (const Error& e) {
    throw Error(errc::invalid_argument, "kubeconfig: server: " + e.message());
  }
  if (!u.tls) throw Error(errc::invalid_argument, fmt::format("kubeconfig: server '{}' is not https://", server));
  c.host = u.host;
  c.port = std::to_string(u.port);
  c.base_path = u.path;
}

}  // namespace

KubeConfig KubeConfig::from_kubeconfig(const std::filesystem::path& file, std::string_view context) {
  json doc = parse_yaml(read_file(file));
  if (!doc.is_object()) throw Error(errc::invalid_argument, "kubeconfig: not a mapping");
  std::string ctx_name = context.empty() ? str(doc, "current-context") : std::string(context);
  if (ctx_name.empty()) throw Error(errc::invalid_argument, "kubeconfig: no current-context");
  const json& ctx = named(doc, "contexts", "context", ctx_name);
  const json& cluster = named(doc, "clusters", "cluster", str(ctx, "cluster"));
  const json& user = named(doc, "users", "user", str(ctx, "user"));
  auto dir = file.parent_path();

  KubeConfig c;
  set_server(c, str(cluster, "server"));
  c.tls_server_name = str(cluster, "tls-server-name");
  c.ca_pem = data_or_file(cluster, "certificate-authority-data", "certificate-authority", dir);
  c.insecure_skip_tls_verify = str(cluster, "insecure-skip-tls-verify") == "true";
  if (user.is_object()) {
    if (user.contains("exec") || user.contains("auth-provider"))
      throw Error(errc::invalid_argument,
                  "kubeconfig: exec and auth-provider users are not supported; use a token or a "
                  "client certificate");
    c.token = str(user, "token");
    if (auto tf = str(user, "tokenFile"); !tf.empty()) c.token_file = dir / tf;
    c.client_cert_pem = data_or_file(user, "client-certificate-data", "client-certificate", dir);
    c.client_key_pem = data_or_file(user, "client-key-data", "client-key", dir);
  }
  if (auto ns = str(ctx, "namespace"); !ns.empty()) c.namespace_ = ns;
  return c;
}

KubeConfig KubeConfig::in_cluster(const std::filesystem::path& root) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    throw Error(errc::unavailable,
                "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no --kubeconfig");
  KubeConfig c;
  c.host = host;
  c.port = port;
  c.token_file = root / "token";
  c.ca_pem = read_file(root / "ca.crt");
  std::error_code ec;
  if (std::filesystem::exists(root / "namespace", ec)) {
    auto ns = read_file(root / "namespace");
    while (!ns.empty() && std::isspace(static_cast<unsigned char>(ns.back()))) ns.pop_back();
    if (!ns.empty()) c.namespace_ = ns;
  }
  read_file(c.token_file);  // fail now, not on the first call
  return c;
}

KubeConfig KubeConfig::load(const std::filesystem::path& kubeconfig) {
  return kubeconfig.empty() ? in_cluster() : from_kubeconfig(kubeconfig);
}

// ---------------------------------------------------------------------------------------
// Pod state

PodState PodState::from_json(const json& pod) {
  PodState s;
  const json& meta = pod.value("metadata", json::object());
  const json& status = pod.value("status", json::object());
  s.name = str(meta, "name");
  s.uid = str(meta, "uid");
  s.resource_version = str(meta, "resourceVersion");
  s.deleting = meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
  for (const char* which : {"labels", "annotations"}) {
    auto it = meta.find(which);
    if (it == meta.end() || !it->is_object()) continue;
    auto& out = std::string_view(which) == "labels" ? s.labels : s.annotations;
    for (auto& [k, v] : it->items())
      if (v.is_string()) out[k] = v.get<std::string>();
  }
  s.phase = str(status, "phase");
  s.pod_ip = str(status, "podIP");
  if (auto c = status.find("conditions"); c != status.end() && c->is_array()) {
    for (const auto& cond : *c) {
      if (str(cond, "type") == "Ready") s.ready = str(cond, "status") == "True";
      if (str(cond, "type") == "PodScheduled" && str(cond, "status") == "False")
        s.message = str(cond, "reason") + ": " + str(cond, "message");
    }
  }
  if (auto cs = status.find("containerStatuses"); cs != status.end() && cs->is_array()) {
    for (const auto& c : *cs) {
      const json& state = c.value("state", json::object());
      for (const char* k : {"waiting", "terminated"})
        if (state.contains(k) && !str(state[k], "reason").empty() && s.message.empty())
          s.message = str(state[k], "reason") +
                      (str(state[k], "message").empty() ? "" : ": " + str(state[k], "message"));
    }
  }
  if (auto spec = pod.find("spec"); spec != pod.end() && spec->contains("containers")) {
    for (const auto& c : (*spec)["containers"]) {
      auto req = c.value("resources", json::object()).value("requests", json::object());
      s.cpu_requests += quantity_or_zero(req.value("cpu", json()));
      s.memory_requests += quantity_or_zero(req.value("memory", json()));
    }
  }
  return s;
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out.push_back(static_cast<char>(c));
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The exchange: the one HTTP client (lib/net), kept alive between calls

struct KubeClient::Http {
  net::Client client;
};

namespace {

// A failure worth retrying: the request may not have been served.
struct Transient : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Reply {
  unsigned status = 0;
  std::string body;
  std::string retry_after;
};

net::Request kube_request(std::string_view method, const std::string& target, std::string body,
                          const std::string& auth, std::chrono::milliseconds timeout) {
  net::Request req{.method = std::string(method), .target = target, .body = std::move(body),
                   .headers = {{"Accept", "application/json"}}, .timeout = timeout};
  if (!auth.empty()) req.headers.emplace_back("Authorization", auth);
  return req;
}

// Runs one exchange; connection failures and timeouts become Transient, a TLS failure
// (the config is wrong) an Error at once.
template <class F>
Reply perform(F&& f) {
  try {
    net::Response r = f();
    return Reply{r.status, std::move(r.body), r.header("retry-after")};
  } catch (const Error& e) {
    if (e.code_value() != errc::unavailable) throw;
    if (e.message().find("TLS") != std::string::npos) throw Error(errc::unavailable, "kubernetes: " + e.message());
    throw Transient(e.message());
  }
}

// The Status message of an error body, or the body itself.
std::string status_message(const Reply& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    auto reason = str(j, "reason");
    return (reason.empty() ? "" : reason + ": ") + j["message"].get<std::string>();
  }
  return r.body.substr(0, 200);
}

errc errc_for_status(unsigned s) {
  switch (s) {
    case 400: case 422: return errc::invalid_argument;
    case 401: return errc::unauthenticated;
    case 403: return errc::permission_denied;
    case 404: return errc::not_found;
    case 409: return errc::already_exists;
    case 410: return errc::failed_precondition;
    case 429: return errc::resource_exhausted;
    default: return s >= 500 ? errc::unavailable : errc::internal;
  }
}

bool retryable(unsigned s) { return s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

}  // namespace

KubeClient::KubeClient(KubeConfig config, ClientOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  net::Url url;
  url.tls = true;
  url.host = config_.host;
  unsigned port = 0;
  auto [end, ec] = std::from_chars(config_.port.data(), config_.port.data() + config_.port.size(), port);
  if (ec != std::errc{} || end != config_.port.data() + config_.port.size() || port < 1 || port > 65535)
    throw Error(errc::invalid_argument, fmt::format("kubernetes: bad port '{}'", config_.port));
  url.port = static_cast<std::uint16_t>(port);
  url.path = config_.base_path;
  try {
    http_.reset(new Http{net::Client(
        std::move(url), {.ca_pem = config_.ca_pem,
                         .client_cert_pem = config_.client_cert_pem,
                         .client_key_pem = config_.client_key_pem,
                         .server_name = config_.tls_server_name,
                         .verify = !config_.insecure_skip_tls_verify,
                         .connect_timeout = options_.call_timeout,
                         .timeout = options_.call_timeout,
                         .body_limit = 64u << 20,
                         .user_agent = options_.user_agent})});  // Http{} is built in place
  } catch (const Error& e) {
    throw Error(errc::invalid_argument, fmt::format("kubernetes: bad certificate or key: {}", e.message()));
  }
}

KubeClient::~KubeClient() = default;

std::string KubeClient::bearer() const {
  std::string token = config_.token;
  if (token.empty() && !config_.token_file.empty()) token = read_file(config_.token_file);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token.empty() ? std::string{} : "Bearer " + token;
}

namespace {

// One call with retries. `attempts` says how many were made (create_pod's 409 logic).
json call_with_retries(net::Client& http, const ClientOptions& o,
                       const std::string& auth, std::string_view method, const std::string& target,
                       const json* body, int& attempts) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  auto backoff = o.backoff_initial;
  std::string last;
  unsigned last_status = 0;
  for (attempts = 1; attempts <= o.max_attempts; ++attempts) {
    std::chrono::milliseconds wait = backoff;
    try {
      Reply r = perform([&] { return http.request(kube_request(method, target, body ? body->dump() : "", auth, o.call_timeout)); });
      if (r.status >= 200 && r.status < 300)
        return r.body.empty() ? json() : json::parse(r.body, nullptr, false);
      last_status = r.status;
      last = fmt::format("kubernetes: {} {}: {} {}", method, target, r.status, status_message(r));
      if (!retryable(r.status)) throw Error(errc_for_status(r.status), last);
      int secs = 0;
      if (!r.retry_after.empty() &&
          std::from_chars(r.retry_after.data(), r.retry_after.data() + r.retry_after.size(), secs).ec ==
              std::errc{})
        wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(secs), o.backoff_max);
    } catch (const Transient& t) {
      last_status = 0;
      last = fmt::format("kubernetes: {}", t.what());
    }
    if (attempts == o.max_attempts) break;
    // Full jitter on the exponential step keeps gateways from retrying in lockstep.
    auto jitter = std::uniform_int_distribution<long>(0, wait.count() / 2)(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait.count() / 2 + jitter));
    backoff = std::min(backoff * 2, o.backoff_max);
  }
  attempts = o.max_attempts;
  throw Error(last_status == 429 ? errc::resource_exhausted : errc::unavailable,
              fmt::format("{} (after {} attempts)", last, o.max_attempts));
}

std::string pods_path(const KubeConfig& c) {
  return fmt::format("/api/v1/namespaces/{}/pods", url_encode(c.namespace_));
}

}  // namespace

json KubeClient::call(std::string_view method, const std::string& target, const json* body) {
  int attempts = 0;
  return call_with_retries(http_->client, options_, bearer(), method, target, body, attempts);
}

json KubeClient::create_pod(const json& pod) {
  int attempts = 0;
  try {
    return call_with_retries(http_->client, options_, bearer(), "POST", pods_path(config_),
                             &pod, attempts);
  } catch (const Error& e) {
    // An earlier attempt may have created it before failing to answer: if what exists is
    // ours (same labels), that is success.
    if (e.code_value() != errc::already_exists || attempts <= 1) throw;
    auto existing = get_pod_json(pod["metadata"]["name"].get<std::string>());
    if (existing["metadata"].value("labels", json::object()) ==
        pod["metadata"].value("labels", json::object()))
      return existing;
    throw;
  }
}

json KubeClient::get_pod_json(std::string_view name) {
  return call("GET", pods_path(config_) + "/" + url_encode(name));
}

std::optional<PodState> KubeClient::get_pod(std::string_view name) {
  try {
    return PodState::from_json(get_pod_json(name));
  } catch (const Error& e) {
    if (e.code_value() == errc::not_found) return std::nullopt;
    throw;
  }
}

bool KubeClient::delete_pod(std::string_view name) {
  json opts = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"gracePeriodSeconds", 0}};
  try {
    call("DELETE", pods_path(config_) + "/" + url_encode(name) + "?gracePeriodSeconds=0", &opts);
    return true;
  } catch (const Error& e) {
    if (e.code_value() == errc::not_found) return false;
    throw;
  }
}

PodList KubeClient::list_pods(std::string_view label_selector, std::string_view field_selector) {
  std::string target = pods_path(config_) + "?";
  if (!label_selector.empty()) target += "labelSelector=" + url_encode(label_selector) + "&";
  if (!field_selector.empty()) target += "fieldSelector=" + url_encode(field_selector) + "&";
  target.pop_back();
  json list = call("GET", target);
  PodList out;
  out.resource_version = str(list.value("metadata", json::object()), "resourceVersion");
  for (const auto& item : list.value("items", json::array())) out.items.push_back(PodState::from_json(item));
  return out;
}

void KubeClient::watch_pods(std::string_view label_selector, std::string_view field_selector,
                            std::string_view resource_version,
                            const std::function<bool(const WatchEvent&)>& on_event,
                            Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count();
  if (left <= 0) return;
  std::string target = fmt::format("{}?watch=true&allowWatchBookmarks=true&timeoutSeconds={}",
                                   pods_path(config_), left + 1);
  if (!resource_version.empty()) target += "&resourceVersion=" + url_encode(resource_version);
  if (!label_selector.empty()) target += "&labelSelector=" + url_encode(label_selector);
  if (!field_selector.empty()) target += "&fieldSelector=" + url_encode(field_selector);

  std::optional<Error> stop_error;
  std::function<bool(std::string_view)> on_line = [&](std::string_view line) {
    auto ev = json::parse(line, nullptr, false);
    if (!ev.is_object()) return true;  // a partial or blank line: skip
    auto type = str(ev, "type");
    const json& obj = ev.value("object", json::object());
    if (type == "ERROR") {
      int code = obj.value("code", 500);
      stop_error.emplace(code == 410 ? errc::failed_precondition : errc_for_status(static_cast<unsigned>(code)),
                         fmt::format("kubernetes: watch: {} {}", code, str(obj, "message")));
      return false;
    }
    return on_event(WatchEvent{type, PodState::from_json(obj), obj});
  };
  // Lines of the stream are events; a chunk may end mid-line.
  std::string pending;
  std::function<bool(std::string_view)> on_chunk = [&](std::string_view chunk) {
    pending.append(chunk);
    std::size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      bool more = on_line(std::string_view(pending).substr(0, nl));
      pending.erase(0, nl + 1);
      if (!more) return false;
    }
    return Clock::now() < deadline;
  };
  auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  Reply r;
  try {
    r = perform([&] { return http_->client.stream(kube_request("GET", target, "", bearer(), idle), on_chunk); });
  } catch (const Transient& t) {
    if (Clock::now() + std::chrono::milliseconds(50) >= deadline) return;  // the deadline passed
    throw Error(errc::unavailable, fmt::format("kubernetes: watch: {}", t.what()));
  }
  if (r.status != 200)
    throw Error(errc_for_status(r.status), fmt::format("kubernetes: watch: {} {}", r.status, status_message(r)));
  if (stop_error) throw *stop_error;
}

PodState KubeClient::wait_pod(std::string_view name, const std::function<bool(const PodState&)>& done,
                              std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string field = "metadata.name=" + std::string(name);
  auto backoff = options_.backoff_initial;
  while (true) {
    // List: the state now and the resourceVersion to watch from.
    PodList list = list_pods({}, field);
    PodState state;
    state.name = std::string(name);
    state.gone = list.items.empty();
    if (!list.items.empty()) state = list.items.front();
    if (state.gone || done(state)) return state;
    std::string rv = list.resource_version;
    // Watch until done; the server may end a watch at any time: re-watch from the last
    // resourceVersion seen; 410 means it is too old: re-list.
    bool relist = false;
    while (!relist) {
      if (Clock::now() >= deadline)
        throw Error(errc::timeout, fmt::format("pod {} not ready after {} ms ({} {})", name,
                                               timeout.count(), state.phase, state.message));
      bool finished = false;
      try {
        watch_pods({}, field, rv, [&](const WatchEvent& ev) {
          if (!ev.pod.resource_version.empty()) rv = ev.pod.resource_version;
          if (ev.type == "BOOKMARK") return true;
          state = ev.pod;
          if (ev.type == "DELETED") state.gone = true;
          finished = state.gone || done(state);
          return !finished;
        }, deadline);
        backoff = options_.backoff_initial;
      } catch (const Error& e) {
        if (e.code_value() == errc::failed_precondition) {
          relist = true;
        } else if (e.code_value() == errc::unavailable || e.code_value() == errc::resource_exhausted) {
          std::this_thread::sleep_for(backoff);  // a broken watch: back off, then resume
          backoff = std::min(backoff * 2, options_.backoff_max);
        } else {
          throw;
        }
      }
      if (finished) return state;
    }
  }
}

NodeResources KubeClient::nodes_allocatable() {
  json list = call("GET", "/api/v1/nodes");
  NodeResources r;
  for (const auto& n : list.value("items", json::array())) {
    const json& st = n.value("status", json::object());
    // Cordoned or NotReady nodes take no new pods: they do not count.
    if (n.value("spec", json::object()).value("unschedulable", false)) continue;
    bool ready = true;
    for (const auto& c : st.value("conditions", json::array()))
      if (str(c, "type") == "Ready") ready = str(c, "status") == "True";
    if (!ready) continue;
    const json& a = st.value("allocatable", json::object());
    r.cpu += quantity_or_zero(a.value("cpu", json()));
    r.memory += quantity_or_zero(a.value("memory", json()));
    ++r.nodes;
  }
  return r;
}

NodeResources KubeClient::nodes_usage() {
  json list;
  try {
    list = call("GET", "/apis/metrics.k8s.io/v1beta1/nodes");
  } catch (const Error& e) {
    if (e.code_value() == errc::not_found)
      throw Error(errc::unavailable, "kubernetes: metrics.k8s.io is not served (no metrics-server?)");
    throw;
  }
  NodeResources r;
  for (const auto& n : list.value("items", json::array())) {
    const json& u = n.value("usage", json::object());
    r.cpu += quantity_or_zero(u.value("cpu", json()));
    r.memory += quantity_or_zero(u.value("memory", json()));
    ++r.nodes;
  }
  return r;
}

}  // namespace sandbox::placement
