"""Splits data/raw/points.csv into data/processed/{train,test}.csv, standardised."""
import csv
import os
import random

import params

p = params.load()["prepare"]
rows = list(csv.DictReader(open("data/raw/points.csv", encoding="utf-8")))
random.Random(p["seed"]).shuffle(rows)
n_test = int(len(rows) * p["test_fraction"])
test, train = rows[:n_test], rows[n_test:]

cols = ["x1", "x2"]
mean = {c: sum(float(r[c]) for r in train) / len(train) for c in cols}
std = {c: (sum((float(r[c]) - mean[c]) ** 2 for r in train) / len(train)) ** 0.5 for c in cols}

os.makedirs("data/processed", exist_ok=True)
for name, part in (("train", train), ("test", test)):
    with open(f"data/processed/{name}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols + ["label"])
        for r in part:
            w.writerow([f"{(float(r[c]) - mean[c]) / std[c]:.6f}" for c in cols] + [r["label"]])
print(f"prepared {len(train)} training and {len(test)} test rows")
