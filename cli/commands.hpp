// sandboxctl's subcommands: each parses its own arguments, calls the library and formats.
#pragma once

#include <string_view>

namespace sandbox::cli {

int run_main(int argc, char** argv);     // sandboxctl run
int doctor_main(int argc, char** argv);  // sandboxctl doctor
int serve_main(int argc, char** argv);   // sandboxctl serve (cli/serve.cpp)
// Client subcommands talking to a server: session, exec, files, ps, kill (cli/remote.cpp).
int remote_main(std::string_view command, int argc, char** argv);

// Exit codes, derived from the error vocabulary in one place.
int exit_code_for(const std::exception& e);

}  // namespace sandbox::cli
