//! The protocols through the router, and signature validation (4xx).

use keel_serve::predlog::LogConfig;
use keel_serve::server::{ServeConfig, VERSION_HEADER};
use serde_json::json;

use crate::util::*;

fn setup() -> (
    tempfile::TempDir,
    std::sync::Arc<keel_serve::server::AppState>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = make_package(&tmp.path().join("fraud"), 1.0);
    let mut c = ServeConfig::new(pkg.to_string_lossy());
    c.log = Some(LogConfig::new(tmp.path().join("log")));
    let s = state(c);
    (tmp, s)
}

#[tokio::test]
async fn health_metadata_and_v2_json_infer() {
    let (_t, s) = setup();
    assert_eq!(call(&s, get("/v2/health/live")).await.status, 200);
    assert_eq!(call(&s, get("/v2/health/ready")).await.status, 200);
    assert_eq!(call(&s, get("/v2/models/fraud/ready")).await.status, 200);
    let meta = call(&s, get("/v2/models/fraud")).await.json();
    assert_eq!(meta["inputs"][0]["datatype"], "FP32");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 3]));
    let v = meta["versions"][0].as_str().unwrap().to_string();
    let body = json!({"id": "r1", "inputs": [{"name": "X", "shape": [2, 3], "datatype": "FP32",
        "data": [[50.0, 40.0, 3.0], [200.0, 80.0, 4.0]]}]});
    let r = call(&s, post("/v2/models/fraud/infer", None, body.to_string())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers[VERSION_HEADER], v.as_str());
    let j = r.json();
    assert_eq!(j["id"], "r1");
    assert_eq!(j["model_version"], v.as_str());
    let label = j["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["datatype"] == "INT64")
        .unwrap();
    assert_eq!(label["data"], json!([0, 1]));
    // Versioned route, unknown model, unknown version.
    let r = call(
        &s,
        post(
            &format!("/v2/models/fraud/versions/{v}/infer"),
            None,
            body.to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(&s, post("/v2/models/nope/infer", None, body.to_string())).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Request for unknown model"));
    assert_eq!(
        call(
            &s,
            post(
                "/v2/models/fraud/versions/zzz/infer",
                None,
                body.to_string()
            )
        )
        .await
        .status,
        404
    );
    assert_eq!(call(&s, get("/no/such/route")).await.status, 404);
}

#[tokio::test]
async fn v2_binary_request_and_response() {
    let (_t, s) = setup();
    let header = json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}],
        "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = header.clone().into_bytes();
    for x in [200.0f32, 80.0, 4.0] {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let req = axum::http::Request::post("/v2/models/fraud/infer")
        .header("inference-header-content-length", header.len())
        .body(axum::body::Body::from(body))
        .unwrap();
    let r = call(&s, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let n: usize = r.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&r.body[..n]).unwrap();
    let outs = j["outputs"].as_array().unwrap();
    let sizes: usize = outs
        .iter()
        .map(|o| o["parameters"]["binary_data_size"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(sizes, r.body.len() - n);
    assert_eq!(outs[0]["datatype"], "INT64");
    assert_eq!(i64::from_le_bytes(r.body[n..n + 8].try_into().unwrap()), 1);
}

#[tokio::test]
async fn mlflow_formats_agree() {
    let (_t, s) = setup();
    let rows = [[50.0, 40.0, 3.0], [200.0, 80.0, 4.0], [10.0, 20.0, 5.0]];
    let split = json!({"dataframe_split": {"columns": ["amount", "age", "hour"], "data": rows, "index": [0, 1, 2]}});
    let records = json!({"dataframe_records": rows.iter().map(|r| json!({"hour": r[2], "amount": r[0], "age": r[1]})).collect::<Vec<_>>()});
    let instances = json!({"instances": rows});
    let inputs = json!({"inputs": {"amount": [50.0, 200.0, 10.0], "age": [40.0, 80.0, 20.0], "hour": [3, 4, 5]}});
    let mut seen = Vec::new();
    for body in [split, records, instances, inputs] {
        let r = call(
            &s,
            post("/invocations", Some("application/json"), body.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert!(r.headers.contains_key(VERSION_HEADER));
        let j = r.json();
        assert_eq!(
            j["model_version"],
            r.headers[VERSION_HEADER].to_str().unwrap()
        );
        seen.push(j["predictions"].clone());
    }
    let csv = "amount,age,hour\n50,40,3\n200,80,4\n10,20,5\n";
    let r = call(
        &s,
        post("/invocations", Some("text/csv; charset=utf-8"), csv),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    seen.push(r.json()["predictions"].clone());
    // Missing Content-Type is JSON.
    let r = call(
        &s,
        post("/invocations", None, json!({"instances": rows}).to_string()),
    )
    .await;
    seen.push(r.json()["predictions"].clone());
    assert!(seen.iter().all(|p| *p == json!([0, 1, 0])), "{seen:?}");
    for path in ["/ping", "/health", "/version"] {
        assert_eq!(call(&s, get(path)).await.status, 200);
    }
}

#[tokio::test]
async fn bad_input_is_4xx_with_a_clear_message() {
    let (_t, s) = setup();
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        ("/invocations", Some("application/json"), json!({"dataframe_split": {"columns": ["amount", "agee", "hour"], "data": [[1, 2, 3]]}}).to_string(), 400, "missing inputs [\\\"age\\\"]"),
        ("/invocations", Some("application/json"), json!({"dataframe_split": {"columns": ["amount", "age", "hour"], "data": [[1, "old", 3]]}}).to_string(), 400, "column 'age', row 0: expected a number"),
        ("/invocations", Some("application/json"), json!({"instances": [[1, 2]]}).to_string(), 400, "row 0 has 2 values"),
        ("/invocations", Some("application/json"), json!({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}).to_string(), 400, "exactly one of"),
        ("/invocations", Some("application/json"), "[1,2]".to_string(), 400, "exactly one of"),
        ("/invocations", Some("application/json"), "{not json".to_string(), 400, "invalid JSON"),
        ("/invocations", Some("application/json; format=pandas-split"), "{}".to_string(), 415, "format"),
        ("/invocations", Some("text/plain"), "x".to_string(), 415, "content types"),
        ("/invocations", Some("text/csv"), "amount,age\n1,2\n".to_string(), 400, "missing inputs"),
        ("/v2/models/fraud/infer", None, json!({"inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}).to_string(), 400, "dimension 1 is 2"),
        ("/v2/models/fraud/infer", None, json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}).to_string(), 400, "needs 3 elements"),
        ("/v2/models/fraud/infer", None, json!({"inputs": [{"name": "Y", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).to_string(), 400, "unexpected inference input 'Y'"),
        ("/v2/models/fraud/infer", None, json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}).to_string(), 400, "datatype BYTES given"),
        ("/v2/models/fraud/infer", None, json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, "x", 3]}]}).to_string(), 400, "expected a number"),
        ("/v2/models/fraud/infer", None, json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "outputs": [{"name": "nope"}]}).to_string(), 400, "unexpected inference output"),
        ("/v2/models/fraud/infer", None, "garbage".to_string(), 400, "invalid inference request JSON"),
    ];
    for (path, ct, body, status, needle) in cases {
        let r = call(&s, post(path, ct, body.clone())).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(
            r.text().contains(needle),
            "{path} {body}: {} lacks {needle:?}",
            r.text()
        );
    }
}

