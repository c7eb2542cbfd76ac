//! `keel demo --json`: the whole loop, asserted on its summary. Steps whose
//! command is not in this binary yet are checked to be reported as such.

use crate::util::Env;

fn has(env: &Env, words: &[&str]) -> bool {
    let mut a = words.to_vec();
    a.push("--help");
    env.run(&a).status.success()
}

#[test]
fn demo_runs_the_loop_and_reuses_its_cache() {
    let env = Env::new();
    let s = env.json(&["demo", "--dir", "d"]);
    for key in [
        "drift_detected",
        "alert_fired",
        "retrained",
        "promoted_version",
        "gates_passed",
        "failed_requests",
        "seconds",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {s:#}");
    }
    assert!(s["seconds"].as_f64().unwrap() < 180.0, "{s:#}");
    assert_eq!(s["rerun"], false);
    let first = &s["pipeline_runs"][0];
    assert_eq!(first["status"], "success", "{s:#}");
    assert!(
        first["cacheable_jobs"].as_u64().unwrap() >= 7,
        "prepare, 4 train, evaluate, gate: {s:#}"
    );
    assert_eq!(s["first_pipeline_cached"], false);
    assert_eq!(s["gates_passed"], true, "{s:#}");
    assert!(
        s["metrics_before"]["roc_auc"].as_f64().unwrap() > 0.75,
        "{s:#}"
    );
    assert!(env.path("d/deploy/production/MLmodel").exists());
    assert!(
        env.path("d/reports").read_dir().unwrap().count() >= 8,
        "4 JSON + 4 HTML evaluations"
    );

    let steps = s["steps"].as_array().unwrap();
    let status = |name: &str| {
        steps
            .iter()
            .find(|x| x["step"] == name)
            .map(|x| x["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    if has(&env, &["data", "validate"]) {
        assert_eq!(status("data validate"), "ok", "{s:#}");
    } else {
        assert_eq!(status("data validate"), "not_available");
    }
    // Drift is detected by `keel drift` or by the monitor's window (whose
    // alert triggers the retraining).
    if has(&env, &["drift"]) || has(&env, &["monitor"]) {
        assert_eq!(s["drift_detected"], true, "{s:#}");
        assert_eq!(s["retrained"], true, "{s:#}");
        assert_eq!(s["pipeline_runs"][1]["status"], "success", "{s:#}");
        assert_eq!(s["gates_passed"], true, "{s:#}");
    } else {
        assert_eq!(s["drift_detected"], false);
        assert_eq!(s["retrained"], false);
    }
    if has(&env, &["monitor"]) {
        assert_eq!(s["alert_fired"], true, "{s:#}");
        if has(&env, &["models", "promote"]) {
            assert_eq!(s["promoted_version"], 2, "{s:#}");
        }
    } else {
        assert_eq!(s["alert_fired"], false);
        assert_eq!(status("monitor"), "not_available");
    }
    if has(&env, &["serve"]) {
        assert_eq!(s["failed_requests"], 0, "{s:#}");
        assert!(s["requests"].as_u64().unwrap() > 0, "{s:#}");
    } else {
        assert!(
            s["failed_requests"].is_null(),
            "no server, no requests: {s:#}"
        );
        assert_eq!(status("serve"), "not_available");
    }
    if has(&env, &["models", "register"]) && s["retrained"] == true {
        assert!(!s["promoted_version"].is_null(), "{s:#}");
    } else {
        assert!(s["promoted_version"].is_null(), "{s:#}");
    }

    // Again in the same directory: the first pipeline run comes from the cache.
    let s2 = env.json(&["demo", "--dir", "d"]);
    assert_eq!(s2["rerun"], true);
    assert_eq!(s2["first_pipeline_cached"], true, "{s2:#}");
    assert_eq!(s2["pipeline_runs"][0]["status"], "success");
    assert_eq!(s2["gates_passed"], true, "{s2:#}");
    let text = String::from_utf8(env.run(&["demo", "--dir", "d"]).stdout).unwrap();
    assert!(text.contains("reused from the cache"), "{text}");
}
