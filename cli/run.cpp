// sandboxctl run / doctor: the library used directly, no server.
#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "commands.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::cli {
namespace {

constexpr const char* run_usage = R"(usage: sandboxctl run [options] (-c CODE | FILE | -)

Runs code once in a new session and prints the result. Exits 0 only if it Finished.

options:
  --lang python|nodejs|shell   language (default python)
  --isolation NAME             runsc, namespaces or rlimit (default: the strongest available)
  --timeout S                  wall-clock limit in seconds (default 10)
  --memory MB                  session memory limit
  --stdin TEXT                 text given to the code as its standard input
  --upload FILE                copy FILE into the workspace first (repeatable)
  --save-images DIR            write captured images to DIR/image-N.png
  --json                       print the result object as JSON (DESIGN section 3 fields)
  -c CODE                      the code (else FILE, or - for standard input)
)";

std::string read_all(std::istream& in) {
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int run_main(int argc, char** argv) {
  Options opts;
  ExecRequest req;
  bool json = false, have_code = false;
  std::string save_images;
  std::vector<std::string> uploads;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw Error(errc::invalid_argument, std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("{}", run_usage);
      return 0;
    } else if (a == "--lang") {
      req.language = parse_language(need(i));
    } else if (a == "--isolation") {
      opts.isolation = need(i);
    } else if (a == "--timeout") {
      set_limit(opts.limits, "timeout", std::strtod(need(i).c_str(), nullptr));
    } else if (a == "--memory") {
      opts.limits.memory_bytes = std::strtoull(need(i).c_str(), nullptr, 10) << 20;
    } else if (a == "--stdin") {
      req.stdin_text = need(i);
    } else if (a == "--upload") {
      uploads.push_back(need(i));
    } else if (a == "--save-images") {
      save_images = need(i);
    } else if (a == "--json") {
      json = true;
    } else if (a == "-c") {
      req.code = need(i);
      have_code = true;
    } else if (a == "-") {
      req.code = read_all(std::cin);
      have_code = true;
    } else if (!a.empty() && a[0] != '-' && !have_code) {
      std::ifstream f{std::string(a)};
      if (!f) throw Error(errc::not_found, "cannot read " + std::string(a));
      req.code = read_all(f);
      have_code = true;
    } else {
      throw Error(errc::invalid_argument, "unknown option " + std::string(a) + " (see --help)");
    }
  }
  if (!have_code) throw Error(errc::invalid_argument, "no code: give -c CODE, a FILE or - (see --help)");
  // One run needs no warm matplotlib unless the code plots.
  if (req.language != Language::python || req.code.find("matplotlib") == std::string::npos) opts.preload.clear();

  Sandbox sb(opts);
  auto session = sb.create_session({.language = req.language});
  for (const auto& path : uploads) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(errc::not_found, "cannot read " + path);
    session->files().upload(std::filesystem::path(path).filename().string(), read_all(f));
  }
  Result r = session->run(req);
  if (!save_images.empty()) {
    std::filesystem::create_directories(save_images);
    for (std::size_t i = 0; i < r.images.size(); ++i) {
      std::ofstream out(std::filesystem::path(save_images) / fmt::format("image-{}.png", i + 1), std::ios::binary);
      out << r.images[i].data;
    }
  }
  if (json) {
    fmt::print("{}\n", to_json(r, /*design_only=*/true));
  } else {
    std::fwrite(r.stdout_text.data(), 1, r.stdout_text.size(), stdout);
    std::fwrite(r.stderr_text.data(), 1, r.stderr_text.size(), stderr);
    // Kernels echo tracebacks on stderr like a notebook; print the error only if they did not.
    if (r.error && r.stderr_text.find(r.error->name) == std::string::npos)
      fmt::print(stderr, "{}{}: {}\n", r.error->traceback, r.error->name, r.error->value);
    if (r.result) fmt::print("{}\n", *r.result);
    for (std::size_t i = 0; i < r.images.size(); ++i)
      fmt::print(stderr, "[image {}: {}, {} bytes]\n", i + 1, r.images[i].mime, r.images[i].data.size());
    if (r.status != Status::finished) {
      fmt::print(stderr, "[{}{}{}]\n", to_string(r.status),
                 r.exit_code ? fmt::format(", exit code {}", *r.exit_code) : "",
                 r.note ? ": " + *r.note : "");
    }
  }
  return r.status == Status::finished ? 0 : 1;
}

int doctor_main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      fmt::print("usage: sandboxctl doctor\n\nSays which isolation backends this host supports, why not "
                 "the others, and which one is the default.\n");
      return 0;
    }
  }
  std::string chosen;
  try {
    chosen = isolation::default_backend();
  } catch (const Error& e) {
    chosen = std::string("none: ") + e.message();
  }
  for (const auto& b : isolation::describe_backends()) {
    const auto& s = b.support;
    fmt::print("{:<11} {:<13} {}\n", b.name, s.available ? "available" : "unavailable", s.reason);
    const auto& c = b.containment;
    for (const auto& x : c.contains) fmt::print("              contains: {}\n", x);
    for (const auto& x : c.does_not_contain) fmt::print("              does NOT contain: {}\n", x);
  }
  try {
    fmt::print("runtime     {}\n", find_runtime_dir().string());
  } catch (const Error& e) {
    fmt::print("runtime     missing: {}\n", e.message());
  }
  fmt::print("default     {}\n", chosen);
  if (chosen == "namespaces")
    fmt::print("            (runsc walls code off behind a user-space kernel too, but a session costs\n"
               "             ~250 ms instead of ~10 ms: choose it with --isolation runsc)\n");
  return chosen.rfind("none", 0) == 0 ? 1 : 0;
}

}  // namespace sandbox::cli
