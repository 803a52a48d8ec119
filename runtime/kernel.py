"""The libsandbox Python kernel: one persistent interpreter per session (docs/agent.md).

Started by sandbox-agent as `python3 -u kernel.py [--preload m1,m2]` with fd 0 = /dev/null,
fds 1/2 = output pipes, fd 3 = requests (agent -> kernel), fd 4 = replies (kernel -> agent).
Each message is a u32 little-endian length followed by JSON. The kernel first replies
{"ready": true, "pid": N}, then answers each {"code", "stdin"} request with one result
object. Standard library only; matplotlib is used when present.

`kernel.py --template [--preload ...]` is the host's template instead (template() below):
it warms once, then forks a kernel into each session the host names.
"""

import ast
import base64
import fcntl
import io
import json
import linecache
import os
import resource
import struct
import sys
import traceback
import types

CELL = "<cell>"
# The channel's own references: user code that monkeypatches json, struct or os (they are
# the same module objects it imports) must not break how the kernel answers.
_dumps, _loads = json.dumps, json.loads
_pack, _unpack = struct.pack, struct.unpack
_read, _write = os.read, os.write

# The control channel on high, close-on-exec fds: user code that closes or reuses 3/4
# (or spawns children) does not cut the kernel off from the agent.
def _hide(fd, at):
    try:
        new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, at)
    except OSError:
        return fd
    os.close(fd)
    return new


def _high_fd():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = soft if soft != resource.RLIM_INFINITY else 1024
    return max(10, min(top, 4096) - 16)


REQ_FD = REP_FD = SAVED_OUT = SAVED_ERR = -1
REAL_STDOUT = REAL_STDERR = None


def _attach():
    """Takes over fds 1-4 as the kernel's channel to the agent (at start, or once forked
    from the template into a session)."""
    global REQ_FD, REP_FD, SAVED_OUT, SAVED_ERR, REAL_STDOUT, REAL_STDERR
    high = _high_fd()
    REQ_FD = _hide(3, high)
    REP_FD = _hide(4, high + 1)
    # Our own copies of the output pipes, restored after every execution.
    SAVED_OUT = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, high + 2)
    SAVED_ERR = fcntl.fcntl(2, fcntl.F_DUPFD_CLOEXEC, high + 3)
    REAL_STDOUT = sys.stdout
    REAL_STDERR = sys.stderr


def _read_exact(n):
    chunks = []
    while n:
        try:
            b = _read(REQ_FD, n)
        except InterruptedError:
            continue
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def receive():
    head = _read_exact(4)
    if head is None:
        return None
    (length,) = _unpack("<I", head)
    body = _read_exact(length)
    return None if body is None else _loads(body)


def reply(obj):
    data = _dumps(obj, ensure_ascii=False, default=str).encode("utf-8", "replace")
    buf = _pack("<I", len(data)) + data
    try:
        view = memoryview(buf)
        while view:
            n = _write(REP_FD, view)
            view = view[n:]
    except OSError:
        os._exit(70)  # the agent cannot hear us any more; dying tells it so


# ---------------------------------------------------------------- figures

_images = []


def _capture(fig):
    buf = io.BytesIO()
    try:
        # The figure as drawn, like the seed's capture: bbox_inches="tight" would draw it
        # twice (once to measure), doubling the cost of every plot. zlib level 3 instead of
        # 6: a tenth less time per plot for PNGs about a fifth larger (36 vs 40 ms, 25 vs
        # 20 KB for a small line plot here).
        fig.savefig(buf, format="png", pil_kwargs={"compress_level": 3})
    except Exception as e:  # a broken figure must not fail the user's code
        print(f"[kernel] could not render figure: {e}", file=sys.stderr)
        return
    _images.append({"mime": "image/png", "data": base64.b64encode(buf.getvalue()).decode("ascii")})


def _capture_open_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in list(plt.get_fignums()):
        fig = plt.figure(num)
        _capture(fig)
        plt.close(fig)


