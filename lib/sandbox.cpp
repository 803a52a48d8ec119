#include "sandbox/sandbox.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <atomic>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lost_session.hpp"
#include "placed_session.hpp"
#include "session_impl.hpp"
#include "store/store.hpp"

namespace sandbox {

namespace asio = boost::asio;

struct Sandbox::Impl : std::enable_shared_from_this<Impl> {
  Options options;
  std::unique_ptr<isolation::Backend> backend;
  std::filesystem::path state_dir;
  bool owns_state_dir = false;
  // A real state dir's record of sessions (and its lock: one Sandbox per state dir).
  // Sessions are durable when the backend can leave them running and the options allow.
  std::unique_ptr<store::Store> store;
  bool durable = false;

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread io_thread;
  asio::thread_pool teardown{1};  // dead agents are torn down here, off the I/O thread
  // The watchdog: the I/O loop stamps this every 250 ms; responsive() reads its age.
  asio::steady_timer heartbeat{io};
  std::atomic<std::int64_t> last_beat_ns{std::chrono::steady_clock::now().time_since_epoch().count()};
  void beat();

  mutable std::mutex mutex;
  // By (owner, id): each tenant names its sessions in its own namespace. A null entry
  // reserves an id while its session starts.
  using Key = std::pair<std::string, std::string>;
  std::map<Key, std::shared_ptr<Session>> sessions;
  // Per owner: sessions (reservations included; the warm pool is nobody's until taken) and
  // executions from submit to end.
  using Counts = std::map<std::string, std::size_t, std::less<>>;
  Counts sessions_of, executions_of;
  // One less for `owner` (locked); an owner at zero leaves the map.
  static void release(Counts& counts, std::string_view owner) {
    auto it = counts.find(owner);
    if (it != counts.end() && --it->second == 0) counts.erase(it);
  }
  Stats stats;

  // The warm pool: sessions launched ahead of demand with the default limits.
  std::deque<std::shared_ptr<SessionImpl>> pool;
  std::condition_variable pool_cv;
  std::thread pool_thread;
  bool stopping = false;

  // Placement (Options::placement not local): the record of where placed sessions live.
  std::shared_ptr<placement::Gateway> gateway;
  // A placed session for `opts`, or null when it runs here (the policy says so, or the id
  // is another tenant's placed session: this owner's is made here, and learns nothing).
  std::shared_ptr<Session> place(const SessionOptions& opts, const Limits& limits);
  std::shared_ptr<PlacedSession> adopt(const placement::Location& loc, std::string reason = {});

  // The reaper (Options::idle_timeout, lifetime).
  std::condition_variable reaper_cv;
  std::thread reaper_thread;
  void reap();
  std::shared_ptr<Session> take(const Key& key);  // removes it from the record (locked by caller)

