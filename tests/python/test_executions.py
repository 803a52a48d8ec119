"""Session.start: executions observed while they run."""

import time

import pytest

import sandbox
from sandbox import Status


def test_start_returns_at_once_and_wait_gives_the_result(session):
    began = time.monotonic()
    ex = session.start("import time\ntime.sleep(2)\n'slept'")
    started_in = time.monotonic() - began
    assert not ex.done
    assert ex.status == Status.RUNNING
    assert ex.result.status == Status.RUNNING
    assert started_in < 1.0  # well under the code's 2 s
    r = ex.wait()
    assert r.status == Status.FINISHED
    assert r.result == "'slept'"
    assert ex.done
    assert ex.result.result == "'slept'"


def test_wait_with_timeout_raises_then_succeeds(session):
    ex = session.start("sleep 1; echo done", language="shell")
    with pytest.raises(sandbox.TimeoutError) as info:
        ex.wait(timeout=0.1)
    assert isinstance(info.value, TimeoutError)  # the builtin, too
    assert ex.wait(timeout=30).stdout == "done\n"


def test_partial_output_while_running(session):
    ex = session.start("echo first; sleep 2; echo second", language="shell")
    deadline = time.monotonic() + 10
    while ex.stdout != "first\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ex.stdout == "first\n"
    assert not ex.done
    assert ex.wait().stdout == "first\nsecond\n"


def test_stream_yields_output_as_it_comes(session):
    ex = session.start(
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.3)\n"
        "print('err', file=sys.stderr)\n"
    )
    chunks = list(ex.stream())
    out = "".join(c.text for c in chunks if c.stream == "stdout")
    err = "".join(c.text for c in chunks if c.stream == "stderr")
    assert out == "0\n1\n2\n"
    assert err == "err\n"
    assert len([c for c in chunks if c.stream == "stdout"]) >= 2  # not one lump at the end
    assert ex.done
    assert ex.result.status == Status.FINISHED


def test_stream_of_a_finished_execution(session):
    ex = session.start("echo hi", language="shell")
    ex.wait()
    assert [(c.stream, c.text) for c in ex.stream()] == [("stdout", "hi\n")]


def test_cancel(session):
    ex = session.start("sleep 30", language="shell")
    ex.cancel()
    r = ex.wait(timeout=10)
    assert r.status == Status.KILLED


def test_ctrl_c_interrupts_run_and_cancels_the_code(session):
    import _thread
    import threading

    threading.Timer(0.5, _thread.interrupt_main).start()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        session.run("import time\ntime.sleep(20)")
    assert time.monotonic() - began < 10
    # The interrupted execution was cancelled: the session is free for the next one.
    assert session.run("1 + 1", timeout=10).result == "2"


def test_stream_never_splits_a_character(session):
    # The two bytes of "é" arrive 0.3 s apart; no chunk may hold half of it.
    ex = session.start("printf '\\303'; sleep 0.3; printf '\\251\\n'", language="shell")
    chunks = [c.text for c in ex.stream()]
    assert "".join(chunks) == "\u00e9\n"
    assert all("\ufffd" not in c for c in chunks)
