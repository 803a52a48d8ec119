// Built with -DSANDBOX_BUILD_SERVER=OFF: the server commands say so.
#include <fmt/core.h>

#include "commands.hpp"

namespace sandbox::cli {

int serve_main(int, char**) {
  fmt::print(stderr, "sandboxctl was built without the HTTP server (SANDBOX_BUILD_SERVER=OFF)\n");
  return 7;
}

int remote_main(std::string_view, int, char**) { return serve_main(0, nullptr); }

}  // namespace sandbox::cli
