// The OCI bundle of one runsc session: config.json and a skeleton root.
//
// The root is a small host directory of mount points, read-only inside. Everything else is
// a mount: the system directories and an /etc subset read-only from the host (as the
// namespaces backend builds its root), the runtime read-only, the workspace read-write, and
// gVisor's own /proc, /dev and /tmp (memory inside the Sentry, charged to the session).
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "isolation/runsc/runsc.hpp"
#include "sandbox/error.hpp"

namespace sandbox::isolation::runsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Host paths bound read-only at the same path; symlinks (merged /usr) stay symlinks.
const char* const system_paths[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
// The /etc the loader, Python, Node and matplotlib read. No passwd/group from the host.
const char* const etc_globs[] = {
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/localtime", "/etc/timezone", "/etc/ssl", "/etc/ca-certificates", "/etc/python3*",
    "/etc/matplotlibrc", "/etc/fonts", "/etc/mime.types", "/etc/gai.conf",
};

std::vector<std::string> expand(const char* pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern, 0, nullptr, &g) == 0)
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  return out;
}

void write_file(const fs::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  if (!out.flush()) throw Error(errc::internal, "runsc bundle: cannot write " + path.string());
  ::chmod(path.c_str(), 0644);
}

// Builds rootfs/ and the mounts list side by side, so every mount point exists in the
// read-only root (gVisor cannot create it there).
class Root {
 public:
  explicit Root(fs::path rootfs) : rootfs_(std::move(rootfs)) {}

  void dir(const fs::path& inside) {
    std::error_code ec;
    fs::create_directories(at(inside), ec);
    if (ec) throw Error(from_errno(ec.value()), "runsc bundle: mkdir " + at(inside).string() + ": " + ec.message());
  }
  // Host `source` at `inside`, read-only unless `writable`.
  void host(const fs::path& source, const fs::path& inside, bool writable = false) {
    struct stat st;
    if (::lstat(source.c_str(), &st) != 0) return;
    dir(inside.parent_path());
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      auto link = fs::read_symlink(source, ec);
      if (!ec && !fs::is_symlink(at(inside))) fs::create_symlink(link, at(inside), ec);
      return;
    }
    if (S_ISDIR(st.st_mode)) {
      dir(inside);
    } else if (S_ISREG(st.st_mode)) {
      if (!fs::exists(at(inside))) write_file(at(inside), "");
    } else {
      return;
    }
    mounts_.push_back({{"destination", inside.string()},
                       {"type", "bind"},
                       // runsc resolves a relative source against the bundle, not our cwd
                       {"source", fs::absolute(source).lexically_normal().string()},
                       {"options", {"rbind", writable ? "rw" : "ro", "nosuid", "nodev"}}});
  }
  void special(const fs::path& inside, const std::string& type, std::vector<std::string> options) {
    dir(inside);
    mounts_.push_back({{"destination", inside.string()}, {"type", type}, {"source", type},
                       {"options", std::move(options)}});
  }
  void file(const fs::path& inside, const std::string& contents) {
    dir(inside.parent_path());
    write_file(at(inside), contents);
  }
  fs::path at(const fs::path& inside) const { return rootfs_ / inside.relative_path(); }
  json take_mounts() { return std::move(mounts_); }

 private:
  fs::path rootfs_;
  json mounts_ = json::array();
};

bool under_system_path(const fs::path& exe) {
  return std::any_of(std::begin(system_paths), std::end(system_paths), [&](const char* d) {
    auto rel = exe.lexically_relative(d);
    return !rel.empty() && *rel.begin() != "..";
  });
}

json rlimit(const char* type, std::uint64_t value) {
  return {{"type", type}, {"hard", value}, {"soft", value}};
}

}  // namespace

std::string container_id(const std::string& session_id) {
  // runsc takes [A-Za-z0-9_.-]; the session id is already that in practice.
  std::string id;
  for (char c : session_id.substr(0, 100))
    id += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return id.empty() ? "session" : id;
}

std::string cgroups_path(const std::string& id) { return std::string(cgroup_parent) + "/" + id; }

