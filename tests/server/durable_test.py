"""Durable sessions end to end (issue #13): a real `sandboxctl serve` with a --state-dir is
SIGKILLed or SIGTERMed while its sessions hold Python and Node state, a file and a running
shell execution; a new server on the same state dir must serve all of it, and deleting the
sessions must leave no process, mount or cgroup. Also: the state dir's lock, a lost
session's 410, --close-sessions-on-exit, and what a long-poll and a stream cut by SIGTERM
answer. Each case runs on rlimit and, where the host has it, namespaces.

  SANDBOXCTL=build/cli/sandboxctl SANDBOX_RUNTIME_DIR=build/libexec/sandbox \
      python3 -m pytest -q tests/server/durable_test.py
"""
import os
import shutil
import signal
import threading
import time
import uuid

import pytest

from durable_util import (Server, alive, base_dir, cgroups_of, descendants, mounts_under, settle,
                          sweep, under)

TOKENS = {"alice": "tok-alice-7f3a", "bob": "tok-bob-91c2"}
COUNT = "for i in $(seq 1 30); do echo $i; sleep 0.2; done"

_available = {}


@pytest.fixture(params=["rlimit", "namespaces"])
def world(request):
    """A scratch dir with a token file, and a factory of servers on one state dir."""
    iso = request.param
    d = base_dir()
    tokens = os.path.join(d, "tokens")
    with open(tokens, "w") as f:
        f.writelines(f"{n}:{t}\n" for n, t in TOKENS.items())
    servers = []

    class World:
        isolation = iso
        state = os.path.join(d, "state")
        log = os.path.join(d, "serve.log")

        def server(self, *extra, port=0, state=None):
            # A failed test must not leave agents for long: they end without a server.
            extra = ["--orphan-timeout", "120"] + list(extra)
            s = Server(state or self.state, iso, self.log, port=port, extra=extra, tokens=tokens)
            servers.append(s)
            return s

        def start(self, *extra, port=0):
            return self.server(*extra, port=port).start()

    w = World()
    if iso not in _available:
        probe = w.server("--close-sessions-on-exit", state=os.path.join(d, "probe"))
        try:
            probe.start()
            _available[iso] = ""
        except RuntimeError as e:
            _available[iso] = str(e)
        probe.kill(signal.SIGTERM)
    if _available[iso]:
        shutil.rmtree(d, ignore_errors=True)
        pytest.skip(f"isolation {iso} does not serve here: {_available[iso][-300:]}")
    yield w
    for s in servers:
        s.kill()
    sweep(w.state, iso, w.log, tokens, TOKENS.values())
    if os.environ.get("DURABLE_KEEP"):
        print("kept", d)
    else:
        shutil.rmtree(d, ignore_errors=True)


def sid(tag):
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def lines(text):
    return [int(x) for x in text.split()]


