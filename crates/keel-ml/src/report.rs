//! A self-contained HTML evaluation report with inline SVG plots (ROC and
//! calibration), no scripts and no external resources.

use std::fmt::Write;

use crate::evaluate::{flat_metrics, Evaluation, TaskMetrics};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG line plot on the unit square with a dashed diagonal.
fn unit_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    pts: &[(f64, f64)],
    markers: bool,
) -> String {
    let (w, h, m) = (320.0, 320.0, 40.0);
    let sx = |x: f64| m + x.clamp(0.0, 1.0) * (w - 2.0 * m);
    let sy = |y: f64| h - m - y.clamp(0.0, 1.0) * (h - 2.0 * m);
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{t}\">\
         <rect x=\"{m}\" y=\"{m}\" width=\"{iw}\" height=\"{iw}\" fill=\"none\" stroke=\"#999\"/>\
         <line x1=\"{m}\" y1=\"{b}\" x2=\"{e}\" y2=\"{m}\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>",
        t = esc(title),
        iw = w - 2.0 * m,
        b = h - m,
        e = w - m
    );
    for k in 0..=4 {
        let v = f64::from(k) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{v}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{v}</text>",
            sx(v),
            h - m + 14.0,
            m - 4.0,
            sy(v) + 3.0
        );
    }
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
        .collect();
    let _ = write!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    if markers {
        for (x, y) in pts {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f5fa8\"/>",
                sx(*x),
                sy(*y)
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
         <text x=\"12\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 12 {})\">{}</text>\
         </svg><figcaption>{}</figcaption></figure>",
        w / 2.0,
        h - 6.0,
        esc(x_label),
        h / 2.0,
        h / 2.0,
        esc(y_label),
        esc(title)
    );
    s.push('\n');
    s
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else {
        format!("{v:.4}")
    }
}

/// Renders the report.
pub fn html(e: &Evaluation, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}figure{{display:inline-block;margin:0 1em}}\
         .fail{{color:#b00020;font-weight:bold}}</style></head><body><h1>{t}</h1>\
         <p>{n} rows · features: {f}</p>",
        t = esc(title),
        n = e.n_rows,
        f = esc(&e.features.join(", "))
    );
    s.push_str("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>");
    for (k, v) in flat_metrics(e) {
        if !k.starts_with("slice.") && !k.starts_with("fairness.") {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), num(v));
        }
    }
    s.push_str("</table>");
    if let TaskMetrics::Binary(m) = &e.metrics {
        let c = &m.confusion;
        let neg = e.classes.first().cloned().unwrap_or_default();
        let pos = e.classes.get(1).cloned().unwrap_or_default();
        let _ = write!(
            s,
            "<h2>Confusion matrix (threshold {})</h2><table><tr><th>true \\ predicted</th><th>{n}</th><th>{p}</th></tr>\
             <tr><td>{n}</td><td>{}</td><td>{}</td></tr><tr><td>{p}</td><td>{}</td><td>{}</td></tr></table>",
            m.threshold,
            c.tn,
            c.fp,
            c.fn_,
            c.tp,
            n = esc(&neg),
            p = esc(&pos)
        );
        let roc: Vec<(f64, f64)> = e.roc_curve.iter().map(|(x, y, _)| (*x, *y)).collect();
        let cal: Vec<(f64, f64)> = e
            .calibration
            .iter()
            .map(|b| (b.mean_predicted, b.fraction_positive))
            .collect();
        s.push_str("<h2>Curves</h2>");
        s.push_str(&unit_plot(
            &format!("ROC (AUC {})", m.roc_auc.map_or("—".into(), num)),
            "false positive rate",
            "true positive rate",
            &roc,
            false,
        ));
        s.push_str(&unit_plot(
            "Calibration",
            "mean predicted probability",
            "fraction of positives",
            &cal,
            true,
        ));
        s.push_str("<h2>Per threshold</h2><table><tr><th>threshold</th><th>precision</th><th>recall</th><th>FPR</th><th>F1</th><th>selection rate</th></tr>");
        for p in &e.threshold_curve {
            let _ = write!(
                s,
                "<tr><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.threshold,
                num(p.precision),
                num(p.recall),
                num(p.fpr),
                num(p.f1),
                num(p.selection_rate)
            );
        }
        s.push_str("</table>");
    }
    if !e.slices.is_empty() {
        s.push_str("<h2>Slices</h2><table><tr><th>slice</th><th>n</th><th>metrics</th></tr>");
        for sl in &e.slices {
            let v = serde_json::to_value(&sl.metrics).unwrap_or_default();
            let n = v.get("n").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let body: Vec<String> = v
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, v)| v.is_f64() && *k != "threshold")
                        .map(|(k, v)| format!("{k} {}", num(v.as_f64().unwrap_or(f64::NAN))))
                        .collect()
                })
                .unwrap_or_default();
            let _ = write!(
                s,
                "<tr><td>{}={}</td><td>{n}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(&sl.column),
                esc(&sl.value),
                esc(&body.join(" · "))
            );
        }
        s.push_str("</table>");
    }
    for f in &e.fairness {
        let _ = write!(
            s,
            "<h2>Fairness: {}</h2><p>demographic parity difference {} · ratio {} · equal opportunity difference {} · equalized odds difference {} · four-fifths rule: {}</p>\
             <table><tr><th>group</th><th>n</th><th>selection rate</th><th>impact ratio</th><th>TPR</th><th>FPR</th><th>accuracy</th><th>TP</th><th>FP</th><th>FN</th><th>TN</th></tr>",
            esc(&f.column),
            num(f.demographic_parity_difference),
            num(f.demographic_parity_ratio),
            num(f.equal_opportunity_difference),
            num(f.equalized_odds_difference),
            if f.four_fifths_rule { "pass".to_string() } else { "<span class=\"fail\">adverse impact</span>".to_string() }
        );
        for g in &f.groups {
            let c = &g.confusion;
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.group),
                g.n,
                num(g.selection_rate),
                num(g.impact_ratio),
                num(g.tpr),
                num(g.fpr),
                num(g.accuracy),
                c.tp,
                c.fp,
                c.fn_,
                c.tn
            );
        }
        s.push_str("</table>");
        if !f.small_groups.is_empty() {
            let _ = write!(
                s,
                "<p class=\"fail\">insufficient data in: {}</p>",
                esc(&f.small_groups.join(", "))
            );
        }
    }
    let _ = write!(
        s,
        "<h2>Latency</h2><p>batch: {:.2} µs/row · single row: p50 {:.1} µs, p95 {:.1} µs ({} calls)</p></body></html>",
        e.latency.batch_us_per_row, e.latency.single_p50_us, e.latency.single_p95_us, e.latency.single_calls
    );
    s.push('\n');
    s
}
