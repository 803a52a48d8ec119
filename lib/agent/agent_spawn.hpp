// How the agent starts a process: sys::spawn (sys/spawn.hpp) with the code's uid, no
// capabilities, the given cwd and death with the agent.
//
//   const char* argv[] = {"/bin/sh", "-c", "echo hi", nullptr};
//   pid_t pid = agent::spawn({argv[0], argv, environ, "/workspace", {in, out, err}, 3});
#pragma once

#include <sys/types.h>

namespace sandbox::agent {

struct SpawnSpec {
  const char* path;           // program to exec
  const char* const* argv;    // null-terminated
  char* const* envp;          // null-terminated, passed on unchanged
  const char* cwd;            // working directory of the child
  int fds[8];                 // fds[i] becomes fd i in the child
  int nfds;                   // how many of fds[] are used
  uid_t uid = static_cast<uid_t>(-1);  // real, effective and saved uid of the child, if set
};

// The child's pid (it leads its own process group), for the caller to reap. Throws
// sandbox::Error when fork fails; a failed exec shows as exit code 127 (126 when cwd is
// unusable, 125 for any other step).
pid_t spawn(const SpawnSpec& spec);

}  // namespace sandbox::agent
