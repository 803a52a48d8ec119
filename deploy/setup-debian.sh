#!/bin/sh
# Installs everything libsandbox needs to build, test and benchmark on Debian 12, as root.
# Idempotent: when every package is present it touches nothing (no apt-get update), so CI
# re-runs take a second. Works from a minbase debootstrap (no sudo, no certificates).
#
#   deploy/setup-debian.sh            # from the source tree
#   SANDBOX_SETUP_VERBOSE=1 deploy/setup-debian.sh
set -eu

cd "$(dirname "$0")/.."
log=${TMPDIR:-/tmp}/sandbox-setup.$$.log
trap 'rm -f "$log"' EXIT

say() { printf 'setup-debian: %s\n' "$*"; }
fail() {
  say "FAILED: $*" >&2
  [ -s "$log" ] && { say "last lines of the log:" >&2; tail -n 30 "$log" >&2; }
  exit 1
}
# Runs a command quietly; its output is shown only when it fails (or when verbose).
quiet() {
  if [ "${SANDBOX_SETUP_VERBOSE:-0}" = 1 ]; then "$@"; return; fi
  "$@" >"$log" 2>&1 || fail "$*"
}

[ "$(id -u)" = 0 ] || fail "run as root (apt-get needs it)"
command -v apt-get >/dev/null 2>&1 || fail "not a Debian system (no apt-get)"

packages="
  build-essential cmake ninja-build ccache pkg-config git ca-certificates clang libclang-rt-14-dev
  libboost-all-dev libfmt-dev libseccomp-dev nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libcli11-dev pybind11-dev python3-dev python3-pip python3-venv python3-pytest
  python3-matplotlib python3-numpy python3-pandas
  nodejs runsc bubblewrap procps iproute2
  wrk nginx-light python3-fastapi python3-uvicorn python3-multipart python3-psutil
"
# A nodejs from elsewhere (nodesource) ships its own npm and conflicts with Debian's package.
command -v npm >/dev/null 2>&1 || packages="$packages npm"
command -v kubectl >/dev/null 2>&1 || packages="$packages kubernetes-client"

# One dpkg-query for all: a package is present when its status reads "ii".
# shellcheck disable=SC2086
installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $packages 2>/dev/null |
            awk '$1 == "ii" { print $2 }' || true)
missing=
for p in $packages; do
  printf '%s\n' "$installed" | grep -qx "$p" || missing="$missing $p"
done

if [ -n "$missing" ]; then
  say "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  quiet apt-get update -q
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  quiet apt-get install -y -q --no-install-recommends $missing
else
  say "all packages present"
fi

# vm2 for the Node.js kernel, pinned by runtime/package-lock.json.
if [ -f runtime/package-lock.json ]; then
  if [ -d runtime/node_modules/vm2 ] && [ runtime/node_modules/.package-lock.json -nt runtime/package-lock.json ]; then
    say "runtime/node_modules up to date"
  else
    say "npm ci --prefix runtime"
    quiet npm ci --prefix runtime --no-audit --no-fund --loglevel=error
  fi
else
  say "runtime/package-lock.json absent: skipping npm ci"
fi
say "done"
