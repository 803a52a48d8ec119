// placement/policy.cpp: the three policies; hybrid measures the local cluster's water level.
#include <sandbox/placement.hpp>

#include "placement/kube_client.hpp"

#include <sandbox/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace sandbox::placement {

std::string_view to_string(Mode m) noexcept {
  switch (m) {
    case Mode::local: return "local";
    case Mode::kubernetes: return "kubernetes";
    case Mode::hybrid: return "hybrid";
  }
  return "?";
}

std::string_view to_string(Target t) noexcept {
  switch (t) {
    case Target::local: return "local";
    case Target::kubernetes: return "kubernetes";
    case Target::cloud: return "cloud";
  }
  return "?";
}

Mode mode_from_string(std::string_view s) {
  if (s == "local") return Mode::local;
  if (s == "kubernetes") return Mode::kubernetes;
  if (s == "hybrid") return Mode::hybrid;
  throw Error(errc::invalid_argument, fmt::format("placement must be local, kubernetes or hybrid, not '{}'", s));
}

MetricsFallback fallback_from_string(std::string_view s) {
  if (s == "local") return MetricsFallback::local;
  if (s == "cloud") return MetricsFallback::cloud;
  if (s == "refuse") return MetricsFallback::refuse;
  throw Error(errc::invalid_argument, fmt::format("metrics fallback must be local, cloud or refuse, not '{}'", s));
}

void Options::validate() const {
  if (!(water_level > 0 && water_level <= 1))
    throw Error(errc::invalid_argument, fmt::format("water level must be in (0, 1], not {}", water_level));
  if (mode == Mode::hybrid && cloud_gateway.empty())
    throw Error(errc::invalid_argument, "hybrid placement needs --cloud-gateway");
  if (!cloud_gateway.empty() && !cloud_gateway.starts_with("http://") && !cloud_gateway.starts_with("https://"))
    throw Error(errc::invalid_argument, "--cloud-gateway must be an http:// or https:// URL");
}

namespace {

void default_log(std::string_view line) { std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data()); }

class LocalPolicy final : public Policy {
 public:
  Mode mode() const noexcept override { return Mode::local; }
  Decision place(const Limits&) override { return {Target::local, -1, "placement local"}; }
};

class KubernetesPolicy final : public Policy {
 public:
  Mode mode() const noexcept override { return Mode::kubernetes; }
  Decision place(const Limits&) override { return {Target::kubernetes, -1, "placement kubernetes"}; }
};

class HybridPolicy final : public Policy {
 public:
  HybridPolicy(const Options& o, KubeConfig cfg)
      : options_(o), kube_(std::move(cfg), ClientOptions{.call_timeout = std::chrono::seconds(5), .max_attempts = 2}) {
    if (!options_.log) options_.log = default_log;
  }
  Mode mode() const noexcept override { return Mode::hybrid; }

  Decision place(const Limits&) override {
    Decision d;
    try {
      d.water_level = measure();
    } catch (const Error& e) {
      d = fallback(e.message());
      options_.log(fmt::format("placement: {}", d.reason));
      if (options_.metrics_fallback == MetricsFallback::refuse)
        throw Error(errc::unavailable, d.reason);
      return d;
    }
    bool burst = d.water_level >= options_.water_level;
    d.target = burst ? Target::cloud : Target::kubernetes;
    d.reason = fmt::format("water level {:.2f} {} {:.2f}: {}", d.water_level, burst ? ">=" : "<",
                           options_.water_level, burst ? "cloud" : "local cluster");
    return d;
  }

 private:
  // max(cpu, memory) of (usage + requests of our pods still starting) / allocatable.
  double measure() {
    NodeResources alloc = kube_.nodes_allocatable();
    NodeResources usage = kube_.nodes_usage();
    double cpu = usage.cpu, mem = usage.memory;
    // Starting pods use little yet, but their requests are already spoken for; once Ready,
    // the metrics show what they use.
    for (const auto& p : kube_.list_pods("app=libsandbox").items) {
      if (p.ready || p.deleting || p.phase == "Succeeded" || p.phase == "Failed") continue;
      cpu += p.cpu_requests;
      mem += p.memory_requests;
    }
    if (alloc.cpu <= 0 || alloc.memory <= 0) return 1e9;  // no schedulable node: full
    return std::max(cpu / alloc.cpu, mem / alloc.memory);
  }

  Decision fallback(const std::string& why) const {
    Decision d;
    switch (options_.metrics_fallback) {
      case MetricsFallback::local: d.target = Target::kubernetes; break;
      case MetricsFallback::cloud: d.target = Target::cloud; break;
      case MetricsFallback::refuse: d.target = Target::kubernetes; break;
    }
    d.reason = fmt::format("water level unknown ({}); fallback {}", why,
                           options_.metrics_fallback == MetricsFallback::local   ? "local cluster"
                           : options_.metrics_fallback == MetricsFallback::cloud ? "cloud"
                                                                                 : "refuse");
    return d;
  }

  Options options_;
  KubeClient kube_;
};

}  // namespace

std::unique_ptr<Policy> make_policy(const Options& options) {
  options.validate();
  switch (options.mode) {
    case Mode::local: return std::make_unique<LocalPolicy>();
    case Mode::kubernetes: return std::make_unique<KubernetesPolicy>();
    case Mode::hybrid: {
      auto cfg = KubeConfig::load(options.kubeconfig);
      if (!options.namespace_.empty()) cfg.namespace_ = options.namespace_;
      return std::make_unique<HybridPolicy>(options, std::move(cfg));
    }
  }
  throw Error(errc::invalid_argument, "unknown placement mode");
}

}  // namespace sandbox::placement
