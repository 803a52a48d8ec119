// One session's cgroup: limits written before the agent runs, usage read while it runs,
// every process killed and the directories removed at the end. Works on cgroup v2
// (unified) and v1 (one mount per controller); which one is decided at run time by
// Layout::detect(). The mount roots are parameters, so tests can point the writer at a
// temp dir or a freshly mounted hierarchy.
//
//   auto layout = ns::cgroup::Layout::detect();          // or a hand-built Layout in tests
//   auto cg = ns::cgroup::Cgroup::create(layout, "sid-1", limits);
//   cg->add(pid); ... cg->usage(); cg->kill_all();      // ~Cgroup removes the dirs
//
// A Sandbox's sessions sit under a Group of their own, <parent>/libsandbox/<group>/<session>,
// whose limits bound all of them together:
//   auto g = ns::cgroup::Group::create(layout, "1234.g0", {.memory_bytes = 8ull << 30});
//   auto cg = ns::cgroup::Cgroup::create(g->layout(), "sid-1", limits);
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "isolation/backends.hpp"

namespace sandbox::isolation::ns::cgroup {

// The name of the directory under which every session's cgroup is made.
inline constexpr std::string_view parent_name = "libsandbox";

struct Layout {
  int version = 0;  // 0: no usable cgroups, 1 or 2
  // v2: the directory that holds "libsandbox" (the hierarchy root, or this process's
  // cgroup when it is delegated).
  std::filesystem::path v2_parent;
  // v1: controller name ("memory", "pids", "cpu", "cpuacct", "freezer") -> the directory
  // that holds "libsandbox" in that controller's hierarchy.
  std::map<std::string, std::filesystem::path> v1_parents;
  std::string reason;  // what was found, or why nothing usable was
  // A Group's name: sessions go to <parent>/libsandbox/<group>/; "" = <parent>/libsandbox/.
  std::string group;

  // Reads /proc/self/mountinfo and /proc/self/cgroup.
  static Layout detect();
  // The directories named "libsandbox" that may hold sessions' cgroups (and groups).
  std::vector<std::filesystem::path> roots() const;
  // Where sessions' cgroups go under one controller's (or v2's) parent directory.
  std::filesystem::path sessions_dir(const std::filesystem::path& parent) const;
};

// What the cgroup enforces; an empty field leaves that controller alone.
struct Limits {
  std::optional<std::uint64_t> memory_bytes;  // swap is held at zero with it
  std::optional<std::uint32_t> pids;
  std::optional<double> cpus;  // quota in cores per 100 ms period
};

Limits from(const sandbox::Limits& limits);

class Cgroup {
 public:
  virtual ~Cgroup() = default;
  Cgroup() = default;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Makes the session's cgroup(s) under the layout's parents and writes the limits.
  // Throws sandbox::Error (unavailable when a controller is missing, naming it).
  static std::unique_ptr<Cgroup> create(const Layout& layout, std::string_view name,
                                        const Limits& limits);
  // The session's existing cgroup(s) `name` under the layout's parents, as create() made
  // them (an earlier server's, adopted): owned like a created one. Throws unavailable when
  // a directory is missing.
  static std::unique_ptr<Cgroup> open(const Layout& layout, std::string_view name);

  // Moves `pid` into the cgroup (every controller for v1).
  virtual void add(pid_t pid) = 0;
  // Kills every process in the cgroup, even ones forking right now. Safe to repeat;
  // returns once no process is left (or after a few seconds, best effort).
  virtual void kill_all() noexcept = 0;
  virtual Usage usage() const = 0;
  // The session's directories (one for v2, one per controller for v1).
  virtual std::vector<std::filesystem::path> paths() const = 0;
  // Lets go: destruction then kills nothing and removes nothing (the session outlives us).
  virtual void release() noexcept = 0;
};

// The level between "libsandbox" and the sessions that holds one Sandbox's ceiling, so
// that two servers on a host (or two test runs) keep their own ceilings and one's cleanup
// never touches the other's sessions. Named "<pid>.<...>" like sessions, so the stale-cgroup
// sweep of a later server (namespaces backend recover()) removes it once its process is gone;
// durable sessions' groups (open_durable) are named after their state dir instead.
class Group {
 public:
  // Makes the group's directories and writes its limits (memory also bounds swap at zero).
  // Throws sandbox::Error (unavailable when a controller is missing).
  static std::shared_ptr<Group> create(const Layout& layout, std::string name, const Limits& limits);
  // A group that outlives its server (durable sessions): an existing one of that name is
  // reused with what runs in it, its limits written again (best effort: a lower one may be
  // refused while usage is above it); destruction removes it only when it is empty.
  static std::shared_ptr<Group> open_durable(const Layout& layout, std::string name, const Limits& limits);
  ~Group();  // kills whatever is left below and removes the directories (durable: see above)
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // The host's layout with `group` set: Cgroup::create() with it makes sessions below.
  const Layout& layout() const { return layout_; }
  // The group's directories (one for v2, one per controller hierarchy for v1).
  const std::vector<std::filesystem::path>& paths() const { return dirs_; }

 private:
  Group() = default;
  Layout layout_;
  std::vector<std::filesystem::path> dirs_;
  bool durable_ = false;
};

// Kills what is left in `dir` (a stale session cgroup of either version) and removes it.
void remove_stale(const std::filesystem::path& dir) noexcept;

// Small file helpers shared by the v1 and v2 writers.
void write_file(const std::filesystem::path& file, std::string_view value);  // throws
std::optional<std::string> read_file(const std::filesystem::path& file) noexcept;
// "key value" lines (memory.events, cpu.stat, pids.events, memory.oom_control).
std::optional<std::uint64_t> read_key(const std::filesystem::path& file, std::string_view key) noexcept;
std::optional<std::uint64_t> read_number(const std::filesystem::path& file) noexcept;
std::vector<pid_t> read_pids(const std::filesystem::path& file) noexcept;
// rmdir that waits a little for the kernel to let go of a just-emptied cgroup.
bool remove_dir(const std::filesystem::path& dir) noexcept;

std::unique_ptr<Cgroup> create_v1(const Layout& layout, std::string_view name, const Limits& limits);
std::unique_ptr<Cgroup> create_v2(const Layout& layout, std::string_view name, const Limits& limits);
std::unique_ptr<Cgroup> open_v1(const Layout& layout, std::string_view name);
std::unique_ptr<Cgroup> open_v2(const Layout& layout, std::string_view name);
// A group's directories with `limits` written (memory, pids); they are returned as they are
// made, so the caller removes them even when a later write fails. `reuse`: an existing
// group's directories (and what runs in them) are kept, not swept as a crashed run's.
void create_group_v1(const Layout& layout, const Limits& limits, std::vector<std::filesystem::path>& dirs,
                     bool reuse = false);
void create_group_v2(const Layout& layout, const Limits& limits, std::vector<std::filesystem::path>& dirs,
                     bool reuse = false);

}  // namespace sandbox::isolation::ns::cgroup
