// sandbox-agent: the first process of every session (docs/agent.md).
//
// One thread, one epoll loop over: the control socket (lib/agent/protocol.hpp), a signalfd
// for SIGCHLD/SIGTERM/SIGINT, one timerfd armed at the earliest deadline, and the pipes of
// every child. Shell commands run concurrently; python and nodejs code goes to one
// persistent kernel per language (runtime/kernel.py, runtime/kernel.js), one execution at
// a time, over a private pipe pair framed as u32 little-endian length + JSON.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/agent_proc.hpp"
#include "agent/agent_spawn.hpp"
#include "agent/protocol.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

extern char** environ;

namespace sandbox::agent {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using sys::UniqueFd;

constexpr const char* kVersion = "0.1.0";
constexpr std::size_t kDefaultCap = 1u << 20;
constexpr std::int64_t kDefaultTimeoutMs = 10'000;
constexpr auto kKernelBootLimit = std::chrono::seconds(60);
constexpr auto kKernelRequestLimit = std::chrono::seconds(10);  // the host's KERNEL answer
constexpr std::size_t kControlHighWater = 8u << 20;  // queued frames before we block on the host
constexpr const char* kLostState = "kernel restarted: previous state lost";

enum class Lang { python = 0, nodejs = 1, shell = 2 };

const char* lang_name(Lang l) {
  switch (l) {
    case Lang::python: return "python";
    case Lang::nodejs: return "nodejs";
    case Lang::shell: return "shell";
  }
  return "?";
}

std::optional<Lang> parse_lang(std::string_view s) {
  if (s == "python") return Lang::python;
  if (s == "nodejs" || s == "node") return Lang::nodejs;
  if (s == "shell") return Lang::shell;
  return std::nullopt;
}

struct Options {
  int control_fd = -1;
  std::string workspace = ".";
  std::string runtime = ".";
  std::string python = "/usr/bin/python3";
  std::string node = "/usr/bin/node";
  std::string shell = "/bin/sh";
  std::string preload;  // comma-separated python modules
  std::optional<Lang> warm;
  int kernel_fd = -1;  // first of four pipes of a Python kernel forked in by the host
  bool host_kernels = false;  // ask the host for Python kernels (NEED_KERNEL) first
  std::optional<uid_t> code_uid;  // the uid code runs as; the agent keeps its own real uid
  bool keep_uid = false;  // keep every uid of our own, with CAP_SETUID and CAP_KILL (runsc)
};

using sys::set_nonblocking;

// A pipe whose agent end is non-blocking and whose child end stays blocking (O_NONBLOCK
// lives on the open file description, so it must be set on one end only).
struct Pipe {
  UniqueFd read, write;
};
Pipe make_pipe(bool agent_reads) {
  int p[2];
  sys::check(::pipe2(p, O_CLOEXEC), "pipe2");
  Pipe out{UniqueFd(p[0]), UniqueFd(p[1])};
  set_nonblocking(agent_reads ? p[0] : p[1]);
  return out;
}

// The child's fd 0: the stdin text, readable to EOF, never blocking.
UniqueFd stdin_fd(const std::string& text) {
  if (text.empty()) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
  }
  int fd = ::memfd_create("stdin", MFD_CLOEXEC);
  if (fd < 0) fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_syscall("memfd_create", errno, "stdin");
  UniqueFd f(fd);
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_syscall("write", errno, "stdin");
    off += static_cast<std::size_t>(n);
  }
  ::lseek(fd, 0, SEEK_SET);
  return f;
}

std::string kernel_frame(const std::string& body) {
  std::string out(4, '\0');
  auto n = static_cast<std::uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + body;
}

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

std::uint64_t ticks_to_ms(std::uint64_t ticks) {
  return ticks * 1000 / static_cast<std::uint64_t>(clock_ticks());
}

struct Kernel;

struct Execution {
  std::uint32_t id = 0;
  Lang lang = Lang::shell;
  std::string code, stdin_text;
  std::int64_t timeout_ms = kDefaultTimeoutMs;
  bool fresh = false;
  std::size_t cap = kDefaultCap;
  json caps = json::object();  // the host's result and image caps, handed to the kernel
  bool started = false;
  Clock::time_point start{};
  std::optional<Clock::time_point> deadline;
  std::size_t sent[3]{};  // bytes forwarded, per stream
  bool truncated = false;
  // shell
  pid_t pid = -1;
  UniqueFd out, err;
  std::uint64_t out_tok = 0, err_tok = 0;
  // python / nodejs
  Kernel* kernel = nullptr;
};

struct Kernel {
  Lang lang = Lang::python;
  bool oneshot = false;  // serves one `fresh` execution, then dies
  bool adopted = false;  // forked in by the host (not our child): no SIGCHLD, pid from "ready"
  bool requested = false;  // adopted, asked for with NEED_KERNEL, its pipes not here yet
  pid_t pid = -1;
  UniqueFd out, err, req, rep;
  std::uint64_t out_tok = 0, err_tok = 0, req_tok = 0, rep_tok = 0;
  std::string pending;  // request bytes not yet written
  std::string inbuf;    // reply bytes not yet parsed
  bool ready = false;
  std::optional<std::uint32_t> current;
  std::optional<std::uint32_t> waiter;  // oneshot: the execution it was started for
  std::uint64_t cpu_total_ms = 0;      // as of the last reply
  std::string boot_stderr;             // stderr tail while no execution is attached
  Clock::time_point boot_deadline{};
};

enum class Kind { control, signal, timer, exec_out, kernel_out, kernel_req, kernel_rep };

struct Watch {
  Kind kind;
  int fd;
  int stream = 0;           // 1 stdout, 2 stderr
  std::uint32_t exec = 0;   // exec_out
  Kernel* kernel = nullptr; // kernel_*
};

class Agent {
 public:
  explicit Agent(Options opts) : opts_(std::move(opts)) {}
  int run();

