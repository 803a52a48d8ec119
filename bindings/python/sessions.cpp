// Sandbox, Session, Files, Execution: the library's objects, with the GIL released around
// every call into it so that many Python threads can run sessions at once.
#include <Python.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "sandbox/remote.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::python {

std::filesystem::path packaged_runtime_dir;

namespace {

using namespace std::chrono_literals;
using nogil = py::gil_scoped_release;
using SandboxPtr = std::shared_ptr<Sandbox>;

// How often a blocking wait wakes to let Python run signal handlers (Ctrl-C).
constexpr auto signal_poll = 100ms;

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// ---- limits: keyword arguments shared by Sandbox(...) and Session(...) -------------------

struct LimitArgs {
  std::optional<double> timeout;      // seconds
  std::optional<std::uint64_t> memory;
  std::optional<std::uint32_t> max_processes;
  std::optional<std::uint64_t> disk;
  std::optional<std::uint64_t> max_output;
  std::optional<std::uint64_t> max_upload;
  std::optional<double> cpu_time;     // seconds
  std::optional<std::uint32_t> open_files;
  std::optional<double> cpus;

  // The library's one parse (sandbox::set_limit) under the Python names.
  Limits apply(Limits l) const {
    auto set = [&l](const char* name, const auto& v) {
      if (v) set_limit(l, name, static_cast<double>(*v));
    };
    set("timeout", timeout);
    set("memory_bytes", memory);
    set("max_processes", max_processes);
    set("disk_bytes", disk);
    set("output_bytes", max_output);
    set("upload_bytes", max_upload);
    set("cpu_time", cpu_time);
    set("open_files", open_files);
    set("cpus", cpus);
    l.validate();
    return l;
  }
};

// ---- the module's default Sandboxes, one per isolation name, made on first use ------------

std::mutex defaults_mutex;
std::map<std::string, SandboxPtr>* defaults = new std::map<std::string, SandboxPtr>;  // never freed: outlives module teardown

Options make_options(std::optional<std::filesystem::path> state_dir, std::optional<std::string> isolation,
                     std::optional<std::filesystem::path> runtime_dir) {
  Options o;
  if (state_dir) o.state_dir = *state_dir;
  if (isolation) o.isolation = *isolation;
  if (runtime_dir) {
    o.runtime_dir = *runtime_dir;
  } else if (std::getenv("SANDBOX_RUNTIME_DIR") == nullptr && !packaged_runtime_dir.empty()) {
    o.runtime_dir = packaged_runtime_dir;
  }
  return o;
}

// Call without the GIL: building a Sandbox probes the backends.
SandboxPtr default_sandbox(const std::optional<std::string>& isolation) {
  std::string key = isolation.value_or("");
  std::lock_guard lock(defaults_mutex);
  auto it = defaults->find(key);
  if (it != defaults->end()) return it->second;
  // Made before it is recorded: a backend that cannot start leaves no entry behind.
  auto sb = std::make_shared<Sandbox>(make_options({}, isolation, {}));
  defaults->emplace(key, sb);
  return sb;
}

// ---- wrappers -----------------------------------------------------------------------------

// Each wrapper keeps its Sandbox alive: the library's objects rely on its I/O thread.

// Keeps alive what a session's objects rely on: its Sandbox (whose I/O thread serves it) or
// the Remote it came from.
using Keep = std::shared_ptr<const void>;

struct PyExecution {
  Keep keep;
  std::shared_ptr<Execution> ex;

  // Waits for the end with the GIL released, waking to honour Ctrl-C. False if `timeout`
  // (seconds) ran out first.
  bool wait_until_done(std::optional<double> timeout) {
    using clock = std::chrono::steady_clock;
    std::optional<clock::time_point> deadline;
    if (timeout) deadline = clock::now() + std::chrono::duration_cast<clock::duration>(
                                               std::chrono::duration<double>(std::max(0.0, *timeout)));
    for (;;) {
      auto slice = std::chrono::milliseconds(signal_poll);
      if (deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now());
        slice = std::clamp(left, 0ms, slice);
      }
      bool done;
      {
        nogil release;
        done = ex->wait_for(slice);
      }
      if (done) return true;
      check_signals();
      if (deadline && clock::now() >= *deadline) return false;
    }
  }

  Result wait(std::optional<double> timeout) {
    if (!wait_until_done(timeout)) {
      throw Error(errc::timeout, "execution " + ex->id() + " still running after " +
                                     std::to_string(*timeout) + " s");
    }
    nogil release;
    return ex->wait();
  }

  Result snapshot() const {
    nogil release;
    return ex->snapshot();
  }
};

// One piece of output, in the order it was read.
struct OutputChunk {
  std::string stream;  // "stdout" or "stderr"
  std::string data;
};

// Length of the longest prefix of `s` that does not end inside a UTF-8 sequence, so a chunk
// never splits a character (the rest waits for the next chunk).
std::size_t complete_utf8(std::string_view s) {
  std::size_t i = s.size();
  int continuation = 0;
  while (i > 0 && continuation < 3 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++continuation;
  }
  if (i == 0) return s.size();
  auto lead = static_cast<unsigned char>(s[i - 1]);
  std::size_t need = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
  return s.size() - (i - 1) < need ? i - 1 : s.size();
}

