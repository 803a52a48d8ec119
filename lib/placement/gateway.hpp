// placement/gateway.hpp: the gateway's record of where each session lives, and the calls
// that put it there (a pod, the cloud gateway) and take it away.
//
// A session placed on Kubernetes is a pod named from its id (pod_spec.hpp) that runs
// `sandboxctl serve`; once the pod is Ready the gateway creates the session inside it (same
// id, same limits) and forwards the session's requests to http://<podIP>:<port>. A session
// placed on the cloud is created through the cloud gateway and recorded in the session store
// (records of kind "cloud"), since nothing in the local cluster says it exists. find() answers
// for sessions another gateway placed too: the pod's name follows from the id, and the
// store holds the cloud ones; rebuild() re-reads both after a restart.
//
//   Gateway gw(opts);
//   auto loc = gw.create("s1", limits, "python");   // loc.status == "Pending", loc.target
//   ... gw.find("s1")->status == "Ready"; forward to loc.base_url ...
//   gw.remove("s1");                                // pod deleted / cloud session deleted
#pragma once

#include <sandbox/limits.hpp>
#include <sandbox/placement.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sandbox::store {
class Store;
}

namespace sandbox::placement {

class KubeClient;
struct PodState;

struct GatewayOptions {
  Options placement;                           // mode, cluster, template, cloud gateway, pods
  store::Store* store = nullptr;               // keeps the cloud sessions; null = not persisted
  // Where a remote.json of a version before the store may be: imported into the store once,
  // then renamed remote.json.imported. "" = nowhere.
  std::filesystem::path import_dir;
};

// A placed session's state: its pod (or the cloud's session) is starting, serves, or failed.
enum class State { pending, ready, failed };
std::string_view to_string(State s) noexcept;  // "Pending", "Ready", "Failed"
State state_from_string(std::string_view s) noexcept;  // anything else: pending

// Where one session lives.
struct Location {
  std::string id;
  Target target = Target::local;
  State status = State::pending;
  std::string message;        // why Failed / still Pending
  std::string base_url;       // "http://10.1.2.3:8080", the cloud gateway's URL; "" if local
  std::string authorization;  // the Authorization header to forward with ("" = the client's)
  std::string pod;            // the pod's name (kubernetes)
  // The tenant it belongs to (the server's token name, "" without tokens); nullopt when
  // this gateway cannot know (a cloud session another gateway placed): nobody's, then.
  std::optional<std::string> owner;
  // For the idle timeout and lifetime (this gateway's view: when it placed or first saw
  // the session, and its last forwarded request).
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_used = created;
  nlohmann::json to_json() const;
};

class Gateway {
 public:
  explicit Gateway(GatewayOptions options);
  ~Gateway();  // waits for the background pod waiters
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // The decision for a new session; Target::local means "serve it here".
  Decision place(const Limits& limits);
  // Creates the session where `target` says (not local): the pod (Pending; Ready once the
  // pod is Ready and `session_body` was POSTed to its /sessions) or the cloud session (the
  // body POSTed to the cloud gateway's /sessions). `limits` size the pod. Throws
  // Error(already_exists) if the id is taken here or in the cluster. `owner` is recorded
  // with it (a pod annotation, the cloud record) for every gateway to check.
  Location create(const std::string& id, Target target, const Limits& limits,
                  nlohmann::json session_body, const std::string& owner = "");
  // Where a session lives, if anywhere but here: this gateway's record, else the pod named
  // from the id (another gateway placed it), else the cloud gateway (another gateway sent
  // it there). nullopt = unknown.
  std::optional<Location> find(const std::string& id);
  // Every session this gateway knows of (after rebuild(): those of every gateway).
  std::vector<Location> list();
  // A request for the session was forwarded now (it is not idle).
  void touch(const std::string& id);
  // The sessions unused for `idle` or older than `lifetime` (0 = never).
  std::vector<std::string> expired(std::chrono::seconds idle, std::chrono::seconds lifetime);
  // The cloud gateway's view of a cloud session's state (it knows when its pod is Ready),
  // recorded; other sessions: find(). nullopt = unknown.
  std::optional<Location> refresh(const std::string& id);
  // Deletes the pod or the cloud session and forgets it. False if it was unknown.
  bool remove(const std::string& id);
  // After a restart: the pods labelled app=libsandbox and the store's cloud records.
  std::size_t rebuild();

 private:
  void wait_ready(std::string id, std::string pod, nlohmann::json session_body);
  void persist_locked(const Location& loc) const;  // a cloud session's record
  void forget_locked(const std::string& id) const;
  void import_remote_json() const;
  void load();
  Location from_pod(const std::string& id, const PodState& pod) const;

  GatewayOptions options_;
  std::unique_ptr<Policy> policy_;
  std::unique_ptr<KubeClient> kube_;
  nlohmann::json pod_template_;
  std::string pod_auth_, cloud_auth_;

  std::mutex mu_;
  std::map<std::string, Location> sessions_;
  std::vector<std::jthread> waiters_;
};

// One HTTP exchange (to a pod or a gateway, http:// or https://), for the gateway's own calls.
struct HttpReply {
  unsigned status = 0;
  std::string body;
};
// Throws Error(unavailable) when the peer cannot be reached in `timeout`, invalid_argument for
// a bad URL, permission_denied for a token in clear to a non-loopback host unless
// `allow_plaintext_token` (a pod's server on the cluster network).
HttpReply http_call(const std::string& base_url, std::string_view method, const std::string& target,
                    const std::string& body, const std::string& authorization,
                    std::chrono::milliseconds timeout, bool allow_plaintext_token = false);

}  // namespace sandbox::placement