 private:
  // loop plumbing
  std::uint64_t watch(int fd, std::uint32_t events, Watch w);
  void unwatch(std::uint64_t& tok);
  void modify(std::uint64_t tok, std::uint32_t events);
  void send(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream = 0);
  void flush_control(bool block);
  void dispatch(std::uint64_t tok, std::uint32_t events);
  void on_control();
  void on_frame(const Frame& f);
  void on_signals();
  void reap();
  void rearm();
  void on_timer();

  // executions
  void on_run(std::uint32_t id, const std::string& payload);
  void start_shell(Execution& e);
  void mark_started(Execution& e);
  void forward(Execution& e, int stream, const char* data, std::size_t n);
  bool pump(int fd, Execution* e, int stream, Kernel* k);  // false at EOF
  json base_done(const Execution& e, const char* status);
  void finish(std::uint32_t id, json done);
  void fail_now(std::uint32_t id, const char* name, const std::string& value);
  void terminate(Execution& e, const char* status, const char* termination);
  void on_cancel(std::uint32_t id);
  void close_exec_pipes(Execution& e, bool drain);

  // kernels
  Kernel* start_kernel(Lang lang, bool oneshot);
  void new_kernel(Lang lang);  // the host's template's when it has one, else our own
  void request_kernel();
  void adopt_kernel(Kernel& k, const int fds[4]);
  void on_kernel_frame(const std::string& payload);
  void pump_queue(Lang lang);
  void send_request(Kernel& k, Execution& e);
  void on_kernel_reply(Kernel& k);
  void on_kernel_writable(Kernel& k);
  void handle_kernel_message(Kernel& k, const std::string& body);
  void kernel_lost(Kernel& k, const std::string& why);
  void destroy_kernel(Kernel& k);
  void drain_kernel(Kernel& k);
  bool alive(const Kernel* k) const;

  // process requests
  std::vector<pid_t> session_pids(const std::vector<ProcStat>& table) const;
  void on_list(std::uint32_t id);
  void on_kill(std::uint32_t id, const std::string& payload);
  void shutdown();

  // The uid every child drops to before exec (none without --code-uid).
  uid_t code_uid() const { return opts_.code_uid.value_or(static_cast<uid_t>(-1)); }

  Options opts_;
  UniqueFd epoll_, sigfd_, timerfd_;
  int control_ = -1;
  std::uint64_t control_tok_ = 0;
  bool control_out_ = false;
  Decoder decoder_;
  std::string outbuf_;
  std::size_t outpos_ = 0;
  bool quit_ = false;

  std::uint64_t next_tok_ = 1;
  std::unordered_map<std::uint64_t, Watch> watches_;
  std::map<std::uint32_t, std::unique_ptr<Execution>> execs_;
  std::deque<std::uint32_t> queue_[2];
  std::unique_ptr<Kernel> kernel_[2];
  std::vector<std::unique_ptr<Kernel>> oneshots_;
  std::unordered_map<pid_t, std::uint32_t> shell_pids_;
  std::unordered_map<pid_t, Kernel*> kernel_pids_;
  std::optional<Clock::time_point> armed_;
  // The host forks Python kernels from its template (we were given one at start); turned
  // off when one fails to arrive, so that a broken template costs one fallback, not a loop.
  bool ask_host_ = false;
  std::deque<int> passed_fds_;  // SCM_RIGHTS received with KERNEL frames, in order
};

// ---------------------------------------------------------------- loop plumbing

std::uint64_t Agent::watch(int fd, std::uint32_t events, Watch w) {
  std::uint64_t tok = next_tok_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tok;
  sys::check(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
  w.fd = fd;
  watches_.emplace(tok, w);
  return tok;
}

void Agent::unwatch(std::uint64_t& tok) {
  if (!tok) return;
  auto it = watches_.find(tok);
  if (it != watches_.end()) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
    watches_.erase(it);
  }
  tok = 0;
}

void Agent::modify(std::uint64_t tok, std::uint32_t events) {
  auto it = watches_.find(tok);
  if (it == watches_.end()) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tok;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second.fd, &ev);
}

void Agent::send(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream) {
  if (control_ < 0) return;
  outbuf_ += encode(type, id, payload, stream);
  // Backpressure: a host that stops reading stalls us rather than growing memory forever.
  if (outbuf_.size() - outpos_ > kControlHighWater) flush_control(true);
}

void Agent::flush_control(bool block) {
  while (control_ >= 0 && outpos_ < outbuf_.size()) {
    ssize_t n = ::write(control_, outbuf_.data() + outpos_, outbuf_.size() - outpos_);
    if (n > 0) {
      outpos_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!block) break;
      pollfd p{control_, POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    // The host is gone: nothing left to report to.
    quit_ = true;
    outbuf_.clear();
    outpos_ = 0;
    return;
  }
  if (outpos_ == outbuf_.size()) {
    outbuf_.clear();
    outpos_ = 0;
  } else if (outpos_ > (1u << 20)) {
    outbuf_.erase(0, outpos_);
    outpos_ = 0;
  }
  bool want_out = !outbuf_.empty();
  if (want_out != control_out_ && control_tok_) {
    modify(control_tok_, EPOLLIN | (want_out ? EPOLLOUT : 0u));
    control_out_ = want_out;
  }
}

int Agent::run() {
  control_ = opts_.control_fd;
  ::fcntl(control_, F_SETFD, FD_CLOEXEC);
  set_nonblocking(control_);

  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sys::check(::sigprocmask(SIG_BLOCK, &mask, nullptr), "sigprocmask");
  sigfd_ = UniqueFd(sys::check(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC), "signalfd"));
  timerfd_ = UniqueFd(sys::check(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
                                 "timerfd_create"));
  epoll_ = UniqueFd(sys::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
  // Not PID 1 of a namespace: orphans of our children must still come back to us.
  if (::getpid() != 1) ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  control_tok_ = watch(control_, EPOLLIN, {Kind::control, control_});
  watch(sigfd_.get(), EPOLLIN, {Kind::signal, sigfd_.get()});
  watch(timerfd_.get(), EPOLLIN, {Kind::timer, timerfd_.get()});

  send(Type::hello, 0, json{{"pid", ::getpid()}, {"version", kVersion}}.dump());
  flush_control(false);
  ask_host_ = opts_.host_kernels;
  if (opts_.kernel_fd >= 0) {
    auto k = std::make_unique<Kernel>();
    k->lang = Lang::python;
    k->adopted = true;
    Kernel& raw = *k;
    kernel_[static_cast<int>(Lang::python)] = std::move(k);
    const int fds[4] = {opts_.kernel_fd, opts_.kernel_fd + 1, opts_.kernel_fd + 2, opts_.kernel_fd + 3};
    adopt_kernel(raw, fds);
  }
  if (opts_.warm) {
    try {
      if (*opts_.warm != Lang::shell && !kernel_[static_cast<int>(*opts_.warm)]) new_kernel(*opts_.warm);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox-agent: warm: %s\n", e.what());
    }
  }

  std::array<epoll_event, 64> events{};
  while (!quit_) {
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_syscall("epoll_wait", errno);
    }
    for (int i = 0; i < n && !quit_; ++i) {
      try {
        dispatch(events[static_cast<std::size_t>(i)].data.u64, events[static_cast<std::size_t>(i)].events);
      } catch (const std::exception& e) {
        // One bad child or request must not take the session down.
        std::fprintf(stderr, "sandbox-agent: %s\n", e.what());
      }
    }
    flush_control(false);
  }
  shutdown();
  return 0;
}

