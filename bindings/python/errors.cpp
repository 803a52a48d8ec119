// sandbox::errc -> the Python exception tree, in this one table and one translator.
//
// Every class derives from sandbox.SandboxError; where a builtin says the same thing
// (ValueError, LookupError, PermissionError, TimeoutError) the class derives from it too, so
// `except ValueError` keeps working for code that does not know this package. Each raised
// exception carries `.code`, the library's snake_case name ("not_found").
#include <Python.h>

#include <array>
#include <exception>
#include <string>

#include "bindings.hpp"
#include "sandbox/error.hpp"

namespace sandbox::python {
namespace {

struct ErrorClass {
  errc code;
  const char* name;     // qualified name under the `sandbox` package
  PyObject* (*builtin)();  // an extra builtin base, or null
  const char* doc;
};

PyObject* value_error() { return PyExc_ValueError; }
PyObject* lookup_error() { return PyExc_LookupError; }
PyObject* permission_error() { return PyExc_PermissionError; }
PyObject* timeout_error() { return PyExc_TimeoutError; }

constexpr ErrorClass kClasses[] = {
    {errc::invalid_argument, "sandbox.InvalidArgumentError", value_error,
     "The arguments are malformed: a bad session id, file name, language or limit."},
    {errc::not_found, "sandbox.NotFoundError", lookup_error,
     "No such session, file, execution or process (in this session)."},
    {errc::already_exists, "sandbox.AlreadyExistsError", nullptr,
     "A session id or file name is already taken (upload with overwrite=True to replace)."},
    {errc::permission_denied, "sandbox.PermissionDeniedError", permission_error,
     "The operation is not allowed, e.g. a path that leads outside the workspace."},
    {errc::unauthenticated, "sandbox.UnauthenticatedError", nullptr,
     "No or unknown credentials."},
    {errc::resource_exhausted, "sandbox.LimitExceededError", nullptr,
     "A limit was hit: upload size, disk quota, number of sessions."},
    {errc::unavailable, "sandbox.UnavailableError", nullptr,
     "The isolation backend or a dependency cannot serve now (not on this host, or busy)."},
    {errc::failed_precondition, "sandbox.FailedPreconditionError", nullptr,
     "The object is in the wrong state, e.g. the session is closed."},
    {errc::timeout, "sandbox.TimeoutError", timeout_error,
     "A wait ran out before the thing finished (Execution.wait(timeout=...))."},
    {errc::internal, "sandbox.InternalError", nullptr,
     "A bug or an unexpected system failure inside libsandbox."},
    {errc::session_lost, "sandbox.SessionLostError", nullptr,
     "The session existed but was lost (its agent died with its server): delete it."},
};

// Indexed by errc; classes live as long as the process (module state is never torn down).
std::array<PyObject*, 16> by_code{};
PyObject* base_class = nullptr;

PyObject* new_class(const char* name, const char* doc, PyObject* bases) {
  PyObject* cls = PyErr_NewExceptionWithDoc(name, doc, bases, nullptr);
  if (cls == nullptr) throw py::error_already_set();
  return cls;
}

// Sets the Python error for `e`; if building the exception itself fails, that error stands.
void set_error(const Error& e) {
  auto code = static_cast<std::size_t>(e.code_value());
  PyObject* cls = code < by_code.size() && by_code[code] != nullptr ? by_code[code] : base_class;
  try {
    py::object exc = py::reinterpret_borrow<py::object>(cls)(text(e.message()));
    exc.attr("code") = py::str(std::string(to_string(e.code_value())));
    PyErr_SetObject(cls, exc.ptr());
  } catch (py::error_already_set& err) {
    err.restore();
  }
}

}  // namespace

void bind_errors(py::module_& m) {
  base_class = new_class(
      "sandbox.SandboxError",
      "Base of every error raised by libsandbox. `code` holds the library's error code "
      "(\"not_found\", \"already_exists\", ...). Errors in sandboxed code are not exceptions: "
      "they come back as a Failed Result.",
      PyExc_Exception);
  PyObject_SetAttrString(base_class, "code", Py_None);
  m.add_object("SandboxError", py::handle(base_class));

  for (const auto& c : kClasses) {
    py::tuple bases = c.builtin != nullptr
                          ? py::make_tuple(py::handle(base_class), py::handle(c.builtin()))
                          : py::make_tuple(py::handle(base_class));
    PyObject* cls = new_class(c.name, c.doc, bases.ptr());
    by_code[static_cast<std::size_t>(c.code)] = cls;
    m.add_object(std::string(c.name).substr(sizeof("sandbox.") - 1).c_str(), py::handle(cls));
  }

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      set_error(e);
    }
  });
}

}  // namespace sandbox::python
