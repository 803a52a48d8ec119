#include "session_impl.hpp"

#include <signal.h>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <random>
#include <variant>

#include "files_internal.hpp"
#include "sandbox/result.hpp"
#include "sys/fd.hpp"

namespace sandbox {

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string_view to_string(SessionStatus s) noexcept {
  switch (s) {
    case SessionStatus::pending: return "Pending";
    case SessionStatus::ready: return "Ready";
    case SessionStatus::failed: return "Failed";
    case SessionStatus::closed: return "Closed";
    case SessionStatus::lost: return "Lost";
  }
  return "Closed";
}

void validate_session_id(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 64;
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-');
  }
  if (!ok) throw Error(errc::invalid_argument, "session id must match [A-Za-z0-9_-]{1,64}");
}

// One launched agent: the backend's instance and the channel to it. A session replaces its
// Agent when the previous one dies (killed by user code, or by the backstop).
struct SessionImpl::Agent {
  std::unique_ptr<isolation::Instance> instance;
  std::shared_ptr<agent::Channel> channel;
  std::promise<void> hello;
  std::promise<void> synced;  // a resumed agent's replay ended
  std::promise<void> gone;  // set when the control socket closes
  bool lost = false;
  bool replaying = false;  // between a resumed HELLO and SYNCED: RESUMEs are taken only then
  std::mutex instance_mutex;  // terminate() may race with close()'s teardown

  // Runs on the I/O thread too (backstop, lost agent): nothing may escape it there.
  void terminate() noexcept {
    std::lock_guard lock(instance_mutex);
    try {
      if (instance) instance->terminate();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox: cannot terminate a session's agent: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "sandbox: cannot terminate a session's agent\n");
    }
  }
  isolation::Usage usage() {
    std::lock_guard lock(instance_mutex);
    return instance ? instance->usage() : isolation::Usage{};
  }
  // A kernel forked from the backend's template, or none. On the I/O thread: never waits for
  // a teardown in progress (that agent needs no kernel), never throws (the agent then starts
  // its own kernel).
  std::vector<sys::UniqueFd> fork_kernel() noexcept {
    std::vector<sys::UniqueFd> held;
    std::unique_lock lock(instance_mutex, std::try_to_lock);
    if (!lock.owns_lock() || !instance) return held;
    try {
      for (int fd : instance->fork_python_kernel()) held.emplace_back(fd);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox: cannot fork a kernel from the template: %s\n", e.what());
      held.clear();
    }
    return held;
  }
  void destroy() {
    std::unique_ptr<isolation::Instance> doomed;
    {
      std::lock_guard lock(instance_mutex);
      doomed = std::move(instance);
    }
  }
};

namespace {

// Execution ids are unguessable, so that one client cannot poll another's by counting.
std::string fmt_execution_id(std::uint32_t wire) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  std::uint64_t v = rng();
  for (int i = 0; i < 12; ++i) id += hex[(v >> (4 * i)) & 0xf];
  return id + "-" + std::to_string(wire);
}

std::int64_t wall_ms(std::chrono::system_clock::time_point t = std::chrono::system_clock::now()) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Whether `id` is what fmt_execution_id(wire) makes: 12 hex digits, '-', the wire id.
bool is_execution_id(std::string_view id, std::uint32_t wire) {
  if (id.size() < 14 || id[12] != '-') return false;
  for (char c : id.substr(0, 12))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return id.substr(13) == std::to_string(wire);
}

// The wire id an execution id ends in ("<hex>-<wire>"), 0 if none.
std::uint32_t wire_of(std::string_view id) {
  auto dash = id.rfind('-');
  if (dash == std::string_view::npos) return 0;
  std::uint64_t v = 0;
  for (char c : id.substr(dash + 1)) {
    if (c < '0' || c > '9' || v > UINT32_MAX) return 0;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v > UINT32_MAX ? 0 : static_cast<std::uint32_t>(v);
}

// What the host's backstop allows past an execution's timeout before it ends the execution
// itself: the agent's own timeout, kill and DONE come first.
constexpr auto backstop_grace = 5s;

// A dead agent's teardown, posted off the I/O thread; the Agent may be released there too, so
// its Instance's destructor (waitpid, cgroup removal, umount) runs there as well.
template <class AgentT>
void post_teardown(asio::io_context& io, asio::thread_pool* pool, std::shared_ptr<AgentT> a) {
  auto job = [a = std::move(a)] { a->terminate(); };
  if (pool) asio::post(*pool, std::move(job));
  else asio::post(io, std::move(job));
}

}  // namespace