void Agent::dispatch(std::uint64_t tok, std::uint32_t events) {
  auto it = watches_.find(tok);
  if (it == watches_.end()) return;  // closed earlier in this batch
  Watch w = it->second;
  switch (w.kind) {
    case Kind::control:
      if (events & EPOLLOUT) flush_control(false);
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_control();
      break;
    case Kind::signal: on_signals(); break;
    case Kind::timer: on_timer(); break;
    case Kind::exec_out: {
      auto e = execs_.find(w.exec);
      if (e == execs_.end()) return;
      if (!pump(w.fd, e->second.get(), w.stream, nullptr)) {
        auto& ex = *e->second;
        if (w.stream == 1) { unwatch(ex.out_tok); ex.out.reset(); }
        else { unwatch(ex.err_tok); ex.err.reset(); }
      }
      break;
    }
    case Kind::kernel_out: {
      Kernel& k = *w.kernel;
      Execution* cur = nullptr;
      if (k.current) {
        auto e = execs_.find(*k.current);
        if (e != execs_.end()) cur = e->second.get();
      }
      if (!pump(w.fd, cur, w.stream, &k)) {
        if (w.stream == 1) { unwatch(k.out_tok); k.out.reset(); }
        else { unwatch(k.err_tok); k.err.reset(); }
      }
      break;
    }
    case Kind::kernel_req: on_kernel_writable(*w.kernel); break;
    case Kind::kernel_rep: on_kernel_reply(*w.kernel); break;
  }
}

void Agent::on_control() {
  char buf[65536];
  for (;;) {
    ssize_t n;
    if (opts_.host_kernels) {
      // KERNEL frames carry fds: keep them in arrival order for on_kernel_frame().
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 16)];
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      n = ::recvmsg(control_, &msg, MSG_CMSG_CLOEXEC);
      for (cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&msg) : nullptr; c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          passed_fds_.push_back(fd);
        }
      }
    } else {
      n = ::read(control_, buf, sizeof buf);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {  // EOF or error: the host is gone
      quit_ = true;
      return;
    }
    decoder_.feed(buf, static_cast<std::size_t>(n));
    if (static_cast<std::size_t>(n) < sizeof buf) break;
  }
  try {
    while (auto f = decoder_.next()) {
      on_frame(*f);
      if (quit_) return;
    }
  } catch (const Error& e) {  // a frame over the limit: the stream cannot be resynchronised
    std::fprintf(stderr, "sandbox-agent: %s\n", e.what());
    quit_ = true;
  }
}

void Agent::on_frame(const Frame& f) {
  switch (f.type) {
    case Type::run: on_run(f.id, f.payload); break;
    case Type::cancel: on_cancel(f.id); break;
    case Type::list: on_list(f.id); break;
    case Type::kill: on_kill(f.id, f.payload); break;
    case Type::warm: {
      auto j = json::parse(f.payload, nullptr, false);
      std::string l = j.is_object() ? j.value("lang", "") : "";
      auto lang = parse_lang(l);
      if (lang && *lang != Lang::shell && !kernel_[static_cast<int>(*lang)]) new_kernel(*lang);
      break;
    }
    case Type::kernel: on_kernel_frame(f.payload); break;
    case Type::shutdown: quit_ = true; break;
    default: break;  // unknown frames are ignored: newer hosts may send more
  }
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
      auto e = execs_.find(id);
      if (e == execs_.end()) continue;
      Execution& ex = *e->second;
      close_exec_pipes(ex, true);
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      json done = base_done(ex, code == 0 ? "Finished" : "Failed");
      done["exit_code"] = code;
      done["cpu_ms"] = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
      done["peak_rss_bytes"] = static_cast<std::int64_t>(ru.ru_maxrss) * 1024;
      finish(id, std::move(done));
    } else if (auto k = kernel_pids_.find(pid); k != kernel_pids_.end()) {
      Kernel* kernel = k->second;
      kernel_pids_.erase(k);
      kernel->pid = -1;
      // A reply written just before dying is still in the pipe: take it first.
      on_kernel_reply(*kernel);
      if (!alive(kernel)) continue;  // a oneshot that answered is gone already
      char why[96];
      if (WIFSIGNALED(status))
        std::snprintf(why, sizeof why, "the %s kernel exited (signal %d)", lang_name(kernel->lang), WTERMSIG(status));
      else
        std::snprintf(why, sizeof why, "the %s kernel exited (code %d)", lang_name(kernel->lang), WEXITSTATUS(status));
      kernel_lost(*kernel, why);
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
    if (k && !k->ready) consider(k->boot_deadline);
  for (const auto& k : oneshots_)
    if (!k->ready) consider(k->boot_deadline);
  if (next == armed_) return;
  armed_ = next;
  itimerspec its{};
  if (next) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch()).count();
    if (ns <= 0) ns = 1;
    its.it_value.tv_sec = ns / 1'000'000'000;
    its.it_value.tv_nsec = ns % 1'000'000'000;
  }
  ::timerfd_settime(timerfd_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
}

