// sandboxctl run / doctor: the library used directly, no server.
#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "commands.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::cli {
namespace {

std::string read_all(std::istream& in) {
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunArgs {
  std::string lang = "python", isolation, stdin_text, save_images, code, file;
  std::optional<std::string> preload;
  double timeout = 10;
  std::uint64_t memory_mb = 0;
  std::vector<std::string> uploads;
  bool json = false;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int run(const RunArgs& a, bool have_code) {
  Options opts;
  ExecRequest req;
  req.language = parse_language(a.lang);
  opts.isolation = a.isolation;
  set_limit(opts.limits, "timeout", a.timeout);
  if (a.memory_mb) opts.limits.memory_bytes = a.memory_mb << 20;
  req.stdin_text = a.stdin_text;
  // The warm kernel's imports are the library's choice (Options::preload) unless asked.
  if (a.preload) opts.preload = split_commas(*a.preload);
  if (have_code) {
    req.code = a.code;
  } else if (a.file == "-") {
    req.code = read_all(std::cin);
  } else if (!a.file.empty()) {
    std::ifstream f(a.file);
    if (!f) throw Error(errc::not_found, "cannot read " + a.file);
    req.code = read_all(f);
  } else {
    throw Error(errc::invalid_argument, "no code: give -c CODE, a FILE or - (see --help)");
  }
  const auto& uploads = a.uploads;
  const auto& save_images = a.save_images;
  const bool json = a.json;

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

int doctor() {
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

}  // namespace

void add_run(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<RunArgs>();
  auto* run_cmd = app.add_subcommand("run", "Run code once in a new session and print the result; exits 0 only if it Finished");
  run_cmd->add_option("--lang", a->lang, "python, nodejs or shell")->capture_default_str();
  run_cmd->add_option("--isolation", a->isolation, "runsc, namespaces or rlimit (default: the strongest available)");
  run_cmd->add_option("--timeout", a->timeout, "wall-clock limit in seconds")
      ->check(CLI::PositiveNumber)->capture_default_str();
  run_cmd->add_option("--memory", a->memory_mb, "session memory limit in MiB");
  run_cmd->add_option("--stdin", a->stdin_text, "text given to the code as its standard input");
  run_cmd->add_option("--upload", a->uploads, "copy FILE into the workspace first (repeatable)")->type_name("FILE");
  run_cmd->add_option("--save-images", a->save_images, "write captured images to DIR/image-N.png")->type_name("DIR");
  run_cmd->add_option("--preload", a->preload,
                      "python modules the warm kernel imports, comma-separated ('' = none; "
                      "default: the library's, numpy and matplotlib.pyplot)")->type_name("M1,M2");
  run_cmd->add_flag("--json", a->json, "print the result object as JSON (DESIGN section 3 fields)");
  auto* code = run_cmd->add_option("-c", a->code, "the code")->type_name("CODE");
  auto* file = run_cmd->add_option("file", a->file, "a file of code, or - for standard input")->type_name("FILE");
  code->excludes(file);
  run_cmd->callback([a, code, &exit_code] { exit_code = run(*a, code->count() > 0); });

  auto* doc = app.add_subcommand("doctor", "Say which isolation backends this host supports, why not the others, and which one is the default");
  doc->callback([&exit_code] { exit_code = doctor(); });
}

}  // namespace sandbox::cli
