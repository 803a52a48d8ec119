// libFuzzer target: the streaming multipart parser, fed the input in two arbitrary splits.
// Invariant: the bytes delivered for each part are the same whatever the split.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/error.hpp"
#include "server/multipart.hpp"

namespace {

struct Outcome {
  bool ok = false;
  std::vector<std::string> parts;
};

Outcome parse(std::string_view body, std::size_t step) {
  Outcome o;
  try {
    sandbox::server::MultipartParser p(
        "XbX", {.on_part = [&](const sandbox::server::Part&) { o.parts.emplace_back(); },
                .on_data = [&](std::string_view d) { o.parts.back().append(d); },
                .on_part_end = [] {}},
        256, 16);
    for (std::size_t i = 0; i < body.size(); i += step) p.feed(body.substr(i, step));
    p.finish();
    o.ok = true;
  } catch (const sandbox::Error&) {
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)sandbox::server::multipart_boundary(body.substr(0, 100));
  auto whole = parse(body, body.size() ? body.size() : 1);
  auto split = parse(body, 7);
  if (whole.ok && split.ok && whole.parts != split.parts) std::abort();
  return 0;
}
