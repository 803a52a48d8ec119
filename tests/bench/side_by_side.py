#!/usr/bin/python3
"""Side by side: the seed-design peer and `sandboxctl serve`, measured in one run.

Starts ../shared/peers/seed000_reference.py and sandboxctl serve on loopback ports, runs the
seed's own client (../shared/peers/bench_seed000_api.py) against both, and prints medians and
ratios; then the figures only our server has (first result of a new session, throughput with
32 sessions, idle memory per session, download speed, files/list under wrk).

  tests/bench/side_by_side.py --build build [--runs 30] [--isolation namespaces]

Loopback only; every loop is bounded in count and time. Prints figures, asserts nothing.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {seconds}s")


def seed_client(url, runs, scenarios):
    out = subprocess.run([sys.executable, os.path.join(PEERS, "bench_seed000_api.py"), "--url", url,
                          "--runs", str(runs)] + sum((["--scenario", s] for s in scenarios), []),
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"seed client failed against {url}: {out.stderr[-2000:]}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {r["scenario"]: r for r in rows}


class Http:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data


def run_code(h, sid, code, seconds=60):
    st, _ = h.call("POST", f"/{sid}/exec/python", {"code": code})
    assert st == 202, st
    deadline = time.monotonic() + seconds
    while True:
        st, data = h.call("GET", f"/{sid}/result?wait=5000")
        res = json.loads(data)
        if res.get("status") not in ("Running", "Queued") or time.monotonic() > deadline:
            return res


def first_result_ms(port, n):
    """POST /sessions, then the first `1+1`: a new isolated session to its first result."""
    h = Http(port)
    times = []
    for i in range(n):
        sid = "first-" + uuid.uuid4().hex[:8]
        t = time.perf_counter()
        st, _ = h.call("POST", "/sessions", {"id": sid})
        assert st == 201, st
        res = run_code(h, sid, "1+1")
        times.append((time.perf_counter() - t) * 1000)
        assert res.get("result") == "2", res
        h.call("DELETE", f"/sessions/{sid}")
        time.sleep(0.3)  # let the warm pool refill: we measure a hit, not the refill
    return statistics.median(times)


def throughput_python(port, sessions, seconds):
    """Trivial executions per second with `sessions` sessions each driven by one client thread.
    Client-bound: the GIL caps it well below what the server can do."""
    sids = []
    h = Http(port)
    for i in range(sessions):
        sid = "tp-" + uuid.uuid4().hex[:8]
        h.call("POST", "/sessions", {"id": sid})
        run_code(h, sid, "1+1")
        sids.append(sid)
    deadline = time.time() + seconds

    def drive(sid):
        c, n = Http(port), 0
        while time.time() < deadline:
            run_code(c, sid, "1+1")
            n += 1
        return n

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(sessions) as pool:
        total = sum(pool.map(drive, sids))
    rate = total / (time.perf_counter() - t)
    for sid in sids:
        h.call("DELETE", f"/sessions/{sid}")
    return {"exec_per_s": rate}


def throughput(port, sessions, seconds, build):
    """Trivial executions per second with `sessions` sessions: through the C++ load generator
    (tests/bench/http_load.cpp, one asynchronous thread) when it is built, else Python threads.
    Returns (figures, which client)."""
    tool = os.path.join(build, "tests", "bench", "http_load")
    if not os.access(tool, os.X_OK):
        return throughput_python(port, sessions, seconds), "python client threads"
    out = subprocess.run([tool, "--port", str(port), "--sessions", str(sessions),
                          "--seconds", str(seconds)], capture_output=True, text=True,
                         timeout=seconds + 120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"http_load failed ({out.returncode}): {out.stdout[-1000:]} {out.stderr[-1000:]}")
    figures = json.loads(lines[-1])
    if figures["errors"]:
        print(f"  http_load reported {figures['errors']} errors:\n{out.stdout}", file=sys.stderr)
    return figures, "C++ http_load, one async thread"


def burst(port, n):
    """`n` new sessions at once, each running numpy code: wall time until every result is in,
    and how many were wrong (a kernel that did not come up in time shows here)."""
    def one(i):
        h = Http(port)
        sid = "burst-" + uuid.uuid4().hex[:8]
        h.call("POST", "/sessions", {"id": sid})
        res = run_code(h, sid, "import numpy\nint(numpy.arange(5).sum())")
        h.call("DELETE", f"/sessions/{sid}")
        return res.get("result") == "10"
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        ok = sum(pool.map(one, range(n)))
    return (time.perf_counter() - t) * 1000, n - ok


def pss_per_idle_session(port, n, server_pid, pooled):
    """PSS of every process below the server (agents, kernels, the python template they
    share pages with) after `n` sessions ran `1+1`, per idle session (the pool's included)."""
    h = Http(port)
    sids = []
    for i in range(n):
        sid = "idle-" + uuid.uuid4().hex[:8]
        h.call("POST", "/sessions", {"id": sid})
        run_code(h, sid, "1+1")
        sids.append(sid)
    time.sleep(2)  # the pool refills
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, ValueError):
            pass
    total_kib, todo = 0, list(children.get(server_pid, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            pass
    for sid in sids:
        h.call("DELETE", f"/sessions/{sid}")
    return total_kib / 1024 / (n + pooled)


def download_mb_s(port, size_mb):
    h = Http(port)
    sid = "dl-" + uuid.uuid4().hex[:8]
    h.call("POST", "/sessions", {"id": sid})
    run_code(h, sid, f"open('big.bin', 'wb').write(b'\\0' * ({size_mb} << 20))")
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        h.conn.request("GET", f"/{sid}/files/download/big.bin")
        r = h.conn.getresponse()
        n = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
        rates.append(n / (1 << 20) / (time.perf_counter() - t))
    h.call("DELETE", f"/sessions/{sid}")
    return statistics.median(rates)


def wrk_files_list(port):
    if not shutil.which("wrk"):
        return None
    h = Http(port)
    sid = "wrk-" + uuid.uuid4().hex[:8]
    h.call("POST", "/sessions", {"id": sid})
    for i in range(10):
        run_code(h, sid, f"open('f{i}.txt', 'w').write('x' * {i * 100})")
    out = subprocess.run(["wrk", "-t2", "-c64", "-d5s", f"http://127.0.0.1:{port}/{sid}/files/list"],
                         capture_output=True, text=True, timeout=60).stdout
    h.call("DELETE", f"/sessions/{sid}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--isolation", default="")
    ap.add_argument("--quick", action="store_true", help="fewer runs, skip the slow extras")
    ap.add_argument("--idle-sessions", type=int, default=100,
                    help="sessions held idle for the memory figure (the issue asks about 500)")
    args = ap.parse_args()
    runs = 5 if args.quick else args.runs
    state = tempfile.mkdtemp(prefix="sbs-")
    os.chmod(state, 0o711)
    procs = []
    try:
        peer_port, our_port = free_port(), free_port()
        peer = subprocess.Popen(["/usr/bin/python3", os.path.join(PEERS, "seed000_reference.py"),
                                 "--port", str(peer_port), "--root", os.path.join(state, "peer")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(peer)
        cmd = [os.path.join(args.build, "cli", "sandboxctl"), "serve", "--listen", f"127.0.0.1:{our_port}",
               "--state-dir", os.path.join(state, "ours"), "--warm-pool", "4", "--quiet"]
        if args.isolation:
            cmd += ["--isolation", args.isolation]
        ours = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(ours)
        wait_listening(peer_port, peer)
        wait_listening(our_port, ours)
        scenarios = ["expr", "plot"]
        rows = {"peer": seed_client(f"http://127.0.0.1:{peer_port}", runs, scenarios),
                "ours": seed_client(f"http://127.0.0.1:{our_port}", runs, scenarios)}
        print(f"seed client, {runs} runs each (medians, ms):")
        print(f"  {'scenario':<10}{'seed peer':>12}{'libsandbox':>12}{'ratio':>10}")
        for s in scenarios:
            p, o = rows["peer"][s]["p50_ms"], rows["ours"][s]["p50_ms"]
            print(f"  {s:<10}{p:>12.2f}{o:>12.2f}{p / o:>9.1f}x")
            print(json.dumps({"scenario": s, "peer_p50_ms": p, "ours_p50_ms": o, "ratio": round(p / o, 1)}))
        if not args.quick:
            print(f"new session to first 1+1 (POST /sessions, exec, result; warm pool 4): "
                  f"{first_result_ms(our_port, 15):.2f} ms median")
            tp, client = throughput(our_port, 32, 5, args.build)
            lat = f" (p50 {tp['p50_ms']:.2f} ms, p99 {tp['p99_ms']:.2f} ms)" if "p50_ms" in tp else ""
            print(f"trivial executions/s, 32 sessions, {client}: {tp['exec_per_s']:.0f}{lat}")
            wall, bad = burst(our_port, 32)
            print(f"32 new sessions at once, each running numpy code: all results in {wall:.0f} ms, {bad} wrong")
            n = args.idle_sessions
            mib = pss_per_idle_session(our_port, n, ours.pid, 4)
            print(f"idle warm python session: {mib:.1f} MiB PSS each ({n} sessions + the pool's 4)")
            print(f"file download over loopback: {download_mb_s(our_port, 256):.0f} MiB/s median of 5")
            rps = wrk_files_list(our_port)
            print(f"GET /{{sid}}/files/list under wrk -c64: {rps:.0f} requests/s" if rps else "wrk not installed")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
