#!/usr/bin/env bash
# Data versioning benchmark: keel vs DVC vs reading the bytes, one run,
# figures side by side.
#
#   bash bench/data.sh [BIG_MB=1024] [SMALL_FILES=100000]
#
# Needs a release build of keel. DVC: `dvc` on PATH, DVC=/path/to/dvc, or
# installed (dvc==3.67.1) into DVC_VENV (default /tmp/keel-bench-dvc).
# NO_DVC=1 skips it. Page cache is warm for every contender (each reads
# files that were just written), as on a developer machine re-adding data
# it just produced. `keel data add` promises survival of a kill by default;
# the "add --sync" rows also flush the objects to the disk (power-loss
# durability), which neither dvc nor cat does. BENCH_DIR=/mnt/xfs runs it
# on another file system (on XFS or btrfs keel clones large files: see
# README.md, Data versioning).
set -euo pipefail
BIG_MB=${1:-1024}
SMALL=${2:-100000}
here=$(cd "$(dirname "$0")/.." && pwd)
KEEL=${KEEL:-$here/target/release/keel}
[ -x "$KEEL" ] || KEEL=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}/release/keel
DVC=${DVC:-$(command -v dvc || true)}
if [ -z "$DVC" ] && [ -z "${NO_DVC:-}" ]; then
  DVC_VENV=${DVC_VENV:-/tmp/keel-bench-dvc}
  if [ ! -x "$DVC_VENV/bin/dvc" ]; then
    python3 -m venv "$DVC_VENV"
    "$DVC_VENV/bin/pip" install -q "dvc==3.67.1"
  fi
  DVC="$DVC_VENV/bin/dvc"
fi
[ -x "$KEEL" ] || { echo "build keel first: cargo build --release -p keel-cli" >&2; exit 2; }
work=$(mktemp -d "${BENCH_DIR:-/tmp}/keel-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Seconds a command takes; FAIL (and its stderr) if it fails.
t() {
  local s e
  s=$(date +%s.%N)
  if ! "$@" >/dev/null 2>"$work/stderr"; then cat "$work/stderr" >&2; echo FAIL; return; fi
  e=$(date +%s.%N); echo "$e - $s" | bc
}

echo "generating ${BIG_MB} MiB file and ${SMALL} small files in $work"
mkdir -p "$work/gen/big" "$work/gen/small"
head -c $((BIG_MB << 20)) /dev/urandom > "$work/gen/big/big.bin"
python3 - "$work/gen/small" "$SMALL" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
for i in range(n):
    d = os.path.join(root, f"d{i % 100:03d}")
    if i < 100: os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.txt"), "w") as f:
        f.write(f"{i},{random.random()}\n")
PY

setup() { # $1 = tool, $2 = dataset kind
  # A real copy (not a clone on XFS): its pages are in the cache, as on ext4.
  local d="$work/$1-$2"; rm -rf "$d"; mkdir -p "$d"; cp -r --reflink=never "$work/gen/$2" "$d/data"
  # keel does not trust stat-cache entries for files modified within a
  # second of the scan ("racy git"); data is normally older than that.
  # Everyone starts with the copy on disk, not with the previous
  # contender's write-back still running.
  sync; sleep 1.1; echo "$d"
}

declare -A R
for kind in big small; do
  d=$(setup cat $kind)
  R[cat-$kind]=$(t sh -c "find '$d/data' -type f -print0 | xargs -0 cat > /dev/null")
  d=$(setup keel $kind); (cd "$d" && "$KEEL" init >/dev/null)
  R[keel-$kind]=$(cd "$d" && t "$KEEL" data add data)
  R[keelst-$kind]=$(cd "$d" && t "$KEEL" data status)
  d=$(setup keelsync $kind); (cd "$d" && "$KEEL" init >/dev/null)
  R[keelsync-$kind]=$(cd "$d" && t "$KEEL" data add --sync data)
  if [ -n "$DVC" ]; then
    d=$(setup dvc $kind); (cd "$d" && git init -q && "$DVC" init -q)
    R[dvc-$kind]=$(cd "$d" && t "$DVC" add data)
    R[dvcst-$kind]=$(cd "$d" && t "$DVC" status)
  fi
done

row() { printf '%-44s %10s %10s %10s %12s %12s\n' "$@"; }
ratio() { if [[ "${1:-}" =~ ^[0-9.]+$ ]] && [[ "${2:-}" =~ ^[0-9.]+$ ]]; then echo "scale=1; $1 / $2" | bc; else echo "-"; fi; }
echo
[ -n "$DVC" ] && echo "$("$DVC" --version | head -1 | sed 's/^/dvc /')"
row "operation" "keel (s)" "dvc (s)" "cat (s)" "keel/cat" "dvc/keel"
for kind in big small; do
  label=$([ $kind = big ] && echo "add ${BIG_MB} MiB file" || echo "add ${SMALL} small files")
  row "$label" "${R[keel-$kind]}" "${R[dvc-$kind]:--}" "${R[cat-$kind]}" \
      "$(ratio "${R[keel-$kind]}" "${R[cat-$kind]}")" "$(ratio "${R[dvc-$kind]:-}" "${R[keel-$kind]}")"
  row "  same, add --sync" "${R[keelsync-$kind]}" "-" "${R[cat-$kind]}" \
      "$(ratio "${R[keelsync-$kind]}" "${R[cat-$kind]}")" "$(ratio "${R[dvc-$kind]:-}" "${R[keelsync-$kind]}")"
  row "status, nothing changed ($kind)" "${R[keelst-$kind]}" "${R[dvcst-$kind]:--}" "-" "-" \
      "$(ratio "${R[dvcst-$kind]:-}" "${R[keelst-$kind]}")"
done
