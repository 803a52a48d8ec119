// The session store against a real state dir: round trips, the lock (in this process and
// another), the write-behind's ordering and callbacks, the per-session bound, and a writer
// SIGKILLed in the middle of its writes.
#include "store/store.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include <csignal>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace sandbox;
using namespace sandbox::store;
using namespace std::chrono_literals;

namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "store_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ / "state";  // open() creates it
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static SessionRecord session(const std::string& owner, const std::string& id) {
    SessionRecord r;
    r.owner = owner;
    r.id = id;
    r.language = "python";
    r.limits_json = R"({"memory_bytes":1048576})";
    r.created_ms = 1700000000000;
    r.last_used_ms = 1700000000500;
    r.session_key = "k-" + id;
    return r;
  }
  static ExecutionRecord execution(const std::string& owner, const std::string& sid, std::uint32_t wire) {
    return {.owner = owner, .session = sid, .id = fmt::format("e{}", wire), .wire = wire,
            .result_json = fmt::format(R"({{"stdout":"{}"}})", wire), .finished_ms = 1700000001000 + wire};
  }

  // PRAGMA integrity_check through a connection of its own.
  std::string integrity() const {
    sqlite3* db = nullptr;
    std::string out = "cannot open";
    if (sqlite3_open_v2((dir_ / "sessions.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 5000);
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      else
        out = sqlite3_errmsg(db);
      sqlite3_finalize(s);
    }
    sqlite3_close_v2(db);
    return out;
  }

  fs::path root_, dir_;
};

TEST_F(StoreTest, EverySessionFieldRoundTripsAcrossAReopen) {
  SessionRecord r;
  r.owner = "tenant-a";
  r.id = "s1";
  r.language = "javascript";
  r.limits_json = R"({"cpu":1.5,"memory_bytes":268435456,"note":"ünïcode ' \" \\"})";
  r.created_ms = 1700000000123;
  r.last_used_ms = 1700000004567;
  r.placement = "kubernetes";
  r.backend = "namespaces";
  r.session_key = "s4242-abc";
  r.handle_json = R"({"pid":4242,"start":987654321})";
  r.state = "lost";
  r.lost_reason = "the agent died with its server";
  r.lost_at_ms = 1700000009999;
  r.next_wire = 4000000000u;  // above INT32_MAX: stored unsigned
  ExecutionRecord e{.owner = "tenant-a", .session = "s1", .id = "exec-7", .wire = 7,
                    .result_json = std::string(100000, 'x') + "\n\0z", .finished_ms = 1700000005000};
  {
    auto st = Store::open(dir_);
    st->put_session(r);
    st->put_session(session("", "s2"));  // the empty owner (no tokens) is an owner too
    st->put_execution(e);
  }  // the destructor drains the queue
  auto st = Store::open(dir_);
  auto all = st->sessions();
  ASSERT_EQ(all.size(), 2u);
  auto it = std::find_if(all.begin(), all.end(), [](auto& s) { return s.id == "s1"; });
  ASSERT_NE(it, all.end());
  const auto& g = *it;
  EXPECT_EQ(g.owner, r.owner);
  EXPECT_EQ(g.language, r.language);
  EXPECT_EQ(g.limits_json, r.limits_json);
  EXPECT_EQ(g.created_ms, r.created_ms);
  EXPECT_EQ(g.last_used_ms, r.last_used_ms);
  EXPECT_EQ(g.placement, r.placement);
  EXPECT_EQ(g.backend, r.backend);
  EXPECT_EQ(g.session_key, r.session_key);
  EXPECT_EQ(g.handle_json, r.handle_json);
  EXPECT_EQ(g.state, r.state);
  EXPECT_EQ(g.lost_reason, r.lost_reason);
  EXPECT_EQ(g.lost_at_ms, r.lost_at_ms);
  EXPECT_EQ(g.next_wire, r.next_wire);
  auto ex = st->executions("tenant-a", "s1", 10);
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].owner, e.owner);
  EXPECT_EQ(ex[0].session, e.session);
  EXPECT_EQ(ex[0].id, e.id);
  EXPECT_EQ(ex[0].wire, e.wire);
  EXPECT_EQ(ex[0].result_json, e.result_json);
  EXPECT_EQ(ex[0].finished_ms, e.finished_ms);
  EXPECT_TRUE(st->executions("", "s1", 10).empty()) << "another owner's session of the same id";

  // put_session replaces.
  r.state = "live";
  r.next_wire = 9;
  st->put_session(r);
  all = st->sessions();
  ASSERT_EQ(all.size(), 2u);
  it = std::find_if(all.begin(), all.end(), [](auto& s) { return s.id == "s1"; });
  EXPECT_EQ(it->state, "live");
  EXPECT_EQ(it->next_wire, 9u);
}

