"""Checks every trained model before evaluation and deploy."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import model as m  # noqa: E402


def test_four_models_were_trained():
    assert len(glob.glob("models/model-*.json")) == 4


def test_models_beat_chance_on_test_split():
    xs, ys = m.load_csv("data/processed/test.csv")
    for path in glob.glob("models/model-*.json"):
        assert m.accuracy(json.load(open(path)), xs, ys) > 0.6, path