void Agent::on_timer() {
  std::uint64_t expirations;
  (void)!::read(timerfd_.get(), &expirations, sizeof expirations);
  armed_.reset();
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
    if (k && !k->ready && k->boot_deadline <= now) stuck.push_back(k.get());
  for (const auto& k : oneshots_)
    if (!k->ready && k->boot_deadline <= now) stuck.push_back(k.get());
  for (Kernel* k : stuck) kernel_lost(*k, std::string("the ") + lang_name(k->lang) + " kernel did not start in time");
  rearm();
}

// ---------------------------------------------------------------- executions

void Agent::on_run(std::uint32_t id, const std::string& payload) {
  if (execs_.count(id)) {
    // Answering would be ambiguous; the host never reuses a live id.
    std::fprintf(stderr, "sandbox-agent: duplicate execution id %u ignored\n", id);
    return;
  }
  auto e = std::make_unique<Execution>();
  e->id = id;
  Execution& ex = *e;
  execs_.emplace(id, std::move(e));
  json j = json::parse(payload, nullptr, false);
  std::optional<Lang> lang;
  if (j.is_object()) {
    if (auto l = j.find("lang"); l != j.end() && l->is_string()) lang = parse_lang(l->get<std::string>());
  }
  if (!lang) return fail_now(id, "AgentError", "malformed RUN: expected {lang, code, ...}");
  try {
    ex.lang = *lang;
    if (auto v = j.find("code"); v != j.end() && v->is_string()) ex.code = v->get<std::string>();
    if (auto v = j.find("stdin"); v != j.end() && v->is_string()) ex.stdin_text = v->get<std::string>();
    if (auto v = j.find("timeout_ms"); v != j.end() && v->is_number()) ex.timeout_ms = v->get<std::int64_t>();
    if (auto v = j.find("fresh"); v != j.end() && v->is_boolean()) ex.fresh = v->get<bool>();
    if (auto v = j.find("output_cap"); v != j.end() && v->is_number_unsigned()) ex.cap = v->get<std::size_t>();
    if (auto v = j.find("caps"); v != j.end() && v->is_object() && v->size() <= 8) ex.caps = *v;
    if (ex.lang == Lang::shell) return start_shell(ex);
    if (ex.fresh) {
      Kernel* k = start_kernel(ex.lang, true);
      k->waiter = id;
      ex.kernel = k;
      return;
    }
    queue_[static_cast<int>(ex.lang)].push_back(id);
    pump_queue(ex.lang);
  } catch (const std::exception& err) {
    fail_now(id, "AgentError", err.what());
  }
}

void Agent::start_shell(Execution& e) {
  UniqueFd in = stdin_fd(e.stdin_text);
  Pipe out = make_pipe(true), err = make_pipe(true);
  const char* argv[] = {opts_.shell.c_str(), "-c", e.code.c_str(), nullptr};
  SpawnSpec spec{opts_.shell.c_str(), argv, environ, opts_.workspace.c_str(),
                 {in.get(), out.write.get(), err.write.get()}, 3, code_uid()};
  e.pid = spawn(spec);
  shell_pids_.emplace(e.pid, e.id);
  e.out = std::move(out.read);
  e.err = std::move(err.read);
  e.out_tok = watch(e.out.get(), EPOLLIN, {Kind::exec_out, -1, 1, e.id});
  e.err_tok = watch(e.err.get(), EPOLLIN, {Kind::exec_out, -1, 2, e.id});
  mark_started(e);
}

void Agent::mark_started(Execution& e) {
  e.started = true;
  e.start = Clock::now();
  if (e.timeout_ms > 0) e.deadline = e.start + std::chrono::milliseconds(e.timeout_ms);
  send(Type::started, e.id, "{}");
  rearm();
}

void Agent::forward(Execution& e, int stream, const char* data, std::size_t n) {
  std::size_t& sent = e.sent[stream];
  std::size_t room = e.cap > sent ? e.cap - sent : 0;
  std::size_t take = n < room ? n : room;
  if (take < n) e.truncated = true;  // the rest is read and dropped
  if (take == 0) return;
  sent += take;
  send(Type::output, e.id, std::string_view(data, take), static_cast<std::uint8_t>(stream));
}

bool Agent::pump(int fd, Execution* e, int stream, Kernel* k) {
  char buf[65536];
  // Bounded per wake-up so one chatty child cannot starve the others (level-triggered).
  for (int rounds = 0; rounds < 16; ++rounds) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return false;
    if (e) {
      forward(*e, stream, buf, static_cast<std::size_t>(n));
    } else if (k && stream == 2) {
      // Kept for the error message should the kernel fail to start.
      k->boot_stderr.append(buf, static_cast<std::size_t>(n));
      if (k->boot_stderr.size() > 4096) k->boot_stderr.erase(0, k->boot_stderr.size() - 4096);
    }
  }
  return true;
}

void Agent::close_exec_pipes(Execution& e, bool drain) {
  // After the main process exits its output is complete, but a background child may still
  // hold the pipes: read what is there now and close, never wait for EOF.
  if (e.out) {
    if (drain) pump(e.out.get(), &e, 1, nullptr);
    unwatch(e.out_tok);
    e.out.reset();
  }
  if (e.err) {
    if (drain) pump(e.err.get(), &e, 2, nullptr);
    unwatch(e.err_tok);
    e.err.reset();
  }
}

json Agent::base_done(const Execution& e, const char* status) {
  return json{{"status", status},     {"exit_code", nullptr},   {"result", nullptr},
              {"images", json::array()}, {"error", nullptr},    {"truncated", e.truncated},
              {"cpu_ms", 0},           {"peak_rss_bytes", 0},   {"duration_ms", 0},
              {"termination", "none"}, {"note", nullptr}};
}

