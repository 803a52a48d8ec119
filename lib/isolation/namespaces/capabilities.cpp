// Capabilities: none at all. The bounding set is emptied first (that needs CAP_SETPCAP,
// which we still hold), then ambient, then the effective/permitted/inheritable sets.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns::capabilities {

int last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  in >> last;
  return last;
}

// Child side.
bool drop(int cap_last) {
  for (int cap = 0; cap <= cap_last; ++cap)
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return false;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  return ::syscall(SYS_capset, &header, data) == 0;
}

}  // namespace sandbox::isolation::ns::capabilities
