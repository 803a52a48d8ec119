// The session store: what a restarted Sandbox reads to adopt the sessions of the one before
// (DESIGN section 7). One SQLite database per state dir (<state_dir>/sessions.db, WAL), one
// writer: open() takes the state dir's lock, so a second server on it fails at once.
//
//   auto store = store::Store::open(state_dir);        // throws already_exists if locked
//   store->put_session(record);                        // durable when it returns
//   for (auto& r : store->sessions()) adopt(r);
//   store->put_execution(rec, [] { /* committed: ACK the agent */ });
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::store {

// One session as the store keeps it. JSON fields are opaque here (their owners parse them).
struct SessionRecord {
  std::string owner, id;
  std::string language;           // the language it was created for ("python")
  std::string limits_json;        // limits_to_json(Limits)
  std::int64_t created_ms = 0;    // ms since the epoch
  std::int64_t last_used_ms = 0;
  std::string placement = "local";
  std::string backend;            // the isolation backend's name
  std::string session_key;        // LaunchSpec::session_id: names its dir, cgroup, socket
  std::string handle_json;        // Instance::handle()
  std::string state = "live";     // "live" | "lost"
  std::string lost_reason;
  std::int64_t lost_at_ms = 0;
  std::uint32_t next_wire = 1;    // the next wire id the session may use (at least)
};

// One finished execution's result, kept so that a restart serves it.
struct ExecutionRecord {
  std::string owner, session, id;  // session is SessionRecord::id
  std::uint32_t wire = 0;
  std::string result_json;         // sandbox::to_json(Result)
  std::int64_t finished_ms = 0;
};

class Store {
 public:
  // Creates or opens <state_dir>/sessions.db, holding <state_dir>/lock (flock) until
  // destroyed. Throws already_exists naming the holder's pid when another process holds
  // it, internal on a database that cannot be opened or migrated.
  static std::unique_ptr<Store> open(const std::filesystem::path& state_dir);
  virtual ~Store() = default;

  // Synchronous, committed when they return (session create, state change, delete).
  virtual void put_session(const SessionRecord& r) = 0;          // insert or replace
  virtual void remove_session(const std::string& owner, const std::string& id) = 0;  // and its executions
  virtual std::vector<SessionRecord> sessions() = 0;
  // Write-behind on the store's own thread, batched into one transaction per turn; never
  // blocks the caller on the disk. `on_committed` runs on that thread after the commit.
  virtual void touch(const std::string& owner, const std::string& id, std::int64_t last_used_ms) = 0;
  virtual void put_execution(ExecutionRecord r, std::function<void()> on_committed = {}) = 0;
  // The newest `limit` executions of a session, oldest first.
  virtual std::vector<ExecutionRecord> executions(const std::string& owner, const std::string& id,
                                                  std::size_t limit) = 0;
  // Waits until every write queued before it is committed.
  virtual void flush() = 0;

  // Small named records of other parts (the placement gateway's cloud sessions), as JSON.
  virtual void put_record(const std::string& kind, const std::string& key, const std::string& json) = 0;
  virtual void remove_record(const std::string& kind, const std::string& key) = 0;
  virtual std::vector<std::pair<std::string, std::string>> records(const std::string& kind) = 0;  // (key, json)
};

}  // namespace sandbox::store
