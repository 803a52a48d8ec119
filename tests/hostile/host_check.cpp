#include "hostile/host_check.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace hostile::host {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path, std::size_t max = 1 << 16) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  while (out.size() < max) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::optional<Proc> read_proc(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(stat.substr(close + 2));
  Proc p;
  p.pid = pid;
  std::string field;
  in >> p.state >> p.ppid;
  // Fields 5..21 sit between ppid (4) and starttime (22).
  for (int i = 5; i <= 21 && in >> field; ++i) {
  }
  in >> p.start;
  if (!in) return std::nullopt;
  p.cmdline = slurp("/proc/" + std::to_string(pid) + "/cmdline", 4096);
  for (auto& c : p.cmdline)
    if (c == '\0') c = ' ';
  return p;
}

void throw_errno(const char* what) { throw std::runtime_error(std::string(what) + ": " + std::strerror(errno)); }

}  // namespace

std::string Proc::describe() const {
  return "pid " + std::to_string(pid) + " (ppid " + std::to_string(ppid) + ", state " + state + ") '" +
         cmdline.substr(0, 120) + "'";
}

std::vector<Proc> all_processes() {
  std::vector<Proc> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    if (auto p = read_proc(static_cast<pid_t>(pid))) out.push_back(std::move(*p));
  }
  ::closedir(d);
  return out;
}

std::vector<Proc> descendants(pid_t root) {
  auto all = all_processes();
  std::multimap<pid_t, const Proc*> children;
  for (const auto& p : all) children.emplace(p.ppid, &p);
  std::vector<Proc> out;
  std::vector<pid_t> todo{root};
  while (!todo.empty() && out.size() < 100000) {
    pid_t parent = todo.back();
    todo.pop_back();
    auto [b, e] = children.equal_range(parent);
    for (auto it = b; it != e; ++it) {
      out.push_back(*it->second);
      todo.push_back(it->second->pid);
    }
  }
  return out;
}

std::optional<Proc> current(const Proc& p) {
  auto now = read_proc(p.pid);
  if (!now || now->start != p.start) return std::nullopt;
  return now;
}

std::vector<Proc> with_marker(std::string_view marker) {
  std::vector<Proc> out;
  const pid_t self = ::getpid();
  for (auto& p : all_processes()) {
    if (p.pid == self) continue;
    std::string comm = slurp("/proc/" + std::to_string(p.pid) + "/comm", 64);
    if (p.cmdline.find(marker) != std::string::npos || comm.find(marker) != std::string::npos)
      out.push_back(std::move(p));
  }
  return out;
}

std::vector<Proc> still_running(const std::vector<Proc>& procs, std::chrono::milliseconds limit) {
  const pid_t self = ::getpid();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::vector<Proc> left;
  for (;;) {
    left.clear();
    for (const auto& p : procs) {
      auto now = current(p);
      if (!now) continue;
      if (now->state == 'Z' && now->ppid != self) continue;  // dead, init's to reap
      left.push_back(*now);
    }
    if (left.empty() || std::chrono::steady_clock::now() >= deadline) return left;
    std::this_thread::sleep_for(20ms);
  }
}

void kill_all(const std::vector<Proc>& procs) {
  for (const auto& p : procs)
    if (current(p)) ::kill(p.pid, SIGKILL);
  for (const auto& p : procs)
    if (p.ppid == ::getpid()) ::waitpid(p.pid, nullptr, WNOHANG);
}

std::vector<std::string> mounts_matching(std::string_view needle) {
  std::vector<std::string> out;
  std::istringstream in(slurp("/proc/self/mountinfo", 1 << 22));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    if (point == needle || point.rfind(std::string(needle) + "/", 0) == 0) out.push_back(point);
  }
  return out;
}

std::vector<fs::path> cgroups_matching(std::string_view key) {
  auto matches = [key](const std::string& name) {
    if (name == key) return true;
    if (name.size() <= key.size()) return false;
    const char sep = name[name.size() - key.size() - 1];
    return (sep == '.' || sep == '-' || sep == '_') && name.compare(name.size() - key.size(), key.size(), key) == 0;
  };
  std::vector<fs::path> out;
  std::error_code ec;
  // The "libsandbox" parents sit at most a few levels below each hierarchy's mount point
  // (the root, or this process's own cgroup when it is delegated).
  std::vector<std::pair<fs::path, int>> todo;
  for (auto& h : fs::directory_iterator("/sys/fs/cgroup", ec)) todo.emplace_back(h.path(), 0);
  std::size_t visited = 0;
  while (!todo.empty() && visited < 20000) {
    auto [dir, depth] = todo.back();
    todo.pop_back();
    ++visited;
    for (auto& e : fs::directory_iterator(dir, ec)) {
      std::error_code ec2;
      if (!e.is_directory(ec2) || e.is_symlink(ec2)) continue;
      // "libsandbox" (namespaces), "libsandbox-runsc" (runsc's cgroup parent).
      if (e.path().filename().string().rfind("libsandbox", 0) == 0) {
        // Sessions sit directly below, or below their Sandbox's group ("<pid>.g<n>").
        for (auto& s : fs::directory_iterator(e.path(), ec2)) {
          if (matches(s.path().filename().string())) out.push_back(s.path());
          else if (s.path().filename().string().find(".g") != std::string::npos)
            for (auto& g : fs::directory_iterator(s.path(), ec2))
              if (matches(g.path().filename().string())) out.push_back(g.path());
        }
      } else if (depth < 4) {
        todo.emplace_back(e.path(), depth + 1);
      }
    }
  }
  return out;
}

