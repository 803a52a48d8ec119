// The IPC namespace needs nothing beyond being new (no System V objects shared with the
// host or other sessions); the UTS namespace gets the hostname "sandbox".
#include <unistd.h>

#include <cstring>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns::ipc_uts {

// Child side.
bool init_ns() {
  if (::sethostname(hostname, std::strlen(hostname)) != 0) return false;
  return ::setdomainname("", 0) == 0;
}

}  // namespace sandbox::isolation::ns::ipc_uts
