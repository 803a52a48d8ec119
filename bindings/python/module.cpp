// The private compiled core of the `sandbox` package. Import `sandbox`, not this module.
#include "bindings.hpp"

#include <Python.h>

namespace sandbox::python {

py::str text(std::string_view s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

}  // namespace sandbox::python

PYBIND11_MODULE(_sandbox, m) {
  namespace sp = sandbox::python;
  m.doc() = "Private compiled core of the `sandbox` package (libsandbox). Use `import sandbox`.";
  // Classes are named after the public package (sandbox.Session, also in signatures), not
  // after this private module.
  m.attr("__name__") = "sandbox";
  sp::bind_errors(m);
  sp::bind_results(m);
  sp::bind_sessions(m);
  m.attr("__name__") = "sandbox._sandbox";
}
