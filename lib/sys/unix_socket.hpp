// Unix stream sockets at filesystem paths: a durable session's agent listens on one a
// later server connects to (lib/isolation/backends.hpp, LaunchSpec::control_socket).
//
//   auto listening = sys::listen_unix(dir / "control" / "agent.sock");  // hand to the agent
//   auto conn = sys::connect_unix(dir / "control" / "agent.sock", 2s);  // a later server
//
// Paths longer than sun_path's 108 bytes work: both bind and connect go through
// /proc/self/fd/<the parent dir>/<name> then, so only the last component must be short.
#pragma once

#include <chrono>
#include <filesystem>

#include "sys/fd.hpp"

namespace sandbox::sys {

// A listening SOCK_STREAM socket (close-on-exec) bound at `path`: its directory created
// mode 0700 (and made 0700 if it exists), a stale socket there unlinked, the socket 0600.
// Throws sandbox::Error naming the step.
UniqueFd listen_unix(const std::filesystem::path& path, int backlog = 8);

// A connection (blocking, close-on-exec) to the socket at `path`, retried while its backlog
// is full for up to `timeout`. Throws Error(unavailable) saying why: no socket there,
// nobody listening, or still full at the timeout.
UniqueFd connect_unix(const std::filesystem::path& path, std::chrono::milliseconds timeout);

}  // namespace sandbox::sys