TEST_F(StoreTest, FilesArePrivateAndTheLockNamesUs) {
  auto st = Store::open(dir_);
  struct stat sb{};
  ASSERT_EQ(::stat((dir_ / "sessions.db").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  std::ifstream lock(dir_ / "lock");
  pid_t pid = 0;
  lock >> pid;
  EXPECT_EQ(pid, ::getpid());
}

TEST_F(StoreTest, ASecondOpenIsRefusedWithTheHoldersPid) {
  auto st = Store::open(dir_);
  try {
    Store::open(dir_);
    FAIL() << "a second store on the same state dir";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::already_exists);
    EXPECT_NE(e.message().find(fmt::format("(pid {})", ::getpid())), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(dir_.string()), std::string::npos) << e.message();
  }
  // Another process: what a second server sees.
  pid_t parent = ::getpid();
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int rc = 3;
    try {
      Store::open(dir_);
      rc = 1;
    } catch (const Error& e) {
      rc = e.code_value() == errc::already_exists &&
                   e.message().find(fmt::format("(pid {})", parent)) != std::string::npos
               ? 0
               : 2;
    } catch (...) {
    }
    ::_exit(rc);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: it opened; 2: wrong code or pid; 3: another exception";
  // Released with the store.
  st.reset();
  EXPECT_NO_THROW(Store::open(dir_));
}

TEST_F(StoreTest, TheCommitCallbackRunsOnceTheRowIsReadable) {
  auto st = Store::open(dir_);
  st->put_session(session("o", "s"));
  std::promise<std::size_t> seen;
  std::thread::id caller = std::this_thread::get_id(), ran_on;
  st->put_execution(execution("o", "s", 1), [&] {
    ran_on = std::this_thread::get_id();
    seen.set_value(st->executions("o", "s", 10).size());
  });
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), 1u);
  EXPECT_NE(ran_on, caller) << "on the store's thread";

  // Readable by another connection too: it is committed, not only in our cache.
  std::promise<std::string> other;
  st->put_execution(execution("o", "s", 2), [&] {
    sqlite3* db = nullptr;
    std::string n = "?";
    if (sqlite3_open_v2((dir_ / "sessions.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT count(*) FROM executions", -1, &s, nullptr) == SQLITE_OK &&
          sqlite3_step(s) == SQLITE_ROW)
        n = std::to_string(sqlite3_column_int(s, 0));
      sqlite3_finalize(s);
    }
    sqlite3_close_v2(db);
    other.set_value(n);
  });
  auto g = other.get_future();
  ASSERT_EQ(g.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(g.get(), "2");
}

TEST_F(StoreTest, ACallbackThatThrowsDoesNotStopTheWriter) {
  auto st = Store::open(dir_);
  st->put_execution(execution("o", "s", 1), [] { throw std::runtime_error("a caller's bug"); });
  std::atomic<bool> ran{false};
  st->put_execution(execution("o", "s", 2), [&] { ran = true; });
  st->flush();
  EXPECT_TRUE(ran);
  EXPECT_EQ(st->executions("o", "s", 10).size(), 2u);
}

TEST_F(StoreTest, ExecutionsAreTheNewestOldestFirstAndBounded) {
  auto st = Store::open(dir_);
  // Out of order, as concurrent executions may finish.
  for (std::uint32_t w = 300; w >= 151; --w) st->put_execution(execution("o", "s", w));
  for (std::uint32_t w = 1; w <= 150; ++w) st->put_execution(execution("o", "s", w));
  for (std::uint32_t w = 1; w <= 5; ++w) st->put_execution(execution("o", "other", w));
  st->flush();
  auto last = st->executions("o", "s", 10);
  ASSERT_EQ(last.size(), 10u);
  for (std::size_t i = 0; i < last.size(); ++i) {
    EXPECT_EQ(last[i].wire, 291 + i);
    EXPECT_EQ(last[i].id, fmt::format("e{}", 291 + i));
  }
  auto all = st->executions("o", "s", 100000);
  ASSERT_EQ(all.size(), 64u) << "the oldest beyond 64 are deleted";
  EXPECT_EQ(all.front().wire, 300u - 63u);
  EXPECT_EQ(all.back().wire, 300u);
  EXPECT_EQ(st->executions("o", "other", 100).size(), 5u) << "another session keeps its own";
  EXPECT_TRUE(st->executions("o", "nobody", 100).empty());
  // The same id again replaces its row.
  auto e = execution("o", "other", 3);
  e.result_json = "{}";
  st->put_execution(e);
  st->flush();
  auto other = st->executions("o", "other", 100);
  ASSERT_EQ(other.size(), 5u);
  EXPECT_EQ(other[2].result_json, "{}");
}

TEST_F(StoreTest, RemoveSessionRemovesItsExecutionsEvenQueuedOnes) {
  auto st = Store::open(dir_);
  st->put_session(session("o", "a"));
  st->put_session(session("o", "b"));
  for (std::uint32_t w = 1; w <= 20; ++w) {
    st->put_execution(execution("o", "a", w));
    st->put_execution(execution("o", "b", w));
  }
  st->remove_session("o", "a");  // no flush: what is queued for it goes too
  auto all = st->sessions();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, "b");
  EXPECT_TRUE(st->executions("o", "a", 100).empty());
  EXPECT_EQ(st->executions("o", "b", 100).size(), 20u);
  EXPECT_NO_THROW(st->remove_session("o", "never")) << "removing the unknown is no error";
}

