// The mount namespace: the session's root (isolation/root_layout.hpp) as mount steps on a
// read-only tmpfs skeleton, with /dev's nodes bound from the host and /proc's host-facing
// corners covered.
//
// The parent plans every step (it may stat, glob and allocate); the child executes the
// list, pivots into it and detaches the host's tree.
#include <fcntl.h>
#include <glob.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "isolation/namespaces/namespaces.hpp"
#include "isolation/root_layout.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation::ns::mount {
namespace fs = std::filesystem;
using Kind = MountStep::Kind;

namespace {

constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV;

const char* const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
// /proc entries that reveal or poke the host kernel: covered by an empty read-only tmpfs
// (directories) or /dev/null (files).
const char* const proc_dirs[] = {"sys", "irq", "bus", "fs", "acpi", "scsi", "driver", "sysvipc"};
const char* const proc_files[] = {"sysrq-trigger", "kcore", "keys", "timer_list", "sched_debug",
                                  "latency_stats", "kallsyms", "kmsg", "config.gz"};

class Planner {
 public:
  explicit Planner(std::string root) : root_(std::move(root)) {}

  void mkdirs(const fs::path& inside) {
    fs::path p = "/";
    for (auto& part : inside.relative_path()) {
      p /= part;
      if (made_.insert(p.string()).second) add({Kind::mkdir, "", at(p)});
    }
  }
  // A bind of the root layout.
  void bind(const RootMount& m, unsigned long flags) {
    mkdirs(fs::path(m.target).parent_path());
    if (!m.is_file) made_.insert(m.target);
    MountStep s{Kind::bind, m.source, at(m.target)};
    s.flags = flags;
    s.writable = m.writable;
    s.is_file = m.is_file;
    add(std::move(s));
  }
  void tmpfs(const fs::path& inside, std::string options, unsigned long flags) {
    mkdirs(inside);
    MountStep s{Kind::tmpfs, "tmpfs", at(inside), std::move(options)};
    s.flags = flags;
    add(std::move(s));
  }
  void file(const fs::path& inside, std::string contents) {
    mkdirs(inside.parent_path());
    add({Kind::file, "", at(inside), std::move(contents)});
  }
  void link(const fs::path& inside, std::string to) {
    mkdirs(inside.parent_path());
    add({Kind::symlink, std::move(to), at(inside)});
  }
  void add(MountStep s) { steps_.push_back(std::move(s)); }
  // The last step, a bind, is made from the parent's detached mount `fd` when there is one.
  void stage_last(int fd) {
    if (fd >= 0 && !steps_.empty() && steps_.back().kind == Kind::bind) steps_.back().staged_fd = fd;
  }
  std::string at(const fs::path& inside) const { return root_ + inside.string(); }
  std::vector<MountStep> take() { return std::move(steps_); }

 private:
  std::string root_;
  std::set<std::string> made_;
  std::vector<MountStep> steps_;
};

}  // namespace

