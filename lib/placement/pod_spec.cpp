// placement/pod_spec.cpp: names, labels and the pod manifest of a session.
#include "placement/pod_spec.hpp"

#include "placement/yaml.hpp"

#include <sandbox/error.hpp>

#include <fmt/format.h>

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>

namespace sandbox::placement {
namespace {

using json = nlohmann::json;

std::uint32_t fnv1a(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

bool valid_label_value(std::string_view v) {
  if (v.empty() || v.size() > 63) return false;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (!alnum(v.front()) || !alnum(v.back())) return false;
  for (char c : v)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

// The built-in template: the project's image running `sandboxctl serve` for one session on
// the pod's address, Ready when /healthz answers, with no service account token mounted.
constexpr std::string_view kBuiltinTemplate = R"({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"labels": {"app": "libsandbox"}},
  "spec": {
    "restartPolicy": "Never",
    "automountServiceAccountToken": false,
    "enableServiceLinks": false,
    "containers": [{
      "name": "sandbox",
      "image": "libsandbox:0.1.0",
      "command": ["sandboxctl", "serve", "--listen", "$(POD_IP):8080", "--quiet"],
      "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
      "ports": [{"name": "http", "containerPort": 8080}],
      "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
    }]
  }
})";

}  // namespace

std::string pod_name(std::string_view session_id) {
  std::string base;
  for (char c : session_id) {
    auto u = static_cast<unsigned char>(c);
    base.push_back(std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-');
    if (base.size() == 40) break;
  }
  while (!base.empty() && base.back() == '-') base.pop_back();
  // "sbx-" (4) + base (<= 40) + "-" + 8 hex = at most 53 characters: a valid label.
  return fmt::format("sbx-{}{}{:08x}", base, base.empty() ? "" : "-", fnv1a(session_id));
}

std::string session_label(std::string_view session_id) {
  if (valid_label_value(session_id)) return std::string(session_id);
  return fmt::format("h-{:08x}", fnv1a(session_id));
}

std::string session_selector(std::string_view session_id) {
  return fmt::format("{}={},{}={}", kAppLabel, kAppValue, kSessionLabel, session_label(session_id));
}

json load_pod_template(const std::filesystem::path& file) {
  json t;
  if (file.empty()) {
    t = json::parse(kBuiltinTemplate);
  } else {
    std::ifstream in(file);
    if (!in) throw Error(errc::not_found, fmt::format("pod template {} cannot be read", file.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    t = parse_yaml(ss.str());
  }
  if (!t.is_object() || t.value("kind", "") != "Pod" || !t.contains("spec") ||
      !t["spec"].contains("containers") || !t["spec"]["containers"].is_array() ||
      t["spec"]["containers"].empty())
    throw Error(errc::invalid_argument, "the pod template must be a Pod with at least one container");
  return t;
}

json make_pod(const json& pod_template, std::string_view session_id, const Limits& limits,
              std::string_view runtime_class, std::string_view placed_by) {
  json pod = pod_template;
  pod["apiVersion"] = "v1";
  pod["kind"] = "Pod";
  json& meta = pod["metadata"];
  if (!meta.is_object()) meta = json::object();
  meta.erase("generateName");
  meta.erase("namespace");  // the client's namespace
  meta["name"] = pod_name(session_id);
  meta["labels"][std::string(kAppLabel)] = kAppValue;
  meta["labels"][std::string(kSessionLabel)] = session_label(session_id);
  meta["annotations"][std::string(kSessionAnnotation)] = session_id;
  if (!placed_by.empty()) meta["annotations"][std::string(kPlacedByAnnotation)] = placed_by;

  json& spec = pod["spec"];
  spec["restartPolicy"] = "Never";  // a session that dies is over; restarting loses its state
  if (!runtime_class.empty()) spec["runtimeClassName"] = runtime_class;
  json& c = spec["containers"][0];
  json& res = c["resources"];
  if (!res.is_object()) res = json::object();
  res["limits"]["cpu"] = fmt::format("{}m", static_cast<long>(limits.cpus * 1000 + 0.5));
  // The session's memory plus room for the pod's own server and agent.
  res["limits"]["memory"] = std::to_string(limits.memory_bytes + (128ull << 20));
  json& env = c["env"];
  if (!env.is_array()) env = json::array();
  env.push_back({{"name", "SANDBOX_SESSION_ID"}, {"value", std::string(session_id)}});
  return pod;
}

}  // namespace sandbox::placement
