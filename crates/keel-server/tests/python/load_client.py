"""Benchmark rows through the Python client; prints one JSON line per row.
Usage: load_client.py ROW (log_metric|log_batch|run_lifecycle|search|writers) SECONDS"""

import json
import sys
import threading
import time
import uuid

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

row, secs = sys.argv[1], float(sys.argv[2])
client = MlflowClient()
exp = client.create_experiment(f"bench-{row}-{uuid.uuid4().hex[:6]}")


def timed(fn):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < secs:
        n += fn()
    return n / (time.perf_counter() - t0)


if row == "log_metric":
    run = client.create_run(exp).info.run_id
    i = [0]

    def one():
        i[0] += 1
        client.log_metric(run, "m", 0.5, step=i[0])
        return 1

    print(json.dumps({"row": row, "per_s": timed(one), "unit": "calls/s"}))
elif row == "log_batch":
    run = client.create_run(exp).info.run_id
    ts = int(time.time() * 1000)
    i = [0]

    def batch():
        i[0] += 1
        client.log_batch(run, metrics=[Metric("m", float(k), ts, i[0] * 1000 + k) for k in range(1000)])
        return 1

    print(json.dumps({"row": row, "per_s": timed(batch), "unit": "batches of 1000/s"}))
elif row == "run_lifecycle":

    def lifecycle():
        r = client.create_run(exp).info.run_id
        client.log_metric(r, "m", 1.0)
        client.set_terminated(r)
        return 1

    print(json.dumps({"row": row, "per_s": timed(lifecycle), "unit": "runs/s"}))
elif row == "search":
    # 10,000 runs, then filtered+ordered searches.
    n_runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    import concurrent.futures as cf

    def make(k):
        r = client.create_run(exp).info.run_id
        # The null server returns no run id (and a canned search page).
        if r:
            client.log_batch(r, metrics=[Metric("acc", (k % 1000) / 1000, 0, 0)], params=[], tags=[])
        return r

    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(make, range(n_runs)))
    lat = []
    t_end = time.perf_counter() + secs
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        res = client.search_runs([exp], "metrics.acc > 0.9", order_by=["metrics.acc DESC"], max_results=100)
        lat.append(time.perf_counter() - t0)
        assert len(res) == 100
    lat.sort()
    print(json.dumps({"row": row, "median_ms": 1000 * lat[len(lat) // 2], "n": len(lat), "runs": n_runs, "experiment_id": exp}))
elif row == "writers":
    count = [0] * 16
    stop = time.perf_counter() + secs

    def writer(k):
        run = client.create_run(exp).info.run_id
        while time.perf_counter() < stop:
            count[k] += 1
            client.log_metric(run, "m", 1.0, step=count[k])

    ts = [threading.Thread(target=writer, args=(k,)) for k in range(16)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"row": row, "per_s": sum(count) / (time.perf_counter() - t0), "unit": "calls/s (16 threads)"}))
