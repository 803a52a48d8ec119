// What the agent does to itself before it serves anything: takes the code's uid as its
// effective uid (or keeps its own, --keep-uid), drops capabilities, becomes non-dumpable.
// Exits with status 3 when any of it fails (2 for a bad combination of options).
#pragma once

#include <sys/types.h>

#include <optional>

namespace sandbox::agent {

// `durable` (--listen-fd): the agent outlives its server, so no parent-death signal.
void confine_self(std::optional<uid_t> code_uid, bool keep_uid, bool durable);

}  // namespace sandbox::agent
