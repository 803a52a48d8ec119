// Built with -DSANDBOX_BUILD_SERVER=OFF: the server commands say so.
#include <fmt/core.h>

#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace sandbox::cli {
namespace {

void unavailable(CLI::App& app, const char* name, int& exit_code) {
  auto* sub = app.add_subcommand(name, "not built (SANDBOX_BUILD_SERVER=OFF)");
  sub->allow_extras();
  sub->callback([&exit_code] {
    fmt::print(stderr, "sandboxctl was built without the HTTP server (SANDBOX_BUILD_SERVER=OFF)\n");
    exit_code = 7;
  });
}

}  // namespace

void add_serve(CLI::App& app, int& exit_code) { unavailable(app, "serve", exit_code); }

void add_remote(CLI::App& app, int& exit_code) {
  for (const char* name : {"session", "exec", "files", "ps", "kill"}) unavailable(app, name, exit_code);
}

}  // namespace sandbox::cli
