// placement/pod_spec.hpp: the pod of one session, built from the operator's Pod template.
//
// The pod is named from the session id as a DNS-1123 label ("sbx-" + a lowercase form of the
// id + 8 hex digits of its hash, so ids differing only in case or '_' never collide) and
// carries the labels placement finds it by: app=libsandbox, libsandbox.io/session=<id or its
// hash when the id is not a valid label value>, plus the exact id as an annotation.
//
//   auto pod = make_pod(load_pod_template(""), "S_1", limits, "gvisor");
//   pod["metadata"]["name"] == "sbx-s-1-3f2a9c10"
#pragma once

#include <sandbox/limits.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace sandbox::placement {

inline constexpr std::string_view kAppLabel = "app";
inline constexpr std::string_view kAppValue = "libsandbox";
inline constexpr std::string_view kSessionLabel = "libsandbox.io/session";
inline constexpr std::string_view kSessionAnnotation = "libsandbox.io/session-id";
inline constexpr std::string_view kPlacedByAnnotation = "libsandbox.io/placed-by";
// The tenant (token name) the session belongs to: every gateway checks it.
inline constexpr std::string_view kOwnerAnnotation = "libsandbox.io/owner";

// The pod name for a session id (deterministic: any gateway finds the pod by name).
std::string pod_name(std::string_view session_id);
// The value of the session label for an id.
std::string session_label(std::string_view session_id);
// "app=libsandbox,libsandbox.io/session=<label>"
std::string session_selector(std::string_view session_id);

// The template from a file (YAML or JSON), or the built-in one when `file` is empty.
// Throws Error(invalid_argument) when it is not a Pod with at least one container.
nlohmann::json load_pod_template(const std::filesystem::path& file);

// The session's pod: the template with its name, labels, annotation, the session's limits
// as the first container's resource limits (requests kept when the template sets them),
// restartPolicy Never, SANDBOX_SESSION_ID in the env and `runtime_class` if not empty.
nlohmann::json make_pod(const nlohmann::json& pod_template, std::string_view session_id,
                        const Limits& limits, std::string_view runtime_class,
                        std::string_view placed_by = {});

}  // namespace sandbox::placement
