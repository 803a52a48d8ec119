#include "isolation/root_layout.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <iterator>

namespace sandbox::isolation {
namespace {
namespace fs = std::filesystem;
using Kind = RootMount::Kind;

// Host paths the interpreters need, bound read-only at the same path.
const char* const system_paths[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
// The /etc the loader, Python, Node and matplotlib read (time zone, TLS roots, fonts). No
// passwd/shadow/group from the host: small ones are written instead.
const char* const etc_globs[] = {
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/localtime", "/etc/timezone", "/etc/ssl", "/etc/ca-certificates", "/etc/python3*",
    "/etc/matplotlibrc", "/etc/fonts", "/etc/mime.types", "/etc/gai.conf",
};
constexpr const char* hostname = "sandbox";

std::vector<std::string> expand(const char* pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern, 0, nullptr, &g) == 0)
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  return out;
}

// Host `source` at `inside`: a symlink stays a symlink, a dir or file is bound, anything
// else (or nothing) is left out.
void host(std::vector<RootMount>& out, const fs::path& source, const std::string& inside, bool writable = false) {
  struct stat st;
  if (::lstat(source.c_str(), &st) != 0) return;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto link = fs::read_symlink(source, ec);
    if (!ec) out.push_back({Kind::symlink, inside, link.string()});
    return;
  }
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return;
  RootMount m{Kind::bind, inside, fs::absolute(source).lexically_normal().string()};
  m.writable = writable;
  m.is_file = !S_ISDIR(st.st_mode);
  out.push_back(std::move(m));
}

RootMount tmpfs(std::string target, std::string options, bool nodev, bool noexec) {
  RootMount m{Kind::tmpfs, std::move(target), "tmpfs"};
  m.options = std::move(options);
  m.nodev = nodev;
  m.noexec = noexec;
  return m;
}

}  // namespace

std::vector<RootMount> root_layout(const LaunchSpec& spec, const RootIds& ids, bool sized) {
  std::vector<RootMount> out;
  for (const char* path : system_paths) host(out, path, path);
  out.push_back({Kind::dir, "/etc"});
  for (const char* pattern : etc_globs)
    for (auto& path : expand(pattern)) host(out, path, path);
  // Interpreters outside the system dirs (a venv, /opt/...) are bound by file.
  for (const auto& exe : {spec.interpreters.python, spec.interpreters.node, spec.interpreters.shell}) {
    const bool covered = std::any_of(std::begin(system_paths), std::end(system_paths), [&](const char* d) {
      auto rel = exe.lexically_relative(d);
      return !rel.empty() && *rel.begin() != "..";
    });
    if (!covered && exe.is_absolute()) host(out, exe, exe.string());
  }
  const std::string uid = std::to_string(ids.code), gid = std::to_string(ids.gid);
  out.push_back({Kind::file, "/etc/passwd",
                 "sandbox:x:" + uid + ":" + gid + ":sandbox:/workspace:/bin/sh\n"
                 "agent:x:" + std::to_string(ids.agent) + ":" + gid + ":sandbox agent:/nonexistent:/usr/sbin/nologin\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"});
  out.push_back({Kind::file, "/etc/group", "sandbox:x:" + gid + ":\nnogroup:x:65534:\n"});
  out.push_back({Kind::file, "/etc/hostname", std::string(hostname) + "\n"});
  out.push_back({Kind::file, "/etc/hosts", std::string("127.0.0.1 localhost ") + hostname + "\n::1 localhost\n"});

  // The runtime (agent, kernels, node_modules) read-only; the workspace read-write.
  if (!spec.runtime_dir.empty()) host(out, spec.runtime_dir, "/opt/sandbox");
  host(out, spec.workspace, "/workspace", /*writable=*/true);

  // Private scratch space and a minimal /dev; a /proc of the session's own.
  const auto disk = std::to_string(spec.limits.disk_bytes);
  const auto inodes = std::to_string(std::max<std::uint64_t>(1024, spec.limits.disk_bytes / 8192));
  const std::string scratch = sized ? "size=" + disk + ",nr_inodes=" + inodes + ",mode=1777" : "mode=1777";
  out.push_back(tmpfs("/tmp", scratch, true, false));
  out.push_back(tmpfs("/dev", sized ? "size=64k,nr_inodes=64,mode=0755" : "mode=0755", false, true));
  out.push_back(tmpfs("/dev/shm", scratch, true, true));
  RootMount proc{Kind::proc, "/proc", "proc"};
  proc.noexec = true;
  out.push_back(std::move(proc));
  return out;
}

}  // namespace sandbox::isolation
