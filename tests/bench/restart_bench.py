#!/usr/bin/env python3
"""What a server restart costs durable sessions (docs/durability.md): figures, no assertions.

For each session count N: a `sandboxctl serve --state-dir` holding N sessions is SIGKILLed
(or SIGTERMed) and a new one started on the same state dir; measured from the new process's
start until it listens (it has adopted everything by then) and until every session has
answered a trivial execution. Separately, a running execution across a restart: the largest
interval between consecutive lines of its output (the code's own timestamps: whether it was
held up) and the largest interval between lines arriving at a polling client (what a client
waits), and whether any line was lost. Medians over --runs.

  SANDBOXCTL=build/cli/sandboxctl SANDBOX_RUNTIME_DIR=build/libexec/sandbox \\
      python3 tests/bench/restart_bench.py --sessions 10,200 --runs 3
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from durable_util import Server, base_dir, sweep  # noqa: E402

SERVERS = []  # every server started, killed at the end whatever happened


def server(*a, **k):
    s = Server(*a, **k)
    SERVERS.append(s)
    return s


TRIVIAL = {"shell": "echo ok", "python": "print('ok')", "nodejs": "console.log('ok')"}


def served(api, sid, language, timeout=300):
    eid = api.submit(sid, language, TRIVIAL[language])
    r = api.wait(sid, eid, timeout)
    if r.get("status") != "Finished" or r.get("stdout", "").strip() != "ok":
        raise RuntimeError(f"{sid}: {r}")


def restart_once(n, args, d):
    state = os.path.join(d, f"state-{n}")
    log = os.path.join(d, "serve.log")
    extra = ["--max-sessions", str(n + 10), "--orphan-timeout", "300"]
    first = server(state, args.isolation, log, extra=extra).start()
    api = first.api()
    ids = [f"b{i:04d}" for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(lambda s: api.create(s, args.language), ids))
        list(pool.map(lambda s: served(api, s, args.language), ids))
    port = first.port
    first.kill(signal.SIGKILL if args.signal == "KILL" else signal.SIGTERM)

    t0 = time.monotonic()
    second = server(state, args.isolation, log, port=port, extra=extra).start(timeout=600)
    listening = time.monotonic() - t0
    api = second.api()
    missing = set(ids) - set(api.sessions())
    if missing:  # auto-create would make them anew: that is not a restart being measured
        raise RuntimeError(f"the new server did not adopt {len(missing)} of {n} sessions")
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(lambda s: served(api, s, args.language), ids))
    everyone = time.monotonic() - t0
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(lambda s: api.call("DELETE", f"/sessions/{s}"), ids))
    second.kill(signal.SIGTERM)
    shutil.rmtree(state, ignore_errors=True)
    return listening, everyone


def gap_once(args, d):
    """A shell prints a timestamp every 50 ms for 4 s; the server restarts in the middle."""
    state = os.path.join(d, "state-gap")
    log = os.path.join(d, "serve.log")
    first = server(state, args.isolation, log, extra=["--orphan-timeout", "300"]).start()
    api = first.api()
    api.create("gap", "shell")
    code = "for i in $(seq 1 80); do echo $i $(date +%s.%N); sleep 0.05; done"
    eid = api.submit("gap", "shell", code)
    arrivals, seen = [], 0

    def poll(api):
        nonlocal seen
        r = api.ok("GET", f"/gap/result?execution_id={eid}&offset={seen}")
        text = r.get("stdout", "")
        now = time.monotonic()
        complete = text[:text.rfind("\n") + 1]
        for _ in complete.splitlines():
            arrivals.append(now)
        seen += len(complete)
        return r

    while seen < 300:  # about 20 lines before the restart
        poll(api)
        time.sleep(0.02)
    port = first.port
    first.kill(signal.SIGKILL if args.signal == "KILL" else signal.SIGTERM)
    second = server(state, args.isolation, log, port=port).start(timeout=120)
    api = second.api()
    while True:
        r = poll(api)
        if r.get("status") != "Running":
            break
        time.sleep(0.02)
    full = api.wait("gap", eid)
    lines = full.get("stdout", "").split("\n")
    rows = [line.split() for line in lines if line.strip()]
    numbers = [int(r[0]) for r in rows]
    stamps = [float(r[1]) for r in rows]
    in_output = max(b - a for a, b in zip(stamps, stamps[1:]))
    at_client = max(b - a for a, b in zip(arrivals, arrivals[1:]))
    lost = sorted(set(range(1, 81)) - set(numbers))
    api.call("DELETE", "/sessions/gap")
    second.kill(signal.SIGTERM)
    shutil.rmtree(state, ignore_errors=True)
    return in_output, at_client, lost, numbers == list(range(1, 81))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="10,200", help="comma-separated session counts")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--isolation", default="rlimit")
    ap.add_argument("--language", default="shell", choices=sorted(TRIVIAL))
    ap.add_argument("--signal", default="KILL", choices=["KILL", "TERM"])
    ap.add_argument("--parallel", type=int, default=8, help="client threads")
    args = ap.parse_args()
    d = base_dir("restart-bench-")
    try:
        for n in [int(x) for x in args.sessions.split(",") if x]:
            runs = [restart_once(n, args, d) for _ in range(args.runs)]
            print(json.dumps({"bench": "restart", "sessions": n, "isolation": args.isolation,
                              "signal": args.signal, "runs": args.runs,
                              "listening_s_median": round(statistics.median(r[0] for r in runs), 3),
                              "all_served_s_median": round(statistics.median(r[1] for r in runs), 3),
                              "all_served_s": [round(r[1], 3) for r in runs]}), flush=True)
        gaps = [gap_once(args, d) for _ in range(args.runs)]
        print(json.dumps({"bench": "restart_gap", "isolation": args.isolation, "signal": args.signal,
                          "runs": args.runs,
                          "output_gap_s_median": round(statistics.median(g[0] for g in gaps), 3),
                          "client_gap_s_median": round(statistics.median(g[1] for g in gaps), 3),
                          "lines_lost": [g[2] for g in gaps],
                          "in_order": all(g[3] for g in gaps)}), flush=True)
    finally:
        for s in SERVERS:
            s.kill()
        for name in os.listdir(d):  # what a failed run left running
            if name.startswith("state-"):
                sweep(os.path.join(d, name), args.isolation, os.path.join(d, "serve.log"))
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
