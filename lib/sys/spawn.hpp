// One way to start a process: fork with every signal blocked, signals back to default in
// the child, its own process group (its own session with confine.setsid), fds 0..n-1 from an explicit map and no other, a
// Confinement applied, exec. Everything is prepared before fork; the child allocates
// nothing. A failure in the child comes back over a close-on-exec pipe and is thrown here
// (or, with `report` off, is said on the child's stderr and becomes its exit code).
//
//   sys::CStrings argv({"/usr/bin/runsc", "list"}), env({"PATH=/usr/bin"});
//   sys::Child child = sys::spawn({argv.ptrs[0], argv.ptrs.data(), env.ptrs.data(), {-1, out, out}, 3});
//   int status = child.wait();
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

#include "sys/confine.hpp"
#include "sys/fd.hpp"

namespace sandbox::sys {

struct SpawnSpec {
  static constexpr int max_fds = 12;
  const char* path;            // program to exec
  const char* const* argv;     // null-terminated
  char* const* envp;           // null-terminated
  int fds[max_fds];            // fds[i] becomes fd i in the child; -1: /dev/null
  int nfds;                    // how many of fds[] are used
  Confinement confine = {};    // applied after the fds are in place
  bool report = true;          // false: a failure is the child's exit code (see spawn())
  const char* who = "spawn";   // names the child in errors
};

// A started child: killed (through its pidfd where the kernel has them, so never a
// recycled pid) and reaped when destroyed, unless waited for or released first.
class Child {
 public:
  Child() = default;
  explicit Child(pid_t pid);
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  ~Child();

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }  // -1 without pidfd support
  explicit operator bool() const { return pid_ > 0; }
  // SIGKILL to the child and its process group.
  void kill() const noexcept;
  // Blocks until it exits; its wait status.
  int wait() noexcept;
  // Its wait status once it has exited, nullopt if it still runs after `timeout`.
  std::optional<int> wait_for(std::chrono::milliseconds timeout) noexcept;
  // Ours no more: the caller reaps it.
  pid_t release() noexcept;

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

// Starts spec. Throws sandbox::Error when fork fails or, with `report`, when a step in the
// child failed (naming it). Without `report` it returns at once: a failed exec is exit code
// 127, an unusable cwd 126, any other step 125, each said on the child's fd 2 first.
Child spawn(const SpawnSpec& spec);

// In a child, before exec: fd i := map[i] for i < n, `*carry` (when given) moved to fd n,
// close-on-exec, and every other fd closed. False with errno set. No allocation.
bool place_fds(const int* map, int n, int* carry = nullptr);

// Exit code of a wait status (128 + signal when killed).
int exit_code(int status);

}  // namespace sandbox::sys
