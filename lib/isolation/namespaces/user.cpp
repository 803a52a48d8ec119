// The user namespace: two users inside, the code's (uid/gid 1000) and the agent's (uid
// 1001, gid 1000), each a dedicated unprivileged id on the host; no other id, root
// included, is mapped. The agent starts as 1001 and sets its effective uid to 1000 (see
// lib/agent/main.cpp): code then cannot ptrace, read the memory or fds of, or signal it.
//
// We do not write "deny" to /proc/PID/setgroups: the server runs as root, and with "deny"
// the child would keep root's supplementary group (gid 0) forever, which still grants
// group access to host files seen through the read-only binds. Instead the parent (which
// holds CAP_SETGID on the host) writes the gid map and the child empties its groups with
// setgroups() before dropping every capability; nothing inside can call setgroups again.
// The child switches early (contain.cpp: sys::become()): files it creates in the new root
// must belong to a mapped id. Its host ids (root's) are unmapped, so that switch keeps its
// namespace capabilities.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "isolation/namespaces/namespaces.hpp"
#include "sandbox/error.hpp"
#include "sys/fd.hpp"

namespace sandbox::isolation::ns::user {
namespace {

void write_proc(pid_t child, const char* file, const std::string& text) {
  std::string path = "/proc/" + std::to_string(child) + "/" + file;
  sys::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_syscall("open", errno, path);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw_syscall("write", errno, path + " <- " + text);
}

}  // namespace

void init_ns_from_parent(pid_t child) {
  write_proc(child, "uid_map", std::to_string(inside_uid) + " " + std::to_string(host_uid) + " 1\n" +
                                   std::to_string(agent_inside_uid) + " " + std::to_string(agent_host_uid) + " 1\n");
  write_proc(child, "gid_map", std::to_string(inside_gid) + " " + std::to_string(host_gid) + " 1\n");
}

}  // namespace sandbox::isolation::ns::user
