#include "hostile/hostile.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "isolation/backends.hpp"

namespace hostile {
namespace fs = std::filesystem;
using sandbox::Language;
using sandbox::Result;
using sandbox::Session;

namespace {

std::string random_hex(int n) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += digits[rng() % 16];
  return s;
}

World g_world;

// One Sandbox per backend for the whole run, with a neighbour session that must keep
// answering after every case.
struct Slot {
  bool tried = false;
  std::string skip;   // why the backend cannot run here
  std::string error;  // why it should have run but did not start
  std::unique_ptr<sandbox::Sandbox> sb;
  std::shared_ptr<Session> neighbour;
};
std::map<std::string, Slot, std::less<>> g_slots;

std::shared_ptr<Session> make_neighbour(sandbox::Sandbox& sb, const std::string& backend) {
  auto n = sb.create_session({.id = "neighbour-" + backend + "-" + random_hex(6)});
  n->run({.code = "1+1", .timeout = 20s});  // its kernel is up before a case's baseline
  return n;
}

Slot& slot_for(const std::string& name) {
  Slot& slot = g_slots[name];
  if (slot.tried) return slot;
  slot.tried = true;
  auto b = sandbox::isolation::make_backend_unchecked(name);
  if (!b || b->name() != name) {
    slot.skip = name + " backend is not built into this library";
    return slot;
  }
  if (auto sup = b->probe(); !sup.available) {
    slot.skip = name + " is not available on this host: " + sup.reason;
    return slot;
  }
  try {
    sandbox::Options o;
    o.isolation = name;
    o.state_dir = g_world.state_root / name;
    o.close_sessions_on_exit = true;  // sessions end with the Sandbox here
    o.limits = case_limits();
    o.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
    o.preload = {};
    slot.sb = std::make_unique<sandbox::Sandbox>(o);
    slot.neighbour = make_neighbour(*slot.sb, name);
  } catch (const std::exception& e) {
    slot.error = name + " probes available but a Sandbox on it did not start: " + e.what();
  }
  return slot;
}

const char* kPyPrelude = R"PY(import ctypes as _c, json as _json, os as _os
_libc = _c.CDLL(None, use_errno=True)
_libc.syscall.restype = _c.c_long
_libc.prctl(15, b"@M@", 0, 0, 0)
def out(**kw):
    print("@@" + _json.dumps(kw, default=str), flush=True)
def sc(nr, *args):
    _c.set_errno(0)
    r = _libc.syscall(_c.c_long(nr), *[_c.c_long(a) if isinstance(a, int) else a for a in args])
    return [r, _c.get_errno() if r == -1 else 0]
W = _os.environ.get("HOME") or _os.getcwd()
)PY";

const char* kJsPrelude = "var out = (o) => console.log('@@' + JSON.stringify(o));\n";

class Env : public ::testing::Environment {
 public:
  void SetUp() override {
    g_world.state_root = fs::temp_directory_path() / ("hostile-" + std::to_string(::getpid()));
    fs::create_directories(g_world.state_root / "secret");
    ::chmod(g_world.state_root.c_str(), 0711);
    ::chmod((g_world.state_root / "secret").c_str(), 0755);
    g_world.secret_file = g_world.state_root / "secret" / "host-secret.txt";
    g_world.secret_file_text = "HOST-FILE-SECRET-" + random_hex(16);
    std::ofstream(g_world.secret_file) << g_world.secret_file_text << "\n";
    ::chmod(g_world.secret_file.c_str(), 0644);
    // The server's environment: code must never see it.
    g_world.secret_env_value = "SERVER-ENV-SECRET-" + random_hex(16);
    ::setenv("SANDBOX_TEST_SECRET", g_world.secret_env_value.c_str(), 1);
  }
  void TearDown() override {
    for (auto& [name, slot] : g_slots) {
      slot.neighbour.reset();
      slot.sb.reset();  // closes every session
    }
    // Every Sandbox is gone, so nothing may be mounted under our state dir any more (the
    // neighbour sessions are checked only here). Report it, then unmount it: it must not
    // outlive the run.
    auto left = host::mounts_matching(g_world.state_root.string());
    for (auto& m : left) ADD_FAILURE() << "leftover mount after every Sandbox was destroyed: " << m;
    for (auto it = left.rbegin(); it != left.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(g_world.state_root, ec);
  }
};
[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new Env);

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

}  // namespace

sandbox::Limits case_limits() {
  sandbox::Limits l;
  l.timeout = 5s;
  l.memory_bytes = 256ull << 20;
  l.max_processes = 64;
  l.disk_bytes = 20ull << 20;
  l.output_bytes = 1ull << 20;
  l.upload_bytes = 10ull << 20;
  l.cpu_time = std::chrono::seconds(20);
  l.open_files = 256;
  l.cpus = 1.0;
  return l;
}

const World& world() { return g_world; }