  std::shared_ptr<SessionImpl> make_session(std::string id, std::string owner, Limits limits,
                                            Language warm);
  SessionContext context();
  isolation::LaunchSpec spec_for(const std::string& session_key, const Limits& limits) const;
  // What the store holds from an earlier server: every local session adopted, or lost.
  void adopt_stored();
  std::shared_ptr<Session> adopt_one(store::SessionRecord rec);
  void fill_pool();
  // One execution counted against its owner's quota, until the session lets go of it.
  struct Admission {
    std::weak_ptr<Impl> sandbox;
    std::string owner;
    ~Admission() {
      auto im = sandbox.lock();
      if (!im) return;
      std::lock_guard lock(im->mutex);
      release(im->executions_of, owner);
    }
  };
  std::shared_ptr<void> admit_execution(const std::string& owner);
  void forget(const Key& key);  // drops an entry (locked) and its owner's count
};

std::shared_ptr<void> Sandbox::Impl::admit_execution(const std::string& owner) {
  const std::size_t quota = options.max_executions_per_tenant;
  if (quota == 0) return nullptr;
  std::lock_guard lock(mutex);
  std::size_t& n = executions_of[owner];
  if (n >= quota) {
    if (n == 0) executions_of.erase(owner);
    throw QuotaExceeded("executions_per_tenant",
                        "tenant quota: " + std::to_string(quota) + " concurrent executions per tenant");
  }
  ++n;
  auto a = std::make_shared<Admission>();
  a->sandbox = weak_from_this();
  a->owner = owner;
  return a;
}

void Sandbox::Impl::forget(const Key& key) {
  if (sessions.erase(key) == 0) return;
  release(sessions_of, key.first);
}

namespace {

std::uint64_t read_u64(const char* file, std::string_view key = {}) {
  std::ifstream in(file);
  std::string word;
  std::uint64_t v = 0;
  if (key.empty()) return in >> v ? v : 0;
  while (in >> word)
    if (word == key) return in >> v ? v : 0;
  return 0;
}

std::string generated_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "s-";
  for (int i = 0; i < 16; ++i) id += alphabet[rng() % 36];
  return id;
}

// Sandboxed code may leave directories without write permission; removal must still work.
void remove_tree(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove_all(p, ec);
  if (!ec) return;
  for (auto it = std::filesystem::recursive_directory_iterator(
           p, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  }
  std::filesystem::remove_all(p, ec);
}

}  // namespace

std::shared_ptr<Session> Sandbox::Impl::place(const SessionOptions& opts, const Limits& limits) {
  placement::Decision d = gateway->place(limits);
  if (d.target == placement::Target::local) return nullptr;
  // Placed sessions share one namespace of ids (pods are named from them, and any gateway
  // finds a pod by its name): another tenant's id is left alone.
  auto mine = [&opts](const placement::Location& l) { return l.owner.value_or("") == opts.owner; };
  if (auto l = gateway->find(opts.id)) {
    if (!mine(*l)) return nullptr;
    throw Error(errc::already_exists, "session " + opts.id + " exists");
  }
  nlohmann::json body = {{"id", opts.id}, {"language", std::string(to_string(opts.language))}};
  if (opts.limits) body["limits"] = nlohmann::json::parse(limits_json(limits));
  try {
    auto loc = gateway->create(opts.id, d.target, limits, std::move(body), opts.owner);
    return std::make_shared<PlacedSession>(gateway, std::move(loc), opts.owner, limits, d.reason,
                                           options.placement.ready_timeout);
  } catch (const Error& e) {
    if (e.code_value() != errc::already_exists) throw;
    auto l = gateway->find(opts.id);  // another tenant (or another gateway) placed it meanwhile
    if (l && !mine(*l)) return nullptr;
    throw;
  }
}

std::shared_ptr<PlacedSession> Sandbox::Impl::adopt(const placement::Location& loc, std::string reason) {
  // A session another gateway placed for a tenant this one cannot know is nobody's when
  // tenants are named (no token is named ""), everybody's when they are not.
  std::string owner = loc.owner.value_or("");
  auto s = std::make_shared<PlacedSession>(gateway, loc, owner, options.limits, std::move(reason),
                                           options.placement.ready_timeout);
  std::lock_guard lock(mutex);
  auto [it, added] = sessions.try_emplace(Key{owner, loc.id}, s);
  if (added) {
    ++sessions_of[owner];
    return s;
  }
  return std::dynamic_pointer_cast<PlacedSession>(it->second);
}

std::shared_ptr<Session> Sandbox::Impl::take(const Key& key) {
  auto it = sessions.find(key);
  if (it == sessions.end() || !it->second) return nullptr;
  auto s = std::move(it->second);
  forget(key);
  ++stats.sessions_closed;
  return s;
}

void Sandbox::Impl::reap() {
  using namespace std::chrono_literals;
  const std::chrono::milliseconds idle = options.idle_timeout, life = options.lifetime;
  const std::chrono::milliseconds shortest = idle.count() > 0 && (life.count() <= 0 || idle < life) ? idle : life;
  // Often enough that a session goes soon after its time, seldom enough to cost nothing.
  const auto period = shortest.count() > 0 ? std::clamp<std::chrono::milliseconds>(shortest / 4, 100ms, 2000ms)
                                            : std::chrono::milliseconds(2000);  // lost sessions' retention only
  std::unique_lock lock(mutex);
  while (!stopping) {
    reaper_cv.wait_for(lock, period, [&] { return stopping; });
    if (stopping) break;
    std::vector<std::pair<Key, std::shared_ptr<Session>>> all;
    for (auto& [k, s] : sessions)
      if (s) all.emplace_back(k, s);
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    const auto wall = std::chrono::system_clock::now();
    for (auto& [key, s] : all) {
      bool too_old = false, unused = false;
      try {  // a placed session asks its cluster or cloud, which may be unreachable now
        const SessionStatus st = s->status();
        if (st == SessionStatus::closed) continue;
        if (st == SessionStatus::lost) {
          // A lost session's workspace is kept for its retention time, then deleted.
          auto* l = dynamic_cast<LostSession*>(s.get());
          if (!l || wall - l->lost_at() <= options.lost_retention) continue;
          too_old = true;
        }
        too_old = too_old || (life.count() > 0 && wall - s->created() > life);
        // A pod still starting is not idle: idleness counts from Ready. A local session's
        // last use is now while any of its executions runs (SessionImpl::last_used).
        unused = idle.count() > 0 && st != SessionStatus::pending && now - s->last_used() > idle;
        if (unused && !too_old && !std::dynamic_pointer_cast<SessionImpl>(s)) {
          auto latest = s->latest();  // a placed session's: its executions run elsewhere
          if (latest && !latest->done()) unused = false;  // still running: in use
        }
      } catch (const std::exception&) {
        continue;  // judged at the next sweep
      }
      if (!too_old && !unused) continue;
      {
        std::lock_guard hold(mutex);
        auto it = sessions.find(key);
        if (it == sessions.end() || it->second != s) continue;  // closed by its owner meanwhile
        take(key);
      }
      try {
        // What its lifetime ends is reported as such, not as cancelled.
        if (auto local = std::dynamic_pointer_cast<SessionImpl>(s); local && too_old)
          local->close(Termination::lifetime,
                       "the session reached its lifetime (" + std::to_string(life.count()) + " ms) and was closed");
        else
          s->close();
      } catch (const std::exception& e) {
        // A placed session's cluster or cloud is unreachable now: kept for the next sweep.
        std::fprintf(stderr, "sandbox: cannot close expired session %s: %s\n", key.second.c_str(), e.what());
        std::lock_guard hold(mutex);
        if (sessions.try_emplace(key, s).second) ++sessions_of[key.first];
      }
    }
    lock.lock();
  }
}

SessionsCeiling default_sessions_ceiling() {
  SessionsCeiling c;
  const std::uint64_t total = read_u64("/proc/meminfo", "MemTotal:") * 1024;
  if (total > 0) {
    // Room for the host itself: a fifth of memory, or a GiB on a large host; a small host
    // keeps half for sessions rather than nothing.
    const std::uint64_t gib = 1ull << 30;
    std::uint64_t m = std::min<std::uint64_t>(total / 5 * 4, total > gib ? total - gib : 0);
    c.memory_bytes = std::max(m, total / 2);
  }
  std::uint64_t pids = read_u64("/proc/sys/kernel/pid_max");
  if (std::uint64_t threads = read_u64("/proc/sys/kernel/threads-max"); threads && (!pids || threads < pids))
    pids = threads;
  c.processes = static_cast<std::uint32_t>(std::min<std::uint64_t>(pids / 4 * 3, UINT32_MAX));
  return c;
}

std::shared_ptr<SessionImpl> Sandbox::Impl::make_session(std::string id, std::string owner,
                                                        Limits limits, Language warm) {
  // Process-wide, so that two Sandboxes sharing a state dir never share a session dir.
  static std::atomic<std::uint64_t> serials{0};
  // Directories, cgroups and containers are named by serial, not by the client's id, so that
  // a pooled session can take any id and names never collide across servers (nor with a
  // kept session of an earlier server that had this pid).
  std::string key;
  do {
    key = "s" + std::to_string(::getpid()) + "-" + std::to_string(serials++);
  } while (std::filesystem::exists(state_dir / "sessions" / key));
  isolation::LaunchSpec spec = spec_for(key, limits);
  std::filesystem::create_directories(spec.workspace);
  ::chmod(spec.session_dir.c_str(), 0711);
  auto s = std::make_shared<SessionImpl>(context(), std::move(id), std::move(owner), limits, spec);
  try {
    s->launch(warm);
  } catch (...) {
    s->close();
    remove_tree(spec.session_dir);
    throw;
  }
  return s;
}

isolation::LaunchSpec Sandbox::Impl::spec_for(const std::string& session_key, const Limits& limits) const {
  isolation::LaunchSpec spec;
  spec.session_id = session_key;
  spec.session_dir = state_dir / "sessions" / session_key;
  spec.workspace = spec.session_dir / "workspace";
  spec.runtime_dir = options.runtime_dir;
  spec.interpreters = options.interpreters;
  spec.limits = limits;
  spec.preload = options.preload;
  // Where an agent of an earlier server listens, whether or not this one launches durable ones.
  if (store) spec.control_socket = spec.session_dir / "control" / "agent.sock";
  if (durable) {
    spec.durable = true;
    using std::chrono::minutes;
    spec.orphan_timeout = options.orphan_timeout.count() > 0 ? std::chrono::milliseconds(options.orphan_timeout)
                          : options.idle_timeout.count() > 0 ? std::chrono::milliseconds(options.idle_timeout)
                                                             : std::chrono::milliseconds(minutes(15));
    if (options.lifetime.count() > 0)
      spec.lifetime_deadline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      (std::chrono::system_clock::now() + options.lifetime).time_since_epoch())
                                      .count();
  }
  return spec;
}

