// Which cgroup hierarchy to use, the helpers both writers share, and the child's cgroup
// namespace. The v1 and v2 writers live in cgroup_v1.cpp and cgroup_v2.cpp.
#include "isolation/namespaces/cgroup.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "isolation/namespaces/namespaces.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation::ns {

namespace cgroup {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// mountinfo escapes spaces and the like as \ooo.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Mount {
  std::string root, point, type;
  std::vector<std::string> super_options;
};

std::vector<Mount> cgroup_mounts() {
  std::vector<Mount> mounts;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto left = split(line.substr(0, dash), ' ');
    auto right = split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    if (right[0] != "cgroup" && right[0] != "cgroup2") continue;
    mounts.push_back({unescape(left[3]), unescape(left[4]), right[0], split(right[2], ',')});
  }
  return mounts;
}

// The path of this process's cgroup under `mount`, as a directory on the host.
fs::path own_dir(const Mount& mount, const std::string& own_path) {
  std::string rel = own_path;
  if (mount.root != "/" && rel.rfind(mount.root, 0) == 0) rel = rel.substr(mount.root.size());
  return fs::path(mount.point) / fs::path(rel).relative_path();
}

bool has_words(const std::string& text, std::initializer_list<std::string_view> words) {
  std::istringstream in(text);
  std::set<std::string> have;
  for (std::string w; in >> w;) have.insert(w);
  return std::all_of(words.begin(), words.end(),
                     [&](std::string_view w) { return have.count(std::string(w)) != 0; });
}

}  // namespace

Layout Layout::detect() {
  Layout layout;
  // hierarchy id -> controllers, path (from /proc/self/cgroup)
  std::map<std::string, std::string> own_by_controller;
  std::string own_v2;
  {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
      auto parts = split(line, ':');
      if (parts.size() < 3) continue;
      std::string path = line.substr(parts[0].size() + parts[1].size() + 2);
      if (parts[0] == "0" && parts[1].empty()) own_v2 = path;
      for (auto& c : split(parts[1], ',')) own_by_controller[c] = path;
    }
  }
  auto mounts = cgroup_mounts();

  // v2 when the unified hierarchy has the controllers we need (a pure v2 host, or a hybrid
  // one whose v1 mounts do not hold them).
  for (auto& m : mounts) {
    if (m.type != "cgroup2") continue;
    auto controllers = read_file(fs::path(m.point) / "cgroup.controllers");
    if (!controllers || !has_words(*controllers, {"memory", "pids"})) continue;
    layout.version = 2;
    layout.v2_parent = own_dir(m, own_v2.empty() ? "/" : own_v2);
    layout.reason = "cgroup v2 at " + m.point;
    return layout;
  }

  for (auto& m : mounts) {
    if (m.type != "cgroup") continue;
    for (auto& opt : m.super_options) {
      if (opt == "memory" || opt == "pids" || opt == "cpu" || opt == "cpuacct" || opt == "freezer") {
        auto own = own_by_controller.find(opt);
        layout.v1_parents[opt] = own_dir(m, own == own_by_controller.end() ? "/" : own->second);
      }
    }
  }
  std::string missing;
  for (const char* c : {"memory", "pids", "freezer"}) {
    if (!layout.v1_parents.count(c)) missing += missing.empty() ? c : std::string(", ") + c;
  }
  if (missing.empty()) {
    layout.version = 1;
    layout.reason = "cgroup v1";
  } else {
    layout.v1_parents.clear();
    layout.reason = mounts.empty() ? "no cgroup hierarchy mounted"
                                   : "cgroup v2 lacks memory/pids and cgroup v1 lacks " + missing;
  }
  return layout;
}

std::vector<fs::path> Layout::roots() const {
  std::vector<fs::path> out;
  if (version == 2) out.push_back(v2_parent / parent_name);
  if (version == 1)
    for (auto& [c, dir] : v1_parents) out.push_back(dir / parent_name);
  return out;
}

fs::path Layout::sessions_dir(const fs::path& parent) const {
  return group.empty() ? parent / parent_name : parent / parent_name / group;
}

std::shared_ptr<Group> Group::create(const Layout& layout, std::string name, const Limits& limits) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw Error(errc::invalid_argument, "cgroup: bad group name");
  std::shared_ptr<Group> g(new Group());
  g->layout_ = layout;
  g->layout_.group = std::move(name);
  switch (layout.version) {
    case 1: create_group_v1(g->layout_, limits, g->dirs_); break;
    case 2: create_group_v2(g->layout_, limits, g->dirs_); break;
    default: throw Error(errc::unavailable, "cgroup: " + layout.reason);
  }
  return g;
}

