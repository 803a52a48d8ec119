// The OCI bundle of one runsc session: config.json and a skeleton root.
//
// The root (isolation/root_layout.hpp) is a small host directory of mount points, files
// and symlinks, read-only inside; every bind, tmpfs and proc of the layout is one of the
// bundle's mounts (gVisor's tmpfs and /proc: memory inside the Sentry, charged to the session).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "isolation/root_layout.hpp"
#include "isolation/runsc/runsc.hpp"
#include "sandbox/error.hpp"

namespace sandbox::isolation::runsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

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
  // One mount of the root layout.
  void add(const RootMount& m) {
    using Kind = RootMount::Kind;
    std::vector<std::string> flags = {"nosuid"};
    if (m.nodev) flags.push_back("nodev");
    if (m.noexec) flags.push_back("noexec");
    switch (m.kind) {
      case Kind::dir: dir(m.target); return;
      case Kind::file: file(m.target, m.source); return;
      case Kind::symlink: {
        dir(fs::path(m.target).parent_path());
        std::error_code ec;
        if (!fs::is_symlink(at(m.target))) fs::create_symlink(m.source, at(m.target), ec);
        return;
      }
      case Kind::bind:
        dir(fs::path(m.target).parent_path());
        if (!m.is_file) dir(m.target);
        else if (!fs::exists(at(m.target))) write_file(at(m.target), "");
        flags.insert(flags.begin(), {"rbind", m.writable ? "rw" : "ro"});
        mounts_.push_back({{"destination", m.target}, {"type", "bind"}, {"source", m.source}, {"options", flags}});
        return;
      case Kind::tmpfs:
      case Kind::proc: {
        dir(m.target);
        const std::string type = m.kind == Kind::proc ? "proc" : "tmpfs";
        if (!m.options.empty()) flags.push_back(m.options);
        mounts_.push_back({{"destination", m.target}, {"type", type}, {"source", type}, {"options", flags}});
        return;
      }
    }
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

  for (const auto& m : root_layout(spec, {user_uid, agent_uid, user_gid}, /*sized=*/false)) root.add(m);
  const std::string uid = std::to_string(user_uid);

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
