"""A tiny logistic regression shared by train, evaluate and the tests."""
import csv
import math


def load_csv(path):
    xs, ys = [], []
    for r in csv.DictReader(open(path, encoding="utf-8")):
        xs.append([float(r["x1"]), float(r["x2"])])
        ys.append(int(r["label"]))
    return xs, ys


def predict_proba(model, x):
    z = model["bias"] + sum(w * v for w, v in zip(model["weights"], x))
    return 1.0 / (1.0 + math.exp(-z))


def accuracy(model, xs, ys):
    hits = sum((predict_proba(model, x) >= 0.5) == bool(y) for x, y in zip(xs, ys))
    return hits / len(ys)


def log_loss(model, xs, ys):
    eps = 1e-12
    total = 0.0
    for x, y in zip(xs, ys):
        p = min(max(predict_proba(model, x), eps), 1 - eps)
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return total / len(ys)
