#include "agent/protocol.hpp"

#include <algorithm>
#include <limits>

#include <nlohmann/json.hpp>

#include "json_shape.hpp"
#include "sandbox/error.hpp"

namespace sandbox::agent {
namespace {

using nlohmann::json;

[[noreturn]] void bad(std::string_view what) {
  throw Error(errc::internal, "malformed agent frame: " + std::string(what));
}

// Parses a control payload: bounded in size and depth before nlohmann sees it (its parser
// is iterative, but copies and destruction of a deep value recurse).
json parse_bounded(std::string_view payload, std::string_view what) {
  if (!json_depth_within(payload, max_json_depth)) bad(std::string(what) + " nests too deep");
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad(std::string(what) + " is not JSON");
  return j;
}

json parse_object(std::string_view payload, std::string_view what) {
  json j = parse_bounded(payload, what);
  if (!j.is_object()) bad(std::string(what) + " is not an object");
  return j;
}

// Field readers: absent or null is nullopt; any other type than the expected one is an error.
const json* find(const json& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}
std::optional<std::string> opt_string(const json& o, const char* key) {
  const json* v = find(o, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(std::string("'") + key + "' is not a string");
  return v->get<std::string>();
}
std::string string_or(const json& o, const char* key, std::string dflt = {}) {
  auto v = opt_string(o, key);
  return v ? std::move(*v) : std::move(dflt);
}
std::optional<std::uint64_t> opt_count(const json& o, const char* key) {
  const json* v = find(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number_unsigned()) {
    // 0 is unsigned; a negative or fractional count is a broken agent.
    bad(std::string("'") + key + "' is not a non-negative integer");
  }
  return v->get<std::uint64_t>();
}
std::optional<std::int64_t> opt_int(const json& o, const char* key, std::int64_t lo, std::int64_t hi) {
  const json* v = find(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) bad(std::string("'") + key + "' is not an integer");
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
    bad(std::string("'") + key + "' is out of range");
  std::int64_t x = v->get<std::int64_t>();
  if (x < lo || x > hi) bad(std::string("'") + key + "' is out of range");
  return x;
}
bool bool_or(const json& o, const char* key, bool dflt) {
  const json* v = find(o, key);
  if (!v) return dflt;
  if (!v->is_boolean()) bad(std::string("'") + key + "' is not a boolean");
  return v->get<bool>();
}

Status to_status(std::string_view s) {
  if (s == "Finished") return Status::finished;
  if (s == "Failed") return Status::failed;
  if (s == "Timeout") return Status::timeout;
  if (s == "Killed") return Status::killed;
  bad("unknown status");
}

Termination to_termination(std::string_view s) {
  if (s == "none") return Termination::none;
  if (s == "timeout") return Termination::timeout;
  if (s == "cancelled") return Termination::cancelled;
  if (s == "kernel_died") return Termination::kernel_died;
  if (s == "out_of_memory") return Termination::out_of_memory;
  if (s == "process_limit") return Termination::process_limit;
  if (s == "lifetime") return Termination::lifetime;
  bad("unknown termination");
}

Done decode_done(std::string_view payload) {
  json j = parse_object(payload, "DONE");
  Done d;
  auto status = opt_string(j, "status");
  if (!status) bad("DONE without a status");
  d.status = to_status(*status);
  if (auto v = opt_int(j, "exit_code", std::numeric_limits<int>::min(), std::numeric_limits<int>::max()))
    d.exit_code = static_cast<int>(*v);
  d.result = opt_string(j, "result");
  if (const json* imgs = find(j, "images")) {
    if (!imgs->is_array()) bad("'images' is not an array");
    for (const auto& img : *imgs) {
      if (!img.is_object()) bad("an image is not an object");
      d.images.push_back({string_or(img, "mime", "image/png"), string_or(img, "data")});
    }
  }
  if (const json* e = find(j, "error")) {
    if (!e->is_object()) bad("'error' is not an object");
    d.error = ErrorInfo{string_or(*e, "name"), string_or(*e, "value"), string_or(*e, "traceback")};
  }
  d.truncated = bool_or(j, "truncated", false);
  d.cpu_ms = opt_count(j, "cpu_ms");
  d.peak_rss_bytes = opt_count(j, "peak_rss_bytes");
  if (d.peak_rss_bytes == 0u) d.peak_rss_bytes.reset();  // 0: not measured
  (void)opt_count(j, "duration_ms");  // the host measures its own; checked all the same
  d.termination = to_termination(string_or(j, "termination", "none"));
  d.note = opt_string(j, "note");
  return d;
}

}  // namespace

bool json_depth_within(std::string_view text, int max_depth) {
  return max_depth >= 0 && json_shape(text, static_cast<std::size_t>(max_depth)).depth <= static_cast<std::size_t>(max_depth);
}

Decoded decode(Frame&& f) {
  Decoded d;
  d.id = f.id;
  if (f.type != Type::output && f.type != Type::done && f.payload.size() > max_control_payload)
    bad("control payload too large");
  switch (f.type) {
    case Type::hello: {
      json j = parse_object(f.payload, "HELLO");
      Hello h;
      h.pid = opt_int(j, "pid", 0, std::numeric_limits<std::int32_t>::max()).value_or(0);
      h.version = string_or(j, "version");
      h.protocol = static_cast<int>(opt_int(j, "protocol", 0, 1 << 20).value_or(1));
      h.resumed = bool_or(j, "resumed", false);
      d.message = std::move(h);
      break;
    }
    case Type::started:
      parse_bounded(f.payload, "STARTED");
      d.message = Started{};
      break;
    case Type::output:
      if (f.stream != 1 && f.stream != 2) bad("OUTPUT on an unknown stream");
      d.message = Output{f.stream, std::move(f.payload)};
      break;
    case Type::done: d.message = decode_done(f.payload); break;
    case Type::reply:
      parse_bounded(f.payload, "REPLY");
      d.message = Reply{std::move(f.payload)};
      break;
    case Type::need_kernel: {
      json j = parse_object(f.payload, "NEED_KERNEL");
      d.message = NeedKernel{string_or(j, "lang", "python")};
      break;
    }
    case Type::resume: {
      json j = parse_object(f.payload, "RESUME");
      Resume r;
      r.exec_id = string_or(j, "exec_id");
      if (r.exec_id.empty() || r.exec_id.size() > 64) bad("RESUME without a valid exec_id");
      try {
        r.lang = parse_language(string_or(j, "lang", "shell"));
      } catch (const Error&) {
        bad("RESUME names an unknown language");
      }
      r.started = bool_or(j, "started", false);
      r.elapsed_ms = opt_count(j, "elapsed_ms").value_or(0);
      r.timeout_ms = std::min<std::uint64_t>(opt_count(j, "timeout_ms").value_or(0), 24ull * 3600 * 1000);
      r.fresh = bool_or(j, "fresh", false);
      d.message = std::move(r);
      break;
    }
    case Type::synced:
      parse_bounded(f.payload, "SYNCED");
      d.message = Synced{};
      break;
    default: bad("unknown frame type " + std::to_string(static_cast<int>(f.type)));
  }
  return d;
}

std::vector<ProcessInfo> decode_processes(std::string_view reply) {
  json j = parse_bounded(reply, "process list");
  std::vector<ProcessInfo> out;
  if (j.is_object()) return out;  // {"error": ...}: the agent is restarting
  if (!j.is_array()) bad("the process list is not an array");
  constexpr std::int64_t max_pid = std::numeric_limits<std::int32_t>::max();
  for (const auto& p : j) {
    if (!p.is_object()) bad("a process is not an object");
    ProcessInfo info;
    info.pid = static_cast<int>(opt_int(p, "pid", 0, max_pid).value_or(0));
    info.ppid = static_cast<int>(opt_int(p, "ppid", 0, max_pid).value_or(0));
    info.name = string_or(p, "name");
    info.cmdline = string_or(p, "cmdline");
    info.state = parse_process_state(string_or(p, "state"));
    info.rss_bytes = opt_count(p, "rss_bytes").value_or(0);
    info.cpu_time_ms = opt_count(p, "cpu_time_ms").value_or(0);
    info.start_time = opt_int(p, "start_time", std::numeric_limits<std::int64_t>::min(),
                              std::numeric_limits<std::int64_t>::max()).value_or(0);
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<std::string> decode_kill_reply(std::string_view reply) {
  json j = parse_object(reply, "KILL reply");
  if (!j.contains("error")) return std::nullopt;
  auto e = opt_string(j, "error");
  return e ? *e : std::string("error");
}

namespace {
// The 8 header bytes after the length: {u8 type, u8 stream, u16 zero, u32 id}.
Frame to_frame(RawFrame&& raw) {
  Frame f;
  f.type = static_cast<Type>(static_cast<unsigned char>(raw.header[0]));
  f.stream = static_cast<std::uint8_t>(raw.header[1]);
  f.id = get_u32le(raw.header.data() + 4);
  f.payload = std::move(raw.payload);
  return f;
}
}  // namespace

std::string encode(Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream) {
  char header[header_size - length_size] = {static_cast<char>(type), static_cast<char>(stream), 0, 0};
  put_u32le(header + 4, id);
  return frame_bytes(std::string_view(header, sizeof header), payload);
}

std::optional<Frame> Decoder::next() {
  auto raw = reader_.next();
  if (!raw) return std::nullopt;
  return to_frame(std::move(*raw));
}

void write_frame(int fd, Type type, std::uint32_t id, std::string_view payload, std::uint8_t stream) {
  write_all(fd, encode(type, id, payload, stream));
}

std::optional<Frame> read_frame(int fd) {
  auto raw = read_raw_frame(fd, header_size - length_size, max_payload);
  if (!raw) return std::nullopt;
  return to_frame(std::move(*raw));
}

}  // namespace sandbox::agent
