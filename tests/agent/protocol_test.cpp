// The agent -> host frame decoder (agent/protocol.hpp): everything an agent sends is
// untrusted, and decode() is the one place that checks it.
#include "agent/protocol.hpp"

#include <gtest/gtest.h>

#include <string>

#include "sandbox/error.hpp"

namespace {

using namespace sandbox::agent;

Frame frame(Type t, std::string payload, std::uint32_t id = 7, std::uint8_t stream = 0) {
  return Frame{t, stream, id, std::move(payload)};
}

// The message of the sandbox::Error decode() threw, or "" if it threw none.
std::string rejection(Type t, std::string payload, std::uint8_t stream = 0) {
  try {
    decode(frame(t, std::move(payload), 7, stream));
  } catch (const sandbox::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Protocol, DecodesAWellFormedDone) {
  auto d = decode(frame(Type::done, R"({"status":"Failed","exit_code":3,"result":"'x'",
      "images":[{"mime":"image/png","data":"QUJD"}],"error":{"name":"E","value":"v","traceback":"t"},
      "truncated":true,"cpu_ms":12,"peak_rss_bytes":0,"duration_ms":5,"termination":"timeout",
      "note":"n","extra":{"ignored":[1,2]}})"));
  EXPECT_EQ(d.id, 7u);
  auto& done = std::get<Done>(d.message);
  EXPECT_EQ(done.status, sandbox::Status::failed);
  EXPECT_EQ(done.exit_code, 3);
  EXPECT_EQ(done.result, "'x'");
  ASSERT_EQ(done.images.size(), 1u);
  EXPECT_EQ(done.images[0].data, "QUJD");
  ASSERT_TRUE(done.error);
  EXPECT_EQ(done.error->name, "E");
  EXPECT_TRUE(done.truncated);
  EXPECT_EQ(done.cpu_ms, 12u);
  EXPECT_FALSE(done.peak_rss_bytes);  // 0 = not measured
  EXPECT_EQ(done.termination, sandbox::Termination::timeout);
  EXPECT_EQ(done.note, "n");
}

TEST(Protocol, NullsAreAbsentFields) {
  auto d = decode(frame(Type::done, R"({"status":"Finished","exit_code":null,"result":null,"images":[],
      "error":null,"note":null})"));
  auto& done = std::get<Done>(d.message);
  EXPECT_FALSE(done.result);
  EXPECT_FALSE(done.error);
  EXPECT_FALSE(done.exit_code);
}

TEST(Protocol, RejectsWrongTypesInDone) {
  // The issue's one-liner: an image whose mime is a number.
  EXPECT_NE(rejection(Type::done, R"({"status":"Finished","images":[{"mime":1}]})"), "");
  for (const char* bad : {R"({"status":1})", R"({"status":"Bogus"})", R"({})", R"([])", R"("x")", "not json",
                          R"({"status":"Finished","result":123})", R"({"status":"Finished","images":{}})",
                          R"({"status":"Finished","images":["x"]})", R"({"status":"Finished","images":[{"data":[]}]})",
                          R"({"status":"Finished","error":"e"})", R"({"status":"Finished","error":{"name":{}}})",
                          R"({"status":"Finished","exit_code":"1"})", R"({"status":"Finished","exit_code":1.5})",
                          R"({"status":"Finished","exit_code":99999999999})", R"({"status":"Finished","truncated":"yes"})",
                          R"({"status":"Finished","cpu_ms":-1})", R"({"status":"Finished","cpu_ms":1e300})",
                          R"({"status":"Finished","termination":7})", R"({"status":"Finished","note":[]})"}) {
    EXPECT_NE(rejection(Type::done, bad), "") << bad;
  }
}

TEST(Protocol, BoundsJsonDepth) {
  std::string deep = R"({"status":"Finished","x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(rejection(Type::done, deep).find("deep"), std::string::npos);
  EXPECT_NE(rejection(Type::reply, std::string(200, '[') + std::string(200, ']')), "");
  // Brackets inside strings are text, not nesting.
  EXPECT_TRUE(json_depth_within(R"(["[[[[[[[[[[[[[[[[[[[[[[[\"[[[["])", 2));
  EXPECT_FALSE(json_depth_within("[[[", 2));
  EXPECT_EQ(rejection(Type::done, R"({"status":"Finished","result":")" + std::string(1000, '[') + R"("})"), "");
}

TEST(Protocol, ChecksEveryFrameType) {
  EXPECT_EQ(std::get<Hello>(decode(frame(Type::hello, R"({"pid":5,"version":"1"})")).message).pid, 5);
  EXPECT_NE(rejection(Type::hello, R"({"pid":"5"})"), "");
  EXPECT_NE(rejection(Type::hello, R"({"pid":-1})"), "");
  EXPECT_EQ(rejection(Type::started, "{}"), "");
  EXPECT_NE(rejection(Type::started, "{"), "");
  EXPECT_EQ(rejection(Type::output, "raw \xff bytes", 2), "");
  EXPECT_NE(rejection(Type::output, "x", 3), "");
  EXPECT_EQ(rejection(Type::need_kernel, R"({"lang":"python"})"), "");
  EXPECT_NE(rejection(Type::need_kernel, R"({"lang":["python"]})"), "");
  EXPECT_NE(rejection(Type::reply, "{"), "");
  EXPECT_NE(rejection(Type::run, "{}"), "");  // a host -> agent type from the agent
  EXPECT_NE(rejection(static_cast<Type>(200), "{}"), "");
  EXPECT_NE(rejection(Type::hello, std::string(max_control_payload + 1, ' ')), "");
}

TEST(Protocol, DecodesReplies) {
  auto procs = decode_processes(R"([{"pid":1,"ppid":0,"name":"agent","cmdline":"a b","state":"S",
      "rss_bytes":10,"cpu_time_ms":2,"start_time":1700000000}])");
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0].name, "agent");
  EXPECT_EQ(procs[0].rss_bytes, 10u);
  EXPECT_TRUE(decode_processes(R"({"error":"unavailable"})").empty());
  EXPECT_THROW(decode_processes(R"([{"pid":"1"}])"), sandbox::Error);
  EXPECT_THROW(decode_processes(R"([1])"), sandbox::Error);
  EXPECT_THROW(decode_processes(R"("x")"), sandbox::Error);
  EXPECT_FALSE(decode_kill_reply(R"({"ok":true})"));
  EXPECT_EQ(decode_kill_reply(R"({"error":"not_found"})"), "not_found");
  EXPECT_THROW(decode_kill_reply(R"([])"), sandbox::Error);
}

TEST(Protocol, DecoderGivesBackALargeFramesBuffer) {
  Decoder d;
  std::string big = encode(Type::output, 1, std::string(8u << 20, 'x'), 1);
  d.feed(big.data(), big.size());
  auto f = d.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload.size(), 8u << 20);
  EXPECT_FALSE(d.next());
  std::string small = encode(Type::started, 1, "{}");
  d.feed(small.data(), small.size());
  EXPECT_TRUE(d.next());
}

}  // namespace

// agent/frame.hpp is the codec of both the control socket and the kernels' pipes: the same
// length prefix, with 8 header bytes or none.
TEST(Frame, ControlFramesAreTheCodecWithAnEightByteHeader) {
  std::string bytes = encode(Type::output, 0x01020304, "hello", 2);
  ASSERT_EQ(bytes.size(), header_size + 5);
  EXPECT_EQ(get_u32le(bytes.data()), 5u);
  EXPECT_EQ(bytes[4], static_cast<char>(Type::output));
  EXPECT_EQ(bytes[5], 2);
  EXPECT_EQ(get_u32le(bytes.data() + 8), 0x01020304u);
  FrameReader raw(header_size - length_size, max_payload);
  raw.feed(bytes.data(), bytes.size());
  auto f = raw.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header.size(), 8u);
  EXPECT_EQ(f->payload, "hello");
}

TEST(Frame, KernelFramesAreALengthAndJson) {
  // As runtime/kernel.py writes them: struct.pack("<I", len(body)) + body.
  std::string body = R"({"ready": true})";
  std::string bytes = frame_bytes({}, body);
  ASSERT_EQ(bytes.size(), 4 + body.size());
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x0f\x00\x00\x00", 4));
  FrameReader r(0, 1u << 20);
  std::string two = bytes + frame_bytes({}, "{}");
  // Byte by byte: a frame comes out only once whole.
  int seen = 0;
  for (char c : two) {
    r.feed(&c, 1);
    while (auto f = r.next()) {
      EXPECT_TRUE(f->header.empty());
      EXPECT_EQ(f->payload, seen == 0 ? body : "{}");
      ++seen;
    }
  }
  EXPECT_EQ(seen, 2);
  FrameReader small(0, 4);
  std::string big = frame_bytes({}, "12345");
  small.feed(big.data(), big.size());
  EXPECT_THROW(small.next(), sandbox::Error);
}
