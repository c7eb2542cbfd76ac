//! Metric points stored in chunks: the points of one metric key that one
//! write logged (a log-batch of 1,000 steps, say; on PostgreSQL a group
//! commit of several requests) are one row of `metric_chunks`, their
//! `(step, timestamp, value)` packed in a blob.
//!
//! Why: as one row per point, inserting the points was two thirds of a
//! 1,000-point log-batch's server time (B-tree seeks and page splits per
//! point). A chunk is one insert whatever its size, and 24 bytes per point
//! on disk instead of ~80. On SQLite, a call that logs only a few points
//! of a key (the mlflow client's `log_metric` sends one) appends them to
//! the key's last chunk while it is small (`runs::append_to_chunks`), so
//! per-call logging fills chunks too.
//!
//! What a chunk does not do, and who does it instead:
//! - A point bound to a logged model or a dataset (MLflow 3) carries names
//!   and must be found by model: those stay rows of `run_metrics`.
//! - Exact duplicates (a retried request) are not refused at write time, as
//!   the row table's primary key did: the history read drops them
//!   ([`History::page`]), which gives the same answer.
//! - Paging: a page of history decodes every chunk of its key and sorts
//!   the points (offset paging), so its cost grows with the key's points,
//!   not the page's: ~95 ms per page of a million-point key on SQLite (the
//!   row table's query sorted them too: ~210 ms).
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
    put_points(&mut out, points);
    out
}

/// Points packed as [`encode`] packs them, without the layout byte: what
/// is appended to a stored chunk.
pub(crate) fn encode_points<'a>(points: impl ExactSizeIterator<Item = &'a Metric>) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT);
    put_points(&mut out, points);
    out
}

fn put_points<'a>(out: &mut Vec<u8>, points: impl Iterator<Item = &'a Metric>) {
    for m in points {
        out.extend_from_slice(&m.step.to_le_bytes());
        out.extend_from_slice(&m.timestamp.to_le_bytes());
        out.extend_from_slice(&m.value.to_bits().to_le_bytes());
    }
}

/// Whether a point goes into a chunk (it names no model and no dataset).
pub(crate) fn chunkable(m: &Metric) -> bool {
    let none = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
    none(&m.model_id) && none(&m.dataset_name) && none(&m.dataset_digest)
}

/// One key's history, gathered from its rows (`run_metrics`) and its
/// chunks, then read a page at a time ([`History::page`]).
///
/// Points are held as 32-byte [`Point`]s, not [`Metric`]s (a string per
/// point): a page of a long history sorts those and builds `Metric`s for
/// the page only.
pub(crate) struct History<'k> {
    run_id: &'k str,
    key: &'k str,
    rows: Vec<Metric>,
    points: Vec<Point>,
}

#[derive(Clone, Copy)]
struct Point {
    step: i64,
    timestamp: i64,
    value: f64,
    /// The index in `rows` of the row this point came from, or [`CHUNK`].
    row: u32,
}

const CHUNK: u32 = u32::MAX;

impl<'k> History<'k> {
    pub(crate) fn new(run_id: &'k str, key: &'k str) -> History<'k> {
        History {
            run_id,
            key,
            rows: Vec::new(),
            points: Vec::new(),
        }
    }

    /// Adds a point stored as a row. Rows must come before chunks, so that
    /// a row's copy of a duplicated point (which may name its model or
    /// dataset) is the one kept.
    pub(crate) fn add_row(&mut self, m: Metric) -> Result<(), StoreError> {
        let row = u32::try_from(self.rows.len())
            .ok()
            .filter(|&r| r != CHUNK)
            .ok_or_else(|| self.corrupt("more than 4 billion rows".into()))?;
        self.points.push(Point {
            step: m.step,
            timestamp: m.timestamp,
            value: m.value,
            row,
        });
        self.rows.push(m);
        Ok(())
    }

    /// Adds the points of a stored chunk.
    pub(crate) fn add_chunk(&mut self, blob: &[u8]) -> Result<(), StoreError> {
        let Some((&layout, body)) = blob.split_first() else {
            return Err(self.corrupt("it is empty".into()));
        };
        if layout != LAYOUT_V1 {
            return Err(self.corrupt(format!(
                "unknown layout {layout} (this keel reads layout {LAYOUT_V1})"
            )));
        }
        if body.len() % POINT != 0 {
            return Err(self.corrupt(format!(
                "{} bytes of points is not a multiple of {POINT}",
                body.len()
            )));
        }
        self.points.reserve(body.len() / POINT);
        for p in body.chunks_exact(POINT) {
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&p[i * 8..i * 8 + 8]);
                b
            };
            self.points.push(Point {
                step: i64::from_le_bytes(word(0)),
                timestamp: i64::from_le_bytes(word(1)),
                value: f64::from_bits(u64::from_le_bytes(word(2))),
                row: CHUNK,
            });
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::CorruptRecord {
            what: format!("a metric chunk of run {}, key {:?}", self.run_id, self.key),
            reason,
        }
    }

    /// Up to `take` points from position `skip` of the history, ordered by
    /// (step, timestamp, value) as the row table's query was (NaN sorts as
    /// 0, after a real 0), with exact duplicates dropped.
    pub(crate) fn page(mut self, skip: usize, take: usize) -> Vec<Metric> {
        // Stable, and linear when the chunks come in step order (the usual
        // case): among equal points the rows, added first, stay first.
        self.points.sort_by(order);
        self.points.dedup_by(|later, kept| same_point(later, kept));
        let end = skip.saturating_add(take).min(self.points.len());
        let page = &self.points[skip.min(end)..end];
        let mut rows: Vec<Option<Metric>> = self.rows.into_iter().map(Some).collect();
        page.iter()
            .map(
                |p| match rows.get_mut(p.row as usize).and_then(Option::take) {
                    Some(m) => m,
                    None => Metric {
                        key: self.key.to_string(),
                        value: p.value,
                        timestamp: p.timestamp,
                        step: p.step,
                        model_id: None,
                        dataset_name: None,
                        dataset_digest: None,
                    },
                },
            )
            .collect()
    }
}

