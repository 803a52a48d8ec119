// Capabilities: none at all for code, and for the agent none but CAP_SETUID, carried
// through its exec as an ambient capability for the one uid switch it makes at start
// (lib/agent/main.cpp, confine_self) and then dropped. The bounding set is emptied first
// (that needs CAP_SETPCAP, which we still hold), then ambient, then the
// effective/permitted/inheritable sets.
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

// Child side (no allocation).
bool drop_bounding(int cap_last, std::uint64_t keep) {
  for (int cap = 0; cap <= cap_last; ++cap)
    if (!(keep >> cap & 1) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
  return true;
}

bool set(std::uint64_t keep) {
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return false;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    const auto bits = static_cast<__u32>(keep >> (32 * i));
    data[i] = {bits, bits, bits};  // effective, permitted, inheritable
  }
  if (::syscall(SYS_capset, &header, data) != 0) return false;
  for (int cap = 0; cap < 64; ++cap)
    if ((keep >> cap & 1) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) return false;
  return true;
}

bool drop(int cap_last) { return drop_bounding(cap_last, 0) && set(0); }

}  // namespace sandbox::isolation::ns::capabilities