std::string brief(const Result& r) {
  std::string s = std::string(sandbox::to_string(r.status));
  if (r.termination != sandbox::Termination::none) s += "/" + std::string(sandbox::to_string(r.termination));
  if (r.error) s += " " + r.error->name + ": " + r.error->value.substr(0, 160);
  if (!r.stderr_text.empty() && !r.error) s += " stderr: " + r.stderr_text.substr(0, 160);
  return s;
}

void Hostile::SetUp() {
  started_ = std::chrono::steady_clock::now();
  Slot& slot = slot_for(backend());
  if (!slot.skip.empty()) {
    RecordProperty("outcome", "unavailable");
    RecordProperty("detail", slot.skip);
    judged_ = true;
    GTEST_SKIP() << slot.skip;
  }
  if (!slot.error.empty()) {
    RecordProperty("outcome", "error");
    RecordProperty("detail", slot.error);
    judged_ = true;
    FAIL() << slot.error;
  }
  if (!slot.neighbour || slot.neighbour->status() == sandbox::SessionStatus::closed)
    slot.neighbour = make_neighbour(*slot.sb, backend());
  marker_ = "hm" + random_hex(8);
  vars_["M"] = marker_;
  vars_["SECRET_FILE"] = g_world.secret_file.string();
  vars_["SECRET_FILE_TEXT"] = g_world.secret_file_text;
  vars_["SECRET_ENV"] = g_world.secret_env_value;
  vars_["STATE_DIR"] = (g_world.state_root / backend()).string();
  vars_["RUNTIME_DIR"] = SANDBOX_TEST_RUNTIME_DIR;
  vars_["BACKEND"] = backend();
  baseline_ = host::descendants(::getpid());
  session_ = new_session("");
}

std::shared_ptr<Session> Hostile::new_session(std::string_view tag) {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (auto& c : name)
    if (c == '/') c = '-';
  std::string id = name.substr(0, 40) + (tag.empty() ? "" : "-" + std::string(tag)) + "-" + random_hex(6);
  auto s = sb().create_session({.id = id});
  sessions_.push_back(s);
  return s;
}

sandbox::Sandbox& Hostile::sb() { return *g_slots.at(backend()).sb; }

std::string Hostile::expand(std::string code) const {
  for (const auto& [k, v] : vars_) code = replace_all(std::move(code), "@" + k + "@", v);
  return code;
}

Result Hostile::py(std::string code, std::chrono::milliseconds timeout, Session* on) {
  auto r = start_py(std::move(code), timeout, on)->wait();
  snapshot();
  return r;
}

Result Hostile::sh(std::string code, std::chrono::milliseconds timeout, Session* on) {
  auto r = start_sh(std::move(code), timeout, on)->wait();
  snapshot();
  return r;
}

Result Hostile::js(std::string code, std::chrono::milliseconds timeout, Session* on) {
  Session& target = on ? *on : s();
  auto r = target.run({.language = Language::nodejs, .code = expand(kJsPrelude + code), .timeout = timeout});
  snapshot();
  return r;
}

std::shared_ptr<sandbox::Execution> Hostile::start_py(std::string code, std::chrono::milliseconds timeout, Session* on) {
  Session& target = on ? *on : s();
  return target.start({.language = Language::python, .code = expand(kPyPrelude + code), .timeout = timeout});
}

std::shared_ptr<sandbox::Execution> Hostile::start_sh(std::string code, std::chrono::milliseconds timeout, Session* on) {
  Session& target = on ? *on : s();
  return target.start({.language = Language::shell, .code = expand(code), .timeout = timeout});
}

Json Hostile::json_of(const Result& r) {
  const std::string& t = r.stdout_text;
  auto pos = t.rfind("@@{");
  if (pos == std::string::npos) return nullptr;
  auto end = t.find('\n', pos);
  try {
    return Json::parse(t.substr(pos + 2, end == std::string::npos ? std::string::npos : end - pos - 2));
  } catch (const std::exception&) {
    return nullptr;
  }
}

void Hostile::snapshot() {
  // Our descendants, minus the subtrees of processes that predate the case (the neighbour
  // session's agent and whatever it starts) and minus the host processes the case started.
  std::set<host::Proc> base(baseline_.begin(), baseline_.end());
  const std::string host_mark = "hh" + marker_.substr(2);
  auto all = host::all_processes();
  std::multimap<pid_t, const host::Proc*> children;
  for (const auto& p : all) children.emplace(p.ppid, &p);
  std::vector<pid_t> todo{::getpid()};
  while (!todo.empty()) {
    pid_t parent = todo.back();
    todo.pop_back();
    auto [b, e] = children.equal_range(parent);
    for (auto it = b; it != e; ++it) {
      const host::Proc& p = *it->second;
      if (base.count(p) || p.cmdline.rfind(host_mark, 0) == 0) continue;
      seen_.insert(p);
      todo.push_back(p.pid);
    }
  }
}

