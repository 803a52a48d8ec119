// The result object (DESIGN section 3) as Python sees it: Status, Image, ErrorInfo, Result.
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"

namespace sandbox::python {
namespace {

// sandbox.Status, created once at import; lives as long as the process.
PyObject* status_enum = nullptr;

// repr() of text, cut to `max` characters so a Result's repr stays one readable line.
std::string short_repr(std::string_view s, std::size_t max = 60) {
  py::str t = text(s);
  bool cut = py::len(t) > max;
  if (cut) t = py::str(t[py::slice(0, static_cast<py::ssize_t>(max), 1)]);
  std::string r = py::repr(t);
  return cut ? r + "..." : r;
}

py::object optional_text(const std::optional<std::string>& s) {
  return s ? py::object(text(*s)) : py::none();
}

template <class T>
py::object optional_value(const std::optional<T>& v) {
  return v ? py::cast(*v) : py::none();
}

std::string repr(const Result& r) {
  std::string out = "Result(status=" + std::string(to_string(r.status));
  if (r.result) out += ", result=" + short_repr(*r.result);
  if (!r.stdout_text.empty()) out += ", stdout=" + short_repr(r.stdout_text);
  if (!r.stderr_text.empty()) out += ", stderr=" + short_repr(r.stderr_text);
  if (r.error) out += ", error=" + r.error->name;
  if (!r.images.empty()) out += ", images=" + std::to_string(r.images.size());
  if (r.exit_code) out += ", exit_code=" + std::to_string(*r.exit_code);
  if (r.truncated) out += ", truncated=True";
  out += ", duration_ms=" + std::to_string(r.duration_ms) + ")";
  return out;
}


}  // namespace

py::object status_object(Status s) {
  return py::reinterpret_borrow<py::object>(status_enum)(py::str(std::string(to_string(s))));
}

void bind_results(py::module_& m) {
  // A str enum: `r.status == "Finished"` holds and it prints as the design's names.
  py::module_ enum_mod = py::module_::import("enum");
  py::list members;
  for (Status s : {Status::running, Status::finished, Status::failed, Status::timeout,
                   Status::killed}) {
    std::string value(to_string(s));
    std::string name;
    for (char c : value) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    members.append(py::make_tuple(name, value));
  }
  py::object status = py::hasattr(enum_mod, "StrEnum")
                          ? enum_mod.attr("StrEnum")("Status", members, py::arg("module") = "sandbox")
                          : enum_mod.attr("Enum")("Status", members, py::arg("module") = "sandbox",
                                                  py::arg("type") = py::str().get_type());
  status.attr("__doc__") =
      "How an execution stands or ended; a str enum with DESIGN's names.\n\n"
      "RUNNING   still executing; stdout/stderr hold the output so far\n"
      "FINISHED  ended normally (exit 0, no exception)\n"
      "FAILED    an exception, a non-zero exit, or the kernel died\n"
      "TIMEOUT   the wall-clock limit ran out; its processes were killed\n"
      "KILLED    cancelled, or stopped by a session limit (see Result.termination)";
  status_enum = status.inc_ref().ptr();
  m.attr("Status") = status;

  py::class_<Image>(m, "Image", "A figure the code produced (matplotlib, like a notebook).")
      .def_readonly("mime", &Image::mime, R"doc(The media type, "image/png".)doc")
      .def_property_readonly(
          "data", [](const Image& i) { return py::bytes(i.data); },
          "The image's bytes (a PNG starts with b'\\x89PNG').")
      .def_property_readonly(
          "data_base64",
          [](const Image& i) {
            return py::module_::import("binascii").attr("b2a_base64")(py::bytes(i.data), py::arg("newline") = false)
                .attr("decode")("ascii");
          },
          "The image's bytes as base64 text, as on the wire.")
      .def("_repr_png_",
           [](const Image& i) -> py::object {
             return i.mime == "image/png" ? py::object(py::bytes(i.data)) : py::none();
           })
      .def("__repr__", [](const Image& i) {
        return "Image(mime=" + std::string(py::repr(py::str(i.mime))) + ", " +
               std::to_string(i.data.size()) + " bytes)";
      });

  py::class_<ErrorInfo>(m, "ErrorInfo", "The exception that ended a Failed execution.")
      .def_property_readonly("name", [](const ErrorInfo& e) { return text(e.name); },
                             R"doc(The exception's class name, "ZeroDivisionError".)doc")
      .def_property_readonly("value", [](const ErrorInfo& e) { return text(e.value); },
                             R"doc(Its message, "division by zero".)doc")
      .def_property_readonly("traceback", [](const ErrorInfo& e) { return text(e.traceback); },
                             "The formatted traceback, user frames only.")
      .def("__str__", [](const ErrorInfo& e) {
        return e.value.empty() ? text(e.name) : text(e.name + ": " + e.value);
      })
      .def("__repr__", [](const ErrorInfo& e) {
        return "ErrorInfo(name=" + short_repr(e.name) + ", value=" + short_repr(e.value) + ")";
      });

  py::class_<Result>(m, "Result", R"doc(The outcome of one execution: the same object every libsandbox front-end returns.

An error in the sandboxed code is not a Python exception: it is a Result whose status is
Status.FAILED and whose `error` names the exception (or whose `exit_code` is non-zero).
While an execution runs, Execution.result gives a Result with status RUNNING and the output
so far.)doc")
      .def_property_readonly("execution_id", [](const Result& r) { return r.execution_id; },
                             "The execution's id within its session.")
      .def_property_readonly("language",
                             [](const Result& r) { return std::string(to_string(r.language)); },
                             R"doc("python", "nodejs" or "shell".)doc")
      .def_readonly("status", &Result::status, "A sandbox.Status.")
      .def_property_readonly("stdout", [](const Result& r) { return text(r.stdout_text); },
                             "Standard output (invalid UTF-8 shows as U+FFFD).")
      .def_property_readonly("stderr", [](const Result& r) { return text(r.stderr_text); },
                             "Standard error (invalid UTF-8 shows as U+FFFD).")
      .def_property_readonly("result", [](const Result& r) { return optional_text(r.result); },
                             "repr() (Python) or util.inspect() (Node.js) of the last "
                             "expression's value, or None.")
      .def_readonly("images", &Result::images, "Figures produced, a list of Image.")
      .def_readonly("error", &Result::error, "An ErrorInfo when the code raised, else None.")
      .def_readonly("exit_code", &Result::exit_code, "The exit code, when one applies.")
      .def_readonly("duration_ms", &Result::duration_ms, "Wall-clock time of the execution.")
      .def_readonly("truncated", &Result::truncated,
                    "True if stdout or stderr hit the session's output cap.")
      .def_readonly("cpu_time_ms", &Result::cpu_time_ms, "CPU time used, when measured.")
      .def_readonly("peak_memory_bytes", &Result::peak_memory_bytes,
                    "Peak memory of the session during the execution, when measured.")
      .def_property_readonly(
          "termination",
          [](const Result& r) -> py::object {
            if (r.termination == Termination::none) return py::none();
            return py::str(std::string(to_string(r.termination)));
          },
          R"doc(Why it ended other than by itself ("timeout", "out_of_memory", ...), or None.)doc")
      .def_property_readonly("note", [](const Result& r) { return optional_text(r.note); },
                             "A note from the runtime (\"kernel restarted: ...\"), or None.")
      .def(
          "to_dict",
          [](const Result& r) {
            return py::module_::import("json").attr("loads")(text(to_json(r)));
          },
          "The result as the JSON object of the HTTP API (images' data as base64 text).")
      .def("__repr__", &repr);
}

}  // namespace sandbox::python
