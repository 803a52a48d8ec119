// store/store.cpp: the session store on SQLite. One connection, used under one mutex by
// the callers' synchronous writes, the reads and the write-behind thread: SQLite allows one
// writer at a time anyway, and the batching (one transaction per turn of the writer) is what
// keeps touch() and put_execution() cheap.
#include "store/store.hpp"

#include <sandbox/error.hpp>

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sandbox::store {
namespace {

// The schema this code writes (PRAGMA user_version). A newer one is refused, not guessed at.
constexpr int kSchemaVersion = 1;
// Executions kept per session: the newest results, enough for a client that resumes.
constexpr int kExecutionsPerSession = 64;  // as many as a session keeps in memory

constexpr std::string_view kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS sessions (
  owner TEXT NOT NULL, id TEXT NOT NULL,
  language TEXT NOT NULL, limits_json TEXT NOT NULL,
  created_ms INTEGER NOT NULL, last_used_ms INTEGER NOT NULL,
  placement TEXT NOT NULL, backend TEXT NOT NULL, session_key TEXT NOT NULL,
  handle_json TEXT NOT NULL, state TEXT NOT NULL, lost_reason TEXT NOT NULL,
  lost_at_ms INTEGER NOT NULL, next_wire INTEGER NOT NULL,
  PRIMARY KEY (owner, id));
CREATE TABLE IF NOT EXISTS executions (
  owner TEXT NOT NULL, session TEXT NOT NULL, id TEXT NOT NULL,
  wire INTEGER NOT NULL, result_json TEXT NOT NULL, finished_ms INTEGER NOT NULL,
  PRIMARY KEY (owner, session, id));
CREATE INDEX IF NOT EXISTS executions_by_wire ON executions (owner, session, wire);
CREATE TABLE IF NOT EXISTS records (
  kind TEXT NOT NULL, key TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (kind, key));
)SQL";

// ---------------------------------------------------------------------------------------
// RAII over the C API

struct DbClose {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbClose>;

class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

[[noreturn]] void fail(sqlite3* db, std::string_view step) {
  throw Error(errc::internal, fmt::format("session store: {}: {}", step, db ? sqlite3_errmsg(db) : "out of memory"));
}

// A prepared statement: bind by position (1-based), step, read columns; reset() for reuse.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, std::string_view sql, std::string_view step) : db_(db), step_(step) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      fail(db, fmt::format("{} (prepare)", step));
    s_.reset(s);
  }
  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(s_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(s_.get(), i, v));
    return *this;
  }
  // True while there is a row to read.
  bool step() {
    int rc = sqlite3_step(s_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, step_);
  }
  void run() {
    while (step()) {
    }
  }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_.get(), col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_.get(), col))) : std::string{};
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(s_.get(), col); }
  // Ready for the next use: unbinds and resets, whatever the last step did.
  void reset() noexcept {
    sqlite3_reset(s_.get());
    sqlite3_clear_bindings(s_.get());
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, fmt::format("{} (bind)", step_));
  }
  sqlite3* db_ = nullptr;
  std::string step_;
  std::unique_ptr<sqlite3_stmt, StmtFinalize> s_;
};

// Resets a statement when the scope ends, thrown through or not.
struct Using {
  explicit Using(Stmt& stmt) : s(stmt) {}
  ~Using() { s.reset(); }
  Stmt& s;
};

// A system call's failure, as the store reports every failure: internal, naming the step.
[[noreturn]] void fail_sys(std::string_view step, int err, const std::filesystem::path& path) {
  throw Error(errc::internal, fmt::format("session store: {}({}): {}", step, path.string(), std::strerror(err)));
}

void exec(sqlite3* db, const std::string& sql, std::string_view step) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error(errc::internal, fmt::format("session store: {}: {}", step, msg));
  }
}

std::int64_t pragma_int(sqlite3* db, const char* sql, std::string_view step) {
  Stmt s(db, sql, step);
  return s.step() ? s.integer(0) : 0;
}