std::shared_ptr<Group> Group::open_durable(const Layout& layout, std::string name, const Limits& limits) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw Error(errc::invalid_argument, "cgroup: bad group name");
  std::shared_ptr<Group> g(new Group());
  g->layout_ = layout;
  g->layout_.group = std::move(name);
  g->durable_ = true;
  try {
    switch (layout.version) {
      case 1: create_group_v1(g->layout_, limits, g->dirs_, /*reuse=*/true); break;
      case 2: create_group_v2(g->layout_, limits, g->dirs_, /*reuse=*/true); break;
      default: throw Error(errc::unavailable, "cgroup: " + layout.reason);
    }
  } catch (const Error& e) {
    // The directories exist (or the next write would say so); a ceiling the kernel refuses
    // now (usage above it) must not stop the sessions already running in it.
    if (g->dirs_.empty()) throw;
    std::fprintf(stderr, "libsandbox: the sessions' ceiling on %s: %s\n", g->layout_.group.c_str(), e.message().c_str());
  }
  return g;
}

Group::~Group() {
  if (durable_) {
    // Released sessions may live below: only an empty group goes (rmdir refuses otherwise).
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) ::rmdir(it->c_str());
    return;
  }
  // The sessions' cgroups are gone by now (each instance holds the group); this sweeps what
  // a crash of one of them could have left, then the group itself.
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) remove_stale(*it);
}

Limits from(const sandbox::Limits& limits) {
  Limits out;
  out.memory_bytes = limits.memory_bytes;
  out.pids = limits.max_processes;
  if (limits.cpus > 0) out.cpus = limits.cpus;
  return out;
}

std::unique_ptr<Cgroup> Cgroup::create(const Layout& layout, std::string_view name,
                                       const Limits& limits) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..")
    throw Error(errc::invalid_argument, "cgroup: bad session name");
  switch (layout.version) {
    case 1: return create_v1(layout, name, limits);
    case 2: return create_v2(layout, name, limits);
    default: throw Error(errc::unavailable, "cgroup: " + layout.reason);
  }
}

std::unique_ptr<Cgroup> Cgroup::open(const Layout& layout, std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..")
    throw Error(errc::invalid_argument, "cgroup: bad session name");
  switch (layout.version) {
    case 1: return open_v1(layout, name);
    case 2: return open_v2(layout, name);
    default: throw Error(errc::unavailable, "cgroup: " + layout.reason);
  }
}

void write_file(const fs::path& file, std::string_view value) {
  // O_CREAT only matters off cgroupfs (tests on a plain dir); cgroupfs refuses new files.
  sys::UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC | O_TRUNC | O_CREAT, 0644));
  if (!fd) throw_syscall("open", errno, file.string());
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    throw_syscall("write", errno, file.string() + " <- " + std::string(value));
}

std::optional<std::string> read_file(const fs::path& file) noexcept {
  try {
    std::ifstream in(file);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::uint64_t> read_key(const fs::path& file, std::string_view key) noexcept {
  auto text = read_file(file);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string k;
  std::uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return std::nullopt;
}

std::optional<std::uint64_t> read_number(const fs::path& file) noexcept {
  auto text = read_file(file);
  if (!text) return std::nullopt;
  try {
    return std::stoull(*text);
  } catch (...) {
    return std::nullopt;
  }
}

std::vector<pid_t> read_pids(const fs::path& file) noexcept {
  std::vector<pid_t> pids;
  auto text = read_file(file);
  if (!text) return pids;
  std::istringstream in(*text);
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

bool remove_dir(const fs::path& dir) noexcept {
  for (int i = 0; i < 200; ++i) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

void remove_stale(const fs::path& dir) noexcept {
  // Children first (a v2 session has none, but a hostile-looking tree should not stop us).
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec)) remove_stale(e.path());
  if (read_file(dir / "cgroup.kill")) {
    try { write_file(dir / "cgroup.kill", "1"); } catch (...) {}
  } else if (read_file(dir / "freezer.state")) {
    try { write_file(dir / "freezer.state", "FROZEN"); } catch (...) {}
    for (int i = 0; i < 3; ++i)
      for (pid_t p : read_pids(dir / "cgroup.procs")) ::kill(p, SIGKILL);
    try { write_file(dir / "freezer.state", "THAWED"); } catch (...) {}
  } else {
    // Another controller's directory: its processes are also in the freezer's, which is
    // handled there; kill what is visible anyway.
    for (pid_t p : read_pids(dir / "cgroup.procs")) ::kill(p, SIGKILL);
  }
  for (int i = 0; i < 200 && !read_pids(dir / "cgroup.procs").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  remove_dir(dir);
}

}  // namespace cgroup

namespace cgroup {
// Child side: the parent has put us in the session's cgroup, so the new namespace's root
// is that cgroup and /proc/self/cgroup shows "/".
bool init_ns() { return ::unshare(CLONE_NEWCGROUP) == 0; }
}  // namespace cgroup

}  // namespace sandbox::isolation::ns
