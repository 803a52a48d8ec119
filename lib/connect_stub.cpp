// Built only while lib/remote/ (sandbox::connect, the remote client) is not in the tree
// (lib/CMakeLists.txt): a placed session's data calls then fail plainly instead of the
// library not linking. Goes away by itself once lib/remote/remote.cpp exists.
#include <fmt/format.h>

#include "sandbox/error.hpp"
#include "sandbox/remote.hpp"

namespace sandbox {

std::unique_ptr<Remote> connect(std::string_view url, ConnectOptions) {
  throw Error(errc::unavailable, fmt::format("sandbox::connect({}) is not built into this library", url));
}

}  // namespace sandbox
