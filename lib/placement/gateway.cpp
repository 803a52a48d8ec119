// placement/gateway.cpp: pods and cloud sessions, their record in the store, and the gateway's calls.
#include "placement/gateway.hpp"

#include "placement/kube_client.hpp"
#include "placement/pod_spec.hpp"
#include "store/store.hpp"

#include <sandbox/error.hpp>

#include "net/http_client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace sandbox::placement {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------
// HTTP (the one client: http:// or https://, IPv4 or [IPv6])

HttpReply http_call(const std::string& base_url, std::string_view method, const std::string& target,
                    const std::string& body, const std::string& authorization,
                    std::chrono::milliseconds timeout, bool allow_plaintext_token) {
  net::Client client(net::Url::parse(base_url), {.authorization = authorization,
                                                 .allow_plaintext_token = allow_plaintext_token,
                                                 .connect_timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(10)),
                                                 .timeout = timeout,
                                                 .body_limit = 16u << 20});
  auto r = client.request({.method = std::string(method), .target = target, .body = body});
  return {r.status, std::move(r.body)};
}

namespace {

std::string read_token(const std::filesystem::path& file) {
  if (file.empty()) return {};
  std::ifstream in(file);
  if (!in) throw Error(errc::not_found, fmt::format("token file {} cannot be read", file.string()));
  std::string line;
  std::getline(in, line);
  // Token files of `sandboxctl serve` are "name:token": the token is after the colon.
  if (auto c = line.find(':'); c != std::string::npos) line = line.substr(c + 1);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line.empty() ? std::string{} : "Bearer " + line;
}

Target target_from(std::string_view s) {
  return s == "cloud" ? Target::cloud : s == "kubernetes" ? Target::kubernetes : Target::local;
}

}  // namespace

std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::pending: return "Pending";
    case State::ready: return "Ready";
    case State::failed: return "Failed";
  }
  return "?";
}

State state_from_string(std::string_view s) noexcept {
  return s == "Ready" ? State::ready : s == "Failed" ? State::failed : State::pending;
}

json Location::to_json() const {
  json j = {{"id", id}, {"target", std::string(to_string(target))}, {"status", std::string(placement::to_string(status))}, {"message", message},
            {"base_url", base_url}, {"pod", pod}};
  if (owner) j["owner"] = *owner;
  return j;
}

// ---------------------------------------------------------------------------------------
// The gateway

Gateway::Gateway(GatewayOptions options) : options_(std::move(options)) {
  policy_ = make_policy(options_.placement);
  if (options_.placement.mode != Mode::local) {
    auto cfg = KubeConfig::load(options_.placement.kubeconfig);
    if (!options_.placement.namespace_.empty()) cfg.namespace_ = options_.placement.namespace_;
    kube_ = std::make_unique<KubeClient>(std::move(cfg));
    pod_template_ = load_pod_template(options_.placement.pod_template);
  }
  pod_auth_ = read_token(options_.placement.pod_token_file);
  cloud_auth_ = read_token(options_.placement.cloud_token_file);
  load();
}

Gateway::~Gateway() {
  std::vector<std::jthread> waiters;
  {
    std::lock_guard lock(mu_);
    waiters.swap(waiters_);
  }
  // jthread joins on destruction; each waiter ends by the ready timeout at the latest.
}

Decision Gateway::place(const Limits& limits) { return policy_->place(limits); }

Location Gateway::create(const std::string& id, Target target, const Limits& limits, json session_body,
                          const std::string& owner) {
  if (target == Target::local) throw Error(errc::invalid_argument, "a local session is not the gateway's");
  {
    std::lock_guard lock(mu_);
    if (sessions_.contains(id)) throw Error(errc::already_exists, fmt::format("session '{}' exists", id));
  }
  session_body["id"] = id;
  Location loc;
  loc.id = id;
  loc.target = target;
  loc.owner = owner;
  if (target == Target::kubernetes) {
    if (!kube_) throw Error(errc::failed_precondition, "no cluster configured");
    auto pod = make_pod(pod_template_, id, limits, options_.placement.runtime_class, options_.placement.gateway_name);
    pod["metadata"]["annotations"][std::string(kOwnerAnnotation)] = owner;
    kube_->create_pod(pod);  // 409 (another gateway's session of that id) -> already_exists
    loc.pod = pod["metadata"]["name"];
    loc.status = State::pending;
    loc.authorization = pod_auth_;
    std::lock_guard lock(mu_);
    sessions_[id] = loc;
    waiters_.emplace_back([this, id, name = loc.pod, body = std::move(session_body)] { wait_ready(id, name, body); });
    return loc;
  }
  // The cloud: its gateway places the session on its own cluster and answers Pending.
  auto r = http_call(options_.placement.cloud_gateway, "POST", "/sessions", session_body.dump(), cloud_auth_,
                     std::chrono::seconds(30));
  auto answer = json::parse(r.body, nullptr, false);
  if (r.status != 201) {
    std::string msg = answer.is_object() && answer.contains("error") ? answer["error"].value("message", r.body) : r.body;
    throw Error(r.status == 409 ? errc::already_exists : r.status == 400 ? errc::invalid_argument : errc::unavailable,
                fmt::format("cloud gateway: {} {}", r.status, msg));
  }
  loc.status = answer.is_object() ? state_from_string(answer.value("status", "")) : State::pending;
  loc.base_url = options_.placement.cloud_gateway;
  loc.authorization = cloud_auth_;
  std::lock_guard lock(mu_);
  sessions_[id] = loc;
  persist_locked(loc);
  return loc;
}

