// _sandbox_template: the child half of "fork the Python template into a session".
//
// runtime/kernel.py --template imports this module in a host process that has matplotlib,
// numpy and pandas loaded (lib/isolation/namespaces/template.cpp starts it). For each new
// session it forks; the fork calls enter() to join the session's cgroup and namespaces,
// forks once more (the pid namespace only applies to children), and the grandchild calls
// finish() to take on the session's confinement (../confinement.cpp, applied by
// sys::confine() as in the agent's clone child), as code rather than as the agent. Then it
// serves as the session's Python kernel, its pages shared copy-on-write with the template.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <poll.h>
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
#include "sys/spawn.hpp"

namespace {
namespace ns = sandbox::isolation::ns;
namespace sys = sandbox::sys;

// enter()'s pidfds, inherited by the grandchild: of the fork it is born of (gone once it is
// ours) and of the template (its parent from then on, whose death is its death).
int fork_pidfd = -1;
int template_pidfd = -1;

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
    (void)ns::confinement({}, false);
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
  fork_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  template_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getppid(), 0));
  if (fork_pidfd < 0 || template_pidfd < 0) return raise_step("pidfd_open");
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

// finish(kernel_fds, rlimits, durable=False): in the grandchild, inside the session's pid
// namespace. kernel_fds are [stdout, stderr, requests, replies] and become fds 1-4 (fd 0 is
// /dev/null), as an agent-started kernel has them; every other fd is closed. Durable: no
// death with the template (the session's agent, init of its pid namespace, still ends it).
PyObject* finish(PyObject*, PyObject* args) {
  PyObject *fds_obj, *limits_obj;
  int durable = 0;
  if (!PyArg_ParseTuple(args, "OO|p", &fds_obj, &limits_obj, &durable)) return nullptr;
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
  sys::Confinement walls;
  try {
    walls = ns::confinement(rlimits, /*agent=*/false, durable != 0);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }

  // From here on a failure ends the process (die), reported on the kernel's stderr.
  int err_fd = static_cast<int>(fds[1]);
  // The death signal must name the template, not the fork we came from: wait until that
  // fork has exited (we are the template's child then).
  pollfd p{fork_pidfd, POLLIN, 0};
  while (::poll(&p, 1, -1) < 0)
    if (errno != EINTR) die(err_fd, "waiting to be the template's child");
  ::close(fork_pidfd);
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) die(err_fd, "/dev/null");
  int map[5] = {null};
  for (int i = 0; i < 4; ++i) map[i + 1] = static_cast<int>(fds[static_cast<std::size_t>(i)]);
  if (!sys::place_fds(map, 5, &template_pidfd)) die(err_fd, "placing the kernel's fds");
  err_fd = 2;
  walls.parent_fd = durable ? -1 : template_pidfd;  // readable once the template has exited
  walls.parent_gone = POLLIN;
  sys::ConfineStep failed{};
  if (!sys::confine(walls, &failed)) die(err_fd, sys::confine_step_name(failed));
  ::close(template_pidfd);
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"prepare", prepare, METH_NOARGS, "Compile the seccomp filters and become the kernels' reaper."},
    {"enter", enter, METH_VARARGS, "enter(cgroup_dirs, ns_fds): join a session's cgroup and namespaces."},
    {"finish", finish, METH_VARARGS,
     "finish(kernel_fds, rlimits, durable=False): become the session's contained kernel."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sandbox_template",
                      "The template's half of forking a warm Python kernel into a session.", -1, methods,
                      nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__sandbox_template() { return PyModule_Create(&module); }