void Agent::finish(std::uint32_t id, json done) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  Execution& e = *it->second;
  close_exec_pipes(e, false);
  done["truncated"] = e.truncated;
  done["duration_ms"] = e.started ? ms_between(e.start, Clock::now()) : 0;
  send(Type::done, id, done.dump(-1, ' ', false, json::error_handler_t::replace));
  execs_.erase(it);
  rearm();
}

void Agent::fail_now(std::uint32_t id, const char* name, const std::string& value) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  json done = base_done(*it->second, "Failed");
  done["error"] = {{"name", name}, {"value", value}, {"traceback", ""}};
  finish(id, std::move(done));
}

void Agent::terminate(Execution& e, const char* status, const char* termination) {
  std::uint32_t id = e.id;
  json done = base_done(e, status);
  done["termination"] = termination;
  if (e.lang == Lang::shell) {
    if (e.pid > 0) {
      if (auto st = read_stat(e.pid)) done["cpu_ms"] = ticks_to_ms(st->cpu_ticks + st->children_cpu_ticks);
      kill_tree(e.pid, e.pid);
      shell_pids_.erase(e.pid);  // reaped later as an anonymous child
    }
    close_exec_pipes(e, true);
    return finish(id, std::move(done));
  }
  Kernel* k = e.kernel;
  if (!k) return finish(id, std::move(done));
  if (k->pid > 0) {
    if (auto st = read_stat(k->pid)) {
      std::uint64_t total = ticks_to_ms(st->cpu_ticks + st->children_cpu_ticks);
      done["cpu_ms"] = total > k->cpu_total_ms ? total - k->cpu_total_ms : 0;
    }
  }
  Lang lang = k->lang;
  bool oneshot = k->oneshot;
  drain_kernel(*k);
  if (!oneshot) done["note"] = kLostState;
  k->current.reset();
  k->waiter.reset();
  destroy_kernel(*k);
  finish(id, std::move(done));
  if (!oneshot) pump_queue(lang);
}

void Agent::on_cancel(std::uint32_t id) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  Execution& e = *it->second;
  if (e.started) return terminate(e, "Killed", "cancelled");
  // Not started: queued behind another execution, or waiting for its kernel to boot.
  if (e.lang != Lang::shell) {
    auto& q = queue_[static_cast<int>(e.lang)];
    for (auto q_it = q.begin(); q_it != q.end(); ++q_it) {
      if (*q_it == id) {
        q.erase(q_it);
        break;
      }
    }
    if (e.fresh && e.kernel) {
      e.kernel->waiter.reset();
      destroy_kernel(*e.kernel);
    }
  }
  json done = base_done(e, "Killed");
  done["termination"] = "cancelled";
  finish(id, std::move(done));
}

// ---------------------------------------------------------------- kernels

Kernel* Agent::start_kernel(Lang lang, bool oneshot) {
  auto k = std::make_unique<Kernel>();
  k->lang = lang;
  k->oneshot = oneshot;
  UniqueFd in = stdin_fd("");
  Pipe out = make_pipe(true), err = make_pipe(true);
  Pipe req = make_pipe(false), rep = make_pipe(true);
  std::string script = opts_.runtime + (lang == Lang::python ? "/kernel.py" : "/kernel.js");
  std::vector<const char*> argv;
  const std::string& prog = lang == Lang::python ? opts_.python : opts_.node;
  argv.push_back(prog.c_str());
  if (lang == Lang::python) argv.push_back("-u");
  argv.push_back(script.c_str());
  if (lang == Lang::python && !opts_.preload.empty()) {
    argv.push_back("--preload");
    argv.push_back(opts_.preload.c_str());
  }
  argv.push_back(nullptr);
  SpawnSpec spec{prog.c_str(), argv.data(), environ, opts_.workspace.c_str(),
                 {in.get(), out.write.get(), err.write.get(), req.read.get(), rep.write.get()}, 5, code_uid()};
  k->pid = spawn(spec);
  k->out = std::move(out.read);
  k->err = std::move(err.read);
  k->req = std::move(req.write);
  k->rep = std::move(rep.read);
  k->boot_deadline = Clock::now() + kKernelBootLimit;
  Kernel* raw = k.get();
  kernel_pids_.emplace(raw->pid, raw);
  raw->out_tok = watch(raw->out.get(), EPOLLIN, {Kind::kernel_out, -1, 1, 0, raw});
  raw->err_tok = watch(raw->err.get(), EPOLLIN, {Kind::kernel_out, -1, 2, 0, raw});
  raw->rep_tok = watch(raw->rep.get(), EPOLLIN, {Kind::kernel_rep, -1, 0, 0, raw});
  if (oneshot) oneshots_.push_back(std::move(k));
  else kernel_[static_cast<int>(lang)] = std::move(k);
  rearm();
  return raw;
}

// The host forks warm Python kernels into our namespaces (lib/isolation/namespaces/
// template.hpp) and hands us their pipes: the first at start (--kernel-fds), later ones on
// NEED_KERNEL. Such a kernel is not our child: it tells its pid in "ready", and its death
// shows as EOF on the replies. One that never becomes ready makes us start our own.
void Agent::new_kernel(Lang lang) {
  if (lang == Lang::python && ask_host_) request_kernel();
  else start_kernel(lang, false);
}

void Agent::request_kernel() {
  auto k = std::make_unique<Kernel>();
  k->lang = Lang::python;
  k->adopted = true;
  k->requested = true;
  k->boot_deadline = Clock::now() + kKernelRequestLimit;
  kernel_[static_cast<int>(Lang::python)] = std::move(k);
  send(Type::need_kernel, 0, R"({"lang":"python"})");
  rearm();
}

void Agent::adopt_kernel(Kernel& k, const int fds[4]) {
  k.requested = false;
  k.out = UniqueFd(fds[0]);
  k.err = UniqueFd(fds[1]);
  k.req = UniqueFd(fds[2]);
  k.rep = UniqueFd(fds[3]);
  for (int i = 0; i < 4; ++i) {
    ::fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    set_nonblocking(fds[i]);
  }
  k.boot_deadline = Clock::now() + kKernelBootLimit;
  k.out_tok = watch(k.out.get(), EPOLLIN, {Kind::kernel_out, -1, 1, 0, &k});
  k.err_tok = watch(k.err.get(), EPOLLIN, {Kind::kernel_out, -1, 2, 0, &k});
  k.rep_tok = watch(k.rep.get(), EPOLLIN, {Kind::kernel_rep, -1, 0, 0, &k});
  rearm();
}

