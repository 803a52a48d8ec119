// Invoking `runsc`: each call is one runsc process, run to completion under a deadline.
//
// The process is forked from a multi-threaded server, so everything the child needs (argv,
// envp, fds) is prepared before fork(); the child only makes async-signal-safe calls.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "isolation/runsc/runsc.hpp"
#include "sandbox/error.hpp"
#include "sys/cstrings.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation::runsc {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Starts argv with `in`, `out`, `err` as fds 0-2 (-1: /dev/null) and nothing else open, in
// its own process group (a Ctrl-C meant for the server must not cut a container in half).
pid_t spawn(const std::vector<std::string>& argv, int in, int out, int err) {
  sys::CStrings args(argv);
  sys::CStrings env({"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"});
  sys::UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw_syscall("open", errno, "/dev/null");
  const int src[3] = {in >= 0 ? in : null.get(), out >= 0 ? out : null.get(), err >= 0 ? err : null.get()};
  pid_t pid = ::fork();
  if (pid < 0) throw_syscall("fork", errno, "runsc");
  if (pid == 0) {
    ::setpgid(0, 0);
    // Lift the sources above 2 first, so that placing one cannot clobber another.
    int high[3];
    for (int i = 0; i < 3; ++i)
      if ((high[i] = ::fcntl(src[i], F_DUPFD, 10)) < 0) ::_exit(126);
    for (int i = 0; i < 3; ++i)
      if (::dup2(high[i], i) < 0) ::_exit(126);
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
    ::execve(args.ptrs[0], args.ptrs.data(), env.ptrs.data());
    ::_exit(127);
  }
  return pid;
}

// Waits up to `timeout` for `pid`; its wait status, or nullopt (still running) at the deadline.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sys::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) throw_syscall("waitpid", errno, "runsc");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    if (pidfd) {
      pollfd p{pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(left, 2ms));
    }
  }
}

void kill_and_reap(pid_t pid) noexcept {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

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
  pid_t pid = spawn(argv, -1, wr.get(), wr.get());
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
      kill_and_reap(pid);
      throw Error(errc::unavailable, argv.size() > 1 ? "runsc " + argv.back() + ": timed out" : "runsc: timed out");
    }
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (output.size() < (1u << 20)) output.append(buf, static_cast<std::size_t>(n));
  }
  auto status = wait_for(pid, std::max<std::chrono::milliseconds>(
                                  1ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                           deadline - std::chrono::steady_clock::now())));
  if (!status) {
    kill_and_reap(pid);
    throw Error(errc::unavailable, "runsc: timed out");
  }
  return {exit_code(*status), std::move(output)};
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
  pid_t pid = spawn(argv, stdio_fd, wr.get(), wr.get());
  wr.reset();
  auto status = wait_for(pid, timeout);
  if (!status) {
    kill_and_reap(pid);
    try {
      remove(id);
    } catch (...) {
    }
    throw Error(errc::unavailable, "runsc run " + id + ": the container did not start within " +
                                       std::to_string(timeout.count()) + " ms (platform " + options_.platform + ")");
  }
  if (exit_code(*status) != 0)
    throw Error(errc::unavailable, "runsc run " + id + " failed (exit " + std::to_string(exit_code(*status)) +
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
