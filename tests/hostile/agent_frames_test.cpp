// Agent-frame forgery from inside a kernel (issue 11, item 1) and huge results (item 5): the
// session's code writes records of the wrong type, huge sizes and deep JSON into what its
// kernel sends the agent (and so what the agent relays to the host). The host decodes every
// agent frame with one validating decoder: the server survives, the neighbour session keeps
// answering (verdict() checks it), the attacked session restarts its agent, and results over
// the host's caps come back cut with `truncated` and a note.
//
// AgentChannel.* (rlimit only, where the host knows the agent's pid) is the agent that stops
// reading (stopped by the host, since code cannot signal it): the host's writes to it queue without blocking any thread, and it is cut off.
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <future>
#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {

std::string backend_name(const ::testing::TestParamInfo<std::string>& info);

namespace {

using sandbox::Result;
using sandbox::Status;

class AgentFrames : public Hostile {
 protected:
  // The attacked session must come back: its next run answers.
  bool recovers() {
    auto r = py("1+1", 20s);
    return r.result == "2";
  }
  static bool noted(const Result& r, std::string_view word) {
    return r.note && r.note->find(word) != std::string::npos;
  }
};

// The kernel module (sys.modules['__main__']) holds the channel to the agent: user code
// can append to its image list, call its reply(), or write raw bytes to its reply fd.
constexpr const char* kKernel = "import sys as _sys, struct as _struct\n_k = _sys.modules['__main__']\n";

TEST_P(AgentFrames, ImageRecordOfTheWrongType) {
  // The issue's one-liner: before the fix it ended the whole server (std::terminate).
  auto r = py(std::string(kKernel) + "_k._images.append({'mime': 1})\n'after'", 20s);
  bool ok = r.status != Status::finished && noted(r, "malformed") && recovers();
  verdict(kAll, "an image record of the wrong type, relayed by the agent", ok, brief(r));
}

TEST_P(AgentFrames, ForgedReplyWithWrongTypes) {
  auto r = py(std::string(kKernel) +
                  "_k.reply({'status': 'ok', 'result': 123, 'exit_code': 'x', 'cpu_ms': -5, 'error': 'e',\n"
                  "          'images': [{'mime': 'image/png', 'data': ['x']}]})\n"
                  "import time; time.sleep(1)\n",
              20s);
  bool ok = r.status != Status::finished && noted(r, "malformed") && recovers();
  verdict(kAll, "a forged kernel reply with fields of the wrong types", ok, brief(r));
}

TEST_P(AgentFrames, ForgedReplyNestedDeep) {
  // 400 deep: the agent relays it, the host's depth bound refuses it.
  auto r = py(std::string(kKernel) +
                  "body = b'{\"status\": \"ok\", \"images\": ' + b'[' * 400 + b']' * 400 + b'}'\n"
                  "_k._write(_k.REP_FD, _struct.pack('<I', len(body)) + body)\n"
                  "import time; time.sleep(1)\n",
              20s);
  bool ok = r.status != Status::finished && noted(r, "deep") && recovers();
  verdict(kAll, "a forged kernel reply nested 400 deep", ok, brief(r));
}

TEST_P(AgentFrames, ForgedReplyNestedVeryDeep) {
  // 300,000 deep: whatever the agent makes of it (it may die of it), the host survives.
  auto r = py(std::string(kKernel) +
                  "body = b'{\"status\": \"ok\", \"result\": ' + b'[' * 300000 + b']' * 300000 + b'}'\n"
                  "_k._write(_k.REP_FD, _struct.pack('<I', len(body)) + body)\n"
                  "import time; time.sleep(1)\n",
              20s);
  bool ok = r.status != Status::finished && recovers();
  verdict(kAll, "a forged kernel reply nested 300,000 deep", ok, brief(r));
}

TEST_P(AgentFrames, HugeResultIsCapped) {
  // case_limits(): output_bytes 1 MiB, so the result's cap is 1 MiB.
  auto r = py("'A' * (8 << 20)", 30s);
  bool ok = r.status == Status::finished && r.result && r.result->size() <= (1u << 20) &&
            r.result->size() > 1000 && r.truncated && noted(r, "result cut");
  verdict(kAll, "an 8 MiB result, cut to the host's cap", ok,
          fmt::format("{}; result {} bytes", brief(r), r.result ? r.result->size() : 0));
}

TEST_P(AgentFrames, HugeForgedImagesAreDropped) {
  // One image over the per-image cap (4 MiB), then more than the execution's total (8 MiB),
  // forged past the kernel's own cut by calling reply() directly. The caps count decoded
  // bytes: 6 MiB of base64 is 4.5 MiB, 4 MiB of it is 3 MiB (two fit in 8 MiB, not three).
  auto r = py(std::string(kKernel) +
                  "big = {'mime': 'image/png', 'data': 'A' * (6 << 20)}\n"
                  "many = [{'mime': 'image/png', 'data': 'B' * (4 << 20)} for _ in range(5)]\n"
                  "_k.reply({'status': 'ok', 'images': [big] + many})\n"
                  "del big, many\n",  // the kernel's own reply follows at once; the agent drops it
              30s);
  std::size_t total = 0;
  for (const auto& img : r.images) total += img.data.size();
  bool ok = r.images.size() == 2 && total <= (8u << 20) && r.truncated && noted(r, "dropped") && recovers();
  verdict(kAll, "forged images over the per-image and per-execution caps", ok,
          fmt::format("{}; {} images kept, {} bytes", brief(r), r.images.size(), total));
}

TEST_P(AgentFrames, HugeExceptionIsCapped) {
  auto r = py("raise ValueError('B' * (8 << 20))", 30s);
  bool ok = r.status == Status::failed && r.error && r.error->value.size() <= (1u << 20) &&
            r.error->traceback.size() <= (1u << 20) && r.truncated && noted(r, "error value cut");
  verdict(kAll, "an 8 MiB exception message, cut to the host's cap", ok, brief(r));
}

INSTANTIATE_TEST_SUITE_P(Backends, AgentFrames, ::testing::Values("rlimit", "namespaces", "runsc"), backend_name);

// ---- an agent that stops reading ----------------------------------------------------

TEST(AgentChannel, AnAgentThatStopsReadingIsCutOffWhileANeighbourAnswers) {
  sandbox::Options o;
  o.isolation = "rlimit";  // the agent's host pid is the kernel's parent there
  o.runtime_dir = SANDBOX_TEST_RUNTIME_DIR;
  o.preload = {};
  sandbox::Sandbox sb(o);
  auto victim = sb.create_session({});
  auto neighbour = sb.create_session({});
  ASSERT_EQ(neighbour->run({.code = "1+1"}).result, "2");
  // Code cannot stop its agent any more (another uid): the host does it here, standing in for
  // an agent that is wedged or rewritten, so that it reads nothing more.
  Result own = victim->run({.code = "import os, signal\ntry:\n  os.kill(os.getppid(), signal.SIGSTOP)\n  r = 'sent'\n"
                                    "except PermissionError:\n  r = os.getppid()\nr"});
  ASSERT_EQ(own.status, Status::finished) << sandbox::to_json(own);
  ASSERT_TRUE(own.result) << sandbox::to_json(own);
  ASSERT_NE(*own.result, "'sent'") << "code could signal its agent";
  const int agent_pid = std::stoi(*own.result);
  ASSERT_GT(agent_pid, 1);
  auto stopped = victim->start({.code = "import time\ntime.sleep(60)", .timeout = std::chrono::seconds(90)});
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(::kill(agent_pid, SIGSTOP), 0);
  // More than the socket takes: the host queues it and returns at once.
  const auto t0 = std::chrono::steady_clock::now();
  auto queued = victim->start({.code = "#" + std::string(4u << 20, 'x') + "\n1", .timeout = std::chrono::seconds(90)});
  const auto start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(start_ms, 2000) << "start() blocked on the agent's socket";
  // Meanwhile the neighbour answers, each time within 2 s.
  long worst = 0;
  int answers = 0;
  const auto n0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - n0 < 3s && answers < 100) {
    const auto s0 = std::chrono::steady_clock::now();
    auto r = neighbour->run({.code = "1+1"});
    const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - s0).count();
    worst = std::max(worst, ms);
    ++answers;
    EXPECT_EQ(r.result, "2");
  }
  EXPECT_LT(worst, 2000) << answers << " answers";
  std::printf("neighbour while the agent did not read: %d answers, worst %ld ms\n", answers, worst);
  ::testing::Test::RecordProperty("neighbour_worst_ms", std::to_string(worst));
  // The stopped agent is cut off at the write deadline (5 s) and killed; its executions say why.
  ASSERT_TRUE(stopped->wait_for(30s)) << "the stopped agent was never cut off";
  Result r = stopped->snapshot({});
  EXPECT_EQ(r.status, Status::failed);
  ASSERT_TRUE(r.note) << sandbox::to_json(r);
  EXPECT_NE(r.note->find("stopped reading"), std::string::npos) << *r.note;
  ASSERT_TRUE(queued->wait_for(10s));
  EXPECT_NE(queued->snapshot({}).status, Status::finished);
  // The session restarts its agent.
  EXPECT_EQ(victim->run({.code = "1+1", .timeout = std::chrono::seconds(20)}).result, "2");
  EXPECT_TRUE(sb.responsive(std::chrono::seconds(5)));
}

}  // namespace
}  // namespace hostile
