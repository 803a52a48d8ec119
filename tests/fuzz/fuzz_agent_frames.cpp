// libFuzzer target: the agent -> host frame decoder (agent/protocol.hpp), fed a byte stream
// as a hostile agent would send it. Invariant: the decoder either yields typed values or
// throws sandbox::Error; nothing else escapes (the I/O thread serves every session).
// The first input byte picks the frame type, so that most inputs reach a JSON decoder.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/protocol.hpp"
#include "sandbox/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sandbox::agent;
  if (size == 0) return 0;
  static constexpr Type types[] = {Type::hello, Type::started, Type::output, Type::done,
                                   Type::reply, Type::need_kernel, Type::resume, Type::synced,
                                   Type::run};
  const Type type = types[data[0] % std::size(types)];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  // As one whole frame of that type...
  try {
    decode(Frame{type, static_cast<std::uint8_t>(data[0] >> 4), 1, std::string(body)});
  } catch (const sandbox::Error&) {
  }
  try {
    decode_processes(body);
  } catch (const sandbox::Error&) {
  }
  try {
    decode_kill_reply(body);
  } catch (const sandbox::Error&) {
  }
  // ...and as a raw stream, split where the frame headers say.
  Decoder d;
  d.feed(body.data(), body.size());
  try {
    while (auto f = d.next()) {
      try {
        decode(std::move(*f));
      } catch (const sandbox::Error&) {
      }
    }
  } catch (const sandbox::Error&) {
  }
  return 0;
}
