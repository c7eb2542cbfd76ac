#!/usr/bin/env bash
# Tracking-server benchmark: keel vs `mlflow server` (SQLite backend) vs a
# null server answering `{}` (nginx `return 200 '{}'`, or a Python stdlib
# server when nginx is not installed; the output says which). Not a test:
# prints a side-by-side table.
#
#   KEEL_PYTHON=/path/to/venv/bin/python bench/tracking.sh
#
# Client-bound rows go through the mlflow Python client
# (crates/keel-server/tests/python/load_client.py); server-bound rows use
# the Rust load generator (crates/keel-server/examples/loadgen.rs).
# BENCH_SECS (default 10) per row; BENCH_RUNS (default 10000) for search;
# BENCH_ROUNDS (default 3) alternating keel/null runs per client-bound row.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${KEEL_PYTHON:-python3}
SECS=${BENCH_SECS:-10}
RUNS=${BENCH_RUNS:-10000}
T=${CARGO_TARGET_DIR:-target}
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

# keel's server code and the load generator, optimised. Dependencies are
# already built with opt-level 2 in the dev profile, so this avoids a full
# release build of the workspace; `examples/serve.rs` runs the same
# `keel_server::spawn` as `keel server`.
OPT=(--config 'profile.dev.package.keel-server.opt-level=3' --config 'profile.dev.package.keel-store.opt-level=3'
     --config 'profile.dev.package.keel-core.opt-level=3')
cargo build -q -p keel-server --example serve --example loadgen "${OPT[@]}"
SERVE="$T/debug/examples/serve"
LOADGEN="$T/debug/examples/loadgen"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "server on $1 did not start" >&2; exit 1; }

# MLflow is measured alone (its workers take CPU while starting up);
# keel and the null server are measured together, row by row.
mkdir -p "$DIR/keel"
KP=$(free_port); MP=$(free_port); NP=$(free_port)
# Each server leads its own process group (setsid), so that stopping it
# stops its workers too.
start_keel() { setsid "$SERVE" "$DIR/keel" "$KP" 2>"$DIR/keel.log" & }
# mlflow server (SQLite, artifact proxy)
start_mlflow() {
    setsid "$PY" -m mlflow server --backend-store-uri "sqlite:///$DIR/mlflow.db" --artifacts-destination "$DIR/mlart" \
        --host 127.0.0.1 --port "$MP" >"$DIR/mlflow.log" 2>&1 &
}
# null server. It answers the search row with a canned page of 100 runs
# (the shape keel returns for that row), so that row's null figure is the
# Python client's own cost of one search_runs call.
mkdir -p "$DIR/canned/api/2.0/mlflow/runs"
"$PY" - "$DIR/canned/api/2.0/mlflow/runs/search" <<'PYEOF'
import json, sys, uuid
runs = []
for k in range(100):
    rid = uuid.uuid4().hex
    runs.append({"info": {"run_id": rid, "run_uuid": rid, "run_name": f"run-{k}", "experiment_id": "1", "user_id": "bench",
                          "status": "RUNNING", "start_time": 1700000000000 + k, "artifact_uri": f"mlflow-artifacts:/1/{rid}/artifacts",
                          "lifecycle_stage": "active"},
                 "data": {"metrics": [{"key": "acc", "value": 0.999 - k / 1000, "timestamp": 0, "step": 0}], "params": [],
                          "tags": [{"key": "mlflow.runName", "value": f"run-{k}"}]},
                 "inputs": {}, "outputs": {}})
open(sys.argv[1], "w").write(json.dumps({"runs": runs}))
PYEOF
start_null() {
    # nginx's workers run as an unprivileged user: let them read the canned page.
    chmod a+x "$DIR"; chmod -R a+rX "$DIR/canned"
    if command -v nginx >/dev/null; then
        NULL_KIND="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')"
        mkdir -p "$DIR/nginx"
        cat >"$DIR/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DIR/nginx;
    proxy_temp_path $DIR/nginx; fastcgi_temp_path $DIR/nginx; uwsgi_temp_path $DIR/nginx; scgi_temp_path $DIR/nginx;
    server {
        listen 127.0.0.1:$NP;
        location = /health { return 200 'OK'; }
        # nginx serves files to GET only; 405 -> 200 turns the POST into a GET of the file.
        location = /api/2.0/mlflow/runs/search { root $DIR/canned; default_type application/json; error_page 405 =200 \$uri; }
        location / { default_type application/json; return 200 '{}'; }
    }
}
NGINX
        setsid nginx -c "$DIR/nginx/nginx.conf" -g 'daemon off;' &
    else
        NULL_KIND="python http.server (stdlib, threaded)"
        setsid "$PY" - "$NP" "$DIR/canned/api/2.0/mlflow/runs/search" <<'PYEOF' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
