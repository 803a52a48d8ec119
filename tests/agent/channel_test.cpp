// The host's end of an agent's socket (agent/channel.hpp) against a peer we drive: a peer
// that never reads must not block any thread, and is cut off with a reason.
#include "agent/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "sandbox/error.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using sandbox::agent::Channel;
using sandbox::agent::Type;
using Clock = std::chrono::steady_clock;

// An I/O thread like the library's.
struct Loop {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~Loop() {
    work.reset();
    io.stop();
    thread.join();
  }
};

struct Peer {
  sandbox::sys::UniqueFd host, agent;
  std::shared_ptr<Channel> channel;
  std::promise<std::string> closed;
  std::future<std::string> closed_future = closed.get_future();
  std::vector<sandbox::agent::Decoded> frames;  // I/O thread only

  Peer(asio::io_context& io, Channel::Bounds bounds) {
    auto [h, a] = sandbox::sys::socket_pair();
    agent = std::move(a);
    channel = std::make_shared<Channel>(io, h.release(), bounds);
    channel->start([this](sandbox::agent::Decoded&& d) { frames.push_back(std::move(d)); },
                   [this](const std::string& why) { closed.set_value(why); });
  }
};

TEST(Channel, SendNeverBlocksOnAPeerThatDoesNotRead) {
  Loop loop;
  Peer p(loop.io, {.max_queued = 1u << 20, .deadline = 60s});
  const std::string chunk(64 << 10, 'x');
  int sent = 0;
  bool refused = false;
  auto longest = Clock::duration::zero();
  for (int i = 0; i < 200 && !refused; ++i) {
    auto t0 = Clock::now();
    try {
      p.channel->send(Type::run, static_cast<std::uint32_t>(i), chunk);
      ++sent;
    } catch (const sandbox::Error& e) {
      EXPECT_EQ(e.code_value(), sandbox::errc::unavailable);
      EXPECT_NE(std::string(e.what()).find("stopped reading"), std::string::npos) << e.what();
      refused = true;
    }
    longest = std::max(longest, Clock::now() - t0);
  }
  EXPECT_TRUE(refused) << "the queue never overflowed after " << sent << " frames";
  EXPECT_LT(longest, 2s) << "send() blocked";
  ASSERT_EQ(p.closed_future.wait_for(10s), std::future_status::ready) << "no close after the overflow";
  EXPECT_NE(p.closed_future.get().find("stopped reading"), std::string::npos);
  EXPECT_THROW(p.channel->send(Type::run, 1, "{}"), sandbox::Error);
}

TEST(Channel, APeerThatMakesNoProgressIsCutOffAtTheDeadline) {
  Loop loop;
  Peer p(loop.io, {.max_queued = 64u << 20, .deadline = 1s});
  // More than the socket buffer takes, less than the queue's bound.
  for (int i = 0; i < 32; ++i) p.channel->send(Type::run, 1, std::string(64 << 10, 'y'));
  EXPECT_GT(p.channel->queued_bytes(), 0u);
  ASSERT_EQ(p.closed_future.wait_for(15s), std::future_status::ready) << "no close at the deadline";
  EXPECT_NE(p.closed_future.get().find("took no byte"), std::string::npos);
}

TEST(Channel, FramesWithFdsKeepTheirOrder) {
  Loop loop;
  Peer p(loop.io, {});
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  sandbox::sys::UniqueFd r(fds[0]), w(fds[1]);
  p.channel->send(Type::warm, 1, std::string(300 << 10, 'a'));  // more than one write
  p.channel->send_with_fds(Type::kernel, 2, R"({"lang":"python"})", {r.get()});
  p.channel->send(Type::warm, 3, "{}");
  r.reset();  // the channel holds its own copy until it is sent
  sandbox::agent::Decoder d;
  std::vector<sandbox::agent::Frame> got;
  int passed = -1;
  const std::size_t second_starts = sandbox::agent::header_size + (300 << 10);
  std::size_t received_bytes = 0;
  auto deadline = Clock::now() + 10s;
  while (got.size() < 3 && Clock::now() < deadline) {
    char buf[65536];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    pollfd pf{p.agent.get(), POLLIN, 0};
    if (::poll(&pf, 1, 1000) <= 0) continue;
    ssize_t n = ::recvmsg(p.agent.get(), &msg, MSG_CMSG_CLOEXEC);
    ASSERT_GT(n, 0);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_type == SCM_RIGHTS) {
        EXPECT_EQ(passed, -1);
        std::memcpy(&passed, CMSG_DATA(c), sizeof(int));
        // Ancillary data rides on the bytes it was sent with: the second frame's first.
        EXPECT_LE(received_bytes, second_starts);
        EXPECT_LT(second_starts, received_bytes + static_cast<std::size_t>(n)) << "the fd came with the wrong frame";
      }
    }
    received_bytes += static_cast<std::size_t>(n);
    d.feed(buf, static_cast<std::size_t>(n));
    while (auto f = d.next()) got.push_back(std::move(*f));
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].id, 1u);
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_EQ(got[2].id, 3u);
  ASSERT_GE(passed, 0);
  sandbox::sys::UniqueFd received(passed);
  struct stat st{};
  ASSERT_EQ(::fstat(received.get(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST(Channel, AMalformedFrameEndsTheChannelWithAReason) {
  Loop loop;
  Peer p(loop.io, {});
  sandbox::agent::write_frame(p.agent.get(), Type::hello, 0, R"({"pid":1})");
  sandbox::agent::write_frame(p.agent.get(), Type::done, 4, R"({"status":"Finished","images":[{"mime":1}]})");
  ASSERT_EQ(p.closed_future.wait_for(10s), std::future_status::ready);
  EXPECT_NE(p.closed_future.get().find("malformed"), std::string::npos);
}

TEST(Channel, APeerThatExitsClosesWithoutAReason) {
  Loop loop;
  Peer p(loop.io, {});
  p.agent.reset();
  ASSERT_EQ(p.closed_future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(p.closed_future.get(), "");
}

}  // namespace
