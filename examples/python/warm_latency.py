"""Median wall time of s.run("1+1") in a warm session, timed from Python.

    PYTHONPATH=build/python python3 examples/python/warm_latency.py [--isolation rlimit] [-n 200]
"""

import argparse
import statistics
import timeit

import sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", default=None, help="runsc, namespaces or rlimit (default: strongest)")
    parser.add_argument("-n", type=int, default=200, help="timed runs")
    args = parser.parse_args()
    with sandbox.Session(isolation=args.isolation) as s:
        s.run("1+1")  # warm: the kernel is up and the first round trip is done
        times = sorted(timeit.repeat(lambda: s.run("1+1"), number=1, repeat=args.n))
        print(
            f"{s.isolation}: median {statistics.median(times) * 1e3:.3f} ms, "
            f"p90 {times[int(len(times) * 0.9) - 1] * 1e3:.3f} ms, min {times[0] * 1e3:.3f} ms "
            f"over {args.n} runs"
        )


if __name__ == "__main__":
    main()
