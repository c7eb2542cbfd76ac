#!/usr/bin/env bash
# Data-quality benchmark, one run, figures side by side:
#   1. drift of ROWS × 20 columns: `keel drift` vs Evidently's DataDriftPreset;
#   2. profile of the same ROWS × 20 CSV: `keel data profile` vs pandas
#      read_csv + describe(include="all") + value_counts() per column, and
#      how far keel's figures are from pandas' (they must agree);
#   3. a BIG_GB GiB CSV generated on disk, profiled by keel, peak RSS from
#      /usr/bin/time -v; the file is deleted afterwards.
#
#   bash bench/quality.sh [ROWS=1000000] [BIG_GB=5]
#
# Needs a release build of keel (cargo build --release -p keel-cli; $KEEL,
# else $CARGO_TARGET_DIR/release/keel, else the keel-data example below) and a Python with the pinned
# .ci/requirements.txt (pandas, pyarrow, evidently): PYTHON, else
# $KEEL_PYTHON, else ~/.cache/keel-venv/bin/python. BIG_GB=0 skips step 3.
# Everything generated goes to a temporary directory removed at exit
# (WORK=DIR keeps it, and reuses its inputs).
set -euo pipefail
ROWS=${1:-1000000}
BIG_GB=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
KEEL=${KEEL:-${CARGO_TARGET_DIR:-$here/target}/release/keel}
# Fallback: the same library calls (`keel_data::profile`, `drift_files`)
# in a small binary without the store and server,
# `cargo build --release -p keel-data --example quality`.
[ -x "$KEEL" ] || KEEL=${CARGO_TARGET_DIR:-$here/target}/release/examples/quality
[ -x "$KEEL" ] || { echo "build keel first: cargo build --release -p keel-cli (or set KEEL)" >&2; exit 2; }
PYTHON=${PYTHON:-${KEEL_PYTHON:-$HOME/.cache/keel-venv/bin/python}}
"$PYTHON" -c 'import pandas, pyarrow, evidently' || { echo "$PYTHON lacks pandas/pyarrow/evidently" >&2; exit 2; }
if [ -n "${WORK:-}" ]; then
  mkdir -p "$WORK"
  cleanup() { rm -f "$WORK/big.csv" "$WORK/body.csv"; }
else
  WORK=$(mktemp -d /tmp/keel-quality.XXXXXX)
  cleanup() { rm -rf "$WORK"; }