// A transaction rolled back unless committed.
class Transaction {
 public:
  Transaction(sqlite3* db, std::string_view step) : db_(db), step_(step) {
    exec(db_, "BEGIN IMMEDIATE", fmt::format("{} (begin)", step_));
  }
  void commit() {
    exec(db_, "COMMIT", fmt::format("{} (commit)", step_));
    done_ = true;
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  std::string step_;
  bool done_ = false;
};

// The state dir's lock: held (flock) for the Store's lifetime, our pid written in it for
// the message a second server gets.
Fd take_lock(const std::filesystem::path& state_dir) {
  auto path = state_dir / "lock";
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) fail_sys("open", errno, path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) fail_sys("flock", err, path);
    // The holder writes its pid right after locking: give it a moment if it is not there yet.
    std::string pid;
    for (int i = 0; i < 20 && pid.empty(); ++i) {
      char buf[32] = {};
      auto n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
      if (n > 0) pid.assign(buf, static_cast<std::size_t>(n));
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      if (pid.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    throw Error(errc::already_exists, fmt::format("the state directory {} is in use by another server (pid {})",
                                                  state_dir.string(), pid.empty() ? "unknown" : pid));
  }
  auto text = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd.get(), 0) != 0) fail_sys("ftruncate", errno, path);
  if (::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    fail_sys("write", errno, path);
  return fd;
}

// ---------------------------------------------------------------------------------------
// The store

