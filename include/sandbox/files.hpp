// sandbox/files.hpp: the session's workspace as seen from the host.
//
// Names are relative paths inside the workspace ("data/a.csv"). `..`, absolute paths, NUL
// and empty components are refused; no operation follows a symlink, and none reads or
// overwrites through a hard link planted by sandboxed code (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS, st_nlink checks, write-then-rename).
//
//   session.files().upload("a.csv", "x,y\n1,2\n");
//   for (auto& f : session.files().list()) std::cout << f.name << ' ' << f.size << '\n';
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox {

enum class FileType { file, directory, symlink, other };
std::string_view to_string(FileType) noexcept;  // "file", "directory", "symlink", "other"
FileType parse_file_type(std::string_view) noexcept;  // the inverse; `other` for anything else

struct FileInfo {
  std::string name;            // relative to the workspace root
  std::uint64_t size = 0;
  std::int64_t modified = 0;   // seconds since the epoch
  FileType type = FileType::other;
};

struct UploadOptions {
  bool overwrite = false;
};

// A file opened for download: an fd the caller reads or sendfile()s, closed on destruction.
class FileReader {
 public:
  FileReader() = default;
  FileReader(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  FileReader(FileReader&& o) noexcept : fd_(o.fd_), size_(o.size_) { o.fd_ = -1; }
  FileReader& operator=(FileReader&& o) noexcept;
  ~FileReader();
  int fd() const { return fd_; }
  std::uint64_t size() const { return size_; }
  // Reads up to `buf.size()` bytes; 0 at end. Throws on error.
  std::size_t read(std::span<char> buf);
 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// Streams an upload in chunks without holding it whole; commit() makes it visible.
class FileWriter {
 public:
  virtual ~FileWriter() = default;  // without commit(): discarded, nothing left behind
  // Throws resource_exhausted once the upload or disk limit would be passed.
  virtual void write(std::string_view chunk) = 0;
  // Throws already_exists if the name appeared meanwhile and overwrite was not asked for.
  virtual FileInfo commit() = 0;
};

class Files {
 public:
  virtual ~Files() = default;
  virtual FileInfo upload(std::string_view name, std::string_view data, UploadOptions = {}) = 0;
  // `expected_size`, when known (Content-Length), is checked against the limit up front.
  virtual std::unique_ptr<FileWriter> open_upload(std::string_view name, UploadOptions = {},
                                                  std::optional<std::uint64_t> expected_size = {}) = 0;
  virtual std::string download(std::string_view name) = 0;
  virtual FileReader open_download(std::string_view name) = 0;
  // Every entry, recursively, directories included; symlinks listed, never followed.
  virtual std::vector<FileInfo> list() = 0;
  virtual void remove(std::string_view name) = 0;
  virtual FileInfo stat(std::string_view name) = 0;
};

// Throws invalid_argument unless `name` is a clean relative path (see above).
void validate_file_name(std::string_view name);

}  // namespace sandbox