void Gateway::wait_ready(std::string id, std::string pod, json session_body) {
  Location update;
  try {
    auto st = kube_->wait_pod(pod, [](const PodState& s) {
      return s.ready || s.phase == "Failed" || s.phase == "Succeeded";
    }, options_.placement.ready_timeout);
    update = from_pod(id, st);
    if (update.status == State::ready) {
      // The pod's server is up: create the session in it, with the client's id and limits.
      auto r = http_call(update.base_url, "POST", "/sessions", session_body.dump(), pod_auth_, std::chrono::seconds(60),
                         /*allow_plaintext_token=*/true);  // the pod's server, on the cluster network
      if (r.status != 201 && r.status != 409) {
        update.status = State::failed;
        update.message = fmt::format("the pod refused the session: {} {}", r.status, r.body.substr(0, 300));
      }
    }
  } catch (const Error& e) {
    update.status = State::failed;
    update.message = e.message();
  }
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;  // removed meanwhile
  it->second.status = update.status;
  it->second.message = update.message;
  if (!update.base_url.empty()) it->second.base_url = update.base_url;
}

Location Gateway::from_pod(const std::string& id, const PodState& st) const {
  Location loc;
  loc.id = id;
  loc.target = Target::kubernetes;
  loc.pod = st.name;
  loc.authorization = pod_auth_;
  if (auto o = st.annotations.find(std::string(kOwnerAnnotation)); o != st.annotations.end()) loc.owner = o->second;
  if (!st.pod_ip.empty())
    loc.base_url = fmt::format("http://{}:{}", st.pod_ip.find(':') != std::string::npos ? "[" + st.pod_ip + "]" : st.pod_ip,
                               options_.placement.pod_port);
  if (st.gone || st.deleting) {
    loc.status = State::failed;
    loc.message = "the pod was deleted";
  } else if (st.phase == "Failed" || st.phase == "Succeeded") {
    loc.status = State::failed;
    loc.message = "the pod ended: " + st.message;
  } else {
    loc.status = st.ready ? State::ready : State::pending;
    loc.message = st.message;
  }
  return loc;
}

std::optional<Location> Gateway::find(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = sessions_.find(id); it != sessions_.end()) return it->second;
  }
  if (!kube_) return std::nullopt;
  // Another gateway placed it (NGINX sends its requests here after a rehash): the pod's
  // name follows from the id. A Ready pod's session was created by its gateway.
  auto st = kube_->get_pod(pod_name(id));
  // A pod being deleted is a session being closed: gone for every gateway.
  if (st && !st->deleting && st->annotations[std::string(kSessionAnnotation)] == id) {
    auto loc = from_pod(id, *st);
    std::lock_guard lock(mu_);
    if (loc.status == State::ready) sessions_.try_emplace(id, loc);
    return loc;
  }
  // Another gateway burst it to the cloud (its record is its own): ask the cloud gateway.
  if (options_.placement.cloud_gateway.empty()) return std::nullopt;
  auto r = http_call(options_.placement.cloud_gateway, "GET", "/sessions/" + id, "", cloud_auth_,
                     std::chrono::seconds(10));
  if (r.status != 200) return std::nullopt;
  auto answer = json::parse(r.body, nullptr, false);
  Location loc;
  loc.id = id;
  loc.target = Target::cloud;
  loc.status = answer.is_object() ? state_from_string(answer.value("status", "")) : State::pending;
  loc.base_url = options_.placement.cloud_gateway;
  loc.authorization = cloud_auth_;
  std::lock_guard lock(mu_);
  auto [it, added] = sessions_.try_emplace(id, loc);
  if (added) persist_locked(it->second);
  return it->second;
}

std::optional<Location> Gateway::refresh(const std::string& id) {
  auto loc = find(id);
  if (!loc || loc->target != Target::cloud || loc->status != State::pending) return loc;
  auto r = http_call(loc->base_url, "GET", "/sessions/" + id, "", loc->authorization, std::chrono::seconds(10));
  auto answer = json::parse(r.body, nullptr, false);
  if (r.status == 404) {
    loc->status = State::failed;
    loc->message = "the cloud gateway no longer has it";
  } else if (r.status == 200 && answer.is_object()) {
    loc->status = state_from_string(answer.value("status", ""));
    if (answer.contains("message") && answer["message"].is_string()) loc->message = answer["message"];
  } else {
    return loc;  // the cloud gateway is busy: ask again next time
  }
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    it->second.status = loc->status;
    it->second.message = loc->message;
  }
  return loc;
}

