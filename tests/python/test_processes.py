"""Session.processes and Session.kill."""

import time

import pytest

import sandbox
from sandbox import Status


def _wait_for_process(session, name, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in session.processes():
            # The name changes at exec a moment before the new argv shows in cmdline.
            if p.name == name and p.cmdline:
                return p
        time.sleep(0.05)
    raise AssertionError(f"no process {name!r}: {session.processes()}")


def test_list_and_kill(session):
    ex = session.start("exec sleep 30", language="shell")
    p = _wait_for_process(session, "sleep")
    assert p.pid > 0
    assert "sleep 30" in p.cmdline
    assert p.state
    session.kill(p.pid)
    r = ex.wait(timeout=10)
    assert r.status != Status.FINISHED
    assert all(q.pid != p.pid for q in session.processes())


def test_kill_of_a_foreign_pid_is_not_found(session):
    with pytest.raises(sandbox.NotFoundError):
        session.kill(1 << 22)
