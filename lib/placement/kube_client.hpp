// placement/kube_client.hpp: a Kubernetes REST client for the few calls placement needs.
//
// Over the one HTTP client (net/http_client.hpp): TLS, kept-alive connections pooled, so a
// KubeClient is safe to share between threads. TLS is verified against the cluster's CA
// unless the kubeconfig says insecure-skip-tls-verify.
//
// What each failure of the API becomes (every call):
//   401 -> Error(unauthenticated)        403 -> Error(permission_denied)
//   404 -> Error(not_found)              409 -> Error(already_exists)
//   400, 422 -> Error(invalid_argument)  410 -> watches re-list; elsewhere failed_precondition
//   429 -> retried after Retry-After (or backoff), then Error(resource_exhausted)
//   5xx, connection failures, timeouts -> retried with exponential backoff, then
//          Error(unavailable) (Error(timeout) when the caller's deadline ran out)
// The message carries the API server's Status message.
//
//   auto kube = KubeClient(KubeConfig::load(""));          // in-cluster service account
//   kube.create_pod(pod_json);
//   auto st = kube.wait_pod("sbx-s1-1a2b3c4d", [](const PodState& s) { return s.ready; },
//                           std::chrono::seconds(60));
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::placement {

// Where the API server is and who we are to it.
struct KubeConfig {
  std::string host;                       // "10.0.0.1" or "kube.example"
  std::string port = "443";
  std::string base_path;                  // a path prefix of the server URL ("" usually)
  std::string tls_server_name;            // certificate name check; "" = host
  std::string ca_pem;                     // trusted CAs; "" = the system's
  bool insecure_skip_tls_verify = false;  // kubeconfig's insecure-skip-tls-verify: true
  std::string token;                      // bearer token, or
  std::filesystem::path token_file;       // re-read on each call (projected tokens rotate)
  std::string client_cert_pem;            // client certificate auth
  std::string client_key_pem;
  std::string namespace_ = "default";     // the namespace calls act in

  // A kubeconfig file (server, certificate-authority[-data], insecure-skip-tls-verify,
  // token/tokenFile, client-certificate[-data]/client-key[-data]) at `context` or the
  // current context. Throws Error(invalid_argument) for an unsupported user (exec,
  // auth-provider) or a malformed file, not_found for a missing one.
  static KubeConfig from_kubeconfig(const std::filesystem::path& file, std::string_view context = {});
  // The pod's service account (/var/run/secrets/kubernetes.io/serviceaccount) and
  // KUBERNETES_SERVICE_HOST/PORT. `root` replaces the secrets directory (tests).
  // Throws Error(unavailable) when not running in a cluster.
  static KubeConfig in_cluster(const std::filesystem::path& root =
                                   "/var/run/secrets/kubernetes.io/serviceaccount");
  // `kubeconfig` if given, else in-cluster.
  static KubeConfig load(const std::filesystem::path& kubeconfig);
};

struct ClientOptions {
  std::chrono::milliseconds call_timeout{10'000};     // one HTTP exchange (not a watch)
  int max_attempts = 5;                               // per call, for retryable failures
  std::chrono::milliseconds backoff_initial{100};     // doubled per attempt, jittered
  std::chrono::milliseconds backoff_max{5'000};
  std::string user_agent = "libsandbox-placement/0.1";
};

// What placement reads from a pod.
struct PodState {
  std::string name;
  std::string uid;
  std::string resource_version;
  std::string phase;               // Pending, Running, Succeeded, Failed, Unknown
  bool ready = false;              // the Ready condition is True
  bool deleting = false;           // deletionTimestamp is set
  bool gone = false;               // a watch saw it DELETED (or get found nothing)
  std::string pod_ip;
  std::string message;             // why it is not progressing (Unschedulable, exit reason)
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  double cpu_requests = 0;         // cores, summed over containers
  double memory_requests = 0;      // bytes

  static PodState from_json(const nlohmann::json& pod);
};

struct PodList {
  std::vector<PodState> items;
  std::string resource_version;    // watch from here to see every later change
};

// CPU in cores and memory in bytes, summed over nodes.
struct NodeResources {
  double cpu = 0;
  double memory = 0;
  std::size_t nodes = 0;
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK
  PodState pod;
  nlohmann::json object;
};

// A Kubernetes quantity ("500m", "1.5", "2Gi", "128974848", "1e3", "250000000n") as a double.
// Throws Error(invalid_argument).
double parse_quantity(std::string_view q);

class KubeClient {
 public:
  explicit KubeClient(KubeConfig config, ClientOptions options = {});
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  const KubeConfig& config() const noexcept { return config_; }

  // POST the pod. A retry that meets 409 after an attempt that may have reached the server
  // returns the existing pod when its uid-less identity (name + labels) matches.
  nlohmann::json create_pod(const nlohmann::json& pod);
  // nullopt on 404.
  std::optional<PodState> get_pod(std::string_view name);
  nlohmann::json get_pod_json(std::string_view name);
  // DELETE with gracePeriodSeconds=0; false if it was already gone (404).
  bool delete_pod(std::string_view name);
  PodList list_pods(std::string_view label_selector, std::string_view field_selector = {});

  // Streams pod events from `resource_version` until `on_event` returns false or `deadline`
  // passes (returns normally then). A 410 (expired resourceVersion, as an ERROR event or a
  // status) throws Error(failed_precondition) so the caller re-lists; watch_until does.
  void watch_pods(std::string_view label_selector, std::string_view field_selector,
                  std::string_view resource_version,
                  const std::function<bool(const WatchEvent&)>& on_event,
                  std::chrono::steady_clock::time_point deadline);

  // Lists then watches the named pod until `done(state)` is true (returns that state) or it
  // is deleted (state.gone). Re-lists on 410 and re-watches when the server ends a watch.
  // Throws Error(timeout) when `timeout` passes first.
  PodState wait_pod(std::string_view name, const std::function<bool(const PodState&)>& done,
                    std::chrono::milliseconds timeout);

  NodeResources nodes_allocatable();
  // metrics.k8s.io; Error(unavailable) when the metrics API is not served.
  NodeResources nodes_usage();

  // One call with the retry policy above; the parsed JSON body (null for an empty one).
  nlohmann::json call(std::string_view method, const std::string& target,
                      const nlohmann::json* body = nullptr);

 private:
  struct Http;
  std::string bearer() const;

  KubeConfig config_;
  ClientOptions options_;
  std::unique_ptr<Http> http_;  // keeps the TLS connections alive between calls
};

// Percent-encodes a query value.
std::string url_encode(std::string_view s);

}  // namespace sandbox::placement
