// The workspace as seen from the host: uploads, downloads, listing and removal that never
// follow anything sandboxed code planted. Every lookup goes through openat2 from a dirfd of the
// workspace with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
// uploads land in a fresh temp file renamed into place; downloads refuse hard links.
#include "sandbox/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>  // renameat2, RENAME_NOREPLACE
#include <mutex>
#include <random>
#include <string>

#include <fmt/format.h>

#include "files_internal.hpp"
#include "sys/fd.hpp"

namespace sandbox {

// ---- FileReader -------------------------------------------------------------------------

FileReader& FileReader::operator=(FileReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
  }
  return *this;
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t FileReader::read(std::span<char> buf) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_syscall("read", errno);
  }
}

// ---- names ------------------------------------------------------------------------------

void validate_file_name(std::string_view name) {
  auto refuse = [](std::string_view why) {
    throw Error(errc::invalid_argument, fmt::format("invalid file name: {}", why));
  };
  if (name.empty()) refuse("empty");
  if (name.size() > 4096) refuse("longer than 4096 bytes");
  if (name.find('\0') != std::string_view::npos) refuse("contains NUL");
  if (name.front() == '/') refuse("absolute paths are not allowed");
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty()) refuse("empty path component");
    if (part == "." || part == "..") refuse("'.' and '..' components are not allowed");
    if (part.size() > 255) refuse("a path component is longer than 255 bytes");
    if (part.starts_with(kUploadTempPrefix)) refuse("reserved name");
    start = end + 1;
  }
}

namespace {

constexpr std::uint64_t kResolve =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// glibc 2.36 has no openat2 wrapper. Returns -1 with errno set on failure.
int openat2_beneath(int dirfd, const char* path, std::uint64_t flags, mode_t mode = 0) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = (flags & O_CREAT) ? mode : 0;  // openat2 rejects a mode without O_CREAT
  how.resolve = kResolve;
  // EAGAIN: a concurrent rename raced the lookup (the kernel asks for a retry).
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || (errno != EINTR && errno != EAGAIN) || attempt == 16) return static_cast<int>(fd);
  }
}

// throw_syscall, with the messages a caller of the file API can act on.
[[noreturn]] void throw_file_error(std::string_view syscall, int err, std::string_view name) {
  switch (err) {
    case ELOOP:
      throw Error(errc::permission_denied,
                  fmt::format("{}({}): refusing to follow a symlink", syscall, name));
    case EXDEV:
      throw Error(errc::permission_denied,
                  fmt::format("{}({}): refusing to leave the workspace", syscall, name));
    case ENOSPC:
    case EDQUOT:
      throw Error(errc::resource_exhausted,
                  fmt::format("{}({}): workspace disk quota exceeded", syscall, name));
    case ENXIO:
      throw Error(errc::invalid_argument,
                  fmt::format("{}({}): not a regular file", syscall, name));
    default:
      throw_syscall(syscall, err, name);
  }
}

sys::UniqueFd open_beneath(int dirfd, const std::string& path, std::uint64_t flags,
                           std::string_view name, mode_t mode = 0) {
  int fd = openat2_beneath(dirfd, path.empty() ? "." : path.c_str(), flags, mode);
  if (fd < 0) throw_file_error("openat2", errno, name);
  return sys::UniqueFd(fd);
}

std::pair<std::string, std::string> split_parent(std::string_view name) {
  auto slash = name.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(name)};
  return {std::string(name.substr(0, slash)), std::string(name.substr(slash + 1))};
}

FileType type_of(mode_t mode) {
  if (S_ISREG(mode)) return FileType::file;
  if (S_ISDIR(mode)) return FileType::directory;
  if (S_ISLNK(mode)) return FileType::symlink;
  return FileType::other;
}

FileInfo info_of(std::string name, const struct stat& st) {
  FileInfo fi;
  fi.name = std::move(name);
  fi.type = type_of(st.st_mode);
  fi.size = S_ISDIR(st.st_mode) ? 0 : static_cast<std::uint64_t>(st.st_size);
  fi.modified = st.st_mtim.tv_sec;
  return fi;
}

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Entry names of the directory `fd` (not "." or ".."); `fd` stays open.
std::vector<std::string> read_entries(int fd, std::string_view name) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw_syscall("fcntl", errno, name);
  DirPtr dir(::fdopendir(copy));
  if (!dir) {
    int err = errno;
    ::close(copy);
    throw_syscall("fdopendir", err, name);
  }
  ::rewinddir(dir.get());  // the dup shares the offset of `fd`
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir.get())) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  return names;
}

