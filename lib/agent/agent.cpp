#include "agent/agent.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "agent/agent_proc.hpp"
#include "agent/processes.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {
namespace {
constexpr const char* kVersion = "0.1.0";
}

Agent::Agent(Options opts)
    : opts_(std::move(opts)), control_(reactor_, opts_.control_fd, opts_.host_kernels) {
  if (opts_.lifetime_deadline_ms > 0) {
    // On the steady clock, like every other deadline: counted once from the wall clock now.
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    lifetime_at_ = Clock::now() + std::chrono::milliseconds(opts_.lifetime_deadline_ms - now_ms);
  }
}

std::string Agent::hello(bool resumed) const {
  return json{{"pid", ::getpid()}, {"version", kVersion}, {"protocol", protocol_version}, {"resumed", resumed}}
      .dump();
}

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

  control_.send(Type::hello, 0, hello(false));
  control_.flush(false);
  if (opts_.durable()) {
    sys::set_nonblocking(opts_.listen_fd);
    reactor_.watch(opts_.listen_fd, EPOLLIN, [this](std::uint32_t) { on_accept(); });
  }
  rearm();
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

  reactor_.run([this] { return quitting(); }, [this] {
    control_.flush(false);
    if (opts_.durable() && control_.gone() && !detached_) detach();
  });
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
    case Type::ack: held_.ack(f.id); break;
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
  if (detached_ && orphan_at_) consider(*orphan_at_);
  if (lifetime_at_) consider(*lifetime_at_);
  reactor_.arm(next);
}

void Agent::on_timer() {
  auto now = Clock::now();
  // No host came back in time, or the session's lifetime is over: end as SHUTDOWN would.
  if ((detached_ && orphan_at_ && *orphan_at_ <= now) || (lifetime_at_ && *lifetime_at_ <= now)) {
    std::fprintf(stderr, "sandbox-agent: %s: ending\n",
                 lifetime_at_ && *lifetime_at_ <= now ? "lifetime deadline passed" : "no host came back");
    quit_ = true;
    return;
  }
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

// ---- durable agents -------------------------------------------------------------------

void Agent::on_accept() {
  for (;;) {
    int fd = ::accept4(opts_.listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && errno == EINTR) continue;
    if (fd < 0) return;  // EAGAIN, or a connection that went before we took it
    attach(fd);  // the latest connection wins: a host that connects again replaces itself
  }
}

void Agent::attach(int fd) {
  control_.replace(fd);
  detached_ = false;
  orphan_at_.reset();
  control_.send(Type::hello, 0, hello(true));
  replay();
  control_.send(Type::synced, 0, "{}");
  // A kernel asked of the previous host will never come on this connection: ask again, or
  // start our own (after SYNCED, so that the replay comes first).
  drop_kernel_request();
  control_.flush(false);
  rearm();
}

void Agent::replay() {
  const auto now = Clock::now();
  for (const auto& [id, h] : held_.entries()) {
    auto elapsed = h.started ? std::chrono::duration_cast<std::chrono::milliseconds>(now - h.start).count() : 0;
    json resume{{"exec_id", h.exec_id}, {"lang", to_string(h.lang)}, {"started", h.started}, {"elapsed_ms", elapsed}};
    // Still running: what the host's backstop and queue need (an ended one needs neither).
    if (auto e = execs_.find(id); e != execs_.end()) {
      resume["timeout_ms"] = e->second->timeout_ms;
      resume["fresh"] = e->second->fresh;
    }
    control_.send(Type::resume, id, resume.dump(-1, ' ', false, json::error_handler_t::replace));
    for (const auto& c : h.output) control_.send(Type::output, id, c.bytes, static_cast<std::uint8_t>(c.stream));
    if (h.done) control_.send(Type::done, id, *h.done);
  }
}

void Agent::detach() {
  control_.close();
  detached_ = true;
  orphan_at_ = Clock::now() + std::chrono::milliseconds(opts_.orphan_timeout_ms);
  std::fprintf(stderr, "sandbox-agent: the host is gone: waiting %lld ms for the next one\n",
               static_cast<long long>(opts_.orphan_timeout_ms));
  drop_kernel_request();  // nobody will answer NEED_KERNEL now: our own kernel instead
  rearm();
}

void Agent::drop_kernel_request() {
  Kernel* k = slot(Language::python).get();
  if (!k || k->state != KernelState::requested) return;
  destroy_kernel(*k);
  pump_queue(Language::python);
}

}  // namespace sandbox::agent