#[tokio::test]
async fn metrics_exposition_and_feedback() {
    let (t, s) = setup();
    let r = call(
        &s,
        post(
            "/invocations",
            Some("application/json"),
            json!({"instances": [[50, 40, 3]]}).to_string(),
        ),
    )
    .await;
    let rid = r.headers["x-request-id"].to_str().unwrap().to_string();
    let fb = call(
        &s,
        post(
            "/feedback",
            None,
            json!({"request_id": rid, "label": 1}).to_string(),
        ),
    )
    .await;
    assert_eq!(fb.status, 200, "{}", fb.text());
    assert_eq!(
        call(&s, post("/feedback", None, "{}".to_string()))
            .await
            .status,
        400
    );
    let _ = call(
        &s,
        post("/invocations", Some("application/json"), "{}".to_string()),
    )
    .await;
    let m = call(&s, get("/metrics")).await;
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(text.ends_with('\n'));
    assert!(
        text.contains("keel_inference_requests_total{model=\"fraud\""),
        "{text}"
    );
    assert!(text.contains("code=\"400\"} 1"));
    assert!(text.contains("keel_feedback_labels_total 1"));
    // Structure: every family HELP + TYPE once, histogram buckets end with +Inf == count.
    let mut families = std::collections::HashSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(
            families.insert(line.split_whitespace().nth(2).unwrap().to_string()),
            "duplicate {line}"
        );
    }
    for line in text.lines().filter(|l| l.contains("le=\"+Inf\"")) {
        let (series, v) = line.rsplit_once(' ').unwrap();
        let count_name = series
            .replace("_bucket", "_count")
            .replace(",le=\"+Inf\"", "");
        assert!(text.contains(&format!("{count_name} {v}")), "{line}");
    }
    // The log holds the request, readable by keel-data once the segment is read.
    let segs = keel_serve::predlog::segments(&t.path().join("log/predictions")).unwrap();
    let all: String = segs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(all.contains(&rid));
    let batches =
        keel_data::read::read_all(&segs[0], &keel_data::read::ReadOptions::new()).unwrap();
    assert!(batches[0].schema().field_with_name("amount").is_ok());
}

