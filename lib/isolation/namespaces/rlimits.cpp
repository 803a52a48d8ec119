// Per-process resource limits that cgroups do not cover: no core dumps, the open-file
// count, and no single file larger than the workspace quota. Process counts are the pids
// cgroup's job (RLIMIT_NPROC counts per host uid, across sessions).
#include <sys/resource.h>

#include <algorithm>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns::rlimits {

std::vector<Rlimit> plan(const Limits& limits) {
  return {
      {RLIMIT_CORE, 0},
      {RLIMIT_NOFILE, std::max<std::uint64_t>(limits.open_files, 16)},
      {RLIMIT_FSIZE, limits.disk_bytes},
  };
}

}  // namespace sandbox::isolation::ns::rlimits