def _patch_matplotlib():
    """Make plt.show() and Figure.show() capture PNGs, like a notebook's inline backend."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and not getattr(plt.show, "_sandbox", False):
        def show(*args, **kwargs):
            _capture_open_figures()
        show._sandbox = True
        plt.show = show
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and not getattr(figure.Figure.show, "_sandbox", False):
        def fig_show(self, *args, **kwargs):
            _capture(self)
            p = sys.modules.get("matplotlib.pyplot")
            if p is not None:
                p.close(self)
        fig_show._sandbox = True
        figure.Figure.show = fig_show


class _PyplotHook:
    """Meta-path finder that patches matplotlib.pyplot right after it is first imported,
    without importing matplotlib ourselves (costly) when the code never uses it."""

    def find_spec(self, name, path, target=None):
        if name != "matplotlib.pyplot":
            return None
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        real = spec.loader

        class Loader:
            def create_module(self, s):
                return real.create_module(s)

            def exec_module(self, module):
                real.exec_module(module)
                _patch_matplotlib()

            def __getattr__(self, attr):
                return getattr(real, attr)

        spec.loader = Loader()
        return spec


# ---------------------------------------------------------------- execution

namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__doc__": None}


def _user_tb(tb):
    """Skip the kernel's own frames: the traceback starts at the first cell frame."""
    while tb is not None and tb.tb_frame.f_code.co_filename != CELL:
        tb = tb.tb_next
    return tb


def _error(exc):
    if isinstance(exc, SyntaxError):
        text = "".join(traceback.format_exception_only(type(exc), exc))
    else:
        text = "".join(traceback.format_exception(type(exc), exc, _user_tb(exc.__traceback__)))
    return {"name": type(exc).__name__, "value": str(exc), "traceback": text}


def _rusage():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
    return int(cpu * 1000), max(s.ru_maxrss, c.ru_maxrss) * 1024


def _restore_stdio():
    # User code may have closed or replaced fds 1/2 or sys.stdout/err: undo it for the next run.
    for saved, fd in ((SAVED_OUT, 1), (SAVED_ERR, 2)):
        try:
            os.dup2(saved, fd)
        except OSError:
            pass
    for name, real in (("stdout", REAL_STDOUT), ("stderr", REAL_STDERR)):
        cur = getattr(sys, name)
        if cur is not real or real.closed:
            if real.closed:
                real = open(1 if name == "stdout" else 2, "w", buffering=1, closefd=False,
                            encoding="utf-8", errors="backslashreplace")
                if name == "stdout":
                    globals()["REAL_STDOUT"] = real
                else:
                    globals()["REAL_STDERR"] = real
            setattr(sys, name, real)


def execute(code, stdin_text):
    del _images[:]
    sys.stdin = io.StringIO(stdin_text)
    cpu0, _ = _rusage()
    out = {"status": "ok", "result": None, "images": _images, "error": None, "exit_code": None}
    linecache.cache[CELL] = (len(code), None, code.splitlines(True), CELL)
    try:
        tree = ast.parse(code, CELL, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, CELL, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, CELL, "eval"), namespace)
            if value is not None:
                out["result"] = repr(value)
    except SystemExit as e:
        code_ = e.code
        if code_ is None:
            out["exit_code"] = 0
        elif isinstance(code_, int):
            out["exit_code"] = code_
        else:
            print(code_, file=sys.stderr)
            out["exit_code"] = 1
        if out["exit_code"] != 0:
            out["status"] = "error"
            out["error"] = {"name": "SystemExit", "value": str(code_), "traceback": ""}
    except BaseException as e:  # KeyboardInterrupt too: the kernel lives on
        out["status"] = "error"
        out["error"] = _error(e)
        try:
            sys.stderr.write(out["error"]["traceback"])
        except Exception:
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    _patch_matplotlib()
    _capture_open_figures()
    _restore_stdio()
    sys.stdin = io.StringIO("")
    cpu1, rss = _rusage()
    out["cpu_ms"] = max(0, cpu1 - cpu0)
    out["cpu_total_ms"] = cpu1
    out["peak_rss_bytes"] = rss
    out["images"] = list(_images)
    return out


def _cap(out, caps):
    """Keeps a huge result or image list off the wire. The host applies the caps (`caps`
    holds them: result, image, images, in bytes) and says what it cut; what is sent here is
    one character over a cap, so that the host still sees it over."""
    try:
        big = 1 << 62
        result_cap, image_cap, images_cap = (int(caps.get(k) or big) for k in ("result", "image", "images"))
        r = out.get("result")
        if isinstance(r, str) and len(r) > result_cap:
            out["result"] = r[:result_cap + 1]
        images, total = [], 0
        for img in out.get("images") or []:
            data = img.get("data") if isinstance(img, dict) else None
            if isinstance(data, str) and len(data) > image_cap:
                img = dict(img, data=data[:image_cap + 1])
                data = img["data"]
            images.append(img)
            total += len(data) if isinstance(data, str) else 0
            if total > images_cap:
                break
        out["images"] = images
    except Exception:
        pass  # whatever user code left in _images, the host's decoder judges it


