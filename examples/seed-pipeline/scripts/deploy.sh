#!/usr/bin/env bash
# "Deploys" the best model: copies it to deploy/ with its evaluation report.
set -euo pipefail
best=$(python3 -c 'import json; print(json.load(open("reports/eval.json"))["best_model"])')
mkdir -p deploy
cp "models/$best" deploy/model.json
cp reports/eval.json deploy/eval.json
echo "deployed $best (pipeline ${CI_PIPELINE_ID:-local}, commit ${CI_COMMIT_SHORT_SHA:-none})"