std::string temp_name() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}", kUploadTempPrefix, rng());
}

class WorkspaceWriter final : public FileWriter {
 public:
  WorkspaceWriter(sys::UniqueFd dir, sys::UniqueFd file, std::string temp, std::string leaf,
                  std::string name, std::uint64_t limit, bool overwrite)
      : dir_(std::move(dir)), file_(std::move(file)), temp_(std::move(temp)),
        leaf_(std::move(leaf)), name_(std::move(name)), limit_(limit), overwrite_(overwrite) {}

  ~WorkspaceWriter() override {
    if (!committed_) ::unlinkat(dir_.get(), temp_.c_str(), 0);
  }

  void write(std::string_view chunk) override {
    check_open();
    // A failed write poisons the upload: a partial file must never be committed.
    failed_ = true;
    if (chunk.size() > limit_ - std::min(written_, limit_)) {
      throw Error(errc::resource_exhausted,
                  fmt::format("upload of {} exceeds the limit of {} bytes", name_, limit_));
    }
    while (!chunk.empty()) {
      ssize_t n = ::write(file_.get(), chunk.data(), chunk.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_file_error("write", errno, name_);
      }
      chunk.remove_prefix(static_cast<std::size_t>(n));
      written_ += static_cast<std::uint64_t>(n);
    }
    failed_ = false;
  }

  FileInfo commit() override {
    check_open();
    unsigned flags = overwrite_ ? 0 : RENAME_NOREPLACE;
    if (::renameat2(dir_.get(), temp_.c_str(), dir_.get(), leaf_.c_str(), flags) < 0) {
      int err = errno;
      if (err == EINVAL && !overwrite_) {
        // A filesystem without RENAME_NOREPLACE: link() refuses an existing name just as well.
        if (::linkat(dir_.get(), temp_.c_str(), dir_.get(), leaf_.c_str(), 0) < 0) err = errno;
        else err = 0;
        if (err == 0) ::unlinkat(dir_.get(), temp_.c_str(), 0);
      }
      if (err == EEXIST || err == ENOTEMPTY) {
        throw Error(errc::already_exists, fmt::format("{} already exists", name_));
      }
      if (err == EISDIR) throw Error(errc::invalid_argument, fmt::format("{} is a directory", name_));
      if (err != 0) throw_file_error("renameat2", err, name_);
    }
    committed_ = true;
    struct stat st {};
    sys::check(::fstat(file_.get(), &st), "fstat", name_);
    return info_of(name_, st);
  }

 private:
  void check_open() const {
    if (committed_) throw Error(errc::failed_precondition, fmt::format("upload of {} already committed", name_));
    if (failed_) throw Error(errc::failed_precondition, fmt::format("upload of {} failed; start again", name_));
  }

  sys::UniqueFd dir_;
  sys::UniqueFd file_;
  std::string temp_;
  std::string leaf_;
  std::string name_;
  std::uint64_t limit_;
  bool overwrite_;
  std::uint64_t written_ = 0;
  bool committed_ = false;
  bool failed_ = false;
};

class WorkspaceFiles final : public Files {
 public:
  WorkspaceFiles(std::filesystem::path workspace, std::uint64_t upload_limit,
                 std::optional<std::pair<uid_t, gid_t>> owner)
      : workspace_(std::move(workspace)), upload_limit_(upload_limit), owner_(owner) {}

  FileInfo upload(std::string_view name, std::string_view data, UploadOptions opts) override {
    auto writer = open_upload(name, opts, data.size());
    writer->write(data);
    return writer->commit();
  }

