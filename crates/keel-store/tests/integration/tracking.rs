//! Tracking writes and searches at the store level: the group commit's
//! per-batch outcomes, and search filters and orderings over several runs.

use keel_store::tracking::runs::{self, Batch};
use keel_store::tracking::{experiments, KeyValue, Lifecycle, Metric, TrackingError, ViewType};

use crate::backends::{backends, project, Backend};

fn point(key: &str, value: f64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp: 1_000 + step,
        step,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
    }
}

fn batch(run: &str, metrics: Vec<Metric>, params: &[(&str, &str)], tags: &[(&str, &str)]) -> Batch {
    Batch {
        run_id: run.into(),
        metrics,
        params: params.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
        tags: tags.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
    }
}

#[tokio::test]
async fn a_group_commit_fails_each_bad_batch_alone() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = project(backend, dir.path()).await;
        let exp = experiments::create(&st, "g", None, &[]).await.unwrap();
        let new_run = || runs::create(&st, exp, "u", None, None, &[]);
        let (a, b, gone) = (
            new_run().await.unwrap(),
            new_run().await.unwrap(),
            new_run().await.unwrap(),
        );
        let (a, b, gone) = (a.info.run_id, b.info.run_id, gone.info.run_id);
        runs::log_batch(&st, &a, &[], &[KeyValue::new("alpha", "1")], &[])
            .await
            .unwrap();
        runs::set_lifecycle(&st, &gone, Lifecycle::Deleted)
            .await
            .unwrap();

        // 1,100 points for `a` across two batches (more than one INSERT),
        // a batch changing a param, one for a deleted and one for a missing
        // run, and tags whose last value must win.
        let many: Vec<Metric> = (0..1000)
            .map(|i| point("loss", 1.0 / f64::from(i + 1), i64::from(i)))
            .collect();
        let group = vec![
            batch(&a, many, &[], &[("t", "first")]),
            batch(
                &a,
                vec![point("leak", 1.0, 0)],
                &[("alpha", "2")],
                &[("t", "refused")],
            ),
            batch(&gone, vec![point("x", 1.0, 0)], &[], &[]),
            batch(
                "0123456789abcdef0123456789abcdef",
                vec![point("x", 1.0, 0)],
                &[],
                &[],
            ),
            batch(
                &b,
                vec![
                    point("acc", f64::NAN, 0),
                    point("acc", 0.5, 3),
                    point("acc", 0.9, 2),
                ],
                &[("beta", "x")],
                &[],
            ),
            batch(
                &a,
                (1000..1100).map(|i| point("loss", 0.0, i)).collect(),
                &[("alpha", "1")],
                &[("t", "last")],
            ),
            batch(&a, vec![point("loss", 0.0, 1099)], &[], &[]),
        ];
        let results = runs::log_batches(&st, &group).await;
        assert!(
            results[0].is_ok() && results[4].is_ok() && results[5].is_ok() && results[6].is_ok(),
            "{results:?}"
        );
        assert!(
            matches!(&results[1], Err(TrackingError::Invalid(m)) if m.starts_with("Changing param values")),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(&results[2], Err(TrackingError::Invalid(m)) if m.contains("must be in the 'active' state")),
            "{:?}",
            results[2]
        );
        assert!(
            matches!(&results[3], Err(TrackingError::NotFound(_))),
            "{:?}",
            results[3]
        );

        let run_a = runs::get(&st, &a).await.unwrap();
        assert_eq!(
            run_a
                .metrics
                .iter()
                .map(|m| m.key.as_str())
                .collect::<Vec<_>>(),
            ["loss"]
        );
        assert_eq!((run_a.metrics[0].step, run_a.metrics[0].value), (1099, 0.0));
        let history = runs::metric_history(&st, &a, "loss", None, None)
            .await
            .unwrap();
        assert_eq!(
            history.items.len(),
            1100,
            "the repeated point is stored once"
        );
        assert!(runs::metric_history(&st, &a, "leak", None, None)
            .await
            .unwrap()
            .items
            .is_empty());
        assert_eq!(run_a.params, vec![KeyValue::new("alpha", "1")]);
        assert_eq!(
            run_a.tags.iter().find(|t| t.key == "t").unwrap().value,
            "last"
        );
        let run_b = runs::get(&st, &b).await.unwrap();
        assert_eq!((run_b.metrics[0].step, run_b.metrics[0].value), (3, 0.5));
        assert!(runs::get(&st, &gone).await.unwrap().metrics.is_empty());
    }
}

