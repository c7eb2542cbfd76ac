//! Metric points stored in chunks: the points of one metric key that one
//! request logged (a log-batch of 1,000 steps, say) are one row of
//! `metric_chunks`, their `(step, timestamp, value)` packed in a blob.
//!
//! Why: as one row per point, inserting the points was two thirds of a
//! 1,000-point log-batch's server time (B-tree seeks and page splits per
//! point). A chunk is one insert whatever its size, and 24 bytes per point
//! on disk instead of ~80.
//!
//! What a chunk does not do, and who does it instead:
//! - A point bound to a logged model or a dataset (MLflow 3) carries names
//!   and must be found by model: those stay rows of `run_metrics`.
//! - Exact duplicates (a retried request) are not refused at write time, as
//!   the row table's primary key did: the history read drops them
//!   ([`merge_history`]), which gives the same answer.
//! - Paging: a page of history decodes every chunk of its key and sorts
//!   them (offset paging), so its cost grows with the key's points, not the
//!   page's: ~25 ms per million points.
//! - Latest values per key (what search and run views show) stay in
//!   `latest_metrics`, one row per key, updated by the same statement batch.

use std::cmp::Ordering;

use super::Metric;
use crate::StoreError;

/// The first byte of every chunk: its layout, so that another layout can
/// be added without rewriting stored chunks.
const LAYOUT_V1: u8 = 1;
/// step (i64), timestamp (i64), value (f64 bits), little-endian.
const POINT: usize = 24;

/// Packs points of one key. The value keeps its exact bits: NaN and ±∞
/// need no side column.
pub(crate) fn encode<'a>(points: impl ExactSizeIterator<Item = &'a Metric>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + points.len() * POINT);
    out.push(LAYOUT_V1);
    for m in points {
        out.extend_from_slice(&m.step.to_le_bytes());
        out.extend_from_slice(&m.timestamp.to_le_bytes());
        out.extend_from_slice(&m.value.to_bits().to_le_bytes());
    }
    out
}

/// Unpacks a chunk of `key` (of run `run_id`, named in the error) into
/// `out`.
pub(crate) fn decode(
    run_id: &str,
    key: &str,
    blob: &[u8],
    out: &mut Vec<Metric>,
) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::CorruptRecord {
        what: format!("a metric chunk of run {run_id}, key {key:?}"),
        reason,
    };
    let Some((&layout, body)) = blob.split_first() else {
        return Err(corrupt("it is empty".into()));
    };
    if layout != LAYOUT_V1 {
        return Err(corrupt(format!(
            "unknown layout {layout} (this keel reads layout {LAYOUT_V1})"
        )));
    }
    if body.len() % POINT != 0 {
        return Err(corrupt(format!(
            "{} bytes of points is not a multiple of {POINT}",
            body.len()
        )));
    }
    out.reserve(body.len() / POINT);
    for p in body.chunks_exact(POINT) {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&p[i * 8..i * 8 + 8]);
            b
        };
        out.push(Metric {
            key: key.to_string(),
            step: i64::from_le_bytes(word(0)),
            timestamp: i64::from_le_bytes(word(1)),
            value: f64::from_bits(u64::from_le_bytes(word(2))),
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
        });
    }
    Ok(())
}

/// Whether a point goes into a chunk (it names no model and no dataset).
pub(crate) fn chunkable(m: &Metric) -> bool {
    let none = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
    none(&m.model_id) && none(&m.dataset_name) && none(&m.dataset_digest)
}

/// One key's history from its rows (`run_metrics`, listed first) and its
/// chunks: ordered by (step, timestamp, value) as the row table's query
/// did (NaN sorts as 0, after a real 0), and with exact duplicates dropped
/// (the row's copy kept, as it names its model or dataset).
pub(crate) fn merge_history(mut points: Vec<Metric>) -> Vec<Metric> {
    // Stable: among equal points the rows, listed first, stay first.
    points.sort_by(order);
    points.dedup_by(|later, kept| same_point(later, kept));
    points
}

fn sort_value(m: &Metric) -> (f64, bool) {
    if m.value.is_nan() {
        (0.0, true)
    } else {
        (m.value, false)
    }
}

fn order(a: &Metric, b: &Metric) -> Ordering {
    let (va, na) = sort_value(a);
    let (vb, nb) = sort_value(b);
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then(va.total_cmp(&vb))
        .then(na.cmp(&nb))
}

/// The row table's primary key, less run and key: (timestamp, step, value,
/// is_nan). `-0.0` and `0.0` are one point there, as here.
fn same_point(a: &Metric, b: &Metric) -> bool {
    let (va, na) = sort_value(a);
    let (vb, nb) = sort_value(b);
    a.step == b.step && a.timestamp == b.timestamp && na == nb && va == vb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: i64, timestamp: i64, value: f64) -> Metric {
        Metric {
            key: "loss".into(),
            value,
            timestamp,
            step,
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
        }
    }

    #[test]
    fn points_round_trip_with_their_exact_bits() {
        let points = [
            point(0, 1_700_000_000_000, 0.5),
            point(-3, 0, f64::NAN),
            point(i64::MAX, i64::MIN, f64::INFINITY),
            point(7, 7, f64::NEG_INFINITY),
            point(1, 2, -0.0),
            point(2, 3, f64::MIN_POSITIVE / 3.0),
        ];
        let blob = encode(points.iter());
        assert_eq!(blob.len(), 1 + points.len() * POINT);
        let mut back = Vec::new();
        decode("r", "loss", &blob, &mut back).unwrap();
        assert_eq!(back.len(), points.len());
        for (a, b) in points.iter().zip(&back) {
            assert_eq!((a.step, a.timestamp), (b.step, b.timestamp));
            assert_eq!(a.value.to_bits(), b.value.to_bits());
            assert_eq!(b.key, "loss");
        }
    }

    #[test]
    fn a_damaged_chunk_is_an_error_naming_run_and_key() {
        let blob = encode([point(1, 1, 1.0)].iter());
        let mut out = Vec::new();
        for bad in [&blob[..0], &blob[..blob.len() - 1], &[9u8][..]] {
            let e = decode("run7", "acc", bad, &mut out)
                .unwrap_err()
                .to_string();
            assert!(e.contains("run7") && e.contains("\"acc\""), "{e}");
        }
        assert!(out.is_empty());
    }

    #[test]
    fn history_is_ordered_and_free_of_exact_duplicates() {
        let mut row = point(2, 5, 1.0);
        row.model_id = Some("m-1".into());
        let merged = merge_history(vec![
            row,
            point(2, 5, 1.0),
            point(1, 9, f64::NAN),
            point(1, 9, 0.0),
            point(1, 9, f64::NAN),
            point(1, 8, 3.0),
            point(2, 5, 0.5),
            point(0, 1, -0.0),
            point(0, 1, 0.0),
        ]);
        let got: Vec<(i64, i64, String)> = merged
            .iter()
            .map(|m| (m.step, m.timestamp, format!("{}", m.value)))
            .collect();
        let want = [
            (0, 1, "-0"),
            (1, 8, "3"),
            (1, 9, "0"),
            (1, 9, "NaN"),
            (2, 5, "0.5"),
            (2, 5, "1"),
        ];
        let want: Vec<(i64, i64, String)> = want
            .iter()
            .map(|&(s, t, v)| (s, t, v.to_string()))
            .collect();
        assert_eq!(got, want);
        // The copy from the row table, which names its model, is the one kept.
        assert_eq!(merged[5].model_id.as_deref(), Some("m-1"));
    }
}
