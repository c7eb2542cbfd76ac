"""Load a keel model package with mlflow.pyfunc and predict with it.

Usage: pyfunc_predict.py PACKAGE_DIR DATA.csv FEATURES(comma-separated) OUT.json
Writes {"label": [...], "probabilities": [[...], ...], "loader": "..."}.
"""
import csv
import json
import sys

import mlflow.pyfunc
import numpy as np

package, data, features, out = sys.argv[1:5]
features = features.split(",")
with open(data) as fh:
    rows = list(csv.DictReader(fh))
X = np.array([[float(r[f]) if r[f] != "" else np.nan for f in features] for r in rows], dtype=np.float32)
model = mlflow.pyfunc.load_model(package)
# The package's signature is a tensor spec, so pyfunc takes the matrix
# as is and returns the ONNX outputs by name.
pred = model.predict(X)
json.dump(
    {
        "label": [str(v) for v in np.asarray(pred["label"]).reshape(-1)],
        "probabilities": np.asarray(pred["probabilities"]).astype(float).tolist(),
        "loader": model.metadata.flavors["python_function"]["loader_module"],
    },
    open(out, "w"),
)
