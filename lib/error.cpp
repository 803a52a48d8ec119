#include "sandbox/error.hpp"

#include <cerrno>
#include <cstring>
#include <string>

namespace sandbox {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sandbox"; }
  std::string message(int v) const override { return std::string(to_string(static_cast<errc>(v))); }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::permission_denied: return "permission_denied";
    case errc::unauthenticated: return "unauthenticated";
    case errc::resource_exhausted: return "resource_exhausted";
    case errc::unavailable: return "unavailable";
    case errc::failed_precondition: return "failed_precondition";
    case errc::session_lost: return "session_lost";
    case errc::timeout: return "timeout";
    case errc::internal: return "internal";
  }
  return "internal";
}

errc from_errno(int err) noexcept {
  switch (err) {
    case ENOENT: case ESRCH: return errc::not_found;
    case EEXIST: case ENOTEMPTY: return errc::already_exists;
    case EACCES: case EPERM: case ELOOP: case EXDEV: return errc::permission_denied;
    case ENOSPC: case EDQUOT: case EFBIG: case EMFILE: case ENFILE: case ENOMEM: case EAGAIN:
      return errc::resource_exhausted;
    case EINVAL: case ENAMETOOLONG: case EISDIR: case ENOTDIR: return errc::invalid_argument;
    case ETIMEDOUT: return errc::timeout;
    case ENOSYS: case EOPNOTSUPP: return errc::unavailable;
    default: return errc::internal;
  }
}

void throw_syscall(std::string_view syscall, int err, std::string_view what) {
  std::string msg(syscall);
  if (!what.empty()) {
    msg += '(';
    msg += what;
    msg += ')';
  }
  msg += ": ";
  msg += std::strerror(err);
  throw Error(from_errno(err), std::move(msg));
}

}  // namespace sandbox