std::string Hostile::host_leaks() {
  std::string leaks;
  snapshot();
  // The host names a session's directory, mounts and cgroup by its internal key: the last
  // component of the session directory (the workspace's parent).
  std::vector<fs::path> dirs;
  for (auto& s : sessions_) {
    dirs.push_back(s->workspace().parent_path());
    try {
      if (s->status() != sandbox::SessionStatus::closed) sb().close_session(s->id());
    } catch (const std::exception& e) {
      leaks += "; closing session " + s->id() + " threw: " + e.what();
    }
  }
  sessions_.clear();
  session_.reset();

  // Processes: every new descendant seen during the case, and anything carrying the marker.
  std::vector<host::Proc> watch(seen_.begin(), seen_.end());
  for (auto& p : host::with_marker(marker_)) watch.push_back(p);
  auto left = host::still_running(watch, 5s);
  for (auto& p : left) leaks += "; leftover process " + p.describe();
  host::kill_all(left);
  for (const auto& dir : dirs) {
    for (auto& m : host::mounts_matching(dir.string())) leaks += "; leftover mount " + m;
    for (auto& c : host::cgroups_matching(dir.filename().string())) leaks += "; leftover cgroup " + c.string();
  }
  // The Sandbox still serves its neighbour.
  Slot& slot = g_slots.at(backend());
  try {
    if (!slot.neighbour) slot.neighbour = make_neighbour(*slot.sb, backend());
    auto t0 = std::chrono::steady_clock::now();
    auto r = slot.neighbour->run({.code = "1+1", .timeout = 10s});
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    if (r.result != "2") {
      leaks += "; the neighbour session stopped answering: " + brief(r);
      slot.neighbour.reset();
    } else if (ms > 2000) {
      leaks += "; the neighbour session took " + std::to_string(ms) + " ms for 1+1";
    }
  } catch (const std::exception& e) {
    leaks += std::string("; the neighbour session failed: ") + e.what();
    slot.neighbour.reset();
  }
  return leaks;
}

void Hostile::verdict(const Claims& claims, std::string_view what, bool contained, std::string detail,
                      std::string_view contained_as) {
  judged_ = true;
  const std::string leaks = host_leaks();
  const bool claimed = claims.count(backend()) > 0;
  const bool ok = contained && leaks.empty();
  // Teardown (no process, mount or cgroup left, neighbour alive) is claimed by every backend
  // except where the case's claims exclude it: rlimit cannot reap daemons that escape.
  const bool teardown_claimed = claimed || backend() != "rlimit";
  const std::string outcome =
      ok ? (!contained_as.empty() ? std::string(contained_as) : claimed ? "contained" : "contained-unclaimed")
         : ((claimed || (!leaks.empty() && teardown_claimed)) ? "breached" : "expected-miss");
  std::string all = detail + leaks;
  if (all.size() > 600) all = all.substr(0, 600) + "...";
  RecordProperty("what", std::string(what));
  RecordProperty("outcome", outcome);
  RecordProperty("claimed", claimed ? "yes" : "no");
  RecordProperty("detail", all);
  if (outcome == "breached") {
    ADD_FAILURE() << backend() << " claims to contain " << what << " but did not: " << all;
  } else if (!ok) {
    GTEST_SKIP() << backend() << " does not contain " << what << " (expected miss): " << all;
  }
}

void Kernel::kernel_verdict(std::string_view what, bool refused, std::string detail) {
  if (backend() == "runsc") {
    verdict({"runsc"}, what, true, "the sentry answered: " + detail, "emulated");
    return;
  }
  verdict({"namespaces"}, what, refused, std::move(detail));
}

void Hostile::not_run(const Claims& claims, std::string_view what, std::string why) {
  judged_ = true;
  host_leaks();
  RecordProperty("what", std::string(what));
  RecordProperty("outcome", "not-run");
  RecordProperty("claimed", claims.count(backend()) ? "yes" : "no");
  RecordProperty("detail", why);
  GTEST_SKIP() << backend() << " does not contain " << what << " (expected miss, not run): " << why;
}

void Hostile::TearDown() {
  if (judged_) return;
  // The case stopped early (an assertion or exception): still leave the host clean.
  std::string leaks = host_leaks();
  RecordProperty("outcome", "error");
  RecordProperty("detail", leaks);
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

#define HOSTILE_INSTANTIATE(Group) \
  INSTANTIATE_TEST_SUITE_P(Backends, Group, ::testing::Values("rlimit", "namespaces", "runsc"), backend_name)
HOSTILE_INSTANTIATE(Resource);
HOSTILE_INSTANTIATE(Filesystem);
HOSTILE_INSTANTIATE(Leaks);
HOSTILE_INSTANTIATE(Kernel);
HOSTILE_INSTANTIATE(Network);
HOSTILE_INSTANTIATE(Escape);
HOSTILE_INSTANTIATE(Agent);
HOSTILE_INSTANTIATE(Node);
HOSTILE_INSTANTIATE(Neighbour);

}  // namespace hostile