SessionContext Sandbox::Impl::context() {
  auto weak = weak_from_this();
  SessionContext ctx{io, *backend, [weak](const Result& r) {
                       if (auto self = weak.lock()) {
                         std::lock_guard lock(self->mutex);
                         ++self->stats.executions_by_status[std::string(to_string(r.status))];
                       }
                     }};
  ctx.teardown = &teardown;
  ctx.admit_execution = [weak](const std::string& tenant) -> std::shared_ptr<void> {
    auto self = weak.lock();
    return self ? self->admit_execution(tenant) : nullptr;
  };
  ctx.store = store.get();
  return ctx;
}

namespace {
// What make_session names a session's directory ("s<pid>-<n>"): a record naming anything else
// (a corrupt or forged row) must not lead a delete or a mount outside the state dir.
bool is_session_key(std::string_view key) {
  auto dash = key.find('-');
  if (key.size() < 4 || key[0] != 's' || dash == std::string_view::npos || dash < 2 || dash + 1 == key.size())
    return false;
  for (std::size_t i = 1; i < key.size(); ++i)
    if (i != dash && (key[i] < '0' || key[i] > '9')) return false;
  return true;
}
}  // namespace

std::shared_ptr<Session> Sandbox::Impl::adopt_one(store::SessionRecord rec) {
  if (!is_session_key(rec.session_key))
    throw Error(errc::internal, "its record names no valid session directory (" + rec.session_key.substr(0, 40) + ")");
  Limits limits = options.limits;
  try {
    limits = parse_limits(rec.limits_json, Limits{});
  } catch (const Error&) {
    // A record from a build with other limits: the defaults rather than nothing.
  }
  isolation::LaunchSpec spec = spec_for(rec.session_key, limits);
  if (rec.state != "lost") {
    try {
      if (rec.backend != backend->name())
        throw Error(errc::unavailable, "it ran under the " + rec.backend + " backend, this server uses " +
                                           std::string(backend->name()));
      auto s = std::make_shared<SessionImpl>(context(), rec.id, rec.owner, limits, spec);
      std::vector<Result> history;
      for (auto& e : store->executions(rec.owner, rec.id, 64)) {
        try {
          history.push_back(parse_result(e.result_json));
        } catch (const std::exception&) {
          // A result this build cannot read is left out, not the session.
        }
      }
      s->attach(rec, std::move(history));
      return s;
    } catch (const std::exception& e) {
      rec.state = "lost";
      rec.lost_reason = e.what();
      rec.lost_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      std::fprintf(stderr, "sandbox: session %s could not be adopted: %s\n", rec.id.c_str(), e.what());
      try {
        if (rec.backend == backend->name()) backend->reap_lost(spec, rec.handle_json);
      } catch (const std::exception& r) {
        std::fprintf(stderr, "sandbox: cannot end what session %s left: %s\n", rec.id.c_str(), r.what());
      }
      store->put_session(rec);
    }
  }
  return std::make_shared<LostSession>(std::move(rec), limits, std::move(spec), *backend, store.get());
}

