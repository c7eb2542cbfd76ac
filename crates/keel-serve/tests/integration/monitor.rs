//! Drift injected into live traffic is detected within one window and the
//! alert fires; a window of baseline traffic does not fire.

use keel_serve::monitor::{evaluate, MonitorConfig, State};
use keel_serve::predlog::LogConfig;
use keel_serve::server::ServeConfig;
use serde_json::json;

use crate::util::*;

async fn send(s: &std::sync::Arc<keel_serve::server::AppState>, rows: &[[f64; 3]]) {
    for chunk in rows.chunks(10) {
        let body = json!({"dataframe_split": {"columns": FEATURES, "data": chunk}});
        let r = call(
            s,
            post("/invocations", Some("application/json"), body.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test]
async fn injected_drift_fires_the_alert_within_one_window() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = make_package(&tmp.path().join("fraud"), 1.0);
    write_csv(&tmp.path().join("reference.csv"), &rows(600, 7, 0.0), 3);
    let log = tmp.path().join("log");
    let mut c = ServeConfig::new(pkg.to_string_lossy());
    c.log = Some(LogConfig::new(&log));
    let s = state(c);
    let yaml = "log: log\nmodel: fraud\nreference: reference.csv\nwindow: 1h\nmin_rows: 30\nrules:\n  - name: feature drift\n    metric: drift_share\n    comparison: \">=\"\n    threshold: 0.5\n    severity: critical\n    actions: [log]\n  - name: prediction drift\n    metric: prediction_drift\n    comparison: \"==\"\n    threshold: 1\n";
    let cfg = MonitorConfig::parse(yaml, &tmp.path().join("monitor.yaml")).unwrap();

    // Baseline traffic: no alert.
    send(&s, &rows(200, 99, 0.0)).await;
    let mut st = State::default();
    let mut fired = Vec::new();
    let end = keel_serve::predlog::now_ms() + 1;
    let rep = evaluate(&cfg, end, &mut st, &mut |r, v| {
        fired.push((r.name.clone(), v));
        Vec::new()
    })
    .unwrap();
    assert_eq!(rep.metrics["rows"], 200.0);
    assert!(rep.metrics["drift_share"] < 0.5, "{:?}", rep.metrics);
    assert!(fired.is_empty(), "{fired:?}");

    // Drifted traffic in the next window.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let start2 = keel_serve::predlog::now_ms();
    send(&s, &rows(200, 123, 1.5)).await;
    let mut cfg2 = cfg.clone();
    let end2 = keel_serve::predlog::now_ms() + 1;
    cfg2.window = format!("{}ms", end2 - start2);
    let rep = evaluate(&cfg2, end2, &mut st, &mut |r, v| {
        fired.push((r.name.clone(), v));
        Vec::new()
    })
    .unwrap();
    assert_eq!(rep.metrics["rows"], 200.0);
    assert!(rep.metrics["drift_share"] >= 0.5, "{:?}", rep.metrics);
    assert!(fired.iter().any(|(n, _)| n == "feature drift"), "{fired:?}");
    assert!(
        fired.iter().any(|(n, _)| n == "prediction drift"),
        "{:?} {fired:?}",
        rep.metrics
    );
    assert!(st
        .gauges
        .iter()
        .any(|g| g.name == "keel_monitor_alert_firing" && g.value == 1.0));
    // The gauges reach /metrics through the state file.
    keel_serve::monitor::save_state(&keel_serve::monitor::state_path(&log), &st).unwrap();
}

/// Actions as the documentation writes them (one-key maps, a flow list
/// too); a wrong action is an error naming the file and the rule.
#[test]
fn actions_parse_in_their_documented_forms() {
    use keel_serve::monitor::Action;
    let path = std::path::Path::new("/p/monitor.yaml");
    let yaml = "rules:\n  - name: a\n    metric: drift_share\n    threshold: 0.5\n    actions:\n      - log\n      - webhook: http://127.0.0.1:9000/hook\n      - pipeline: .gitlab-ci.yml\n  - name: b\n    metric: error_rate\n    threshold: 0.1\n    actions: [log, {pipeline: retrain.yml}]\n";
    let c = MonitorConfig::parse(yaml, path).unwrap();
    assert_eq!(
        c.rules[0].actions,
        [
            Action::Log,
            Action::Webhook("http://127.0.0.1:9000/hook".into()),
            Action::Pipeline("/p/.gitlab-ci.yml".into()),
        ]
    );
    assert_eq!(
        c.rules[1].actions,
        [Action::Log, Action::Pipeline("/p/retrain.yml".into())]
    );
    for (bad, says) in [
        ("[page]", "unknown action `page`"),
        ("[{email: x}]", "unknown action `email`"),
    ] {
        let yaml = format!("rules:\n  - name: a\n    metric: drift_share\n    threshold: 0.5\n    actions: {bad}\n");
        let e = MonitorConfig::parse(&yaml, path).unwrap_err().to_string();
        assert!(e.contains("/p/monitor.yaml") && e.contains(says), "{e}");
    }
}