SessionImpl::SessionImpl(SessionContext ctx, std::string id, std::string owner, Limits limits,
                         isolation::LaunchSpec spec)
    : ctx_(std::move(ctx)),
      id_(std::move(id)),
      owner_(std::move(owner)),
      limits_(limits),
      spec_(std::move(spec)),
      created_(std::chrono::system_clock::now()) {
  touch();
}

SessionImpl::~SessionImpl() {
  try {
    close();
  } catch (...) {
    // A destructor must not throw; close() already did what it could.
  }
}

void SessionImpl::touch() {
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  last_used_ns_ = now;
  // The store learns of use at most once a second: a restart's idle clock, not a log.
  auto before = stored_touch_ns_.load();
  if (ctx_.store && stored_ && now - before > std::int64_t{1'000'000'000} &&
      stored_touch_ns_.compare_exchange_strong(before, now)) {
    try {
      ctx_.store->touch(owner_, id_, wall_ms());
    } catch (const std::exception&) {
      // Only the idle clock of a later restart is less exact.
    }
  }
}

std::chrono::steady_clock::time_point SessionImpl::last_used() const {
  {
    // An execution running or queued is use, however long ago it was submitted.
    std::lock_guard lock(mutex_);
    for (const auto& [wire, r] : running_)
      if (!r.exec->done()) return Clock::now();
  }
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_used_ns_.load()));
}

void SessionImpl::check_open() const {
  if (status_ == SessionStatus::closed) throw Error(errc::failed_precondition, "session " + id_ + " is closed");
}

void SessionImpl::launch(Language warm) {
  language_ = warm;
  auto a = start_agent(warm);
  {
    std::lock_guard lock(mutex_);
    agent_ = a;
    if (!files_) files_ = make_workspace_files(spec_.workspace, limits_.upload_bytes, a->instance->file_owner());
  }
  status_ = SessionStatus::ready;
}

void SessionImpl::adopt(std::string id, std::string owner) {
  id_ = std::move(id);
  owner_ = std::move(owner);
  touch();
}

std::shared_ptr<SessionImpl::Agent> SessionImpl::start_agent(Language warm) {
  auto spec = spec_;
  spec.python_kernel = warm == Language::python;
  auto a = connect(ctx_.backend.launch(spec), false);
  if (warm != Language::shell) a->channel->send(agent::Type::warm, 0, json{{"lang", to_string(warm)}}.dump());
  return a;
}

std::shared_ptr<SessionImpl::Agent> SessionImpl::connect(std::unique_ptr<isolation::Instance> instance, bool resumed) {
  auto a = std::make_shared<Agent>();
  a->instance = std::move(instance);
  int fd = ::dup(a->instance->control_fd());
  if (fd < 0) throw_syscall("dup", errno, "agent socket");
  a->channel = std::make_shared<agent::Channel>(ctx_.io, fd);
  auto hello = a->hello.get_future();
  auto synced = a->synced.get_future();
  std::weak_ptr<SessionImpl> weak = weak_from_this();
  std::weak_ptr<Agent> weak_agent = a;
  a->channel->start(
      [weak, weak_agent](agent::Decoded&& f) {
        auto self = weak.lock();
        auto ag = weak_agent.lock();
        if (self && ag) self->on_frame(ag, std::move(f));
      },
      [weak, weak_agent](const std::string& why) {
        auto self = weak.lock();
        auto ag = weak_agent.lock();
        if (self && ag) self->on_agent_lost(ag, why);
      });
  // An adopted agent that fails here is not this object's to end: the session is reported
  // lost and Backend::reap_lost() ends what is left, keeping its workspace; so the instance
  // is released (its destruction kills and unmounts nothing) rather than terminated.
  auto give_up = [&] {
    {
      std::lock_guard lock(mutex_);
      a->lost = true;  // its channel's close is ours
    }
    if (resumed) {
      std::lock_guard lock(a->instance_mutex);
      if (a->instance) a->instance->release();
    } else {
      a->terminate();
    }
    a->channel->close();
    a->destroy();
  };
  try {
    // An adopted agent is running already: one that does not answer soon is hung, and every
    // session waits for this one before the server listens.
    if (hello.wait_for(resumed ? 10s : 30s) != std::future_status::ready)
      throw Error(errc::unavailable, resumed ? "the session's agent did not answer within 10 s"
                                             : "the session's agent did not start within 30 s");
    hello.get();  // rethrows if the agent died before saying hello (or speaks another protocol)
    if (resumed) {
      if (synced.wait_for(30s) != std::future_status::ready)
        throw Error(errc::unavailable, "the session's agent did not replay its executions within 30 s");
      synced.get();  // rethrows if it died during the replay
    }
  } catch (...) {
    give_up();
    throw;
  }
  return a;
}

