#include "server/placed.hpp"

#include <fmt/format.h>

#include <tuple>

#include "placement/forward.hpp"
#include "server/handlers.hpp"

namespace sandbox::server {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(25);

Language language_of(RouteId id) {
  switch (id) {
    case RouteId::exec_nodejs: return Language::nodejs;
    case RouteId::exec_shell: return Language::shell;
    default: return Language::python;
  }
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  beast::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

asio::awaitable<bool> handle_placed(Shared& sh, Exchange& x) {
  const std::string& sid = x.match.param("sid");
  if (sid.empty()) co_return false;
  validate_session_id(sid);
  const RouteId route = x.match.route->id;
  std::shared_ptr<Session> s = sh.sandbox.find(sid, x.owner);
  if (!s) {
    // Placed by another gateway (NGINX rehashed after a restart), if it is this tenant's.
    auto locate = [&sh, sid, owner = x.owner] { return sh.sandbox.locate(sid, owner); };
    s = co_await offload(sh.pool, locate);
  }
  if (!s) {
    if (!x.match.route->seed || !sh.options.auto_create) co_return false;  // the handlers' 404
    SessionOptions so;
    so.id = sid;
    so.owner = x.owner;
    so.language = language_of(route);
    auto create = [&sh, so]() -> std::shared_ptr<Session> {
      try {
        return sh.sandbox.create_session(so);
      } catch (const Error& e) {
        // Two requests (or two gateways) raced to create it: use the winner's.
        if (e.code_value() != errc::already_exists) throw;
        if (auto w = sh.sandbox.locate(so.id, so.owner)) return w;
        throw;
      }
    };
    s = co_await offload(sh.pool, create);
  }
  // A lost one is the handlers' (410 session_lost), wherever it was placed.
  if (s->placement() == "local" || s->status() == SessionStatus::lost) co_return false;

  if (route == RouteId::session_delete) {
    auto close = [&sh, sid, owner = x.owner] { sh.sandbox.close_session(sid, owner); };
    co_await offload(sh.pool, close);
    std::string closed = nlohmann::json{{"id", sid}, {"status", "Closed"}}.dump();
    co_await x.reply(200, std::move(closed));
    co_return true;
  }
  if (route == RouteId::session_get) {
    auto describe = [s] { return session_json(*s).dump(); };  // a cloud one asks the cloud
    std::string body = co_await offload(sh.pool, describe);
    co_await x.reply(200, std::move(body));
    co_return true;
  }
  if (!x.match.route->seed) co_return false;

  // A seed route: relay it once the session's server is up. Seed clients know nothing of
  // Pending, so a starting pod is waited for, up to the Sandbox's ready timeout (the cloud
  // gateway does the same for its own).
  auto deadline = std::chrono::steady_clock::now() + sh.sandbox.options().placement.ready_timeout;
  // The state may need the cluster or the cloud: asked off the I/O threads.
  auto check = [s] { return std::pair{s->status(), s->endpoint()}; };
  auto [state, ep] = co_await offload(sh.pool, check);
  while (state == SessionStatus::pending && s->placement() == "kubernetes") {
    if (std::chrono::steady_clock::now() > deadline || x.stopping())
      throw Error(errc::unavailable, fmt::format("session '{}' is still starting", sid));
    co_await sleep_for(kPoll);
    std::tie(state, ep) = co_await offload(sh.pool, check);
  }
  if (state == SessionStatus::closed) throw Error(errc::not_found, fmt::format("no session '{}'", sid));
  if (state == SessionStatus::failed || !ep || ep->base_url.empty())
    throw Error(errc::unavailable, fmt::format("session '{}' failed: {}", sid, ep ? ep->message : "no address"));

  auto in_use = sh.sandbox.hold(sid, x.owner);  // the reaper leaves it alone meanwhile
  // Long polls and event streams are quiet upstream for up to max_wait.
  auto idle = std::chrono::duration_cast<std::chrono::seconds>(sh.options.max_wait) + sh.options.write_timeout;
  placement::Forwarded f;
  try {
    // Pod servers speak plain HTTP on the cluster network: their token may go in clear there.
    f = co_await placement::forward(x.stream(), x.buffer(), x.parser(), ep->base_url, ep->authorization, idle,
                                    /*allow_plaintext_token=*/s->placement() == "kubernetes");
  } catch (...) {
    x.keep_alive = false;  // part of the request body may be gone upstream
    throw;
  }
  x.status = static_cast<int>(f.status);
  x.responded = f.responded;
  x.keep_alive = f.keep_alive && !x.stopping();
  x.bytes_in += f.bytes_in;
  x.bytes_out += f.bytes_out;
  co_return true;
}

}  // namespace sandbox::server
