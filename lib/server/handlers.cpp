#include "server/handlers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>
#include <nlohmann/json.hpp>

#include "server/json_body.hpp"
#include "server/multipart.hpp"
#include "server/placed.hpp"
#include "server/sse.hpp"
#include "server/status.hpp"

namespace sandbox::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

[[noreturn]] void invalid(std::string message) {
  throw Error(errc::invalid_argument, std::move(message));
}

// Field accessors that name the field and the type they wanted; null counts as absent.
const json* field(const json& obj, std::string_view name) {
  auto it = obj.find(name);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}
std::optional<std::string> opt_string(const json& obj, std::string_view name) {
  auto* f = field(obj, name);
  if (!f) return std::nullopt;
  if (!f->is_string()) invalid(fmt::format("'{}' must be a string", name));
  return f->get<std::string>();
}
std::optional<bool> opt_bool(const json& obj, std::string_view name) {
  auto* f = field(obj, name);
  if (!f) return std::nullopt;
  if (!f->is_boolean()) invalid(fmt::format("'{}' must be true or false", name));
  return f->get<bool>();
}
std::optional<double> opt_seconds(const json& obj, std::string_view name) {
  auto* f = field(obj, name);
  if (!f) return std::nullopt;
  if (!f->is_number()) invalid(fmt::format("'{}' must be a number of seconds", name));
  double v = f->get<double>();
  if (!std::isfinite(v) || v <= 0 || v > 1e7) invalid(fmt::format("'{}' is out of range", name));
  return v;
}
std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
}

json limits_object(const Limits& l) {
  return {{"timeout", static_cast<double>(l.timeout.count()) / 1000},
          {"memory_bytes", l.memory_bytes},
          {"max_processes", l.max_processes},
          {"disk_bytes", l.disk_bytes},
          {"output_bytes", l.output_bytes},
          {"upload_bytes", l.upload_bytes},
          {"cpu_time", l.cpu_time.count()},
          {"open_files", l.open_files},
          {"cpus", l.cpus},
          {"result_bytes", l.result_cap()},
          {"image_bytes", l.image_cap()},
          {"images_bytes", l.images_cap()},
          {"history_bytes", l.history_cap()}};
}

// Limits a client asks for, read and narrowed by the library's one rule: the server's
// defaults are the ceilings (the operator raises them with `sandboxctl serve --timeout/--memory`).
Limits requested_limits(const json& j, const Limits& ceiling) {
  if (!j.is_object()) invalid("'limits' must be an object");
  return narrow(ceiling, parse_limits(j.dump(), ceiling));
}

}  // namespace

json session_json(const Session& s) {
  auto created = std::chrono::duration_cast<std::chrono::seconds>(
                     s.created().time_since_epoch()).count();
  json j = {{"id", s.id()},
            {"status", to_string(s.status())},
            {"placement", s.placement()},
            {"isolation", s.isolation()},
            {"created", created},
            {"limits", limits_object(s.limits())}};
  if (auto ep = s.endpoint()) {
    if (!ep->pod.empty()) j["pod"] = ep->pod;
    if (!ep->message.empty()) j["message"] = ep->message;
  }
  return j;
}

