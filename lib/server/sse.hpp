// server/sse.hpp: server-sent events framing (the text/event-stream format).
//
//   std::string e = server::sse_event("stdout", R"({"offset":0,"text":"hi\n"})");
//   // "event: stdout\ndata: {...}\n\n"
#pragma once

#include <string>
#include <string_view>

namespace sandbox::server {

// One event; every line of `data` becomes its own `data:` line, as the format requires.
std::string sse_event(std::string_view event, std::string_view data, std::string_view id = {});

// A comment line that keeps proxies from closing an idle stream.
inline constexpr std::string_view sse_keepalive = ": keep-alive\n\n";

}  // namespace sandbox::server
