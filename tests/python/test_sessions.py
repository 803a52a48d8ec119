"""Sandbox and Session lifecycles, the exception tree, and threads."""

import os
import shutil
import tempfile
import threading

import pytest

import sandbox
from sandbox import Status


def test_exception_tree():
    for cls in (
        sandbox.InvalidArgumentError,
        sandbox.NotFoundError,
        sandbox.AlreadyExistsError,
        sandbox.PermissionDeniedError,
        sandbox.LimitExceededError,
        sandbox.UnavailableError,
        sandbox.FailedPreconditionError,
        sandbox.TimeoutError,
        sandbox.InternalError,
    ):
        assert issubclass(cls, sandbox.SandboxError)
        assert cls.__module__ == "sandbox"
    assert issubclass(sandbox.InvalidArgumentError, ValueError)
    assert issubclass(sandbox.NotFoundError, LookupError)


@pytest.fixture
def state_dir():
    # Not pytest's tmp_path: its parent is mode 0700, and as root the rlimit backend runs
    # code as nobody, who must reach the workspace.
    d = tempfile.mkdtemp(prefix="sandbox-test-")
    os.chmod(d, 0o711)
    yield os.path.join(d, "state")
    shutil.rmtree(d, ignore_errors=True)


def test_explicit_sandbox(state_dir):
    with sandbox.Sandbox(state_dir=state_dir, isolation="rlimit", timeout=5) as sb:
        assert sb.isolation == "rlimit"
        s = sb.session("analysis")
        assert s.id == "analysis"
        assert s.status == "Ready"
        assert s.run("1 + 1").result == "2"
        with pytest.raises(sandbox.AlreadyExistsError):
            sb.session("analysis")
        shared = sb.get("analysis")
        assert shared.run("40 + 2").result == "42"
        assert [x.id for x in sb.sessions()] == ["analysis"]
        with pytest.raises(sandbox.NotFoundError):
            sb.get("nobody")
        s.close()
        s.close()  # idempotent
        assert sb.sessions() == []
        with pytest.raises(sandbox.SandboxError):
            s.run("1")


def test_bad_arguments():
    with pytest.raises(sandbox.InvalidArgumentError):
        sandbox.Session("not a valid id!", isolation="rlimit")
    with pytest.raises(sandbox.InvalidArgumentError):
        sandbox.Session(isolation="no-such-backend")
    with pytest.raises(sandbox.InvalidArgumentError):
        sandbox.Session(isolation="rlimit", timeout=-1)


def test_session_closed_by_with_and_by_gc():
    sb = sandbox.default_sandbox("rlimit")
    with sandbox.Session(isolation="rlimit") as s:
        sid = s.id
        assert sb.get(sid).id == sid
    with pytest.raises(sandbox.NotFoundError):
        sb.get(sid)
    s = sandbox.Session(isolation="rlimit")
    sid = s.id
    del s
    with pytest.raises(sandbox.NotFoundError):
        sb.get(sid)


def test_default_isolation():
    try:
        s = sandbox.Session()
    except sandbox.UnavailableError as e:
        pytest.skip(f"no backend can run here: {e}")
    with s:
        assert s.isolation in ("runsc", "namespaces", "rlimit")
        assert s.run("1 + 1").result == "2"


def test_many_threads_run_sessions_at_once():
    errors = []
    results = {}

    def worker(i):
        try:
            with sandbox.Session(isolation="rlimit") as s:
                s.run(f"n = {i}")
                for _ in range(5):
                    s.run("n += 1")
                results[i] = s.run("n").result
        except Exception as e:  # reported below with the thread's number
            errors.append((i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == {i: str(i + 5) for i in range(8)}


def test_threads_overlap_while_waiting(session):
    # The GIL is released while a run waits: two sleeps in two sessions take ~1 s, not ~2 s.
    other = sandbox.Session(isolation="rlimit")
    done = []

    def sleeper(s):
        done.append(s.run("import time; time.sleep(1)").status)

    threads = [threading.Thread(target=sleeper, args=(x,)) for x in (session, other)]
    for t in threads:
        t.start()
    # Meanwhile this thread still runs Python.
    counted = sum(1 for _ in range(100000))
    for t in threads:
        t.join()
    other.close()
    assert counted == 100000
    assert done == [Status.FINISHED, Status.FINISHED]


def test_quotas_per_owner_and_ids_per_owner(state_dir):
    with sandbox.Sandbox(state_dir, "rlimit", max_sessions_per_tenant=1, max_executions_per_tenant=1) as sb:
        a = sb.session("same", owner="alice")
        b = sb.session("same", owner="bob")  # the same id under another owner: its own session
        with pytest.raises(sandbox.LimitExceededError, match="1 sessions per tenant"):
            sb.session(owner="alice")
        a.run("x = 'alice'")
        assert b.run("x").status == Status.FAILED
        assert sb.get("same", owner="alice").run("x").result == "'alice'"
        slow = a.start("import time; time.sleep(2)")
        with pytest.raises(sandbox.LimitExceededError, match="concurrent executions per tenant"):
            sb.get("same", owner="alice").start("1")
        assert b.run("1+1").result == "2"
        slow.wait()
        assert a.run("2+2").result == "4"
