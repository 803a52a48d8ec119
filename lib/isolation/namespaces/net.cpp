// The network namespace: empty but for the loopback device, which we bring up so code
// inside can talk to itself (a kernel and a local HTTP server, say). No route out.
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns::net {

// Child side.
bool init_ns() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    ok = ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  }
  int saved = errno;
  ::close(s);
  errno = saved;
  return ok;
}

}  // namespace sandbox::isolation::ns::net
