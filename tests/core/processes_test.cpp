// sandbox/processes.hpp: ProcessState's letters, and the states of real processes of a
// session (sleeping, stopped, zombie) as Session::processes() reports them.
#include "sandbox/processes.hpp"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "sandbox/sandbox.hpp"

using namespace sandbox;
using namespace std::chrono_literals;

TEST(ProcessStateTest, LettersOfProcFiveRoundTrip) {
  const std::pair<ProcessState, const char*> letters[] = {
      {ProcessState::running, "R"}, {ProcessState::sleeping, "S"}, {ProcessState::disk_sleep, "D"},
      {ProcessState::stopped, "T"}, {ProcessState::tracing_stop, "t"}, {ProcessState::zombie, "Z"},
      {ProcessState::dead, "X"},    {ProcessState::idle, "I"},
  };
  for (auto [state, letter] : letters) {
    EXPECT_EQ(to_string(state), letter);
    EXPECT_EQ(parse_process_state(letter), state) << letter;
  }
  EXPECT_EQ(parse_process_state("zombie"), ProcessState::zombie);
  EXPECT_EQ(parse_process_state("W"), ProcessState::other);
  EXPECT_EQ(parse_process_state(""), ProcessState::other);
  EXPECT_EQ(to_string(ProcessState::other), "?");
}

TEST(ProcessesTest, StatesOfRealProcesses) {
  Options o;
  o.isolation = "rlimit";
  o.preload = {};
  Sandbox sb(o);
  auto s = sb.create_session({.language = Language::shell});
  // A stopped sleep, and a `sleep 30` whose child (the exec'd shell's) it never reaps.
  auto ex = s->start({.language = Language::shell,
                      .code = "sleep 41 & sleep 0.2; kill -STOP $!\nsh -c 'sleep 0.1 & exec sleep 31'",
                      .timeout = 20s});
  const ProcessInfo* sleeping = nullptr;
  const ProcessInfo* stopped = nullptr;
  const ProcessInfo* zombie = nullptr;
  std::vector<ProcessInfo> procs;
  for (int i = 0; i < 100 && !(sleeping && stopped && zombie); ++i) {
    std::this_thread::sleep_for(100ms);
    procs = s->processes();
    sleeping = stopped = zombie = nullptr;
    for (const auto& p : procs) {
      if (p.cmdline == "sleep 31" && p.state == ProcessState::sleeping) sleeping = &p;
      if (p.cmdline == "sleep 41" && p.state == ProcessState::stopped) stopped = &p;
      if (p.name == "sleep" && p.state == ProcessState::zombie) zombie = &p;
    }
  }
  std::string seen;
  for (const auto& p : procs) seen += "\n  " + std::to_string(p.pid) + " " + std::string(to_string(p.state)) + " " + p.cmdline;
  ASSERT_TRUE(sleeping) << "no sleeping `sleep 31`" << seen;
  ASSERT_TRUE(stopped) << "no stopped `sleep 41`" << seen;
  ASSERT_TRUE(zombie) << "no zombie sleep" << seen;
  EXPECT_EQ(zombie->ppid, sleeping->pid) << "the zombie waits for the parent that never reaps";
  EXPECT_GT(sleeping->start_time, 0);

  int pid = sleeping->pid;
  s->kill(pid);
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    std::this_thread::sleep_for(100ms);
    gone = true;
    for (const auto& p : s->processes())
      if (p.pid == pid && p.state != ProcessState::zombie) gone = false;
  }
  EXPECT_TRUE(gone) << "kill(" << pid << ") left it running";
  try {
    s->kill(999999);
    FAIL() << "a pid that is not the session's";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::not_found);
  }
  ex->cancel();
}