void Gateway::touch(const std::string& id) {
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) it->second.last_used = std::chrono::steady_clock::now();
}

std::vector<std::string> Gateway::expired(std::chrono::seconds idle, std::chrono::seconds lifetime) {
  auto now = std::chrono::steady_clock::now();
  std::vector<std::string> out;
  std::lock_guard lock(mu_);
  for (auto& [id, l] : sessions_) {
    bool too_old = lifetime.count() > 0 && now - l.created > lifetime;
    bool unused = idle.count() > 0 && now - l.last_used > idle;
    if (too_old || unused) out.push_back(id);
  }
  return out;
}

std::vector<Location> Gateway::list() {
  std::lock_guard lock(mu_);
  std::vector<Location> out;
  for (auto& [_, l] : sessions_) out.push_back(l);
  return out;
}

bool Gateway::remove(const std::string& id) {
  auto loc = find(id);
  if (!loc) return false;
  if (loc->target == Target::kubernetes) {
    kube_->delete_pod(loc->pod);
  } else if (loc->target == Target::cloud) {
    auto r = http_call(loc->base_url, "DELETE", "/sessions/" + id, "", loc->authorization, std::chrono::seconds(30));
    if (r.status >= 500) throw Error(errc::unavailable, fmt::format("cloud gateway: {} {}", r.status, r.body));
  }
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end() && it->second.target == Target::cloud) forget_locked(id);
  sessions_.erase(id);
  return true;
}

std::size_t Gateway::rebuild() {
  load();
  if (!kube_) return list().size();
  for (const auto& st : kube_->list_pods(fmt::format("{}={}", kAppLabel, kAppValue)).items) {
    auto it = st.annotations.find(std::string(kSessionAnnotation));
    if (it == st.annotations.end()) continue;
    auto loc = from_pod(it->second, st);
    if (loc.status == State::failed) continue;
    std::lock_guard lock(mu_);
    sessions_.try_emplace(loc.id, loc);
  }
  return list().size();
}

// The store holds the cloud sessions only: pods are their own record.
constexpr const char* kCloudKind = "cloud";

void Gateway::persist_locked(const Location& loc) const {
  if (options_.store && loc.target == Target::cloud) options_.store->put_record(kCloudKind, loc.id, loc.to_json().dump());
}

void Gateway::forget_locked(const std::string& id) const {
  if (options_.store) options_.store->remove_record(kCloudKind, id);
}

// remote.json, the record before the store: its sessions become records (those the store
// does not have yet), and the file is renamed so that this happens once.
void Gateway::import_remote_json() const {
  if (!options_.store || options_.import_dir.empty()) return;
  auto file = options_.import_dir / "remote.json";
  std::ifstream f(file);
  if (!f) return;
  std::stringstream ss;
  ss << f.rdbuf();
  auto j = json::parse(ss.str(), nullptr, false);
  if (!j.is_array()) {
    std::fprintf(stderr, "sandbox: %s is not a list of cloud sessions: not imported\n", file.c_str());
    return;
  }
  std::map<std::string, std::string> have;
  for (auto& [key, value] : options_.store->records(kCloudKind)) have.emplace(key, value);
  for (const auto& e : j) {
    if (!e.is_object() || !e.contains("id") || !e["id"].is_string() || e.value("target", "") != "cloud") continue;
    auto id = e["id"].get<std::string>();
    if (!id.empty() && !have.contains(id)) options_.store->put_record(kCloudKind, id, e.dump());
  }
  std::error_code ec;
  std::filesystem::rename(file, options_.import_dir / "remote.json.imported", ec);
  if (ec) std::fprintf(stderr, "sandbox: cannot rename the imported %s: %s\n", file.c_str(), ec.message().c_str());
}

void Gateway::load() {
  if (!options_.store) return;
  import_remote_json();
  auto records = options_.store->records(kCloudKind);
  std::lock_guard lock(mu_);
  for (const auto& [key, text] : records) {
    auto e = json::parse(text, nullptr, false);
    if (!e.is_object()) continue;
    Location l;
    l.id = e.value("id", key);
    l.target = target_from(e.value("target", ""));
    l.status = state_from_string(e.value("status", ""));
    l.message = e.value("message", "");
    l.base_url = e.value("base_url", "");
    if (e.contains("owner") && e["owner"].is_string()) l.owner = e["owner"].get<std::string>();
    l.authorization = cloud_auth_;
    if (!l.id.empty() && l.target == Target::cloud) sessions_.try_emplace(l.id, l);
  }
}

}  // namespace sandbox::placement
