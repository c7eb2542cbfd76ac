//! scikit-learn models exported with skl2onnx give the same outputs in
//! keel's runtime as in onnxruntime.

use keel_ml::onnx::{Model, Tensor, TensorData, Value};

use crate::util::{matrix, python, read_json, run_py};

#[test]
fn skl2onnx_exports_match_onnxruntime() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    run_py(&py, "export_sklearn.py", &[dir.path()]);
    let cases = read_json(&dir.path().join("cases.json"));
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = Model::load(&dir.path().join(format!("{name}.onnx")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (r, c, x) = matrix(&case["x"]);
        let input = Tensor::from_f32(r, c, x.iter().map(|&v| v as f32).collect());
        let outs = model
            .run_named(vec![(model.inputs().next().unwrap().name.clone(), input)])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (oname, value) in outs {
            let want = &case["outputs"][&oname];
            let diff = compare(&value, want);
            match diff {
                Ok(d) if d <= 1e-5 => {}
                Ok(d) => failures.push(format!("{name}/{oname}: max abs diff {d:e}")),
                Err(m) => failures.push(format!("{name}/{oname}: {m}")),
            }
        }
        eprintln!("{name}: ok ({:?})", case["ops"]);
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// Max abs difference between keel's output and onnxruntime's (labels
/// must be equal: any mismatch is reported as an error).
fn compare(v: &Value, want: &serde_json::Value) -> Result<f64, String> {
    match v {
        Value::Tensor(Tensor {
            data: TensorData::Str(s),
            ..
        }) => {
            let w: Vec<&str> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            if s.iter().map(String::as_str).eq(w.iter().copied()) {
                Ok(0.0)
            } else {
                Err(format!(
                    "string labels differ: {:?} vs {:?}",
                    &s[..5.min(s.len())],
                    &w[..5.min(w.len())]
                ))
            }
        }
        Value::SeqMap { keys, .. } => {
            let (_, _, got) = v.to_matrix_f64()?;
            let (_, _, w) = matrix(&want["values"]);
            let wk: Vec<String> = want["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            let gk: Vec<String> = match keys {
                keel_ml::onnx::MapKeys::I64(k) => k.iter().map(|k| k.to_string()).collect(),
                keel_ml::onnx::MapKeys::Str(k) => k.clone(),
            };
            if gk != wk {
                return Err(format!("zipmap keys {gk:?} vs {wk:?}"));
            }
            max_diff(&got, &w)
        }
        Value::Tensor(t) => {
            let got = t.to_f64()?;
            let (_, _, w) = matrix(want);
            if matches!(t.data, TensorData::I64(_)) {
                if got != w {
                    let bad = got.iter().zip(&w).filter(|(a, b)| a != b).count();
                    return Err(format!("{bad} integer labels differ"));
                }
                return Ok(0.0);
            }
            max_diff(&got, &w)
        }
    }
}

fn max_diff(a: &[f64], b: &[f64]) -> Result<f64, String> {
    if a.len() != b.len() {
        return Err(format!("{} values vs {}", a.len(), b.len()));
    }
    Ok(a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max))
}