def wait_for_line(api, s, eid, n, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.ok("GET", f"/{s}/result?execution_id={eid}")
        if str(n) in r.get("stdout", "").split():
            return r
        time.sleep(0.05)
    raise AssertionError(f"line {n} never came: {r}")


def session_procs(w, server):
    """The processes of a server's sessions: its tree, and whatever runs in the state dir."""
    procs = descendants(server.p.pid)
    procs.update(under(w.state))
    return procs


def no_leftovers(w, procs, ids, live=()):
    """Once the sessions are deleted: none of their processes, mounts or cgroups remains.
    `live`: servers still running, whose own helpers (a template) are not the sessions'."""
    def left():
        own = {}
        for s in live:
            own.update(descendants(s.p.pid))
        suspects = dict(procs)
        suspects.update(under(w.state))
        return alive({p: t for p, t in suspects.items() if p not in own})
    still = settle(left, timeout=20)
    assert not still, f"processes of the deleted sessions still run: {still}"
    assert not settle(lambda: mounts_under(w.state)), mounts_under(w.state)
    assert not settle(lambda: cgroups_of(ids)), cgroups_of(ids)


def long_poll(api, s, eid, out):
    out["answer"] = api.call("GET", f"/{s}/result?execution_id={eid}&wait=30000")


def read_stream(api, s, eid, out, started):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    c.request("GET", f"/{s}/stream?execution_id={eid}", headers={"Authorization": "Bearer " + api.token})
    r = c.getresponse()
    body = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        body += chunk
        if b"event: stdout" in body:
            started.set()
    out["stream"] = body.decode(errors="replace")
    c.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_restart_keeps_every_session(world, how):
    w = world
    first = w.start()
    alice, bob = first.api(TOKENS["alice"]), first.api(TOKENS["bob"])
    py, sh, node = sid("py"), sid("sh"), sid("node")
    alice.create(py)
    alice.create(sh, "shell")
    bob.create(node, "nodejs")
    assert alice.run(py, "python", "x = 41")["status"] == "Finished"
    r = bob.run(node, "nodejs", "var y = 'node-' + 'state'; console.log(y)")
    assert r["status"] == "Finished" and r["stdout"].strip() == "node-state", r
    data = os.urandom(100_000) + b"the end\n"
    alice.upload(py, "data.bin", data)
    eid = alice.submit(sh, "shell", COUNT)
    wait_for_line(alice, sh, eid, 3)

    cut = {}
    if how == "SIGTERM":
        # A long-poll and an event stream in flight when the server stops.
        started = threading.Event()
        tl = threading.Thread(target=long_poll, args=(alice, sh, eid, cut))
        ts = threading.Thread(target=read_stream, args=(alice, sh, eid, cut, started))
        tl.start()
        ts.start()
        assert started.wait(20), "the stream never sent stdout"
        time.sleep(0.3)  # the long-poll is parked by now
    procs = session_procs(w, first)
    assert procs, "the server has no child processes?"
    port = first.port
    first.kill(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
    if how == "SIGTERM":
        assert first.p.returncode == 0, first.stderr()
        tl.join(30)
        ts.join(30)
        st, hdrs, body = cut["answer"]
        assert st == 503, (st, body)
        assert hdrs.get("retry-after") == "1", hdrs
        assert body["error"]["code"] == "unavailable", body
        assert "poll GET /{sid}/result again" in body["error"]["message"], body
        assert "event: error" in cut["stream"], cut["stream"][-500:]
        tail = cut["stream"][cut["stream"].index("event: error"):]
        assert '"unavailable"' in tail and "server restarting" in tail, tail
        assert "event: result" not in cut["stream"]

    # The new server, on the same port (an upgrade) and state dir.
    second = w.start(port=port)
    alice, bob = second.api(TOKENS["alice"]), second.api(TOKENS["bob"])
    a, b = alice.sessions(), bob.sessions()
    assert set(a) == {py, sh}, a
    assert set(b) == {node}, b
    assert all(s["status"] == "Ready" for s in list(a.values()) + list(b.values())), (a, b)

    r = alice.run(py, "python", "print(x + 1)\nx + 1")
    assert r["status"] == "Finished" and r["stdout"].strip() == "42" and r.get("result") == "42", r
    r = bob.run(node, "nodejs", "console.log(y)")
    assert r["status"] == "Finished" and r["stdout"].strip() == "node-state", r
    st, _, got = alice.call("GET", f"/{py}/files/download/data.bin", raw=True)
    assert st == 200 and got == data, (st, len(got))

    # The seed client's way: poll GET /{sid}/result (the latest execution) until not Running.
    r = alice.wait(sh, None, timeout=60)
    assert r["status"] == "Finished", r
    assert r.get("execution_id", eid) == eid, r
    assert lines(r["stdout"]) == list(range(1, 31)), r["stdout"]

    procs.update(session_procs(w, second))
    for api, s in [(alice, py), (alice, sh), (bob, node)]:
        assert api.call("DELETE", f"/sessions/{s}")[0] == 200
        assert api.call("GET", f"/sessions/{s}")[0] == 404
    assert alice.sessions() == {} and bob.sessions() == {}
    no_leftovers(w, procs, [py, sh, node], live=[second])
    second.kill(signal.SIGTERM)
    assert second.p.returncode == 0, second.stderr()


def test_second_server_on_the_state_dir_refuses(world):
    w = world
    first = w.start()
    first.api(TOKENS["alice"]).create(sid("one"))
    second = w.server()
    second.spawn()
    try:
        rc = second.p.wait(20)
    except Exception:
        second.kill()
        raise AssertionError("a second server on the same state dir kept running")
    err = second.stderr()
    assert rc != 0, err
    assert "lock" in err.lower() or "another" in err.lower(), err
    assert w.state in err or "state dir" in err.lower(), err
    # The first is unharmed.
    assert first.p.poll() is None
    assert len(first.api(TOKENS["alice"]).sessions()) == 1


def test_lost_session_answers_410_until_deleted(world):
    w = world
    first = w.start()
    api = first.api(TOKENS["alice"])
    lost, kept = sid("lost"), sid("kept")
    before = descendants(first.p.pid)
    api.create(lost)
    assert api.run(lost, "python", "x = 1")["status"] == "Finished"
    api.upload(lost, "keep.txt", b"still here\n")
    mine = {p: t for p, t in descendants(first.p.pid).items() if p not in before}
    api.create(kept)
    assert api.run(kept, "python", "y = 2")["status"] == "Finished"
    port = first.port
    first.kill(signal.SIGKILL)
    for pid in mine:  # the lost session's agent and kernels die with the server
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not settle(lambda: alive(mine), timeout=10)

    second = w.start(port=port)
    api = second.api(TOKENS["alice"])
    listed = api.sessions()
    assert set(listed) == {lost, kept}, listed
    assert listed[lost]["status"] == "Lost", listed
    assert listed[kept]["status"] == "Ready", listed
    for method, path, body in [("GET", f"/sessions/{lost}", None),
                               ("POST", f"/{lost}/exec/python", {"code": "x"}),  # auto-create is on
                               ("POST", f"/{lost}/exec/shell", {"code": "true"}),
                               ("GET", f"/{lost}/result", None),
                               ("GET", f"/{lost}/stream", None),
                               ("POST", f"/{lost}/cancel", None),
                               ("GET", f"/{lost}/processes", None),
                               ("POST", f"/{lost}/process/kill/1", None),
                               ("DELETE", f"/{lost}/files/delete/keep.txt", None),
                               ("POST", "/sessions", {"id": lost})]:
        st, _, j = api.call(method, path, body)
        assert st == 410, (method, path, st, j)
        assert j["error"]["code"] == "session_lost", j
    st, _, got = api.call("GET", f"/{lost}/files/download/keep.txt", raw=True)
    assert st == 200 and got == b"still here\n", (st, got)
    st, _, j = api.call("GET", f"/{lost}/files/list")
    assert st == 200 and [f["name"] for f in j["files"]] == ["keep.txt"], j
    # The other session was adopted.
    assert api.run(kept, "python", "print(y + 1)")["stdout"].strip() == "3"

    assert api.call("DELETE", f"/sessions/{lost}")[0] == 200
    assert api.call("GET", f"/sessions/{lost}")[0] == 404
    assert set(api.sessions()) == {kept}
    # Now the id is free: auto-create makes a new, empty session under it.
    r = api.run(lost, "python", "print('fresh')")
    assert r["status"] == "Finished" and r["stdout"].strip() == "fresh", r
    procs = session_procs(w, second)
    for s in (lost, kept):
        assert api.call("DELETE", f"/sessions/{s}")[0] == 200
    no_leftovers(w, procs, [lost, kept], live=[second])


def test_close_sessions_on_exit(world):
    w = world
    first = w.start("--close-sessions-on-exit")
    api = first.api(TOKENS["alice"])
    s = sid("gone")
    api.create(s)
    assert api.run(s, "python", "x = 41")["status"] == "Finished"
    procs = session_procs(w, first)
    first.kill(signal.SIGTERM)
    assert first.p.returncode == 0, first.stderr()
    assert not settle(lambda: alive(procs), timeout=20), alive(procs)
    second = w.start()
    assert second.api(TOKENS["alice"]).sessions() == {}
    no_leftovers(w, procs, [s], live=[second])