void Sandbox::Impl::adopt_stored() {
  for (auto& rec : store->sessions()) {
    if (rec.placement != "local") continue;  // placed sessions: the gateway's record
    Key key{rec.owner, rec.id};
    std::shared_ptr<Session> s;
    try {
      s = adopt_one(std::move(rec));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandbox: cannot restore session %s: %s\n", key.second.c_str(), e.what());
      continue;
    }
    std::lock_guard lock(mutex);
    if (sessions.try_emplace(key, std::move(s)).second) ++sessions_of[key.first];
  }
}

void Sandbox::Impl::beat() {
  last_beat_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  heartbeat.expires_after(std::chrono::milliseconds(250));
  heartbeat.async_wait([this](boost::system::error_code ec) {
    if (!ec) beat();
  });
}

void Sandbox::Impl::fill_pool() {
  std::unique_lock lock(mutex);
  while (!stopping) {
    pool_cv.wait(lock, [&] { return stopping || pool.size() < options.warm_pool; });
    if (stopping) break;
    // Refilling is background work: let the request that just took a session finish first
    // (a launch clones the server, briefly holding its address space against page faults).
    if (!pool.empty()) pool_cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return stopping; });
    if (stopping) break;
    lock.unlock();
    std::shared_ptr<SessionImpl> s;
    try {
      s = make_session("pool", "", options.limits, Language::python);
    } catch (const std::exception&) {
      // The backend cannot start sessions now; do not spin.
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    lock.lock();
    if (s) pool.push_back(std::move(s));
  }
}

