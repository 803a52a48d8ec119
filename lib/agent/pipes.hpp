// The fds a child of the agent gets: pipes whose agent end alone is non-blocking, and a
// stdin that is readable to EOF and never blocks.
#pragma once

#include <string>

#include "sys/fd.hpp"

namespace sandbox::agent {

// O_NONBLOCK lives on the open file description, so it is set on one end only: the agent's.
struct Pipe {
  sys::UniqueFd read, write;
};
Pipe make_pipe(bool agent_reads);

// The child's fd 0 holding `text` (/dev/null when empty). Throws sandbox::Error.
sys::UniqueFd stdin_fd(const std::string& text);

}  // namespace sandbox::agent
