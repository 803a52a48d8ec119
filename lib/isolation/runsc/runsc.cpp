// Invoking `runsc`: each call is one runsc process, run to completion under a deadline.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "isolation/runsc/runsc.hpp"
#include "sandbox/error.hpp"
#include "sys/cstrings.hpp"
#include "sys/fd.hpp"
#include "sys/spawn.hpp"

namespace sandbox::isolation::runsc {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Starts argv with `in`, `out`, `err` as fds 0-2 (-1: /dev/null) and nothing else open, in
// its own process group (a Ctrl-C meant for the server must not cut a container in half).
sys::Child spawn(const std::vector<std::string>& argv, int in, int out, int err) {
  sys::CStrings args(argv);
  sys::CStrings env({"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"});
  sys::SpawnSpec spec{args.ptrs[0], args.ptrs.data(), env.ptrs.data(), {in, out, err}, 3};
  spec.report = false;  // a runsc that cannot start is an exit code, like any other failure
  spec.who = "runsc";
  return sys::spawn(spec);
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  if (s.size() > 2000) s = "..." + s.substr(s.size() - 2000);
  return s;
}

struct Outcome {
  int code;            // exit code (128 + signal if killed)
  std::string output;  // stdout and stderr
};

// Runs argv to completion, collecting its output; kills it at the deadline.
Outcome run_collect(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int p[2];
  sys::check(::pipe2(p, O_CLOEXEC), "pipe2");
  sys::UniqueFd rd(p[0]), wr(p[1]);
  sys::Child child = spawn(argv, -1, wr.get(), wr.get());
  wr.reset();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string output;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{rd.get(), POLLIN, 0};
    int rc = left > 0ms ? ::poll(&pfd, 1, static_cast<int>(left.count())) : 0;
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      child.kill();
      throw Error(errc::unavailable, argv.size() > 1 ? "runsc " + argv.back() + ": timed out" : "runsc: timed out");
    }
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (output.size() < (1u << 20)) output.append(buf, static_cast<std::size_t>(n));
  }
  auto status = child.wait_for(std::max<std::chrono::milliseconds>(
      1ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())));
  if (!status) throw Error(errc::unavailable, "runsc: timed out");  // child's destructor kills it
  return {sys::exit_code(*status), std::move(output)};
}

// Whatever is waiting in the pipe behind `fd` (non-blocking), for an error message.
std::string drain(int fd) {
  std::string s;
  char buf[4096];
  for (ssize_t n; s.size() < (64u << 10) && (n = ::read(fd, buf, sizeof buf)) > 0;)
    s.append(buf, static_cast<std::size_t>(n));
  return trim(std::move(s));
}

}  // namespace

std::vector<std::string> Cli::command(std::initializer_list<std::string> subcommand) const {
  std::vector<std::string> argv = {options_.binary.string(),
                                   "--root=" + options_.root.string(),
                                   "--platform=" + options_.platform,
                                   "--network=none"};
  if (!options_.cgroups) argv.emplace_back("--ignore-cgroups");
  argv.insert(argv.end(), subcommand);
  return argv;
}

Cli::Started Cli::run_detached(const std::string& id, const fs::path& bundle, int stdio_fd,
                              std::chrono::milliseconds timeout) const {
  const fs::path pid_file = bundle / "sandbox.pid";
  std::error_code ec;
  fs::remove(pid_file, ec);
  int p[2];
  sys::check(::pipe2(p, O_CLOEXEC | O_NONBLOCK), "pipe2");
  sys::UniqueFd rd(p[0]), wr(p[1]);
  // The writer blocks when the pipe is full (gVisor waits on it); only the reader polls.
  ::fcntl(wr.get(), F_SETFL, 0);
  auto argv = command({"run", "--detach", "--bundle=" + bundle.string(), "--pid-file=" + pid_file.string(), id});
  sys::Child child = spawn(argv, stdio_fd, wr.get(), wr.get());
  wr.reset();
  auto status = child.wait_for(timeout);
  if (!status) {
    child.kill();
    child.wait();
    try {
      remove(id);
    } catch (...) {
    }
    throw Error(errc::unavailable, "runsc run " + id + ": the container did not start within " +
                                       std::to_string(timeout.count()) + " ms (platform " + options_.platform + ")");
  }
  if (sys::exit_code(*status) != 0)
    throw Error(errc::unavailable, "runsc run " + id + " failed (exit " + std::to_string(sys::exit_code(*status)) +
                                       "): " + drain(rd.get()));
  pid_t sandbox = -1;
  std::ifstream in(pid_file);
  if (!(in >> sandbox) || sandbox <= 0)
    throw Error(errc::internal, "runsc run " + id + ": no pid in " + pid_file.string());
  return {sandbox, std::move(rd)};
}

int Cli::run(const std::string& id, const fs::path& bundle, std::chrono::milliseconds timeout) const {
  auto out = run_collect(command({"run", "--bundle=" + bundle.string(), id}), timeout);
  return out.code;
}

bool Cli::kill(const std::string& id, int signal) const noexcept {
  try {
    return run_collect(command({"kill", id, std::to_string(signal)}), 10s).code == 0;
  } catch (...) {
    return false;
  }
}

void Cli::remove(const std::string& id) const {
  auto out = run_collect(command({"delete", "--force", id}), 30s);
  if (out.code != 0) throw Error(errc::internal, "runsc delete " + id + ": " + trim(out.output));
}

std::vector<Container> Cli::list() const {
  auto out = run_collect(command({"list", "--format=json"}), 10s);
  if (out.code != 0) throw Error(errc::internal, "runsc list: " + trim(out.output));
  std::vector<Container> containers;
  try {
    auto j = nlohmann::json::parse(out.output);
    if (j.is_array()) {
      for (const auto& c : j)
        containers.push_back({c.value("id", ""), c.value("status", ""), c.value("pid", -1)});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(errc::internal, std::string("runsc list: unexpected output: ") + e.what());
  }
  return containers;
}

}  // namespace sandbox::isolation::runsc
