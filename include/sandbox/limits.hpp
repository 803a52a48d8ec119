// sandbox/limits.hpp: what one session may use.
//
// Every backend applies the limits it can (see isolation::Backend::containment()); the
// defaults suit an interactive code interpreter.
//
//   sandbox::Limits l; l.timeout = std::chrono::seconds(30); l.memory_bytes = 1 << 30;
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace sandbox {

struct Limits {
  std::chrono::milliseconds timeout{10'000};   // wall clock per execution
  std::uint64_t memory_bytes = 512ull << 20;   // session memory (cgroup) or address space (rlimit)
  std::uint32_t max_processes = 128;           // processes and threads of the session
  std::uint64_t disk_bytes = 100ull << 20;     // workspace quota
  std::uint64_t output_bytes = 1ull << 20;     // per stream, per execution; then truncated
  std::uint64_t upload_bytes = 10ull << 20;    // one uploaded file
  std::chrono::seconds cpu_time{300};          // CPU seconds per process (RLIMIT_CPU)
  std::uint32_t open_files = 1024;             // per process (RLIMIT_NOFILE)
  double cpus = 1.0;                           // CPU share, in cores (cgroup quota)
  // Caps the host applies to what an execution returns besides its streams (0 = the
  // default, tied to output_bytes); over a cap: cut or dropped, truncated and a note.
  std::uint64_t result_bytes = 0;              // the last expression's value; 0 = output_bytes
  std::uint64_t image_bytes = 0;               // one image, in bytes; 0 = 4 x output_bytes
  std::uint64_t images_bytes = 0;              // all images of one execution; 0 = 8 x output_bytes
  std::uint64_t history_bytes = 0;             // past executions a session keeps; 0 = 16 x output_bytes

  // The caps in effect (the defaults resolved).
  std::uint64_t result_cap() const { return result_bytes ? result_bytes : output_bytes; }
  std::uint64_t image_cap() const { return image_bytes ? image_bytes : 4 * output_bytes; }
  std::uint64_t images_cap() const { return images_bytes ? images_bytes : 8 * output_bytes; }
  std::uint64_t history_cap() const { return history_bytes ? history_bytes : 16 * output_bytes; }

  // Throws sandbox::Error(invalid_argument) naming the first field out of range.
  void validate() const;
};

// ---- Requested limits: the one parse and the one narrowing rule -------------------------
// Every front-end (the HTTP server's JSON, Python's keyword arguments, sandboxctl's flags)
// reads limits through these, so a value means the same everywhere.

// Sets the field docs/http.md names `name` ("timeout", "memory_bytes", "max_processes",
// "disk_bytes", "output_bytes", "upload_bytes", "cpu_time", "open_files", "cpus",
// "result_bytes", "image_bytes", "images_bytes", "history_bytes"). Seconds are rounded here
// and only here: timeout to the nearest millisecond, cpu_time up to a whole second. Throws
// Error(invalid_argument) for an unknown name, a count that is not a non-negative integer,
// or seconds that are not positive and finite.
void set_limit(Limits& limits, std::string_view name, double value);
// A JSON object of such fields (null = absent) over `base`, validated. Throws
// Error(invalid_argument) naming the field.
Limits parse_limits(std::string_view json_object, const Limits& base);
// The narrowing rule: a request may only lower the ceiling. Returns `requested` when no
// field (caps compared as resolved) is above `ceiling`; else throws
// Error(permission_denied) naming the first field that is.
Limits narrow(const Limits& ceiling, const Limits& requested);
// The inverse of parse_limits over default Limits: a JSON object of every field that differs
// from its default, named as above (a pod's server is told these; the session store keeps them).
std::string limits_json(const Limits& limits);

}  // namespace sandbox
