"""Reference drift values from Evidently 0.7 and scipy, for keel's parity test.

Usage: drift_reference.py MANIFEST.json OUT.json

MANIFEST is a list of cases {"name", "reference", "current"} (Parquet files).
For each case this runs Evidently's default `DataDriftPreset` (the verdicts,
method choice and dataset drift) and, for every column, Evidently's own
stat-test functions for each applicable method (the numbers keel must match),
plus scipy's `ks_2samp` statistic.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from evidently import Report
from evidently.core.datasets import infer_column_type
from evidently.legacy.core import ColumnType
from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
from evidently.legacy.calculations.stattests.kl_div import _kl_div
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
from evidently.presets import DataDriftPreset

warnings.filterwarnings("ignore")

DISPLAY_TO_NAME = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
}


def clean(s):
    return s.replace([-np.inf, np.inf], np.nan).dropna()


def num(x):
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def case(ref, cur):
    snap = Report([DataDriftPreset()], include_tests=True).run(cur, ref).dict()
    out = {"columns": {}}
    for m in snap["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            out["count"] = m["value"]["count"]
            out["share"] = m["value"]["share"]
        elif cfg["type"].endswith("ValueDrift"):
            name = DISPLAY_TO_NAME[cfg["method"]]
            out["columns"][cfg["column"]] = {
                "method": name,
                "threshold": cfg["threshold"],
                "score": num(m["value"]),
            }
    drifted = {}
    for t in snap["tests"]:
        for col in out["columns"]:
            if t["name"] == f"Value Drift for column {col}":
                drifted[col] = t["status"] == "FAIL"
    for col, v in out["columns"].items():
        v["drifted"] = drifted[col]
        r, c = clean(ref[col]), clean(cur[col])
        kind = infer_column_type(cur[col])
        v["kind"] = kind.value
        extra = {}
        ft = ColumnType.Numerical if kind.value == "num" else ColumnType.Categorical
        extra["psi"] = num(_psi(r, c, ft, 0.1)[0])
        extra["jensenshannon"] = num(_jensenshannon(r, c, ft, 0.1)[0])
        extra["kl_div"] = num(_kl_div(r, c, ft, 0.1)[0])
        extra["chisquare"] = num(_chi_stat_test(r, c, ft, 0.05)[0])
        if kind.value == "num":
            extra["wasserstein"] = num(_wasserstein_distance_norm(r, c, ft, 0.1)[0])
            extra["ks"] = num(_ks_stat_test(r, c, ft, 0.05)[0])
            extra["ks_statistic"] = num(stats.ks_2samp(r, c).statistic)
        if pd.concat([r, c]).nunique() <= 2:
            extra["z"] = num(_z_stat_test(r, c, ft, 0.05)[0])
        v["extra"] = extra
    out["dataset_drift"] = out["share"] >= 0.5
    return out


def main():
    manifest = json.load(open(sys.argv[1]))
    results = {}
    for c in manifest:
        ref = pd.read_parquet(c["reference"])
        cur = pd.read_parquet(c["current"])
        results[c["name"]] = case(ref, cur)
    json.dump(results, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
