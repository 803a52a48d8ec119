// _sandbox_template: the child half of "fork the Python template into a session".
//
// runtime/kernel.py --template imports this module in a host process that has matplotlib,
// numpy and pandas loaded (lib/isolation/namespaces/template.cpp starts it). For each new
// session it forks; the fork calls enter() to join the session's cgroup and namespaces,
// forks once more (the pid namespace only applies to children), and the grandchild calls
// finish() to end up exactly as walled in as the session's agent: same uid, no
// capabilities, no_new_privs, rlimits, the same seccomp filters (the same code in
// ../capabilities.cpp, ../rlimits.cpp and ../seccomp.cpp). Then it serves as the
// session's Python kernel, its pages shared copy-on-write with the template.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "isolation/namespaces/namespaces.hpp"

namespace {
namespace ns = sandbox::isolation::ns;

int cap_last = 40;

// Raises OSError(errno, "<step>: <strerror>") for the step that failed.
PyObject* raise_step(const char* step) {
  const int err = errno;
  PyErr_Format(PyExc_OSError, "template: %s: %s", step, std::strerror(err));
  return nullptr;
}

bool int_list(PyObject* seq, std::vector<long long>& out, const char* what) {
  PyObject* fast = PySequence_Fast(seq, what);
  if (!fast) return false;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  for (Py_ssize_t i = 0; i < n; ++i) {
    long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(fast);
      return false;
    }
    out.push_back(v);
  }
  Py_DECREF(fast);
  return true;
}

// prepare(): once, in the template, before any fork: the seccomp filters compiled (so no
// child compiles them), and the template made the reaper of the kernels it forks.
PyObject* prepare(PyObject*, PyObject*) {
  try {
    (void)ns::seccomp::filter();
    (void)ns::seccomp::personality_filter();
    cap_last = ns::capabilities::last_cap();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
  // The grandchildren lose their parent at once; they must come back to us, not to the
  // host's init, so that they are reaped promptly: a session's pid namespace cannot finish
  // dying while one of its zombies is unreaped.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return raise_step("PR_SET_CHILD_SUBREAPER");
  Py_RETURN_NONE;
}

// The session's namespaces, in the order enter() joins them: the user namespace first,
// which grants the capabilities the others ask for; pid last, as it only applies to
// children.
constexpr struct {
  const char* name;
  int type;
} ns_order[] = {
    {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},     {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
    {"net", CLONE_NEWNET},   {"cgroup", CLONE_NEWCGROUP}, {"pid", CLONE_NEWPID},
};
constexpr std::size_t ns_count = sizeof ns_order / sizeof ns_order[0];

// enter(cgroup_dirs, ns_fds): in the template's fork, still host root. Joins the session's
// cgroup (every v1 controller) and namespaces (fds of /proc/<agent>/ns/*, in ns_order).
PyObject* enter(PyObject*, PyObject* args) {
  PyObject *dirs_obj, *fds_obj;
  if (!PyArg_ParseTuple(args, "OO", &dirs_obj, &fds_obj)) return nullptr;
  std::vector<long long> fds;
  if (!int_list(fds_obj, fds, "ns_fds must be a sequence of ints")) return nullptr;
  if (fds.size() != ns_count) {
    PyErr_Format(PyExc_ValueError, "template: %zu namespace fds, expected %zu", fds.size(), ns_count);
    return nullptr;
  }
  PyObject* dirs = PySequence_Fast(dirs_obj, "cgroup_dirs must be a sequence of str");
  if (!dirs) return nullptr;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(dirs); ++i) {
    const char* dir = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(dirs, i));
    if (!dir) {
      Py_DECREF(dirs);
      return nullptr;
    }
    const std::string procs = std::string(dir) + "/cgroup.procs";
    int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    // "0" is the writer itself.
    bool ok = fd >= 0 && ::write(fd, "0", 1) == 1;
    const int err = errno;
    if (fd >= 0) ::close(fd);
    if (!ok) {
      Py_DECREF(dirs);
      errno = err;
      return raise_step("joining the session's cgroup");
    }
  }
  Py_DECREF(dirs);
  // Host root's supplementary groups would show inside as the overflow gid; the session's
  // user namespace denies setgroups, so they go now.
  if (::setgroups(0, nullptr) != 0) return raise_step("setgroups");
  for (std::size_t i = 0; i < ns_count; ++i) {
    if (::setns(static_cast<int>(fds[i]), ns_order[i].type) != 0)
      return raise_step((std::string("setns ") + ns_order[i].name).c_str());
  }
  for (long long fd : fds) ::close(static_cast<int>(fd));
  Py_RETURN_NONE;
}

