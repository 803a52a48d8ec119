#include "server/placed.hpp"

#include <fmt/format.h>

#include <random>

#include "placement/forward.hpp"
#include "placement/gateway.hpp"

namespace sandbox::server {
namespace {

using nlohmann::json;
using placement::Location;
using placement::Target;

constexpr auto kPoll = std::chrono::milliseconds(25);

json location_json(const Location& l) {
  json j = {{"id", l.id}, {"status", l.status}, {"placement", placement::to_string(l.target)}};
  if (!l.pod.empty()) j["pod"] = l.pod;
  if (!l.message.empty()) j["message"] = l.message;
  return j;
}

std::string new_session_id() {
  std::random_device rd;
  std::uint64_t v = (std::uint64_t{rd()} << 32) | rd();
  return fmt::format("s{:016x}", v);
}

std::string_view language_of(RouteId id) {
  switch (id) {
    case RouteId::exec_nodejs: return "nodejs";
    case RouteId::exec_shell: return "shell";
    default: return "python";
  }
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  beast::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// Whether `owner` may use the session. A cloud session another gateway placed has no owner
// this gateway can know: nobody's when tokens are on, everybody's when they are off (every
// request then has the same owner anyway).
bool belongs(const Shared& sh, const Location& l, const std::string& owner) {
  return l.owner ? *l.owner == owner : !sh.tokens.enabled();
}

// A seed route on an unknown id: the session is placed like POST /sessions would place it,
// with the server's default limits. nullopt = placed here (the local handlers create it).
asio::awaitable<std::optional<Location>> auto_place(Shared& sh, Exchange& x, const std::string& sid) {
  placement::Gateway& gw = *sh.options.gateway;
  Limits limits = sh.sandbox.options().limits;
  auto decide = [&gw, limits] { return gw.place(limits); };
  auto d = co_await offload(sh.pool, decide);
  if (d.target == Target::local) co_return std::nullopt;
  json body = {{"id", sid}, {"language", language_of(x.match.route->id)}};
  auto make = [&gw, sid, target = d.target, limits, body, owner = x.owner]() -> Location {
    try {
      return gw.create(sid, target, limits, body, owner);
    } catch (const Error& e) {
      // Two requests (or two gateways) raced to create it: use the winner's.
      if (e.code_value() != errc::already_exists) throw;
      if (auto l = gw.find(sid)) return *l;
      throw;
    }
  };
  auto loc = co_await offload(sh.pool, make);
  // Another tenant won the race for this id: this tenant's session is served here instead.
  if (!belongs(sh, loc, x.owner)) co_return std::nullopt;
  co_return loc;
}


}  // namespace

asio::awaitable<bool> handle_placed(Shared& sh, Exchange& x) {
  const std::string& sid = x.match.param("sid");
  if (sid.empty()) co_return false;
  validate_session_id(sid);
  if (sh.sandbox.find(sid, x.owner)) co_return false;  // one of this server's own
  placement::Gateway& gw = *sh.options.gateway;
  const RouteId route = x.match.route->id;
  auto lookup = [&gw, sid] { return gw.find(sid); };
  std::optional<Location> loc = co_await offload(sh.pool, lookup);
  // Placed sessions share one namespace of ids (pods are named from them), so another
  // tenant's placed session of this id is left alone: this tenant's request is answered
  // here, as for a free id (404, or a session created on this server), and learns nothing.
  if (loc && !belongs(sh, *loc, x.owner)) co_return false;
  if (!loc) {
    if (!x.match.route->seed || !sh.options.auto_create) co_return false;  // the handlers' 404
    loc = co_await auto_place(sh, x, sid);
    if (!loc) co_return false;
  }

  if (route == RouteId::session_delete) {
    auto remove = [&gw, sid] { return gw.remove(sid); };
    bool removed = co_await offload(sh.pool, remove);
    if (!removed) throw Error(errc::not_found, fmt::format("no session '{}'", sid));
    std::string closed = json{{"id", sid}, {"status", "Closed"}}.dump();
    co_await x.reply(200, std::move(closed));
    co_return true;
  }
  if (route == RouteId::session_get) {
    json j = location_json(*loc);
    if (loc->target == Target::cloud) {
      // The cloud gateway knows when its pod is Ready.
      auto ask = [url = loc->base_url, auth = loc->authorization, sid] {
        return placement::http_call(url, "GET", "/sessions/" + sid, "", auth, std::chrono::seconds(10));
      };
      auto r = co_await offload(sh.pool, ask);
      auto answer = json::parse(r.body, nullptr, false);
      if (r.status != 200 || !answer.is_object()) {
        co_await x.reply(static_cast<int>(r.status), std::move(r.body));
        co_return true;
      }
      j["status"] = answer.value("status", "Pending");
      if (answer.contains("message")) j["message"] = answer["message"];
    }
    co_await x.reply(200, j.dump());
    co_return true;
  }
  if (!x.match.route->seed) co_return false;

  // A seed route: relay it once the session's server is up. Seed clients know nothing of
  // Pending, so a starting pod is waited for (the cloud gateway does the same for its own).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (loc->target == Target::kubernetes && loc->status == "Pending") {
    if (std::chrono::steady_clock::now() > deadline || x.stopping())
      throw Error(errc::unavailable, fmt::format("session '{}' is still starting", sid));
    co_await sleep_for(kPoll);
    loc = co_await offload(sh.pool, lookup);
    if (!loc || !belongs(sh, *loc, x.owner)) throw Error(errc::not_found, fmt::format("no session '{}'", sid));
  }
  if (loc->status == "Failed")
    throw Error(errc::unavailable, fmt::format("session '{}' failed: {}", sid, loc->message));