std::shared_ptr<SessionImpl::Agent> SessionImpl::agent() {
  {
    std::lock_guard lock(mutex_);
    if (agent_) return agent_;
  }
  // The previous agent died (its executions already failed): start a new one, same workspace.
  auto a = start_agent(Language::shell);
  std::shared_ptr<Agent> previous, current;
  {
    std::unique_lock lock(mutex_);
    if (status_ == SessionStatus::closed) {
      // Closed while it started: nothing may outlive the close, nor be recorded again.
      lock.unlock();
      a->terminate();
      a->channel->close();
      a->destroy();
      throw Error(errc::failed_precondition, "session " + id_ + " is closed");
    }
    if (!agent_) agent_ = a;
    previous = std::move(previous_agent_);
    current = agent_;
  }
  // A later server must find the new agent, not the dead one.
  if (stored_) {
    try {
      save();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox: cannot record session %s's new agent: %s\n", id_.c_str(), e.what());
    }
  }
  return current;
}

// On the I/O thread, with values agent::decode() already checked.
void SessionImpl::on_frame(const std::shared_ptr<Agent>& a, agent::Decoded&& f) {
  using namespace agent;
  if (auto* h = std::get_if<Hello>(&f.message)) {
    try {
      if (h->protocol != protocol_version) {
        a->hello.set_exception(std::make_exception_ptr(Error(
            errc::unavailable, "the session's agent speaks protocol " + std::to_string(h->protocol) +
                                   " and this server protocol " + std::to_string(protocol_version))));
        a->channel->close();
        return;
      }
      {
        std::lock_guard lock(mutex_);
        a->replaying = h->resumed;
      }
      a->hello.set_value();
    } catch (const std::future_error&) {
    }
    return;
  }
  if (std::holds_alternative<Synced>(f.message)) {
    {
      std::lock_guard lock(mutex_);
      a->replaying = false;
    }
    try {
      a->synced.set_value();
    } catch (const std::future_error&) {
    }
    return;
  }
  if (auto* r = std::get_if<Resume>(&f.message)) {
    on_resume(a, f.id, std::move(*r));
    return;
  }
  if (auto* reply = std::get_if<Reply>(&f.message)) {
    std::lock_guard lock(mutex_);
    if (auto it = replies_.find(f.id); it != replies_.end()) {
      it->second.set_value(std::move(reply->json));
      replies_.erase(it);
    }
    return;
  }
  if (std::holds_alternative<NeedKernel>(f.message)) {
    // Its forked kernel died: fork another from the backend's template, or tell the
    // agent to start its own.
    std::vector<sys::UniqueFd> held = a->fork_kernel();
    std::vector<int> fds;
    for (auto& fd : held) fds.push_back(fd.get());
    try {
      if (fds.size() == 4) a->channel->send_with_fds(Type::kernel, 0, R"({"lang":"python"})", fds);
      else a->channel->send(Type::kernel, 0, R"({"error":"no template kernel"})");
    } catch (const Error&) {
      // The agent is gone; on_agent_lost follows.
    }
    return;
  }
  const bool started = std::holds_alternative<Started>(f.message);
  auto* done = std::get_if<Done>(&f.message);
  std::shared_ptr<ExecutionImpl> ex;
  Running done_entry;
  {
    std::lock_guard lock(mutex_);
    auto it = running_.find(f.id);
    if (it == running_.end()) return;
    ex = it->second.exec;
    if (started) {
      it->second.started = true;
      arm_backstop(it->second, Clock::now() + it->second.timeout + backstop_grace, true);
      if (it->second.queued) schedule_queued(ex->language());
    }
    if (done) {
      done_entry = std::move(it->second);
      running_.erase(it);
    }
  }
  if (started) {
    ex->on_started();
  } else if (auto* out = std::get_if<Output>(&f.message)) {
    ex->on_output(out->stream, out->bytes);
  } else if (done) {
    if (done_entry.backstop) done_entry.backstop->cancel();
    isolation::Usage before = done_entry.usage_before;
    ex->on_done(std::move(*done), [&](Result& r) { refine(r, before, *a); });
    touch();
    {
      std::lock_guard lock(mutex_);
      trim_history();
    }
    if (ctx_.store) persist(*ex, a);
    if (ctx_.on_execution_done) ctx_.on_execution_done(ex->snapshot({0, 0}));
  }
}