// Reports the failing step on the kernel's stderr (the agent shows it as the kernel's boot
// log) and exits: a half-contained process must not go on.
[[noreturn]] void die(int err_fd, const char* step) {
  const int err = errno;
  char msg[256];
  int n = std::snprintf(msg, sizeof msg, "template: %s: %s\n", step, std::strerror(err));
  if (n > 0) (void)!::write(err_fd, msg, static_cast<std::size_t>(n));
  ::_exit(121);
}

// finish(kernel_fds, rlimits, uid, gid, workspace): in the grandchild, inside the session's
// pid namespace. kernel_fds are [stdout, stderr, requests, replies] and become fds 1-4 (fd 0
// is /dev/null), as an agent-started kernel has them; every other fd is closed.
PyObject* finish(PyObject*, PyObject* args) {
  PyObject *fds_obj, *limits_obj;
  unsigned int uid, gid;
  const char* workspace;
  if (!PyArg_ParseTuple(args, "OOIIs", &fds_obj, &limits_obj, &uid, &gid, &workspace)) return nullptr;
  std::vector<long long> fds, flat;
  if (!int_list(fds_obj, fds, "kernel_fds must be a sequence of ints")) return nullptr;
  if (fds.size() != 4) {
    PyErr_SetString(PyExc_ValueError, "template: 4 kernel fds expected");
    return nullptr;
  }
  PyObject* limits = PySequence_Fast(limits_obj, "rlimits must be a sequence of (resource, value)");
  if (!limits) return nullptr;
  std::vector<ns::Rlimit> rlimits;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(limits); ++i) {
    flat.clear();
    if (!int_list(PySequence_Fast_GET_ITEM(limits, i), flat, "an rlimit is (resource, value)") ||
        flat.size() != 2) {
      Py_DECREF(limits);
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "template: an rlimit is (resource, value)");
      return nullptr;
    }
    rlimits.push_back({static_cast<int>(flat[0]), static_cast<std::uint64_t>(flat[1])});
  }
  Py_DECREF(limits);

  // From here on a failure ends the process (die), reported on the kernel's stderr.
  int err_fd = static_cast<int>(fds[1]);
  int high[4];
  for (int i = 0; i < 4; ++i)
    if ((high[i] = ::fcntl(static_cast<int>(fds[static_cast<std::size_t>(i)]), F_DUPFD, 10)) < 0)
      die(err_fd, "placing the kernel's fds");
  int null = ::open("/dev/null", O_RDWR);
  if (null < 0 || ::dup2(null, 0) < 0) die(err_fd, "/dev/null");
  for (int i = 0; i < 4; ++i)
    if (::dup2(high[i], i + 1) < 0) die(err_fd, "placing the kernel's fds");
  err_fd = 2;
  if (::syscall(SYS_close_range, 5u, ~0u, 0u) != 0) die(err_fd, "close_range");
  if (::setsid() < 0) die(err_fd, "setsid");
  if (::setresgid(gid, gid, gid) != 0) die(err_fd, "setresgid");
  if (::setresuid(uid, uid, uid) != 0) die(err_fd, "setresuid");
  // A uid change made us non-dumpable, which would leave /proc/<pid> to root: the agent
  // (the same unprivileged uid) could not list or signal us as one of its own.
  if (::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) die(err_fd, "PR_SET_DUMPABLE");
  if (!ns::rlimits::apply(rlimits)) die(err_fd, "rlimits");
  if (!ns::capabilities::drop(cap_last)) die(err_fd, "drop capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die(err_fd, "no_new_privs");
  if (::chdir(workspace) != 0) die(err_fd, "chdir");
  // Seccomp last, as for the agent.
  if (!ns::seccomp::load(ns::seccomp::personality_filter())) die(err_fd, "seccomp (personality)");
  if (!ns::seccomp::load(ns::seccomp::filter())) die(err_fd, "seccomp");
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"prepare", prepare, METH_NOARGS, "Compile the seccomp filters and become the kernels' reaper."},
    {"enter", enter, METH_VARARGS, "enter(cgroup_dirs, ns_fds): join a session's cgroup and namespaces."},
    {"finish", finish, METH_VARARGS,
     "finish(kernel_fds, rlimits, uid, gid, workspace): become the session's contained kernel."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sandbox_template",
                      "The template's half of forking a warm Python kernel into a session.", -1, methods,
                      nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__sandbox_template() { return PyModule_Create(&module); }
