// sandbox/placement.hpp: where a new session runs (DESIGN section 6).
//
// `local` runs every session on this host. `kubernetes` runs each session in its own pod
// (named from the session id) in a configured cluster. `hybrid` uses the local cluster while
// its water level is under a threshold and otherwise the cloud cluster's gateway:
//
//   water level = max(cpu, memory) of (usage from metrics.k8s.io + requests of our pods still
//                 starting) / allocatable of the Ready, schedulable nodes
//
// The level is measured before the new session is counted. When the metrics API cannot be
// read, `metrics_fallback` decides, and the decision's reason (logged) says so.
//
//   sandbox::placement::Options o;
//   o.mode = sandbox::placement::Mode::hybrid;
//   o.kubeconfig = "/etc/libsandbox/kubeconfig";   // "" = the pod's service account
//   o.cloud_gateway = "https://cloud-gw.example";
//   auto policy = sandbox::placement::make_policy(o);
//   auto d = policy->place(limits);   // d.target == Target::kubernetes, d.reason "level 0.41 < 0.80"
#pragma once

#include <sandbox/limits.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace sandbox::placement {

enum class Mode { local, kubernetes, hybrid };
// Where one session goes.
enum class Target { local, kubernetes, cloud };

// "local" / "kubernetes" / "hybrid"; from_string throws Error(invalid_argument).
std::string_view to_string(Mode m) noexcept;
std::string_view to_string(Target t) noexcept;
Mode mode_from_string(std::string_view s);

// What hybrid does when the metrics API cannot be read.
enum class MetricsFallback {
  local,   // place on the local cluster anyway (it schedules or leaves the pod Pending)
  cloud,   // burst to the cloud gateway
  refuse,  // refuse the session: Error(unavailable)
};
MetricsFallback fallback_from_string(std::string_view s);

struct Options {
  Mode mode = Mode::local;
  std::filesystem::path kubeconfig;        // "" = in-cluster service account
  std::string namespace_;                  // "" = the kubeconfig's or the service account's
  std::filesystem::path pod_template;      // a Pod manifest (YAML or JSON); "" = built-in
  std::string runtime_class;               // e.g. "gvisor"; "" = the template's, if any
  std::string cloud_gateway;               // hybrid: the cloud gateway's base URL
  std::filesystem::path cloud_token_file;  // hybrid: bearer token for the cloud gateway
  double water_level = 0.8;                // hybrid: burst at or above this level, (0, 1]
  MetricsFallback metrics_fallback = MetricsFallback::local;
  // The session pods (kubernetes, hybrid).
  std::uint16_t pod_port = 8080;           // where `sandboxctl serve` listens in the pod
  std::filesystem::path pod_token_file;    // bearer token for the pods' servers (`name:token`); "" = none
  std::chrono::milliseconds ready_timeout{120'000};  // pod creation to Ready, else Failed
  std::string gateway_name = "gateway";    // recorded on the pods this Sandbox creates
  std::function<void(std::string_view line)> log;  // decisions and fallbacks; unset = stderr

  // Throws Error(invalid_argument) naming the first inconsistent option.
  void validate() const;
};

struct Decision {
  Target target = Target::local;
  double water_level = -1;  // the measured level; -1 when not measured
  std::string reason;       // one line: "water level 0.91 >= 0.80: cloud"
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual Mode mode() const noexcept = 0;
  // Where a new session with these limits runs. Throws Error(unavailable) only when the
  // fallback is `refuse` and the level cannot be measured.
  virtual Decision place(const Limits& limits) = 0;
};

// Validates `options` and, for kubernetes and hybrid, loads the cluster credentials.
std::unique_ptr<Policy> make_policy(const Options& options);

}  // namespace sandbox::placement
