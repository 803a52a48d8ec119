// Small file and pipe helpers shared by the isolation tests.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

inline void write(const std::filesystem::path& p, const std::string& text,
                  std::filesystem::perms mode = std::filesystem::perms(0644)) {
  std::ofstream(p) << text;
  std::filesystem::permissions(p, mode);
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Everything read from `fd` until EOF (every process inside has exited or closed it).
inline std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Reads `fd` until `marker` has been seen (or EOF).
inline std::string read_until(int fd, const std::string& marker) {
  std::string out;
  char buf[256];
  while (out.find(marker) == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Host processes other than this one whose command line contains `marker` (runsc's sandbox
// and gofer name the container id and bundle in theirs).
inline int host_processes_with(const std::string& marker) {
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmd = slurp(e.path() / "cmdline");
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find(marker) != std::string::npos && std::stoi(name) != ::getpid()) ++n;
  }
  return n;
}
