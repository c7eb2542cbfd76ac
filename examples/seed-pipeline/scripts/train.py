"""Trains the logistic regression with plain SGD or momentum.

Writes models/model-<lr>-<opt>.json and metrics/train-<lr>-<opt>.json.
"""
import argparse
import json
import os

import model as m
import params

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--opt", choices=["sgd", "momentum"], required=True)
args = ap.parse_args()
lr_text = os.environ.get("LR", str(args.lr))
epochs = params.load()["train"]["epochs"]

xs, ys = m.load_csv("data/processed/train.csv")
model = {"weights": [0.0, 0.0], "bias": 0.0}
velocity = [0.0, 0.0, 0.0]
beta = 0.9 if args.opt == "momentum" else 0.0
for _ in range(epochs):
    grad = [0.0, 0.0, 0.0]
    for x, y in zip(xs, ys):
        err = m.predict_proba(model, x) - y
        grad[0] += err * x[0]
        grad[1] += err * x[1]
        grad[2] += err
    for i in range(3):
        velocity[i] = beta * velocity[i] + grad[i] / len(xs)
    model["weights"][0] -= args.lr * velocity[0]
    model["weights"][1] -= args.lr * velocity[1]
    model["bias"] -= args.lr * velocity[2]

os.makedirs("models", exist_ok=True)
os.makedirs("metrics", exist_ok=True)
tag = f"{lr_text}-{args.opt}"
json.dump(model, open(f"models/model-{tag}.json", "w"), indent=2)
metrics = {"train_accuracy": m.accuracy(model, xs, ys), "train_loss": m.log_loss(model, xs, ys)}
json.dump(metrics, open(f"metrics/train-{tag}.json", "w"), indent=2)
print(f"lr={lr_text} opt={args.opt}: {metrics}")