Sandbox::Sandbox(Options options) : impl_(std::make_shared<Impl>()) {
  auto& im = *impl_;
  im.options = std::move(options);
  im.options.limits.validate();
  im.options.runtime_dir = find_runtime_dir(im.options.runtime_dir);
  if (im.options.state_dir.empty()) {
    char tmpl[] = "/tmp/libsandbox-XXXXXX";
    if (!::mkdtemp(tmpl)) throw_syscall("mkdtemp", errno, tmpl);
    im.state_dir = tmpl;
    im.owns_state_dir = true;
  } else {
    im.state_dir = std::filesystem::absolute(im.options.state_dir);
    std::filesystem::create_directories(im.state_dir);
  }
  // Sessions' code may run as another uid: it must traverse (not list) the state dir.
  ::chmod(im.state_dir.c_str(), 0711);
  // First the lock: nothing below may touch a state dir another server is using.
  if (!im.owns_state_dir) im.store = store::Store::open(im.state_dir);
  std::filesystem::create_directories(im.state_dir / "sessions");
  ::chmod((im.state_dir / "sessions").c_str(), 0711);
  im.backend = isolation::make_backend(im.options.isolation);
  im.durable = im.store && im.backend->durable() && !im.options.close_sessions_on_exit;
  // What the store names stays (adopted, or kept as lost); every other leftover goes.
  std::vector<store::SessionRecord> stored = im.store ? im.store->sessions() : std::vector<store::SessionRecord>{};
  std::set<std::string> keep;
  for (const auto& r : stored)
    if (r.placement == "local" && !r.session_key.empty()) keep.insert(r.session_key);
  im.backend->recover(im.state_dir, keep);
  const SessionsCeiling host = default_sessions_ceiling();
  if (im.options.sessions_memory_bytes == 0) im.options.sessions_memory_bytes = host.memory_bytes;
  if (im.options.sessions_processes == 0) im.options.sessions_processes = host.processes;
  im.backend->bound_sessions(im.options.sessions_memory_bytes, im.options.sessions_processes);
  // Session dirs the store does not name are leftovers (the lock says no other server
  // uses this state dir).
  if (!im.owns_state_dir) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(im.state_dir / "sessions", ec))
      if (!keep.count(e.path().filename().string())) remove_tree(e.path());
  }
  if (im.options.placement.mode != placement::Mode::local) {
    // Cloud sessions are recorded beside the local ones; pods are their own record.
    placement::GatewayOptions go{im.options.placement, im.store.get(), im.owns_state_dir ? std::filesystem::path{} : im.state_dir / "placement"};
    im.gateway = std::make_shared<placement::Gateway>(std::move(go));
    im.gateway->rebuild();  // after a restart: every session placed before, by any gateway
    for (const auto& loc : im.gateway->list()) im.adopt(loc);
  }
  im.beat();
  im.io_thread = std::thread([this] { impl_->io.run(); });
  try {
    if (im.store) im.adopt_stored();  // agents answer on the I/O thread
    bool any_lost = false;
    for (const auto& [k, s] : im.sessions) any_lost = any_lost || (s && s->status() == SessionStatus::lost);
    if (im.options.warm_pool > 0) im.pool_thread = std::thread([this] { impl_->fill_pool(); });
    if (im.options.idle_timeout.count() > 0 || im.options.lifetime.count() > 0 || any_lost)
      im.reaper_thread = std::thread([&im] { im.reap(); });
  } catch (...) {
    // No half-built Sandbox: what runs stops (a joinable thread would end the process), and
    // adopted sessions are let go as they are, for the next try.
    {
      std::lock_guard lock(im.mutex);
      im.stopping = true;
    }
    im.pool_cv.notify_all();
    im.reaper_cv.notify_all();
    if (im.pool_thread.joinable()) im.pool_thread.join();
    if (im.reaper_thread.joinable()) im.reaper_thread.join();
    for (auto& [k, s] : im.sessions)
      if (auto local = std::dynamic_pointer_cast<SessionImpl>(s)) local->release();
    im.sessions.clear();
    im.teardown.join();
    im.work.reset();
    im.io.stop();
    im.io_thread.join();
    throw;
  }
}

