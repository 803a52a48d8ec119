// What every execution goes through, shell or kernel: RUN parsed, STARTED, OUTPUT within
// its cap, a timeout or a cancel, and one DONE.
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "agent/agent.hpp"

namespace sandbox::agent {

void Agent::on_run(std::uint32_t id, const std::string& payload) {
  if (execs_.count(id)) {
    // Answering would be ambiguous; the host never reuses a live id.
    std::fprintf(stderr, "sandbox-agent: duplicate execution id %u ignored\n", id);
    return;
  }
  json j = json::parse(payload, nullptr, false);
  std::optional<Language> lang;
  auto e = std::make_unique<Execution>();
  e->id = id;
  if (j.is_object()) {
    if (auto l = j.find("lang"); l != j.end() && l->is_string()) lang = language_named(l->get<std::string>());
    if (auto v = j.find("exec_id"); v != j.end() && v->is_string()) e->exec_id = v->get<std::string>();
  }
  Execution& ex = *e;
  execs_.emplace(id, std::move(e));
  if (lang) ex.lang = *lang;
  // Held for the next host only when it can be named to it (RESUME needs the host's id).
  if (opts_.durable() && !ex.exec_id.empty() && ex.exec_id.size() <= 64) held_.begin(id, ex.exec_id, ex.lang);
  if (!lang) return fail_now(id, "AgentError", "malformed RUN: expected {lang, code, ...}");
  try {
    if (auto v = j.find("code"); v != j.end() && v->is_string()) ex.code = v->get<std::string>();
    if (auto v = j.find("stdin"); v != j.end() && v->is_string()) ex.stdin_text = v->get<std::string>();
    if (auto v = j.find("timeout_ms"); v != j.end() && v->is_number()) ex.timeout_ms = v->get<std::int64_t>();
    if (auto v = j.find("fresh"); v != j.end() && v->is_boolean()) ex.fresh = v->get<bool>();
    if (auto v = j.find("output_cap"); v != j.end() && v->is_number_unsigned()) ex.cap = v->get<std::size_t>();
    if (auto v = j.find("caps"); v != j.end() && v->is_object() && v->size() <= 8) ex.caps = *v;
    if (ex.lang == Language::shell) return start_shell(ex);
    if (ex.fresh) {
      Kernel* k = start_kernel(ex.lang, true);
      k->waiter = id;
      ex.kernel = k;
      return;
    }
    queue(ex.lang).push_back(id);
    pump_queue(ex.lang);
  } catch (const std::exception& err) {
    fail_now(id, "AgentError", err.what());
  }
}

Execution* Agent::find_exec(std::optional<std::uint32_t> id) {
  if (!id) return nullptr;
  auto it = execs_.find(*id);
  return it == execs_.end() ? nullptr : it->second.get();
}

void Agent::mark_started(Execution& e) {
  e.started = true;
  e.start = Clock::now();
  if (e.timeout_ms > 0) e.deadline = e.start + std::chrono::milliseconds(e.timeout_ms);
  control_.send(Type::started, e.id, "{}");
  held_.started(e.id, e.start);
  rearm();
}

void Agent::forward(Execution& e, int stream, const char* data, std::size_t n) {
  std::size_t& sent = e.sent[stream];
  std::size_t room = e.cap > sent ? e.cap - sent : 0;
  std::size_t take = n < room ? n : room;
  if (take < n) e.truncated = true;  // the rest is read and dropped
  if (take == 0) return;
  sent += take;
  control_.send(Type::output, e.id, std::string_view(data, take), static_cast<std::uint8_t>(stream));
  held_.output(e.id, stream, std::string_view(data, take));
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

nlohmann::json Agent::base_done(const Execution& e, const char* status) {
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
  done["duration_ms"] =
      e.started ? std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - e.start).count() : 0;
  std::string payload = done.dump(-1, ' ', false, json::error_handler_t::replace);
  control_.send(Type::done, id, payload);
  held_.done(id, std::move(payload));
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
  json done = base_done(e, status);
  done["termination"] = termination;
  if (e.lang == Language::shell) return terminate_shell(e, std::move(done));
  terminate_kernel(e, std::move(done));
}

void Agent::on_cancel(std::uint32_t id) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  Execution& e = *it->second;
  if (e.started) return terminate(e, "Killed", "cancelled");
  // Not started: queued behind another execution, or waiting for its kernel to boot.
  if (e.lang != Language::shell) {
    auto& q = queue(e.lang);
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

}  // namespace sandbox::agent
