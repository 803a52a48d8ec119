// One RUN as the agent tracks it, from the frame to its DONE: what to run, its deadline,
// the output forwarded so far, and what it runs in (a shell child, or a kernel).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/reactor.hpp"
#include "sandbox/result.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {

struct Kernel;

inline constexpr std::size_t kDefaultCap = 1u << 20;
inline constexpr std::int64_t kDefaultTimeoutMs = 10'000;

struct Execution {
  std::uint32_t id = 0;
  std::string exec_id;  // the host's name for it (RUN's exec_id), for RESUME
  Language lang = Language::shell;
  std::string code, stdin_text;
  std::int64_t timeout_ms = kDefaultTimeoutMs;
  bool fresh = false;
  std::size_t cap = kDefaultCap;
  nlohmann::json caps = nlohmann::json::object();  // the host's result and image caps, handed to the kernel
  bool started = false;
  Clock::time_point start{};
  std::optional<Clock::time_point> deadline;
  std::size_t sent[3]{};  // bytes forwarded, per stream
  bool truncated = false;
  // shell
  pid_t pid = -1;
  sys::UniqueFd out, err;
  std::uint64_t out_tok = 0, err_tok = 0;
  // python / nodejs
  Kernel* kernel = nullptr;
};

}  // namespace sandbox::agent