Sandbox::~Sandbox() {
  auto& im = *impl_;
  {
    std::lock_guard lock(im.mutex);
    im.stopping = true;
  }
  im.pool_cv.notify_all();
  im.reaper_cv.notify_all();
  if (im.pool_thread.joinable()) im.pool_thread.join();
  if (im.reaper_thread.joinable()) im.reaper_thread.join();
  std::vector<std::shared_ptr<Session>> all;
  std::vector<std::shared_ptr<SessionImpl>> released;
  {
    std::lock_guard lock(im.mutex);
    // Placed sessions outlive this process (their pods and the cloud's sessions): a
    // restarted Sandbox with the same placement finds them again.
    for (auto& [id, s] : im.sessions) {
      if (!s || std::dynamic_pointer_cast<PlacedSession>(s)) continue;
      // A lost session keeps its workspace until it is deleted or its retention passes.
      if (std::dynamic_pointer_cast<LostSession>(s)) continue;
      if (im.durable) {
        if (auto local = std::dynamic_pointer_cast<SessionImpl>(s)) {
          released.push_back(std::move(local));
          continue;
        }
      }
      all.push_back(s);
    }
    for (auto& s : im.pool) all.push_back(s);  // nobody's yet: nothing to keep
    im.sessions.clear();
    im.pool.clear();
  }
  // Durable sessions live on: their agents keep running for the next Sandbox on this dir.
  for (auto& s : released) s->release();
  released.clear();
  for (auto& s : all) s->close();
  all.clear();
  im.teardown.join();
  if (im.store) im.store->flush();  // the last results, and their ACKs, before the lock goes
  im.work.reset();
  im.io.stop();  // the heartbeat's timer is not touched from here: it belongs to the I/O thread
  if (im.io_thread.joinable()) im.io_thread.join();
  if (im.owns_state_dir) remove_tree(im.state_dir);
}

std::shared_ptr<Session> Sandbox::create_session(SessionOptions opts) {
  auto& im = *impl_;
  if (opts.id.empty()) {
    opts.id = generated_id();
  } else {
    validate_session_id(opts.id);
  }
  Limits limits = opts.limits.value_or(im.options.limits);
  limits.validate();
  const Impl::Key key{opts.owner, opts.id};
  std::shared_ptr<SessionImpl> pooled;
  {
    std::lock_guard lock(im.mutex);
    if (im.stopping) throw Error(errc::unavailable, "the sandbox is shutting down");
    if (im.sessions.count(key)) throw Error(errc::already_exists, "session " + opts.id + " exists");
    const std::size_t per_tenant = im.options.max_sessions_per_tenant;
    if (auto it = im.sessions_of.find(opts.owner);
        per_tenant > 0 && it != im.sessions_of.end() && it->second >= per_tenant)
      throw QuotaExceeded("sessions_per_tenant",
                          "tenant quota: " + std::to_string(per_tenant) + " sessions per tenant");
    if (im.sessions.size() >= im.options.max_sessions)
      throw QuotaExceeded("sessions", "server quota: " + std::to_string(im.options.max_sessions) + " sessions");
    im.sessions.emplace(key, nullptr);
    ++im.sessions_of[opts.owner];
  }
  if (im.gateway) {
    std::shared_ptr<Session> placed;
    try {
      placed = im.place(opts, limits);
    } catch (...) {
      std::lock_guard lock(im.mutex);
      im.forget(key);
      throw;
    }
    if (placed) {
      std::lock_guard lock(im.mutex);
      im.sessions[key] = placed;
      ++im.stats.sessions_created;
      return placed;
    }
  }
  {
    std::lock_guard lock(im.mutex);
    if (!opts.limits && !im.pool.empty() && opts.language == Language::python) {
      pooled = std::move(im.pool.front());
      im.pool.pop_front();
    }
  }
  im.pool_cv.notify_all();
  std::shared_ptr<SessionImpl> s;
  try {
    if (pooled) {
      pooled->adopt(opts.id, opts.owner);
      s = std::move(pooled);
    } else {
      s = im.make_session(opts.id, opts.owner, limits, opts.language);
    }
  } catch (...) {
    std::lock_guard lock(im.mutex);
    im.forget(key);
    throw;
  }
  try {
    s->save();  // the store's record, before anyone learns of the session
  } catch (...) {
    s->close();
    std::lock_guard lock(im.mutex);
    im.forget(key);
    throw;
  }
  std::lock_guard lock(im.mutex);
  im.sessions[key] = s;
  ++im.stats.sessions_created;
  return s;
}

