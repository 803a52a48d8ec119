#include "sys/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "sandbox/error.hpp"

namespace sandbox::sys {
namespace fs = std::filesystem;

namespace {

// sockaddr_un for `path`: the path itself when it fits, else /proc/self/fd/<dir fd>/<name>
// with `dir` holding the directory open for as long as the address is used.
struct Address {
  sockaddr_un addr{};
  socklen_t len = 0;
  UniqueFd dir;
};

Address address_of(const fs::path& path) {
  Address a;
  a.addr.sun_family = AF_UNIX;
  std::string name = path.string();
  if (name.size() >= sizeof a.addr.sun_path) {
    const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    a.dir.reset(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!a.dir) throw_syscall("open", errno, parent.string());
    name = "/proc/self/fd/" + std::to_string(a.dir.get()) + "/" + path.filename().string();
    if (name.size() >= sizeof a.addr.sun_path)
      throw Error(errc::invalid_argument, "unix socket name too long (the last component must be under ~90 bytes): " +
                                              path.string());
  }
  std::memcpy(a.addr.sun_path, name.c_str(), name.size() + 1);
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  return a;
}

}  // namespace

UniqueFd listen_unix(const fs::path& path, int backlog) {
  const fs::path dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(from_errno(ec.value()), "mkdir " + dir.string() + ": " + ec.message());
    check(::chmod(dir.c_str(), 0700), "chmod", dir.string());
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    // A socket a dead agent left; anything else there is not ours to delete.
    if (!S_ISSOCK(st.st_mode)) throw Error(errc::already_exists, path.string() + " exists and is not a socket");
    check(::unlink(path.c_str()), "unlink", path.string());
  }
  Address a = address_of(path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_syscall("socket", errno, path.string());
  check(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len), "bind", path.string());
  // The directory is 0700 already; this keeps the socket root's even if it moves.
  check(::chmod(path.c_str(), 0600), "chmod", path.string());
  check(::listen(fd.get(), backlog), "listen", path.string());
  return fd;
}

UniqueFd connect_unix(const fs::path& path, std::chrono::milliseconds timeout) {
  using namespace std::chrono;
  Address a = address_of(path);
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    // Non-blocking, so a full backlog says EAGAIN instead of blocking without a bound.
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw_syscall("socket", errno, path.string());
    int rc;
    while ((rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len)) < 0 && errno == EINTR) {
    }
    const int err = errno;
    if (rc == 0) {
      const int fl = check(::fcntl(fd.get(), F_GETFL), "fcntl", "F_GETFL");
      check(::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK), "fcntl", "blocking");
      return fd;
    }
    if (err == ENOENT) throw Error(errc::unavailable, "no socket at " + path.string());
    if (err == ECONNREFUSED) throw Error(errc::unavailable, "nobody listens on " + path.string());
    if (err != EAGAIN) throw Error(errc::unavailable, "connect " + path.string() + ": " + std::strerror(err));
    if (steady_clock::now() >= deadline)
      throw Error(errc::unavailable, "the listener on " + path.string() + " accepts nothing (backlog full for " +
                                         std::to_string(timeout.count()) + " ms)");
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace sandbox::sys
