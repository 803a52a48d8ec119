// sandbox-agent: the first process of every session (docs/agent.md).
//
// One thread, one loop (agent/reactor.hpp) over: the control socket (agent/control.hpp), a
// signalfd for SIGCHLD/SIGTERM/SIGINT/SIGHUP, one timer armed at the earliest deadline, and
// the pipes of every child. Shell commands run concurrently (agent/shell_run.cpp); python
// and nodejs code goes to one persistent kernel per language (agent/kernel.hpp), one
// execution at a time. agent/execution.cpp holds what both share: RUN, output, DONE,
// timeouts and cancels. A durable agent (--listen-fd) outlives its host: agent/held.hpp
// keeps what the host has not ACKed, replayed to the next host that connects (docs/agent.md,
// "Durable agents").
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/control.hpp"
#include "agent/execution.hpp"
#include "agent/held.hpp"
#include "agent/kernel.hpp"
#include "agent/options.hpp"
#include "agent/reactor.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {

class Agent {
 public:
  explicit Agent(Options opts);
  // Serves until the host goes, sends SHUTDOWN or a signal asks us to stop; then kills and
  // reaps everything. Returns the exit status.
  int run();

 private:
  using json = nlohmann::json;

  // agent.cpp: frames, signals, the timer, the end
  bool on_frame(const Frame& f);
  void on_signals();
  void reap();
  void rearm();
  void on_timer();
  void shutdown();
  bool quitting() const { return quit_ || (!opts_.durable() && control_.gone()); }

  // durable agents: the host goes, the next one comes
  std::string hello(bool resumed) const;
  void on_accept();
  void attach(int fd);
  void detach();
  void replay();
  void drop_kernel_request();

  // execution.cpp: what every execution goes through
  void on_run(std::uint32_t id, const std::string& payload);
  void mark_started(Execution& e);
  void forward(Execution& e, int stream, const char* data, std::size_t n);
  bool pump(int fd, Execution* e, int stream, Kernel* k);  // false at EOF
  json base_done(const Execution& e, const char* status);
  void finish(std::uint32_t id, json done);
  void fail_now(std::uint32_t id, const char* name, const std::string& value);
  void terminate(Execution& e, const char* status, const char* termination);
  void on_cancel(std::uint32_t id);
  Execution* find_exec(std::optional<std::uint32_t> id);

  // shell_run.cpp
  void start_shell(Execution& e);
  void on_shell_exit(std::uint32_t id, int status, const rusage& ru);
  void terminate_shell(Execution& e, json done);
  void close_exec_pipes(Execution& e, bool drain);

  // kernel.cpp: the kernel state machine
  Kernel* start_kernel(Language lang, bool oneshot);
  void new_kernel(Language lang);  // the host's template's when it has one, else our own
  void request_kernel();
  void adopt_kernel(Kernel& k, const int fds[4]);
  void watch_kernel(Kernel& k);
  void on_kernel_frame(const std::string& payload);
  void on_warm(const std::string& payload);
  void pump_queue(Language lang);
  void send_request(Kernel& k, Execution& e);
  void on_kernel_output(Kernel& k, int stream, int fd);
  void on_kernel_reply(Kernel& k);
  void on_kernel_writable(Kernel& k);
  void on_kernel_exit(Kernel& k, int status);
  void handle_kernel_message(Kernel& k, const std::string& body);
  void kernel_lost(Kernel& k, const std::string& why);
  void terminate_kernel(Execution& e, json done);
  void destroy_kernel(Kernel& k);
  void drain_kernel(Kernel& k);
  bool alive(const Kernel* k) const;
  std::unique_ptr<Kernel>& slot(Language lang) { return kernel_[static_cast<int>(lang)]; }
  std::deque<std::uint32_t>& queue(Language lang) { return queue_[static_cast<int>(lang)]; }

  // The uid every child drops to before exec (none without --code-uid).
  uid_t code_uid() const { return opts_.code_uid.value_or(static_cast<uid_t>(-1)); }

  Options opts_;
  Reactor reactor_;
  Control control_;
  sys::UniqueFd sigfd_;
  bool quit_ = false;
  Held held_;  // durable only
  bool detached_ = false;
  std::optional<Clock::time_point> orphan_at_;     // detached: when we give up on the host
  std::optional<Clock::time_point> lifetime_at_;   // --lifetime-deadline-ms, on our clock

  std::map<std::uint32_t, std::unique_ptr<Execution>> execs_;
  std::deque<std::uint32_t> queue_[2];  // by language: python, nodejs
  std::unique_ptr<Kernel> kernel_[2];
  std::vector<std::unique_ptr<Kernel>> oneshots_;
  std::unordered_map<pid_t, std::uint32_t> shell_pids_;
  std::unordered_map<pid_t, Kernel*> kernel_pids_;
  // The host forks Python kernels from its template (we were given one at start); turned
  // off when one fails to arrive, so that a broken template costs one fallback, not a loop.
  bool ask_host_ = false;
};

}  // namespace sandbox::agent
