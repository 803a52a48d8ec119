// Creates a Sandbox from an installed libsandbox and runs one shell command in a session.
// Exit 77 (skipped) when the installed prefix holds no runtime to run code with.
#include <sandbox/sandbox.hpp>

#include <iostream>

int main() {
  try {
    try {
      std::cout << "runtime: " << sandbox::find_runtime_dir().string() << '\n';
    } catch (const sandbox::Error& e) {
      std::cout << "no runtime installed, not running code: " << e.message() << '\n';
      return 77;
    }
    sandbox::Sandbox sb;
    std::cout << "isolation: " << sb.isolation() << '\n';
    auto session = sb.create_session({.language = sandbox::Language::shell});
    auto r = session->run({.language = sandbox::Language::shell, .code = "echo consumer-ok"});
    if (r.stdout_text != "consumer-ok\n") {
      std::cerr << "unexpected stdout: [" << r.stdout_text << "] stderr: [" << r.stderr_text << "]\n";
      return 1;
    }
    std::cout << "ok\n";
    return 0;
  } catch (const sandbox::Error& e) {
    std::cerr << "error: " << sandbox::to_string(e.code_value()) << ": " << e.message() << '\n';
    return 1;
  }
}