class SqliteStore final : public Store {
 public:
  SqliteStore(Fd lock, Db db) : lock_(std::move(lock)), db_(std::move(db)) {
    auto* d = db_.get();
    put_session_ = Stmt(d, R"SQL(INSERT OR REPLACE INTO sessions (owner, id, language, limits_json, created_ms,
        last_used_ms, placement, backend, session_key, handle_json, state, lost_reason, lost_at_ms, next_wire)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14))SQL", "put_session");
    remove_session_ = Stmt(d, "DELETE FROM sessions WHERE owner = ?1 AND id = ?2", "remove_session");
    remove_executions_ = Stmt(d, "DELETE FROM executions WHERE owner = ?1 AND session = ?2", "remove_session (executions)");
    sessions_ = Stmt(d, R"SQL(SELECT owner, id, language, limits_json, created_ms, last_used_ms, placement, backend,
        session_key, handle_json, state, lost_reason, lost_at_ms, next_wire FROM sessions ORDER BY created_ms, owner, id)SQL",
                     "sessions");
    touch_ = Stmt(d, "UPDATE sessions SET last_used_ms = max(last_used_ms, ?3) WHERE owner = ?1 AND id = ?2", "touch");
    put_execution_ = Stmt(d, R"SQL(INSERT OR REPLACE INTO executions (owner, session, id, wire, result_json, finished_ms)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6))SQL", "put_execution");
    trim_executions_ = Stmt(d, R"SQL(DELETE FROM executions WHERE rowid IN (SELECT rowid FROM executions
        WHERE owner = ?1 AND session = ?2 ORDER BY wire DESC, rowid DESC LIMIT -1 OFFSET ?3))SQL",
                            "put_execution (trim)");
    executions_ = Stmt(d, R"SQL(SELECT id, wire, result_json, finished_ms FROM executions
        WHERE owner = ?1 AND session = ?2 ORDER BY wire DESC, rowid DESC LIMIT ?3)SQL", "executions");
    put_record_ = Stmt(d, "INSERT OR REPLACE INTO records (kind, key, json) VALUES (?1, ?2, ?3)", "put_record");
    remove_record_ = Stmt(d, "DELETE FROM records WHERE kind = ?1 AND key = ?2", "remove_record");
    records_ = Stmt(d, "SELECT key, json FROM records WHERE kind = ?1 ORDER BY key", "records");
    writer_ = std::thread([this] { write_behind(); });
  }

  ~SqliteStore() override {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    writer_.join();  // it drains the queue first
  }

  void put_session(const SessionRecord& r) override {
    std::lock_guard lock(db_mu_);
    Using u(put_session_);
    put_session_.bind(1, r.owner).bind(2, r.id).bind(3, r.language).bind(4, r.limits_json).bind(5, r.created_ms)
        .bind(6, r.last_used_ms).bind(7, r.placement).bind(8, r.backend).bind(9, r.session_key)
        .bind(10, r.handle_json).bind(11, r.state).bind(12, r.lost_reason).bind(13, r.lost_at_ms)
        .bind(14, static_cast<std::int64_t>(r.next_wire));
    put_session_.run();
  }

  void remove_session(const std::string& owner, const std::string& id) override {
    // What is queued for it first, so no execution row outlives its session.
    flush();
    std::lock_guard lock(db_mu_);
    Transaction t(db_.get(), "remove_session");
    {
      Using u(remove_executions_);
      remove_executions_.bind(1, owner).bind(2, id).run();
    }
    {
      Using u(remove_session_);
      remove_session_.bind(1, owner).bind(2, id).run();
    }
    t.commit();
  }

  std::vector<SessionRecord> sessions() override {
    std::lock_guard lock(db_mu_);
    Using u(sessions_);
    std::vector<SessionRecord> out;
    while (sessions_.step()) {
      auto& s = sessions_;
      out.push_back({.owner = s.text(0), .id = s.text(1), .language = s.text(2), .limits_json = s.text(3),
                     .created_ms = s.integer(4), .last_used_ms = s.integer(5), .placement = s.text(6),
                     .backend = s.text(7), .session_key = s.text(8), .handle_json = s.text(9), .state = s.text(10),
                     .lost_reason = s.text(11), .lost_at_ms = s.integer(12),
                     .next_wire = static_cast<std::uint32_t>(s.integer(13))});
    }
    return out;
  }

  void touch(const std::string& owner, const std::string& id, std::int64_t last_used_ms) override {
    enqueue(Touch{owner, id, last_used_ms}, {});
  }

  void put_execution(ExecutionRecord r, std::function<void()> on_committed) override {
    enqueue(std::move(r), std::move(on_committed));
  }

  std::vector<ExecutionRecord> executions(const std::string& owner, const std::string& id, std::size_t limit) override {
    std::lock_guard lock(db_mu_);
    Using u(executions_);
    executions_.bind(1, owner).bind(2, id).bind(3, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
    std::vector<ExecutionRecord> out;
    while (executions_.step())
      out.push_back({.owner = owner, .session = id, .id = executions_.text(0),
                     .wire = static_cast<std::uint32_t>(executions_.integer(1)), .result_json = executions_.text(2),
                     .finished_ms = executions_.integer(3)});
    std::reverse(out.begin(), out.end());  // oldest first
    return out;
  }

  void flush() override {
    // The writer's own callbacks may call in: what they wait for is their own turn.
    if (std::this_thread::get_id() == writer_.get_id()) return;
    std::unique_lock lock(queue_mu_);
    auto target = queued_;
    done_cv_.wait(lock, [&] { return written_ >= target; });
  }

  void put_record(const std::string& kind, const std::string& key, const std::string& json) override {
    std::lock_guard lock(db_mu_);
    Using u(put_record_);
    put_record_.bind(1, kind).bind(2, key).bind(3, json).run();
  }

  void remove_record(const std::string& kind, const std::string& key) override {
    std::lock_guard lock(db_mu_);
    Using u(remove_record_);
    remove_record_.bind(1, kind).bind(2, key).run();
  }

  std::vector<std::pair<std::string, std::string>> records(const std::string& kind) override {
    std::lock_guard lock(db_mu_);
    Using u(records_);
    records_.bind(1, kind);
    std::vector<std::pair<std::string, std::string>> out;
    while (records_.step()) out.emplace_back(records_.text(0), records_.text(1));
    return out;
  }

 private:
  struct Touch {
    std::string owner, id;
    std::int64_t last_used_ms;
  };
  struct Write {
    std::variant<Touch, ExecutionRecord> what;
    std::function<void()> on_committed;
  };

  void enqueue(std::variant<Touch, ExecutionRecord> what, std::function<void()> on_committed) {
    {
      std::lock_guard lock(queue_mu_);
      queue_.push_back({std::move(what), std::move(on_committed)});
      ++queued_;
    }
    queue_cv_.notify_one();
  }

  void apply(const Write& w) {
    if (auto* t = std::get_if<Touch>(&w.what)) {
      Using u(touch_);
      touch_.bind(1, t->owner).bind(2, t->id).bind(3, t->last_used_ms).run();
      return;
    }
    const auto& r = std::get<ExecutionRecord>(w.what);
    {
      Using u(put_execution_);
      put_execution_.bind(1, r.owner).bind(2, r.session).bind(3, r.id).bind(4, static_cast<std::int64_t>(r.wire))
          .bind(5, r.result_json).bind(6, r.finished_ms).run();
    }
    Using u(trim_executions_);
    trim_executions_.bind(1, r.owner).bind(2, r.session).bind(3, std::int64_t{kExecutionsPerSession}).run();
  }

  // Commits `batch` in one transaction; if that fails, each write alone, so one bad write
  // does not take the others down. Returns the callbacks of what was committed.
  std::vector<std::function<void()>> commit(std::vector<Write>& batch) {
    std::vector<std::function<void()>> done;
    std::lock_guard lock(db_mu_);
    try {
      Transaction t(db_.get(), "write-behind");
      for (const auto& w : batch) apply(w);
      t.commit();
      for (auto& w : batch)
        if (w.on_committed) done.push_back(std::move(w.on_committed));
      return done;
    } catch (const std::exception& e) {
      if (batch.size() == 1) {
        std::fprintf(stderr, "sandbox: session store: a write is lost: %s\n", e.what());
        return done;
      }
    }
    for (auto& w : batch) {
      try {
        Transaction t(db_.get(), "write-behind");
        apply(w);
        t.commit();
        if (w.on_committed) done.push_back(std::move(w.on_committed));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "sandbox: session store: a write is lost: %s\n", e.what());
      }
    }
    return done;
  }

  void write_behind() {
    std::unique_lock lock(queue_mu_);
    for (;;) {
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and drained
      std::vector<Write> batch(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
      lock.unlock();
      std::vector<std::function<void()>> done;
      try {
        done = commit(batch);
      } catch (const std::exception& e) {  // bad_alloc and the like: this turn is lost, not the thread
        std::fprintf(stderr, "sandbox: session store: writes are lost: %s\n", e.what());
      }
      // Outside every lock: a callback may call the store (or take the caller's locks).
      for (auto& f : done) {
        try {
          f();
        } catch (const std::exception& e) {
          std::fprintf(stderr, "sandbox: session store: a commit callback threw: %s\n", e.what());
        } catch (...) {
          std::fprintf(stderr, "sandbox: session store: a commit callback threw\n");
        }
      }
      lock.lock();
      written_ += batch.size();
      done_cv_.notify_all();
    }
  }

  Fd lock_;
  std::mutex db_mu_;  // the connection and its statements
  Db db_;
  Stmt put_session_, remove_session_, remove_executions_, sessions_, touch_, put_execution_, trim_executions_,
      executions_, put_record_, remove_record_, records_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_, done_cv_;
  std::deque<Write> queue_;
  std::uint64_t queued_ = 0, written_ = 0;  // writes queued / committed or given up, ever
  bool stopping_ = false;
  std::thread writer_;  // last: it starts when everything above exists
};