void Agent::on_kernel_frame(const std::string& payload) {
  json j = json::parse(payload, nullptr, false);
  const bool offered = j.is_object() && !j.contains("error") && passed_fds_.size() >= 4;
  int fds[4] = {-1, -1, -1, -1};
  for (int i = 0; offered && i < 4; ++i) {
    fds[i] = passed_fds_.front();
    passed_fds_.pop_front();
  }
  Kernel* k = kernel_[static_cast<int>(Lang::python)].get();
  if (!k || !k->requested) {  // nobody waits for it (any more)
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
    return;
  }
  if (!offered) return kernel_lost(*k, "the host could not fork a kernel");
  adopt_kernel(*k, fds);
}

void Agent::pump_queue(Lang lang) {
  auto& q = queue_[static_cast<int>(lang)];
  while (!q.empty()) {
    auto& k = kernel_[static_cast<int>(lang)];
    if (!k) {
      try {
        new_kernel(lang);
      } catch (const std::exception& err) {
        std::uint32_t id = q.front();
        q.pop_front();
        fail_now(id, "KernelDied", std::string("cannot start the kernel: ") + err.what());
        continue;
      }
    }
    if (!k->ready || k->current) return;
    std::uint32_t id = q.front();
    q.pop_front();
    auto it = execs_.find(id);
    if (it == execs_.end()) continue;
    send_request(*k, *it->second);
    return;
  }
}

void Agent::send_request(Kernel& k, Execution& e) {
  json req{{"code", e.code}, {"stdin", e.stdin_text}, {"caps", e.caps}};
  k.pending += kernel_frame(req.dump(-1, ' ', false, json::error_handler_t::replace));
  k.current = e.id;
  e.kernel = &k;
  mark_started(e);
  on_kernel_writable(k);
}

