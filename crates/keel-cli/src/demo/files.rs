//! The project files `keel demo` writes: a GitLab CI pipeline, its
//! scripts, the validation gates and the data contract. They are plain
//! files a user can read, edit and rerun with the ordinary commands.

use super::fraud;

/// The pipeline: prepare → train (2×2 sweep) → evaluate → gate → register → deploy.
///
/// `register` is only present when `keel models` exists in this binary
/// (it is then `allow_failure`, so the summary can say what happened).
pub fn pipeline(with_registry: bool) -> String {
    let features = "transaction_id,merchant_category,age_group";
    let mut s = format!(
        r#"# keel demo pipeline: prepare -> train (a 2x2 sweep) -> evaluate -> gate -> register -> deploy.
# A plain GitLab CI file; `keel run` runs it locally and skips jobs whose
# inputs (the `.keel` deps and params) did not change.

.keel:
  version: 1
  jobs:
    prepare:
      deps: [data/raw/transactions.csv]
      outs: [data/prepared/]
    train:
      deps: [data/prepared/train.csv]
      outs: ["models/gbt-lr${{LEARNING_RATE}}-leaves${{MAX_LEAF_NODES}}/"]
    evaluate:
      deps: [scripts/evaluate.sh, models/, data/prepared/test.csv]
      outs: [selected/, reports/]
      metrics: [selected/metrics.json]
    gate:
      deps: [gates.yaml, selected/model/, data/prepared/test.csv]
      metrics: [gate/gates.json]

stages: [prepare, train, evaluate, gate, register, deploy]

prepare:
  stage: prepare
  script:
    - mkdir -p data/prepared
    # A deterministic 80/20 split by row number.
    - awk 'NR == 1 || NR % 5 != 0' data/raw/transactions.csv > data/prepared/train.csv
    - awk 'NR == 1 || NR % 5 == 0' data/raw/transactions.csv > data/prepared/test.csv
    - wc -l data/prepared/train.csv data/prepared/test.csv
  artifacts:
    paths: [data/prepared/]

train:
  stage: train
  needs: [prepare]
  parallel:
    matrix:
      - LEARNING_RATE: ["0.1", "0.3"]
        MAX_LEAF_NODES: ["7", "31"]
  script:
    - >-
      keel train --data data/prepared/train.csv --target is_fraud
      --algorithm gradient_boosting --exclude {features}
      --set learning_rate=$LEARNING_RATE --set max_leaf_nodes=$MAX_LEAF_NODES --set max_iter=60
      --out models/gbt-lr$LEARNING_RATE-leaves$MAX_LEAF_NODES
  artifacts:
    paths: ["models/gbt-lr${{LEARNING_RATE}}-leaves${{MAX_LEAF_NODES}}/"]

evaluate:
  stage: evaluate
  needs: [train]
  script:
    - sh scripts/evaluate.sh
  artifacts:
    paths: [selected/, reports/]

gate:
  stage: gate
  needs: [evaluate]
  script:
    - mkdir -p gate
    - keel gate selected/model data/prepared/test.csv --gates gates.yaml --json > gate/gates.json; status=$?; cat gate/gates.json; exit $status
"#
    );
    if with_registry {
        s.push_str(
            r#"
register:
  stage: register
  needs: [gate]
  allow_failure: true
  script:
    - mkdir -p registry
    - keel models register fraud-detector selected/model --json > registry/register.json
    - cat registry/register.json
"#,
        );
    }
    s.push_str(
        r#"
deploy:
  stage: deploy
  needs: [gate]
  environment: production
  script:
    - sh scripts/deploy.sh
"#,
    );
    s
}

