#!/usr/bin/env bash
# keel's whole test suite, from a fresh machine: installs what the tests
# need (PostgreSQL, Prometheus, a Python venv with the pinned clients), starts a
# throwaway PostgreSQL on loopback, and runs every test of the workspace.
#
#   bash scripts/test.sh [extra cargo test args]
#
# Environment:
#   CARGO_TARGET_DIR  reused between runs (default ~/.cache/keel-target)
#   KEEL_VENV         the Python venv (default ~/.cache/keel-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}
export KEEL_VENV=${KEEL_VENV:-$HOME/.cache/keel-venv}
mkdir -p "$CARGO_TARGET_DIR"

log() { printf '\n== %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}
# For optional steps: root, or sudo without a password prompt, else fails.
as_root_quietly() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi
}

# --- system packages --------------------------------------------------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
need_apt=()
[ -n "$(pg_bin)" ] || need_apt+=(postgresql)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# promtool and a real Prometheus for the /metrics tests (keel-cli tests/integration/serve.rs).
{ command -v promtool && command -v prometheus; } >/dev/null || need_apt+=(prometheus)
# flock(1), which holds a pack directory's lock in a store test (data.rs).
command -v flock >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Python venv with the pinned clients ------------------------------------
req=.ci/requirements.txt
if [ -s "$req" ] && [ -z "${KEEL_NO_VENV:-}" ]; then
  stamp="$KEEL_VENV/.keel-requirements.sha256"
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$KEEL_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "creating the Python venv at $KEEL_VENV"
    python3 -m venv "$KEEL_VENV"
    "$KEEL_VENV/bin/pip" install -q --upgrade pip
    "$KEEL_VENV/bin/pip" install -q -r "$req"
    echo "$want" > "$stamp"
  fi
  export KEEL_PYTHON="$KEEL_VENV/bin/python"
fi

# --- a throwaway PostgreSQL on loopback -------------------------------------
pgdir=$(mktemp -d /tmp/keel-pg.XXXXXX)
chmod 755 "$pgdir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$pgdir"
bin=$(pg_bin)
log "starting PostgreSQL ($bin) on 127.0.0.1:$port"
run_pg "$bin/initdb" -D "$pgdir/data" -U postgres -A trust >/dev/null
run_pg "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -o "-h 127.0.0.1 -p $port -k $pgdir -c fsync=off -c max_connections=300" start >/dev/null
xfsdir=$(mktemp -d /tmp/keel-xfs.XXXXXX)
cleanup() {
  run_pg "$bin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdir" || true
  if mountpoint -q "$xfsdir/mnt"; then
    as_root_quietly umount "$xfsdir/mnt" || as_root_quietly umount -l "$xfsdir/mnt" || true
  fi
  # Never recurse into a file system that is still mounted.
  mountpoint -q "$xfsdir/mnt" || rm -rf "$xfsdir" || true
}
trap cleanup EXIT
export KEEL_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"

# --- a reflink file system: an XFS image on a loop device -------------------
# The object store clones large files where the file system can; this is
# where its tests see that happen. Optional: needs root (or sudo without a
# password) and a loop device; without them the clone tests check the copy
# path only.
mkfs_xfs() { PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.xfs; }
if [ -z "${KEEL_TEST_REFLINK_DIR:-}" ]; then
  mkdir "$xfsdir/mnt"
  [ -n "$(mkfs_xfs)" ] || as_root_quietly env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends xfsprogs >/dev/null 2>&1 || true
  if [ -n "$(mkfs_xfs)" ] && truncate -s 512M "$xfsdir/img" \
      && "$(mkfs_xfs)" -q -m reflink=1 "$xfsdir/img" \
      && as_root_quietly mount -o loop "$xfsdir/img" "$xfsdir/mnt" \
      && as_root_quietly chmod 1777 "$xfsdir/mnt"; then
    export KEEL_TEST_REFLINK_DIR="$xfsdir/mnt"
    log "reflink tests on XFS at $KEEL_TEST_REFLINK_DIR"
  else
    log "WARNING: no XFS loop mount here; the clone tests check the copy path only"
  fi
fi

# --- the tests ----------------------------------------------------------------
log "cargo test (target dir $CARGO_TARGET_DIR)"
# With arguments (e.g. `-p keel-store`), only those; otherwise everything.
if [ $# -gt 0 ]; then cargo test --locked "$@"; else cargo test --workspace --locked --no-fail-fast; fi