void Agent::on_kernel_writable(Kernel& k) {
  while (!k.pending.empty() && k.req) {
    ssize_t n = ::write(k.req.get(), k.pending.data(), k.pending.size());
    if (n > 0) {
      k.pending.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    k.pending.clear();  // EPIPE: the kernel is dying; SIGCHLD tells the rest
  }
  if (!k.pending.empty() && !k.req_tok) {
    k.req_tok = watch(k.req.get(), EPOLLOUT, {Kind::kernel_req, -1, 0, 0, &k});
  } else if (k.pending.empty() && k.req_tok) {
    unwatch(k.req_tok);
  }
}

void Agent::on_kernel_reply(Kernel& k) {
  if (!k.rep) return;
  char buf[65536];
  bool eof = false;
  for (;;) {
    ssize_t n = ::read(k.rep.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (n == 0) {
      eof = true;
      break;
    }
    k.inbuf.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t pos = 0;
  Kernel* self = &k;
  while (k.inbuf.size() - pos >= 4) {
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i)
      len |= static_cast<std::uint32_t>(static_cast<unsigned char>(k.inbuf[pos + static_cast<std::size_t>(i)])) << (8 * i);
    if (k.inbuf.size() - pos - 4 < len) break;
    std::string body = k.inbuf.substr(pos + 4, len);
    pos += 4 + len;
    handle_kernel_message(k, body);
    // A oneshot kernel is destroyed once it answered: stop touching it.
    if (!alive(self)) return;
  }
  k.inbuf.erase(0, pos);
  if (eof) {
    // The kernel exits when it cannot answer (kernel.py/kernel.js), so its SIGCHLD follows
    // and tells why; a hung one is caught by the execution's timeout. An adopted kernel
    // sends no SIGCHLD: EOF is all we learn.
    unwatch(k.rep_tok);
    k.rep.reset();
    if (k.adopted) kernel_lost(k, "the python kernel exited");
  }
}

void Agent::drain_kernel(Kernel& k) {
  Execution* cur = nullptr;
  if (k.current) {
    auto it = execs_.find(*k.current);
    if (it != execs_.end()) cur = it->second.get();
  }
  if (k.out) pump(k.out.get(), cur, 1, &k);
  if (k.err) pump(k.err.get(), cur, 2, &k);
}

void Agent::handle_kernel_message(Kernel& k, const std::string& body) {
  json msg = json::parse(body, nullptr, false);
  if (!msg.is_object()) return;
  if (msg.value("ready", false)) {
    k.ready = true;
    if (auto p = msg.find("pid"); k.adopted && p != msg.end() && p->is_number_integer()) k.pid = p->get<pid_t>();
    rearm();
    if (k.oneshot) {
      if (k.waiter) {
        auto it = execs_.find(*k.waiter);
        if (it != execs_.end()) send_request(k, *it->second);
      }
    } else {
      pump_queue(k.lang);
    }
    return;
  }
  if (!k.current) return;
  std::uint32_t id = *k.current;
  auto it = execs_.find(id);
  if (it == execs_.end()) {
    k.current.reset();
    return;
  }
  // Everything the code printed was written before the reply: take it so it precedes DONE.
  drain_kernel(k);
  Execution& e = *it->second;
  bool ok = msg.value("status", "error") == "ok";
  json done = base_done(e, ok ? "Finished" : "Failed");
  for (const char* f : {"result", "images", "error", "exit_code", "cpu_ms", "peak_rss_bytes"}) {
    if (auto v = msg.find(f); v != msg.end()) done[f] = *v;
  }
  if (!done["images"].is_array()) done["images"] = json::array();
  if (auto v = msg.find("cpu_total_ms"); v != msg.end() && v->is_number_unsigned())
    k.cpu_total_ms = v->get<std::uint64_t>();
  k.current.reset();
  Lang lang = k.lang;
  if (k.oneshot) {
    k.waiter.reset();
    destroy_kernel(k);
  }
  finish(id, std::move(done));
  pump_queue(lang);
}

void Agent::kernel_lost(Kernel& k, const std::string& why) {
  drain_kernel(k);
  if (k.adopted && !k.ready) {
    // The host's kernel never arrived: nothing was lost, start our own (and stop asking).
    std::fprintf(stderr, "sandbox-agent: the forked python kernel did not start (%s): %s\n", why.c_str(),
                 k.boot_stderr.c_str());
    ask_host_ = false;
    destroy_kernel(k);
    pump_queue(Lang::python);
    return;
  }
  std::optional<std::uint32_t> victim = k.current ? k.current : k.waiter;
  bool booting = !k.ready;
  Lang lang = k.lang;
  bool oneshot = k.oneshot;
  if (!victim && booting && !oneshot && !queue_[static_cast<int>(lang)].empty()) {
    // It died before it could take the first queued execution: fail that one rather than
    // restarting forever.
    victim = queue_[static_cast<int>(lang)].front();
    queue_[static_cast<int>(lang)].pop_front();
  }
  std::string boot_log = booting ? k.boot_stderr : std::string();
  k.current.reset();
  k.waiter.reset();
  destroy_kernel(k);
  if (victim) {
    auto it = execs_.find(*victim);
    if (it != execs_.end()) {
      json done = base_done(*it->second, "Failed");
      done["termination"] = "kernel_died";
      std::string value = why;
      if (booting && !boot_log.empty()) value += ": " + boot_log;
      done["error"] = {{"name", "KernelDied"}, {"value", value}, {"traceback", ""}};
      if (!oneshot && !booting) done["note"] = kLostState;
      finish(*victim, std::move(done));
    }
  }
  if (!oneshot) pump_queue(lang);
}

bool Agent::alive(const Kernel* k) const {
  for (const auto& o : oneshots_)
    if (o.get() == k) return true;
  for (const auto& o : kernel_)
    if (o.get() == k) return true;
  return false;
}

void Agent::destroy_kernel(Kernel& k) {
  if (k.pid > 0) {
    kill_tree(k.pid, k.pid);
    kernel_pids_.erase(k.pid);  // reaped later as an anonymous child
    k.pid = -1;
  }
  unwatch(k.out_tok);
  unwatch(k.err_tok);
  unwatch(k.req_tok);
  unwatch(k.rep_tok);
  for (auto it = oneshots_.begin(); it != oneshots_.end(); ++it) {
    if (it->get() == &k) {
      oneshots_.erase(it);
      rearm();
      return;
    }
  }
  for (auto& slot : kernel_) {
    if (slot.get() == &k) slot.reset();
  }
  rearm();
}

// ---------------------------------------------------------------- process requests

// The session's processes. As init of a pid namespace that is every other process there,
// whatever its parent (an adopted kernel's is outside); otherwise those below us.
std::vector<pid_t> Agent::session_pids(const std::vector<ProcStat>& table) const {
  if (::getpid() != 1) return descendants(table, ::getpid());
  std::vector<pid_t> out;
  for (const auto& p : table)
    if (p.pid != 1) out.push_back(p.pid);
  return out;
}

void Agent::on_list(std::uint32_t id) {
  auto table = scan_processes();
  auto below = session_pids(table);
  std::unordered_map<pid_t, const ProcStat*> by_pid;
  for (const auto& p : table) by_pid.emplace(p.pid, &p);
  static const long page = ::sysconf(_SC_PAGESIZE);
  json out = json::array();
  for (pid_t pid : below) {
    auto it = by_pid.find(pid);
    if (it == by_pid.end()) continue;
    const ProcStat& p = *it->second;
    out.push_back({{"pid", p.pid},
                   {"ppid", p.ppid},
                   {"name", p.comm},
                   {"cmdline", read_cmdline(p.pid)},
                   {"state", std::string(1, p.state)},
                   {"rss_bytes", p.rss_pages * page},
                   {"cpu_time_ms", ticks_to_ms(p.cpu_ticks)},
                   {"start_time", boot_time() + static_cast<std::int64_t>(p.start_ticks / static_cast<std::uint64_t>(clock_ticks()))}});
  }
  send(Type::reply, id, out.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Agent::on_kill(std::uint32_t id, const std::string& payload) {
  json j = json::parse(payload, nullptr, false);
  auto reply = [&](json r) { send(Type::reply, id, r.dump()); };
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer())
    return reply({{"error", "invalid_argument"}});
  auto pid = j["pid"].get<std::int64_t>();
  int sig = SIGKILL;
  if (auto s = j.find("signal"); s != j.end() && s->is_number_integer()) sig = s->get<int>();
  if (sig < 0 || sig > 64) return reply({{"error", "invalid_argument"}});
  bool ours = false;
  if (pid > 0 && pid != ::getpid()) {
    for (pid_t d : session_pids(scan_processes())) ours |= d == pid;
  }
  if (!ours) return reply({{"error", "not_found"}});
  if (::kill(static_cast<pid_t>(pid), sig) != 0)
    return reply({{"error", errno == ESRCH ? "not_found" : std::string(to_string(from_errno(errno)))}});
  reply({{"ok", true}});
}

void Agent::shutdown() {
  for (auto& k : kernel_)
    if (k && k->adopted && k->pid > 0) kill_tree(k->pid, k->pid);
  kill_tree(::getpid(), 0, false);
  // Reap everything, so no zombie outlives us (kill(pid, 0) must fail for each of them).
  auto deadline = Clock::now() + std::chrono::seconds(3);
  for (;;) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // ECHILD: nobody left
    auto left = ms_between(Clock::now(), deadline);
    if (left <= 0) break;
    pollfd p{sigfd_.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
    signalfd_siginfo si;
    while (::read(sigfd_.get(), &si, sizeof si) > 0) {
    }
    // A process forked during the kill (or an orphan re-parented since) gets the same.
    kill_tree(::getpid(), 0, false);
  }
  flush_control(true);
}

// ---------------------------------------------------------------- command line

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "sandbox-agent: %s\n"
               "usage: sandbox-agent --control-fd N --workspace DIR --runtime DIR --python PATH\n"
               "                     --node PATH --shell PATH [--preload m1,m2] [--warm python|nodejs]\n"
               "                     [--host-kernels [--kernel-fds FIRST]] [--code-uid UID [--keep-uid]]\n",
               msg);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host-kernels" || a == "--keep-uid") {  // the flags without a value
      (a == "--keep-uid" ? o.keep_uid : o.host_kernels) = true;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--control-fd") {
      char* end = nullptr;
      long fd = std::strtol(v.c_str(), &end, 10);
      if (*end || fd < 0) usage("bad --control-fd");
      o.control_fd = static_cast<int>(fd);
    } else if (a == "--workspace") o.workspace = v;
    else if (a == "--runtime") o.runtime = v;
    else if (a == "--python") o.python = v;
    else if (a == "--node") o.node = v;
    else if (a == "--shell") o.shell = v;
    else if (a == "--preload") o.preload = v;
    else if (a == "--code-uid") {
      char* end = nullptr;
      long uid = std::strtol(v.c_str(), &end, 10);
      if (*end || uid < 0 || uid >= 0xffffffffL) usage("bad --code-uid");
      o.code_uid = static_cast<uid_t>(uid);
    }
    else if (a == "--kernel-fds") {
      char* end = nullptr;
      long fd = std::strtol(v.c_str(), &end, 10);
      if (*end || fd < 3 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) usage("bad --kernel-fds");
      o.kernel_fd = static_cast<int>(fd);
    }
    else if (a == "--warm") {
      o.warm = parse_lang(v);
      if (!o.warm) usage("bad --warm");
    } else usage(("unknown option " + a).c_str());
  }
  if (o.control_fd < 0) usage("--control-fd is required");
  return o;
}