SEARCH = open(sys.argv[2], "rb").read()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def _ok(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        body = b"OK" if self.path == "/health" else SEARCH if self.path.startswith("/api/2.0/mlflow/runs/search") else b"{}"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _ok
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PYEOF
    fi
}
declare -A R
client_row() { # server-name port row
    local out
    out=$(MLFLOW_TRACKING_URI="http://127.0.0.1:$2" GIT_PYTHON_REFRESH=quiet MLFLOW_HTTP_REQUEST_MAX_RETRIES=0 \
          timeout 3600 "$PY" crates/keel-server/tests/python/load_client.py "$3" "$SECS" "$RUNS" 2>"$DIR/$1-$3.err" | tail -1) ||
        { out='{"error": true}'; echo "$1 $3 failed:" >&2; tail -5 "$DIR/$1-$3.err" >&2; }
    R[$1,$3]=$out
}
median() { # JSON results: the one with the median per_s
    "$PY" -c 'import json, sys
rs = [json.loads(a) for a in sys.argv[1:]]
ok = sorted((r for r in rs if "per_s" in r), key=lambda r: r["per_s"])
print(json.dumps(ok[len(ok) // 2] if ok else rs[0]))' "$@"
}
server_row() { # server-name port mode conns
    R[$1,$3]=$("$LOADGEN" "http://127.0.0.1:$2" "$3" "$4" "$SECS" 2>>"$DIR/loadgen.err" || echo '{"error": true}')
}
start() { # name port: starts a server, waits until it answers and settles
    "start_$1"
    PIDS+=($!)
    wait_up "$2"
    sleep 3 # MLflow forks its workers after /health answers
}
stop() { # stops the last started server and its process group (MLflow's workers too)
    local pid=${PIDS[-1]}
    kill -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
server_rows() { # name port
    if [ "$1" != null ]; then
        local exp
        exp=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1]).get("experiment_id", ""))' "${R[$1,search]}")
        R[$1,search-server]=$("$LOADGEN" "http://127.0.0.1:$2" search 1 "$SECS" "$exp" 2>>"$DIR/loadgen.err" || echo '{"error": true}')
    fi
    server_row "$1" "$2" log-batch 16
    server_row "$1" "$2" log-metric 64
}
ROWS=(log_metric log_batch run_lifecycle writers search)
# Client-bound rows of keel and null: ROUNDS alternating runs, median kept.
ROUNDS=${BENCH_ROUNDS:-3}
K=(); N=()
# MLflow alone: its server keeps CPUs busy while it starts and serves.
echo "measuring mlflow..." >&2
start mlflow "$MP"
for row in "${ROWS[@]}"; do client_row mlflow "$MP" "$row"; done
server_rows mlflow "$MP"
stop
# keel and the null server idle at no CPU cost, so they run together and
# each client row alternates between them (the machine's noise hits both).
echo "measuring keel and null..." >&2
start keel "$KP"
start null "$NP"
for row in log_metric log_batch run_lifecycle writers; do
    for _ in $(seq 1 "$ROUNDS"); do
        client_row keel "$KP" "$row"; K+=("${R[keel,$row]}")
        client_row null "$NP" "$row"; N+=("${R[null,$row]}")
    done
    R[keel,$row]=$(median "${K[@]}"); R[null,$row]=$(median "${N[@]}"); K=(); N=()
done
client_row keel "$KP" search
client_row null "$NP" search
server_rows keel "$KP"
server_rows null "$NP"

{
    echo "null server: $NULL_KIND"
    for k in "${!R[@]}"; do printf '%s\t%s\n' "$k" "${R[$k]}"; done
} > "$DIR/results.tsv"
"$PY" - "$DIR/results.tsv" "$SECS" "$RUNS" "$ROUNDS" <<'PYEOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
print(lines[0]); print(f"{sys.argv[2]} s per row (keel and null client rows: median of {sys.argv[4]} alternating runs); search over {sys.argv[3]} runs; 2-core machine shared with other work")
R = {}
for l in lines[1:]:
    k, v = l.split("\t", 1)
    R[tuple(k.split(","))] = json.loads(v)
def cell(s, row, field):
    v = R.get((s, row), {})
    if isinstance(v.get(field), (int, float)):
        return f"{v[field]:,.1f}"
    return "error" if v and ("error" in v or field in v) else "n/a"
rows = [
    ("per-call log_metric (client, calls/s)", "log_metric", "per_s"),
    ("log_batch of 1000 (client, batches/s)", "log_batch", "per_s"),
    ("create-log-terminate run (client, runs/s)", "run_lifecycle", "per_s"),
    ("16 concurrent writers (client, calls/s)", "writers", "per_s"),
    ("search_runs filter+order (client, median ms)", "search", "median_ms"),
    ("same search, Rust client (server, median ms)", "search-server", "median_ms"),
    ("log-batch ingestion (16 conns, metrics/s)", "log-batch", "metrics_per_s"),
    ("log-metric at 64 conns (requests/s)", "log-metric", "requests_per_s"),
]
print(f"{'row':<46}{'keel':>14}{'mlflow':>14}{'null':>14}")
for label, row, field in rows:
    print(f"{label:<46}" + "".join(f"{cell(s, row, field):>14}" for s in ("keel", "mlflow", "null")))
errs = {k: v["errors"] for k, v in R.items() if "errors" in v and v["errors"]}
if errs: print("load generator errors:", errs)
PYEOF
