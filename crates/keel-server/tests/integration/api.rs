use axum::http::StatusCode;
use serde_json::json;

use crate::common::{app, backends, call, exp_and_run, raw, store};

#[tokio::test(flavor = "multi_thread")]
async fn tracking_round_trip_and_error_codes() {
    for pg in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), pg.as_deref()).await;
        let app = app(&st);

        // The default experiment exists.
        let (s, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/experiments/get?experiment_id=0",
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["experiment"]["name"], "Default");
        // Missing by name: 404 RESOURCE_DOES_NOT_EXIST (set_experiment relies on it).
        let (s, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=nope",
            None,
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST"))
        );
        // A non-integer id is a 400.
        let (s, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/experiments/get?experiment_id=abc",
            None,
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
        );

        let (exp, run) = exp_and_run(&app, "e1").await;
        // Duplicate name: 400 RESOURCE_ALREADY_EXISTS.
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "e1"})),
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS"))
        );

        let log = |body: serde_json::Value| {
            let app = app.clone();
            async move { call(&app, "POST", "/api/2.0/mlflow/runs/log-batch", Some(body)).await }
        };
        let (s, v) = log(json!({
            "run_id": run,
            "metrics": [
                {"key": "loss", "value": 0.5, "timestamp": 10, "step": 0},
                {"key": "loss", "value": 0.25, "timestamp": 11, "step": 1},
                {"key": "weird", "value": "NaN", "timestamp": 1},
                {"key": "big", "value": "Infinity", "timestamp": 1}
            ],
            "params": [{"key": "alpha", "value": "0.1"}],
            "tags": [{"key": "team", "value": "keel"}]
        }))
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // A retried batch is idempotent; the same param value is fine.
        let (s, _) = log(json!({"run_id": run, "metrics": [{"key": "loss", "value": 0.25, "timestamp": 11, "step": 1}],
                                "params": [{"key": "alpha", "value": "0.1"}]}))
        .await;
        assert_eq!(s, StatusCode::OK);
        // A different param value: 400, and nothing of that batch is written.
        let (s, v) = log(
            json!({"run_id": run, "metrics": [{"key": "leak", "value": 1, "timestamp": 1}],
                                "params": [{"key": "alpha", "value": "0.2"}]}),
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
        );
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("Changing param values is not allowed"));

        let (s, v) = call(
            &app,
            "GET",
            &format!("/api/2.0/mlflow/runs/get?run_id={run}&run_uuid={run}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let metrics = v["run"]["data"]["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 3, "{metrics:?}");
        let loss = metrics.iter().find(|m| m["key"] == "loss").unwrap();
        assert_eq!(
            (loss["value"].as_f64(), loss["step"].as_i64()),
            (Some(0.25), Some(1))
        );
        assert_eq!(
            metrics.iter().find(|m| m["key"] == "weird").unwrap()["value"],
            "NaN"
        );
        assert_eq!(
            metrics.iter().find(|m| m["key"] == "big").unwrap()["value"],
            "Infinity"
        );
        assert_eq!(
            v["run"]["info"]["artifact_uri"],
            format!("mlflow-artifacts:/{exp}/{run}/artifacts")
        );

        let (s, v) = call(
            &app,
            "GET",
            &format!(
                "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss&max_results=1"
            ),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["metrics"].as_array().unwrap().len(), 1);
        let token = v["next_page_token"].as_str().unwrap().to_string();
        let (_, v) = call(
            &app,
            "GET",
            &format!("/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss&max_results=1&page_token={token}"),
            None,
        )
        .await;
        assert_eq!(v["metrics"][0]["step"], 1);
        assert!(v.get("next_page_token").is_none());

        // Search: filter + order-by, and bad filters are 400s.
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/runs/search",
            Some(json!({"experiment_ids": [exp], "filter": "metrics.loss < 0.3 and params.alpha = '0.1' and tags.team LIKE 'ke%'",
                        "order_by": ["metrics.loss DESC"], "max_results": 10})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["runs"].as_array().unwrap().len(), 1);
        for bad in [
            "metrics.loss < 1 or params.a = 'b'",
            "foo.x = 1",
            "metrics.loss < 'abc'",
            "params.a >",
            "tags.t LIKE 'K%' and (",
        ] {
            let (s, v) = call(
                &app,
                "POST",
                "/api/2.0/mlflow/runs/search",
                Some(json!({"experiment_ids": [exp], "filter": bad})),
            )
            .await;
            assert_eq!(
                (s, v["error_code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")),
                "{bad}: {v}"
            );
        }
        // LIKE is case-sensitive, ILIKE is not.
        let n = |f: &'static str| {
            let app = app.clone();
            let exp = exp.clone();
            async move {
                let (_, v) = call(
                    &app,
                    "POST",
                    "/api/2.0/mlflow/runs/search",
                    Some(json!({"experiment_ids": [exp], "filter": f})),
                )
                .await;
                v["runs"].as_array().map_or(0, Vec::len)
            }
        };
        assert_eq!(n("tags.team LIKE 'KE%'").await, 0);
        assert_eq!(n("tags.team ILIKE 'KE%'").await, 1);

        // Deleted runs leave search and come back; writes to them are refused.
        call(
            &app,
            "POST",
            "/api/2.0/mlflow/runs/delete",
            Some(json!({"run_id": run})),
        )
        .await;
        assert_eq!(n("").await, 0);
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            Some(json!({"run_id": run, "key": "x", "value": 1, "timestamp": 1})),
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
        );
        call(
            &app,
            "POST",
            "/api/2.0/mlflow/runs/restore",
            Some(json!({"run_id": run})),
        )
        .await;
        assert_eq!(n("").await, 1);

        // Unknown endpoints are ENDPOINT_NOT_FOUND JSON; server-info says no multipart.
        let (s, v) = call(&app, "GET", "/api/2.0/mlflow/traces/x", None).await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("ENDPOINT_NOT_FOUND"))
        );
        let (s, v) = call(&app, "GET", "/api/3.0/mlflow/server-info", None).await;
        assert_eq!(
            (s, v["multipart_uploads_enabled"].as_bool()),
            (StatusCode::OK, Some(false))
        );
        let (s, body) = raw(&app, "GET", "/health", None, "").await;
        assert_eq!((s, body.as_slice()), (StatusCode::OK, b"OK".as_slice()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_sources_aliases_and_history() {
    for pg in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), pg.as_deref()).await;
        let app = app(&st);
        let (exp, run) = exp_and_run(&app, "reg").await;
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/logged-models",
            Some(json!({"experiment_id": exp, "name": "model", "source_run_id": run})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mid = v["model"]["info"]["model_id"].as_str().unwrap().to_string();
        assert_eq!(v["model"]["info"]["status"], "LOGGED_MODEL_PENDING");
        let uri =
            format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/models/{mid}/artifacts/MLmodel");
        let (s, _) = raw(
            &app,
            "PUT",
            &uri,
            Some(b"flavors: {}\n".to_vec()),
            "text/plain",
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = call(
            &app,
            "PATCH",
            &format!("/api/2.0/mlflow/logged-models/{mid}"),
            Some(json!({"model_id": mid, "status": "LOGGED_MODEL_READY"})),
        )
        .await;
        assert_eq!(
            (s, v["model"]["info"]["status"].as_str()),
            (StatusCode::OK, Some("LOGGED_MODEL_READY"))
        );

        call(
            &app,
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "m"})),
        )
        .await;
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "m"})),
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS"))
        );
        for _ in 0..2 {
            let (s, v) = call(
                &app,
                "POST",
                "/api/2.0/mlflow/model-versions/create",
                Some(json!({"name": "m", "source": format!("models:/{mid}"), "model_id": mid})),
            )
            .await;
            assert_eq!(
                (s, v["model_version"]["status"].as_str()),
                (StatusCode::OK, Some("READY")),
                "{v}"
            );
        }
        let (_, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/model-versions/get-download-uri?name=m&version=2",
            None,
        )
        .await;
        assert_eq!(
            v["artifact_uri"],
            format!("mlflow-artifacts:/{exp}/models/{mid}/artifacts")
        );
        for version in ["1", "2"] {
            let (s, _) = call(
                &app,
                "POST",
                "/api/2.0/mlflow/registered-models/alias",
                Some(json!({"name": "m", "alias": "champion", "version": version})),
            )
            .await;
            assert_eq!(s, StatusCode::OK);
        }
        let (_, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/registered-models/alias?name=m&alias=champion",
            None,
        )
        .await;
        assert_eq!(v["model_version"]["version"], "2");
        assert_eq!(v["model_version"]["aliases"], json!(["champion"]));
        let (s, v) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            Some(json!({"name": "m", "alias": "latest", "version": "1"})),
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
        );
        // The prompt guard's filter must work on models without the tag.
        let (s, v) = call(&app, "GET",
            "/api/2.0/mlflow/registered-models/search?filter=name%20LIKE%20%27m%25%27%20AND%20tag.%60mlflow.prompt.is_prompt%60%20!%3D%20%27true%27&max_results=100", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["registered_models"][0]["aliases"],
            json!([{"alias": "champion", "version": "2"}])
        );

        // Version tags are keyed by (name, version): filters and order-by
        // match both columns, and versions without the tag sort last.
        let (s, _) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            Some(json!({"name": "m", "version": "2", "key": "k", "value": "a"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let versions = |filter: &str, order: &str| {
            let app = app.clone();
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("filter", filter)
                .append_pair("order_by", order)
                .finish();
            async move {
                let (s, v) = call(
                    &app,
                    "GET",
                    &format!("/api/2.0/mlflow/model-versions/search?{q}"),
                    None,
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{v}");
                v["model_versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["version"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            versions("name = 'm' AND tags.k = 'a'", "version_number ASC").await,
            ["2"]
        );
        assert_eq!(
            versions("name = 'm' AND tags.k != 'a'", "version_number ASC").await,
            ["1"]
        );
        assert_eq!(versions("name = 'm'", "tags.k ASC").await, ["2", "1"]);

        // Rollback moves the alias back, and the history says who and when.
        let (from, to) = keel_store::registry::rollback(
            &st,
            "m",
            "champion",
            &keel_store::tracking::Actor("ops".into()),
        )
        .await
        .unwrap();
        assert_eq!((from, to), (Some(2), 1));
        let h = keel_store::registry::alias_history(&st, "m").await.unwrap();
        assert_eq!(
            h.iter()
                .map(|e| (e.action.as_str(), e.version))
                .collect::<Vec<_>>(),
            vec![("set", Some(1)), ("set", Some(2)), ("rollback", Some(1))]
        );
        assert_eq!(h[2].actor, "ops");

        // Stages, rename (versions follow), delete with a JSON body.
        let (_, v) = call(&app, "POST", "/api/2.0/mlflow/model-versions/transition-stage",
            Some(json!({"name": "m", "version": "1", "stage": "production", "archive_existing_versions": true}))).await;
        assert_eq!(v["model_version"]["current_stage"], "Production");
        let (s, _) = call(
            &app,
            "POST",
            "/api/2.0/mlflow/registered-models/rename",
            Some(json!({"name": "m", "new_name": "m2"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/model-versions/get?name=m2&version=1",
            None,
        )
        .await;
        assert_eq!(
            (s, v["model_version"]["current_stage"].as_str()),
            (StatusCode::OK, Some("Production"))
        );
        let (s, _) = call(
            &app,
            "DELETE",
            "/api/2.0/mlflow/model-versions/delete",
            Some(json!({"name": "m2", "version": "1"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = call(
            &app,
            "GET",
            "/api/2.0/mlflow/model-versions/get?name=m2&version=1",
            None,
        )
        .await;
        assert_eq!(
            (s, v["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_tokens_and_bind_policy() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), None).await;
    let token = keel_store::tracking::tokens::create(&st, "alice")
        .await
        .unwrap();
    let mut config = keel_server::Config::loopback();
    config.require_auth = true;
    let app = keel_server::app(keel_server::AppState::new(st.clone(), config).unwrap());
    let get = |auth: Option<String>| {
        let app = app.clone();
        async move {
            let mut req =
                axum::http::Request::get("/api/2.0/mlflow/experiments/get?experiment_id=0");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            use tower::ServiceExt;
            app.oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(get(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("Bearer nope".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Some(format!("Basic {}", b64("alice:nope")))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Some(format!("Bearer {}", token.secret))).await,
        StatusCode::OK
    );
    assert_eq!(
        get(Some(format!(
            "Basic {}",
            b64(&format!("anyone:{}", token.secret))
        )))
        .await,
        StatusCode::OK
    );
    // The secret itself is not stored.
    let rows = sqlx::query("SELECT hash FROM api_tokens")
        .fetch_all(st.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    use sqlx::Row;
    assert!(!rows[0].get::<String, _>(0).contains(&token.secret));

    // Non-loopback without auth is refused; with auth it is allowed.
    let open = keel_server::Config::loopback();
    assert!(open.check_bind(&"0.0.0.0:0".parse().unwrap()).is_err());
    assert!(open.check_bind(&"127.0.0.1:0".parse().unwrap()).is_ok());
    let mut authed = keel_server::Config::loopback();
    authed.require_auth = true;
    assert!(authed.check_bind(&"0.0.0.0:0".parse().unwrap()).is_ok());
    assert!(keel_server::spawn(
        st.clone(),
        "0.0.0.0:0".parse().unwrap(),
        keel_server::Config::loopback()
    )
    .await
    .is_err());
}
