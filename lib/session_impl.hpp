// The library's local Session: a workspace, an isolation instance with its agent, and the
// executions it ran.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <future>
#include <map>
#include <mutex>

#include "agent/channel.hpp"
#include "execution_impl.hpp"
#include "isolation/backends.hpp"
#include "sandbox/session.hpp"
#include "store/store.hpp"

namespace sandbox {

// What a session needs from the Sandbox that owns it.
struct SessionContext {
  boost::asio::io_context& io;
  isolation::Backend& backend;
  std::function<void(const Result&)> on_execution_done;  // metrics
  // Counts one execution of `owner` until the returned hold is let go (at its end); throws
  // QuotaExceeded over the tenant's quota. May return null (no quota).
  std::function<std::shared_ptr<void>(const std::string& owner)> admit_execution;
  // Where a dead agent's teardown runs (cgroup kill loops, waitpid, umount can take seconds):
  // never the I/O thread, which serves every session. Null: the I/O thread (tests only).
  boost::asio::thread_pool* teardown = nullptr;
  // A real state dir's store: the session's record and its finished results (DESIGN
  // section 7). Null for a private state dir: nothing outlives the Sandbox.
  store::Store* store = nullptr;
};

class SessionImpl final : public Session, public std::enable_shared_from_this<SessionImpl> {
 public:
  SessionImpl(SessionContext ctx, std::string id, std::string owner, Limits limits,
              isolation::LaunchSpec spec);
  ~SessionImpl() override;

  // Launches the agent and waits for its HELLO; throws what the backend throws.
  void launch(Language warm);
  // A pooled session taking on its real identity.
  void adopt(std::string id, std::string owner);
  // A session an earlier server left running (its store record): adopts the agent through
  // the backend, which replays what it held, and restores `history` (stored results, oldest
  // first). Throws what Backend::adopt throws, or unavailable if the agent does not answer.
  void attach(const store::SessionRecord& record, std::vector<Result> history);
  // Lets go of the agent without ending it: the session lives on for the next Sandbox on
  // this state dir. Executions this process still watches end with a note saying so.
  void release();
  // The record the store keeps, and writing it there (no-op without a store).
  store::SessionRecord record() const;
  void save();

  const std::string& id() const override { return id_; }
  const std::string& owner() const override { return owner_; }
  SessionStatus status() const override { return status_.load(); }
  const Limits& limits() const override { return limits_; }
  std::string_view isolation() const override { return ctx_.backend.name(); }
  std::string placement() const override { return "local"; }
  std::filesystem::path workspace() const override { return spec_.workspace; }
  std::chrono::system_clock::time_point created() const override { return created_; }
  std::chrono::steady_clock::time_point last_used() const override;

  Files& files() override;
  std::vector<ProcessInfo> processes() override;
  void kill(int pid, int signal) override;
  std::shared_ptr<Execution> start(ExecRequest req) override;
  std::shared_ptr<Execution> latest() const override;
  std::shared_ptr<Execution> execution(std::string_view id) const override;
  void close() override;
  // close() that ends the running executions Killed with `why` and `note` (the reaper's
  // Termination::lifetime) rather than "cancelled".
  void close(Termination why, std::string note);

  void cancel(ExecutionImpl& ex);
  // Counts as use for the idle reaper: requests, and reads of its executions' results.
  void touch();

 private:
  struct Agent;  // one launched instance and its channel
  struct Running {
    std::shared_ptr<ExecutionImpl> exec;
    // The host's timeout, for an agent that does not enforce its own (hung, stopped):
    // armed at submission, again at STARTED (arm_backstop).
    std::shared_ptr<boost::asio::steady_timer> backstop;
    std::chrono::steady_clock::time_point deadline;
    bool queued = false;  // waits behind the earlier executions of its language
    bool started = false;
    std::chrono::milliseconds timeout{0};
    std::weak_ptr<Agent> agent;
    isolation::Usage usage_before;
  };
  // With mutex_ held.
  void arm_backstop(Running& r, std::chrono::steady_clock::time_point deadline, bool started);
  void schedule_queued(Language lang);
  void retire(const std::shared_ptr<Agent>& a);  // the backstop gave up on it
  void check_open() const;
  std::shared_ptr<Agent> agent();  // launches again if the previous agent died
  std::shared_ptr<Agent> start_agent(Language warm);
  // The channel to a launched or adopted instance, once its HELLO (and, resumed, its replay)
  // arrived.
  std::shared_ptr<Agent> connect(std::unique_ptr<isolation::Instance> instance, bool resumed);
  void persist(const ExecutionImpl& ex, const std::shared_ptr<Agent>& a);  // a DONE, to the store
  void on_frame(const std::shared_ptr<Agent>& a, agent::Decoded&& f);
  void on_resume(const std::shared_ptr<Agent>& a, std::uint32_t wire, agent::Resume&& r);
  // `why` is empty when the agent exited, else why the host cut it off.
  void on_agent_lost(const std::shared_ptr<Agent>& a, const std::string& why = {});
  void trim_history();  // with mutex_ held
  std::string request(agent::Type type, const std::string& payload);
  void refine(Result& r, const isolation::Usage& before, Agent& a);

  SessionContext ctx_;
  std::string id_, owner_;
  const Limits limits_;
  const isolation::LaunchSpec spec_;
  std::chrono::system_clock::time_point created_;  // set once, before the session is shared
  Language language_ = Language::python;             // the kernel it was created warm with
  std::atomic<bool> stored_{false};                  // its record is in the store
  std::atomic<std::int64_t> stored_touch_ns_{0};     // the store last learned of a use
  std::atomic<SessionStatus> status_{SessionStatus::pending};
  std::atomic<std::int64_t> last_used_ns_{0};
  std::unique_ptr<Files> files_;

  mutable std::mutex mutex_;
  std::shared_ptr<Agent> agent_;
  // A dead agent is kept until its successor runs: backends may tie the workspace (a quota
  // mount) to instances, and overlapping instances share it, so no file is lost.
  std::shared_ptr<Agent> previous_agent_;
  std::map<std::uint32_t, Running> running_;  // by wire id
  std::map<std::string, std::shared_ptr<ExecutionImpl>, std::less<>> executions_;
  std::shared_ptr<ExecutionImpl> latest_;
  std::map<std::uint32_t, std::promise<std::string>> replies_;
  std::uint32_t next_wire_id_ = 1;
  // How close() reports the executions it ends.
  Termination close_why_ = Termination::cancelled;
  std::string close_note_ = "the session was closed";
  static constexpr std::size_t max_history = 64;  // executions kept, besides the byte bound
};

}  // namespace sandbox