// A resumed agent's execution, begun under an earlier server: followed by its OUTPUT so far
// and its DONE if it ended. One that the store holds already ended and was stored before the
// agent heard the ACK: acknowledged again.
void SessionImpl::on_resume(const std::shared_ptr<Agent>& a, std::uint32_t wire, agent::Resume&& r) {
  std::shared_ptr<ExecutionImpl> ex;
  bool stored = false;
  {
    std::lock_guard lock(mutex_);
    // Only in a replay, only ids this host's kind makes ("<12 hex>-<wire>"), and no more
    // than any host sends: anything else is a hostile agent's, and ignored.
    if (!a->replaying || wire == 0 || wire >= (1u << 31) || !is_execution_id(r.exec_id, wire)) return;
    auto known = executions_.find(r.exec_id);
    stored = known != executions_.end() && known->second->done();
    if (!stored && (known != executions_.end() || running_.count(wire) || running_.size() >= 4096)) return;
    if (!stored) {
      ExecRequest req;
      req.language = r.lang;
      ex = std::make_shared<ExecutionImpl>(r.exec_id, wire, std::move(req), limits_, weak_from_this());
      Running entry;
      entry.exec = ex;
      entry.agent = a;
      entry.timeout = r.timeout_ms > 0 ? std::chrono::milliseconds(r.timeout_ms) : limits_.timeout;
      entry.queued = r.lang != Language::shell && !r.fresh;
      entry.started = r.started;
      auto& placed = running_.emplace(wire, std::move(entry)).first->second;
      // The host's backstop again: what is left of its timeout, or its place in the queue.
      if (r.started) {
        const auto left = std::max(placed.timeout - std::chrono::milliseconds(r.elapsed_ms), std::chrono::milliseconds(0));
        arm_backstop(placed, Clock::now() + left + backstop_grace, true);
      } else if (!placed.queued) {
        arm_backstop(placed, Clock::now() + placed.timeout + backstop_grace, false);
      }
      executions_.emplace(ex->id(), ex);
      if (!latest_ || latest_->wire_id() < wire) latest_ = ex;
      next_wire_id_ = std::max(next_wire_id_, wire + 1);
      if (placed.queued) schedule_queued(r.lang);
    }
  }
  if (stored) {
    try {
      a->channel->send(agent::Type::ack, wire, "{}");
    } catch (const Error&) {
    }
    return;
  }
  if (r.started) ex->on_started();
}

