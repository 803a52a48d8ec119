#include "sandbox/limits.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>

#include "sandbox/error.hpp"

namespace sandbox {

void Limits::validate() const {
  auto bad = [](const char* field, const char* why) {
    throw Error(errc::invalid_argument, std::string("limits.") + field + ": " + why);
  };
  if (timeout.count() <= 0 || timeout > std::chrono::hours(24)) bad("timeout", "must be within (0, 24h]");
  if (memory_bytes < (16ull << 20)) bad("memory", "must be at least 16 MiB");
  if (max_processes < 4 || max_processes > 65536) bad("processes", "must be within [4, 65536]");
  if (disk_bytes < (1ull << 20)) bad("disk", "must be at least 1 MiB");
  if (output_bytes < 1024) bad("output", "must be at least 1 KiB");
  if (upload_bytes == 0) bad("upload", "must be positive");
  if (cpu_time.count() <= 0) bad("cpu_time", "must be positive");
  if (open_files < 16) bad("open_files", "must be at least 16");
  if (!(cpus > 0.0) || cpus > 1024) bad("cpus", "must be within (0, 1024]");
  // 0 picks the default; a set cap must leave room for something.
  if (result_bytes && result_bytes < 64) bad("result_bytes", "must be 0 or at least 64");
  if (image_bytes && image_bytes < 1024) bad("image_bytes", "must be 0 or at least 1 KiB");
  if (images_bytes && images_bytes < image_cap()) bad("images_bytes", "must be 0 or at least image_bytes");
  if (history_bytes && history_bytes < (1ull << 20)) bad("history_bytes", "must be 0 or at least 1 MiB");
}

}  // namespace sandbox

// ---- Requested limits ------------------------------------------------------------------

namespace sandbox {
namespace {

[[noreturn]] void bad_request(std::string_view name, const char* why) {
  throw Error(errc::invalid_argument, "'limits." + std::string(name) + "' " + why);
}

std::uint64_t count(std::string_view name, double v) {
  if (!(v >= 0) || v != std::floor(v) || v >= 18446744073709551616.0)
    bad_request(name, "must be a non-negative integer");
  return static_cast<std::uint64_t>(v);
}

std::uint32_t count32(std::string_view name, double v) {
  std::uint64_t n = count(name, v);
  if (n > UINT32_MAX) bad_request(name, "is out of range");
  return static_cast<std::uint32_t>(n);
}

double seconds(std::string_view name, double v) {
  if (!std::isfinite(v) || v <= 0 || v > 1e7) bad_request(name, "must be a number of seconds in (0, 1e7]");
  return v;
}

}  // namespace

void set_limit(Limits& l, std::string_view name, double v) {
  if (name == "timeout")
    l.timeout = std::chrono::milliseconds(std::llround(seconds(name, v) * 1000));
  else if (name == "cpu_time")
    l.cpu_time = std::chrono::seconds(static_cast<std::int64_t>(std::ceil(seconds(name, v))));
  else if (name == "cpus") {
    if (!std::isfinite(v)) bad_request(name, "must be a number of cores");
    l.cpus = v;
  } else if (name == "memory_bytes") l.memory_bytes = count(name, v);
  else if (name == "disk_bytes") l.disk_bytes = count(name, v);
  else if (name == "output_bytes") l.output_bytes = count(name, v);
  else if (name == "upload_bytes") l.upload_bytes = count(name, v);
  else if (name == "result_bytes") l.result_bytes = count(name, v);
  else if (name == "image_bytes") l.image_bytes = count(name, v);
  else if (name == "images_bytes") l.images_bytes = count(name, v);
  else if (name == "history_bytes") l.history_bytes = count(name, v);
  else if (name == "max_processes") l.max_processes = count32(name, v);
  else if (name == "open_files") l.open_files = count32(name, v);
  else {
    std::string shown(name.substr(0, 64));  // echo a bounded piece of what the caller sent
    if (name.size() > shown.size()) shown += "...";
    throw Error(errc::invalid_argument, "unknown field '" + shown + "' in limits");
  }
}

Limits parse_limits(std::string_view text, const Limits& base) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) throw Error(errc::invalid_argument, "'limits' must be an object");
  Limits l = base;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_null()) continue;  // null counts as absent, as for every field
    if (!it->is_number()) {
      set_limit(l, it.key(), 0);  // an unknown name is reported as such first
      bad_request(it.key(), "must be a number");
    }
    // Integers beyond 2^53 lose nothing a limit could need; exact ones stay exact below.
    set_limit(l, it.key(), it->get<double>());
  }
  l.validate();
  return l;
}

Limits narrow(const Limits& ceiling, const Limits& r) {
  auto check = [](bool above, const char* field) {
    if (above)
      throw Error(errc::permission_denied, std::string("limits.") + field + " is above this server's ceiling");
  };
  r.validate();
  check(r.timeout > ceiling.timeout, "timeout");
  check(r.memory_bytes > ceiling.memory_bytes, "memory_bytes");
  check(r.max_processes > ceiling.max_processes, "max_processes");
  check(r.disk_bytes > ceiling.disk_bytes, "disk_bytes");
  check(r.output_bytes > ceiling.output_bytes, "output_bytes");
  check(r.upload_bytes > ceiling.upload_bytes, "upload_bytes");
  check(r.cpu_time > ceiling.cpu_time, "cpu_time");
  check(r.open_files > ceiling.open_files, "open_files");
  check(r.cpus > ceiling.cpus, "cpus");
  check(r.result_cap() > ceiling.result_cap(), "result_bytes");
  check(r.image_cap() > ceiling.image_cap(), "image_bytes");
  check(r.images_cap() > ceiling.images_cap(), "images_bytes");
  check(r.history_cap() > ceiling.history_cap(), "history_bytes");
  return r;
}

std::string limits_json(const Limits& l) {
  const Limits d;
  nlohmann::json j = nlohmann::json::object();
  auto put = [&j](const char* name, auto v, auto dv) {
    if (v != dv) j[name] = v;
  };
  if (l.timeout != d.timeout) j["timeout"] = static_cast<double>(l.timeout.count()) / 1000;
  if (l.cpu_time != d.cpu_time) j["cpu_time"] = l.cpu_time.count();
  put("memory_bytes", l.memory_bytes, d.memory_bytes);
  put("max_processes", l.max_processes, d.max_processes);
  put("disk_bytes", l.disk_bytes, d.disk_bytes);
  put("output_bytes", l.output_bytes, d.output_bytes);
  put("upload_bytes", l.upload_bytes, d.upload_bytes);
  put("open_files", l.open_files, d.open_files);
  put("cpus", l.cpus, d.cpus);
  put("result_bytes", l.result_bytes, d.result_bytes);
  put("image_bytes", l.image_bytes, d.image_bytes);
  put("images_bytes", l.images_bytes, d.images_bytes);
  put("history_bytes", l.history_bytes, d.history_bytes);
  return j.dump();
}

}  // namespace sandbox
