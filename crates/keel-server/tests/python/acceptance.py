"""The issue's acceptance list, run with the unmodified mlflow client against
the keel server at MLFLOW_TRACKING_URI. Exits non-zero on the first failure."""

import os
import tempfile
import uuid

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

suffix = uuid.uuid4().hex[:8]
exp_name = f"acceptance-{suffix}"
model_name = f"clf-{suffix}"
client = MlflowClient()

exp_id = mlflow.set_experiment(exp_name).experiment_id

X, y = make_classification(n_samples=200, n_features=6, random_state=0)
model = LogisticRegression(C=0.5, max_iter=200).fit(X, y)

with mlflow.start_run(run_name="train") as run:
    run_id = run.info.run_id
    mlflow.log_param("alpha", "0.1")
    mlflow.log_params({"C": 0.5, "solver": "lbfgs"})
    for step in range(10):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metric("acc", float(model.score(X, y)))
    mlflow.log_metrics({"f1": 0.8, "nan_metric": float("nan")})
    mlflow.set_tag("team", "keel")
    mlflow.set_tags({"stage": "dev", "mlflow.note.content": "acceptance"})
    mlflow.log_text("hello keel\n", "notes/hello.txt")
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "sub"))
        for name, text in [("a.txt", "A"), ("sub/b.txt", "B" * 1000)]:
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        mlflow.log_artifacts(d, artifact_path="dir")
    info = mlflow.sklearn.log_model(model, name="model", registered_model_name=model_name)

# Artifacts round-trip.
with tempfile.TemporaryDirectory() as d:
    p = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes/hello.txt", dst_path=d)
    assert open(p).read() == "hello keel\n", "text artifact"
    p = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="dir", dst_path=d)
    assert open(os.path.join(p, "a.txt")).read() == "A"
    assert open(os.path.join(p, "sub", "b.txt")).read() == "B" * 1000
names = sorted(f.path for f in client.list_artifacts(run_id))
assert names == ["dir", "notes"], names

# Registry: the version created by log_model, an alias.
versions = client.search_model_versions(f"name = '{model_name}'")
assert len(versions) == 1, versions
version = versions[0].version
client.set_registered_model_alias(model_name, "champion", version)
assert client.get_model_version_by_alias(model_name, "champion").version == version

# Search with filters on metrics, params, tags, and an order-by.
other = mlflow.start_run(run_name="other")
mlflow.log_param("alpha", "0.2")
mlflow.log_metric("acc", 0.1)
mlflow.set_tag("team", "keel")
mlflow.end_run()
found = mlflow.search_runs(
    experiment_ids=[exp_id],
    filter_string="metrics.acc > 0.5 and params.alpha = '0.1' and tags.team = 'keel'",
    order_by=["metrics.acc DESC"],
    output_format="list",
)
assert [r.info.run_id for r in found] == [run_id], found
ordered = mlflow.search_runs(
    experiment_ids=[exp_id], filter_string="tags.team = 'keel'", order_by=["metrics.acc ASC"], output_format="list"
)
assert [r.info.run_id for r in ordered] == [other.info.run_id, run_id], ordered
assert found[0].data.params["alpha"] == "0.1"
assert found[0].data.tags["team"] == "keel"

# Metric history.
hist = client.get_metric_history(run_id, "loss")
assert [m.step for m in hist] == list(range(10)), hist
assert abs(hist[3].value - 0.25) < 1e-12

# Loading the model back, by alias and by run.
expected = model.predict(X)
by_alias = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
assert np.array_equal(by_alias.predict(X), expected), "models:/NAME@ALIAS predictions"
by_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
assert np.array_equal(by_run.predict(X), expected), "runs:/ predictions"
by_version = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
assert np.array_equal(by_version.predict(X), expected), "models:/NAME/VERSION predictions"

# A deleted run is gone from search and restorable.
client.delete_run(other.info.run_id)
ids = [r.info.run_id for r in mlflow.search_runs(experiment_ids=[exp_id], output_format="list")]
assert other.info.run_id not in ids and run_id in ids, ids
client.restore_run(other.info.run_id)
ids = [r.info.run_id for r in mlflow.search_runs(experiment_ids=[exp_id], output_format="list")]
assert other.info.run_id in ids, ids

# A duplicate experiment name.
try:
    client.create_experiment(exp_name)
    raise AssertionError("duplicate experiment accepted")
except MlflowException as e:
    assert e.error_code == "RESOURCE_ALREADY_EXISTS", e.error_code

# Param immutability and a missing run map to MLflow's codes.
try:
    client.log_param(run_id, "alpha", "0.3")
    raise AssertionError("param overwrite accepted")
except MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code
try:
    client.get_run("0" * 32)
    raise AssertionError("missing run found")
except MlflowException as e:
    assert e.error_code == "RESOURCE_DOES_NOT_EXIST", e.error_code

# Registry odds and ends: stages, tags, rename, search.
client.transition_model_version_stage(model_name, version, "Staging")
assert client.get_latest_versions(model_name, stages=["Staging"])[0].version == version
client.set_registered_model_tag(model_name, "owner", "keel")
assert [m.name for m in client.search_registered_models(f"name = '{model_name}'")] == [model_name]
print("OK")