/// Evaluates every candidate of the sweep and keeps the best ROC AUC.
pub const EVALUATE_SH: &str = r#"#!/bin/sh
# Evaluate every candidate of the sweep on the held-out split (metrics,
# slices by merchant category, fairness by age group, an HTML report each)
# and copy the best ROC AUC to selected/model.
set -eu
rm -rf selected reports
mkdir -p selected reports
best=""
best_auc=-1
for m in models/*/; do
  name=$(basename "$m")
  keel evaluate "$m" data/prepared/test.csv --slice merchant_category --sensitive age_group \
    --out "reports/eval-$name.json" --html "reports/eval-$name.html" > /dev/null
  auc=$(grep -o '"roc_auc": *[0-9.eE+-]*' "reports/eval-$name.json" | head -n 1 | sed 's/.*: *//')
  echo "$name roc_auc=$auc"
  if awk -v a="$auc" -v b="$best_auc" 'BEGIN { exit !(a > b) }'; then
    best="$name"
    best_auc="$auc"
  fi
done
cp -R "models/$best" selected/model
printf '{"candidate": "%s", "roc_auc": %s}\n' "$best" "$best_auc" > selected/metrics.json
echo "selected $best (roc_auc $best_auc)"
"#;

/// Deploys selected/model as deploy/production (a symlink swapped
/// atomically, so a polling server never sees a half-written model).
pub const DEPLOY_SH: &str = r#"#!/bin/sh
# Deploy: deploy/production -> deploy/vN, swapped atomically with a rename.
set -eu
mkdir -p deploy
if [ -e deploy/production ] && diff -r -q selected/model deploy/production/ > /dev/null 2>&1; then
  echo "production already serves this model ($(readlink deploy/production))"
  exit 0
fi
n=1
while [ -e "deploy/v$n" ]; do n=$((n + 1)); done
cp -R selected/model "deploy/v$n"
ln -sfn "v$n" deploy/production.next
mv -T deploy/production.next deploy/production
echo "deployed: deploy/production -> v$n"
"#;

/// Gates: a quality floor, no regression against production, fairness.
pub const GATES_YAML: &str = r#"# Validation gates (`keel gate`): every gate must pass before deploy.
thresholds:
  roc_auc: {min: 0.75}
no_regression:
  baseline: deploy/production     # the model in production, when there is one
  metrics: [roc_auc]
  tolerance: 0.02
fairness:
  age_group:
    demographic_parity_difference: {max: 0.1}
"#;

/// The contract the raw data is validated against.
pub fn contract() -> String {
    let mut s = String::from(
        r#"# Data contract for the demo's transactions (`keel data validate`).
name: transactions
rows: {min: 1000}
strict: true
columns:
  - {name: transaction_id, type: integer, nullable: false, unique: true}
  - {name: amount, type: number, nullable: false, min: 0, max: 100000}
  - {name: hour, type: integer, nullable: false, min: 0, max: 23}
  - {name: customer_tenure_days, type: number, nullable: false, min: 0}
  - {name: tx_count_24h, type: integer, nullable: false, min: 0}
  - {name: distance_km, type: number, nullable: false, min: 0}
"#,
    );
    for c in fraud::feature_columns()
        .iter()
        .filter(|c| c.starts_with("mc_"))
    {
        s.push_str(&format!(
            "  - {{name: {c}, type: integer, nullable: false, min: 0, max: 1}}\n"
        ));
    }
    s.push_str(
        r#"  - {name: merchant_category, type: string, nullable: false, allowed: [grocery, fuel, restaurants, travel, electronics, online, gaming]}
  - {name: age_group, type: string, nullable: false, allowed: ["18-30", "31-50", "51+"]}
  - {name: is_fraud, type: integer, nullable: false, min: 0, max: 1}
"#,
    );
    s
}

/// `monitor.yaml`: windows of the server's prediction log against the
/// training split; the alert fires as soon as any feature drifts (the
/// demo's shift moves the amounts most; the one-hot merchant columns
/// rarely cross the detector's threshold on their own). Its action is `log`: the demo itself reruns the pipeline when the
/// alert fires (deterministic, and narrated).
pub const MONITOR_YAML: &str = r#"# keel demo monitor: `keel monitor --once --json` evaluates the last window.
log: .keel/predictions
model: deploy/production
reference: data/prepared/train.csv
window: 5s
min_rows: 30
rules:
  - name: feature drift
    metric: drift_share
    comparison: ">"
    threshold: 0.0
    for: 1
    severity: critical
    actions:
      - log
"#;