/// The value as the row table compared it: NaN as 0 (flagged), and `-0.0`
/// equal to `0.0` (so that among such points the row, listed first, stays
/// first).
fn sort_value(p: &Point) -> (f64, bool) {
    if p.value.is_nan() {
        (0.0, true)
    } else if p.value == 0.0 {
        (0.0, false)
    } else {
        (p.value, false)
    }
}

fn order(a: &Point, b: &Point) -> Ordering {
    let (va, na) = sort_value(a);
    let (vb, nb) = sort_value(b);
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then(va.total_cmp(&vb))
        .then(na.cmp(&nb))
}

/// The row table's primary key, less run and key: (timestamp, step, value,
/// is_nan). `-0.0` and `0.0` are one point there, as here.
fn same_point(a: &Point, b: &Point) -> bool {
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

    fn history(rows: Vec<Metric>, chunks: &[Vec<Metric>]) -> History<'static> {
        let mut h = History::new("r", "loss");
        for m in rows {
            h.add_row(m).unwrap();
        }
        for c in chunks {
            h.add_chunk(&encode(c.iter())).unwrap();
        }
        h
    }

    #[test]
    fn points_round_trip_with_their_exact_bits() {
        let points = vec![
            point(-3, 0, f64::NAN),
            point(0, 1_700_000_000_000, 0.5),
            point(1, 2, -0.0),
            point(2, 3, f64::MIN_POSITIVE / 3.0),
            point(7, 7, f64::NEG_INFINITY),
            point(i64::MAX, i64::MIN, f64::INFINITY),
        ];
        assert_eq!(encode(points.iter()).len(), 1 + points.len() * POINT);
        let back = history(vec![], std::slice::from_ref(&points)).page(0, usize::MAX);
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
        for bad in [&blob[..0], &blob[..blob.len() - 1], &[9u8][..]] {
            let mut h = History::new("run7", "acc");
            let e = h.add_chunk(bad).unwrap_err().to_string();
            assert!(e.contains("run7") && e.contains("\"acc\""), "{e}");
        }
    }

    #[test]
    fn history_is_ordered_and_free_of_exact_duplicates() {
        let mut row = point(2, 5, 1.0);
        row.model_id = Some("m-1".into());
        let chunks = [
            vec![point(2, 5, 1.0), point(1, 9, f64::NAN), point(1, 9, 0.0)],
            vec![point(1, 9, f64::NAN), point(1, 8, 3.0), point(2, 5, 0.5)],
            vec![point(0, 1, -0.0), point(0, 1, 0.0)],
        ];
        let h = || history(vec![row.clone()], &chunks);
        let merged = h().page(0, usize::MAX);
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
        // Pages are slices of that order; past the end is empty.
        let steps = |v: Vec<Metric>| v.iter().map(|m| m.step).collect::<Vec<_>>();
        assert_eq!(steps(h().page(2, 3)), [1, 1, 2]);
        assert_eq!(h().page(5, 3)[0].model_id.as_deref(), Some("m-1"));
        assert!(h().page(6, 3).is_empty());
        assert!(h().page(usize::MAX, usize::MAX).is_empty());
        // A row's 0.0 and a chunk's -0.0 are one point: the row's is kept.
        let mut zero = point(3, 1, 0.0);
        zero.model_id = Some("m-0".into());
        let merged = history(vec![zero], &[vec![point(3, 1, -0.0)]]).page(0, 9);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].model_id.as_deref(), Some("m-0"));
    }
}
