"""Run a model with onnxruntime on the feature columns of a CSV file.

Usage: ort_predict.py MODEL.onnx DATA.csv FEATURES(comma-separated) OUT.json
Writes {"label": [...], "probabilities": [[...], ...]}.
"""
import csv
import json
import sys

import numpy as np
import onnxruntime as ort

model, data, features, out = sys.argv[1:5]
features = features.split(",")
with open(data) as fh:
    rows = list(csv.DictReader(fh))
X = np.array([[float(r[f]) if r[f] != "" else np.nan for f in features] for r in rows], dtype=np.float32)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
label, proba = sess.run(["label", "probabilities"], {sess.get_inputs()[0].name: X})
json.dump({"label": [str(v) for v in label], "probabilities": proba.astype(float).tolist()}, open(out, "w"))
