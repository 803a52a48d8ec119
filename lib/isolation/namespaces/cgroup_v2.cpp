// cgroup v2: one directory, <parent>/libsandbox/<session>, with the controllers enabled on
// the way down. cgroup.kill (Linux 5.14) kills the whole cgroup atomically; older kernels
// get freeze (cgroup.freeze), SIGKILL each pid, thaw.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <iterator>
#include <sstream>
#include <thread>

#include "isolation/namespaces/cgroup.hpp"
#include "sandbox/error.hpp"

namespace sandbox::isolation::ns::cgroup {
namespace fs = std::filesystem;

namespace {

class CgroupV2 final : public Cgroup {
 public:
  explicit CgroupV2(fs::path dir) : dir_(std::move(dir)) {}
  ~CgroupV2() override {
    if (!created_) return;
    kill_all();
    for (int i = 0; i < 400 && !read_pids(dir_ / "cgroup.procs").empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    remove_dir(dir_);
  }

  // An existing session's directory (adopted): ours to kill and remove from now on.
  void take() {
    if (!fs::is_directory(dir_)) throw Error(errc::unavailable, "cgroup v2: " + dir_.string() + " is gone");
    created_ = true;
  }

  void release() noexcept override { created_ = false; }

  void make() {
    if (::mkdir(dir_.c_str(), 0755) != 0) {
      if (errno != EEXIST) throw_syscall("mkdir", errno, dir_.string());
      remove_stale(dir_);  // a crashed run's session of the same name
      if (::mkdir(dir_.c_str(), 0755) != 0) throw_syscall("mkdir", errno, dir_.string());
    }
    created_ = true;
  }

  void add(pid_t pid) override { write_file(dir_ / "cgroup.procs", std::to_string(pid)); }

  void kill_all() noexcept override {
    if (read_pids(dir_ / "cgroup.procs").empty()) return;
    if (fs::exists(dir_ / "cgroup.kill")) {
      try {
        write_file(dir_ / "cgroup.kill", "1");
        return;
      } catch (...) {
      }
    }
    try {
      write_file(dir_ / "cgroup.freeze", "1");
    } catch (...) {
    }
    for (int i = 0; i < 200 && read_key(dir_ / "cgroup.events", "frozen").value_or(1) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (pid_t p : read_pids(dir_ / "cgroup.procs")) ::kill(p, SIGKILL);
    try {
      write_file(dir_ / "cgroup.freeze", "0");
    } catch (...) {
    }
  }

  Usage usage() const override {
    Usage u;
    u.memory_peak_bytes = read_number(dir_ / "memory.peak");  // Linux 5.19+
    if (auto us = read_key(dir_ / "cpu.stat", "usage_usec")) u.cpu_time_us = us;
    u.oom_kills = read_key(dir_ / "memory.events", "oom_kill");
    u.pids_denied = read_key(dir_ / "pids.events", "max");
    return u;
  }

  std::vector<fs::path> paths() const override { return {dir_}; }

 private:
  fs::path dir_;
  bool created_ = false;
};

// Enables `controllers` for the children of `dir`, naming the one the kernel refuses.
void enable(const fs::path& dir, const std::vector<std::string>& controllers) {
  auto available = read_file(dir / "cgroup.controllers").value_or("");
  auto enabled = read_file(dir / "cgroup.subtree_control").value_or("");
  std::istringstream a(available), e(enabled);
  std::vector<std::string> have((std::istream_iterator<std::string>(a)), {});
  std::vector<std::string> on((std::istream_iterator<std::string>(e)), {});
  std::string request;  // one write: "+memory +pids +cpu"
  for (auto& c : controllers) {
    if (std::find(on.begin(), on.end(), c) != on.end()) continue;
    if (std::find(have.begin(), have.end(), c) == have.end())
      throw Error(errc::unavailable,
                  "cgroup v2: controller " + c + " is not available in " + dir.string());
    request += (request.empty() ? "+" : " +") + c;
  }
  if (request.empty()) return;
  try {
    write_file(dir / "cgroup.subtree_control", request);
  } catch (const Error& err) {
    // EBUSY: `dir` holds processes itself (the "no internal processes" rule); the server
    // must run in a delegated cgroup whose own processes sit in a leaf.
    throw Error(errc::unavailable, "cgroup v2: cannot enable " + request + " below " +
                                       dir.string() + ": " + err.message());
  }
}

// Makes <parent>/libsandbox[/<group>] with `controllers` enabled at every level on the way
// down, so that the level below can use them; returns the last level.
fs::path descend(const Layout& layout, const std::vector<std::string>& controllers) {
  fs::path dir = layout.v2_parent;
  enable(dir, controllers);
  std::vector<std::string_view> levels = {parent_name};
  if (!layout.group.empty()) levels.push_back(layout.group);
  for (auto level : levels) {
    fs::path below = dir / level;
    if (::mkdir(below.c_str(), 0755) != 0 && errno != EEXIST) throw_syscall("mkdir", errno, below.string());
    if (!controllers.empty() && !fs::exists(below / "cgroup.controllers")) {
      // A plain directory (tests): the kernel would fill these in; mirror the parent.
      write_file(below / "cgroup.controllers", read_file(dir / "cgroup.controllers").value_or(""));
    }
    enable(below, controllers);
    dir = below;
  }
  return dir;
}

}  // namespace

void create_group_v2(const Layout& layout, const Limits& limits, std::vector<fs::path>& dirs, bool reuse) {
  // The sessions below use cpu too: enable it on the way down when the host has it.
  std::vector<std::string> controllers = {"memory", "pids"};
  auto available = read_file(layout.v2_parent / "cgroup.controllers").value_or("");
  if (std::istringstream in(available); std::find(std::istream_iterator<std::string>(in),
                                                  std::istream_iterator<std::string>(), "cpu") !=
                                        std::istream_iterator<std::string>())
    controllers.push_back("cpu");
  fs::path dir = layout.sessions_dir(layout.v2_parent);
  if (!reuse && fs::exists(dir)) remove_stale(dir);  // a crashed run's group of the same name
  fs::path made = descend(layout, controllers);
  dirs.push_back(made);
  if (limits.memory_bytes) {
    write_file(made / "memory.max", std::to_string(*limits.memory_bytes));
    try {
      write_file(made / "memory.swap.max", "0");
    } catch (const Error&) {
      // No swap accounting on this kernel: nothing to hold at zero.
    }
  }
  if (limits.pids) write_file(made / "pids.max", std::to_string(*limits.pids));
}

std::unique_ptr<Cgroup> create_v2(const Layout& layout, std::string_view name, const Limits& limits) {
  std::vector<std::string> controllers;
  if (limits.memory_bytes) controllers.push_back("memory");
  if (limits.pids) controllers.push_back("pids");
  if (limits.cpus) controllers.push_back("cpu");

  fs::path base = descend(layout, controllers);
  auto cg = std::make_unique<CgroupV2>(base / name);
  cg->make();
  auto dir = cg->paths().front();
  if (limits.memory_bytes) {
    write_file(dir / "memory.max", std::to_string(*limits.memory_bytes));
    try {
      write_file(dir / "memory.swap.max", "0");
    } catch (const Error&) {
      // No swap accounting on this kernel: nothing to hold at zero.
    }
  }
  if (limits.pids) write_file(dir / "pids.max", std::to_string(*limits.pids));
  if (limits.cpus) {
    auto quota = std::max<long long>(1000, std::llround(*limits.cpus * 100000));
    write_file(dir / "cpu.max", std::to_string(quota) + " 100000");
  }
  return cg;
}

std::unique_ptr<Cgroup> open_v2(const Layout& layout, std::string_view name) {
  auto cg = std::make_unique<CgroupV2>(layout.sessions_dir(layout.v2_parent) / name);
  cg->take();
  return cg;
}

}  // namespace sandbox::isolation::ns::cgroup
