#!/usr/bin/env bash
# Data-quality benchmark: keel vs Evidently (drift) and pandas (profile),
# plus peak memory of profiling a large CSV. One run, figures side by side.
#
#   bash bench/quality.sh [ROWS=1000000] [BIG_GB=5]
#
# Needs a release build of keel (cargo build --release -p keel-cli) and a
# Python with .ci/requirements.txt installed (PYTHON=…/bin/python, default
# $KEEL_PYTHON, else ~/.cache/keel-venv/bin/python). BIG_GB=0 skips the
# large-CSV run. Inputs are generated once into $WORK (default a temp dir).
set -euo pipefail
ROWS=${1:-1000000}
BIG_GB=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
KEEL=${KEEL:-${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}/release/keel}
[ -x "$KEEL" ] || KEEL=$here/target/release/keel
# Fallback: the same library calls in a small binary (no store, no server),
# `cargo build --release -p keel-data --example quality`.
[ -x "$KEEL" ] || KEEL=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}/release/examples/quality
[ -x "$KEEL" ] || { echo "build keel first: cargo build --release -p keel-cli" >&2; exit 2; }
PYTHON=${PYTHON:-${KEEL_PYTHON:-$HOME/.cache/keel-venv/bin/python}}
WORK=${WORK:-$(mktemp -d /tmp/keel-quality.XXXXXX)}
mkdir -p "$WORK"
echo "keel: $KEEL"
echo "python: $PYTHON"
echo "work dir: $WORK"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

if [ ! -f "$WORK/cur.parquet" ]; then
  echo "generating 2 × $ROWS rows × 20 columns (12 numeric, 8 categorical)"
  "$PYTHON" - "$WORK" "$ROWS" <<'PY'
import sys
import numpy as np, pandas as pd
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
def frame(shift):
    d = {}
    for i in range(12):
        kind = i % 4
        if kind == 0: v = rng.normal(shift * (i % 3), 1.0, n)
        elif kind == 1: v = rng.lognormal(0.0, 0.5 + 0.1 * shift, n)
        elif kind == 2: v = rng.exponential(1.0 + shift * 0.2, n)
        else: v = rng.integers(0, 1000 + int(shift * 100), n)
        d[f"num{i:02d}"] = v
    cats = np.array([f"c{k:02d}" for k in range(30)])
    for i in range(8):
        p = np.linspace(1.0, 2.0 + shift * (i % 2), 30 if i % 2 else 5)
        p = p / p.sum()
        d[f"cat{i}"] = rng.choice(cats[: len(p)], n, p=p)
    return pd.DataFrame(d)
ref, cur = frame(0.0), frame(0.3)
ref.to_parquet(f"{out}/ref.parquet"); cur.to_parquet(f"{out}/cur.parquet")
ref.to_csv(f"{out}/ref.csv", index=False)
PY
fi

echo
echo "== drift: $ROWS rows × 20 columns, reference vs current (Parquet)"
s=$(now); "$KEEL" drift --reference "$WORK/ref.parquet" --current "$WORK/cur.parquet" --json > "$WORK/keel_drift.json" || true; e=$(now)
keel_drift=$(secs "$s" "$e")
s=$(now)
"$PYTHON" - "$WORK" > "$WORK/evidently_drift.txt" <<'PY'
import sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
w = sys.argv[1]
ref = pd.read_parquet(f"{w}/ref.parquet"); cur = pd.read_parquet(f"{w}/cur.parquet")
t = time.time()
snap = Report([DataDriftPreset()]).run(cur, ref).dict()
print(f"compute {time.time() - t:.2f}")
print(snap["metrics"][0]["value"])
PY
e=$(now)
ev_drift=$(secs "$s" "$e")
ev_compute=$(head -1 "$WORK/evidently_drift.txt" | cut -d' ' -f2)

echo
echo "== profile: $ROWS rows × 20 columns (CSV)"
s=$(now); "$KEEL" data profile "$WORK/ref.csv" --json > "$WORK/keel_profile.json"; e=$(now)
keel_profile=$(secs "$s" "$e")
s=$(now)
"$PYTHON" - "$WORK" <<'PY' > "$WORK/pandas_profile.txt"
import sys
import pandas as pd
df = pd.read_csv(f"{sys.argv[1]}/ref.csv")
print(df.describe(include="all"))
for c in df.columns:
    df[c].value_counts()
PY
e=$(now)
pd_profile=$(secs "$s" "$e")

big_line="(skipped)"
if [ "$BIG_GB" != "0" ]; then
  big="$WORK/big.csv"
  target=$((BIG_GB * 1024 * 1024 * 1024))
  if [ ! -f "$big" ] || [ "$(stat -c %s "$big")" -lt "$target" ]; then
    echo
    echo "== building a ${BIG_GB} GiB CSV from $WORK/ref.csv"
    cp "$WORK/ref.csv" "$big"
    tail -n +2 "$WORK/ref.csv" > "$WORK/body.csv"
    while [ "$(stat -c %s "$big")" -lt "$target" ]; do cat "$WORK/body.csv" >> "$big"; done
    rm -f "$WORK/body.csv"
  fi
  size=$(stat -c %s "$big")
  echo
  echo "== profile of $(numfmt --to=iec "$size") CSV, peak RSS"
  /usr/bin/time -v "$KEEL" data profile "$big" --json > "$WORK/big_profile.json" 2> "$WORK/big_time.txt"
  rss_kb=$(grep "Maximum resident set size" "$WORK/big_time.txt" | awk '{print $NF}')
  wall=$(grep "Elapsed (wall clock)" "$WORK/big_time.txt" | awk '{print $NF}')
  big_line="$(numfmt --to=iec "$size") CSV: wall $wall, peak RSS $((rss_kb / 1024)) MiB"
fi

echo
echo "================ results (one run) ================"
printf "%-44s %10s %10s %8s\n" "task" "keel (s)" "other (s)" "speedup"
printf "%-44s %10.2f %10.2f %7.1fx\n" "drift vs Evidently DataDriftPreset (process)" "$keel_drift" "$ev_drift" "$(echo "$ev_drift / $keel_drift" | bc -l)"
printf "%-44s %10s %10.2f %7.1fx\n" "  Evidently compute only (no import/read)" "" "$ev_compute" "$(echo "$ev_compute / $keel_drift" | bc -l)"
printf "%-44s %10.2f %10.2f %7.1fx\n" "profile vs pandas describe+value_counts" "$keel_profile" "$pd_profile" "$(echo "$pd_profile / $keel_profile" | bc -l)"
echo "large CSV profile: $big_line"
