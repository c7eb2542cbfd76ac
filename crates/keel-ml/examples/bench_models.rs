//! keel side of `bench/models.sh`: training time and batch throughput of
//! the built-in trainers, and per-call latency of keel's ONNX runtime.
//!
//! Run with: cargo run --release -p keel-ml --example bench_models -- DIR

use std::path::PathBuf;
use std::time::Instant;

use keel_ml::evaluate::{inputs, predict};
use keel_ml::onnx::{Model, Tensor, TensorData};
use keel_ml::table::Table;
use keel_ml::train::{
    train, Dataset, GradientBoostingParams, LogisticRegressionParams, TrainParams,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: bench_models DIR")?);
    let tr = Table::read_csv(&dir.join("train.csv"))?;
    let pr = Table::read_csv(&dir.join("predict.csv"))?;
    let data = Dataset::from_table(&tr, "y", None, &[])?;
    let mut out = serde_json::Map::new();
    for params in [
        TrainParams::LogisticRegression(LogisticRegressionParams::default()),
        TrainParams::GradientBoosting(GradientBoostingParams::default()),
    ] {
        let t = train(&data, &params)?;
        let model = Model::from_bytes(&t.onnx)?;
        let s = Instant::now();
        predict(&model, &t.features, &pr)?;
        let rps = pr.n_rows() as f64 / s.elapsed().as_secs_f64();
        out.insert(
            params.algorithm().into(),
            serde_json::json!({"train_s": t.train_seconds, "predict_100k_rows_per_s": rps}),
        );
    }
    let features: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    let mut lat = serde_json::Map::new();
    for name in ["lr", "rf50", "gb50"] {
        let model = Model::load(&dir.join(format!("{name}.onnx")))?;
        let x = inputs(&model, &features, &pr)?.remove(0);
        let TensorData::F32(all) = &x.data else {
            unreachable!()
        };
        let mut m = serde_json::Map::new();
        for b in [1usize, 100] {
            let t = Tensor::from_f32(b, 10, all[..b * 10].to_vec());
            for _ in 0..50 {
                model.run(vec![t.clone()])?;
            }
            let reps = if b == 1 { 20_000 } else { 2_000 };
            let s = Instant::now();
            for _ in 0..reps {
                model.run(vec![t.clone()])?;
            }
            m.insert(
                format!("b{b}_us"),
                (s.elapsed().as_secs_f64() / f64::from(reps) * 1e6).into(),
            );
        }
        let s = Instant::now();
        model.run(vec![x.clone()])?;
        m.insert(
            "batch_100k_rows_per_s".into(),
            (pr.n_rows() as f64 / s.elapsed().as_secs_f64()).into(),
        );
        lat.insert(name.into(), m.into());
    }
    out.insert("keel_runtime".into(), lat.into());
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
