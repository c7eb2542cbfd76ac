//! Built-in trainers: quality against scikit-learn on a held-out split,
//! the exported `model.onnx` gives the same predictions in onnxruntime as
//! in keel, and the model package loads in `mlflow.pyfunc` with the same
//! predictions again.

use keel_ml::evaluate::{evaluate, predict, EvalConfig, Predictions, TaskMetrics};
use keel_ml::onnx::Model;
use keel_ml::package::{self, KeelMetadata};
use keel_ml::table::Table;
use keel_ml::train::{
    train, Dataset, GradientBoostingParams, LogisticRegressionParams, TrainParams,
};

use crate::util::{matrix, python, read_json, run_py};

#[test]
fn trainers_match_sklearn_quality_and_onnxruntime_predictions() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    run_py(&py, "train_ref.py", &[dir.path()]);
    let reference = read_json(&dir.path().join("ref.json"));
    let train_t = Table::read_csv(&dir.path().join("train.csv")).unwrap();
    let test_t = Table::read_csv(&dir.path().join("test.csv")).unwrap();
    let exclude = vec!["sex".to_string(), "region".to_string()];
    let data = Dataset::from_table(&train_t, "default", None, &exclude).unwrap();
    let mut failures = Vec::new();
    for params in [
        TrainParams::LogisticRegression(LogisticRegressionParams::default()),
        TrainParams::GradientBoosting(GradientBoostingParams::default()),
    ] {
        let algo = params.algorithm();
        let trained = train(&data, &params).unwrap();
        let model = Model::from_bytes(&trained.onnx).unwrap();
        let cfg = EvalConfig {
            target: "default".into(),
            features: Some(trained.features.clone()),
            sensitive: vec!["sex".into()],
            slices: vec!["region".into()],
            ..Default::default()
        };
        let ev = evaluate(&model, &test_t, &cfg).unwrap();
        let TaskMetrics::Binary(m) = &ev.metrics else {
            panic!("binary expected")
        };
        let auc = m.roc_auc.unwrap();
        let sk = reference[algo].as_f64().unwrap();
        eprintln!(
            "{algo}: keel ROC AUC {auc:.4}, scikit-learn {sk:.4}, trained in {:.2}s",
            trained.train_seconds
        );
        if auc < sk - 0.01 {
            failures.push(format!(
                "{algo}: keel AUC {auc:.4} more than 0.01 below scikit-learn's {sk:.4}"
            ));
        }
        // onnxruntime on keel's model.onnx.
        let path = dir.path().join(format!("{algo}.onnx"));
        std::fs::write(&path, &trained.onnx).unwrap();
        let out = dir.path().join(format!("{algo}.ort.json"));
        let feats = trained.features.join(",");
        let out_s = out.to_str().unwrap().to_string();
        run_py(
            &py,
            "ort_predict.py",
            &[
                &path,
                &dir.path().join("test.csv"),
                std::path::Path::new(&feats),
                std::path::Path::new(&out_s),
            ],
        );
        let ort = read_json(&out);
        let (_, _, want) = matrix(&ort["probabilities"]);
        let Predictions::Classification { probs, classes } =
            predict(&model, &trained.features, &test_t).unwrap()
        else {
            panic!("classification expected")
        };
        let diff = probs
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("{algo}: max |keel - onnxruntime| = {diff:e}");
        if diff > 1e-5 || probs.len() != want.len() {
            failures.push(format!("{algo}: keel vs onnxruntime max abs diff {diff:e}"));
        }
        let ort_labels: Vec<String> = ort["label"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let keel_labels: Vec<String> = probs
            .chunks(2)
            .map(|r| classes[usize::from(r[1] > r[0])].clone())
            .collect();
        let bad = ort_labels
            .iter()
            .zip(&keel_labels)
            .filter(|(a, b)| a != b)
            .count();
        if bad > 0 {
            failures.push(format!(
                "{algo}: {bad} labels differ between keel and onnxruntime"
            ));
        }
        // The model package, as `keel train` writes it, through mlflow.pyfunc.
        let pkg = dir.path().join(format!("{algo}-package"));
        let meta = KeelMetadata {
            features: trained.features.clone(),
            target: Some("default".into()),
            classes: trained.classes.clone(),
            ..Default::default()
        };
        let example: Vec<Vec<f64>> = data.x[..2 * data.features.len()]
            .chunks(data.features.len())
            .map(|r| {
                r.iter()
                    .map(|&v| if v.is_nan() { 0.0 } else { v })
                    .collect()
            })
            .collect();
        package::write(&pkg, &trained.onnx, &meta, &example).unwrap();
        let out = dir.path().join(format!("{algo}.pyfunc.json"));
        run_py(
            &py,
            "pyfunc_predict.py",
            &[
                &pkg,
                &dir.path().join("test.csv"),
                std::path::Path::new(&feats),
                &out,
            ],
        );
        let pyfunc = read_json(&out);
        assert_eq!(pyfunc["loader"], "mlflow.onnx", "{algo}");
        let (_, _, got) = matrix(&pyfunc["probabilities"]);
        let diff = probs
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("{algo}: max |keel - mlflow.pyfunc| = {diff:e}");
        if diff > 1e-5 || probs.len() != got.len() {
            failures.push(format!(
                "{algo}: keel vs mlflow.pyfunc max abs diff {diff:e}"
            ));
        }
        let pyfunc_labels: Vec<String> = pyfunc["label"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if pyfunc_labels != keel_labels {
            failures.push(format!(
                "{algo}: labels differ between keel and mlflow.pyfunc"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
