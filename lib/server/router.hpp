// server/router.hpp: the route table of DESIGN section 4 and the matcher over it.
//
// One table drives both the router and /openapi.json, so the two cannot drift apart.
// Matching splits the path into segments, percent-decodes each one, and refuses a segment
// that decodes to "." or "..", or holds "/" or NUL: traversal is stopped before any handler
// sees a name.
//
//   auto m = server::match("GET", "/s1/files/download/a%20b.txt?x=1");
//   // m.outcome == Outcome::matched, m.route->id == RouteId::files_download,
//   // m.param("sid") == "s1", m.param("name") == "a b.txt", m.query == "x=1"
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::server {

enum class RouteId {
  healthz, readyz, metrics, openapi,
  sessions_create, sessions_list, session_get, session_delete,
  exec_python, exec_nodejs, exec_shell,
  result, stream, cancel,
  files_upload, files_list, files_download, files_delete, files_delete_post,
  processes, process_kill,
};

// What a route's request body is, for the handlers and the OpenAPI document.
enum class BodyKind { none, exec, session, multipart };
// What a route answers with on success.
enum class ReplyKind { json, text, bytes, events };

struct Route {
  RouteId id;
  std::string_view method;     // "GET", "POST", "DELETE"
  std::string_view pattern;    // "/{sid}/files/download/{name}"
  std::string_view summary;    // one line, for /openapi.json
  int ok_status = 200;         // the success status
  BodyKind body = BodyKind::none;
  ReplyKind reply = ReplyKind::json;
  bool needs_token = true;     // false: open even when auth is on (health, the API document)
  bool seed = false;           // a seed route: an unknown {sid} may be created on the fly
  bool tail = false;           // the last {param} takes the rest of the path ("dir/a.txt")
};

// Every route, in matching order (routes with a literal first segment come first).
std::span<const Route> routes();

enum class Outcome { matched, not_found, method_not_allowed, bad_path };

struct Match {
  Outcome outcome = Outcome::not_found;
  const Route* route = nullptr;
  std::vector<std::pair<std::string_view, std::string>> params;  // decoded
  std::string_view path;   // the raw path, without the query
  std::string_view query;  // the raw query, without '?'
  std::string allow;       // for method_not_allowed: "GET, POST"
  std::string reason;      // for bad_path

  // The decoded value of `{name}`, "" if absent.
  const std::string& param(std::string_view name) const;
};

// HEAD matches the GET routes (and 405's Allow lists HEAD beside GET).
Match match(std::string_view method, std::string_view target);

// Percent-decodes `in` ('+' stays '+'); nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space = false);

// A parsed query string: decoded name/value pairs in order.
class Query {
 public:
  Query() = default;
  // Throws sandbox::Error(invalid_argument) on a malformed escape.
  explicit Query(std::string_view raw);
  std::optional<std::string_view> get(std::string_view name) const;
  // Throws invalid_argument unless the value is a non-negative decimal integer.
  std::optional<std::uint64_t> get_uint(std::string_view name) const;
  // "true"/"1"/"" -> true, "false"/"0" -> false; else invalid_argument.
  bool get_bool(std::string_view name, bool fallback = false) const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

}  // namespace sandbox::server
