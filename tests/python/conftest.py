"""Fixtures for the `sandbox` package tests.

Run with the package from a CMake build tree:
    PYTHONPATH=build/python python3 -m pytest -q tests/python
Tests use the rlimit backend (it runs on any Linux host) unless they test the default.

The `session` and `make_session` fixtures are parametrised: each test that takes them runs
against a local Session and against a session on a real `sandboxctl serve` reached through
sandbox.connect(), so the two cannot drift apart. The server is started once per run on
127.0.0.1:0 ($SANDBOX_SANDBOXCTL, else the build tree's cli/sandboxctl next to the package).
"""

import os
import re
import subprocess
import sys

import pytest

import sandbox

ISOLATION = "rlimit"
SERVER_TIMEOUT = 20  # the server's default and ceiling for an execution, seconds


def _sandboxctl():
    path = os.environ.get("SANDBOX_SANDBOXCTL")
    if path:
        return path
    package = os.path.dirname(os.path.dirname(os.path.abspath(sandbox.__file__)))  # <build>/python
    return os.path.join(os.path.dirname(package), "cli", "sandboxctl")


@pytest.fixture(scope="session")
def server_url():
    exe = _sandboxctl()
    if not os.access(exe, os.X_OK):
        pytest.skip(f"no sandboxctl to serve the remote runs ({exe}); set SANDBOX_SANDBOXCTL")
    proc = subprocess.Popen(
        [exe, "serve", "--listen", "127.0.0.1:0", "--isolation", ISOLATION,
         "--timeout", str(SERVER_TIMEOUT), "--quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = None
    lines = []
    for line in proc.stderr:  # serve prints this line once it listens
        lines.append(line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.wait(timeout=10)
        pytest.fail("sandboxctl serve did not start:\n" + "".join(lines))
    # Keep draining stderr so the server never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def remote(server_url):
    with sandbox.connect(server_url) as r:
        yield r


def _local(**limits):
    return sandbox.Session(isolation=ISOLATION, **limits)


@pytest.fixture(params=["local", "remote"])
def make_session(request):
    """A factory of sessions, local or remote (by the parameter), closed after the test."""
    made = []
    if request.param == "local":
        factory = _local
    else:
        server = request.getfixturevalue("remote")
        factory = server.session

    def make(**limits):
        s = factory(**limits)
        made.append(s)
        return s

    make.kind = request.param
    yield make
    for s in made:
        s.close()


@pytest.fixture
def session(make_session):
    with make_session(timeout=SERVER_TIMEOUT) as s:
        yield s