// Iterator behind Execution.stream(): waits (GIL released) for the output to grow and
// yields what is new, until the execution has ended and everything was yielded.
class OutputStream {
 public:
  explicit OutputStream(PyExecution ex) : ex_(std::move(ex)) {}

  OutputChunk next() {
    while (pending_.empty()) {
      if (ended_) throw py::stop_iteration();
      poll();
      check_signals();
    }
    OutputChunk c = std::move(pending_.front());
    pending_.pop_front();
    return c;
  }

 private:
  void poll() {
    Result r;
    {
      nogil release;
      if (!ex_.ex->done()) ex_.ex->wait_change(out_, err_, signal_poll);
      r = ex_.ex->snapshot(Page{.offset = std::min(out_, err_)});
    }
    ended_ = r.status != Status::running;
    take("stdout", r.stdout_text, r.stdout_offset, out_);
    take("stderr", r.stderr_text, r.stderr_offset, err_);
  }

  // Queues the part of `slice` (which starts at `slice_offset` in its stream) past `seen`.
  void take(const char* stream, const std::string& slice, std::uint64_t slice_offset, std::uint64_t& seen) {
    if (seen < slice_offset || seen - slice_offset >= slice.size()) return;
    std::string_view fresh = std::string_view(slice).substr(seen - slice_offset);
    if (!ended_) fresh = fresh.substr(0, complete_utf8(fresh));
    if (fresh.empty()) return;
    seen += fresh.size();
    pending_.push_back({stream, std::string(fresh)});
  }

  PyExecution ex_;
  std::uint64_t out_ = 0, err_ = 0;
  bool ended_ = false;
  std::deque<OutputChunk> pending_;
};

struct PyFiles {
  Keep keep;
  std::shared_ptr<Session> session;
};