Db open_db(const std::filesystem::path& file) {
  // Created 0600 before SQLite sees it: its -wal and -shm files copy the mode.
  {
    Fd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) fail_sys("open", errno, file);
    if (::fchmod(fd.get(), 0600) != 0) fail_sys("fchmod", errno, file);
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) fail(raw, fmt::format("open {}", file.string()));
  sqlite3_extended_result_codes(raw, 1);
  // A reader of another process (sqlite3 on the command line) may hold it for a moment.
  sqlite3_busy_timeout(raw, 5000);
  // WAL: a crash loses no committed transaction and readers never block the writer;
  // NORMAL: no fsync per commit (a power cut may lose the last commits, a crash none).
  {
    Stmt wal(raw, "PRAGMA journal_mode=WAL", "journal_mode=WAL");
    if (!wal.step() || wal.text(0) != "wal") fail(raw, "journal_mode=WAL (refused)");
  }
  exec(raw, "PRAGMA synchronous=NORMAL", "synchronous=NORMAL");
  exec(raw, "PRAGMA foreign_keys=OFF", "foreign_keys");
  auto version = pragma_int(raw, "PRAGMA user_version", "user_version");
  if (version > kSchemaVersion)
    throw Error(errc::internal, fmt::format("session store: {} has schema {}, this version knows {} (a newer server wrote it)",
                                            file.string(), version, kSchemaVersion));
  if (version < kSchemaVersion) {
    Transaction t(raw, "schema");
    exec(raw, std::string(kSchema), "schema");
    exec(raw, fmt::format("PRAGMA user_version={}", kSchemaVersion), "schema (user_version)");
    t.commit();
  }
  return db;
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::filesystem::path& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) throw Error(errc::internal, fmt::format("session store: cannot create {}: {}", state_dir.string(), ec.message()));
  auto lock = take_lock(state_dir);
  auto db = open_db(state_dir / "sessions.db");
  return std::make_unique<SqliteStore>(std::move(lock), std::move(db));
}

}  // namespace sandbox::store
