// cgroup v1: one directory per controller hierarchy (memory, pids, cpu, cpuacct, freezer),
// each at <controller parent>/libsandbox/<session>. The freezer is what makes the kill
// complete: frozen processes cannot fork while we SIGKILL them.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <thread>

#include "isolation/namespaces/cgroup.hpp"
#include "sandbox/error.hpp"

namespace sandbox::isolation::ns::cgroup {
namespace fs = std::filesystem;

namespace {

void make_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw_syscall("mkdir", errno, dir.string());
}

class CgroupV1 final : public Cgroup {
 public:
  ~CgroupV1() override {
    if (created_.empty()) return;
    kill_all();
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
      for (int i = 0; i < 400 && !read_pids(*it / "cgroup.procs").empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      remove_dir(*it);
    }
  }

  // Makes the controller's session dir (once per hierarchy: "cpu,cpuacct" share one).
  void make(const Layout& layout, const std::string& controller, const fs::path& parent,
            std::string_view name) {
    fs::path base = layout.sessions_dir(parent);
    fs::path dir = base / name;
    make_dir(parent / parent_name);
    make_dir(base);
    if (std::find(created_.begin(), created_.end(), dir) == created_.end()) {
      if (::mkdir(dir.c_str(), 0755) != 0) {
        if (errno != EEXIST) throw_syscall("mkdir", errno, dir.string());
        remove_stale(dir);  // a crashed run's session of the same name
        make_dir(dir);
      }
      created_.push_back(dir);
    }
    dirs_[controller] = dir;
  }

  // An existing session's directory under one controller (adopted): ours from now on.
  void take(const Layout& layout, const std::string& controller, const fs::path& parent, std::string_view name) {
    fs::path dir = layout.sessions_dir(parent) / name;
    if (!fs::is_directory(dir)) throw Error(errc::unavailable, "cgroup v1: " + dir.string() + " is gone");
    if (std::find(created_.begin(), created_.end(), dir) == created_.end()) created_.push_back(dir);
    dirs_[controller] = dir;
  }

  void release() noexcept override { created_.clear(); }

  const fs::path* dir(const std::string& controller) const {
    auto it = dirs_.find(controller);
    return it == dirs_.end() ? nullptr : &it->second;
  }

  void add(pid_t pid) override {
    for (auto& d : created_) write_file(d / "cgroup.procs", std::to_string(pid));
  }

  void kill_all() noexcept override {
    const fs::path* freezer = dir("freezer");
    if (!freezer) return;
    auto procs = *freezer / "cgroup.procs";
    // Freeze, kill what is frozen, thaw so the kills land; again while anything is left
    // (a busy host can leave the group FREEZING past our wait). Bounded: ~5 s in all.
    for (int round = 0; round < 20 && !read_pids(procs).empty(); ++round) {
      try {
        write_file(*freezer / "freezer.state", "FROZEN");
      } catch (...) {
      }
      for (int i = 0; i < 250; ++i) {
        auto state = read_file(*freezer / "freezer.state");
        if (!state || state->rfind("FROZEN", 0) == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      for (pid_t p : read_pids(procs)) ::kill(p, SIGKILL);
      try {
        write_file(*freezer / "freezer.state", "THAWED");
      } catch (...) {
      }
      for (int i = 0; i < 20 && !read_pids(procs).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  Usage usage() const override {
    Usage u;
    if (auto* m = dir("memory")) {
      u.memory_peak_bytes = read_number(*m / "memory.max_usage_in_bytes");
      u.oom_kills = read_key(*m / "memory.oom_control", "oom_kill");
    }
    if (auto* c = dir("cpuacct")) {
      if (auto ns = read_number(*c / "cpuacct.usage")) u.cpu_time_us = *ns / 1000;
    }
    if (auto* p = dir("pids")) u.pids_denied = read_key(*p / "pids.events", "max");
    return u;
  }

  std::vector<fs::path> paths() const override { return created_; }

 private:
  std::map<std::string, fs::path> dirs_;  // controller -> its session dir
  std::vector<fs::path> created_;         // unique dirs, in creation order
};

}  // namespace

std::unique_ptr<Cgroup> create_v1(const Layout& layout, std::string_view name, const Limits& limits) {
  auto cg = std::make_unique<CgroupV1>();
  for (auto& [controller, parent] : layout.v1_parents) cg->make(layout, controller, parent, name);

  if (limits.memory_bytes) {
    auto* m = cg->dir("memory");
    if (!m) throw Error(errc::unavailable, "cgroup v1: no memory controller");
    auto bytes = std::to_string(*limits.memory_bytes);
    write_file(*m / "memory.limit_in_bytes", bytes);
    // memory+swap equal to memory: no swap at all (only present with swap accounting).
    if (fs::exists(*m / "memory.memsw.limit_in_bytes"))
      write_file(*m / "memory.memsw.limit_in_bytes", bytes);
    try {
      write_file(*m / "memory.swappiness", "0");
    } catch (const Error&) {
      // Refused on some kernels when the parent uses hierarchy; memsw already bounds it.
    }
  }
  if (limits.pids) {
    auto* p = cg->dir("pids");
    if (!p) throw Error(errc::unavailable, "cgroup v1: no pids controller");
    write_file(*p / "pids.max", std::to_string(*limits.pids));
  }
  if (limits.cpus) {
    auto* c = cg->dir("cpu");
    if (!c) throw Error(errc::unavailable, "cgroup v1: no cpu controller");
    auto quota = std::max<long long>(1000, std::llround(*limits.cpus * 100000));
    write_file(*c / "cpu.cfs_period_us", "100000");
    write_file(*c / "cpu.cfs_quota_us", std::to_string(quota));
  }
  return cg;
}

std::unique_ptr<Cgroup> open_v1(const Layout& layout, std::string_view name) {
  auto cg = std::make_unique<CgroupV1>();
  for (auto& [controller, parent] : layout.v1_parents) cg->take(layout, controller, parent, name);
  return cg;
}

void create_group_v1(const Layout& layout, const Limits& limits, std::vector<fs::path>& dirs, bool reuse) {
  for (auto& [controller, parent] : layout.v1_parents) {
    make_dir(parent / parent_name);
    fs::path dir = layout.sessions_dir(parent);
    if (std::find(dirs.begin(), dirs.end(), dir) != dirs.end()) continue;  // a shared hierarchy
    if (::mkdir(dir.c_str(), 0755) != 0) {
      if (errno != EEXIST) throw_syscall("mkdir", errno, dir.string());
      if (!reuse) {
        remove_stale(dir);  // a crashed run's group of the same name
        make_dir(dir);
      }
    }
    dirs.push_back(dir);
  }
  auto at = [&](const char* controller) -> fs::path {
    auto it = layout.v1_parents.find(controller);
    if (it == layout.v1_parents.end())
      throw Error(errc::unavailable, std::string("cgroup v1: no ") + controller + " controller");
    return layout.sessions_dir(it->second);
  };
  if (limits.memory_bytes) {
    fs::path m = at("memory");
    auto bytes = std::to_string(*limits.memory_bytes);
    write_file(m / "memory.limit_in_bytes", bytes);
    if (fs::exists(m / "memory.memsw.limit_in_bytes")) write_file(m / "memory.memsw.limit_in_bytes", bytes);
  }
  if (limits.pids) write_file(at("pids") / "pids.max", std::to_string(*limits.pids));
}

}  // namespace sandbox::isolation::ns::cgroup