// A file name from Python: str (UTF-8, undecodable bytes as surrogates, as list() gives
// them) or bytes.
std::string file_name(const py::handle& h) {
  if (py::isinstance<py::bytes>(h)) return h.cast<std::string>();
  if (py::isinstance<py::str>(h)) {
    PyObject* b = PyUnicode_AsEncodedString(h.ptr(), "utf-8", "surrogateescape");
    if (b == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::bytes>(b).cast<std::string>();
  }
  return file_name(py::module_::import("os").attr("fspath")(h));
}

py::str name_text(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

struct PySession {
  SandboxPtr sandbox;  // null for a remote session
  Keep keep;           // the Sandbox or the Remote
  std::shared_ptr<Session> session;
  bool owned = false;  // made by this wrapper: closed when it is closed or collected

  PySession(SandboxPtr sb, std::shared_ptr<Session> s, bool own)
      : sandbox(sb), keep(std::move(sb)), session(std::move(s)), owned(own) {}
  PySession(Keep remote, std::shared_ptr<Session> s, bool own)
      : keep(std::move(remote)), session(std::move(s)), owned(own) {}
  PySession(const PySession&) = delete;
  PySession& operator=(const PySession&) = delete;

  ~PySession() {
    if (!owned) return;
    // Closing kills processes and removes the workspace: do not hold the GIL meanwhile
    // (except while the interpreter is finalizing, when it may not be released).
    if (!finalizing() && PyGILState_Check() != 0) {
      nogil release;
      close_nogil();
    } else {
      close_nogil();
    }
  }

  // Idempotent. Only ever closes this very session, never a later one that reused its id.
  void close_nogil() noexcept {
    owned = false;
    try {
      if (!sandbox) session->close();  // remote: this very handle, idempotent
      else if (sandbox->find(session->id(), session->owner()) == session)
        sandbox->close_session(session->id(), session->owner());
    } catch (...) {
      // Closed meanwhile (another thread, Sandbox.close()): nothing left to do.
    }
  }

  void close() {
    nogil release;
    close_nogil();
  }

  PyExecution start(const std::string& code, const std::string& language, const std::string& stdin_text,
                    std::optional<double> timeout, bool fresh) {
    ExecRequest req;
    req.language = parse_language(language);
    req.code = code;
    req.stdin_text = stdin_text;
    if (timeout) {
      Limits l;  // seconds become milliseconds as for every limit
      set_limit(l, "timeout", *timeout);
      req.timeout = l.timeout;
    }
    req.fresh = fresh;
    nogil release;
    return PyExecution{keep, session->start(std::move(req))};
  }

  Result run(const std::string& code, const std::string& language, const std::string& stdin_text,
             std::optional<double> timeout, bool fresh) {
    PyExecution ex = start(code, language, stdin_text, timeout, fresh);
    try {
      ex.wait_until_done(std::nullopt);
    } catch (py::error_already_set&) {
      // Ctrl-C while waiting interrupts the code too, as in a notebook.
      nogil release;
      ex.ex->cancel();
      throw;
    }
    nogil release;
    return ex.ex->wait();
  }
};

std::string session_repr(const PySession& s) {
  return "Session(id=" + std::string(py::repr(py::str(s.session->id()))) + ", isolation=" +
         std::string(py::repr(py::str(std::string(s.session->isolation())))) + ", status=" +
         std::string(to_string(s.session->status())) + ")";
}

// Keyword arguments for limits, shared by Session(...), Sandbox(...) and Sandbox.session(...).
#define SANDBOX_LIMIT_ARGS                                                                    \
  py::arg("timeout") = py::none(), py::arg("memory") = py::none(),                            \
      py::arg("max_processes") = py::none(), py::arg("disk") = py::none(),                    \
      py::arg("max_output") = py::none(), py::arg("max_upload") = py::none(),                 \
      py::arg("cpu_time") = py::none(), py::arg("open_files") = py::none(),                   \
      py::arg("cpus") = py::none()

#define SANDBOX_LIMIT_PARAMS                                                                  \
  std::optional<double> timeout, std::optional<std::uint64_t> memory,                         \
      std::optional<std::uint32_t> max_processes, std::optional<std::uint64_t> disk,          \
      std::optional<std::uint64_t> max_output, std::optional<std::uint64_t> max_upload,       \
      std::optional<double> cpu_time, std::optional<std::uint32_t> open_files,                \
      std::optional<double> cpus

#define SANDBOX_LIMIT_VALUES \
  LimitArgs { timeout, memory, max_processes, disk, max_output, max_upload, cpu_time, open_files, cpus }

constexpr const char* limits_doc = R"doc(Limits (None keeps the default):
    timeout        wall-clock seconds per execution (default 10)
    memory         bytes of memory for the session (default 512 MiB)
    max_processes  processes and threads of the session (default 128)
    disk           bytes of workspace (default 100 MiB)
    max_output     bytes of stdout and of stderr per execution, then truncated (default 1 MiB)
    max_upload     bytes of one uploaded file (default 10 MiB)
    cpu_time       CPU seconds per process (default 300)
    open_files     open files per process (default 1024)
    cpus           CPU share in cores (default 1.0))doc";

std::unique_ptr<PySession> create_session(const SandboxPtr& sb, std::optional<std::string> id,
                                          const std::string& language, const LimitArgs& limits,
                                          std::string owner = {}) {
  SessionOptions opts;
  if (id) opts.id = *id;
  opts.owner = std::move(owner);
  opts.language = parse_language(language);
  opts.limits = limits.apply(sb->options().limits);
  nogil release;
  return std::make_unique<PySession>(sb, sb->create_session(std::move(opts)), true);
}

// Closes every session of `sb`; call without the GIL.
void close_all(const SandboxPtr& sb) noexcept {
  try {
    for (auto& s : sb->sessions()) {
      try {
        sb->close_session(s->id(), s->owner());
      } catch (const Error&) {
        // Closed meanwhile by another thread.
      }
    }
  } catch (...) {
  }
}

// What sandbox.connect() returns: a server's sessions, with a local Sandbox's methods.
struct PyRemote {
  std::shared_ptr<Remote> remote;
  std::mutex mu;
  std::vector<std::weak_ptr<Session>> made;  // what close() closes

  std::unique_ptr<PySession> wrap(std::shared_ptr<Session> s, bool own) {
    return std::make_unique<PySession>(Keep(remote), std::move(s), own);
  }
};
using RemotePtr = std::shared_ptr<PyRemote>;

}  // namespace