fs::path write_bundle(const LaunchSpec& spec, const fs::path& dir, const BundleOptions& options) {
  std::error_code ec;
  fs::remove_all(dir, ec);  // a half-written bundle of an earlier attempt
  Root root(dir / "rootfs");
  root.dir("/");
  ::chmod(dir.c_str(), 0711);
  ::chmod((dir / "rootfs").c_str(), 0755);

  for (const char* path : system_paths) root.host(path, path);
  root.dir("/etc");
  for (const char* pattern : etc_globs)
    for (auto& path : expand(pattern)) root.host(path, path);
  // Interpreters outside the system dirs (a venv, /opt/...) are bound by file.
  for (const auto& exe : {spec.interpreters.python, spec.interpreters.node, spec.interpreters.shell})
    if (exe.is_absolute() && !under_system_path(exe)) root.host(exe, exe);
  const std::string uid = std::to_string(user_uid), gid = std::to_string(user_gid);
  root.file("/etc/passwd", "sandbox:x:" + uid + ":" + gid + ":sandbox:/workspace:/bin/sh\n"
                           "agent:x:" + std::to_string(agent_uid) + ":" + gid + ":sandbox agent:/nonexistent:/usr/sbin/nologin\n"
                           "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
  root.file("/etc/group", "sandbox:x:" + gid + ":\nnogroup:x:65534:\n");
  root.file("/etc/hostname", std::string(hostname) + "\n");
  root.file("/etc/hosts", std::string("127.0.0.1 localhost ") + hostname + "\n::1 localhost\n");

  if (!spec.runtime_dir.empty()) root.host(spec.runtime_dir, runtime_inside);
  root.host(spec.workspace, workspace_inside, /*writable=*/true);
  root.special("/proc", "proc", {"nosuid", "nodev", "noexec"});
  root.special("/dev", "tmpfs", {"nosuid", "noexec", "mode=0755"});  // gVisor fills in null, zero, ...
  root.special("/dev/shm", "tmpfs", {"nosuid", "nodev", "mode=1777"});
  root.special("/tmp", "tmpfs", {"nosuid", "nodev", "mode=1777"});

  std::vector<std::string> args = options.args;
  if (args.empty()) {
    fs::path agent = fs::path(runtime_inside) / "sandbox-agent";
    args = agent_argv(agent, agent_control_fd, workspace_inside, runtime_inside, spec);
    args.push_back("--code-uid");
    args.push_back(uid);
    args.push_back("--keep-uid");
  }
  const Limits& l = spec.limits;
  // RLIMIT_NPROC counts per uid: the agent, under its own, is one of the session's processes.
  const std::uint64_t nproc = l.max_processes > 1 ? l.max_processes - 1 : 1;
  const json setuid = options.args.empty() ? json::array({"CAP_SETUID", "CAP_SETPCAP", "CAP_KILL"}) : json::array();
  json process = {
      {"terminal", false},
      // The agent's uid with CAP_SETUID, CAP_SETPCAP and CAP_KILL only. It keeps its uid (see
      // --keep-uid in lib/agent/main.cpp), drops CAP_SETPCAP and the rest of the bounding set,
      // and keeps CAP_SETUID (a child's uid) and CAP_KILL (signals to code). Code gets none in any set, and no way
      // to gain any (setuid files, file caps). cwd: the workspace is the code's, mode 0700.
      {"user", {{"uid", agent_uid}, {"gid", user_gid}, {"additionalGids", json::array()}}},
      {"args", args},
      {"env", agent_environment(workspace_inside)},
      {"cwd", "/"},
      {"capabilities", {{"bounding", setuid}, {"effective", setuid}, {"inheritable", setuid},
                        {"permitted", setuid}, {"ambient", setuid}}},
      {"noNewPrivileges", true},
      {"rlimits", {rlimit("RLIMIT_NOFILE", l.open_files), rlimit("RLIMIT_CORE", 0),
                   rlimit("RLIMIT_FSIZE", l.disk_bytes), rlimit("RLIMIT_NPROC", nproc),
                   rlimit("RLIMIT_CPU", static_cast<std::uint64_t>(l.cpu_time.count()))}},
  };
  // pid, ipc, uts, mount, and a network namespace with loopback only (--network=none too).
  json linux_ = {{"namespaces", json::array()}};
  for (const char* ns : {"pid", "network", "ipc", "uts", "mount"})
    linux_["namespaces"].push_back(json{{"type", ns}});
  if (options.cgroups) {
    constexpr std::uint64_t period = 100'000;
    linux_["cgroupsPath"] = cgroups_path(options.container_id);
    linux_["resources"] = {
        {"memory", {{"limit", l.memory_bytes + sentry_memory_bytes},
                    {"swap", l.memory_bytes + sentry_memory_bytes}}},
        {"pids", {{"limit", host_pids(l.max_processes)}}},
        {"cpu", {{"period", period},
                 {"quota", static_cast<std::int64_t>(std::max(0.01, l.cpus) * static_cast<double>(period))}}},
    };
  }
  json config = {
      {"ociVersion", "1.0.2"},
      {"process", std::move(process)},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", hostname},
      {"mounts", root.take_mounts()},
      {"linux", std::move(linux_)},
  };
  write_file(dir / "config.json", config.dump(2));
  return dir;
}

}  // namespace sandbox::isolation::runsc
