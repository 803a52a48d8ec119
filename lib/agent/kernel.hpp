// A persistent interpreter (runtime/kernel.py, runtime/kernel.js) that runs the session's
// python or nodejs code, one execution at a time, over a request pipe and a reply pipe
// framed by agent/frame.hpp (no header bytes; JSON payloads).
//
// Where it comes from (KernelOrigin):
//   own      the agent's child, serving executions of its language in RUN order;
//   oneshot  the agent's child, started for one `fresh` execution and destroyed after it;
//   host     forked by the host from its Python template and passed in (--kernel-fds, or
//            KERNEL after NEED_KERNEL): not our child, so no SIGCHLD, its pid comes with
//            "ready" and its death shows as EOF on the replies.
//
// Its life (KernelState), each step taken in agent/kernel.cpp:
//   requested --KERNEL with 4 fds--> booting --{"ready": true}--> idle --request--> busy
//                                                                  ^-------reply------'
//   Any state ends in destruction: death, boot timeout, the execution's timeout or cancel.
//   A host kernel that dies before "ready" (or never arrives) makes the agent start its own.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "agent/frame.hpp"
#include "agent/reactor.hpp"
#include "sandbox/result.hpp"
#include "sys/fd.hpp"

namespace sandbox::agent {

enum class KernelOrigin { own, oneshot, host };
enum class KernelState { requested, booting, idle, busy };

struct Kernel {
  Language lang = Language::python;
  KernelOrigin origin = KernelOrigin::own;
  KernelState state = KernelState::booting;
  pid_t pid = -1;
  sys::UniqueFd out, err, req, rep;
  std::uint64_t out_tok = 0, err_tok = 0, req_tok = 0, rep_tok = 0;
  std::string pending;  // request bytes not yet written
  // Replies. The kernel runs session code, so a length is not bounded beyond the u32.
  FrameReader replies{0, std::numeric_limits<std::uint32_t>::max()};
  std::optional<std::uint32_t> current;  // the execution it runs: set exactly when busy
  std::optional<std::uint32_t> waiter;   // oneshot: the execution it was started for
  std::uint64_t cpu_total_ms = 0;        // as of the last reply
  std::string boot_stderr;               // stderr tail while no execution is attached
  Clock::time_point boot_deadline{};     // requested or booting: when to give up on it

  bool oneshot() const { return origin == KernelOrigin::oneshot; }
  bool adopted() const { return origin == KernelOrigin::host; }
  bool booted() const { return state == KernelState::idle || state == KernelState::busy; }
};

}  // namespace sandbox::agent
