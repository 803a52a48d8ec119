// The namespaces backend's internals: what the parent prepares before clone() and what the
// child does with it afterwards, one concern per file (user, pid, mount, net, ipc_uts,
// cgroup, seccomp, rlimits), ordered in contain.cpp; confinement.cpp is the tail the agent
// and the template's kernels share.
//
// Everything the child needs is built by the parent into a ChildPlan *before* clone(): the
// child only reads it and makes syscalls, never allocates or throws (the server is
// multi-threaded, so a malloc lock may be held by another thread at the moment of clone).
// A child step returns true on success, or false with errno set; contain() names the step.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "isolation/backends.hpp"
#include "sys/confine.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation::ns {

// The code's user inside (kernels, commands, their files): unprivileged, mapped to a
// dedicated unprivileged host id.
inline constexpr uid_t inside_uid = 1000;
inline constexpr gid_t inside_gid = 1000;
inline constexpr uid_t host_uid = 101000;  // like the first subuid range, owned by no one
inline constexpr gid_t host_gid = 101000;
// The agent's real and saved uid: not the code's, so the kernel's ptrace and signal checks
// refuse code any access to the agent (its effective uid is the code's; docs/isolation.md).
inline constexpr uid_t agent_inside_uid = 1001;
inline constexpr uid_t agent_host_uid = 101001;
// The capabilities the agent execs with (ambient), for that switch; it drops them then.
// CAP_SETPCAP too, so that it can empty its bounding set (which code inherits) after.
inline constexpr std::uint64_t agent_caps = std::uint64_t{1} << 7 | std::uint64_t{1} << 8;  // CAP_SETUID, CAP_SETPCAP

// The host dir the new root's tmpfs is mounted on, in the child's private mount namespace
// (the host sees nothing there). Bind sources are opened as fds before it is covered.
inline constexpr const char* new_root_dir = "/tmp";
// Where things appear inside the new root.
inline constexpr const char* workspace_inside = "/workspace";
inline constexpr const char* runtime_inside = "/opt/sandbox";
inline constexpr const char* hostname = "sandbox";
// The control socket's fd number in the agent (argv says so too).
inline constexpr int agent_control_fd = 3;
// Where the agent finds a template-forked Python kernel's four pipes (--kernel-fds).
inline constexpr int agent_kernel_fd = 4;
// A durable agent's listening socket (--listen-fd), after the kernel's pipes.
inline constexpr int agent_listen_fd = 8;

// One step of building the new root, executed in order by the child.
struct MountStep {
  enum class Kind {
    mkdir,      // target directory (mode 0755), existing is fine
    bind,       // source -> target, read-only unless `writable`, always nosuid,nodev
    symlink,    // target -> source (a link, as on the host)
    tmpfs,      // fresh tmpfs at target with `data` options and `flags`
    proc,       // a new proc of the child's pid namespace
    file,       // target created with `data` as its contents (mode 0644)
    remount_ro, // target's mount made read-only (the skeleton root, /dev)
  };
  Kind kind;
  std::string source;  // host path (bind), link text (symlink)
  std::string target;  // absolute path under the new root, as the child sees it pre-pivot
  std::string data;    // tmpfs options or file contents
  unsigned long flags = 0;
  bool writable = false;
  bool is_file = false;  // bind of a file: the mount point is an empty file, not a dir
  bool optional = false; // skipped when the source or target does not exist
  char via[32] = {};     // bind: "/proc/self/fd/N", filled in by mount::open_sources()
  int staged_fd = -1;    // bind: a detached mount the parent holds, bound instead of `source`
                         // (which stays the fallback where the kernel refuses that)
  char via_staged[32] = {};
};

using Rlimit = sys::Rlimit;

// The child's setup steps, in the order contain() runs them.
enum class Step : int {
  cloned, signals, await_id_maps, open_sources, setuid, mount, loopback, set_hostname,
  close_fds, await_cgroup, cgroup_ns, confine, execve,
};
inline constexpr const char* step_names[] = {
    "cloned", "signals", "waiting for the uid/gid maps", "open bind source", "setuid",
    "mount", "loopback up", "hostname", "close fds", "waiting for the cgroup",
    "cgroup namespace", "confine", "execve",
};
static_assert(std::size(step_names) == static_cast<std::size_t>(Step::execve) + 1);
inline const char* step_name(int step) {
  return step >= 0 && step < static_cast<int>(std::size(step_names)) ? step_names[step] : "?";
}

// A MAP_SHARED page the child writes its current step to before doing it, so a child that
// hangs (it neither execs nor reports) can still be named by the parent.
struct Progress {
  std::atomic<int> step{static_cast<int>(Step::cloned)};
};
static_assert(std::atomic<int>::is_always_lock_free);