// Session code must not reach the agent: not its memory (/proc/<agent>/mem,
// process_vm_writev, ptrace), its fds or its signals. The kernel allows those to a process
// whose uid matches the target's real *and* saved uid (ptrace) or its real or saved uid
// (signals). So the agent keeps its own real and saved uid and takes the code's as its
// effective uid: it can still signal code, read its /proc and enter the workspace, and
// every child drops to the code's uid before exec with no privilege (spawn()); code, whose
// ids are all the code's, matches neither of the agent's. The backend starts the agent
// with CAP_SETUID and CAP_SETPCAP (ambient) for this switch; every capability, bounding
// set included, goes right after it.
// Non-dumpable on top, so /proc/<agent> belongs to root (not to the effective uid).
//
// --keep-uid (runsc): gVisor (release 20221219) lets a task open another's /proc/<pid>/fd/N
// by the file's ownership, and the agent's pipes would belong to its effective uid, the
// code's. There the agent keeps all three of its own uids, with CAP_SETUID (a child's uid)
// and CAP_KILL (signals to code) effective; both reach only this sandbox's tasks.
void confine_self(std::optional<uid_t> code_uid, bool keep_uid) {
  constexpr std::uint32_t kept_caps = 1u << CAP_SETUID | 1u << CAP_KILL;
  const pid_t parent = ::getppid();
  if (code_uid && keep_uid && ::getuid() == *code_uid) usage("--code-uid must differ from the agent's uid");
  if (code_uid && !keep_uid) {
    uid_t r = 0, e = 0, s = 0;
    ::getresuid(&r, &e, &s);
    if (r == *code_uid) usage("--code-uid must differ from the agent's uid");
    if (::setresuid(r, *code_uid, r) != 0) {
      std::fprintf(stderr, "sandbox-agent: setresuid(%u, %u, %u): %s\n", r, *code_uid, r, std::strerror(errno));
      std::exit(3);
    }
    ::getresuid(&r, &e, &s);
    if (e != *code_uid || r == *code_uid || s == *code_uid) {
      std::fprintf(stderr, "sandbox-agent: uids are %u/%u/%u after the switch\n", r, e, s);
      std::exit(3);
    }
  }
  // Capabilities are the backend's to hand out: without --code-uid (a test, or rlimit
  // without root) they are left as they are.
  if (code_uid) {
    // The bounding set too (code inherits it): that takes the CAP_SETPCAP we came with.
    for (int cap = 0; cap < 64; ++cap) {
      if (keep_uid && (kept_caps >> cap & 1)) continue;
      if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
        std::fprintf(stderr, "sandbox-agent: dropping capability %d from the bounding set: %s\n", cap, std::strerror(errno));
        std::exit(3);
      }
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
    // Kept ones are effective and permitted only: not inheritable or ambient, so no exec
    // (every child's) carries them on.
    if (keep_uid) caps[0] = {kept_caps, kept_caps, 0};
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);  // EINVAL before Linux 4.3
    if (::syscall(SYS_capset, &header, caps) != 0) {
      std::fprintf(stderr, "sandbox-agent: dropping capabilities: %s\n", std::strerror(errno));
      std::exit(3);
    }
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    std::fprintf(stderr, "sandbox-agent: PR_SET_DUMPABLE: %s\n", std::strerror(errno));
    std::exit(3);
  }
  // The uid switch above cleared the parent-death signal the backend armed: arm it again,
  // then make sure the server did not die in between (pid 1 of a namespace sees 0 both times).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent) {
    std::fprintf(stderr, "sandbox-agent: the server is gone, or PR_SET_PDEATHSIG failed\n");
    std::exit(3);
  }
}

}  // namespace
}  // namespace sandbox::agent

int main(int argc, char** argv) {
  using namespace sandbox::agent;
  Options opts = parse_args(argc, argv);
  confine_self(opts.code_uid, opts.keep_uid);
  // Nothing the backend left open may leak into user code: fds 0-2 stay (the agent's own
  // diagnostics), everything else becomes close-on-exec.
  if (::fcntl(opts.control_fd, F_GETFD) < 0) usage("--control-fd is not open");
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) {
      int n = ::open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        ::dup2(n, fd);
        ::close(n);
      }
    }
  }
  if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0) {
    for (int fd = 3; fd < 1024; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  try {
    return Agent(std::move(opts)).run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sandbox-agent: fatal: %s\n", e.what());
    return 1;
  }
}