std::vector<MountStep> plan(const LaunchSpec& spec, const std::string& new_root, int staged_runtime) {
  Planner p(new_root);
  // The skeleton root: a small tmpfs, made read-only once every mount point exists.
  {
    MountStep root{Kind::tmpfs, "tmpfs", new_root, "size=1m,nr_inodes=4096,mode=0755"};
    root.flags = kSafe;
    p.add(std::move(root));
  }
  for (const auto& m : root_layout(spec, {inside_uid, agent_inside_uid, inside_gid}, /*sized=*/true)) {
    const unsigned long flags = MS_NOSUID | (m.nodev ? MS_NODEV : 0) | (m.noexec ? MS_NOEXEC : 0);
    switch (m.kind) {
      case RootMount::Kind::dir: p.mkdirs(m.target); break;
      case RootMount::Kind::bind:
        p.bind(m, flags);
        if (m.target == runtime_inside) p.stage_last(staged_runtime);
        break;
      case RootMount::Kind::symlink: p.link(m.target, m.source); break;
      case RootMount::Kind::file: p.file(m.target, m.source); break;
      case RootMount::Kind::tmpfs:
        p.tmpfs(m.target, m.options, flags);
        if (m.target == "/dev") {
          // Device nodes bound from the host (a user namespace cannot mknod).
          for (const char* node : dev_nodes) {
            fs::path host = fs::path("/dev") / node;
            if (!fs::exists(host)) continue;
            MountStep s{Kind::bind, host.string(), p.at(host)};
            s.flags = MS_NOSUID | MS_NOEXEC;  // no nodev: these are devices
            s.writable = true;
            s.is_file = true;
            p.add(std::move(s));
          }
          p.link("/dev/fd", "/proc/self/fd");
          p.link("/dev/stdin", "/proc/self/fd/0");
          p.link("/dev/stdout", "/proc/self/fd/1");
          p.link("/dev/stderr", "/proc/self/fd/2");
        }
        if (m.target == "/dev/shm") p.add({Kind::remount_ro, "", p.at("/dev"), "", MS_NOSUID | MS_NOEXEC});
        break;
      case RootMount::Kind::proc:
        // Its host-facing corners covered.
        p.mkdirs(m.target);
        p.add({Kind::proc, "proc", p.at(m.target), "", flags});
        for (const char* dir : proc_dirs) {
          MountStep s{Kind::tmpfs, "tmpfs", p.at(fs::path("/proc") / dir), "size=4k,nr_inodes=1,mode=0555"};
          s.flags = kSafe | MS_NOEXEC | MS_RDONLY;
          s.optional = true;
          p.add(std::move(s));
        }
        for (const char* file : proc_files) {
          MountStep s{Kind::bind, "/dev/null", p.at(fs::path("/proc") / file)};
          s.flags = kSafe | MS_NOEXEC;
          s.is_file = true;
          s.optional = true;
          p.add(std::move(s));
        }
        break;
    }
  }
  p.add({Kind::remount_ro, "", new_root, "", kSafe});
  return p.take();
}

// ---- child side ----
namespace {

// Flags the kernel locked on a mount made in a more privileged namespace: a remount that
// drops any of them fails with EPERM, so they are carried over.
unsigned long locked_flags(const char* path) {
  struct statfs st;
  if (::statfs(path, &st) != 0) return 0;
  unsigned long keep = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                       MS_NODIRATIME | MS_RELATIME;
  return static_cast<unsigned long>(st.f_flags) & keep;  // ST_* == MS_* for these bits
}

bool make_dir(const char* path) { return ::mkdir(path, 0755) == 0 || errno == EEXIST; }

bool make_file(const char* path) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno == EEXIST;
  ::close(fd);
  return true;
}

bool run(const MountStep& s) {
  const char* target = s.target.c_str();
  switch (s.kind) {
    case Kind::mkdir:
      return make_dir(target);
    case Kind::symlink:
      return ::symlink(s.source.c_str(), target) == 0;
    case Kind::file: {
      int fd = ::open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0) return false;
      bool ok = ::write(fd, s.data.data(), s.data.size()) == static_cast<ssize_t>(s.data.size());
      ::close(fd);
      return ok;
    }
    case Kind::tmpfs:
      if (!s.optional && !make_dir(target)) return false;
      return ::mount("tmpfs", target, "tmpfs", s.flags, s.data.c_str()) == 0;
    case Kind::proc:
      return make_dir(target) && ::mount("proc", target, "proc", s.flags, nullptr) == 0;
    case Kind::bind: {
      if (!s.optional && !(s.is_file ? make_file(target) : make_dir(target))) return false;
      // A kernel that refuses to bind from a detached mount (before Linux 6.15) gets the
      // host dir: the same files, with its host path in mountinfo.
      const bool staged = s.via_staged[0] && ::mount(s.via_staged, target, nullptr, MS_BIND | MS_REC, nullptr) == 0;
      if (!staged && ::mount(s.via, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return false;
      unsigned long flags = MS_BIND | MS_REMOUNT | s.flags | locked_flags(target);
      if (!s.writable) flags |= MS_RDONLY;
      return ::mount(nullptr, target, nullptr, flags, nullptr) == 0;
    }
    case Kind::remount_ro:
      return ::mount(nullptr, target, nullptr,
                     MS_BIND | MS_REMOUNT | MS_RDONLY | s.flags | locked_flags(target), nullptr) == 0;
  }
  errno = EINVAL;
  return false;
}

// "/proc/self/fd/<fd>" into `out`, without allocating.
void fd_path(int fd, char (&out)[32]) {
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0);
  const char prefix[] = "/proc/self/fd/";
  std::size_t i = 0;
  for (; prefix[i]; ++i) out[i] = prefix[i];
  while (n > 0) out[i++] = digits[--n];
  out[i] = '\0';
}

}  // namespace

