// server/placed.hpp: relaying the requests of sessions placed elsewhere (a pod, the cloud
// gateway), when the Sandbox places sessions (sandbox::Options::placement).
//
// Where a session lives is the library's decision and record (Sandbox::create_session,
// locate, Session::endpoint()); the server only relays: a placed session's lifecycle routes
// are answered from the Session (GET reports its state, DELETE closes it, deleting the pod)
// and every seed route is relayed to the server that holds it, streaming both bodies
// (placement::forward). Local sessions go through the ordinary handlers.
#pragma once

#include "server/connection.hpp"

namespace sandbox::server {

// Answers the exchange if its session is placed elsewhere (for a seed route on an unknown
// id, the Sandbox creates it first, placing it); false = the local handlers answer.
// Throws sandbox::Error.
asio::awaitable<bool> handle_placed(Shared& shared, Exchange& x);

}  // namespace sandbox::server