TEST_F(StoreTest, TouchMovesLastUsedForwardOnly) {
  auto st = Store::open(dir_);
  st->put_session(session("o", "s"));  // last used ...500
  st->touch("o", "s", 1700000009000);
  st->touch("o", "s", 1700000008000);  // an older one, queued later
  st->touch("o", "nobody", 1);
  st->flush();
  auto all = st->sessions();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].last_used_ms, 1700000009000);
}

TEST_F(StoreTest, RecordsAreKeyedByKind) {
  {
    auto st = Store::open(dir_);
    st->put_record("cloud", "b", R"({"id":"b"})");
    st->put_record("cloud", "a", R"({"id":"a"})");
    st->put_record("other", "a", "1");
    st->put_record("cloud", "a", R"({"id":"a","v":2})");  // replaces
  }
  auto st = Store::open(dir_);
  auto cloud = st->records("cloud");
  ASSERT_EQ(cloud.size(), 2u);
  EXPECT_EQ(cloud[0], (std::pair<std::string, std::string>{"a", R"({"id":"a","v":2})"}));
  EXPECT_EQ(cloud[1], (std::pair<std::string, std::string>{"b", R"({"id":"b"})"}));
  st->remove_record("cloud", "a");
  st->remove_record("cloud", "missing");
  cloud = st->records("cloud");
  ASSERT_EQ(cloud.size(), 1u);
  EXPECT_EQ(cloud[0].first, "b");
  EXPECT_EQ(st->records("other").size(), 1u);
  EXPECT_TRUE(st->records("none").empty());
}

TEST_F(StoreTest, ADatabaseOfANewerSchemaIsRefused) {
  Store::open(dir_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "sessions.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    Store::open(dir_);
    FAIL() << "opened a schema it does not know";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::internal);
    EXPECT_NE(e.message().find("schema 99"), std::string::npos) << e.message();
  }
}

TEST_F(StoreTest, AGarbageDatabaseIsAnErrorNotACrash) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "sessions.db") << std::string(8192, 'g');
  try {
    Store::open(dir_);
    FAIL() << "opened garbage";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::internal);
    EXPECT_NE(e.message().find("session store"), std::string::npos) << e.message();
  }
}

// A server SIGKILLed while it writes: everything committed before is there, the database is
// sound, and the lock is free again.
TEST_F(StoreTest, SurvivesAWriterSigkilledMidWrite) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto st = Store::open(dir_);
    auto report = [fd = fds[1]](char kind, std::uint32_t n) {
      char buf[5] = {kind};
      std::memcpy(buf + 1, &n, 4);
      if (::write(fd, buf, sizeof buf) != sizeof buf) ::_exit(9);
    };
    // Write-behind executions, committed (and reported) while the sessions go in.
    std::atomic<std::uint32_t> acked{0};
    std::thread execs([&] {
      for (std::uint32_t w = 1; w <= 100000; ++w)
        st->put_execution(execution("o", "s0", w), [&report, &acked, w] {
          report('e', w);
          acked = w;
        });
    });
    for (std::uint32_t i = 0; i < 100; ++i) {
      // Halfway, once the write-behind is committing too, so that the kill hits both.
      for (int n = 0; i == 50 && acked.load() == 0 && n < 1000; ++n) std::this_thread::sleep_for(10ms);
      auto r = session("o", fmt::format("s{}", i));
      r.handle_json = std::string(4000, 'h');  // a few pages per commit
      st->put_session(r);
      report('s', i);
    }
    ::kill(::getpid(), SIGKILL);  // the executions are still being written
    ::_exit(8);
  }
  ::close(fds[1]);
  std::set<std::uint32_t> sessions, execs;
  char buf[5];
  while (::read(fds[0], buf, sizeof buf) == sizeof buf) {
    std::uint32_t n;
    std::memcpy(&n, buf + 1, 4);
    (buf[0] == 's' ? sessions : execs).insert(n);
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  ASSERT_EQ(sessions.size(), 100u);
  std::printf("committed before the kill: %zu sessions, %zu executions reported\n", sessions.size(), execs.size());

  auto st = Store::open(dir_);  // the dead writer's lock is free
  EXPECT_EQ(integrity(), "ok");
  std::set<std::string> ids;
  for (auto& r : st->sessions()) ids.insert(r.id);
  for (auto i : sessions) EXPECT_TRUE(ids.contains(fmt::format("s{}", i))) << "session s" << i << " was committed";
  // Of the executions, the newest 64 committed are kept (some committed ones may not have
  // been reported yet): at least up to the newest reported one, and no gap.
  auto kept = st->executions("o", "s0", 1000);
  if (!execs.empty()) {
    auto newest = *execs.rbegin();
    ASSERT_FALSE(kept.empty());
    EXPECT_GE(kept.back().wire, newest);
    EXPECT_EQ(kept.size(), std::min<std::size_t>(64, kept.back().wire));
    for (std::size_t i = 1; i < kept.size(); ++i) EXPECT_EQ(kept[i].wire, kept[i - 1].wire + 1);
  }
  // It goes on working.
  st->put_session(session("o", "after"));
  EXPECT_EQ(st->sessions().size(), 101u);
}

}  // namespace