/// Concurrent `log_batch` calls, as a server makes them: on SQLite they
/// share commits in the write lane; each refused call must fail alone and
/// every accepted point must be stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_log_calls_fail_each_bad_call_alone() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = project(backend, dir.path()).await;
        let exp = experiments::create(&st, "c", None, &[]).await.unwrap();
        let a = runs::create(&st, exp, "u", None, None, &[]).await.unwrap();
        let gone = runs::create(&st, exp, "u", None, None, &[]).await.unwrap();
        let (a, gone) = (a.info.run_id, gone.info.run_id);
        runs::log_batch(&st, &a, &[], &[KeyValue::new("alpha", "1")], &[])
            .await
            .unwrap();
        runs::set_lifecycle(&st, &gone, Lifecycle::Deleted)
            .await
            .unwrap();
        let calls: Vec<_> = (0..300i64)
            .map(|i| {
                let (st, a, gone) = (st.clone(), a.clone(), gone.clone());
                tokio::spawn(async move {
                    let m = [point("m", i as f64, i)];
                    match i {
                        // Changes a param: refused, and its point is not kept.
                        100 => {
                            runs::log_batch(&st, &a, &m, &[KeyValue::new("alpha", "2")], &[]).await
                        }
                        200 => runs::log_batch(&st, &gone, &m, &[], &[]).await,
                        _ => {
                            runs::log_batch(&st, &a, &m, &[KeyValue::new("alpha", "1")], &[]).await
                        }
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        for c in calls {
            results.push(c.await.unwrap());
        }
        for (i, r) in results.iter().enumerate() {
            match i {
                100 => assert!(
                    matches!(r, Err(TrackingError::Invalid(m)) if m.starts_with("Changing param values")),
                    "{r:?}"
                ),
                200 => assert!(
                    matches!(r, Err(TrackingError::Invalid(m)) if m.contains("must be in the 'active' state")),
                    "{r:?}"
                ),
                _ => assert!(r.is_ok(), "call {i}: {r:?}"),
            }
        }
        let history = runs::metric_history(&st, &a, "m", None, None)
            .await
            .unwrap();
        let steps: Vec<i64> = history.items.iter().map(|m| m.step).collect();
        let want: Vec<i64> = (0..300).filter(|i| *i != 100 && *i != 200).collect();
        assert_eq!(steps, want, "{backend:?}");
        let run = runs::get(&st, &a).await.unwrap();
        assert_eq!(run.params, vec![KeyValue::new("alpha", "1")]);
        assert_eq!((run.metrics[0].step, run.metrics[0].value), (299, 299.0));
        assert!(runs::get(&st, &gone).await.unwrap().metrics.is_empty());
    }
}

/// What `create` and `update` return is what `get` reads back, on both
/// backends (SQLite answers them from the lane, PostgreSQL through sqlx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_update_return_what_get_reads_back() {
    use keel_store::tracking::runs::RunStatus;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = project(backend, dir.path()).await;
        let exp = experiments::create(&st, "cu", None, &[]).await.unwrap();
        let tags = [
            KeyValue::new("z", "1"),
            KeyValue::new("a", "first"),
            KeyValue::new("a", "second"),
            KeyValue::new("long", "v".repeat(9000)),
        ];
        let created = runs::create(&st, exp, "ann", Some("my-run"), Some(42), &tags)
            .await
            .unwrap();
        let read = runs::get(&st, &created.info.run_id).await.unwrap();
        assert_eq!(created, read, "{backend:?}");
        assert_eq!(
            read.tags.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            ["a", "long", "mlflow.runName", "z"]
        );
        assert_eq!(read.tags[0].value, "second");
        assert_eq!(read.info.run_name, "my-run");

        let id = created.info.run_id.clone();
        let info = runs::update(
            &st,
            &id,
            Some(RunStatus::Finished),
            Some(99),
            Some("renamed"),
        )
        .await
        .unwrap();
        let read = runs::get(&st, &id).await.unwrap();
        assert_eq!(info, read.info, "{backend:?}");
        assert_eq!(
            (info.status, info.end_time, info.run_name.as_str()),
            (RunStatus::Finished, Some(99), "renamed")
        );
        let name_tag = read
            .tags
            .iter()
            .find(|t| t.key == "mlflow.runName")
            .unwrap();
        assert_eq!(name_tag.value, "renamed");
        // Without a name or end time, those stay.
        let info = runs::update(&st, &id, Some(RunStatus::Failed), None, None)
            .await
            .unwrap();
        assert_eq!(
            (info.end_time, info.run_name.as_str()),
            (Some(99), "renamed")
        );

        // Refused updates change nothing.
        let too_long = "n".repeat(501);
        assert!(matches!(
            runs::update(&st, &id, Some(RunStatus::Killed), None, Some(&too_long)).await,
            Err(TrackingError::Invalid(_))
        ));
        runs::set_lifecycle(&st, &id, Lifecycle::Deleted)
            .await
            .unwrap();
        assert!(matches!(
            runs::update(&st, &id, Some(RunStatus::Killed), None, None).await,
            Err(TrackingError::Invalid(m)) if m.contains("must be in the 'active' state")
        ));
        assert!(matches!(
            runs::update(&st, "0123456789abcdef0123456789abcdef", None, None, None).await,
            Err(TrackingError::NotFound(_))
        ));
        assert_eq!(
            runs::get(&st, &id).await.unwrap().info.status,
            RunStatus::Failed
        );
        experiments::set_lifecycle(&st, exp, Lifecycle::Deleted)
            .await
            .unwrap();
        assert!(matches!(
            runs::create(&st, exp, "ann", None, None, &[]).await,
            Err(TrackingError::Invalid(m)) if m.contains("must be in the 'active' state")
        ));
        assert!(matches!(
            runs::create(&st, 987_654, "ann", None, None, &[]).await,
            Err(TrackingError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn search_filters_and_orders_over_child_tables() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let st = project(backend, dir.path()).await;
        let exp = experiments::create(&st, "s", None, &[]).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..6i64 {
            let name = format!("r{i}");
            let run = runs::create(&st, exp, "u", Some(&name), Some(i), &[])
                .await
                .unwrap();
            let id = run.info.run_id;
            // r5 has no metric, r4 no param, odd runs carry a tag.
            let metrics = if i == 5 {
                vec![]
            } else {
                vec![point("acc", i as f64 / 10.0, 0)]
            };
            let params = if i == 4 {
                vec![]
            } else {
                vec![KeyValue::new("p", format!("v{}", i % 3))]
            };
            let tags = if i % 2 == 1 {
                vec![KeyValue::new("odd", "yes")]
            } else {
                vec![]
            };
            runs::log_batch(&st, &id, &metrics, &params, &tags)
                .await
                .unwrap();
            ids.push(id);
        }
        let names = |filter: &'static str, order: &'static [&'static str]| {
            let st = st.clone();
            async move {
                let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();
                let page =
                    runs::search(&st, &[exp], filter, ViewType::ActiveOnly, 100, &order, None)
                        .await
                        .unwrap();
                page.items
                    .iter()
                    .map(|r| r.info.run_name.clone())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            names("metrics.acc > 0.15", &["metrics.acc DESC"]).await,
            ["r4", "r3", "r2"]
        );
        // The ordered metric's comparisons go into its join: all of them,
        // with other terms after it, and with `!=`.
        assert_eq!(
            names(
                "metrics.acc > 0.05 AND metrics.acc < 0.35",
                &["metrics.acc ASC", "start_time DESC"]
            )
            .await,
            ["r1", "r2", "r3"]
        );
        assert_eq!(
            names(
                "metrics.acc != 0.2 AND params.p != 'v0'",
                &["metrics.acc ASC"]
            )
            .await,
            ["r1"]
        );
        assert_eq!(
            names(
                "metrics.acc <= 0.1",
                &["start_time DESC", "metrics.acc DESC"]
            )
            .await,
            ["r1", "r0"]
        );
        // Runs without the metric sort last in either direction.
        assert_eq!(
            names("", &["metrics.acc ASC"]).await,
            ["r0", "r1", "r2", "r3", "r4", "r5"]
        );
        assert_eq!(
            names("", &["metrics.acc DESC"]).await,
            ["r4", "r3", "r2", "r1", "r0", "r5"]
        );
        assert_eq!(names("params.p = 'v1'", &[]).await, ["r1"]);
        assert_eq!(names("params.p IS NULL", &[]).await, ["r4"]);
        assert_eq!(
            names(
                "tags.odd = 'yes' AND metrics.acc >= 0.3",
                &["start_time ASC"]
            )
            .await,
            ["r3"]
        );
        assert_eq!(
            names("tags.odd IS NOT NULL", &["params.p DESC", "start_time ASC"]).await,
            ["r5", "r1", "r3"]
        );
        // Default order: newest first, and pages never overlap.
        let first = runs::search(&st, &[exp], "", ViewType::ActiveOnly, 4, &[], None)
            .await
            .unwrap();
        let rest = runs::search(
            &st,
            &[exp],
            "",
            ViewType::ActiveOnly,
            4,
            &[],
            first.next_page_token.as_deref(),
        )
        .await
        .unwrap();
        let all: Vec<String> = first
            .items
            .iter()
            .chain(&rest.items)
            .map(|r| r.info.run_name.clone())
            .collect();
        assert_eq!(all, ["r5", "r4", "r3", "r2", "r1", "r0"]);
        assert!(rest.next_page_token.is_none());
        // The page's runs come with their data.
        let r1 = first
            .items
            .iter()
            .chain(&rest.items)
            .find(|r| r.info.run_name == "r1")
            .unwrap();
        assert_eq!(
            (
                r1.params.len(),
                r1.metrics.len(),
                r1.tags.iter().any(|t| t.key == "odd")
            ),
            (1, 1, true)
        );
    }
}

/// A new project on `backend` in `dir`, with one run.
async fn store_with_run(backend: Backend, dir: &std::path::Path) -> (keel_store::Store, String) {
    let st = project(backend, dir).await;
    let exp = experiments::create(&st, "e", None, &[]).await.unwrap();
    let run = runs::create(&st, exp, "u", None, None, &[])
        .await
        .unwrap()
        .info
        .run_id;
    (st, run)
}

/// How many metric chunks `run` has.
async fn chunk_count(st: &keel_store::Store, run: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) FROM metric_chunks WHERE run_id = $1")
        .bind(run)
        .fetch_one(st.db.pool())
        .await
        .unwrap()
        .get(0)
}

/// The mlflow client's `log_metric` sends one point per call. On SQLite a
/// call's few points go into the key's last chunk until it holds 1 KiB
/// (42 points): 101 calls make 3 chunks per key, not 101. The history and
/// the latest value are the same as with a chunk per call, on both
/// backends, a retried call included. A call with many keys does not append.
#[tokio::test]
async fn points_logged_one_per_call_share_chunks() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (st, run) = store_with_run(backend, dir.path()).await;
        for step in 0..100i64 {
            let ms = [
                point("acc", step as f64, step),
                point("loss", -step as f64, step),
            ];
            runs::log_batch(&st, &run, &ms, &[], &[]).await.unwrap();
        }
        // A retry of the last call's acc point.
        runs::log_batch(&st, &run, &[point("acc", 99.0, 99)], &[], &[])
            .await
            .unwrap();
        for (key, sign) in [("acc", 1.0), ("loss", -1.0)] {
            let h = runs::metric_history(&st, &run, key, None, None)
                .await
                .unwrap();
            let got: Vec<(i64, f64)> = h.items.iter().map(|m| (m.step, m.value)).collect();
            let want: Vec<(i64, f64)> = (0..100).map(|s| (s, sign * s as f64)).collect();
            assert_eq!(got, want, "{backend:?} {key}");
        }
        let mut latest = runs::get(&st, &run).await.unwrap().metrics;
        latest.sort_by(|a, b| a.key.cmp(&b.key));
        let latest: Vec<(&str, i64, f64)> = latest
            .iter()
            .map(|m| (m.key.as_str(), m.step, m.value))
            .collect();
        assert_eq!(
            latest,
            [("acc", 99, 99.0), ("loss", 99, -99.0)],
            "{backend:?}"
        );
        let chunks = chunk_count(&st, &run).await;
        let want = if matches!(backend, Backend::Sqlite) {
            6
        } else {
            201
        };
        assert_eq!(chunks, want, "{backend:?}");
        // A call with many keys (`log_metrics` of a whole dict) inserts a
        // chunk per key, on SQLite too: 17 keys, twice.
        let wide: Vec<Metric> = (0..17).map(|k| point(&format!("k{k}"), 1.0, 0)).collect();
        for _ in 0..2 {
            runs::log_batch(&st, &run, &wide, &[], &[]).await.unwrap();
        }
        assert_eq!(chunk_count(&st, &run).await, want + 34, "{backend:?}");
    }
}

/// A key's history is read from both places points live: rows (points of
/// an older keel, and points bound to a model or dataset) and chunks. It
/// comes back ordered, without exact duplicates, and the same whether read
/// at once or page by page.
#[tokio::test]
async fn history_merges_rows_and_chunks_in_order() {
    use sqlx::Row;
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (st, run) = store_with_run(backend, dir.path()).await;
        // Even steps as rows, as a keel before chunks wrote them.
        for step in (0..40i64).step_by(2) {
            sqlx::query(
                "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) VALUES ($1, 'loss', $2, 0, $3, $4)",
            )
            .bind(&run)
            .bind(step as f64)
            .bind(1_000 + step)
            .bind(step)
            .execute(st.db.pool())
            .await
            .unwrap();
        }
        // Odd steps in two calls, the second one retried; step 4 again
        // (a duplicate of a row); one point bound to a dataset; NaN and ∞.
        let odd = |from: i64, to: i64| -> Vec<Metric> {
            (from..to)
                .filter(|s| s % 2 == 1)
                .map(|s| point("loss", s as f64, s))
                .collect()
        };
        let mut first = odd(0, 20);
        first.push(point("loss", 4.0, 4));
        let mut bound = point("loss", 0.25, 41);
        bound.dataset_name = Some("eval".into());
        bound.dataset_digest = Some("d1".into());
        first.push(bound);
        let mut second = odd(20, 40);
        second.push(point("loss", f64::NAN, 42));
        second.push(point("loss", f64::INFINITY, 43));
        for ms in [&first, &second, &second] {
            runs::log_batch(&st, &run, ms, &[], &[]).await.unwrap();
        }
        let whole = runs::metric_history(&st, &run, "loss", None, None)
            .await
            .unwrap();
        assert!(whole.next_page_token.is_none());
        let steps: Vec<i64> = whole.items.iter().map(|m| m.step).collect();
        let want: Vec<i64> = (0..40).chain(41..44).collect();
        assert_eq!(steps, want, "{backend:?}");
        for m in &whole.items[..40] {
            assert_eq!((m.value, m.timestamp), (m.step as f64, 1_000 + m.step));
        }
        assert_eq!(whole.items[40].dataset_name.as_deref(), Some("eval"));
        assert!(whole.items[41].value.is_nan());
        assert_eq!(whole.items[42].value, f64::INFINITY);

        // Page by page: the same points, in the same order.
        let mut paged = Vec::new();
        let mut token = None;
        loop {
            let page = runs::metric_history(&st, &run, "loss", Some(7), token.as_deref())
                .await
                .unwrap();
            assert!(page.items.len() <= 7);
            paged.extend(page.items.iter().map(|m| m.step));
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(paged, steps, "{backend:?}");

        // PostgreSQL: one chunk per key per call (three calls). SQLite: each
        // call logs a dozen points, which the later calls append to the
        // first call's chunk. The bound point is a row a logged-model
        // lookup can find.
        let chunks = chunk_count(&st, &run).await;
        let want = if matches!(backend, Backend::Sqlite) {
            1
        } else {
            3
        };
        assert_eq!(chunks, want, "{backend:?}");
        let rows: i64 =
            sqlx::query("SELECT COUNT(*) FROM run_metrics WHERE run_id = $1 AND step = 41")
                .bind(&run)
                .fetch_one(st.db.pool())
                .await
                .unwrap()
                .get(0);
        assert_eq!(rows, 1, "{backend:?}");
        // The latest value is the largest step's.
        let latest = runs::get(&st, &run).await.unwrap().metrics;
        assert_eq!((latest[0].step, latest[0].value), (43, f64::INFINITY));

        // Without max_results the whole history comes back, as MLflow's
        // server answers (past the 25,000 its client asks for per page).
        for c in 0..26i64 {
            let ms: Vec<Metric> = (0..1000)
                .map(|i| point("long", 0.5, c * 1000 + i))
                .collect();
            runs::log_batch(&st, &run, &ms, &[], &[]).await.unwrap();
        }
        let all = runs::metric_history(&st, &run, "long", None, None)
            .await
            .unwrap();
        assert_eq!(all.items.len(), 26_000, "{backend:?}");
        assert!(all.next_page_token.is_none());
        let page = runs::metric_history(&st, &run, "long", Some(25_000), None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 25_000);
        assert!(page.next_page_token.is_some());
        assert!(matches!(
            runs::metric_history(&st, &run, "long", Some(0), None).await,
            Err(TrackingError::Invalid(m)) if m.contains("positive integer")
        ));
    }
}
