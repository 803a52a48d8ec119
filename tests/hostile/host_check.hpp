// What the hostile suite looks at on the host, outside every sandbox: processes, mounts,
// cgroups, and the small host services (a loopback server, a host `sleep`) that attacks aim
// at. Plain /proc and /sys reads; nothing here goes through the library.
//
//   auto before = host::descendants(::getpid());
//   ... attack, close the session ...
//   for (auto& p : host::still_running(new_ones)) ADD_FAILURE() << p.describe();
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hostile::host {

// A host process, identified by pid and start time (so a reused pid is not mistaken for it).
struct Proc {
  pid_t pid = 0;
  pid_t ppid = 0;
  unsigned long long start = 0;  // field 22 of /proc/PID/stat
  char state = '?';
  std::string cmdline;
  bool operator<(const Proc& o) const { return pid != o.pid ? pid < o.pid : start < o.start; }
  bool operator==(const Proc& o) const { return pid == o.pid && start == o.start; }
  std::string describe() const;
};

// Every process on the host (thread groups only).
std::vector<Proc> all_processes();
// Every process below `root` in the parent tree (not `root` itself).
std::vector<Proc> descendants(pid_t root);
// The current state of `p`: nullopt once it is gone (or its pid was reused).
std::optional<Proc> current(const Proc& p);
// Processes whose cmdline or comm contains `marker` (this process excluded).
std::vector<Proc> with_marker(std::string_view marker);
// Waits up to `limit` for each of `procs` to be gone (a zombie that is not our child counts
// as gone: it no longer runs and init reaps it); returns those still there.
std::vector<Proc> still_running(const std::vector<Proc>& procs, std::chrono::milliseconds limit);
// SIGKILLs each process (by pid, after checking its start time) and reaps our own children.
void kill_all(const std::vector<Proc>& procs);

// Mount points in /proc/self/mountinfo at or below the directory `needle`.
std::vector<std::string> mounts_matching(std::string_view needle);
// Directories below any "libsandbox*" cgroup directory (both v1 controllers and v2) named
// `key`, or ending in `key` after a '.', '-' or '_' (backends prefix it).
std::vector<std::filesystem::path> cgroups_matching(std::string_view key);

// Resident set of this process, in bytes.
std::uint64_t rss_bytes();

// A host `sleep` whose argv[0] is `name`, optionally as another uid; killed and reaped
// when destroyed.
class HostSleep {
 public:
  HostSleep(const std::string& name, int seconds, std::optional<uid_t> uid = std::nullopt);
  ~HostSleep();
  HostSleep(const HostSleep&) = delete;
  HostSleep& operator=(const HostSleep&) = delete;
  pid_t pid() const { return pid_; }
  bool alive() const;  // running (not a zombie)
 private:
  pid_t pid_ = -1;
};

// Host services an attack tries to reach: TCP on 127.0.0.1 and ::1, an abstract unix socket
// and a pathname unix socket in /tmp (mode 0777). A thread accepts and counts connections
// and writes a secret line to each.
class HostServices {
 public:
  explicit HostServices(const std::string& name);
  ~HostServices();
  HostServices(const HostServices&) = delete;
  HostServices& operator=(const HostServices&) = delete;
  int port() const { return port_; }
  int port6() const { return port6_; }
  const std::string& abstract_name() const { return abstract_; }  // without the leading NUL
  const std::string& socket_path() const { return path_; }
  int accepted() const { return accepted_.load(); }
  static constexpr std::string_view secret = "HOST-LOOPBACK-SECRET";
 private:
  void serve();
  int tcp_ = -1, tcp6_ = -1, abs_ = -1, unix_ = -1, wake_[2] = {-1, -1};
  int port_ = 0, port6_ = 0;
  std::string abstract_, path_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

}  // namespace hostile::host
