"""A data-analysis session: upload a CSV, summarise it with pandas, save a plot.

    PYTHONPATH=build/python python3 examples/python/data_analysis.py [--isolation rlimit] [--out DIR]

The code runs inside the sandbox; this script only uploads, runs and downloads.
"""

import argparse
import pathlib
import sys

import sandbox

CSV = b"""month,visitors,signups
2024-01,1200,48
2024-02,1350,61
2024-03,1610,70
2024-04,1580,66
2024-05,1920,91
2024-06,2210,104
"""

ANALYSIS = """
import pandas as pd
df = pd.read_csv("traffic.csv", parse_dates=["month"])
df["rate"] = df.signups / df.visitors
print(df.describe().round(3).to_string())
f"best month: {df.loc[df.rate.idxmax(), 'month']:%B %Y} ({df.rate.max():.1%})"
"""

PLOT = """
import matplotlib
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(df.month, df.visitors, marker="o", label="visitors")
ax2 = ax.twinx()
ax2.bar(df.month, df.signups, width=12, alpha=0.3, color="tab:orange", label="signups")
ax.set_title("Visitors and signups")
fig.autofmt_xdate()
fig.savefig("traffic.png", dpi=100)   # a file in the workspace
plt.show()                            # and a captured figure in the result
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", default=None, help="runsc, namespaces or rlimit (default: strongest)")
    parser.add_argument("--out", default=".", help="where to save the plots")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with sandbox.Session(isolation=args.isolation, timeout=60) as s:
        print(f"session {s.id} ({s.isolation})")
        s.files.upload("traffic.csv", CSV)

        summary = s.run(ANALYSIS)
        if summary.status != sandbox.Status.FINISHED:
            print(summary.stderr, file=sys.stderr)
            return 1
        print(summary.stdout)
        print(summary.result)

        plot = s.run(PLOT)  # `df` is still there: the session keeps its state
        if plot.status != sandbox.Status.FINISHED or not plot.images:
            print(plot.stderr, file=sys.stderr)
            return 1
        (out / "traffic-figure.png").write_bytes(plot.images[0].data)
        (out / "traffic.png").write_bytes(s.files.download("traffic.png"))
        print(f"saved {out / 'traffic-figure.png'} and {out / 'traffic.png'}")
        print("workspace:", ", ".join(f"{f.name} ({f.size} B)" for f in s.files.list()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
