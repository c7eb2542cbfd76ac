"""Export scikit-learn models with skl2onnx and record onnxruntime's outputs.

Usage: export_sklearn.py OUTDIR

Writes OUTDIR/<case>.onnx and OUTDIR/cases.json: for each case, the input
matrix and every output of onnxruntime (labels, probabilities or values),
so the Rust test can compare keel's runtime against onnxruntime.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, MinMaxScaler, Normalizer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

out = sys.argv[1]
rng = np.random.RandomState(42)
n, f = 600, 6
X = rng.randn(n, f).astype(np.float32)
X[:, 2] *= 10
X[:, 3] += 5
logit = 1.5 * X[:, 0] - X[:, 1] + 0.1 * X[:, 2] + 0.5 * X[:, 0] * X[:, 4]
y_bin = (logit + rng.randn(n) > 0).astype(np.int64)
y_multi = np.digitize(logit + 0.5 * rng.randn(n), [-1.0, 1.0]).astype(np.int64)
y_reg = (logit + 0.3 * rng.randn(n)).astype(np.float64)
X_nan = X.copy()
X_nan[rng.rand(n, f) < 0.05] = np.nan
y_str = np.array(["no", "yes"])[y_bin]

cases = []


def add(name, model, Xfit, y, zipmap=False):
    model.fit(Xfit, y)
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(last): {"zipmap": False}} if hasattr(last, "predict_proba") and not zipmap else None
    onx = to_onnx(model, Xfit[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    path = f"{out}/{name}.onnx"
    with open(path, "wb") as fh:
        fh.write(onx.SerializeToString())
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    Xt = Xfit[:200]
    res = sess.run(None, {sess.get_inputs()[0].name: Xt})
    outputs = {}
    for o, v in zip(sess.get_outputs(), res):
        if isinstance(v, list):  # ZipMap: list of dicts
            keys = list(v[0].keys())
            outputs[o.name] = {"keys": [str(k) for k in keys], "values": [[float(d[k]) for k in keys] for d in v]}
        elif v.dtype.kind in "OU":
            outputs[o.name] = [str(s) for s in v.ravel()]
        else:
            outputs[o.name] = np.asarray(v, dtype=np.float64).reshape(len(Xt), -1).tolist()
    ops = sorted({nd.op_type for nd in onx.graph.node})
    cases.append({"name": name, "x": np.where(np.isnan(Xt), None, Xt).tolist(), "outputs": outputs, "ops": ops})


add("scaler_logreg", make_pipeline(StandardScaler(), LogisticRegression()), X, y_bin)
add("scaler_logreg_multi", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), X, y_multi)
add("scaler_logreg_zipmap", make_pipeline(StandardScaler(), LogisticRegression()), X, y_bin, zipmap=True)
add("logreg_strings", LogisticRegression(), X, y_str)
add("imputer_minmax_logreg", make_pipeline(SimpleImputer(), MinMaxScaler(), LogisticRegression()), X_nan, y_bin)
add("normalizer_binarizer_logreg", make_pipeline(Normalizer(), Binarizer(threshold=0.1), LogisticRegression()), X, y_multi)
add("decision_tree", DecisionTreeClassifier(max_depth=5, random_state=0), X, y_multi)
add("random_forest", RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0), X, y_bin)
add("random_forest_multi", RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0), X, y_multi)
add("gradient_boosting", GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0), X, y_bin)
add("gradient_boosting_multi", GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0), X, y_multi)
add("gradient_boosting_regressor", GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0), X, y_reg)
add("random_forest_regressor", RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0), X, y_reg)
add("linear_regression", LinearRegression(), X, y_reg)

with open(f"{out}/cases.json", "w") as fh:
    json.dump(cases, fh)
print(f"exported {len(cases)} cases to {out}")