#[test]
fn monitor_yaml_errors_name_file_line_field() {
    let p = std::path::Path::new("/x/monitor.yaml");
    let e = keel_serve::monitor::MonitorConfig::parse(
        "window: 5m\nrules:\n  - name: a\n    metric: drift_shar\n    threshold: 1\n",
        p,
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("/x/monitor.yaml:4:") && m.contains("rules[0].metric"),
        "{m}"
    );
    let e = keel_serve::monitor::MonitorConfig::parse(
        "rules:\n  - name: a\n    metric: rows\n    threshold: high\n",
        p,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("/x/monitor.yaml:4:"), "{e}");
    let e = keel_serve::monitor::MonitorConfig::parse(
        "rules:\n  - name: a\n    metric: rows\n    threshold: 1\n    severity: loud\n",
        p,
    )
    .unwrap_err();
    assert!(e.to_string().contains("severity"), "{e}");
}

/// `{"inputs": [[...]]}` bodies are parsed straight into the input tensor;
/// any body with another key (here `params`) takes the general parser.
/// Both must give the same tensor, or the same error, for every body.
#[test]
fn streamed_rows_decode_as_the_general_parser_does() {
    use keel_serve::mlflow::{decode, Media};
    let tmp = tempfile::tempdir().unwrap();
    let pkg = make_package(&tmp.path().join("fraud"), 1.0);
    let model = keel_serve::model::ServedModel::load(&pkg, "fraud", "1").unwrap();
    let mut bodies: Vec<String> = [
        r#"{"inputs": [[50.0, 40, 3], [200.5, 80.25, 4e0]]}"#,
        r#"{ "instances" : [ [1e-7, -0.0, 18446744073709551615] ] }"#,
        r#"{"inputs": [[null, "2.5", true]]}"#,
        r#"{"inputs": [[1, 2, 3, 4]]}"#,
        r#"{"inputs": [[1, 2]]}"#,
        r#"{"inputs": [[1, [2], 3]]}"#,
        r#"{"inputs": [[1, {"a": 2}, 3]]}"#,
        r#"{"inputs": [[1, "old", 3]]}"#,
        r#"{"inputs": []}"#,
        r#"{"inputs": [1, 2, 3]}"#,
        r#"{"inputs": [{"amount": 1, "age": 2, "hour": 3}]}"#,
        r#"{"inputs": {"amount": [1], "age": [2], "hour": [3]}}"#,
        r#"{"inputs": [[1, 2, 3]], "inputs": [[4, 5, 6]]}"#,
        r#"{"inputs": [[1, 2, 3]]} trailing"#,
        r#"{"inputs": [[1, 2, 3]"#,
        r#"{"inp\u0075ts": [[1, 2, 3]]}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut r = Lcg(5);
    for n in [1, 7, 100] {
        let rows: Vec<String> = (0..n)
            .map(|_| {
                let cells: Vec<String> = (0..3)
                    .map(|_| match (r.next() * 4.0) as u32 {
                        0 => format!("{}", (r.next() * 1e6) as i64 - 500_000),
                        1 => format!("{:e}", r.normal() * 1e-3),
                        2 => format!("{:.17}", r.normal()),
                        _ => format!("{}", r.normal() as f32),
                    })
                    .collect();
                format!("[{}]", cells.join(","))
            })
            .collect();
        bodies.push(format!(r#"{{"inputs": [{}]}}"#, rows.join(", ")));
    }
    for body in &bodies {
        let streamed = decode(&model, Media::Json, body.as_bytes());
        // The same body with one more key: the general parser's answer.
        let general = match body.trim_end().strip_suffix('}') {
            Some(head) if body.trim_end().ends_with("]}") => decode(
                &model,
                Media::Json,
                format!(r#"{head}, "params": {{}}}}"#).as_bytes(),
            ),
            _ => continue,
        };
        match (&streamed, &general) {
            // Debug text: NaN (a null cell) is unequal to itself.
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{body}"),
            (Err(a), Err(b)) => {
                let (a, b) = (a.to_string(), b.to_string());
                // The general parser's message lists the keys it got.
                assert_eq!(
                    a.replace(", \"params\"", ""),
                    b.replace(", \"params\"", ""),
                    "{body}"
                );
            }
            _ => panic!("{body}: streamed {streamed:?}, general {general:?}"),
        }
    }
    // The common body does succeed.
    assert!(decode(&model, Media::Json, bodies[0].as_bytes()).is_ok());
}
