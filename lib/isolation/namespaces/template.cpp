// The Python template's host side: starting it, and asking it for a session's kernel
// (see template.hpp; the child half is template/module.cpp).
//
// Requests go over a SOCK_SEQPACKET pair, one message each: JSON with the cgroup dirs,
// rlimits and ids, and as SCM_RIGHTS the seven namespace fds of the session's agent
// followed by the kernel's four pipe ends. The template never answers; the kernel itself
// says "ready" to the agent.
#include "isolation/namespaces/template.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sandbox/error.hpp"
#include "sys/cstrings.hpp"
#include "sys/spawn.hpp"

namespace sandbox::isolation::ns {
namespace {
namespace fs = std::filesystem;

// The order template/module.cpp joins them in.
constexpr const char* ns_names[] = {"user", "mnt", "ipc", "uts", "net", "cgroup", "pid"};
constexpr int template_socket_fd = 3;
constexpr int template_runtime_fd = 4;  // replaced by a kernel pipe in every fork

std::string key_of(const LaunchSpec& spec) {
  std::string key = spec.interpreters.python.string() + '\n' + spec.runtime_dir.string();
  for (const auto& m : spec.preload) key += '\n' + m;
  return key;
}

}  // namespace

KernelPipes KernelPipes::make() {
  KernelPipes p;
  // stdout, stderr and replies flow to the agent; requests flow to the kernel.
  const bool agent_reads[4] = {true, true, false, true};
  for (std::size_t i = 0; i < 4; ++i) {
    int fds[2];
    sys::check(::pipe2(fds, O_CLOEXEC), "pipe2", "kernel pipes");
    sys::UniqueFd r(fds[0]), w(fds[1]);
    if (agent_reads[i]) {
      p.agent[i] = std::move(r);
      p.kernel[i] = std::move(w);
    } else {
      p.agent[i] = std::move(w);
      p.kernel[i] = std::move(r);
    }
    sys::set_nonblocking(p.agent[i].get());
  }
  return p;
}

PythonTemplate::PythonTemplate(const LaunchSpec& spec) : key_(key_of(spec)) {
  int sv[2];
  sys::check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair", "template");
  sock_.reset(sv[0]);
  sys::UniqueFd theirs(sv[1]);

  // The runtime dir reaches it as fd 4, and it names it only through that fd: its argv and
  // environment are what every fork shows in the session's /proc, and must hold no host path.
  sys::UniqueFd runtime(::open(spec.runtime_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!runtime) throw_syscall("open", errno, spec.runtime_dir.string());
  const std::string runtime_fd = "/proc/self/fd/" + std::to_string(template_runtime_fd);
  // -s: it runs as root on the host, so no user site-packages (HOME is /workspace); -B: it
  // writes nothing.
  std::vector<std::string> argv = {spec.interpreters.python.string(), "-u", "-s", "-B",
                                   runtime_fd + "/kernel.py", "--template"};
  if (!spec.preload.empty()) {
    std::string joined;
    for (const auto& m : spec.preload) joined += (joined.empty() ? "" : ",") + m;
    argv.push_back("--preload");
    argv.push_back(joined);
  }
  // The sessions' environment (the kernels inherit it), except that the template reads
  // matplotlib's font list from the runtime's prebuilt cache rather than a session's /tmp.
  std::vector<std::string> env;
  for (auto& e : agent_environment(workspace_inside)) {
    if (e.rfind("MPLCONFIGDIR=", 0) == 0) e = "MPLCONFIGDIR=" + runtime_fd + "/mplcache";
    env.push_back(std::move(e));
  }
  sys::CStrings args(std::move(argv)), envp(std::move(env));
  // Its own process group (a Ctrl-C meant for the server is not its business; it ends when
  // its socket does); fd 2 stays the server's, so a template that cannot start says why.
  static_assert(template_socket_fd == 3 && template_runtime_fd == 4);
  sys::SpawnSpec start{args.ptrs[0], args.ptrs.data(), envp.ptrs.data(),
                       {-1, -1, STDERR_FILENO, theirs.get(), runtime.get()}, 5};
  start.confine.cwd = "/";
  start.who = "python template";
  child_ = sys::spawn(start);
  started_ = std::chrono::steady_clock::now();
}

PythonTemplate::~PythonTemplate() {
  sock_.reset();  // then child_ kills and reaps it
}

bool PythonTemplate::serves(const LaunchSpec& spec) const { return key_ == key_of(spec); }

bool PythonTemplate::alive() {
  if (!child_) return false;
  const auto status = child_.wait_for(std::chrono::milliseconds(0));
  if (!status) return true;
  std::fprintf(stderr, "libsandbox: the python template exited (%s %d); sessions start their own kernels\n",
               WIFSIGNALED(*status) ? "signal" : "code", WIFSIGNALED(*status) ? WTERMSIG(*status) : WEXITSTATUS(*status));
  return false;
}

bool PythonTemplate::fork_into(pid_t agent_pid, const std::vector<fs::path>& cgroup_dirs,
                               const std::vector<Rlimit>& rlimits, std::array<sys::UniqueFd, 4> kernel,
                               bool durable) {
  std::vector<sys::UniqueFd> held;
  for (const char* name : ns_names) {
    const std::string path = "/proc/" + std::to_string(agent_pid) + "/ns/" + name;
    sys::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return false;  // the agent is already gone
    held.push_back(std::move(fd));
  }
  nlohmann::json req{{"runtime", runtime_inside}, {"durable", durable}};
  req["cgroups"] = nlohmann::json::array();
  for (const auto& d : cgroup_dirs) req["cgroups"].push_back(d.string());
  req["rlimits"] = nlohmann::json::array();
  for (const auto& l : rlimits) req["rlimits"].push_back({l.resource, l.value});
  const std::string body = req.dump();

  int fds[11];
  for (std::size_t i = 0; i < 7; ++i) fds[i] = held[i].get();
  for (std::size_t i = 0; i < 4; ++i) fds[7 + i] = kernel[i].get();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  iovec iov{const_cast<char*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t n;
  while ((n = ::sendmsg(sock_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  // Our copies close here either way: the template holds its own now, or nobody does and
  // the agent sees EOF.
  return n == static_cast<ssize_t>(body.size());
}

}  // namespace sandbox::isolation::ns
