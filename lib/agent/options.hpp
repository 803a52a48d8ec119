// The agent's command line, as the backend writes it (agent_argv): a handful of fixed
// options, no user in front of it. Errors print usage and exit with status 2.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "sandbox/result.hpp"

namespace sandbox::agent {

struct Options {
  int control_fd = -1;
  std::string workspace = ".";
  std::string runtime = ".";
  std::string python = "/usr/bin/python3";
  std::string node = "/usr/bin/node";
  std::string shell = "/bin/sh";
  std::string preload;  // comma-separated python modules
  std::optional<Language> warm;
  int kernel_fd = -1;  // first of four pipes of a Python kernel forked in by the host
  bool host_kernels = false;  // ask the host for Python kernels (NEED_KERNEL) first
  std::optional<uid_t> code_uid;  // the uid code runs as; the agent keeps its own real uid
  bool keep_uid = false;  // keep every uid of our own, with CAP_SETUID and CAP_KILL (runsc)
  // Durable (docs/agent.md, "Durable agents"): a listening unix socket the backend bound,
  // where the next host connects when this one is gone. Without it, EOF ends the agent.
  int listen_fd = -1;
  std::int64_t orphan_timeout_ms = 15 * 60 * 1000;  // with no host for this long: end
  std::int64_t lifetime_deadline_ms = 0;            // ms since the epoch; 0 = none
  bool durable() const { return listen_fd >= 0; }
};

Options parse_args(int argc, char** argv);
[[noreturn]] void usage(const char* msg);

// sandbox::parse_language without the throw: nullopt for a name it does not know.
std::optional<Language> language_named(std::string_view name) noexcept;

}  // namespace sandbox::agent
