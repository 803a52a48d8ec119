// The root a session sees, described once: what appears where, read-only or not. The
// namespaces backend renders it as mount steps (namespaces/mount.cpp), runsc as its OCI
// bundle's mounts and rootfs skeleton (runsc/bundle.cpp); each adds only what its kernel
// needs on top (the namespaces backend its /dev nodes and /proc covers).
//
//   for (const auto& m : root_layout(spec, {1000, 1001, 1000}, /*sized=*/true)) ...
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "isolation/backends.hpp"

namespace sandbox::isolation {

struct RootMount {
  enum class Kind {
    dir,      // an empty directory (a mount point, /etc)
    bind,     // host `source` at `target`
    symlink,  // `target` -> `source` (a host symlink, as on the host: merged /usr)
    file,     // `target` holding `source` as its contents (mode 0644)
    tmpfs,    // a fresh tmpfs with `options`
    proc,     // the session's own /proc
  };
  Kind kind;
  std::string target;  // absolute, as the session sees it
  std::string source;  // host path, link text or contents
  bool writable = false;
  bool is_file = false;  // bind of a regular file
  bool nodev = true;     // nosuid always
  bool noexec = false;
  std::string options;   // tmpfs: size=, nr_inodes=, mode=
};

struct RootIds {
  uid_t code;   // the code's user, "sandbox" in /etc/passwd
  uid_t agent;  // the agent's, "agent"
  gid_t gid;    // both users' group
};

// The session's root for `spec`, in mount order (host paths probed now). `sized`: scratch
// tmpfs get size and inode limits (the namespaces backend's; gVisor's are memory of the
// Sentry, charged to the session already).
std::vector<RootMount> root_layout(const LaunchSpec& spec, const RootIds& ids, bool sized);

}  // namespace sandbox::isolation