  gw.touch(sid);
  // Long polls and event streams are quiet upstream for up to max_wait.
  auto idle = std::chrono::duration_cast<std::chrono::seconds>(sh.options.max_wait) + sh.options.write_timeout;
  placement::Forwarded f;
  try {
    f = co_await placement::forward(x.stream(), x.buffer(), x.parser(), loc->base_url, loc->authorization, idle,
                                    /*allow_plaintext_token=*/loc->target == Target::kubernetes);
  } catch (...) {
    x.keep_alive = false;  // part of the request body may be gone upstream
    throw;
  }
  x.status = static_cast<int>(f.status);
  x.responded = f.responded;
  x.keep_alive = f.keep_alive && !x.stopping();
  x.bytes_in += f.bytes_in;
  x.bytes_out += f.bytes_out;
  gw.touch(sid);
  co_return true;
}

asio::awaitable<bool> create_placed(Shared& sh, Exchange& x, const SessionOptions& so, const json& body) {
  placement::Gateway& gw = *sh.options.gateway;
  Limits limits = so.limits.value_or(sh.sandbox.options().limits);
  auto decide = [&gw, limits] { return gw.place(limits); };
  auto d = co_await offload(sh.pool, decide);
  if (d.target == Target::local) co_return false;
  std::string id = so.id.empty() ? new_session_id() : so.id;
  if (sh.sandbox.find(id, so.owner)) throw Error(errc::already_exists, fmt::format("session '{}' exists", id));
  // The id is another tenant's placed session: this one's is made on this server instead,
  // so the answer is that of a free id (see handle_placed).
  auto taken = [&gw, id, owner = so.owner, &sh] {
    auto l = gw.find(id);
    return l && !belongs(sh, *l, owner);
  };
  if (co_await offload(sh.pool, taken)) co_return false;
  json up = body;
  up["id"] = id;
  auto make = [&gw, &sh, id, target = d.target, limits, up, owner = so.owner]() -> std::optional<Location> {
    try {
      return gw.create(id, target, limits, up, owner);
    } catch (const Error& e) {
      // Another tenant placed this id meanwhile: as above.
      if (e.code_value() != errc::already_exists) throw;
      auto l = gw.find(id);
      if (l && !belongs(sh, *l, owner)) return std::nullopt;
      throw;
    }
  };
  auto placed = co_await offload(sh.pool, make);
  if (!placed) co_return false;
  Location loc = std::move(*placed);
  json j = location_json(loc);
  j["reason"] = d.reason;
  if (d.water_level >= 0) j["water_level"] = d.water_level;
  co_await x.reply(201, j.dump());
  co_return true;
}

json placed_sessions(Shared& sh, const std::string& owner) {
  json list = json::array();
  for (const auto& l : sh.options.gateway->list())
    if (belongs(sh, l, owner)) list.push_back(location_json(l));
  return list;
}

void reap_placed(Shared& sh) {
  auto& gw = *sh.options.gateway;
  for (const auto& id : gw.expired(sh.options.idle_timeout, sh.options.lifetime)) {
    try {
      gw.remove(id);
    } catch (const std::exception& e) {
      // The cluster or the cloud is unreachable now: the next sweep tries again.
      std::fprintf(stderr, "placement: cannot remove expired session %s: %s\n", id.c_str(), e.what());
    }
  }
}

}  // namespace sandbox::server
