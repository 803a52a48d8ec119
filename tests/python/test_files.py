"""Session.files: the workspace from the host."""

import pytest

import sandbox


def test_round_trip(session):
    data = bytes(range(256)) * 10
    info = session.files.upload("data/blob.bin", data)
    assert info.name == "data/blob.bin"
    assert info.size == len(data)
    assert session.files.download("data/blob.bin") == data
    names = {f.name: f for f in session.files.list()}
    assert names["data/blob.bin"].type == "file"
    assert names["data"].type == "directory"
    assert session.files.stat("data/blob.bin").size == len(data)
    session.files.delete("data/blob.bin")
    with pytest.raises(sandbox.NotFoundError):
        session.files.download("data/blob.bin")


def test_code_sees_uploads_and_host_sees_code_files(session):
    session.files.upload("a.csv", "x,y\n1,2\n")  # str is uploaded as UTF-8
    r = session.run("import pandas as pd\ndf = pd.read_csv('a.csv')\nint(df.y.sum())")
    assert r.result == "2", r.stderr
    session.run("open('out.txt', 'w').write('made inside')")
    assert session.files.download("out.txt") == b"made inside"


def test_upload_of_existing_name_raises(session):
    session.files.upload("a.txt", b"one")
    with pytest.raises(sandbox.SandboxError) as info:
        session.files.upload("a.txt", b"two")
    assert isinstance(info.value, sandbox.AlreadyExistsError)
    assert info.value.code == "already_exists"
    assert session.files.download("a.txt") == b"one"
    session.files.upload("a.txt", b"two", overwrite=True)
    assert session.files.download("a.txt") == b"two"


def test_missing_file_is_not_found(session):
    with pytest.raises(sandbox.NotFoundError) as info:
        session.files.download("nope.txt")
    assert isinstance(info.value, LookupError)
    with pytest.raises(sandbox.NotFoundError):
        session.files.delete("nope.txt")


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b", ""])
def test_bad_names_are_refused(session, name):
    with pytest.raises(sandbox.SandboxError):
        session.files.upload(name, b"x")


def test_upload_limit(make_session):
    with make_session(max_upload=1000) as s:
        with pytest.raises(sandbox.LimitExceededError):
            s.files.upload("big.bin", b"x" * 2000)
        s.files.upload("small.bin", b"x" * 500)