// Everything the child does, decided in the parent.
struct ChildPlan {
  Progress* progress = nullptr;  // shared with the parent
  int sync_fd = -1;     // child end of the sync socketpair
  int control_fd = -1;  // child end of the control socketpair
  int kernel_fds[4] = {-1, -1, -1, -1};  // the agent's ends of a template kernel's pipes
  int listen_fd = -1;   // a durable agent's listening socket, or -1

  std::string new_root;             // host dir the tmpfs root is mounted on (private ns)
  std::vector<MountStep> mounts;    // the new root, in order
  sys::Confinement confine;         // confinement(..., agent = true)

  std::string agent;                // path inside
  std::vector<std::string> argv, env;
  std::vector<char*> argv_ptrs, env_ptrs;  // null-terminated views of the above
};

// The failure report the child sends over the sync socket before _exit.
struct ChildFailure {
  char step[64];
  int err;
};

// The walls of a session's process, the same for the agent and for a kernel forked from
// the template: ids (the agent's or the code's), no supplementary groups, rlimits, the
// capabilities (agent_caps for the agent, none for code), death with the parent, a session
// of its own, no_new_privs, both seccomp filters, cwd the workspace. The caller sets
// parent_fd/parent_gone (how a parent already gone shows). `durable`: no death with the
// parent (a durable session's agent outlives its server, its kernels the template).
sys::Confinement confinement(const std::vector<Rlimit>& rlimits, bool agent, bool durable = false);

// ---- child side (no allocation, no exceptions) ----
int contain(void* plan);  // clone() entry point: waits for the parent, contains, execs

namespace pid {
bool reset_signals();          // default dispositions, nothing blocked (the parent blocked all)
}
namespace mount {
// Opens every bind source (O_PATH) while we still have root's host ids, which can walk
// root-only host dirs; the binds happen later as the inside user, through the fds.
bool open_sources(ChildPlan& plan, const char** failed_source);
bool init_ns(const ChildPlan& plan, const char** failed_target);
}
namespace net { bool init_ns(); }                                  // loopback up
namespace ipc_uts { bool init_ns(); }                              // hostname
namespace cgroup { bool init_ns(); }                               // new cgroup namespace
bool keep_only_fds(ChildPlan& plan);  // stdio to /dev/null, control at 3, kernel pipes at 4-7, listening 8

// ---- parent side ----
namespace user {
// Writes the child's uid/gid maps (inside_uid -> host_uid, agent_inside_uid ->
// agent_host_uid). Throws sandbox::Error.
void init_ns_from_parent(pid_t child);
}
namespace mount {
// The steps that build the new root for `spec` (host paths probed now, in the parent).
// `staged_runtime`: staged_runtime()'s fd for spec.runtime_dir, or -1.
std::vector<MountStep> plan(const LaunchSpec& spec, const std::string& new_root, int staged_runtime = -1);

// The runtime dir copied, once per process and dir, into a tmpfs that is never attached to
// the host's tree (fsopen/fsmount), read-only; sessions bind it at /opt/sandbox. A bind of
// the host dir would show its host path in every session's /proc/self/mountinfo (the
// "root" field is the path within the source filesystem); this one shows "/". Copied again
// when the dir's top level changes (a rebuild). Holds -1 (and the host dir is bound) where
// the kernel lacks the mount API. Keep the pointer until the child has made its binds.
std::shared_ptr<const sys::UniqueFd> staged_runtime(const std::filesystem::path& runtime_dir);

// The workspace quota: a size-limited tmpfs mounted on the host at spec.workspace, owned
// by host_uid, for as long as any Workspace object for that path lives (instances of one
// session overlapping during an agent restart share it). Contents go with the unmount.
class Workspace {
 public:
  Workspace(const std::filesystem::path& dir, std::uint64_t disk_bytes);
  // The quota an earlier server mounted at `dir` (an adopted session), taken over: the last
  // user unmounts it as if mounted here. Throws unavailable when nothing is mounted there.
  struct Existing {};
  Workspace(const std::filesystem::path& dir, Existing);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // Lets go of it: this object's destruction unmounts nothing (the session outlives us).
  void release() noexcept;
 private:
  std::filesystem::path dir_;
  bool released_ = false;
};

// Unmounts every mount at or below `dir` (a crashed run's workspaces), except those at or
// below a path in `except` (kept sessions' dirs). Returns how many.
int remove_stale(const std::filesystem::path& dir, const std::vector<std::filesystem::path>& except = {}) noexcept;
// Whether `dir` is a mount point (in this process's mount namespace).
bool mounted_at(const std::filesystem::path& dir) noexcept;
}
namespace seccomp {
// The filters, compiled once per process (libseccomp -> BPF in memory).
const std::vector<sock_filter>& filter();
const std::vector<sock_filter>& personality_filter();
}
namespace rlimits {
std::vector<Rlimit> plan(const Limits& limits);
}

}  // namespace sandbox::isolation::ns
