"""sandbox.connect(): a server's sessions with a local Sandbox's methods, and the asyncio
wrappers. The shared behaviour is covered by every test that takes the `session` fixture
(it runs local and remote); this file holds what only a client has."""

import asyncio

import pytest

import sandbox
from sandbox import Status


def _public(cls):
    return {n for n in dir(cls) if not n.startswith("_")}


def test_remote_has_the_methods_of_a_sandbox():
    missing = {"session", "get", "sessions", "close_session", "close"} - _public(sandbox.Remote)
    assert missing == set()
    assert {"session", "get", "sessions", "close_session", "close"} <= _public(sandbox.Sandbox)


def test_sessions_get_and_close_session(remote):
    s = remote.session("remote-life", timeout=5)
    assert s.id == "remote-life"
    assert s.status == "Ready"
    assert s.workspace is None  # not on this host
    assert s.run("1 + 1").result == "2"
    with pytest.raises(sandbox.AlreadyExistsError):
        remote.session("remote-life")
    shared = remote.get("remote-life")
    assert shared.run("40 + 2").result == "42"
    assert "remote-life" in [x.id for x in remote.sessions()]
    with pytest.raises(sandbox.NotFoundError):
        remote.get("nobody-here")
    remote.close_session("remote-life")
    assert "remote-life" not in [x.id for x in remote.sessions()]
    with pytest.raises(sandbox.NotFoundError):
        remote.close_session("remote-life")
    s.close()  # already closed on the server: nothing to do
    with pytest.raises(sandbox.FailedPreconditionError):
        s.run("1")


def test_limits_above_the_servers_ceiling_are_refused(remote):
    with pytest.raises(sandbox.PermissionDeniedError):
        remote.session(timeout=3600)


def test_bad_urls_and_plain_tokens_are_refused_before_any_traffic():
    with pytest.raises(sandbox.InvalidArgumentError):
        sandbox.connect("ftp://example.org")
    # A token in clear to an address that is not loopback (never dialled: refused first).
    with pytest.raises(sandbox.PermissionDeniedError):
        sandbox.connect("http://192.0.2.1:8080", token="secret")


def test_unreachable_server_is_unavailable():
    r = sandbox.connect("http://127.0.0.1:1")
    with pytest.raises(sandbox.UnavailableError):
        r.sessions()


def test_async_session_over_connect(server_url):
    async def main():
        server = await sandbox.AsyncSandbox.connect(server_url)
        async with await server.session(timeout=10) as s:
            results = await asyncio.gather(s.run("2 * 21"), s.run("echo hi", language="shell"))
            assert results[0].result == "42"
            assert results[1].stdout == "hi\n"
            ex = await s.start("for i in range(3): print(i, flush=True)")
            out = "".join([c.text async for c in ex.stream()])
            assert out == "0\n1\n2\n"
            assert (await ex.wait()).status == Status.FINISHED
            await s.files.upload("a.txt", b"async")
            assert await s.files.download("a.txt") == b"async"
        await server.close()

    asyncio.run(main())


def test_async_wraps_a_local_sandbox_too():
    async def main():
        async with sandbox.AsyncSandbox(sandbox.Sandbox(isolation="rlimit")) as sb:
            s = await sb.session()
            assert (await s.run("3 + 4")).result == "7"

    asyncio.run(main())