  std::unique_ptr<FileWriter> open_upload(std::string_view name, UploadOptions opts,
                                          std::optional<std::uint64_t> expected_size) override {
    validate_file_name(name);
    if (expected_size && *expected_size > upload_limit_) {
      throw Error(errc::resource_exhausted,
                  fmt::format("upload of {} ({} bytes) exceeds the limit of {} bytes", name,
                              *expected_size, upload_limit_));
    }
    auto [parent, leaf] = split_parent(name);
    sys::UniqueFd dir = make_directories(parent);

    // Refuse early (before the body streams in); commit() re-checks atomically.
    struct stat st {};
    if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!opts.overwrite) throw Error(errc::already_exists, fmt::format("{} already exists", name));
      if (S_ISDIR(st.st_mode)) throw Error(errc::invalid_argument, fmt::format("{} is a directory", name));
    } else if (errno != ENOENT) {
      throw_file_error("fstatat", errno, name);
    }

    // A new inode under a fresh name: nothing planted can be written through.
    for (int attempt = 0;; ++attempt) {
      std::string temp = temp_name();
      int fd = openat2_beneath(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
      if (fd < 0) {
        if (errno == EEXIST && attempt < 8) continue;
        throw_file_error("openat2", errno, name);
      }
      auto writer = std::make_unique<WorkspaceWriter>(std::move(dir), sys::UniqueFd(fd), temp, leaf,
                                                      std::string(name), upload_limit_, opts.overwrite);
      sys::check(::fchmod(fd, 0644), "fchmod", name);  // not the host's umask
      if (owner_) sys::check(::fchown(fd, owner_->first, owner_->second), "fchown", name);
      return writer;
    }
  }

  std::string download(std::string_view name) override {
    FileReader reader = open_download(name);
    // The size at open: a file sandboxed code keeps appending to cannot make this unbounded.
    std::string data(reader.size(), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
      std::size_t n = reader.read(std::span<char>(data.data() + got, data.size() - got));
      if (n == 0) break;
      got += n;
    }
    data.resize(got);
    return data;
  }

  FileReader open_download(std::string_view name) override {
    validate_file_name(name);
    // O_NONBLOCK: a FIFO planted under this name must not hang the host.
    sys::UniqueFd fd = open_beneath(root(), std::string(name),
                                    O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW, name);
    struct stat st {};
    sys::check(::fstat(fd.get(), &st), "fstat", name);
    if (S_ISDIR(st.st_mode)) throw Error(errc::invalid_argument, fmt::format("{} is a directory", name));
    if (!S_ISREG(st.st_mode)) throw Error(errc::invalid_argument, fmt::format("{} is not a regular file", name));
    if (st.st_nlink > 1) {
      // The other name may be outside the workspace (a file the host cares about).
      throw Error(errc::permission_denied, fmt::format("{} is a hard link; refusing to read it", name));
    }
    int fl = sys::check(::fcntl(fd.get(), F_GETFL), "fcntl", name);
    sys::check(::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK), "fcntl", name);
    return FileReader(fd.release(), static_cast<std::uint64_t>(st.st_size));
  }

  std::vector<FileInfo> list() override {
    std::vector<FileInfo> out;
    std::vector<std::string> pending{""};
    // Each directory is reopened from the root by its relative path, so a deep tree costs
    // one fd at a time, and one swapped for a symlink meanwhile is refused by openat2.
    while (!pending.empty()) {
      std::string dir_name = std::move(pending.back());
      pending.pop_back();
      int raw = openat2_beneath(root(), dir_name.empty() ? "." : dir_name.c_str(),
                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (raw < 0) {
        if (dir_name.empty()) throw_file_error("openat2", errno, ".");
        continue;  // vanished, replaced or too deep since we saw it
      }
      sys::UniqueFd dir(raw);
      for (std::string& entry : read_entries(dir.get(), dir_name)) {
        if (entry.starts_with(kUploadTempPrefix)) continue;
        struct stat st {};
        if (::fstatat(dir.get(), entry.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        std::string rel = dir_name.empty() ? std::move(entry) : dir_name + '/' + entry;
        if (S_ISDIR(st.st_mode)) pending.push_back(rel);
        out.push_back(info_of(std::move(rel), st));
      }
    }
    std::sort(out.begin(), out.end(), [](const FileInfo& a, const FileInfo& b) { return a.name < b.name; });
    return out;
  }

  void remove(std::string_view name) override {
    validate_file_name(name);
    auto [parent, leaf] = split_parent(name);
    sys::UniqueFd dir = open_beneath(root(), parent, O_PATH | O_DIRECTORY, name);
    struct stat st {};
    if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) throw Error(errc::not_found, fmt::format("{} not found", name));
      throw_file_error("fstatat", errno, name);
    }
    if (!S_ISDIR(st.st_mode)) {
      if (::unlinkat(dir.get(), leaf.c_str(), 0) == 0) return;
      if (errno == ENOENT) throw Error(errc::not_found, fmt::format("{} not found", name));
      if (errno != EISDIR) throw_file_error("unlinkat", errno, name);
      // Swapped for a directory meanwhile: remove that instead.
    }
    remove_tree(dir.get(), leaf, name, 0);
  }

  FileInfo stat(std::string_view name) override {
    validate_file_name(name);
    // O_PATH | O_NOFOLLOW: a trailing symlink is described, not refused nor followed.
    sys::UniqueFd fd = open_beneath(root(), std::string(name), O_PATH | O_NOFOLLOW, name);
    struct stat st {};
    sys::check(::fstat(fd.get(), &st), "fstat", name);
    return info_of(std::string(name), st);
  }

 private:
  int root() {
    std::lock_guard lock(mu_);
    if (!root_) {
      int fd = ::open(workspace_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) throw_syscall("open", errno, workspace_.native());
      root_.reset(fd);
    }
    return root_.get();
  }

  // Opens (creating what is missing) the directory `parent`, one component at a time.
  sys::UniqueFd make_directories(const std::string& parent) {
    sys::UniqueFd cur = open_beneath(root(), "", O_PATH | O_DIRECTORY, ".");
    std::size_t start = 0;
    while (start < parent.size()) {
      std::size_t end = std::min(parent.find('/', start), parent.size());
      std::string part = parent.substr(start, end - start);
      std::string_view so_far(parent.data(), end);
      bool created = ::mkdirat(cur.get(), part.c_str(), 0755) == 0;
      if (!created && errno != EEXIST) throw_file_error("mkdirat", errno, so_far);
      // Whatever is there now (ours or planted) must be a real directory beneath the root.
      sys::UniqueFd next = open_beneath(cur.get(), part, O_PATH | O_DIRECTORY, so_far);
      if (created && owner_) {
        sys::check(::fchownat(next.get(), "", owner_->first, owner_->second, AT_EMPTY_PATH),
                   "fchownat", so_far);
      }
      cur = std::move(next);
      start = end + 1;
    }
    return cur;
  }

  // Removes the directory `leaf` of `parent` and all it holds, following nothing.
  void remove_tree(int parent, const std::string& leaf, std::string_view name, int depth) {
    if (depth > 256) throw Error(errc::resource_exhausted, fmt::format("{}: directory tree too deep", name));
    sys::UniqueFd dir = open_beneath(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, name);
    // Sandboxed code may be adding files meanwhile: a few passes, then give up.
    for (int pass = 0;; ++pass) {
      for (const std::string& entry : read_entries(dir.get(), name)) {
        if (::unlinkat(dir.get(), entry.c_str(), 0) == 0 || errno == ENOENT) continue;
        if (errno != EISDIR) throw_file_error("unlinkat", errno, name);
        remove_tree(dir.get(), entry, name, depth + 1);
      }
      if (::unlinkat(parent, leaf.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return;
      if (errno != ENOTEMPTY || pass == 3) throw_file_error("unlinkat", errno, name);
    }
  }

  std::filesystem::path workspace_;
  std::uint64_t upload_limit_;
  std::optional<std::pair<uid_t, gid_t>> owner_;
  std::mutex mu_;
  sys::UniqueFd root_;
};

}  // namespace

std::unique_ptr<Files> make_workspace_files(std::filesystem::path workspace,
                                            std::uint64_t upload_limit,
                                            std::optional<std::pair<uid_t, gid_t>> owner) {
  return std::make_unique<WorkspaceFiles>(std::move(workspace), upload_limit, owner);
}

std::string_view to_string(FileType t) noexcept {
  switch (t) {
    case FileType::file: return "file";
    case FileType::directory: return "directory";
    case FileType::symlink: return "symlink";
    case FileType::other: return "other";
  }
  return "other";
}

FileType parse_file_type(std::string_view s) noexcept {
  for (FileType t : {FileType::file, FileType::directory, FileType::symlink})
    if (to_string(t) == s) return t;
  return FileType::other;
}

}  // namespace sandbox
