"""scikit-learn / onnxruntime side of bench/models.sh.

Usage: models_ref.py DIR   (writes DIR/train.csv, DIR/predict.csv,
DIR/{lr,rf50,gb50}.onnx and prints a JSON object of timings)
"""
import csv
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

d = sys.argv[1]
rng = np.random.RandomState(0)
F = 10


def make(n):
    X = rng.randn(n, F)
    z = X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + 0.3 * np.abs(X[:, 4]) - 0.3
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
    return X, y


def write(path, X, y):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"x{i}" for i in range(F)] + ["y"])
        for row, label in zip(X, y):
            w.writerow([f"{v:.6f}" for v in row] + [int(label)])


Xtr, ytr = make(20000)
Xp, yp = make(100000)
write(f"{d}/train.csv", Xtr, ytr)
write(f"{d}/predict.csv", Xp, yp)
Xtr = np.round(Xtr, 6)
Xp32 = np.round(Xp, 6).astype(np.float32)
res = {}
for name, est in [
    ("logistic_regression", make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())),
    ("gradient_boosting", HistGradientBoostingClassifier(early_stopping=False)),
]:
    t = time.perf_counter()
    est.fit(Xtr, ytr)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    est.predict_proba(Xp32)
    pred = time.perf_counter() - t
    res[name] = {"train_s": fit, "predict_100k_rows_per_s": len(Xp32) / pred}

models = {
    "lr": make_pipeline(StandardScaler(), LogisticRegression()),
    "rf50": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0),
    "gb50": GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0),
}
lat = {}
for name, m in models.items():
    m.fit(Xtr, ytr)
    last = m.steps[-1][1] if hasattr(m, "steps") else m
    onx = to_onnx(m, Xtr[:1].astype(np.float32), options={id(last): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    path = f"{d}/{name}.onnx"
    open(path, "wb").write(onx.SerializeToString())
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    iname = s.get_inputs()[0].name
    lat[name] = {}
    for b in (1, 100):
        x = Xp32[:b]
        for _ in range(50):
            s.run(None, {iname: x})
        reps = 2000 if b == 1 else 300
        t = time.perf_counter()
        for _ in range(reps):
            s.run(None, {iname: x})
        lat[name][f"b{b}_us"] = (time.perf_counter() - t) / reps * 1e6
    so_all = ort.SessionOptions()
    s2 = ort.InferenceSession(path, so_all, providers=["CPUExecutionProvider"])
    t = time.perf_counter()
    s2.run(None, {iname: Xp32})
    lat[name]["batch_100k_rows_per_s"] = len(Xp32) / (time.perf_counter() - t)
res["onnxruntime"] = lat
print(json.dumps(res))
