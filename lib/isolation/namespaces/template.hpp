// The Python template: one host process with the kernel's modules (matplotlib, numpy,
// pandas, ...) imported and warmed, forked into each new session so that those pages are
// shared copy-on-write instead of imported again per session.
//
// The fork lands in the session's own cgroup and namespaces and takes on the session's
// confinement (namespaces.hpp: confinement(), as code) before it runs anything of the
// session's (template/module.cpp is its child half, runtime/kernel.py --template its loop).
// Like a kernel the agent starts, it dies with its parent: here the template (except in a
// durable session, whose kernels must outlive the server and so its template; they still
// die with the session, its agent being init of their pid namespace).
// The agent adopts it over four pipes passed at clone time (--kernel-fds), so if the
// template cannot deliver, the agent sees EOF and starts a kernel of its own.
//
//   PythonTemplate tpl(spec);                      // starts the template, does not wait
//   auto pipes = KernelPipes::make();              // agent ends go to the clone
//   tpl.fork_into(agent_pid, cgroup_dirs, rlimits, std::move(pipes.kernel));
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "isolation/namespaces/namespaces.hpp"
#include "sys/fd.hpp"
#include "sys/spawn.hpp"

namespace sandbox::isolation::ns {

// A kernel's four pipes: stdout, stderr, requests (agent -> kernel), replies. The agent's
// ends are non-blocking, the kernel's blocking.
struct KernelPipes {
  std::array<sys::UniqueFd, 4> agent;   // read stdout, read stderr, write requests, read replies
  std::array<sys::UniqueFd, 4> kernel;  // the other ends
  static KernelPipes make();
};

class PythonTemplate {
 public:
  // Starts `python -u <runtime>/kernel.py --template` for the spec's interpreter, runtime
  // and preload list; returns at once (the template imports while sessions launch).
  explicit PythonTemplate(const LaunchSpec& spec);
  ~PythonTemplate();  // kills and reaps it, and with it the kernels it forked
  PythonTemplate(const PythonTemplate&) = delete;
  PythonTemplate& operator=(const PythonTemplate&) = delete;

  // Whether this template serves `spec` (same interpreter, runtime and preload list).
  bool serves(const LaunchSpec& spec) const;
  // Whether the process still runs.
  bool alive();
  // Asks for a kernel in the namespaces of `agent_pid` (host pid) and the cgroup `dirs`.
  // Never blocks; false when the request could not be queued (the kernel ends are closed
  // either way, which the agent sees as a kernel that never started). `durable`: the kernel
  // does not die with the template (a durable session's kernels outlive their server).
  bool fork_into(pid_t agent_pid, const std::vector<std::filesystem::path>& cgroup_dirs,
                 const std::vector<Rlimit>& rlimits, std::array<sys::UniqueFd, 4> kernel,
                 bool durable = false);

  std::chrono::steady_clock::time_point started() const { return started_; }

 private:
  std::string key_;
  sys::UniqueFd sock_;
  sys::Child child_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace sandbox::isolation::ns
