// A dozen options written by one program (the backend's agent_argv), read once by a process
// that must stay small and start fast: a loop here, rather than CLI11's, whose help,
// config files and error exits (codes 100+) the agent has no use for.
#include "agent/options.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "sandbox/error.hpp"

namespace sandbox::agent {

void usage(const char* msg) {
  std::fprintf(stderr,
               "sandbox-agent: %s\n"
               "usage: sandbox-agent --control-fd N --workspace DIR --runtime DIR --python PATH\n"
               "                     --node PATH --shell PATH [--preload m1,m2] [--warm python|nodejs]\n"
               "                     [--host-kernels [--kernel-fds FIRST]] [--code-uid UID [--keep-uid]]\n"
               "                     [--listen-fd N [--orphan-timeout-ms T]] [--lifetime-deadline-ms D]\n",
               msg);
  std::exit(2);
}

std::optional<Language> language_named(std::string_view name) noexcept {
  try {
    return parse_language(name);
  } catch (const Error&) {
    return std::nullopt;
  }
}

namespace {
std::int64_t number(const std::string& v, const char* what) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < 0) usage(what);
  return x;
}
}  // namespace

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host-kernels" || a == "--keep-uid") {  // the flags without a value
      (a == "--keep-uid" ? o.keep_uid : o.host_kernels) = true;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--control-fd") {
      char* end = nullptr;
      long fd = std::strtol(v.c_str(), &end, 10);
      if (*end || fd < 0) usage("bad --control-fd");
      o.control_fd = static_cast<int>(fd);
    } else if (a == "--workspace") o.workspace = v;
    else if (a == "--runtime") o.runtime = v;
    else if (a == "--python") o.python = v;
    else if (a == "--node") o.node = v;
    else if (a == "--shell") o.shell = v;
    else if (a == "--preload") o.preload = v;
    else if (a == "--code-uid") {
      char* end = nullptr;
      long uid = std::strtol(v.c_str(), &end, 10);
      if (*end || uid < 0 || uid >= 0xffffffffL) usage("bad --code-uid");
      o.code_uid = static_cast<uid_t>(uid);
    }
    else if (a == "--kernel-fds") {
      char* end = nullptr;
      long fd = std::strtol(v.c_str(), &end, 10);
      if (*end || fd < 3 || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) usage("bad --kernel-fds");
      o.kernel_fd = static_cast<int>(fd);
    }
    else if (a == "--listen-fd") {
      std::int64_t fd = number(v, "bad --listen-fd");
      int accepting = 0;
      socklen_t len = sizeof accepting;
      if (fd < 3 || fd > 1 << 20 ||
          ::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
        usage("--listen-fd is not a listening socket");
      o.listen_fd = static_cast<int>(fd);
    }
    else if (a == "--orphan-timeout-ms") o.orphan_timeout_ms = number(v, "bad --orphan-timeout-ms");
    else if (a == "--lifetime-deadline-ms") o.lifetime_deadline_ms = number(v, "bad --lifetime-deadline-ms");
    else if (a == "--warm") {
      o.warm = language_named(v);
      if (!o.warm) usage("bad --warm");
    } else usage(("unknown option " + a).c_str());
  }
  if (o.control_fd < 0) usage("--control-fd is required");
  return o;
}

}  // namespace sandbox::agent