std::uint64_t rss_bytes() {
  std::istringstream in(slurp("/proc/self/statm"));
  std::uint64_t size = 0, rss = 0;
  in >> size >> rss;
  return rss * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

HostSleep::HostSleep(const std::string& name, int seconds, std::optional<uid_t> uid) {
  const std::string secs = std::to_string(seconds);
  const char* argv[] = {name.c_str(), secs.c_str(), nullptr};
  const uid_t id = uid.value_or(0);
  const bool drop = uid.has_value();
  pid_ = ::fork();
  if (pid_ < 0) throw_errno("fork");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (drop && (::setgroups(0, nullptr) < 0 || ::setgid(id) < 0 || ::setuid(id) < 0)) ::_exit(126);
    ::execv("/bin/sleep", const_cast<char* const*>(argv));
    ::_exit(127);
  }
}

HostSleep::~HostSleep() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

bool HostSleep::alive() const {
  auto p = read_proc(pid_);
  return p && p->state != 'Z';
}

HostServices::HostServices(const std::string& name)
    : abstract_("hostile-" + name), path_("/tmp/hostile-" + name + ".sock") {
  auto listen_on = [](int fd, const sockaddr* a, socklen_t len) {
    if (fd < 0) throw_errno("socket");
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a, len) < 0 || ::listen(fd, 16) < 0) throw_errno("bind/listen");
  };
  sockaddr_in a4{};
  a4.sin_family = AF_INET;
  a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  tcp_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  listen_on(tcp_, reinterpret_cast<sockaddr*>(&a4), sizeof a4);
  socklen_t len = sizeof a4;
  ::getsockname(tcp_, reinterpret_cast<sockaddr*>(&a4), &len);
  port_ = ntohs(a4.sin_port);

  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_addr = in6addr_loopback;
  tcp6_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (tcp6_ >= 0) {
    int one = 1;
    ::setsockopt(tcp6_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(tcp6_, reinterpret_cast<sockaddr*>(&a6), sizeof a6) == 0 && ::listen(tcp6_, 16) == 0) {
      len = sizeof a6;
      ::getsockname(tcp6_, reinterpret_cast<sockaddr*>(&a6), &len);
      port6_ = ntohs(a6.sin6_port);
    } else {
      ::close(tcp6_);
      tcp6_ = -1;  // no IPv6 loopback on this host
    }
  }

  sockaddr_un au{};
  au.sun_family = AF_UNIX;
  std::memcpy(au.sun_path + 1, abstract_.data(), abstract_.size());
  abs_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  listen_on(abs_, reinterpret_cast<sockaddr*>(&au),
            static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_.size()));

  sockaddr_un pu{};
  pu.sun_family = AF_UNIX;
  std::strncpy(pu.sun_path, path_.c_str(), sizeof pu.sun_path - 1);
  ::unlink(path_.c_str());
  unix_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  listen_on(unix_, reinterpret_cast<sockaddr*>(&pu), sizeof pu);
  ::chmod(path_.c_str(), 0777);

  if (::pipe2(wake_, O_CLOEXEC) < 0) throw_errno("pipe2");
  thread_ = std::thread([this] { serve(); });
}

HostServices::~HostServices() {
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (int fd : {tcp_, tcp6_, abs_, unix_, wake_[0], wake_[1]})
    if (fd >= 0) ::close(fd);
  ::unlink(path_.c_str());
}

void HostServices::serve() {
  pollfd fds[5] = {{wake_[0], POLLIN, 0}, {tcp_, POLLIN, 0}, {tcp6_, POLLIN, 0}, {abs_, POLLIN, 0}, {unix_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 5, 1000) < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    for (int i = 1; i < 5; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & POLLIN)) continue;
      int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0) continue;
      ++accepted_;
      std::string line = std::string(secret) + "\n";
      (void)!::send(c, line.data(), line.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
}

}  // namespace hostile::host
