"""Helpers for the restart tests and the restart benchmark: a real `sandboxctl serve` on
loopback, a small HTTP client (stdlib only), and a view of the host's processes, mounts and
cgroups to prove nothing is left behind. See durable_test.py and ../bench/restart_bench.py."""
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import time


def sandboxctl():
    """The sandboxctl to test: $SANDBOXCTL (ctest sets it), else the build tree's."""
    exe = os.environ.get("SANDBOXCTL") or os.environ.get("SANDBOX_SANDBOXCTL")
    if not exe:
        here = os.path.dirname(os.path.abspath(__file__))
        exe = os.path.join(here, "..", "..", "build", "cli", "sandboxctl")
    return os.path.abspath(exe)


def base_dir(prefix="durable-"):
    """A scratch directory the rlimit backend's code uid can pass through (mode 0711)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o711)
    return d


class Server:
    """One `sandboxctl serve` process. start() returns once it prints its address (so after
    the Sandbox adopted what the state dir holds), or raises with its stderr."""

    def __init__(self, state_dir, isolation, log, port=0, extra=(), tokens=None):
        self.state_dir, self.isolation, self.log = state_dir, isolation, log
        self.port, self.extra, self.tokens = port, list(extra), tokens
        self.p = None

    def argv(self):
        a = [sandboxctl(), "serve", "--listen", f"127.0.0.1:{self.port}", "--state-dir",
             self.state_dir, "--isolation", self.isolation, "--quiet"] + self.extra
        if self.tokens:
            a += ["--token-file", self.tokens]
        return a

    def spawn(self):
        self.log_offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.p = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(self.log, "ab"), start_new_session=True)
        return self.p

    def stderr(self):
        with open(self.log, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def start(self, timeout=120):
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
                return self
            if self.p.poll() is not None:
                raise RuntimeError(f"sandboxctl serve exited {self.p.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"sandboxctl serve did not start in {timeout} s:\n{self.stderr()}")

    def kill(self, sig=signal.SIGKILL, timeout=60):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode if self.p else None

    def api(self, token=None):
        return Api(self.port, token)


def sweep(state_dir, isolation, log, tokens=None, token_values=(None,)):
    """After a test, whatever it left: a server with --close-sessions-on-exit adopts every
    session on the state dir, lost ones are deleted (they keep their workspace, mounts
    included, until then), the rest closed at its exit; what still runs there is killed."""
    if os.path.isdir(state_dir):
        try:
            s = Server(state_dir, isolation, log, extra=["--close-sessions-on-exit"],
                       tokens=tokens).start()
            for t in token_values:
                try:
                    api = s.api(t)
                    for sid in api.sessions():
                        api.call("DELETE", f"/sessions/{sid}")
                except (OSError, AssertionError):
                    pass
            s.kill(signal.SIGTERM)
        except RuntimeError:
            pass
    for pid in under(state_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Api:
    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def call(self, method, path, body=None, headers=None, raw=False, timeout=60):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            payload = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        if raw:
            return r.status, hdrs, payload
        try:
            return r.status, hdrs, json.loads(payload) if payload else None
        except ValueError:
            return r.status, hdrs, payload

    def ok(self, method, path, body=None, want=(200, 201, 202)):
        st, _, j = self.call(method, path, body)
        if st not in want:
            raise AssertionError(f"{method} {path} answered {st}: {j}")
        return j

    def create(self, sid, language="python"):
        return self.ok("POST", "/sessions", {"id": sid, "language": language})

    def submit(self, sid, language, code):
        return self.ok("POST", f"/{sid}/exec/{language}", {"code": code})["execution_id"]

    def wait(self, sid, eid=None, timeout=60):
        """Polls GET /{sid}/result (long-polls of 10 s) until the execution is not Running."""
        q = f"?execution_id={eid}&" if eid else "?"
        deadline = time.monotonic() + timeout
        while True:
            r = self.ok("GET", f"/{sid}/result{q}wait=10000")
            if r.get("status") != "Running" or time.monotonic() > deadline:
                return r

    def run(self, sid, language, code, timeout=60):
        return self.wait(sid, self.submit(sid, language, code), timeout)

    def upload(self, sid, name, data):
        b = "durableboundary7d1f"
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
        st, _, j = self.call("POST", f"/{sid}/files/upload", body,
                             {"Content-Type": f"multipart/form-data; boundary={b}"})
        assert st == 200, (st, j)
        return j

    def sessions(self):
        return {s["id"]: s for s in self.ok("GET", "/sessions")["sessions"]}


# ---- the host's view -----------------------------------------------------------------

def proc_table():
    """{pid: (ppid, starttime)} of every process now."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        out[int(d)] = (int(rest[1]), int(rest[19]))  # fields 4 (ppid) and 22 (starttime)
    return out


def descendants(root):
    """{pid: starttime} of every process under `root` (not root itself)."""
    table = proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        p = todo.pop()
        if p in out or p not in table:
            continue
        out[p] = table[p][1]
        todo += children.get(p, [])
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(procs):
    """The ones of {pid: starttime} still running (same pid and start time: not recycled),
    zombies excluded, as {pid: cmdline}."""
    table = proc_table()
    out = {}
    for pid, start in procs.items():
        if pid in table and table[pid][1] == start:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                out[pid] = cmdline(pid)
    return out


def under(path):
    """{pid: starttime} of the processes whose cwd, root or command line is under `path`:
    the sessions' processes wherever they were reparented."""
    path = os.path.realpath(path)
    out = {}
    for pid, (_, start) in proc_table().items():
        where = [cmdline(pid)]
        for link in ("cwd", "root"):
            try:
                where.append(os.readlink(f"/proc/{pid}/{link}"))
            except OSError:
                pass
        if any(w == path or w.startswith(path + "/") or f" {path}/" in f" {w}" for w in where if w):
            out[pid] = start
    return out


def mounts_under(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if f" {path}" in line]


def cgroups_of(session_ids, root="/sys/fs/cgroup"):
    """Cgroup directories named after any of the sessions (namespaces backend names them
    <server pid>.<n>.<session id>), anywhere under the hierarchy."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            if any(d.endswith("." + sid) for sid in session_ids):
                found.append(os.path.join(dirpath, d))
        if dirpath.count(os.sep) > 8:
            dirnames[:] = []
    return found


def settle(check, timeout=20):
    """check() until it returns something falsy, or the timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if not v or time.monotonic() > deadline:
            return v
        time.sleep(0.2)
