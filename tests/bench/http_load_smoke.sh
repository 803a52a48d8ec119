#!/bin/sh
# CTest smoke for http_load: a real `sandboxctl serve` on an ephemeral loopback port, two
# sessions for one second; passes when http_load reports executions and no errors (its exit
# status). Asserts behaviour, not speed.  Usage: http_load_smoke.sh SANDBOXCTL HTTP_LOAD
set -u
sandboxctl=$1 http_load=$2
dir=$(mktemp -d) || exit 1
chmod 711 "$dir"  # rlimit runs code as another uid, which must pass through it
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid"; fi
  rm -rf "$dir"
}
trap cleanup EXIT
"$sandboxctl" serve --listen 127.0.0.1:0 --state-dir "$dir/state" --isolation rlimit --quiet \
  2>"$dir/serve.err" &
pid=$!
port=
for _ in $(seq 100); do  # the server prints its address once it listens: 10 s at most
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/serve.err")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "sandboxctl serve did not start:"; cat "$dir/serve.err"
  exit 1
fi
"$http_load" --port "$port" --sessions 2 --seconds 1 --max-requests 500
