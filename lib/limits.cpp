#include "sandbox/limits.hpp"

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
