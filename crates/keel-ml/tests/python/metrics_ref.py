"""Reference metrics from scikit-learn and fairlearn.

Usage: metrics_ref.py CASES.json OUT.json

Each case has binary labels `y`, positive-class scores `p`, optional
weights `w`, a `threshold`, a sensitive column `s`, a multiclass block and
a regression block. The output holds, per case, what scikit-learn and
fairlearn compute for the same inputs.
"""
import json
import sys

import numpy as np
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    selection_rate,
)

cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    y = np.array(c["y"], dtype=int)
    p = np.array(c["p"], dtype=float)
    w = None if c["w"] is None else np.array(c["w"], dtype=float)
    pred = (p >= c["threshold"]).astype(int)
    s = np.array(c["s"])
    r = {
        "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        "precision": skm.precision_score(y, pred, sample_weight=w, zero_division=0),
        "recall": skm.recall_score(y, pred, sample_weight=w, zero_division=0),
        "f1": skm.f1_score(y, pred, sample_weight=w, zero_division=0),
        "roc_auc": skm.roc_auc_score(y, p, sample_weight=w),
        "pr_auc": skm.average_precision_score(y, p, sample_weight=w),
        "log_loss": skm.log_loss(y, p, sample_weight=w),
        "confusion": skm.confusion_matrix(y, pred, sample_weight=w).ravel().tolist(),
        "dp_diff": demographic_parity_difference(y, pred, sensitive_features=s, sample_weight=w),
        "dp_ratio": demographic_parity_ratio(y, pred, sensitive_features=s, sample_weight=w),
        "eo_diff": equalized_odds_difference(y, pred, sensitive_features=s, sample_weight=w),
        "eopp_diff": equal_opportunity_difference(y, pred, sensitive_features=s, sample_weight=w),
    }
    mf = MetricFrame(
        metrics=selection_rate, y_true=y, y_pred=pred, sensitive_features=s,
        sample_params=None if w is None else {"sample_weight": w},
    )
    r["selection_rate_by_group"] = {str(k): float(v) for k, v in mf.by_group.items()}
    # Per-slice metrics: the slice where one class is absent has no ROC AUC.
    r["slices"] = {}
    for g in sorted(set(s)):
        m = s == g
        ws = None if w is None else w[m]
        entry = {
            "accuracy": skm.accuracy_score(y[m], pred[m], sample_weight=ws),
            "recall": skm.recall_score(y[m], pred[m], sample_weight=ws, zero_division=0),
            "precision": skm.precision_score(y[m], pred[m], sample_weight=ws, zero_division=0),
        }
        if len(set(y[m])) == 2:
            entry["roc_auc"] = skm.roc_auc_score(y[m], p[m], sample_weight=ws)
        r["slices"][str(g)] = entry
    mc = c["multiclass"]
    ym = np.array(mc["y"], dtype=int)
    probs = np.array(mc["probs"], dtype=float).reshape(len(ym), mc["k"])
    pm = probs.argmax(axis=1)
    r["multiclass"] = {
        "accuracy": skm.accuracy_score(ym, pm, sample_weight=w),
        "precision_macro": skm.precision_score(ym, pm, average="macro", sample_weight=w, zero_division=0),
        "recall_macro": skm.recall_score(ym, pm, average="macro", sample_weight=w, zero_division=0),
        "f1_macro": skm.f1_score(ym, pm, average="macro", sample_weight=w, zero_division=0),
        "roc_auc_ovr": skm.roc_auc_score(ym, probs, multi_class="ovr", average="macro", sample_weight=w),
        "log_loss": skm.log_loss(ym, probs, sample_weight=w, labels=list(range(mc["k"]))),
    }
    rg = c["regression"]
    yr, pr = np.array(rg["y"]), np.array(rg["p"])
    r["regression"] = {
        "rmse": float(np.sqrt(skm.mean_squared_error(yr, pr, sample_weight=w))),
        "mae": skm.mean_absolute_error(yr, pr, sample_weight=w),
        "r2": skm.r2_score(yr, pr, sample_weight=w),
        "mape": skm.mean_absolute_percentage_error(yr, pr, sample_weight=w),
    }
    out.append(r)
json.dump(out, open(sys.argv[2], "w"))
