"""Make a realistic synthetic credit dataset and fit scikit-learn's
counterparts of keel's built-in trainers.

Usage: train_ref.py OUTDIR

Writes OUTDIR/train.csv, OUTDIR/test.csv (features, `default` label,
`sex` and `region` columns) and OUTDIR/ref.json with scikit-learn's
held-out ROC AUC for each algorithm.
"""
import csv
import json
import sys

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

out = sys.argv[1]
rng = np.random.RandomState(7)
n = 8000
age = rng.uniform(18, 75, n)
income = np.exp(rng.normal(10.5, 0.6, n))
debt_ratio = np.clip(rng.beta(2, 5, n) + 0.1 * (age < 30), 0, 1.5)
late_payments = rng.poisson(0.4 + 0.8 * debt_ratio, n).astype(float)
months_employed = np.clip(rng.normal(60, 40, n), 0, None)
credit_lines = rng.poisson(5, n).astype(float)
sex = rng.choice(["f", "m"], n)
region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
z = (
    -2.0
    + 2.5 * debt_ratio
    + 0.7 * late_payments
    - 0.6 * (np.log(income) - 10.5)
    - 0.01 * months_employed
    + 0.04 * np.maximum(30 - age, 0)
    + 0.8 * (late_payments >= 2) * (debt_ratio > 0.5)
    + 0.3 * (region == "south")
)
y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
income[rng.uniform(size=n) < 0.05] = np.nan
months_employed[rng.uniform(size=n) < 0.03] = np.nan
X = np.column_stack([age, income, debt_ratio, late_payments, months_employed, credit_lines])
names = ["age", "income", "debt_ratio", "late_payments", "months_employed", "credit_lines"]
split = 6000


def write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names + ["sex", "region", "default"])
        for i in rows:
            w.writerow(["" if np.isnan(v) else repr(float(v)) for v in X[i]] + [sex[i], region[i], int(y[i])])


write(f"{out}/train.csv", range(split))
write(f"{out}/test.csv", range(split, n))
Xtr, Xte, ytr, yte = X[:split], X[split:], y[:split], y[split:]
lr = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(Xtr, ytr)
gb = HistGradientBoostingClassifier(early_stopping=False, random_state=0).fit(Xtr, ytr)
ref = {
    "logistic_regression": roc_auc_score(yte, lr.predict_proba(Xte)[:, 1]),
    "gradient_boosting": roc_auc_score(yte, gb.predict_proba(Xte)[:, 1]),
}
json.dump(ref, open(f"{out}/ref.json", "w"))
print(ref)
