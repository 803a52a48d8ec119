// libFuzzer target: the request router and query parser take any method and target, and
// the bounded JSON body parser takes the same bytes as a body.
// Invariants: a match never yields a parameter holding "/.." traversal or NUL, a
// non-matched path never carries a route, and a parsed body is an object no deeper than
// kMaxJsonDepth (anything else is a sandbox::Error, never a crash or another exception).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sandbox/error.hpp"
#include "server/json_body.hpp"
#include "server/router.hpp"

namespace {
std::size_t depth_of(const nlohmann::json& j) {
  std::size_t d = 0;
  if (j.is_structured())
    for (auto& v : j) d = std::max(d, depth_of(v));
  return j.is_structured() ? d + 1 : 0;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  std::string_view method = nl == std::string_view::npos ? "GET" : in.substr(0, nl);
  std::string_view target = nl == std::string_view::npos ? in : in.substr(nl + 1);
  auto m = sandbox::server::match(method, target);
  if (m.outcome != sandbox::server::Outcome::matched) {
    if (m.route) std::abort();
  } else {
    for (auto& [k, v] : m.params) {
      if (v.find('\0') != std::string::npos) std::abort();
      std::string_view rest = v;
      while (true) {  // no segment of a parameter may be "." or ".."
        auto seg = rest.substr(0, rest.find('/'));
        if (seg == "." || seg == ".." || seg.empty()) std::abort();
        if (seg.size() == rest.size()) break;
        rest.remove_prefix(seg.size() + 1);
      }
    }
  }
  try {
    sandbox::server::Query q(m.query);
    (void)q.get("offset");
    (void)q.get_uint("wait");
    (void)q.get_bool("overwrite");
  } catch (const sandbox::Error&) {
  }
  try {
    auto body = sandbox::server::parse_object(in, true);
    if (!body.is_object() || depth_of(body) > sandbox::server::kMaxJsonDepth) std::abort();
    sandbox::server::only_fields(body, {"code", "stdin", "timeout", "fresh"}, "the request");
  } catch (const sandbox::Error&) {
  }
  return 0;
}