std::shared_ptr<Session> Sandbox::find(std::string_view id, std::string_view owner) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->sessions.find(Impl::Key{owner, id});
  return it == impl_->sessions.end() ? nullptr : it->second;
}

std::shared_ptr<Session> Sandbox::session(std::string_view id, std::string_view owner) const {
  auto s = find(id, owner);
  if (!s) throw Error(errc::not_found, "no session " + std::string(id));
  return s;
}

std::vector<std::shared_ptr<Session>> Sandbox::sessions() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::shared_ptr<Session>> out;
  for (auto& [id, s] : impl_->sessions) {
    if (s) out.push_back(s);
  }
  return out;
}

void Sandbox::close_session(std::string_view id, std::string_view owner) {
  auto& im = *impl_;
  const Impl::Key key{owner, id};
  std::shared_ptr<Session> s;
  {
    std::lock_guard lock(im.mutex);
    s = im.take(key);
  }
  if (!s) throw Error(errc::not_found, "no session " + std::string(id));
  try {
    s->close();
  } catch (...) {
    // A placed session whose cluster cannot be reached now stays on record.
    std::lock_guard lock(im.mutex);
    if (std::dynamic_pointer_cast<PlacedSession>(s) && im.sessions.try_emplace(key, s).second) ++im.sessions_of[key.first];
    throw;
  }
}

std::shared_ptr<Session> Sandbox::locate(std::string_view id, std::string_view owner) {
  if (auto s = find(id, owner)) return s;
  if (!impl_->gateway) return nullptr;
  auto loc = impl_->gateway->find(std::string(id));
  if (!loc || loc->owner.value_or("") != owner) return nullptr;
  return impl_->adopt(*loc);
}

std::shared_ptr<void> Sandbox::hold(std::string_view id, std::string_view owner) {
  auto p = std::dynamic_pointer_cast<PlacedSession>(find(id, owner));
  return p ? p->hold() : nullptr;
}

bool Sandbox::responsive(std::chrono::milliseconds max_lag) const {
  std::chrono::steady_clock::duration since_beat(std::chrono::steady_clock::now().time_since_epoch().count() -
                                                 impl_->last_beat_ns.load());
  return since_beat <= max_lag;
}

std::string_view Sandbox::isolation() const { return impl_->backend->name(); }

std::string Sandbox::readiness() const {
  // What every new session needs at least: a few descriptors in this process, a few inodes
  // and some space in the state dir, and the agent in the runtime dir. Reasons name no path.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    std::uint64_t open = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
      while (::readdir(d)) ++open;
      ::closedir(d);
    }
    if (open + 64 > rl.rlim_cur) return "the server is near its open-file limit";
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < impl_->options.limits.open_files)
      return "the server's open-file limit is below the sessions' open_files limit";
  }
  struct statvfs vfs {};
  if (::statvfs(impl_->state_dir.c_str(), &vfs) != 0) return "the state directory is unreadable";
  if (vfs.f_files > 0 && vfs.f_favail < 64) return "the state directory is out of inodes";
  if (static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize < (16u << 20))
    return "the state directory is out of space";
  if (::access((impl_->options.runtime_dir / "sandbox-agent").c_str(), X_OK) != 0)
    return "the runtime directory has no agent";
  if (auto support = impl_->backend->probe(); !support.available)
    return "the isolation backend is unavailable";
  return {};
}
const Options& Sandbox::options() const { return impl_->options; }

Stats Sandbox::stats() const {
  std::lock_guard lock(impl_->mutex);
  Stats s = impl_->stats;
  s.sessions_active = 0;
  for (auto& [id, sess] : impl_->sessions) s.sessions_active += sess ? 1 : 0;
  return s;
}

}  // namespace sandbox