fi
trap cleanup EXIT
echo "keel: $KEEL"
echo "python: $PYTHON"
echo "work dir: $WORK"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

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
s=$(now)
"$KEEL" drift --reference "$WORK/ref.parquet" --current "$WORK/cur.parquet" --json > "$WORK/keel_drift.json" || [ $? -eq 1 ]
e=$(now)
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
keel_drifted=$("$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["drifted_columns"], "of", r["tested_columns"], "drifted, share", r["share"])' "$WORK/keel_drift.json")
echo "keel: $keel_drifted; Evidently: $(sed -n 2p "$WORK/evidently_drift.txt")"

echo
echo "== profile: $ROWS rows × 20 columns, $(numfmt --to=iec "$(stat -c %s "$WORK/ref.csv")") CSV"
s=$(now); "$KEEL" data profile "$WORK/ref.csv" --json > "$WORK/keel_profile.json"; e=$(now)
keel_profile=$(secs "$s" "$e")
s=$(now)
"$PYTHON" - "$WORK" <<'PY'
import sys
import pandas as pd
w = sys.argv[1]
df = pd.read_csv(f"{w}/ref.csv")
d = df.describe(include="all")
counts = {c: df[c].value_counts() for c in df.columns}
d.to_pickle(f"{w}/pandas_describe.pkl")
pd.to_pickle({c: v.head(10) for c, v in counts.items()}, f"{w}/pandas_top.pkl")
PY
e=$(now)
pd_profile=$(secs "$s" "$e")
echo "keel vs pandas, same file (max relative difference per statistic):"
"$PYTHON" - "$WORK" <<'PY'
import json, sys
import pandas as pd
w = sys.argv[1]
k = {c["name"]: c for c in json.load(open(f"{w}/keel_profile.json"))["columns"]}
d = pd.read_pickle(f"{w}/pandas_describe.pkl")
top = pd.read_pickle(f"{w}/pandas_top.pkl")
worst = {}
def note(stat, a, b):
    r = abs(a - b) / max(abs(b), 1e-300)
    worst[stat] = max(worst.get(stat, 0.0), r)
rank_err = 0.0
for name, col in d.items():
    kc = k[name]
    note("count", kc["count"], col["count"])
    if kc.get("numeric"):
        n = kc["numeric"]
        for stat in ("mean", "std", "min", "max"):
            note(stat, n[stat], col[stat])
        q = dict((round(a, 2), v) for a, v in n["quantiles"])
        for level, key in ((0.25, "25%"), (0.5, "50%"), (0.75, "75%")):
            # Relative to the spread: a median near 0 has no useful
            # relative error.
            note("quantiles/std", q[level] - col[key] + col["std"], col["std"])
        rank_err = max(rank_err, n["quantile_rank_error"])
    else:
        note("distinct", kc["distinct"], col["unique"])
        want = list(top[name].items())
        got = [(t["value"], t["count"]) for t in kc["top_values"]][: len(want)]
        mismatched = got != [(str(a), b) for a, b in want]
        worst["top values"] = worst.get("top values", 0) + mismatched
for stat, r in worst.items():
    if stat == "top values":
        print(f"  top-10 lists that differ: {r} of {sum(1 for c in k.values() if not c.get('numeric'))}")
    else:
        print(f"  {stat:<13} {r:.2e}")
print("  (pandas' default float parser is not correctly rounded: last-bit differences in min/max)")
print(f"  (quantiles above 200,000 values come from keel's sketch: rank error bound {rank_err:.2%})")
PY

big_line="(skipped)"
if [ "$BIG_GB" != "0" ]; then
  big="$WORK/big.csv"
  target=$((BIG_GB * 1024 * 1024 * 1024))
  echo
  echo "== building a ${BIG_GB} GiB CSV from $WORK/ref.csv"
  cp "$WORK/ref.csv" "$big"
  tail -n +2 "$WORK/ref.csv" > "$WORK/body.csv"
  while [ "$(stat -c %s "$big")" -lt "$target" ]; do cat "$WORK/body.csv" >> "$big"; done
  rm -f "$WORK/body.csv"
  size=$(stat -c %s "$big")
  echo "== profile of $(numfmt --to=iec "$size") CSV ($size bytes), peak RSS"
  /usr/bin/time -v "$KEEL" data profile "$big" --json > "$WORK/big_profile.json" 2> "$WORK/big_time.txt"
  rss_kb=$(grep "Maximum resident set size" "$WORK/big_time.txt" | awk '{print $NF}')
  wall=$(grep "Elapsed (wall clock)" "$WORK/big_time.txt" | awk '{print $NF}')
  big_rows=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows"])' "$WORK/big_profile.json")
  rm -f "$big"
  big_line="$(numfmt --to=iec "$size") CSV ($big_rows rows): wall $wall, peak RSS $((rss_kb / 1024)) MiB"
fi

echo
echo "================ results (one run) ================"
printf "%-44s %10s %10s %8s\n" "task" "keel (s)" "other (s)" "speedup"
printf "%-44s %10.2f %10.2f %7.1fx\n" "drift vs Evidently DataDriftPreset (process)" "$keel_drift" "$ev_drift" "$(echo "$ev_drift / $keel_drift" | bc -l)"
printf "%-44s %10s %10.2f %7.1fx\n" "  Evidently compute only (no import/read)" "" "$ev_compute" "$(echo "$ev_compute / $keel_drift" | bc -l)"
printf "%-44s %10.2f %10.2f %7.1fx\n" "profile vs pandas describe+value_counts" "$keel_profile" "$pd_profile" "$(echo "$pd_profile / $keel_profile" | bc -l)"
echo "large CSV profile: $big_line"
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
