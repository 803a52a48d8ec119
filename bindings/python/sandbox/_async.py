"""asyncio wrappers: the same objects, awaited (as E2B's AsyncSandbox).

    server = await sandbox.AsyncSandbox.connect("https://sb.example", token="t")
    s = await server.session(timeout=30)
    r = await s.run("1 + 1")                  # Result(status=Finished, result='2', ...)
    ex = await s.start("for i in range(3): print(i)")
    async for chunk in ex.stream():           # output as it arrives
        print(chunk.text, end="")
    await s.files.upload("a.csv", b"x\\n1\\n")
    await s.close()

Each blocking call runs in the event loop's default executor (a thread); the library releases
the GIL while it waits, so other tasks and threads keep running. Wraps a local Sandbox too:
AsyncSandbox(sandbox.Sandbox(isolation="rlimit")).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Callable, Optional

from . import _sandbox


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


class AsyncExecution:
    """An Execution whose waits are awaited."""

    def __init__(self, ex: "_sandbox.Execution"):
        self.sync = ex

    @property
    def id(self) -> str:
        return self.sync.id

    async def done(self) -> bool:
        return await _call(lambda: self.sync.done)

    async def result(self) -> "_sandbox.Result":
        """The Result as it stands (partial while running)."""
        return await _call(lambda: self.sync.result)

    async def wait(self, timeout: Optional[float] = None) -> "_sandbox.Result":
        return await _call(self.sync.wait, timeout)

    async def cancel(self) -> None:
        await _call(self.sync.cancel)

    async def stream(self) -> AsyncIterator["_sandbox.OutputChunk"]:
        """OutputChunks as the code produces them, until it ends."""
        it = iter(self.sync.stream())
        end = object()
        while True:
            chunk = await _call(next, it, end)
            if chunk is end:
                return
            yield chunk


class AsyncFiles:
    def __init__(self, files: "_sandbox.Files"):
        self.sync = files

    async def upload(self, name, data, *, overwrite: bool = False) -> "_sandbox.FileInfo":
        return await _call(self.sync.upload, name, data, overwrite=overwrite)

    async def download(self, name) -> bytes:
        return await _call(self.sync.download, name)

    async def list(self) -> list:
        return await _call(self.sync.list)

    async def stat(self, name) -> "_sandbox.FileInfo":
        return await _call(self.sync.stat, name)

    async def delete(self, name) -> None:
        await _call(self.sync.delete, name)


class AsyncSession:
    """A Session (local or remote) whose calls are awaited."""

    def __init__(self, session: "_sandbox.Session"):
        self.sync = session
        self.files = AsyncFiles(session.files)

    @property
    def id(self) -> str:
        return self.sync.id

    async def run(self, code: str, language: str = "python", **kwargs: Any) -> "_sandbox.Result":
        ex = await self.start(code, language, **kwargs)
        try:
            return await ex.wait()
        except asyncio.CancelledError:
            # A cancelled task cancels the code too, as Ctrl-C does for run().
            await asyncio.shield(ex.cancel())
            raise

    async def start(self, code: str, language: str = "python", **kwargs: Any) -> AsyncExecution:
        return AsyncExecution(await _call(self.sync.start, code, language, **kwargs))

    async def processes(self) -> list:
        return await _call(self.sync.processes)

    async def kill(self, pid: int, signal: int = 9) -> None:
        await _call(self.sync.kill, pid, signal)

    async def close(self) -> None:
        await _call(self.sync.close)

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncSandbox:
    """A Sandbox or a Remote (sandbox.connect) whose calls are awaited."""

    def __init__(self, sandbox: Any):
        self.sync = sandbox

    @classmethod
    async def connect(cls, url: str, token: Optional[str] = None, **kwargs: Any) -> "AsyncSandbox":
        return cls(await _call(_sandbox.connect, url, token, **kwargs))

    async def session(self, id: Optional[str] = None, **kwargs: Any) -> AsyncSession:
        return AsyncSession(await _call(self.sync.session, id, **kwargs))

    async def get(self, id: str) -> AsyncSession:
        return AsyncSession(await _call(self.sync.get, id))

    async def sessions(self) -> list:
        return [AsyncSession(s) for s in await _call(self.sync.sessions)]

    async def close_session(self, id: str) -> None:
        await _call(self.sync.close_session, id)

    async def close(self) -> None:
        await _call(self.sync.close)

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
