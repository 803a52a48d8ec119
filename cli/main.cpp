// sandboxctl: the command-line front-end. It parses, calls libsandbox and formats; it decides
// nothing the library does not.
#include <fmt/core.h>

#include <cstring>
#include <string_view>

#include "commands.hpp"
#include "sandbox/error.hpp"

namespace {

constexpr const char* usage = R"(usage: sandboxctl <command> [options]

Run untrusted Python, Node.js and shell code in isolated sessions.

local commands:
  run       run code once in a new session and print the result
  doctor    say which isolation backends this host supports, and why not the others
  serve     run the HTTP server

client commands (talk to a server: --server URL [--token T]):
  session   create | list | delete a session
  exec      run code in a session
  files     put | get | list | delete files of a session
  ps        list a session's processes
  kill      kill a process of a session

`sandboxctl <command> --help` tells more.
)";

}  // namespace

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
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    fmt::print("{}", usage);
    return argc < 2 ? 2 : 0;
  }
  std::string_view cmd = argv[1];
  try {
    if (cmd == "run") return sandbox::cli::run_main(argc - 1, argv + 1);
    if (cmd == "doctor") return sandbox::cli::doctor_main(argc - 1, argv + 1);
    if (cmd == "serve") return sandbox::cli::serve_main(argc - 1, argv + 1);
    if (cmd == "session" || cmd == "exec" || cmd == "files" || cmd == "ps" || cmd == "kill")
      return sandbox::cli::remote_main(cmd, argc - 1, argv + 1);
    if (cmd == "--version") {
      fmt::print("sandboxctl {}\n", SANDBOX_VERSION);
      return 0;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "sandboxctl {}: {}\n", cmd, e.what());
    return sandbox::cli::exit_code_for(e);
  }
  fmt::print(stderr, "sandboxctl: unknown command '{}'\n{}", cmd, usage);
  return 2;
}
