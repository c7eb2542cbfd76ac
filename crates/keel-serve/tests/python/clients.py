"""Drives keel serve with real clients and compares with onnxruntime.

usage: clients.py HOST:PORT MODEL.onnx
"""
import io
import json
import sys
import urllib.request

import numpy as np
import onnxruntime as ort
import pandas as pd
import tritonclient.http as httpclient

addr, model_path = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
x = np.column_stack([rng.normal(50, 20, 64), rng.normal(40, 10, 64), rng.integers(0, 24, 64)]).astype(np.float32)
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
ref = sess.run(None, {sess.get_inputs()[0].name: x})
ref_label, ref_proba = ref[0], ref[1]

# tritonclient: the default (binary) path and the JSON path.
client = httpclient.InferenceServerClient(addr)
assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("fraud")
meta = client.get_model_metadata("fraud")
assert meta["inputs"][0]["shape"] == [-1, 3], meta
for binary in (True, False):
    inp = httpclient.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in meta["outputs"]]
    res = client.infer("fraud", [inp], outputs=outs, request_id="t1")
    label = res.as_numpy(meta["outputs"][0]["name"])
    proba = res.as_numpy(meta["outputs"][1]["name"])
    assert (label == ref_label).all(), (label, ref_label)
    assert np.abs(proba - ref_proba).max() < 1e-5, np.abs(proba - ref_proba).max()
res = client.infer("fraud", [inp])  # outputs omitted: binary_data_output
assert (res.as_numpy(meta["outputs"][0]["name"]) == ref_label).all()
try:
    bad = httpclient.InferInput("X", [1, 2], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 2), np.float32))
    client.infer("fraud", [bad])
    raise SystemExit("expected an error")
except httpclient.InferenceServerException as e:
    assert e.status() == "400", e

# MLflow scoring format: JSON (pandas split, as MLflow's client sends) and CSV.
df = pd.DataFrame(x.astype(np.float64), columns=["amount", "age", "hour"])
def post(body, ctype):
    req = urllib.request.Request(f"http://{addr}/invocations", data=body, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())
split = post(json.dumps({"dataframe_split": json.loads(df.to_json(orient="split"))}).encode(), "application/json")
records = post(json.dumps({"dataframe_records": json.loads(df.to_json(orient="records"))}).encode(), "application/json")
buf = io.StringIO(); df.to_csv(buf, index=False)
csv = post(buf.getvalue().encode(), "text/csv")
for got in (split, records, csv):
    assert got["predictions"] == ref_label.tolist(), (got["predictions"][:5], ref_label[:5])
print("OK", len(x), "rows; tritonclient binary+json and MLflow json+csv match onnxruntime")
