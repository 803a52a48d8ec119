#include "server/router.hpp"

#include <charconv>
#include <cstdint>

#include "sandbox/error.hpp"

namespace sandbox::server {
namespace {

using enum RouteId;

constexpr Route kRoutes[] = {
    {healthz, "GET", "/healthz", "Liveness: the server answers", 200, BodyKind::none,
     ReplyKind::json, false},
    {readyz, "GET", "/readyz", "Readiness: new sessions can be created here (else 503 and why)",
     200, BodyKind::none, ReplyKind::json, false},
    {metrics, "GET", "/metrics", "Prometheus metrics", 200, BodyKind::none, ReplyKind::text},
    {openapi, "GET", "/openapi.json", "This API as an OpenAPI 3 document", 200, BodyKind::none,
     ReplyKind::json, false},
    {sessions_create, "POST", "/sessions", "Create a session", 201, BodyKind::session},
    {sessions_list, "GET", "/sessions", "List the caller's sessions"},
    {session_get, "GET", "/sessions/{sid}", "A session's state (poll until Ready)"},
    {session_delete, "DELETE", "/sessions/{sid}", "Close a session and remove its workspace"},
    {exec_python, "POST", "/{sid}/exec/python", "Run Python code", 202, BodyKind::exec,
     ReplyKind::json, true, true},
    {exec_nodejs, "POST", "/{sid}/exec/nodejs", "Run Node.js code", 202, BodyKind::exec,
     ReplyKind::json, true, true},
    {exec_shell, "POST", "/{sid}/exec/shell", "Run a shell script", 202, BodyKind::exec,
     ReplyKind::json, true, true},
    {result, "GET", "/{sid}/result",
     "The latest execution's result (offset/limit page the output; wait long-polls)", 200,
     BodyKind::none, ReplyKind::json, true, true},
    {stream, "GET", "/{sid}/stream", "The execution's output and result as server-sent events",
     200, BodyKind::none, ReplyKind::events, true, true},
    {cancel, "POST", "/{sid}/cancel", "Cancel the latest execution (or ?execution_id=)", 200,
     BodyKind::none, ReplyKind::json, true, true},
    {files_upload, "POST", "/{sid}/files/upload", "Upload a file (multipart field 'file')", 200,
     BodyKind::multipart, ReplyKind::json, true, true},
    {files_list, "GET", "/{sid}/files/list", "List the workspace", 200, BodyKind::none,
     ReplyKind::json, true, true},
    {files_download, "GET", "/{sid}/files/download/{name}", "Download a file", 200,
     BodyKind::none, ReplyKind::bytes, true, true, true},
    {files_delete, "DELETE", "/{sid}/files/delete/{name}", "Delete a file", 200, BodyKind::none,
     ReplyKind::json, true, true, true},
    {files_delete_post, "POST", "/{sid}/files/delete/{name}", "Delete a file", 200,
     BodyKind::none, ReplyKind::json, true, true, true},
    {processes, "GET", "/{sid}/processes", "The session's processes", 200, BodyKind::none,
     ReplyKind::json, true, true},
    {process_kill, "POST", "/{sid}/process/kill/{pid}", "Kill a process of the session", 200,
     BodyKind::none, ReplyKind::json, true, true},
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits "/a/b/c" into {"a","b","c"}; "" for "/" ; keeps empty segments ("//") so they
// fail to match.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.size() <= 1) return out;
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

}  // namespace

std::span<const Route> routes() { return kRoutes; }

const std::string& Match::param(std::string_view name) const {
  static const std::string empty;
  for (auto& [k, v] : params)
    if (k == name) return v;
  return empty;
}

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Match match(std::string_view method, std::string_view target) {
  Match m;
  auto q = target.find('?');
  m.path = target.substr(0, q);
  if (q != std::string_view::npos) m.query = target.substr(q + 1);
  if (m.path.empty() || m.path.front() != '/') {
    m.outcome = Outcome::bad_path;
    m.reason = "the request target must be an absolute path";
    return m;
  }
  auto raw = split_path(m.path);
  // Decode every segment once; any traversal-shaped segment refuses the whole request.
  std::vector<std::string> segs;
  segs.reserve(raw.size());
  for (auto s : raw) {
    auto d = percent_decode(s);
    if (!d) {
      m.outcome = Outcome::bad_path;
      m.reason = "malformed percent-encoding in the path";
      return m;
    }
    if (*d == "." || *d == ".." || d->find('/') != std::string::npos ||
        d->find('\0') != std::string::npos || d->find('\\') != std::string::npos) {
      m.outcome = Outcome::bad_path;
      m.reason = "path segment '" + std::string(s) + "' is not allowed";
      return m;
    }
    segs.push_back(std::move(*d));
  }

  // HEAD is answered wherever GET is: the same route, headers only.
  const std::string_view wanted = method == "HEAD" ? std::string_view("GET") : method;
  std::string allow;
  for (const Route& r : kRoutes) {
    auto pat = split_path(r.pattern);
    bool ok = r.tail ? segs.size() >= pat.size() : segs.size() == pat.size();
    std::vector<std::pair<std::string_view, std::string>> params;
    for (std::size_t i = 0; ok && i < pat.size(); ++i) {
      auto p = pat[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        if (segs[i].empty()) { ok = false; break; }
        std::string value = segs[i];
        if (r.tail && i + 1 == pat.size()) {
          for (std::size_t j = i + 1; j < segs.size(); ++j) {
            if (segs[j].empty()) { ok = false; break; }
            value += '/';
            value += segs[j];
          }
        }
        params.emplace_back(p.substr(1, p.size() - 2), std::move(value));
      } else if (p != segs[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (r.method != wanted) {
      if (allow.find(r.method) == std::string::npos) {
        if (!allow.empty()) allow += ", ";
        allow += r.method;
        if (r.method == "GET") allow += ", HEAD";
      }
      continue;
    }
    m.outcome = Outcome::matched;
    m.route = &r;
    m.params = std::move(params);
    return m;
  }
  if (!allow.empty()) {
    m.outcome = Outcome::method_not_allowed;
    m.allow = std::move(allow);
  }
  return m;
}

Query::Query(std::string_view raw) {
  while (!raw.empty()) {
    auto amp = raw.find('&');
    auto item = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    auto k = percent_decode(item.substr(0, eq), true);
    auto v = percent_decode(eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1),
                            true);
    if (!k || !v) throw Error(errc::invalid_argument, "malformed percent-encoding in the query");
    items_.emplace_back(std::move(*k), std::move(*v));
  }
}

std::optional<std::string_view> Query::get(std::string_view name) const {
  for (auto& [k, v] : items_)
    if (k == name) return std::string_view(v);
  return std::nullopt;
}

std::optional<std::uint64_t> Query::get_uint(std::string_view name) const {
  auto v = get(name);
  if (!v) return std::nullopt;
  std::uint64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (v->empty() || ec != std::errc{} || p != v->data() + v->size())
    throw Error(errc::invalid_argument,
                "query parameter '" + std::string(name) + "' must be a non-negative integer");
  return out;
}

bool Query::get_bool(std::string_view name, bool fallback) const {
  auto v = get(name);
  if (!v) return fallback;
  if (*v == "" || *v == "1" || *v == "true") return true;
  if (*v == "0" || *v == "false") return false;
  throw Error(errc::invalid_argument,
              "query parameter '" + std::string(name) + "' must be true or false");
}

}  // namespace sandbox::server