bool open_sources(ChildPlan& plan, const char** failed_source) {
  for (auto& step : plan.mounts) {
    if (step.kind != Kind::bind) continue;
    int fd = ::open(step.source.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      *failed_source = step.source.c_str();
      return false;
    }
    fd_path(fd, step.via);  // closed with everything else by keep_only_fds()
    if (step.staged_fd >= 0) fd_path(step.staged_fd, step.via_staged);
  }
  return true;
}

bool init_ns(const ChildPlan& plan, const char** failed_target) {
  // Nothing we mount may propagate back to the host, and pivot_root needs it.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  for (const auto& step : plan.mounts) {
    if (run(step)) continue;
    if (step.optional && errno == ENOENT) continue;
    *failed_target = step.target.c_str();
    return false;
  }
  // pivot_root(".", "."): the old root ends up on top of the new one; detach it.
  *failed_target = plan.new_root.c_str();
  if (::chdir(plan.new_root.c_str()) != 0) return false;
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return false;
  if (::umount2(".", MNT_DETACH) != 0) return false;
  if (::chdir("/") != 0) return false;
  *failed_target = nullptr;
  return true;
}

// ---- parent side: the staged runtime ----

namespace {

sys::UniqueFd stage(const fs::path& dir) {
  std::error_code ec;
  std::uint64_t bytes = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) bytes += it->file_size(ec);
  if (ec) return {};
  sys::UniqueFd fsfd(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!fsfd) return {};
  const std::string size = std::to_string(bytes + (16u << 20));
  auto set = [&](const char* key, const char* value) {
    return ::fsconfig(fsfd.get(), FSCONFIG_SET_STRING, key, value, 0) == 0;
  };
  if (!set("source", "sandbox-runtime") || !set("size", size.c_str()) || !set("mode", "0755") ||
      ::fsconfig(fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return {};
  sys::UniqueFd mnt(::fsmount(fsfd.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  if (!mnt) return {};
  fs::copy(dir, "/proc/self/fd/" + std::to_string(mnt.get()),
           fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (ec) return {};
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (::mount_setattr(mnt.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) return {};
  return mnt;
}

// The top level of `dir` (names, sizes, mtimes): a rebuilt agent or a rewritten kernel
// shows here, so the next session gets a fresh copy.
std::string signature(const fs::path& dir) {
  std::string sig;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0) continue;
    sig += e.path().filename().string() + ' ' + std::to_string(st.st_size) + ' ' +
           std::to_string(st.st_mtim.tv_sec) + '.' + std::to_string(st.st_mtim.tv_nsec) + '\n';
  }
  return sig;
}

}  // namespace

std::shared_ptr<const sys::UniqueFd> staged_runtime(const fs::path& runtime_dir) {
  struct Staged {
    std::string signature;
    std::shared_ptr<const sys::UniqueFd> fd;
  };
  static std::mutex mutex;
  static std::map<std::string, Staged> staged;
  std::lock_guard lock(mutex);
  const auto key = runtime_dir.lexically_normal().string();
  auto sig = signature(runtime_dir);
  auto& slot = staged[key];
  if (!slot.fd || slot.signature != sig) {
    // A launch still using the previous copy holds its own reference.
    slot = {std::move(sig), std::make_shared<const sys::UniqueFd>(stage(runtime_dir))};
    if (!*slot.fd)
      std::fprintf(stderr, "libsandbox: cannot stage the runtime in a tmpfs (%s); sessions bind %s\n",
                   std::strerror(errno), key.c_str());
  }
  return slot.fd;
}

// ---- parent side: the workspace quota ----

namespace {
// Workspaces mounted by this process and how many instances use each. A session that
// relaunches its agent while the old instance still exists shares the mount (and its
// files) instead of stacking a fresh tmpfs on top; the last user unmounts it.
std::mutex workspaces_mutex;
std::map<std::string, int> workspaces;
}  // namespace

Workspace::Workspace(const fs::path& dir, std::uint64_t disk_bytes) : dir_(dir.lexically_normal()) {
  std::lock_guard lock(workspaces_mutex);
  auto it = workspaces.find(dir_.string());
  if (it != workspaces.end()) {
    ++it->second;
    return;
  }
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error(from_errno(ec.value()), "workspace: mkdir(" + dir_.string() + "): " + ec.message());
  std::string options = "size=" + std::to_string(disk_bytes) +
                        ",nr_inodes=" + std::to_string(std::max<std::uint64_t>(1024, disk_bytes / 8192)) +
                        ",mode=0700,uid=" + std::to_string(host_uid) + ",gid=" + std::to_string(host_gid);
  if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
    throw_syscall("mount", errno, "workspace tmpfs at " + dir_.string());
  workspaces.emplace(dir_.string(), 1);
}

Workspace::Workspace(const fs::path& dir, Existing) : dir_(dir.lexically_normal()) {
  std::lock_guard lock(workspaces_mutex);
  auto it = workspaces.find(dir_.string());
  if (it != workspaces.end()) {
    ++it->second;
    return;
  }
  if (!mounted_at(dir_)) throw Error(errc::unavailable, "workspace: no quota mounted at " + dir_.string());
  workspaces.emplace(dir_.string(), 1);
}

Workspace::~Workspace() {
  if (released_) return;
  std::lock_guard lock(workspaces_mutex);
  auto it = workspaces.find(dir_.string());
  if (it == workspaces.end() || --it->second > 0) return;
  workspaces.erase(it);
  ::umount2(dir_.c_str(), MNT_DETACH);
}

void Workspace::release() noexcept {
  if (released_) return;
  released_ = true;
  std::lock_guard lock(workspaces_mutex);
  auto it = workspaces.find(dir_.string());
  if (it != workspaces.end() && --it->second <= 0) workspaces.erase(it);
}

namespace {
// Mount points at or below `dir`, as /proc/self/mountinfo names them (octal escapes undone).
std::vector<std::string> mounts_under(const fs::path& dir) {
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  const std::string prefix = dir.lexically_normal().string();
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, raw;
    fields >> id >> parent >> dev >> root >> raw;
    std::string point;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 3 < raw.size()) {
        point += static_cast<char>((raw[i + 1] - '0') * 64 + (raw[i + 2] - '0') * 8 + (raw[i + 3] - '0'));
        i += 3;
      } else {
        point += raw[i];
      }
    }
    if (point == prefix || point.rfind(prefix + "/", 0) == 0) points.push_back(point);
  }
  return points;
}
}  // namespace

bool mounted_at(const fs::path& dir) noexcept {
  try {
    const std::string want = dir.lexically_normal().string();
    for (auto& p : mounts_under(dir))
      if (p == want) return true;
  } catch (...) {
  }
  return false;
}

int remove_stale(const fs::path& dir, const std::vector<fs::path>& except) noexcept {
  int count = 0;
  try {
    std::vector<std::string> points;
    for (auto& point : mounts_under(dir)) {
      bool kept = false;
      for (auto& e : except) {
        const std::string k = e.lexically_normal().string();
        kept = kept || point == k || point.rfind(k + "/", 0) == 0;
      }
      if (!kept) points.push_back(point);
    }
    // Deepest first.
    std::sort(points.begin(), points.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
    for (auto& point : points)
      if (::umount2(point.c_str(), MNT_DETACH) == 0) ++count;
  } catch (...) {
  }
  return count;
}

}  // namespace sandbox::isolation::ns::mount
