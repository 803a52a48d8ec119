// The kernel state machine (agent/kernel.hpp): starting, adopting and asking the host for
// kernels, queueing executions per language, requests and replies, death and fallback.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "agent/agent.hpp"
#include "agent/agent_proc.hpp"
#include "agent/agent_spawn.hpp"
#include "agent/pipes.hpp"
#include "agent/processes.hpp"

extern char** environ;

namespace sandbox::agent {
namespace {
constexpr auto kKernelBootLimit = std::chrono::seconds(60);
constexpr auto kKernelRequestLimit = std::chrono::seconds(10);  // the host's KERNEL answer
constexpr const char* kLostState = "kernel restarted: previous state lost";
}  // namespace

Kernel* Agent::start_kernel(Language lang, bool oneshot) {
  auto k = std::make_unique<Kernel>();
  k->lang = lang;
  k->origin = oneshot ? KernelOrigin::oneshot : KernelOrigin::own;
  k->state = KernelState::booting;
  sys::UniqueFd in = stdin_fd("");
  Pipe out = make_pipe(true), err = make_pipe(true);
  Pipe req = make_pipe(false), rep = make_pipe(true);
  std::string script = opts_.runtime + (lang == Language::python ? "/kernel.py" : "/kernel.js");
  std::vector<const char*> argv;
  const std::string& prog = lang == Language::python ? opts_.python : opts_.node;
  argv.push_back(prog.c_str());
  if (lang == Language::python) argv.push_back("-u");
  argv.push_back(script.c_str());
  if (lang == Language::python && !opts_.preload.empty()) {
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
  watch_kernel(*raw);
  if (oneshot) oneshots_.push_back(std::move(k));
  else slot(lang) = std::move(k);
  rearm();
  return raw;
}

void Agent::watch_kernel(Kernel& k) {
  Kernel* p = &k;
  const int out = k.out.get(), err = k.err.get();
  k.out_tok = reactor_.watch(out, EPOLLIN, [this, p, out](std::uint32_t) { on_kernel_output(*p, 1, out); });
  k.err_tok = reactor_.watch(err, EPOLLIN, [this, p, err](std::uint32_t) { on_kernel_output(*p, 2, err); });
  k.rep_tok = reactor_.watch(k.rep.get(), EPOLLIN, [this, p](std::uint32_t) { on_kernel_reply(*p); });
}

// The host forks warm Python kernels into our namespaces (lib/isolation/namespaces/
// template.hpp) and hands us their pipes: the first at start (--kernel-fds), later ones on
// NEED_KERNEL. One that never becomes ready makes us start our own.
void Agent::new_kernel(Language lang) {
  // Detached, nobody would answer NEED_KERNEL.
  if (lang == Language::python && ask_host_ && control_.attached()) request_kernel();
  else start_kernel(lang, false);
}

void Agent::request_kernel() {
  auto k = std::make_unique<Kernel>();
  k->lang = Language::python;
  k->origin = KernelOrigin::host;
  k->state = KernelState::requested;
  k->boot_deadline = Clock::now() + kKernelRequestLimit;
  slot(Language::python) = std::move(k);
  control_.send(Type::need_kernel, 0, R"({"lang":"python"})");
  rearm();
}

void Agent::adopt_kernel(Kernel& k, const int fds[4]) {
  k.state = KernelState::booting;
  k.out = sys::UniqueFd(fds[0]);
  k.err = sys::UniqueFd(fds[1]);
  k.req = sys::UniqueFd(fds[2]);
  k.rep = sys::UniqueFd(fds[3]);
  for (int i = 0; i < 4; ++i) {
    ::fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    sys::set_nonblocking(fds[i]);
  }
  k.boot_deadline = Clock::now() + kKernelBootLimit;
  watch_kernel(k);
  rearm();
}

void Agent::on_kernel_frame(const std::string& payload) {
  json j = json::parse(payload, nullptr, false);
  const bool offered = j.is_object() && !j.contains("error") && control_.passed_fds() >= 4;
  int fds[4] = {-1, -1, -1, -1};
  for (int i = 0; offered && i < 4; ++i) fds[i] = control_.take_fd();
  Kernel* k = slot(Language::python).get();
  if (!k || k->state != KernelState::requested) {  // nobody waits for it (any more)
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
    return;
  }
  if (!offered) return kernel_lost(*k, "the host could not fork a kernel");
  adopt_kernel(*k, fds);
}

void Agent::on_warm(const std::string& payload) {
  auto j = json::parse(payload, nullptr, false);
  std::string l = j.is_object() ? j.value("lang", "") : "";
  auto lang = language_named(l);
  if (lang && *lang != Language::shell && !slot(*lang)) new_kernel(*lang);
}

void Agent::pump_queue(Language lang) {
  auto& q = queue(lang);
  while (!q.empty()) {
    auto& k = slot(lang);
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
    if (k->state != KernelState::idle) return;
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
  k.pending += frame_bytes({}, req.dump(-1, ' ', false, json::error_handler_t::replace));
  k.state = KernelState::busy;
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
    Kernel* p = &k;
    k.req_tok = reactor_.watch(k.req.get(), EPOLLOUT, [this, p](std::uint32_t) { on_kernel_writable(*p); });
  } else if (k.pending.empty() && k.req_tok) {
    reactor_.unwatch(k.req_tok);
  }
}

void Agent::on_kernel_output(Kernel& k, int stream, int fd) {
  if (!pump(fd, find_exec(k.current), stream, &k)) {
    if (stream == 1) { reactor_.unwatch(k.out_tok); k.out.reset(); }
    else { reactor_.unwatch(k.err_tok); k.err.reset(); }
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
    k.replies.feed(buf, static_cast<std::size_t>(n));
  }
  Kernel* self = &k;
  while (auto f = k.replies.next()) {
    handle_kernel_message(k, f->payload);
    // A oneshot kernel is destroyed once it answered: stop touching it.
    if (!alive(self)) return;
  }
  if (eof) {
    // The kernel exits when it cannot answer (kernel.py/kernel.js), so its SIGCHLD follows
    // and tells why; a hung one is caught by the execution's timeout. An adopted kernel
    // sends no SIGCHLD: EOF is all we learn.
    reactor_.unwatch(k.rep_tok);
    k.rep.reset();
    if (k.adopted()) kernel_lost(k, "the python kernel exited");
  }
}

void Agent::on_kernel_exit(Kernel& k, int status) {
  k.pid = -1;
  // A reply written just before dying is still in the pipe: take it first.
  on_kernel_reply(k);
  if (!alive(&k)) return;  // a oneshot that answered is gone already
  char why[96];
  const std::string lang(to_string(k.lang));
  if (WIFSIGNALED(status))
    std::snprintf(why, sizeof why, "the %s kernel exited (signal %d)", lang.c_str(), WTERMSIG(status));
  else
    std::snprintf(why, sizeof why, "the %s kernel exited (code %d)", lang.c_str(), WEXITSTATUS(status));
  kernel_lost(k, why);
}

void Agent::drain_kernel(Kernel& k) {
  Execution* cur = find_exec(k.current);
  if (k.out) pump(k.out.get(), cur, 1, &k);
  if (k.err) pump(k.err.get(), cur, 2, &k);
}

void Agent::handle_kernel_message(Kernel& k, const std::string& body) {
  json msg = json::parse(body, nullptr, false);
  if (!msg.is_object()) return;
  if (msg.value("ready", false)) {
    if (!k.booted()) k.state = KernelState::idle;
    if (auto p = msg.find("pid"); k.adopted() && p != msg.end() && p->is_number_integer()) k.pid = p->get<pid_t>();
    rearm();
    if (k.oneshot()) {
      if (Execution* e = find_exec(k.waiter)) send_request(k, *e);
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
    k.state = KernelState::idle;
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
  k.state = KernelState::idle;
  Language lang = k.lang;
  if (k.oneshot()) {
    k.waiter.reset();
    destroy_kernel(k);
  }
  finish(id, std::move(done));
  pump_queue(lang);
}

void Agent::kernel_lost(Kernel& k, const std::string& why) {
  drain_kernel(k);
  if (k.adopted() && !k.booted()) {
    // The host's kernel never arrived: nothing was lost, start our own (and stop asking).
    std::fprintf(stderr, "sandbox-agent: the forked python kernel did not start (%s): %s\n", why.c_str(),
                 k.boot_stderr.c_str());
    ask_host_ = false;
    destroy_kernel(k);
    pump_queue(Language::python);
    return;
  }
  std::optional<std::uint32_t> victim = k.current ? k.current : k.waiter;
  bool booting = !k.booted();
  Language lang = k.lang;
  bool oneshot = k.oneshot();
  if (!victim && booting && !oneshot && !queue(lang).empty()) {
    // It died before it could take the first queued execution: fail that one rather than
    // restarting forever.
    victim = queue(lang).front();
    queue(lang).pop_front();
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

void Agent::terminate_kernel(Execution& e, json done) {
  const std::uint32_t id = e.id;
  Kernel* k = e.kernel;
  if (!k) return finish(id, std::move(done));
  if (k->pid > 0) {
    if (auto st = read_stat(k->pid)) {
      std::uint64_t total = ticks_to_ms(st->cpu_ticks + st->children_cpu_ticks);
      done["cpu_ms"] = total > k->cpu_total_ms ? total - k->cpu_total_ms : 0;
    }
  }
  Language lang = k->lang;
  bool oneshot = k->oneshot();
  drain_kernel(*k);
  if (!oneshot) done["note"] = kLostState;
  k->current.reset();
  k->waiter.reset();
  destroy_kernel(*k);
  finish(id, std::move(done));
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
  reactor_.unwatch(k.out_tok);
  reactor_.unwatch(k.err_tok);
  reactor_.unwatch(k.req_tok);
  reactor_.unwatch(k.rep_tok);
  for (auto it = oneshots_.begin(); it != oneshots_.end(); ++it) {
    if (it->get() == &k) {
      oneshots_.erase(it);
      rearm();
      return;
    }
  }
  for (auto& s : kernel_) {
    if (s.get() == &k) s.reset();
  }
  rearm();
}

}  // namespace sandbox::agent
