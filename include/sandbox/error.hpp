// sandbox/error.hpp: the one error vocabulary of libsandbox.
//
// Every layer reports failures as sandbox::Error, a std::system_error whose code lives on
// sandbox's own error category. Front-ends derive their idiom from the code alone: the
// HTTP status, the CLI exit code and the Python exception class all come from `errc`.
//
//   try { session.files().download("missing.txt"); }
//   catch (const sandbox::Error& e) {
//     if (e.code() == sandbox::errc::not_found) { ... }
//   }
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace sandbox {

enum class errc {
  ok = 0,
  invalid_argument = 1,    // the caller's input is malformed (bad id, bad name, bad JSON)
  not_found = 2,           // no such session, file, execution or process (in this session)
  already_exists = 3,      // a session id or file name is taken
  permission_denied = 4,   // the caller may not do this (wrong token, outside the sandbox)
  unauthenticated = 5,     // no or unknown credentials
  resource_exhausted = 6,  // a limit was hit: upload size, disk quota, session count
  unavailable = 7,         // the backend or a dependency cannot serve now (try again later)
  failed_precondition = 8, // the object is in the wrong state (session closed)
  timeout = 9,             // a wait ran out before the thing finished
  internal = 10,           // a bug or an unexpected system failure
  session_lost = 11,       // the session existed but could not be kept (its agent died with its
                           // server, a reboot): reported until it is deleted, never recreated
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// The short snake_case name of a code ("not_found"), used on the wire.
std::string_view to_string(errc e) noexcept;

class Error : public std::system_error {
 public:
  Error(errc code, std::string message)
      : std::system_error(make_error_code(code), message), message_(std::move(message)) {}

  errc code_value() const noexcept { return static_cast<errc>(code().value()); }
  // The message without the category's suffix.
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

// An Error from errno, naming the syscall that failed: "openat2(report.csv): No such file".
[[noreturn]] void throw_syscall(std::string_view syscall, int err, std::string_view what = {});

// Maps a system errno onto the vocabulary (ENOENT -> not_found, EEXIST -> already_exists, ...).
errc from_errno(int err) noexcept;

}  // namespace sandbox

template <>
struct std::is_error_code_enum<sandbox::errc> : std::true_type {};
