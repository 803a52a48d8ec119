// sandbox/isolation.hpp: the isolation backends a Sandbox can use, as a user chooses them.
//
// A backend walls a session's processes in: "runsc" (gVisor), "namespaces" (Linux
// namespaces, cgroups, seccomp) or "rlimit" (resource limits only). Options::isolation names
// one; this header says which this host can run and what each keeps in (`sandboxctl doctor`).
// How a backend starts the agent is the library's business (lib/isolation/backends.hpp).
//
//   for (auto& b : sandbox::isolation::describe_backends())
//     std::cout << b.name << (b.support.available ? " yes " : " no ") << b.support.reason << '\n';
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::isolation {

// Whether a backend can run on this host, and if not, why (shown by `sandboxctl doctor`).
struct Support {
  bool available = false;
  std::string reason;  // why not, or what it will use ("cgroup v1; platform systrap")
};

// What a backend keeps in, for the docs and `doctor`: each entry a short phrase.
struct Containment {
  std::vector<std::string> contains;       // "other sessions' files", "network", ...
  std::vector<std::string> does_not_contain;
};

// Paths of the programs the agent starts, as the host sees them. Backends that build a new
// root bind them at the same paths inside.
struct Interpreters {
  std::filesystem::path python = "/usr/bin/python3";
  std::filesystem::path node = "/usr/bin/node";
  std::filesystem::path shell = "/bin/bash";
};

// Names of every backend this build knows, strongest first: "runsc", "namespaces", "rlimit".
std::vector<std::string> backend_names();

// A backend as `sandboxctl doctor` shows it: probed on this host now.
struct BackendInfo {
  std::string name;
  Support support;
  Containment containment;
};

// Every backend of backend_names(), probed here.
std::vector<BackendInfo> describe_backends();
// One of them; nullopt for a name this build does not know.
std::optional<BackendInfo> describe_backend(std::string_view name);

// The backend Options::isolation "" (or "auto") picks on this host. Throws unavailable if
// none can run here.
std::string default_backend();

}  // namespace sandbox::isolation
