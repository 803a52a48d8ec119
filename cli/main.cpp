// sandboxctl: the command-line front-end. It parses (CLI11), calls libsandbox and formats; it
// decides nothing the library does not.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <string>

#include "commands.hpp"
#include "sandbox/error.hpp"

int sandbox::cli::exit_code_for(const std::exception& e) {
  // 2 for usage errors; 3.. for the rest, one per kind of failure.
  if (auto* err = dynamic_cast<const sandbox::Error*>(&e)) {
    switch (err->code_value()) {
      case errc::invalid_argument: return 2;
      case errc::not_found: return 3;
      case errc::already_exists: return 4;
      case errc::permission_denied:
      case errc::unauthenticated: return 5;
      case errc::resource_exhausted: return 6;
      case errc::unavailable: return 7;
      case errc::timeout: return 8;
      default: return 9;
    }
  }
  return 9;
}

int main(int argc, char** argv) {
  CLI::App app{"Run untrusted Python, Node.js and shell code in isolated sessions.\n\n"
               "local commands: run, doctor, serve\n"
               "client commands (talk to a server: --server URL [--token T]): session, exec, "
               "files, ps, kill\n`sandboxctl <command> --help` tells more.",
               "sandboxctl"};
  app.set_version_flag("--version", std::string("sandboxctl ") + SANDBOX_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  sandbox::cli::add_run(app, exit_code);
  sandbox::cli::add_serve(app, exit_code);
  sandbox::cli::add_remote(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int r = app.exit(e);  // prints help, the version, or what was wrong with the arguments
    return r == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "sandboxctl {}: {}\n", argc > 1 ? argv[1] : "", e.what());
    return sandbox::cli::exit_code_for(e);
  }
  return exit_code;
}
