// Shell executions: `sh -c code` as a child of its own, run at once (no queue), its
// stdout and stderr forwarded as they come, DONE when it is reaped.
#include <sys/epoll.h>
#include <sys/wait.h>

#include "agent/agent.hpp"
#include "agent/agent_proc.hpp"
#include "agent/agent_spawn.hpp"
#include "agent/pipes.hpp"
#include "agent/processes.hpp"

extern char** environ;

namespace sandbox::agent {

void Agent::start_shell(Execution& e) {
  sys::UniqueFd in = stdin_fd(e.stdin_text);
  Pipe out = make_pipe(true), err = make_pipe(true);
  const char* argv[] = {opts_.shell.c_str(), "-c", e.code.c_str(), nullptr};
  SpawnSpec spec{opts_.shell.c_str(), argv, environ, opts_.workspace.c_str(),
                 {in.get(), out.write.get(), err.write.get()}, 3, code_uid()};
  e.pid = spawn(spec);
  shell_pids_.emplace(e.pid, e.id);
  e.out = std::move(out.read);
  e.err = std::move(err.read);
  const std::uint32_t id = e.id;
  auto on_output = [this, id](int stream, int fd) {
    auto it = execs_.find(id);
    if (it == execs_.end()) return;
    Execution& ex = *it->second;
    if (!pump(fd, &ex, stream, nullptr)) {
      if (stream == 1) { reactor_.unwatch(ex.out_tok); ex.out.reset(); }
      else { reactor_.unwatch(ex.err_tok); ex.err.reset(); }
    }
  };
  const int out_fd = e.out.get(), err_fd = e.err.get();
  e.out_tok = reactor_.watch(out_fd, EPOLLIN, [on_output, out_fd](std::uint32_t) { on_output(1, out_fd); });
  e.err_tok = reactor_.watch(err_fd, EPOLLIN, [on_output, err_fd](std::uint32_t) { on_output(2, err_fd); });
  mark_started(e);
}

void Agent::on_shell_exit(std::uint32_t id, int status, const rusage& ru) {
  auto e = execs_.find(id);
  if (e == execs_.end()) return;
  Execution& ex = *e->second;
  close_exec_pipes(ex, true);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  json done = base_done(ex, code == 0 ? "Finished" : "Failed");
  done["exit_code"] = code;
  done["cpu_ms"] = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                   (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
  done["peak_rss_bytes"] = static_cast<std::int64_t>(ru.ru_maxrss) * 1024;
  finish(id, std::move(done));
}

void Agent::terminate_shell(Execution& e, json done) {
  if (e.pid > 0) {
    if (auto st = read_stat(e.pid)) done["cpu_ms"] = ticks_to_ms(st->cpu_ticks + st->children_cpu_ticks);
    kill_tree(e.pid, e.pid);
    shell_pids_.erase(e.pid);  // reaped later as an anonymous child
  }
  close_exec_pipes(e, true);
  finish(e.id, std::move(done));
}

void Agent::close_exec_pipes(Execution& e, bool drain) {
  // After the main process exits its output is complete, but a background child may still
  // hold the pipes: read what is there now and close, never wait for EOF.
  if (e.out) {
    if (drain) pump(e.out.get(), &e, 1, nullptr);
    reactor_.unwatch(e.out_tok);
    e.out.reset();
  }
  if (e.err) {
    if (drain) pump(e.err.get(), &e, 2, nullptr);
    reactor_.unwatch(e.err_tok);
    e.err.reset();
  }
}

}  // namespace sandbox::agent
