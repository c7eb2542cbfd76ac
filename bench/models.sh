#!/usr/bin/env bash
# Benchmark keel's built-in trainers and ONNX runtime against scikit-learn
# and onnxruntime on the same synthetic data (20k training rows, 100k
# prediction rows, 10 features). Not a test: prints a side-by-side table.
#
#   KEEL_PYTHON=/path/to/python bench/models.sh
#
# onnxruntime latencies are measured from Python with one intra-op thread
# (so they include Python call overhead, ~2-5 µs); keel's from Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${KEEL_PYTHON:-python3}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cargo build --release -q -p keel-ml --example bench_models
"$PY" bench/models_ref.py "$DIR" > "$DIR/ref.json"
"${CARGO_TARGET_DIR:-target}/release/examples/bench_models" "$DIR" > "$DIR/keel.json"
"$PY" - "$DIR/ref.json" "$DIR/keel.json" <<'PYEOF'
import json, sys
ref, keel = (json.load(open(p)) for p in sys.argv[1:3])
print("training (20k rows) and batch prediction (100k rows)")
print(f"{'algorithm':<22}{'keel train s':>14}{'sklearn train s':>17}{'keel rows/s':>14}{'sklearn rows/s':>16}")
for a in ("logistic_regression", "gradient_boosting"):
    k, r = keel[a], ref[a]
    print(f"{a:<22}{k['train_s']:>14.3f}{r['train_s']:>17.3f}{k['predict_100k_rows_per_s']:>14,.0f}{r['predict_100k_rows_per_s']:>16,.0f}")
print()
print("ONNX runtime latency per call (µs) and 100k-row batch throughput")
print(f"{'model':<8}{'keel b=1':>10}{'ORT b=1':>10}{'keel b=100':>12}{'ORT b=100':>11}{'keel rows/s':>14}{'ORT rows/s':>14}")
for m in ("lr", "rf50", "gb50"):
    k, r = keel["keel_runtime"][m], ref["onnxruntime"][m]
    print(f"{m:<8}{k['b1_us']:>10.1f}{r['b1_us']:>10.1f}{k['b100_us']:>12.1f}{r['b100_us']:>11.1f}{k['batch_100k_rows_per_s']:>14,.0f}{r['batch_100k_rows_per_s']:>14,.0f}")
PYEOF
