// sandboxctl's subcommands, parsed by CLI11: each file registers its own on the app and runs
// it from the subcommand's callback, which sets the exit code.
#pragma once

#include <exception>

namespace CLI {
class App;
}

namespace sandbox::cli {

void add_run(CLI::App& app, int& exit_code);     // run, doctor (cli/run.cpp)
void add_serve(CLI::App& app, int& exit_code);   // serve (cli/serve.cpp)
// Client subcommands talking to a server: session, exec, files, ps, kill (cli/remote.cpp).
void add_remote(CLI::App& app, int& exit_code);

// Exit codes, derived from the error vocabulary in one place.
int exit_code_for(const std::exception& e);

}  // namespace sandbox::cli