void bind_sessions(py::module_& m) {
  // ---- files ------------------------------------------------------------------------------
  py::class_<FileInfo>(m, "FileInfo", "One entry of a session's workspace.")
      .def_property_readonly("name", [](const FileInfo& f) { return name_text(f.name); },
                             R"doc(Path relative to the workspace ("data/a.csv").)doc")
      .def_readonly("size", &FileInfo::size, "Size in bytes.")
      .def_readonly("modified", &FileInfo::modified, "Modification time, seconds since the epoch.")
      .def_property_readonly("type", [](const FileInfo& f) { return std::string(to_string(f.type)); },
                             R"doc("file", "directory", "symlink" or "other".)doc")
      .def("__repr__", [](const FileInfo& f) {
        return "FileInfo(name=" + std::string(py::repr(name_text(f.name))) + ", size=" +
               std::to_string(f.size) + ", type='" + std::string(to_string(f.type)) + "')";
      });

  py::class_<PyFiles>(m, "Files", R"doc(A session's workspace (the code's current directory), seen from the host.

Names are relative paths ("data/a.csv"); absolute paths, ".." and symlinks are refused.)doc")
      .def(
          "upload",
          [](PyFiles& f, const py::handle& name, const py::object& data, bool overwrite) {
            std::string n = file_name(name);
            std::string bytes;
            if (py::isinstance<py::str>(data)) {
              bytes = data.cast<std::string>();
            } else {
              py::buffer_info info = py::reinterpret_borrow<py::buffer>(data).request();
              bytes.assign(static_cast<const char*>(info.ptr),
                           static_cast<std::size_t>(info.size * info.itemsize));
            }
            nogil release;
            return f.session->files().upload(n, bytes, UploadOptions{.overwrite = overwrite});
          },
          py::arg("name"), py::arg("data"), py::kw_only(), py::arg("overwrite") = false,
          R"doc(Writes `data` (bytes, or str as UTF-8) to the workspace as `name` and returns its FileInfo.

Raises AlreadyExistsError if `name` exists (unless overwrite=True), LimitExceededError over
the upload or disk limit, InvalidArgumentError for a bad name.)doc")
      .def(
          "download",
          [](PyFiles& f, const py::handle& name) {
            std::string n = file_name(name);
            std::string data;
            {
              nogil release;
              data = f.session->files().download(n);
            }
            return py::bytes(data);
          },
          py::arg("name"), "The bytes of a workspace file. Raises NotFoundError if it is missing.")
      .def(
          "list",
          [](PyFiles& f) {
            nogil release;
            return f.session->files().list();
          },
          "Every entry of the workspace, recursively (a list of FileInfo).")
      .def(
          "stat",
          [](PyFiles& f, const py::handle& name) {
            std::string n = file_name(name);
            nogil release;
            return f.session->files().stat(n);
          },
          py::arg("name"), "The FileInfo of one entry. Raises NotFoundError if it is missing.")
      .def(
          "delete",
          [](PyFiles& f, const py::handle& name) {
            std::string n = file_name(name);
            nogil release;
            f.session->files().remove(n);
          },
          py::arg("name"), "Removes a workspace file. Raises NotFoundError if it is missing.")
      .def("__repr__", [](const PyFiles& f) { return "<Files of session " + f.session->id() + ">"; });

  // ---- processes --------------------------------------------------------------------------
  py::class_<ProcessInfo>(m, "Process", "A process of a session, as its code sees it.")
      .def_readonly("pid", &ProcessInfo::pid, "Pid inside the session (what os.getpid() says there).")
      .def_readonly("ppid", &ProcessInfo::ppid, "Parent pid inside the session.")
      .def_property_readonly("name", [](const ProcessInfo& p) { return text(p.name); },
                             "The command name (comm).")
      .def_property_readonly("cmdline", [](const ProcessInfo& p) { return text(p.cmdline); },
                             "Arguments joined by spaces.")
      .def_property_readonly("state", [](const ProcessInfo& p) { return std::string(to_string(p.state)); },
                             R"doc("R", "S", "Z", ...)doc")
      .def_readonly("rss", &ProcessInfo::rss_bytes, "Resident memory in bytes.")
      .def_readonly("cpu_time_ms", &ProcessInfo::cpu_time_ms, "CPU time used, milliseconds.")
      .def_readonly("start_time", &ProcessInfo::start_time, "Start time, seconds since the epoch.")
      .def("__repr__", [](const ProcessInfo& p) {
        return "Process(pid=" + std::to_string(p.pid) + ", name=" + std::string(py::repr(text(p.name))) +
               ", state='" + std::string(to_string(p.state)) + "')";
      });

  // ---- executions -------------------------------------------------------------------------
  py::class_<OutputChunk>(m, "OutputChunk", "A piece of output yielded by Execution.stream().")
      .def_readonly("stream", &OutputChunk::stream, R"doc("stdout" or "stderr".)doc")
      .def_property_readonly("text", [](const OutputChunk& c) { return text(c.data); },
                             "The new text (never splits a UTF-8 character).")
      .def("__str__", [](const OutputChunk& c) { return text(c.data); })
      .def("__repr__", [](const OutputChunk& c) {
        return "OutputChunk(stream='" + c.stream + "', text=" + std::string(py::repr(text(c.data))) + ")";
      });

  py::class_<OutputStream>(m, "OutputStream", "Iterator over an execution's output as it comes.")
      .def("__iter__", [](OutputStream& s) -> OutputStream& { return s; }, py::return_value_policy::reference)
      .def("__next__", &OutputStream::next);

  py::class_<PyExecution>(m, "Execution", R"doc(One run of code in a session, observed while it runs. Made by Session.start().
Typical use:

    ex = s.start("import time\nfor i in range(3):\n    print(i); time.sleep(1)")
    for chunk in ex.stream():      # output as it comes
        print(chunk.text, end="")
    r = ex.wait()                   # the final Result)doc")
      .def_property_readonly("id", [](const PyExecution& e) { return e.ex->id(); },
                             "The execution's id within its session.")
      .def_property_readonly(
          "language", [](const PyExecution& e) { return std::string(to_string(e.ex->language())); },
          R"doc("python", "nodejs" or "shell".)doc")
      .def_property_readonly(
          "status",
          [](const PyExecution& e) {
            nogil release;
            return e.ex->status();
          },
          "The current sandbox.Status (RUNNING until it ends).")
      .def_property_readonly(
          "done",
          [](const PyExecution& e) {
            nogil release;
            return e.ex->done();
          },
          "True once it has ended.")
      .def_property_readonly("stdout", [](const PyExecution& e) { return text(e.snapshot().stdout_text); },
                             "Standard output so far.")
      .def_property_readonly("stderr", [](const PyExecution& e) { return text(e.snapshot().stderr_text); },
                             "Standard error so far.")
      .def_property_readonly("result", &PyExecution::snapshot,
                             "The Result as it stands: status RUNNING and the output so far while "
                             "it runs, the final Result afterwards.")
      .def("wait", &PyExecution::wait, py::arg("timeout") = py::none(), R"doc(Blocks until the execution ends and returns its Result.

timeout: seconds to wait at most (None: no limit); raises sandbox.TimeoutError if it is still
running then (the execution keeps running; its own limit is the session's timeout).)doc")
      .def(
          "stream", [](const PyExecution& e) { return OutputStream(e); }, R"doc(An iterator of OutputChunk: new stdout/stderr text as the code produces it, ending when the
execution ends. Waits with the GIL released.)doc")
      .def(
          "cancel",
          [](PyExecution& e) {
            nogil release;
            e.ex->cancel();
          },
          "Kills every process of this execution; its Result ends as KILLED.")
      .def("__repr__", [](const PyExecution& e) {
        return "Execution(id=" + std::string(py::repr(py::str(e.ex->id()))) + ", language=" +
               std::string(to_string(e.ex->language())) + ", status=" +
               std::string(to_string(e.ex->status())) + ")";
      });

  // ---- sessions ---------------------------------------------------------------------------
  std::string session_doc = std::string(R"doc(An isolated place where code runs: a workspace, a stateful Python kernel, Node.js, a shell.

    with sandbox.Session(timeout=10) as s:
        r = s.run("x = 6\nx * 7")       # Result(status=Finished, result='42', ...)
        s.run("1 + 2", language="nodejs")
        s.files.upload("a.csv", b"x,y\n1,2\n")

Session(...) makes a session in the module's default Sandbox for `isolation` (None: the
strongest backend this host supports; or "runsc", "namespaces", "rlimit"). For control over
where state lives, make a sandbox.Sandbox and call its .session(...). A Session made this way
is closed by `with`, by close(), or when it is garbage-collected.

id: the session id ([A-Za-z0-9_-]{1,64}); None generates one.
language: the kernel to warm first ("python", "nodejs" or "shell").

)doc") + limits_doc;

  py::class_<PySession>(m, "Session", session_doc.c_str())
      .def(py::init([](std::optional<std::string> id, std::optional<std::string> isolation,
                       const std::string& language, SANDBOX_LIMIT_PARAMS) {
             SandboxPtr sb;
             {
               nogil release;
               sb = default_sandbox(isolation);
             }
             return create_session(sb, std::move(id), language, SANDBOX_LIMIT_VALUES);
           }),
           py::arg("id") = py::none(), py::kw_only(), py::arg("isolation") = py::none(),
           py::arg("language") = "python", SANDBOX_LIMIT_ARGS)
      .def_property_readonly("id", [](const PySession& s) { return s.session->id(); }, "The session id.")
      .def_property_readonly("isolation",
                             [](const PySession& s) { return std::string(s.session->isolation()); },
                             R"doc(The isolation backend in use ("runsc", "namespaces", "rlimit").)doc")
      .def_property_readonly(
          "status", [](const PySession& s) { return std::string(to_string(s.session->status())); },
          R"doc("Pending", "Ready" or "Closed".)doc")
      .def_property_readonly(
          "workspace",
          [](const PySession& s) -> py::object {
            auto w = s.session->workspace();
            if (w.empty()) return py::none();
            return py::cast(w);
          },
          "The workspace directory on the host (a pathlib.Path); None for a remote session.")
      .def_property_readonly("placement", [](const PySession& s) { return s.session->placement(); },
                             R"doc(Where the session runs ("local", or where a server placed it).)doc")
      .def_property_readonly("files", [](const PySession& s) { return PyFiles{s.keep, s.session}; },
                             "The session's workspace: upload, download, list, stat, delete.")
      .def("run", &PySession::run, py::arg("code"), py::arg("language") = "python", py::kw_only(),
           py::arg("stdin") = "", py::arg("timeout") = py::none(), py::arg("fresh") = false, R"doc(Runs `code` and waits for its Result.

language: "python" (default; state persists across runs, like a notebook), "nodejs" or
    "shell".
stdin: text the code reads on standard input (then end of file; code never blocks on it).
timeout: wall-clock seconds for this run (default: the session's).
fresh: run in a new interpreter instead of the session's kernel.

An error in the code is a Result with status FAILED, not an exception. Ctrl-C while waiting
cancels the execution.)doc")
      .def("start", &PySession::start, py::arg("code"), py::arg("language") = "python", py::kw_only(),
           py::arg("stdin") = "", py::arg("timeout") = py::none(), py::arg("fresh") = false,
           "Starts `code` like run() but returns an Execution at once.")
      .def(
          "processes",
          [](PySession& s) {
            nogil release;
            return s.session->processes();
          },
          "The session's processes (a list of Process).")
      .def(
          "kill",
          [](PySession& s, int pid, int signal) {
            nogil release;
            s.session->kill(pid, signal);
          },
          py::arg("pid"), py::arg("signal") = 9,
          "Sends `signal` to a process of this session. Raises NotFoundError for any other pid.")
      .def("close", &PySession::close,
           "Kills everything in the session and removes its workspace. Later calls raise "
           "FailedPreconditionError or NotFoundError.")
      .def("__enter__", [](PySession& s) -> PySession& { return s; }, py::return_value_policy::reference)
      .def("__exit__", [](PySession& s, const py::args&) { s.close(); })
      .def("__repr__", &session_repr);

  // ---- Sandbox ----------------------------------------------------------------------------
  std::string sandbox_doc = std::string(R"doc(The owner of sessions: their state directory, isolation backend and default limits.

    with sandbox.Sandbox(state_dir="/tmp/sb", isolation="rlimit", timeout=30) as sb:
        s = sb.session()
        s.run("1 + 1")

state_dir: where sessions keep their workspaces (None: a private temporary directory,
    removed when the Sandbox is closed).
isolation: "runsc", "namespaces", "rlimit", or None for the strongest this host supports;
    raises UnavailableError if the named one cannot run here.
runtime_dir: where sandbox-agent and the kernels live (None: $SANDBOX_RUNTIME_DIR, the
    installed package's, or the build tree's).
warm_pool: ready sessions kept in reserve, so that new sessions start at once.
max_sessions: more open sessions raise LimitExceededError.
max_sessions_per_tenant, max_executions_per_tenant: quotas per owner (see session(owner=...));
    0 = none. Over one raises LimitExceededError naming the quota.
sessions_memory, sessions_processes: the ceiling of all sessions together (bytes, processes;
    a parent cgroup where the backend has one); 0 = the default, below the host's.
placement: "local" (every session here), "kubernetes" (a pod per session) or "hybrid" (the
    local cluster below water_level, else cloud_gateway), as `sandboxctl serve --placement`;
    kubeconfig, namespace, pod_template, runtime_class, pod_port, pod_token_file,
    cloud_gateway, cloud_token_file, water_level, metrics_fallback ("local", "cloud",
    "refuse"), ready_timeout (seconds) and gateway_name are its --flags of the same names.
    A placed session's `placement` says where it went; its status is "Pending" until its
    pod is Ready.
idle_timeout, lifetime: the reaper closes sessions unused (or alive) this many seconds;
    0 = never.
Durability (docs/durability.md): with a state_dir, sessions outlive this Sandbox (and its
    process) and the next Sandbox on the same state_dir adopts them; one that cannot be
    adopted is listed with status "Lost" and raises SessionLostError until it is closed.
close_sessions_on_exit: True closes every session when the Sandbox is closed (the old end).
lost_retention: seconds a lost session's workspace is kept (readable) before it is deleted.
orphan_timeout: seconds an agent with no Sandbox attached keeps its session before it ends
    it (0 = idle_timeout, else 15 minutes).
The limit arguments set the defaults of its sessions.

)doc") + limits_doc;

  py::class_<Sandbox, SandboxPtr>(m, "Sandbox", sandbox_doc.c_str())
      .def(py::init([](std::optional<std::filesystem::path> state_dir, std::optional<std::string> isolation,
                       std::optional<std::filesystem::path> runtime_dir, std::size_t warm_pool,
                       std::size_t max_sessions, std::size_t max_sessions_per_tenant,
                       std::size_t max_executions_per_tenant, std::uint64_t sessions_memory,
                       std::uint32_t sessions_processes, const std::string& placement_mode,
                       std::optional<std::filesystem::path> kubeconfig, std::optional<std::string> namespace_,
                       std::optional<std::filesystem::path> pod_template, std::optional<std::string> runtime_class,
                       std::uint16_t pod_port, std::optional<std::filesystem::path> pod_token_file,
                       std::optional<std::string> cloud_gateway, std::optional<std::filesystem::path> cloud_token_file,
                       double water_level, const std::string& metrics_fallback, double ready_timeout,
                       std::string gateway_name, double idle_timeout, double lifetime,
                       bool close_sessions_on_exit, double lost_retention, double orphan_timeout,
                       SANDBOX_LIMIT_PARAMS) {
             Options o = make_options(std::move(state_dir), std::move(isolation), std::move(runtime_dir));
             placement::Options& p = o.placement;
             p.mode = placement::mode_from_string(placement_mode);
             p.kubeconfig = kubeconfig.value_or("");
             p.namespace_ = namespace_.value_or("");
             p.pod_template = pod_template.value_or("");
             p.runtime_class = runtime_class.value_or("");
             p.pod_port = pod_port;
             p.pod_token_file = pod_token_file.value_or("");
             p.cloud_gateway = cloud_gateway.value_or("");
             p.cloud_token_file = cloud_token_file.value_or("");
             p.water_level = water_level;
             p.metrics_fallback = placement::fallback_from_string(metrics_fallback);
             p.ready_timeout = std::chrono::milliseconds(std::llround(ready_timeout * 1000));
             p.gateway_name = std::move(gateway_name);
             o.idle_timeout = std::chrono::seconds(std::llround(idle_timeout));
             o.lifetime = std::chrono::seconds(std::llround(lifetime));
             o.close_sessions_on_exit = close_sessions_on_exit;
             o.lost_retention = std::chrono::seconds(std::llround(lost_retention));
             o.orphan_timeout = std::chrono::seconds(std::llround(orphan_timeout));
             o.limits = SANDBOX_LIMIT_VALUES.apply(o.limits);
             o.warm_pool = warm_pool;
             o.max_sessions = max_sessions;
             o.max_sessions_per_tenant = max_sessions_per_tenant;
             o.max_executions_per_tenant = max_executions_per_tenant;
             o.sessions_memory_bytes = sessions_memory;
             o.sessions_processes = sessions_processes;
             nogil release;
             return std::make_shared<Sandbox>(std::move(o));
           }),
           py::arg("state_dir") = py::none(), py::arg("isolation") = py::none(), py::kw_only(),
           py::arg("runtime_dir") = py::none(), py::arg("warm_pool") = 0, py::arg("max_sessions") = 1000,
           py::arg("max_sessions_per_tenant") = 0, py::arg("max_executions_per_tenant") = 0,
           py::arg("sessions_memory") = 0, py::arg("sessions_processes") = 0, py::arg("placement") = "local",
           py::arg("kubeconfig") = py::none(), py::arg("namespace") = py::none(),
           py::arg("pod_template") = py::none(), py::arg("runtime_class") = py::none(),
           py::arg("pod_port") = 8080, py::arg("pod_token_file") = py::none(),
           py::arg("cloud_gateway") = py::none(), py::arg("cloud_token_file") = py::none(),
           py::arg("water_level") = 0.8, py::arg("metrics_fallback") = "local", py::arg("ready_timeout") = 120.0,
           py::arg("gateway_name") = "gateway", py::arg("idle_timeout") = 0.0, py::arg("lifetime") = 0.0,
           py::arg("close_sessions_on_exit") = false, py::arg("lost_retention") = 86400.0,
           py::arg("orphan_timeout") = 0.0, SANDBOX_LIMIT_ARGS)
      .def(
          "session",
          [](const SandboxPtr& sb, std::optional<std::string> id, const std::string& language,
             std::string owner, SANDBOX_LIMIT_PARAMS) {
            return create_session(sb, std::move(id), language, SANDBOX_LIMIT_VALUES, std::move(owner));
          },
          py::arg("id") = py::none(), py::kw_only(), py::arg("language") = "python", py::arg("owner") = "",
          SANDBOX_LIMIT_ARGS,
          "Makes a new Session (see help(sandbox.Session)); limits default to this Sandbox's. "
          "`owner` names its tenant: ids are per owner, and the per-tenant quotas count by it.")
      .def(
          "get",
          [](const SandboxPtr& sb, const std::string& id, const std::string& owner) {
            nogil release;
            return std::make_unique<PySession>(sb, sb->session(id, owner), false);
          },
          py::arg("id"), py::kw_only(), py::arg("owner") = "",
          "The open session `id`, shared (not closed when this object is collected). Raises "
          "NotFoundError.")
      .def(
          "sessions",
          [](const SandboxPtr& sb) {
            std::vector<std::shared_ptr<Session>> all;
            {
              nogil release;
              all = sb->sessions();
            }
            py::list out;
            for (auto& s : all) out.append(py::cast(std::make_unique<PySession>(sb, s, false)));
            return out;
          },
          "The open sessions (shared, like get()).")
      .def(
          "close_session",
          [](const SandboxPtr& sb, const std::string& id, const std::string& owner) {
            nogil release;
            sb->close_session(id, owner);
          },
          py::arg("id"), py::kw_only(), py::arg("owner") = "",
          "Closes the session `id`. Raises NotFoundError.")
      .def_property_readonly("isolation", [](const Sandbox& sb) { return std::string(sb.isolation()); },
                             "The isolation backend in use.")
      .def_property_readonly("state_dir", [](const Sandbox& sb) { return sb.options().state_dir; },
                             "The state directory (empty for a private temporary one).")
      .def(
          "close",
          [](const SandboxPtr& sb) {
            nogil release;
            close_all(sb);
          },
          "Closes every session of this Sandbox.")
      .def("__enter__", [](const SandboxPtr& sb) { return sb; })
      .def("__exit__",
           [](const SandboxPtr& sb, const py::args&) {
             nogil release;
             close_all(sb);
           })
      .def("__repr__", [](const Sandbox& sb) {
        return "Sandbox(isolation='" + std::string(sb.isolation()) + "', sessions=" +
               std::to_string(sb.sessions().size()) + ")";
      });

  // ---- Remote: sandbox.connect(url) -------------------------------------------------------
  py::class_<PyRemote, RemotePtr>(m, "Remote", R"doc(A server's sessions (`sandboxctl serve`, a gateway), with the methods of a local Sandbox.

    with sandbox.connect("https://sb.example", token="t") as server:
        s = server.session(timeout=30)      # POST /sessions
        s.run("1 + 1").result               # '2'
        for chunk in s.start("for i in range(3): print(i)").stream():
            print(chunk.text, end="")       # as it arrives (server-sent events)

Its sessions are sandbox.Session objects with the same methods as local ones (workspace is
None). Errors are the server's, as the same exception classes. Limits not given take the
server's defaults, which are also its ceilings (asking for more raises PermissionDeniedError).
Blocking calls release the GIL.)doc")
      .def(
          "session",
          [](const RemotePtr& r, std::optional<std::string> id, const std::string& language,
             const std::string& owner, SANDBOX_LIMIT_PARAMS) {
            SessionOptions opts;
            if (id) opts.id = *id;
            opts.owner = owner;
            opts.language = parse_language(language);
            opts.limits = SANDBOX_LIMIT_VALUES.apply(Limits{});
            std::shared_ptr<Session> s;
            {
              nogil release;
              s = r->remote->create_session(std::move(opts));
            }
            std::lock_guard lock(r->mu);
            std::erase_if(r->made, [](auto& w) { return w.expired(); });
            r->made.push_back(s);
            return r->wrap(std::move(s), true);
          },
          py::arg("id") = py::none(), py::kw_only(), py::arg("language") = "python", py::arg("owner") = "",
          SANDBOX_LIMIT_ARGS,
          "Makes a new session on the server (see help(sandbox.Session)); closed with it, by "
          "close(), or when collected. `owner` must stay empty: the token names the tenant.")
      .def(
          "get",
          [](const RemotePtr& r, const std::string& id) {
            std::shared_ptr<Session> s;
            {
              nogil release;
              s = r->remote->session(id);
            }
            return r->wrap(std::move(s), false);
          },
          py::arg("id"), "The server's session `id`, shared (not closed when collected). Raises NotFoundError.")
      .def(
          "sessions",
          [](const RemotePtr& r) {
            std::vector<std::shared_ptr<Session>> all;
            {
              nogil release;
              all = r->remote->sessions();
            }
            py::list out;
            for (auto& s : all) out.append(py::cast(r->wrap(s, false)));
            return out;
          },
          "The caller's sessions on the server (shared, like get()).")
      .def(
          "close_session",
          [](const RemotePtr& r, const std::string& id) {
            nogil release;
            r->remote->close_session(id);
          },
          py::arg("id"), "Closes the server's session `id`. Raises NotFoundError.")
      .def(
          "close",
          [](const RemotePtr& r) {
            std::vector<std::weak_ptr<Session>> made;
            {
              std::lock_guard lock(r->mu);
              made.swap(r->made);
            }
            nogil release;
            for (auto& w : made)
              if (auto s = w.lock()) {
                try {
                  s->close();
                } catch (const Error&) {
                  // Closed meanwhile.
                }
              }
          },
          "Closes the sessions this object made (others' sessions on the server are left alone).")
      .def_property_readonly("url", [](const PyRemote& r) { return r.remote->url(); }, "The server's URL.")
      .def("__enter__", [](const RemotePtr& r) { return r; })
      .def("__exit__", [](const RemotePtr& r, const py::args&) { py::cast(r).attr("close")(); })
      .def("__repr__", [](const PyRemote& r) { return "Remote(url=" + std::string(py::repr(py::str(r.remote->url()))) + ")"; });

  m.def(
      "connect",
      [](const std::string& url, std::optional<std::string> token, std::optional<std::filesystem::path> ca_file,
         bool verify, double timeout) {
        ConnectOptions o;
        if (token) o.token = *token;
        if (ca_file) o.ca_file = *ca_file;
        o.verify_tls = verify;
        if (!(timeout > 0) || timeout > 1e9) throw Error(errc::invalid_argument, "timeout must be > 0 seconds");
        o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout * 1000.0 + 0.5));
        auto r = std::make_shared<PyRemote>();
        nogil release;
        r->remote = connect(url, o);
        return r;
      },
      py::arg("url"), py::arg("token") = py::none(), py::kw_only(), py::arg("ca_file") = py::none(),
      py::arg("verify") = true, py::arg("timeout") = 60.0, R"doc(A server as a Remote: sandbox.connect("https://host", token="t").

token: the bearer token (never sent over plain http except to a loopback address).
ca_file: a PEM bundle to verify https against (default: the system's).
verify: False skips certificate checks (tests only).
timeout: seconds one request may take (a wait adds its own).
Connects lazily: the first call reaches the server.)doc");

  m.def(
      "default_sandbox",
      [](std::optional<std::string> isolation) {
        nogil release;
        return default_sandbox(isolation);
      },
      py::arg("isolation") = py::none(),
      "The Sandbox that Session(isolation=...) uses, made on first use (state in a temporary "
      "directory).");

  m.def(
      "_close_default_sandboxes",
      [] {
        nogil release;
        std::map<std::string, SandboxPtr> all;
        {
          std::lock_guard lock(defaults_mutex);
          all.swap(*defaults);
        }
        for (auto& [name, sb] : all) close_all(sb);
      },
      "Closes the default Sandboxes' sessions (registered with atexit by the package).");

  m.def(
      "_set_packaged_runtime_dir", [](std::filesystem::path p) { packaged_runtime_dir = std::move(p); },
      "Set by the package when it carries its own runtime (pip install).");
}

}  // namespace sandbox::python