namespace {

// What a route may do with a lost session (one a restarted Sandbox could not adopt):
// only read its kept workspace, or delete it.
enum class IfLost { refuse, allow };

// A lost session answers 410 session_lost, in the library's words (they say why it was
// lost); its id is never reused by auto-create while it is there.
void refuse_lost(const Session& s) {
  if (s.status() != SessionStatus::lost) return;
  try {
    (void)s.latest();  // a lost session's calls throw session_lost with the reason
  } catch (const Error& e) {
    if (e.code_value() == errc::session_lost) throw;
  }
  throw Error(errc::session_lost,
              fmt::format("session '{}' was lost; DELETE /sessions/{} to remove it", s.id(), s.id()));
}

// The session a request names, in the caller's own namespace of ids (the Sandbox keys
// sessions by owner and id): another tenant's session of the same id is not even looked
// at, so ids neither leak across tenants nor can be squatted. Seed routes may create it.
asio::awaitable<std::shared_ptr<Session>> session_for(Shared& sh, Exchange& x, bool create,
                                                      Language language = Language::python,
                                                      IfLost if_lost = IfLost::refuse) {
  const std::string& sid = x.match.param("sid");
  validate_session_id(sid);
  auto not_found = [&] { return Error(errc::not_found, fmt::format("no session '{}'", sid)); };
  if (auto s = sh.sandbox.find(sid, x.owner)) {
    if (if_lost == IfLost::refuse) refuse_lost(*s);
    co_return s;
  }
  if (!create || !sh.options.auto_create) throw not_found();
  SessionOptions so;
  so.id = sid;
  so.owner = x.owner;
  so.language = language;
  auto work = [&sh, so]() -> std::shared_ptr<Session> {
    try {
      return sh.sandbox.create_session(so);
    } catch (const Error& e) {
      // Two requests raced to create it: the loser uses the winner's session.
      if (e.code_value() != errc::already_exists) throw;
      auto s = sh.sandbox.find(so.id, so.owner);
      if (!s) throw Error(errc::not_found, fmt::format("no session '{}'", so.id));
      return s;
    }
  };
  auto created = co_await offload(sh.pool, work);
  if (if_lost == IfLost::refuse) refuse_lost(*created);  // lost the race to a lost one
  co_return created;
}

std::shared_ptr<Execution> execution_for(Exchange& x, const Session& s) {
  if (auto id = x.query.get("execution_id")) {
    auto ex = s.execution(*id);
    if (!ex) throw Error(errc::not_found, fmt::format("no execution '{}' in this session", *id));
    return ex;
  }
  auto ex = s.latest();
  if (!ex) throw Error(errc::not_found, "no execution in this session yet");
  return ex;
}

// JSON cannot carry half a UTF-8 character: while an execution runs, a slice that ends
// inside one is cut before it (the client asks again from there and gets it whole), so a
// remote reader sees the same text as a local one instead of U+FFFD.
void hold_partial_utf8(std::string& s) {
  std::size_t i = s.size(), back = 0;
  while (i > 0 && back < 3 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return;
  auto lead = static_cast<unsigned char>(s[i - 1]);
  std::size_t need = (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
  if (need > 1 && back + 1 < need) s.resize(i - 1);
}

Result running_safe(Result r) {
  if (r.status == Status::running) {
    hold_partial_utf8(r.stdout_text);
    hold_partial_utf8(r.stderr_text);
  }
  return r;
}

// ---- routes ------------------------------------------------------------------------

asio::awaitable<void> healthz(Shared& sh, Exchange& x) {
  // Liveness: a library I/O loop stuck for 5 s serves no session's agent.
  bool live = sh.sandbox.responsive(std::chrono::seconds(5));
  json j = {{"status", live ? "ok" : "stalled"}, {"isolation", sh.sandbox.isolation()}};
  co_await x.reply(live ? 200 : 503, dump(j));
}

// Readiness, apart from liveness: 503 with the reason while new sessions would fail, so a
// load balancer stops sending new work here; the server itself still answers.
asio::awaitable<void> readyz(Shared& sh, Exchange& x) {
  auto check = [&sh] {
    std::string why = sh.sandbox.readiness();
    std::lock_guard lock(sh.mu);
    if (why.empty() && sh.connections.size() >= sh.connection_cap)
      why = std::string("the server is at its connection cap");
    return why;
  };
  std::string why = co_await offload(sh.pool, check);
  if (!why.empty()) {
    co_await x.reply_error(503, errc::unavailable, why);
    co_return;
  }
  json j = {{"status", "ready"}, {"isolation", sh.sandbox.isolation()}};
  co_await x.reply(200, dump(j));
}

// Server-wide figures: with tokens on, only for a token marked `admin`.
asio::awaitable<void> metrics(Shared& sh, Exchange& x) {
  if (sh.tokens.enabled()) {
    auto who = sh.tokens.identify(ssv(x.request()[http::field::authorization]));
    if (!who || !who->admin) throw Error(errc::permission_denied, "/metrics needs an admin token");
  }
  co_await x.reply(200, sh.metrics.render(sh.sandbox), "text/plain; version=0.0.4");
}

asio::awaitable<void> openapi(Shared& sh, Exchange& x) { co_await x.reply(200, sh.openapi); }

asio::awaitable<void> sessions_create(Shared& sh, Exchange& x) {
  json body = parse_object(co_await x.read_body(sh.options.json_body_limit), true);
  only_fields(body, {"id", "language", "limits"}, "the request");
  SessionOptions so;
  so.owner = x.owner;
  if (auto id = opt_string(body, "id")) {
    validate_session_id(*id);
    if (auto old = sh.sandbox.find(*id, x.owner)) refuse_lost(*old);  // 410, not 409
    so.id = *id;
  }
  if (auto lang = opt_string(body, "language")) so.language = parse_language(*lang);
  if (auto* l = field(body, "limits")) so.limits = requested_limits(*l, sh.sandbox.options().limits);
  // The Sandbox places it (here, a pod, the cloud): a placed one answers Pending.
  auto work = [&sh, so] {
    auto s = sh.sandbox.create_session(so);
    json j = session_json(*s);
    if (auto ep = s->endpoint(); ep && !ep->reason.empty()) j["reason"] = ep->reason;
    return j;
  };
  json created = co_await offload(sh.pool, work);
  co_await x.reply(201, dump(created));
}

asio::awaitable<void> sessions_list(Shared& sh, Exchange& x) {
  // Placed sessions' states are the placement record's (a cloud one's: the cloud's).
  auto work = [&sh, owner = x.owner] {
    json list = json::array();
    for (auto& s : sh.sandbox.sessions())
      if (s->owner() == owner) list.push_back(session_json(*s));
    return list;
  };
  json list = co_await offload(sh.pool, work);
  std::string body = dump(json{{"sessions", std::move(list)}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> session_get(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, false);
  co_await x.reply(200, dump(session_json(*s)));
}

asio::awaitable<void> session_delete(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, false, Language::python, IfLost::allow);
  std::string id = s->id();
  s.reset();
  auto work = [&sh, id, owner = x.owner] { sh.sandbox.close_session(id, owner); };
  co_await offload(sh.pool, work);
  std::string body = dump(json{{"id", id}, {"status", "Closed"}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> exec(Shared& sh, Exchange& x, Language language) {
  json body = parse_object(co_await x.read_body(sh.options.exec_body_limit), false);
  only_fields(body, {"code", "stdin", "timeout", "fresh"}, "the request");
  ExecRequest req;
  req.language = language;
  auto code = opt_string(body, "code");
  if (!code) invalid("'code' is required and must be a string");
  req.code = std::move(*code);
  if (auto in = opt_string(body, "stdin")) req.stdin_text = std::move(*in);
  if (auto fresh = opt_bool(body, "fresh")) req.fresh = *fresh;
  auto timeout = opt_seconds(body, "timeout");
  auto s = co_await session_for(sh, x, true, language);
  if (timeout) {
    req.timeout = to_ms(*timeout);
    if (*req.timeout > s->limits().timeout)
      throw Error(errc::permission_denied,
                  fmt::format("timeout is above the session's limit of {} s",
                              static_cast<double>(s->limits().timeout.count()) / 1000));
  }
  auto ex = s->start(std::move(req));
  sh.track(ex);
  std::string reply = dump(json{{"execution_id", ex->id()}, {"status", "Running"}});
  co_await x.reply(202, std::move(reply));
}

// What a long-poll or a stream cut by the server's stop says: the execution goes on (the
// Sandbox keeps durable sessions), the next server serves its result.
// (The route's pattern, not the id: error bodies hide anything shaped like a host path.)
std::string restarting_message() { return "server restarting: poll GET /{sid}/result again"; }

// Waits, without holding a thread, until the execution ends or the deadline passes.
asio::awaitable<void> wait_for_end(Exchange& x, const std::shared_ptr<Execution>& ex,
                                   Clock::time_point deadline) {
  if (ex->done()) co_return;
  auto sub = ex->subscribe(x.signal().notifier());  // no callback outlives the request
  while (!ex->done() && !x.stopping() && Clock::now() < deadline)
    co_await x.signal().wait_until(deadline);
}

// Waits until the execution's output grows, it ends, or the deadline passes: a client that
// polls in a tight loop without ?wait gets each change at once, yet costs no core in between.
asio::awaitable<void> wait_for_change(Exchange& x, const std::shared_ptr<Execution>& ex,
                                      Clock::time_point deadline) {
  if (ex->done()) co_return;
  auto sub = ex->subscribe(x.signal().notifier());  // no callback outlives the request
  const Result before = ex->snapshot({0, 0});
  while (!ex->done() && !x.stopping() && Clock::now() < deadline) {
    co_await x.signal().wait_until(deadline);
    const Result now = ex->snapshot({0, 0});
    if (now.stdout_total != before.stdout_total || now.stderr_total != before.stderr_total) break;
  }
}

asio::awaitable<void> result(Shared& sh, Exchange& x) {
  Page page;
  if (auto o = x.query.get_uint("offset")) page.offset = *o;
  if (auto l = x.query.get_uint("limit")) page.limit = *l;
  auto wait = x.query.get_uint("wait");
  auto s = co_await session_for(sh, x, true);
  auto ex = execution_for(x, *s);
  if (auto w = wait; w && *w > 0) {
    auto ms = std::min<std::uint64_t>(*w, static_cast<std::uint64_t>(sh.options.max_wait.count()));
    co_await wait_for_end(x, ex, Clock::now() + std::chrono::milliseconds(ms));
    // A long-poll asked for the end: Running because the server stops is not an answer a
    // client could tell from "still running at the deadline", so it gets one it can.
    if (x.stopping() && !ex->done()) {
      http::fields extra;
      extra.set(http::field::retry_after, "1");
      co_await x.reply_error(503, errc::unavailable, restarting_message(), std::move(extra));
      co_return;
    }
  } else if (!wait && sh.options.poll_hold.count() > 0) {
    // A plain poll cut short still answers Running: that only ever means "poll again".
    co_await wait_for_change(x, ex, Clock::now() + sh.options.poll_hold);
  }
  co_await x.reply(200, to_json(running_safe(ex->snapshot(page))));
}

asio::awaitable<void> stream(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, true);
  auto ex = execution_for(x, *s);
  std::uint64_t out = x.query.get_uint("offset").value_or(0), err = out;
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");  // nginx: pass events through at once
  co_await x.reply_header(res);
  if (x.head()) co_return;
  auto sub = ex->subscribe(x.signal().notifier());  // no callback outlives the request
  // What this connection holds at a time is bounded by output_budget: each event carries at
  // most a budget's worth of text, and the next is made only once the client took the last
  // (write() drops a client that takes nothing for write_timeout).
  const std::uint64_t budget = std::max<std::size_t>(sh.options.output_budget, 1024);
  auto emit = [&](std::string_view event, bool is_stdout, std::uint64_t& at) -> std::string {
    Result r = running_safe(ex->snapshot(Page{at, budget}));
    const std::string& text = is_stdout ? r.stdout_text : r.stderr_text;
    std::uint64_t offset = is_stdout ? r.stdout_offset : r.stderr_offset;
    if (text.empty()) return {};
    at = offset + text.size();
    return sse_event(event, dump(json{{"offset", offset}, {"text", text}}));
  };
  while (true) {
    bool ended = ex->done();  // read before the output: nothing written after it is missed
    std::string events = emit("stdout", true, out);
    if (!events.empty()) {
      co_await x.write(events);
      continue;  // more may wait behind this slice
    }
    events = emit("stderr", false, err);
    if (!events.empty()) {
      co_await x.write(events);
      continue;
    }
    if (ended) {
      // The final result, its streams cut to the budget (stdout_total/stderr_total say how
      // much there was; GET /{sid}/result pages the rest).
      co_await x.write(sse_event("result", to_json(ex->snapshot(Page{0, budget})), ex->id()));
      break;
    }
    if (x.stopping()) {
      // Closing without a result would look like a dropped connection: say why, and where
      // the result will be (the execution goes on, the next server serves it).
      co_await x.write(sse_event("error", error_body(errc::unavailable, restarting_message())));
      break;
    }
    bool woke = co_await x.signal().wait_until(Clock::now() + std::chrono::seconds(15));
    if (!woke) co_await x.write(sse_keepalive);
  }
}

// The remote client's Execution::cancel: ends the execution as Killed (a no-op once done).
asio::awaitable<void> cancel(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, false);  // nothing to cancel in a session made now
  auto ex = execution_for(x, *s);
  ex->cancel();
  std::string body = dump(json{{"cancelled", ex->id()}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> files_upload(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, true);
  auto boundary = multipart_boundary(ssv(x.request()[http::field::content_type]));
  if (!boundary) invalid("expected a multipart/form-data body with a boundary");
  // The file limit plus room for the multipart framing around it.
  const std::uint64_t limit = s->limits().upload_bytes + 64 * 1024;
  x.too_large_context = true;
  if (auto cl = x.content_length(); cl && *cl > limit)
    throw Error(errc::resource_exhausted,
                fmt::format("upload of {} bytes is over the limit of {}", *cl,
                            s->limits().upload_bytes));
  UploadOptions uo;
  uo.overwrite = x.query.get_bool("overwrite");
  std::unique_ptr<FileWriter> writer;
  bool writing = false, complete = false;
  std::uint64_t written = 0;
  MultipartParser mp(*boundary, {
      .on_part =
          [&](const Part& part) {
            if (part.name != "file" || writer) return;  // other fields are ignored
            if (!part.filename || part.filename->empty())
              invalid("the 'file' field has no filename");
            writer = s->files().open_upload(*part.filename, uo);
            writing = true;
          },
      .on_data =
          [&](std::string_view d) {
            if (!writing) return;
            writer->write(d);
            written += d.size();
          },
      .on_part_end =
          [&] {
            if (writing) complete = true;
            writing = false;
          },
  });
  co_await x.read_body(limit, [&](std::string_view c) { mp.feed(c); });
  mp.finish();
  if (!complete) invalid("the multipart field 'file' is missing");
  auto work = [&writer] { return writer->commit(); };
  FileInfo info = co_await offload(sh.pool, work);
  sh.metrics.add_upload_bytes(written);
  std::string body = dump(json{{"name", info.name},
                               {"size", info.size},
                               {"modified", info.modified},
                               {"type", to_string(info.type)}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> files_list(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, true, Language::python, IfLost::allow);
  auto work = [s] { return s->files().list(); };
  auto files = co_await offload(sh.pool, work);
  json list = json::array();
  for (auto& f : files)
    list.push_back({{"name", f.name}, {"size", f.size}, {"modified", f.modified}, {"type", to_string(f.type)}});
  std::string body = dump(json{{"files", std::move(list)}});
  co_await x.reply(200, std::move(body));
}

std::string disposition(std::string_view name) {
  auto slash = name.rfind('/');
  std::string base(slash == std::string_view::npos ? name : name.substr(slash + 1));
  std::string safe;
  for (char c : base) safe += (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
  return fmt::format("attachment; filename=\"{}\"", safe);
}

asio::awaitable<void> files_download(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, true, Language::python, IfLost::allow);
  std::string name = x.match.param("name");
  auto work = [s, name] { return s->files().open_download(name); };
  FileReader reader = co_await offload(sh.pool, work);
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::content_type, "application/octet-stream");
  res.set(http::field::content_disposition, bsv(disposition(name)));
  res.content_length(reader.size());
  co_await x.reply_header(res);
  if (x.head()) co_return;
  // Streamed in chunks from the open fd: the file is never held whole.
  std::vector<char> buf(256 * 1024);
  std::uint64_t left = reader.size();
  while (left > 0) {
    std::size_t n = reader.read(std::span<char>(buf.data(), std::min<std::uint64_t>(left, buf.size())));
    if (n == 0) {  // the file shrank under us: the promised length cannot be kept
      x.keep_alive = false;
      break;
    }
    co_await x.write(std::string_view(buf.data(), n));
    sh.metrics.add_download_bytes(n);
    left -= n;
  }
}

asio::awaitable<void> files_delete(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, true);
  std::string name = x.match.param("name");
  auto work = [s, name] { s->files().remove(name); };
  co_await offload(sh.pool, work);
  std::string body = dump(json{{"deleted", name}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> processes(Shared& sh, Exchange& x) {
  auto s = co_await session_for(sh, x, true);
  auto work = [s] { return s->processes(); };
  auto procs = co_await offload(sh.pool, work);
  json list = json::array();
  for (auto& p : procs)
    list.push_back({{"pid", p.pid},
                    {"ppid", p.ppid},
                    {"name", p.name},
                    {"cmdline", p.cmdline},
                    {"state", to_string(p.state)},
                    {"rss", p.rss_bytes},
                    {"cpu_time_ms", p.cpu_time_ms},
                    {"start_time", p.start_time}});
  std::string body = dump(json{{"processes", std::move(list)}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> process_kill(Shared& sh, Exchange& x) {
  const std::string& raw = x.match.param("pid");
  int pid = 0;
  auto [p, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), pid);
  if (ec != std::errc{} || p != raw.data() + raw.size() || pid <= 0)
    invalid(fmt::format("'{}' is not a process id", raw));
  // ?signal=N (default 9, SIGKILL), as Session::kill.
  const std::uint64_t asked = x.query.get_uint("signal").value_or(9);
  if (asked == 0 || asked > 64) invalid("'signal' must be a signal number (1..64)");
  const int signal = static_cast<int>(asked);
  auto s = co_await session_for(sh, x, true);
  auto work = [s, pid, signal] { s->kill(pid, signal); };
  co_await offload(sh.pool, work);
  std::string body = dump(json{{"killed", pid}});
  co_await x.reply(200, std::move(body));
}

asio::awaitable<void> dispatch(Shared& sh, Exchange& x) {
  switch (x.match.route->id) {
    case RouteId::healthz: co_await healthz(sh, x); break;
    case RouteId::readyz: co_await readyz(sh, x); break;
    case RouteId::metrics: co_await metrics(sh, x); break;
    case RouteId::openapi: co_await openapi(sh, x); break;
    case RouteId::sessions_create: co_await sessions_create(sh, x); break;
    case RouteId::sessions_list: co_await sessions_list(sh, x); break;
    case RouteId::session_get: co_await session_get(sh, x); break;
    case RouteId::session_delete: co_await session_delete(sh, x); break;
    case RouteId::exec_python: co_await exec(sh, x, Language::python); break;
    case RouteId::exec_nodejs: co_await exec(sh, x, Language::nodejs); break;
    case RouteId::exec_shell: co_await exec(sh, x, Language::shell); break;
    case RouteId::result: co_await result(sh, x); break;
    case RouteId::stream: co_await stream(sh, x); break;
    case RouteId::cancel: co_await cancel(sh, x); break;
    case RouteId::files_upload: co_await files_upload(sh, x); break;
    case RouteId::files_list: co_await files_list(sh, x); break;
    case RouteId::files_download: co_await files_download(sh, x); break;
    case RouteId::files_delete:
    case RouteId::files_delete_post: co_await files_delete(sh, x); break;
    case RouteId::processes: co_await processes(sh, x); break;
    case RouteId::process_kill: co_await process_kill(sh, x); break;
  }
}

}  // namespace

asio::awaitable<void> handle(Shared& sh, Exchange& x) {
  x.match = match(ssv(x.request().method_string()), ssv(x.request().target()));
  switch (x.match.outcome) {
    case Outcome::bad_path:
      co_await x.reply_error(400, errc::invalid_argument, x.match.reason);
      co_return;
    case Outcome::not_found:
      co_await x.reply_error(404, errc::not_found, "no such route");
      co_return;
    case Outcome::method_not_allowed: {
      http::fields extra;
      extra.set(http::field::allow, bsv(x.match.allow));
      co_await x.reply_error(405, errc::invalid_argument, "method not allowed", std::move(extra));
      co_return;
    }
    case Outcome::matched:
      break;
  }
  if (sh.tokens.enabled()) {
    auto owner = sh.tokens.owner_for(ssv(x.request()[http::field::authorization]));
    if (owner) x.owner = std::move(*owner);
    else if (x.match.route->needs_token) {
      http::fields extra;
      extra.set(http::field::www_authenticate, "Bearer");
      co_await x.reply_error(401, errc::unauthenticated, "a valid bearer token is required",
                             std::move(extra));
      co_return;
    }
  }

  std::optional<Error> failure;
  std::string quota;  // which one, for a QuotaExceeded
  try {
    x.query = Query(x.match.query);
    bool placed = false;
    if (sh.sandbox.options().placement.mode != placement::Mode::local) placed = co_await handle_placed(sh, x);
    if (!placed) co_await dispatch(sh, x);
  } catch (const QuotaExceeded& e) {
    failure = e;
    quota = e.quota();
  } catch (const Error& e) {
    failure = e;
  } catch (const std::system_error& e) {
    // std::filesystem errors carry the host paths in what(): keep only the errno's words.
    bool is_errno = e.code().category() == std::generic_category() ||
                    e.code().category() == std::system_category();
    failure = Error(is_errno ? from_errno(e.code().value()) : errc::internal, e.code().message());
  } catch (const std::exception& e) {
    failure = Error(errc::internal, e.what());
  }
  if (!failure) co_return;
  if (x.responded) {  // the error struck mid-stream: the only honest signal is closing
    x.keep_alive = false;
    x.error_message = failure->message();
    co_return;
  }
  errc code = failure->code_value();
  if (!quota.empty()) {
    x.error_message = failure->message();
    co_await x.reply(http_status(code), error_body(code, failure->message(), quota));
    co_return;
  }
  int st = x.client_too_slow ? 408 : http_status(code, x.too_large_context);
  co_await x.reply_error(st, code, failure->message());
}

}  // namespace sandbox::server
