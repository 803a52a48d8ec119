#include "sys/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "sandbox/error.hpp"

namespace sandbox::sys {
namespace {

// What the child reports before it exits: a step of its own, or one of confine()'s.
enum class Stage : int { fds, confine, exec };
struct Failure {
  Stage stage;
  ConfineStep step;
  int err;
};

// "<who>: <what> <path>" on fd 2: best effort, async-signal-safe.
void say(const char* who, const char* what, const char* what2, const char* path) {
  for (const char* s : {who, ": ", what, what2, " ", path, "\n"}) (void)!::write(2, s, std::strlen(s));
}

[[noreturn]] void child(const SpawnSpec& s, int null_fd, int report_fd) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // glibc's own refuse: fine
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // A session of its own (which is a group of its own too) at once when asked: setsid()
  // refuses a group leader, so it cannot follow setpgid().
  Confinement walls = s.confine;
  if (walls.setsid) {
    ::setsid();
    walls.setsid = false;
  } else {
    ::setpgid(0, 0);
  }

  Failure f{Stage::fds, ConfineStep::chdir, 0};
  auto fail = [&](Stage stage) {
    f.stage = stage;
    f.err = errno;
    if (report_fd >= 0) {
      (void)!::write(report_fd, &f, sizeof f);
      ::_exit(127);
    }
    const bool cwd = stage == Stage::confine && f.step == ConfineStep::chdir;
    if (stage == Stage::confine && !cwd) say(s.who, confine_step_name(f.step), " failed for", s.path);
    else say(s.who, stage == Stage::exec ? "cannot execute" : cwd ? "cannot enter" : "cannot place the fds of", "",
             cwd ? s.confine.cwd : s.path);
    ::_exit(stage == Stage::exec ? 127 : cwd ? 126 : 125);
  };
  int map[SpawnSpec::max_fds];
  for (int i = 0; i < s.nfds; ++i) map[i] = s.fds[i] >= 0 ? s.fds[i] : null_fd;
  if (!place_fds(map, s.nfds, report_fd >= 0 ? &report_fd : nullptr)) fail(Stage::fds);
  if (!confine(walls, &f.step)) fail(Stage::confine);
  ::execve(s.path, const_cast<char* const*>(s.argv), s.envp);
  fail(Stage::exec);
  ::_exit(127);
}

}  // namespace

bool place_fds(const int* map, int n, int* carry) {
  // Every source lifted out of the target range first, so that placing one cannot clobber
  // another (dup2 then clears close-on-exec on each target).
  int moved[SpawnSpec::max_fds];
  if (n > SpawnSpec::max_fds) {
    errno = EMFILE;
    return false;
  }
  const int floor = n + 1;
  for (int i = 0; i < n; ++i)
    if ((moved[i] = ::fcntl(map[i], F_DUPFD_CLOEXEC, floor)) < 0) return false;
  if (carry) {
    const int high = ::fcntl(*carry, F_DUPFD_CLOEXEC, floor);
    if (high < 0 || ::dup3(high, n, O_CLOEXEC) < 0) return false;
    *carry = n;
  }
  for (int i = 0; i < n; ++i)
    if (::dup2(moved[i], i) < 0) return false;
  // Close-on-exec covers the rest only where the opener set it; not every library does.
  const unsigned from = static_cast<unsigned>(carry ? n + 1 : n);
  if (::syscall(SYS_close_range, from, ~0u, 0u) == 0) return true;
  if (errno != ENOSYS && errno != EINVAL) return false;
  // Kernels without close_range (gVisor's, older ones): one by one up to the fd limit.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  for (rlim_t fd = from; fd < lim.rlim_cur && fd < (1u << 20); ++fd) ::close(static_cast<int>(fd));
  return true;
}

namespace {

errc classify(int err) {
  if (err == EPERM || err == EACCES) return errc::permission_denied;
  return from_errno(err) == errc::resource_exhausted ? errc::resource_exhausted : errc::internal;
}

}  // namespace

Child::Child(pid_t pid) : pid_(pid), pidfd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))) {}

Child::Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)) {}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      kill();
      wait();
    }
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
  }
  return *this;
}

Child::~Child() {
  if (pid_ <= 0) return;
  kill();
  wait();
}

void Child::kill() const noexcept {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);  // its group; it leads one
  if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  else ::kill(pid_, SIGKILL);
}

int Child::wait() noexcept {
  int status = 0;
  if (pid_ <= 0) return status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  pidfd_.reset();
  return status;
}

std::optional<int> Child::wait_for(std::chrono::milliseconds timeout) noexcept {
  using namespace std::chrono;
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    if (pid_ <= 0) return 0;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {  // ECHILD: reaped by someone else
      const bool ours = r == pid_;
      pid_ = -1;
      pidfd_.reset();
      return ours ? status : 0;
    }
    const auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    if (pidfd_) {
      pollfd p{pidfd_.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      std::this_thread::sleep_for(std::min<milliseconds>(left, 2ms));
    }
  }
}

pid_t Child::release() noexcept {
  pidfd_.reset();
  return std::exchange(pid_, -1);
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

Child spawn(const SpawnSpec& spec) {
  if (spec.nfds < 0 || spec.nfds > SpawnSpec::max_fds) throw Error(errc::invalid_argument, "spawn: too many fds");
  UniqueFd null;
  for (int i = 0; i < spec.nfds && !null; ++i)
    if (spec.fds[i] < 0 && !(null = UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC))))
      throw_syscall("open", errno, "/dev/null");
  UniqueFd report_read, report_write;
  if (spec.report) {
    int p[2];
    check(::pipe2(p, O_CLOEXEC), "pipe2", spec.who);
    report_read.reset(p[0]);
    report_write.reset(p[1]);
  }
  // No signal may run one of our handlers in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) child(spec, null.get(), report_write.get());
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) throw_syscall("fork", fork_errno, spec.who);
  // Here too, so the group exists before anyone signals it (a new session makes its own).
  if (!spec.confine.setsid) ::setpgid(pid, pid);
  Child c(pid);
  if (!spec.report) return c;
  report_write.reset();
  Failure f{};
  ssize_t n;
  while ((n = ::read(report_read.get(), &f, sizeof f)) < 0 && errno == EINTR) {
  }
  if (n == 0) return c;  // exec closed the pipe
  const int status = c.wait();
  if (n != static_cast<ssize_t>(sizeof f))
    throw Error(errc::internal, std::string(spec.who) + ": the child died before exec (status " + std::to_string(status) + ")");
  const char* step = f.stage == Stage::exec ? "execve" : f.stage == Stage::fds ? "placing fds" : confine_step_name(f.step);
  throw Error(classify(f.err), std::string(spec.who) + ": " + step + ": " + std::strerror(f.err));
}

}  // namespace sandbox::sys
