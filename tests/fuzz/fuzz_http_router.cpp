// libFuzzer target: the request router and query parser take any method and target.
// Invariants: a match never yields a parameter holding "/.." traversal or NUL, and a
// non-matched path never carries a route.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sandbox/error.hpp"
#include "server/router.hpp"

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
  return 0;
}
