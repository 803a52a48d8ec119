"""Session.run: results, state, languages, errors in user code."""

import sandbox
from sandbox import Status


def test_state_persists_across_runs(session):
    assert session.run("x = 6").status == Status.FINISHED
    r = session.run("x * 7")
    assert r.status == Status.FINISHED
    assert r.result == "42"


def test_result_fields(session):
    r = session.run("print('hello')\n'done'")
    assert r.status == "Finished"  # a str enum
    assert isinstance(r.status, Status)
    assert r.stdout == "hello\n"
    assert r.stderr == ""
    assert r.result == "'done'"
    assert r.error is None
    assert r.images == []
    assert r.language == "python"
    assert "Finished" in repr(r)
    d = r.to_dict()
    assert d["status"] == "Finished"
    assert d["stdout"] == "hello\n"


def test_error_in_user_code_is_a_failed_result(session):
    r = session.run("1/0")
    assert r.status == Status.FAILED
    assert r.error.name == "ZeroDivisionError"
    assert "division by zero" in r.error.value
    assert "ZeroDivisionError" in str(r.error)
    # The session survives and keeps its state.
    session.run("y = 1")
    assert session.run("y + 1").result == "2"


def test_plot_comes_back_as_png_bytes(session):
    r = session.run(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [4, 1, 9])\n"
        "plt.show()\n"
    )
    assert r.status == Status.FINISHED, r.stderr
    assert len(r.images) == 1
    image = r.images[0]
    assert image.mime == "image/png"
    assert isinstance(image.data, bytes)
    assert image.data.startswith(b"\x89PNG")
    assert image._repr_png_() == image.data


def test_nodejs(session):
    r = session.run("const a = 1; a + 2", language="nodejs")
    assert r.status == Status.FINISHED, r.stderr
    assert r.result == "3"
    r = session.run("console.log('from node')", language="nodejs")
    assert r.stdout == "from node\n"


def test_shell(session):
    session.files.upload("here.txt", b"x")
    r = session.run("ls; echo oops >&2", language="shell")
    assert r.status == Status.FINISHED
    assert "here.txt" in r.stdout
    assert r.stderr == "oops\n"
    r = session.run("exit 3", language="shell")
    assert r.status == Status.FAILED
    assert r.exit_code == 3


def test_stdin(session):
    r = session.run("import sys\nsys.stdin.read().upper()", stdin="abc")
    assert r.result == "'ABC'"
    r = session.run("cat", language="shell")  # no stdin: end of file at once
    assert r.status == Status.FINISHED
    assert r.stdout == ""


def test_timeout_kills_the_code(session):
    r = session.run("while True:\n    pass", timeout=1)
    assert r.status == Status.TIMEOUT
    assert r.termination == "timeout"


def test_invalid_output_is_replaced_not_raised(session):
    r = session.run("printf 'a\\377b'", language="shell")
    assert r.stdout == "a\ufffdb"


def test_unknown_language_raises(session):
    try:
        session.run("1", language="cobol")
    except sandbox.InvalidArgumentError as e:
        assert isinstance(e, ValueError)
        assert e.code == "invalid_argument"
    else:
        raise AssertionError("no exception")


def test_module_level_run():
    r = sandbox.run("2 ** 10", isolation="rlimit")
    assert r.result == "1024"
