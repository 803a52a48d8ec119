#include "agent/agent.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "agent/agent_proc.hpp"
#include "agent/processes.hpp"
#include "sandbox/error.hpp"

namespace sandbox::agent {
namespace {
constexpr const char* kVersion = "0.1.0";
}

Agent::Agent(Options opts)
    : opts_(std::move(opts)), control_(reactor_, opts_.control_fd, opts_.host_kernels) {}

int Agent::run() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sys::check(::sigprocmask(SIG_BLOCK, &mask, nullptr), "sigprocmask");
  sigfd_ = sys::UniqueFd(sys::check(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd"));
  // Not PID 1 of a namespace: orphans of our children must still come back to us.
  if (::getpid() != 1) ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  control_.start([this](const Frame& f) { return on_frame(f); });
  reactor_.watch(sigfd_.get(), EPOLLIN, [this](std::uint32_t) { on_signals(); });
  reactor_.on_timer([this] { on_timer(); });

  control_.send(Type::hello, 0, json{{"pid", ::getpid()}, {"version", kVersion}}.dump());
  control_.flush(false);
  ask_host_ = opts_.host_kernels;
  if (opts_.kernel_fd >= 0) {
    auto k = std::make_unique<Kernel>();
    k->lang = Language::python;
    k->origin = KernelOrigin::host;
    Kernel& raw = *k;
    slot(Language::python) = std::move(k);
    const int fds[4] = {opts_.kernel_fd, opts_.kernel_fd + 1, opts_.kernel_fd + 2, opts_.kernel_fd + 3};
    adopt_kernel(raw, fds);
  }
  if (opts_.warm) {
    try {
      if (*opts_.warm != Language::shell && !slot(*opts_.warm)) new_kernel(*opts_.warm);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox-agent: warm: %s\n", e.what());
    }
  }

  reactor_.run([this] { return quitting(); }, [this] { control_.flush(false); });
  shutdown();
  return 0;
}

bool Agent::on_frame(const Frame& f) {
  switch (f.type) {
    case Type::run: on_run(f.id, f.payload); break;
    case Type::cancel: on_cancel(f.id); break;
    case Type::list: control_.send(Type::reply, f.id, list_processes()); break;
    case Type::kill: control_.send(Type::reply, f.id, kill_process(f.payload)); break;
    case Type::warm: on_warm(f.payload); break;
    case Type::kernel: on_kernel_frame(f.payload); break;
    case Type::shutdown: quit_ = true; break;
    default: break;  // unknown frames are ignored: newer hosts may send more
  }
  return !quitting();
}

void Agent::on_signals() {
  signalfd_siginfo si[16];
  bool child = false;
  for (;;) {
    ssize_t n = ::read(sigfd_.get(), si, sizeof si);
    if (n <= 0) break;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof(signalfd_siginfo); ++i) {
      if (si[i].ssi_signo == SIGCHLD) child = true;
      else quit_ = true;
    }
  }
  if (child) reap();
}

void Agent::reap() {
  for (;;) {
    int status = 0;
    rusage ru{};
    pid_t pid = ::wait4(-1, &status, WNOHANG, &ru);
    if (pid <= 0) break;
    if (auto s = shell_pids_.find(pid); s != shell_pids_.end()) {
      std::uint32_t id = s->second;
      shell_pids_.erase(s);
      on_shell_exit(id, status, ru);
    } else if (auto k = kernel_pids_.find(pid); k != kernel_pids_.end()) {
      Kernel* kernel = k->second;
      kernel_pids_.erase(k);
      on_kernel_exit(*kernel, status);
    }
    // Anything else is an orphan handed to us as subreaper / PID 1: reaped, nothing more.
  }
}

void Agent::rearm() {
  std::optional<Clock::time_point> next;
  auto consider = [&](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, e] : execs_)
    if (e->started && e->deadline) consider(*e->deadline);
  for (const auto& k : kernel_)
    if (k && !k->booted()) consider(k->boot_deadline);
  for (const auto& k : oneshots_)
    if (!k->booted()) consider(k->boot_deadline);
  reactor_.arm(next);
}

void Agent::on_timer() {
  auto now = Clock::now();
  std::vector<std::uint32_t> expired;
  for (const auto& [id, e] : execs_)
    if (e->started && e->deadline && *e->deadline <= now) expired.push_back(id);
  for (auto id : expired) {
    auto it = execs_.find(id);
    if (it != execs_.end()) terminate(*it->second, "Timeout", "timeout");
  }
  std::vector<Kernel*> stuck;
  for (const auto& k : kernel_)
    if (k && !k->booted() && k->boot_deadline <= now) stuck.push_back(k.get());
  for (const auto& k : oneshots_)
    if (!k->booted() && k->boot_deadline <= now) stuck.push_back(k.get());
  for (Kernel* k : stuck)
    kernel_lost(*k, "the " + std::string(to_string(k->lang)) + " kernel did not start in time");
  rearm();
}

void Agent::shutdown() {
  for (auto& k : kernel_)
    if (k && k->adopted() && k->pid > 0) kill_tree(k->pid, k->pid);
  kill_tree(::getpid(), 0, false);
  // Reap everything, so no zombie outlives us (kill(pid, 0) must fail for each of them).
  auto deadline = Clock::now() + std::chrono::seconds(3);
  for (;;) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // ECHILD: nobody left
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{sigfd_.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
    signalfd_siginfo si;
    while (::read(sigfd_.get(), &si, sizeof si) > 0) {
    }
    // A process forked during the kill (or an orphan re-parented since) gets the same.
    kill_tree(::getpid(), 0, false);
  }
  control_.flush(true);
}

}  // namespace sandbox::agent
