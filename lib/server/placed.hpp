// server/placed.hpp: sessions that live elsewhere (a pod, the cloud gateway), when the server
// runs as a placement gateway (Options::gateway).
//
// The gateway answers the lifecycle routes of such a session itself (GET reports the pod's
// state, DELETE deletes the pod) and relays every seed route to the server that holds the
// session, streaming both bodies (placement::forward). Sessions of this server itself go
// through the ordinary handlers.
#pragma once

#include <nlohmann/json.hpp>

#include "server/connection.hpp"

namespace sandbox::server {

// Answers the exchange if its session lives elsewhere (or, for a seed route on an unknown
// id, places it elsewhere first); false = the local handlers answer. Throws sandbox::Error.
asio::awaitable<bool> handle_placed(Shared& shared, Exchange& x);

// POST /sessions: places the session; unless it lands here, creates it there and answers
// 201 Pending. `body` is the client's (validated) request, `so` its parsed form.
asio::awaitable<bool> create_placed(Shared& shared, Exchange& x, const SessionOptions& so,
                                    const nlohmann::json& body);

// The sessions placed elsewhere that belong to `owner`, as GET /sessions lists them.
nlohmann::json placed_sessions(Shared& shared, const std::string& owner);

// The idle timeout and lifetime reach the pods too: deletes the expired ones.
void reap_placed(Shared& shared);

}  // namespace sandbox::server
