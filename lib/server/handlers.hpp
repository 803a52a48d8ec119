// server/handlers.hpp: the answer to each route of router.hpp, in terms of the library.
//
// A handler parses its request, calls the library and formats the result; errors travel
// as sandbox::Error and become HTTP in one place (status.hpp).
#pragma once

#include <nlohmann/json.hpp>

#include "server/connection.hpp"

namespace sandbox::server {

// A session as GET /sessions/{sid} answers it (docs/http.md).
nlohmann::json session_json(const Session& s);

// Routes the exchange (already matched and authenticated) and answers it. Never throws.
asio::awaitable<void> handle(Shared& shared, Exchange& x);

}  // namespace sandbox::server