def _seed_matplotlib_cache():
    """Copies the font list built with the runtime into this session's MPLCONFIGDIR:
    matplotlib would otherwise spend about a second rebuilding it in every new session."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mplcache")
    dst = os.environ.get("MPLCONFIGDIR")
    if not dst or not os.path.isdir(src):
        return
    try:
        os.makedirs(dst, exist_ok=True)
        for name in os.listdir(src):
            target = os.path.join(dst, name)
            if name.endswith(".json") and not os.path.exists(target):
                with open(os.path.join(src, name), "rb") as f, open(target, "wb") as out:
                    out.write(f.read())
    except OSError:
        pass  # a cache miss costs time, never correctness


def _warm(preload):
    os.environ.setdefault("MPLBACKEND", "Agg")  # no display, ever; read by matplotlib on import
    sys.meta_path.insert(0, _PyplotHook())
    sys.stdin = io.StringIO("")
    for mod in preload:
        try:
            __import__(mod)
        except BaseException as e:  # a missing optional module is not fatal
            print(f"[kernel] preload {mod} failed: {type(e).__name__}: {e}", file=sys.stderr)
    if "matplotlib" in sys.modules:
        try:
            sys.modules["matplotlib"].use("Agg")
        except Exception:
            pass
        _patch_matplotlib()
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        # One throwaway render loads the fonts and Agg's caches, so that the user's first
        # plot costs what every later one does.
        try:
            fig = plt.figure(figsize=(1, 1))
            fig.gca().plot([0, 1])
            fig.savefig(io.BytesIO(), format="png")
            plt.close(fig)
        except Exception:
            pass


def serve(**hello):
    reply({"ready": True, "pid": os.getpid(), **hello})
    while True:
        req = receive()
        if req is None:
            return
        out = execute(req.get("code", ""), req.get("stdin", "") or "")
        _cap(out, req.get("caps") or {})
        reply(out)


# ---------------------------------------------------------------- the template

def template(preload):
    """The host's template process (lib/isolation/namespaces/template.hpp): warm once, then
    fork a kernel into each session the host names on fd 3. Runs as root on the host and
    never runs session code itself: only its forks do, once walled in."""
    import gc
    import select
    import signal
    import socket

    import _sandbox_template as walls

    host = socket.socket(fileno=3)
    _warm(preload)
    walls.prepare()
    # Kernels come back to us when they exit (we are their reaper): reap them at once.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # The imported objects' pages stay shared with every kernel: the collector leaves them be.
    gc.collect()
    gc.freeze()

    def reap():
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    while True:
        reap()
        try:
            ready, _, _ = select.select([host, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        if host not in ready:
            continue
        try:
            body, fds, _, _ = socket.recv_fds(host, 65536, 16)
        except InterruptedError:
            continue
        if not body:
            return  # the host is gone
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        if req is None or len(fds) != 11:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            _kernel_from_template(req, fds, host, (wake_r, wake_w), walls)
        for fd in fds:
            os.close(fd)


def _kernel_from_template(req, fds, host, wake, walls):
    """In the template's fork: into the session, then its kernel. Never returns."""
    import signal
    try:
        host.detach()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in wake:
            os.close(fd)
        walls.enter(req["cgroups"], fds[:7])
        if os.fork() != 0:
            os._exit(0)  # the grandchild is the one inside the pid namespace
        walls.finish(fds[7:], [tuple(l) for l in req["rlimits"]], bool(req.get("durable")))
    except BaseException as e:
        try:
            os.write(fds[8], f"template: {e}\n".encode())
        finally:
            os._exit(121)
    try:
        # Every session gets its own random state: `random` reseeds itself after a fork,
        # numpy's legacy global generator does not.
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed()
        os.environ["MPLCONFIGDIR"] = "/tmp/.matplotlib"
        # The template was started from fd 4's runtime dir; a session has the runtime at its
        # own path. multiprocessing's spawn re-runs __main__.__file__ in its workers.
        sys.modules["__main__"].__file__ = os.path.join(req["runtime"], "kernel.py")
        sys.path[0] = ""
        sys.argv = [""]
        _attach()
        serve(template=True)
    finally:
        os._exit(0)


def main(argv):
    preload = []
    if "--preload" in argv:
        i = argv.index("--preload")
        if i + 1 < len(argv):
            preload = [m.strip() for m in argv[i + 1].split(",") if m.strip()]
    if "--template" in argv:
        return template(preload)
    _attach()
    _seed_matplotlib_cache()
    sys.path[0] = ""  # like `python -c`: modules in the workspace (cwd) are importable
    _warm(preload)
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
