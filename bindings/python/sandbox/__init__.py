"""Run untrusted Python, Node.js and shell code in isolated sessions (libsandbox).

    import sandbox

    with sandbox.Session(timeout=10) as s:          # the strongest isolation this host has
        r = s.run("x = 6\\nx * 7")                   # Result(status=Finished, result='42', ...)
        s.run("import matplotlib.pyplot as plt; plt.plot([1, 2]); plt.show()").images[0].data
        s.files.upload("a.csv", b"x,y\\n1,2\\n")
        ex = s.start("import time; time.sleep(5)")  # returns at once
        ex.wait()

    server = sandbox.connect("https://sb.example", token="t")   # a `sandboxctl serve`
    s = server.session()                            # the same Session methods, remotely

Async code: sandbox.AsyncSandbox (await s.run(...), async for chunk in ex.stream()).

An error in the sandboxed code comes back as a Result with status Status.FAILED; errors of the
library itself raise subclasses of SandboxError.

The work is done by the C++ library; this package is a thin shell over its private module
`sandbox._sandbox`.
"""

from __future__ import annotations

import atexit as _atexit
import os as _os

from ._sandbox import (
    AlreadyExistsError,
    ErrorInfo,
    Execution,
    FailedPreconditionError,
    FileInfo,
    Files,
    Image,
    InternalError,
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
    OutputChunk,
    PermissionDeniedError,
    Process,
    Remote,
    Result,
    Sandbox,
    SandboxError,
    Session,
    SessionLostError,
    Status,
    TimeoutError,
    UnauthenticatedError,
    UnavailableError,
    connect,
    default_sandbox,
)
from . import _sandbox
from ._async import AsyncExecution, AsyncFiles, AsyncSandbox, AsyncSession

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "AsyncExecution",
    "AsyncFiles",
    "AsyncSandbox",
    "AsyncSession",
    "ErrorInfo",
    "Execution",
    "FailedPreconditionError",
    "FileInfo",
    "Files",
    "Image",
    "InternalError",
    "InvalidArgumentError",
    "LimitExceededError",
    "NotFoundError",
    "OutputChunk",
    "PermissionDeniedError",
    "Process",
    "Remote",
    "Result",
    "Sandbox",
    "SandboxError",
    "Session",
    "SessionLostError",
    "Status",
    "TimeoutError",
    "UnauthenticatedError",
    "UnavailableError",
    "connect",
    "default_sandbox",
    "run",
]


def run(code: str, language: str = "python", **limits) -> Result:
    """Runs `code` once in a new session, closes it and returns the Result.

    For more than one run, keep a Session: it is much faster and keeps Python state.
    `limits` are Session's keyword arguments (isolation=, timeout=, memory=, ...).
    """
    with Session(**limits) as s:
        return s.run(code, language=language)


# `pip install` puts the agent and kernels next to the module; the build tree does not
# (there the library finds its runtime by itself).
_packaged = _os.path.join(_os.path.dirname(__file__), "libexec")
if _os.path.isfile(_os.path.join(_packaged, "sandbox-agent")):
    _sandbox._set_packaged_runtime_dir(_packaged)

# Sessions made by Session(...) live in default Sandboxes: stop their processes at exit
# rather than leaving that to the garbage collector's order of teardown.
_atexit.register(_sandbox._close_default_sandboxes)
