#!/usr/bin/env bash
# keel serve vs `mlflow models serve` vs a bare hyper server (canned
# response: the ceiling; and `hyper-parse`, which also parses each body),
# with wrk on loopback, same model and machine.
# Requests/s and p50/p99 for 1-row and 100-row MLflow `/invocations`
# requests (`{"inputs": [[...]]}`) at 1, 16, 64 connections, and RSS after
# each run. keel runs with the prediction log on (default `write` durability:
# every answer waits until its record is written to the log) and its /metrics;
# `keel-fsync` also waits for the fsync (power-cut durability).
#
#   bash bench/serve.sh [seconds per run, default 10]
#
# Needs: wrk (Debian package), cargo; for MLflow: a venv with mlflow
# (created at $BENCH_VENV, default /tmp/keel-bench-venv) — skipped if pip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}
work=$(mktemp -d /tmp/keel-bench-serve.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }

cargo build -q --release -p keel-cli --bin keel -p keel-serve --example canned
keel=$CARGO_TARGET_DIR/release/keel
canned=$CARGO_TARGET_DIR/release/examples/canned

# The model: keel's logistic regression on a synthetic 4-feature dataset.
python3 - "$work" <<'PY'
import random, sys
random.seed(1)
w = sys.argv[1]
with open(f"{w}/train.csv", "w") as f:
    f.write("f0,f1,f2,f3,label\n")
    for _ in range(2000):
        x = [random.gauss(0, 1) for _ in range(4)]
        f.write(",".join(f"{v:.5f}" for v in x) + f",{int(x[0] + 0.5 * x[1] - x[2] + random.gauss(0, .5) > 0)}\n")
def body(n):
    # MLflow's TF-serving `inputs` form: the package's signature is one
    # tensor X [-1, 4], which MLflow will not fill from named columns (keel
    # would take `dataframe_split` with f0..f3 as well).
    rows = [[round(random.gauss(0, 1), 4) for _ in range(4)] for _ in range(n)]
    return '{"inputs": %s}' % rows
for n in (1, 100):
    with open(f"{w}/body{n}.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [=[%s]=]\n' % body(n))
PY
"$keel" train --data "$work/train.csv" --target label --algorithm logistic_regression --out "$work/model" >/dev/null

wait_up() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/ping" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
rss() { # pid: resident set of the process and all its descendants, KiB
  local total c
  total=$(ps -o rss= -p "$1" 2>/dev/null || echo 0)
  for c in $(pgrep -P "$1" 2>/dev/null); do total=$(( total + $(rss "$c") )); done
  echo $(( total ))
}
run() { # name port path pid
  echo "$1 RSS before load: $(rss "$4") KiB"
  for rows in 1 100; do for c in 1 16 64; do
    t=$(( c < 2 ? 1 : 2 ))
    out=$(wrk -t"$t" -c"$c" -d"${dur}s" --latency -s "$work/body$rows.lua" "http://127.0.0.1:$2$3" 2>&1)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr -s ' ' | tr '\n' ';')
    printf "%-11s rows=%-4s c=%-3s %10s req/s  p50 %-9s p99 %-9s RSS %7s KiB %s\n" "$1" "$rows" "$c" "$rps" "$p50" "$p99" "$(rss "$4")" "$errs"
  done; done
}

"$canned" 127.0.0.1:18090 2>/dev/null & pids+=($!)
sleep 0.5; run hyper 18090 /invocations "${pids[-1]}"
kill "${pids[-1]}"

# The same server reading and parsing each body (serde_json into f32 rows)
# before its canned answer: the ceiling for a server that must read its
# inputs, with no model, log or metrics.
"$canned" 127.0.0.1:18095 --parse 2>/dev/null & pids+=($!)
sleep 0.5; run hyper-parse 18095 /invocations "${pids[-1]}"
kill "${pids[-1]}"

"$keel" serve "$work/model" --port 18091 --log-dir "$work/log" 2>"$work/keel.log" & pids+=($!)
wait_up 18091; run keel 18091 /invocations "${pids[-1]}"
echo "keel log: $(cat "$work"/log/predictions/*.csv | wc -l) lines in $(ls "$work"/log/predictions | wc -l) segments; $(curl -s http://127.0.0.1:18091/metrics | grep -E '^keel_prediction_log_(records|batches)_total|^keel_prediction_log_write_seconds_total' | tr '\n' ' ')"
kill "${pids[-1]}"

# The same server with `--log-durability fsync` (every answer waits for its
# batch's fsync: power-cut durability) and `async` (no answer waits).
"$keel" serve "$work/model" --port 18094 --log-dir "$work/log-fsync" --log-durability fsync 2>"$work/keel-fsync.log" & pids+=($!)
wait_up 18094; run keel-fsync 18094 /invocations "${pids[-1]}"
kill "${pids[-1]}"

"$keel" serve "$work/model" --port 18093 --log-dir "$work/log-async" --log-durability async 2>"$work/keel-async.log" & pids+=($!)
wait_up 18093; run keel-async 18093 /invocations "${pids[-1]}"
kill "${pids[-1]}"

venv=${BENCH_VENV:-/tmp/keel-bench-venv}
if [ ! -x "$venv/bin/mlflow" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q mlflow onnx onnxruntime "pandas<3" || echo "mlflow install failed: skipped"
fi
if [ -x "$venv/bin/mlflow" ]; then
  PATH="$venv/bin:$PATH" mlflow models serve -m "$work/model" --env-manager local -w 1 -h 127.0.0.1 -p 18092 >"$work/mlflow.log" 2>&1 & pids+=($!)
  if wait_up 18092; then run mlflow 18092 /invocations "${pids[-1]}"; else echo "mlflow did not start; see $work/mlflow.log"; fi
fi
