//! The bad-input list of the MLflow reference (§10): every shape is
//! refused with a 4xx, no response leaks a file from outside the store, and
//! nothing outside the object store is created, changed or deleted.

use std::collections::BTreeMap;
use std::path::Path;

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{app, call, exp_and_run, raw, store};

const SECRET: &str = "TOP-SECRET-keel-cve-sentinel";

/// Every file under `root` except the object store and the DB, with its content.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if rel.contains(".keel/objects")
                || rel.contains(".keel/tmp")
                || rel.contains(".keel-test.db")
                || rel.ends_with("keel.db-wal")
                || rel.ends_with("keel.db-shm")
            {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.insert(rel, std::fs::read(&p).unwrap());
            } else {
                out.insert(rel, b"<symlink>".to_vec());
            }
        }
    }
    out
}

fn assert_refused(what: &str, status: StatusCode, body: &[u8]) {
    assert!(
        status.is_client_error(),
        "{what}: expected 4xx, got {status}: {}",
        String::from_utf8_lossy(body)
    );
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains(SECRET) && !text.contains("root:x:0"),
        "{what}: leaked a file: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cve_shape_is_refused_and_nothing_outside_the_store_changes() {
    let t = tempfile::tempdir().unwrap();
    let proj = t.path().join("proj");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::fs::write(outside.join("dir").join("x"), SECRET).unwrap();
    std::fs::write(proj.join("secret.txt"), SECRET).unwrap();
    let st = store(&proj, None).await;
    let app = app(&st);
    let (exp, run) = exp_and_run(&app, "cve").await;
    let base = format!("{exp}/{run}/artifacts");
    let (s, _) = raw(
        &app,
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/{base}/ok.txt"),
        Some(b"fine".to_vec()),
        "text/plain",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let objects_before = st.objects.list().unwrap().len();
    let before = snapshot(t.path());

    // 1. Artifact paths, raw (path-as-is) and encoded, in the URL path and in ?path=.
    let evil = [
        "../x",
        "a/../../x",
        "../../../../outside/secret.txt",
        "%2e%2e/x",
        "%2e%2e%2fx",
        "%252e%252e%252f",
        "%25252e%25252e%25252fsecret.txt",
        "..%5cx",
        "a%5c..%5cb",
        "a\\..\\b",
        "/etc/passwd",
        "//etc/passwd",
        "C:/x",
        "C:%5cx",
        "x%23frag",
        "x%2523/../",
        "%00",
        "a%00b",
        "%01",
        "x%0a",
        "file:///etc/passwd",
    ];
    let long = "a/".repeat(2000);
    let mut paths: Vec<String> = Vec::new();
    for e in evil {
        paths.push(format!("{base}/{e}"));
        paths.push(e.to_string());
        paths.push(format!("{exp}/{e}"));
    }
    paths.push(format!("{base}/{long}"));
    paths.push(format!("{exp}/..%2F..%2Foutside/artifacts/secret.txt"));
    paths.push(format!("{exp}/{run}%2F..%2F../artifacts/x"));
    for p in &paths {
        let uri = format!("/api/2.0/mlflow-artifacts/artifacts/{p}");
        if axum::http::Uri::try_from(uri.as_str()).is_err() {
            continue; // not even a valid request line
        }
        let (s, b) = raw(&app, "GET", &uri, None, "").await;
        assert_refused(&format!("GET {p}"), s, &b);
        let (s, b) = raw(
            &app,
            "PUT",
            &uri,
            Some(SECRET.as_bytes().to_vec()),
            "application/octet-stream",
        )
        .await;
        assert_refused(&format!("PUT {p}"), s, &b);
        let (s, b) = raw(&app, "DELETE", &uri, None, "").await;
        assert_refused(&format!("DELETE {p}"), s, &b);
        let q: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
        let (s, b) = raw(
            &app,
            "GET",
            &format!("/api/2.0/mlflow-artifacts/artifacts?path={q}"),
            None,
            "",
        )
        .await;
        assert!(
            s.is_client_error() || (s == StatusCode::OK && b == b"{}"),
            "list {p}: {s} {}",
            String::from_utf8_lossy(&b)
        );
        assert_refused_or_empty(&b);
    }
    // The legacy listing too.
    let (s, b) = raw(
        &app,
        "GET",
        &format!("/api/2.0/mlflow/artifacts/list?run_id={run}&path=../../outside"),
        None,
        "",
    )
    .await;
    assert_refused("legacy list", s, &b);

    // 2. A symlink planted in the object store is not followed outside it.
    let (hash, _) = keel_store::tracking::artifacts::lookup(
        &st,
        &keel_store::tracking::artifacts::Owner::Run {
            experiment_id: exp.parse().unwrap(),
            run_id: run.clone(),
        },
        "ok.txt",
    )
    .await
    .unwrap()
    .unwrap();
    let obj = st.objects.path_of(&hash);
    let mut perms = std::fs::metadata(obj.parent().unwrap())
        .unwrap()
        .permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(obj.parent().unwrap(), perms).unwrap();
    std::fs::remove_file(&obj).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), &obj).unwrap();
    let (s, b) = raw(
        &app,
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts/{base}/ok.txt"),
        None,
        "",
    )
    .await;
    assert_refused("symlinked object", s, &b);
    std::fs::remove_file(&obj).unwrap();

    // 3. User-chosen artifact locations.
    for loc in [
        "file:///etc",
        "/etc",
        "relative/dir",
        "http:///#/../../etc/",
        "http://h/?x=../../",
        "s3://bucket/x",
        "http://169.254.169.254/",
        "mlflow-artifacts:/../../x",
    ] {
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": format!("loc-{loc}"), "artifact_location": loc})),
        )
        .await;
        assert_refused(
            &format!("artifact_location {loc}"),
            s,
            v.to_string().as_bytes(),
        );
    }

    // 4. Model-version sources.
    call(
        &app,
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        Some(json!({"name": "victim"})),
    )
    .await;
    let (_, other_run) = exp_and_run(&app, "cve-other").await;
    let (s, v) = call(
        &app,
        "POST",
        "/api/2.0/mlflow/logged-models",
        Some(json!({"experiment_id": exp, "source_run_id": run})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mid = v["model"]["info"]["model_id"].as_str().unwrap().to_string();
    let sources = [
        json!({"source": "file:///etc/passwd"}),
        json!({"source": "/etc"}),
        json!({"source": "../../"}),
        json!({"source": format!("file://{}", outside.display())}),
        json!({"source": "mlflow-artifacts://h/../../"}),
        json!({"source": format!("mlflow-artifacts:/{exp}/%2e%2e/%2e%2e")}),
        json!({"source": format!("mlflow-artifacts:/{base}/../../../outside")}),
        json!({"source": "http://us/api/2.0/mlflow-artifacts/artifacts/../../"}),
        json!({"source": format!("runs:/{run}/..\\..\\secret")}),
        json!({"source": format!("runs:/{run}/a\u{0}b")}),
        json!({"source": format!("runs:/{run}/ok.txt"), "run_id": other_run}),
        json!({"source": format!("mlflow-artifacts:/{base}/ok.txt"), "run_id": other_run}),
        json!({"source": format!("runs:/{run}/does-not-exist")}),
        json!({"source": "models:/m-0123"}),
        json!({"source": format!("models:/{mid}"), "model_id": "m-other"}),
        json!({"source": format!("models:/{mid}/../../x")}),
        json!({"source": "s3://bucket/model"}),
        json!({"source": "http://169.254.169.254/latest/meta-data"}),
    ];
    for src in sources {
        let mut body = src.clone();
        body["name"] = json!("victim");
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            Some(body),
        )
        .await;
        assert_refused(&format!("source {src}"), s, v.to_string().as_bytes());
    }
    let (s, v) = call(
        &app,
        "GET",
        "/api/2.0/mlflow/model-versions/search?filter=name%3D%27victim%27",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v.get("model_versions")
            .and_then(|a| a.as_array())
            .is_none_or(|a| a.is_empty()),
        "{v}"
    );

    // 5. Ids in paths.
    for id in ["../x", "a/b", "a%2Fb", "..", "%2e%2e"] {
        let (s, b) = raw(
            &app,
            "GET",
            &format!("/api/2.0/mlflow/runs/get?run_id={id}"),
            None,
            "",
        )
        .await;
        assert_refused(&format!("run id {id}"), s, &b);
        let (s, b) = raw(
            &app,
            "GET",
            &format!("/api/2.0/mlflow/logged-models/{id}"),
            None,
            "",
        )
        .await;
        assert_refused(&format!("model id {id}"), s, &b);
    }

    // 6. Host / Origin / Content-Type reflection / download headers.
    let resp = send(
        &app,
        axum::http::Request::get("/api/2.0/mlflow/experiments/get?experiment_id=0")
            .header("host", "evil.example:5000"),
    )
    .await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN);
    let resp = send(
        &app,
        axum::http::Request::post("/api/2.0/mlflow/experiments/create")
            .header("host", "127.0.0.1:5000")
            .header("origin", "http://evil.example")
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN);
    let xss = "text/html<script>alert(1)</script>";
    let (s, b) = raw(
        &app,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Some(b"{\"name\":\"x\"}".to_vec()),
        xss,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(!String::from_utf8_lossy(&b).contains("<script>"));
    raw(
        &app,
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/{base}/page.html"),
        Some(b"<script>x</script>".to_vec()),
        "text/html",
    )
    .await;
    let (s, h) = send(
        &app,
        axum::http::Request::get(format!(
            "/api/2.0/mlflow-artifacts/artifacts/{base}/page.html"
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("content-disposition").unwrap(), "attachment");
    assert_eq!(h.get("content-type").unwrap(), "application/octet-stream");

    // 7. DoS shapes: all 4xx, quickly.
    let big_filter = format!("params.a = '{}'", "x".repeat(100_000));
    let (s, _) = call(
        &app,
        "POST",
        "/api/2.0/mlflow/runs/search",
        Some(json!({"experiment_ids": [exp], "filter": big_filter})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(
        &app,
        "POST",
        "/api/2.0/mlflow/runs/search",
        Some(json!({"experiment_ids": [exp], "max_results": 50001})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let metrics: Vec<_> = (0..1001)
        .map(|i| json!({"key": "m", "value": 1, "timestamp": i}))
        .collect();
    let (s, v) = call(
        &app,
        "POST",
        "/api/2.0/mlflow/runs/log-batch",
        Some(json!({"run_id": run, "metrics": metrics})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("at most 1000 metrics"));
    let huge = json!({"run_id": run, "key": "k", "value": "v".repeat(2 << 20)});
    let (s, _) = call(&app, "POST", "/api/2.0/mlflow/runs/set-tag", Some(huge)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, _) = raw(
        &app,
        "POST",
        "/api/2.0/mlflow/runs/log-batch",
        Some(nested.into_bytes()),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = call(
        &app,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Some(json!({"name": "n".repeat(501)})),
    )
    .await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        Some(json!({"name": "n".repeat(501)})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Nothing outside the store changed; no rejected upload became an object.
    assert_eq!(
        snapshot(t.path()),
        before,
        "files outside the object store changed"
    );
    let after = st.objects.list().unwrap().len();
    // `page.html` is the one legitimate new object (the symlinked one was removed).
    assert_eq!(
        after, objects_before,
        "objects before {objects_before}, after {after}"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        SECRET
    );
    assert!(outside.join("dir").join("x").exists());
}

fn assert_refused_or_empty(b: &[u8]) {
    let text = String::from_utf8_lossy(b);
    assert!(
        !text.contains(SECRET) && !text.contains("root:x:0"),
        "listing leaked: {text}"
    );
}

async fn send(
    app: &axum::Router,
    req: axum::http::request::Builder,
) -> (StatusCode, axum::http::HeaderMap) {
    use tower::ServiceExt;
    let resp = app
        .clone()
        .oneshot(req.body(axum::body::Body::from("{}")).unwrap())
        .await
        .unwrap();
    (resp.status(), resp.headers().clone())
}
