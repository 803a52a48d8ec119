#!/bin/bash
# What a session costs per backend, beside the tools a user would otherwise reach for, in one
# run: bare python3, bwrap --unshare-all and runsc do around `python3 -c 1+1`, then our
# session create / first result / warm execution (Google Benchmark, medians of repetitions).
#   tests/bench/isolation_cost.sh [build-dir] [runs]
set -euo pipefail
build=${1:-build}
runs=${2:-21}
median_ms() {  # median wall time of a command over $runs runs, in ms
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" 'NR == int((n + 1) / 2) { printf "%.2f", $1 / 1000 }'
}
echo "peers (median of $runs, ms):"
echo "  python3 -c 1+1                                  $(median_ms /usr/bin/python3 -c 1+1)"
if command -v bwrap >/dev/null; then
  echo "  bwrap --unshare-all ... python3 -c 1+1          $(median_ms bwrap --unshare-all --die-with-parent \
      --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
      --ro-bind /etc /etc --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c 1+1)"
fi
if command -v runsc >/dev/null; then
  echo "  runsc --network=none do python3 -c 1+1          $(median_ms runsc --network=none do /usr/bin/python3 -c 1+1)"
fi
echo "libsandbox (median of 5 repetitions):"
"$build/tests/bench/bench_session" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_filter='SessionCreate|WarmExecution/(rlimit|namespaces|runsc)_python|IdleSessionMemory' 2>/dev/null | grep -E 'median|Benchmark'