void SessionImpl::persist(const ExecutionImpl& ex, const std::shared_ptr<Agent>& a) {
  // What a restart serves of each stream: a bound, so that storing a large result costs a
  // few MiB at most, here on the I/O thread and in the store.
  constexpr std::uint64_t kept = 1u << 20;
  Result r = ex.snapshot({0, kept});
  if (r.stdout_total > kept || r.stderr_total > kept) {
    r.truncated = true;
    const std::string cut = "output past 1 MiB per stream is not kept across a server restart";
    r.note = r.note ? *r.note + "; " + cut : cut;
  }
  store::ExecutionRecord rec{owner_, id_, ex.id(), ex.wire_id(), to_json(r), wall_ms()};
  std::weak_ptr<agent::Channel> channel = a->channel;
  const std::uint32_t wire = ex.wire_id();
  try {
    // Once it is on disk the agent may forget it (it replays what it holds to a new server).
    ctx_.store->put_execution(std::move(rec), [channel, wire] {
      if (auto c = channel.lock()) {
        try {
          c->send(agent::Type::ack, wire, "{}");
        } catch (const Error&) {
        }
      }
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sandbox: cannot store a result of session %s: %s\n", id_.c_str(), e.what());
  }
}

// Runs under the execution's lock: it must not take the session's (trim_history() takes
// them the other way round).
void SessionImpl::refine(Result& r, const isolation::Usage& before, Agent& a) {
  if (r.status == Status::finished) return;
  isolation::Usage now = a.usage();
  // The cgroup's counters tell what a bare SIGKILL or failed fork cannot.
  if (now.oom_kills && before.oom_kills && *now.oom_kills > *before.oom_kills) {
    r.termination = Termination::out_of_memory;
    if (r.status == Status::failed) r.status = Status::killed;
    if (!r.note) r.note = "out of memory: the session's memory limit was reached";
  } else if (now.pids_denied && before.pids_denied && *now.pids_denied > *before.pids_denied &&
             r.termination == Termination::none) {
    r.termination = Termination::process_limit;
    if (!r.note) r.note = "the session's process limit was reached";
  }
}

void SessionImpl::on_agent_lost(const std::shared_ptr<Agent>& a, const std::string& why) {
  std::map<std::uint32_t, Running> running;
  std::map<std::uint32_t, std::promise<std::string>> replies;
  Termination close_why;
  std::string close_note;
  {
    std::lock_guard lock(mutex_);
    if (a->lost) return;
    a->lost = true;
    a->gone.set_value();
    if (agent_ == a) {
      agent_.reset();
      if (status_ != SessionStatus::closed) previous_agent_ = a;
    }
    // This agent's executions; all of them once closing. A successor's (this agent was
    // retired by the backstop) go on.
    const bool closing_now = status_ == SessionStatus::closed;
    for (auto it = running_.begin(); it != running_.end();) {
      auto owner = it->second.agent.lock();
      if (closing_now || !owner || owner == a) {
        running.insert(std::move(*it));
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    replies.swap(replies_);
    close_why = close_why_;
    close_note = close_note_;
  }
  for (auto* p : {&a->hello, &a->synced}) {
    try {
      p->set_exception(std::make_exception_ptr(Error(errc::unavailable, "the session's agent exited")));
    } catch (const std::future_error&) {
    }
  }
  for (auto& [id, p] : replies) p.set_value(R"({"error":"unavailable"})");
  bool closing = status_ == SessionStatus::closed;
  for (auto& [id, r] : running) {
    if (r.backstop) r.backstop->cancel();
    if (closing) {
      r.exec->fail(Status::killed, close_why, close_note);
    } else if (!why.empty()) {
      // The host cut it off (a malformed frame, or it stopped reading): it is killed below.
      r.exec->fail(Status::failed, Termination::kernel_died,
                   "the session's agent was stopped (" + why + "); its processes were killed and it was restarted");
    } else {
      r.exec->fail(Status::failed, Termination::kernel_died,
                   "the session's agent exited; its processes were killed and it was restarted");
    }
    if (ctx_.on_execution_done) ctx_.on_execution_done(r.exec->snapshot({0, 0}));
  }
  // Whatever the agent left runs no more (close() tears down itself).
  if (!closing) post_teardown(ctx_.io, ctx_.teardown, a);
}

Files& SessionImpl::files() {
  check_open();
  touch();
  std::lock_guard lock(mutex_);
  return *files_;
}

std::string SessionImpl::request(agent::Type type, const std::string& payload) {
  auto a = agent();
  std::future<std::string> reply;
  std::uint32_t id;
  {
    std::lock_guard lock(mutex_);
    id = next_wire_id_++;
    reply = replies_[id].get_future();
  }
  a->channel->send(type, id, payload);
  if (reply.wait_for(10s) != std::future_status::ready) {
    std::lock_guard lock(mutex_);
    replies_.erase(id);
    throw Error(errc::unavailable, "the session's agent did not answer");
  }
  return reply.get();
}

std::vector<ProcessInfo> SessionImpl::processes() {
  check_open();
  touch();
  return agent::decode_processes(request(agent::Type::list, "{}"));
}

void SessionImpl::kill(int pid, int signal) {
  check_open();
  touch();
  if (pid <= 0) throw Error(errc::not_found, "no process " + std::to_string(pid) + " in this session");
  if (signal <= 0 || signal >= 65) throw Error(errc::invalid_argument, "bad signal number");
  auto error = agent::decode_kill_reply(request(agent::Type::kill, json{{"pid", pid}, {"signal", signal}}.dump()));
  if (error) {
    if (*error == "unavailable") throw Error(errc::unavailable, "the session's agent is restarting");
    throw Error(errc::not_found, "no process " + std::to_string(pid) + " in this session");
  }
}

// The agent enforces the timeout; this backstop ends the execution and replaces the agent
// when it does not (hung, SIGSTOPped). Armed at submission, so that an agent which never
// confirms the start cannot keep an execution Running; again at STARTED, from the start.
void SessionImpl::arm_backstop(Running& r, Clock::time_point deadline, bool started) {
  if (!r.backstop) r.backstop = std::make_shared<asio::steady_timer>(ctx_.io);
  r.deadline = deadline;
  r.backstop->expires_at(deadline);  // cancels the wait armed before
  std::weak_ptr<ExecutionImpl> weak_ex = r.exec;
  std::weak_ptr<Agent> weak_agent = r.agent;
  std::weak_ptr<SessionImpl> weak_self = weak_from_this();
  r.backstop->async_wait([weak_ex, weak_agent, weak_self, started, &io = ctx_.io,
                          pool = ctx_.teardown](boost::system::error_code ec) {
    if (ec) return;
    auto e = weak_ex.lock();
    auto ag = weak_agent.lock();
    if (!e || e->done() || !ag) return;
    // Retired first: whoever sees the Timeout and runs again must get a new agent.
    if (auto self = weak_self.lock()) self->retire(ag);
    e->fail(Status::timeout, Termination::timeout,
            started ? "the agent did not stop the execution at its timeout; the session's agent was replaced"
                    : "the agent did not answer: the execution had not started by its timeout; the session's agent was replaced");
    post_teardown(io, pool, std::move(ag));
  });
}

// The next use starts another agent at once rather than on this one's teardown, which a
// hung agent may make slow; the rest of its executions fail when its channel closes.
void SessionImpl::retire(const std::shared_ptr<Agent>& a) {
  std::lock_guard lock(mutex_);
  if (agent_ != a) return;
  agent_.reset();
  if (status_ != SessionStatus::closed) previous_agent_ = a;
}

// Python and Node executions run one at a time per language, in RUN order: one not started
// yet may wait for the earlier ones to end, so its deadline is theirs plus its own timeout.
// Only pushes deadlines later (an earlier one started late). With mutex_ held.
void SessionImpl::schedule_queued(Language lang) {
  Clock::time_point base = Clock::now();
  for (auto& [wire, r] : running_) {  // by wire id: submission order
    if (!r.queued || r.exec->language() != lang || r.exec->done()) continue;
    if (!r.started) {
      auto deadline = base + r.timeout + backstop_grace;
      if (!r.backstop || deadline > r.deadline) arm_backstop(r, deadline, false);
    }
    base = std::max(base, r.deadline);
  }
}

std::shared_ptr<Execution> SessionImpl::start(ExecRequest req) {
  check_open();
  touch();
  auto timeout = req.timeout.value_or(limits_.timeout);
  if (timeout.count() <= 0 || timeout > std::chrono::hours(24))
    throw Error(errc::invalid_argument, "timeout must be within (0, 24h]");
  if (req.code.size() > (16u << 20)) throw Error(errc::resource_exhausted, "code larger than 16 MiB");
  std::shared_ptr<void> admitted = ctx_.admit_execution ? ctx_.admit_execution(owner_) : nullptr;
  auto a = agent();
  const Language lang = req.language;
  const bool queued = lang != Language::shell && !req.fresh;  // a fresh one has its own kernel
  std::shared_ptr<ExecutionImpl> ex;
  Running entry;
  std::uint32_t wire;
  {
    std::lock_guard lock(mutex_);
    wire = next_wire_id_++;
  }
  const std::string exec_id = fmt_execution_id(wire);
  json payload = {{"lang", to_string(req.language)},
                  {"exec_id", exec_id},
                  {"code", req.code},
                  {"stdin", req.stdin_text},
                  {"timeout_ms", timeout.count()},
                  {"fresh", req.fresh},
                  {"output_cap", limits_.output_bytes},
                  {"caps", {{"result", limits_.result_cap()},
                            {"image", limits_.image_cap()},
                            {"images", limits_.images_cap()}}}};
  std::string text = payload.dump(-1, ' ', false, json::error_handler_t::replace);
  ex = std::make_shared<ExecutionImpl>(exec_id, wire, std::move(req), limits_, weak_from_this());
  ex->hold_until_done(std::move(admitted));  // the tenant's count, until it ends however it ends
  entry.exec = ex;
  entry.usage_before = a->usage();
  entry.timeout = timeout;
  entry.agent = a;
  entry.queued = queued;
  {
    std::lock_guard lock(mutex_);
    if (!queued) arm_backstop(entry, Clock::now() + timeout + backstop_grace, false);
    running_.emplace(wire, std::move(entry));
    if (queued) schedule_queued(lang);
    executions_.emplace(ex->id(), ex);
    latest_ = ex;
    trim_history();
  }
  try {
    a->channel->send(agent::Type::run, wire, text);
  } catch (const Error&) {
    ex->fail(Status::failed, Termination::kernel_died, "the session's agent is gone; try again");
  }
  return ex;
}

// Keeps a bounded history, in bytes (Limits::history_cap()) and in count: the oldest
// finished executions go first; the latest and the running ones always stay.
void SessionImpl::trim_history() {
  std::uint64_t total = 0;
  for (auto& [id, e] : executions_) total += e->footprint();
  while (total > limits_.history_cap() || executions_.size() > max_history) {
    auto victim = executions_.end();
    for (auto it = executions_.begin(); it != executions_.end(); ++it) {
      if (it->second->done() && it->second != latest_ &&
          (victim == executions_.end() || it->second->wire_id() < victim->second->wire_id()))
        victim = it;
    }
    if (victim == executions_.end()) break;
    total -= std::min(total, victim->second->footprint());
    executions_.erase(victim);
  }
}

std::shared_ptr<Execution> SessionImpl::latest() const {
  std::lock_guard lock(mutex_);
  return latest_;
}

std::shared_ptr<Execution> SessionImpl::execution(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto it = executions_.find(id);
  if (it == executions_.end()) throw Error(errc::not_found, "no execution " + std::string(id));
  return it->second;
}

void SessionImpl::cancel(ExecutionImpl& ex) {
  std::shared_ptr<Agent> a;
  {
    std::lock_guard lock(mutex_);
    a = agent_;
  }
  if (!a) return;
  try {
    a->channel->send(agent::Type::cancel, ex.wire_id(), "{}");
  } catch (const Error&) {
    ex.fail(Status::killed, Termination::cancelled, "cancelled");
  }
}

void SessionImpl::close() { close(Termination::cancelled, "the session was closed"); }

void SessionImpl::close(Termination why, std::string note) {
  if (status_.exchange(SessionStatus::closed) == SessionStatus::closed) return;
  {
    std::lock_guard lock(mutex_);
    close_why_ = why;
    close_note_ = std::move(note);
  }
  std::shared_ptr<Agent> a;
  {
    std::lock_guard lock(mutex_);
    a = agent_;
  }
  if (a) {
    // The agent kills every process it knows of, then exits; give it a moment to do so
    // before the backend's own teardown, which is the guarantee.
    try {
      auto gone = a->gone.get_future();
      a->channel->send(agent::Type::shutdown, 0, "{}");
      gone.wait_for(2s);
    } catch (const std::exception&) {
    }
    // The backend kills whatever is left and undoes its mounts and cgroups.
    a->terminate();
    on_agent_lost(a);
    a->channel->close();
    a->destroy();
  }
  std::shared_ptr<Agent> previous;
  {
    std::lock_guard lock(mutex_);
    agent_.reset();
    previous = std::move(previous_agent_);
  }
  if (previous) {
    previous->terminate();
    previous->destroy();
  }
  std::error_code ec;
  std::filesystem::remove_all(spec_.session_dir, ec);
  if (ctx_.store && stored_) {
    try {
      ctx_.store->remove_session(owner_, id_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox: cannot remove session %s's record: %s\n", id_.c_str(), e.what());
    }
  }
}

void SessionImpl::release() {
  if (status_.exchange(SessionStatus::closed) == SessionStatus::closed) return;
  std::shared_ptr<Agent> a, previous;
  std::map<std::uint32_t, Running> running;
  std::map<std::uint32_t, std::promise<std::string>> replies;
  {
    std::lock_guard lock(mutex_);
    a = std::move(agent_);
    previous = std::move(previous_agent_);
    running.swap(running_);
    replies.swap(replies_);
    if (a) a->lost = true;  // its channel's close below is ours, not the agent's end
  }
  for (auto& [id, p] : replies) p.set_value(R"({"error":"unavailable"})");
  for (auto& [id, r] : running) {
    if (r.backstop) r.backstop->cancel();
    // The agent goes on running it; the next Sandbox on this state dir serves its result.
    r.exec->fail(Status::failed, Termination::none,
                 "this server stopped; the execution goes on and the next server on its state directory serves its result");
  }
  if (a) {
    {
      std::lock_guard lock(a->instance_mutex);
      if (a->instance) a->instance->release();
    }
    a->channel->close();
    a->destroy();
  }
  if (previous) {
    previous->terminate();
    previous->destroy();
  }
}

store::SessionRecord SessionImpl::record() const {
  store::SessionRecord r;
  r.owner = owner_;
  r.id = id_;
  r.language = std::string(to_string(language_));
  r.limits_json = limits_json(limits_);
  r.created_ms = wall_ms(created_);
  r.last_used_ms = wall_ms(std::chrono::system_clock::now() -
                           std::chrono::duration_cast<std::chrono::system_clock::duration>(
                               std::chrono::steady_clock::now() - last_used()));
  r.backend = std::string(ctx_.backend.name());
  r.session_key = spec_.session_id;
  std::shared_ptr<Agent> a;
  {
    std::lock_guard lock(mutex_);
    a = agent_;
    r.next_wire = next_wire_id_;
  }
  if (a) {
    std::lock_guard lock(a->instance_mutex);
    if (a->instance) r.handle_json = a->instance->handle();
  }
  return r;
}

void SessionImpl::save() {
  if (!ctx_.store) return;
  ctx_.store->put_session(record());
  stored_ = true;
}

void SessionImpl::attach(const store::SessionRecord& rec, std::vector<Result> history) {
  created_ = std::chrono::system_clock::time_point(std::chrono::milliseconds(rec.created_ms));
  const auto idle_for = std::chrono::system_clock::now() -
                        std::chrono::system_clock::time_point(std::chrono::milliseconds(rec.last_used_ms));
  last_used_ns_ = (std::chrono::steady_clock::now() -
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::max(idle_for, std::chrono::system_clock::duration::zero())))
                      .time_since_epoch()
                      .count();
  try {
    language_ = parse_language(rec.language);
  } catch (const Error&) {
  }
  stored_ = true;
  {
    std::lock_guard lock(mutex_);
    next_wire_id_ = std::max<std::uint32_t>(next_wire_id_, rec.next_wire);
    for (auto& r : history) {
      const std::uint32_t wire = wire_of(r.execution_id);
      if (wire == 0 || executions_.count(r.execution_id)) continue;
      ExecRequest req;
      req.language = r.language;
      auto ex = std::make_shared<ExecutionImpl>(r.execution_id, wire, std::move(req), limits_, weak_from_this());
      ex->restore(std::move(r));
      if (!latest_ || latest_->wire_id() < wire) latest_ = ex;
      next_wire_id_ = std::max(next_wire_id_, wire + 1);
      executions_.emplace(ex->id(), std::move(ex));
    }
  }
  std::shared_ptr<Agent> a;
  try {
    a = connect(ctx_.backend.adopt(spec_, rec.handle_json), true);
  } catch (...) {
    // Not adopted: the Sandbox keeps it as lost. Nothing of it may go with this object.
    status_ = SessionStatus::closed;
    throw;
  }
  {
    std::lock_guard lock(mutex_);
    agent_ = a;
    if (!files_) files_ = make_workspace_files(spec_.workspace, limits_.upload_bytes, a->instance->file_owner());
    trim_history();
  }
  status_ = SessionStatus::ready;
}

}  // namespace sandbox
