// The issue's bar: a neighbouring session keeps answering `1+1` within 2 s while another
// session runs a fork bomb, a memory bomb or an output flood.
#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

struct Answers {
  int count = 0, slow = 0, wrong = 0;
  long worst_ms = 0;
};

}  // namespace

void Neighbour::bomb_with_neighbour(std::string_view what, const std::string& bomb) {
    auto b = new_session("B");
    b->run({.code = "1+1"});  // warm
    auto ex = start_py(bomb, 5s);
    std::this_thread::sleep_for(300ms);  // let the bomb get going
    Answers a;
    const auto t0 = std::chrono::steady_clock::now();
    while (a.count < 400 && std::chrono::steady_clock::now() - t0 < 3500ms) {
      const auto s0 = std::chrono::steady_clock::now();
      auto r = b->run({.code = "1+1", .timeout = 10s});
      const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - s0).count();
      ++a.count;
      a.worst_ms = std::max(a.worst_ms, ms);
      if (ms >= 2000) ++a.slow;
      if (r.result != "2") ++a.wrong;
      snapshot();
    }
    const bool bomb_running = !ex->done();
    ex->cancel();
    last_ = ex->wait();
    verdict(kAll, what, a.count > 0 && a.slow == 0 && a.wrong == 0,
            fmt::format("{} answers, worst {} ms, {} slow, {} wrong; bomb {} ({})", a.count, a.worst_ms, a.slow,
                        a.wrong, bomb_running ? "still running" : "ended", brief(last_)));
}

TEST_P(Neighbour, DuringForkBomb) {
  bomb_with_neighbour("a neighbour slowed by a fork bomb", R"(
import time
t0 = time.time()
while time.time() - t0 < 4.5:
    try:
        if _os.fork() == 0:
            while time.time() - t0 < 4.5:
                try:
                    _os.fork()
                except OSError:
                    time.sleep(0.01)
            _os._exit(0)
    except OSError:
        time.sleep(0.01)
)");
}

TEST_P(Neighbour, DuringMemoryBomb) {
  bomb_with_neighbour("a neighbour slowed by a memory bomb", R"(
import time
t0, held = time.time(), []
while time.time() - t0 < 4.5:
    try:
        held.append(b"\x01" * (32 << 20))
    except MemoryError:
        held = []
)");
}

TEST_P(Neighbour, DuringOutputFlood) {
  bomb_with_neighbour("a neighbour slowed by an output flood", R"(
import time
t0, block = time.time(), b"x" * (1 << 16)
while time.time() - t0 < 4.5:
    _os.write(1, block)
    _os.write(2, block)
)");
}

}  // namespace hostile
