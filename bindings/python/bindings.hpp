// bindings/python/bindings.hpp: the pieces of the private module `sandbox._sandbox`.
//
// The module is a thin shell: it converts arguments and results, releases the GIL around
// every call into the library and maps sandbox::Error onto one Python exception tree. It
// decides no policy. One file per concern: errors, results, sessions (+ files, executions).
#pragma once

#include <pybind11/pybind11.h>

#include <filesystem>
#include <string_view>

#include "sandbox/result.hpp"

namespace sandbox::python {

namespace py = pybind11;

// Text produced by sandboxed code is not guaranteed UTF-8: decode with U+FFFD replacement
// rather than raising UnicodeDecodeError from a property getter.
py::str text(std::string_view s);

// Registers SandboxError and its subclasses and the one translator for sandbox::Error.
void bind_errors(py::module_& m);
// Status (a str enum), Image, ErrorInfo, Result.
void bind_results(py::module_& m);
// Sandbox, Session, Files, FileInfo, Process, Execution, OutputChunk.
void bind_sessions(py::module_& m);

// The Python `sandbox.Status` member for a status; the enum is created by bind_results.
py::object status_object(Status s);

// Where the packaged runtime lives when installed by pip ("" in the build tree); set by the
// package's __init__.py and used only when neither runtime_dir= nor $SANDBOX_RUNTIME_DIR is.
extern std::filesystem::path packaged_runtime_dir;

}  // namespace sandbox::python

namespace pybind11::detail {

// sandbox::Status crosses into Python as the str enum sandbox.Status ("Finished", ...).
template <>
struct type_caster<sandbox::Status> {
  PYBIND11_TYPE_CASTER(sandbox::Status, const_name("Status"));
  bool load(handle, bool) { return false; }  // never an argument
  static handle cast(sandbox::Status s, return_value_policy, handle) {
    return sandbox::python::status_object(s).release();
  }
};

}  // namespace pybind11::detail
