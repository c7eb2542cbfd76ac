//! Column profiles in one streaming pass with bounded memory.
//!
//! Per column: physical type, inferred kind (Evidently's rules, see
//! [`ColumnKind::infer`]), count, nulls, distinct count, and by type:
//!
//! - numbers: min, max, mean, sample std (ddof = 1, as pandas
//!   `describe()`), zeros, NaN and ±inf counts, quantiles (1, 5, 25, 50, 75,
//!   95, 99 %) and a 20-bin equal-width histogram over [min, max];
//! - strings and dates: lexical min and max, string lengths;
//! - categorical and text columns: the 10 most frequent values.
//!
//! Exactness: distinct counts are exact up to 100 000 values, then
//! HyperLogLog (±0.81 % standard error); quantiles and the histogram are
//! exact up to 200 000 values, then from a KLL-style sketch whose rank error
//! is reported in [`NumericSummary::quantile_rank_error`]; top values are
//! exact while at most 1 000 distinct values were seen, then Misra–Gries
//! lower bounds ([`ColumnProfile::top_values_error`]). Memory per column is
//! a few MB at most, whatever the number of rows.
//!
//! Caching: a profile is a pure function of the file content and
//! [`PROFILE_VERSION`]; the caller keys its cache by the content hash and
//! this version.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;

use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::parse::Parser;
use arrow_schema::DataType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::column::{ColumnKind, Physical, Values};
use crate::csv;
use crate::error::{DataError, Result};
use crate::read::{self, ReadOptions};
use crate::sketch::{
    hash_bytes, hash_f64, hash_u64, DistinctCounter, FrequentItems, PreHashed, QuantileSketch,
};

/// Bumped whenever the profile's content or algorithms change, so cached
/// profiles can be recomputed.
pub const PROFILE_VERSION: u32 = 1;

/// Quantile levels reported.
pub const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

const TOP_VALUES: usize = 10;
const FREQUENT_CAPACITY: usize = 1_000;
const HISTOGRAM_BINS: usize = 20;

/// The profile of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// [`PROFILE_VERSION`] of the code that computed it.
    pub version: u32,
    /// Rows.
    pub rows: u64,
    /// One entry per column, in file order.
    pub columns: Vec<ColumnProfile>,
}

/// The profile of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// The Arrow data type as read.
    pub data_type: String,
    /// Physical kind after normalization.
    pub physical: Physical,
    /// Inferred kind (Evidently's rules).
    pub kind: ColumnKind,
    /// Non-missing values.
    pub count: u64,
    /// Missing values (nulls, empty strings; NaN is counted separately).
    pub nulls: u64,
    /// Distinct non-missing values.
    pub distinct: u64,
    /// Whether `distinct` is exact (else HyperLogLog).
    pub distinct_exact: bool,
    /// Summary of numeric columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericSummary>,
    /// Summary of string and date columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSummary>,
    /// Most frequent values: categorical columns; text columns only the
    /// values seen more than once (and more often than the error bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_values: Vec<TopValue>,
    /// Each top-value count may be this much below the truth (0 = exact).
    #[serde(default)]
    pub top_values_error: u64,
}

/// Numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Smallest finite value.
    #[serde(with = "crate::jsonf64")]
    pub min: f64,
    /// Largest finite value.
    #[serde(with = "crate::jsonf64")]
    pub max: f64,
    /// Mean of finite values.
    #[serde(with = "crate::jsonf64")]
    pub mean: f64,
    /// Sample standard deviation (ddof = 1) of finite values.
    #[serde(with = "crate::jsonf64")]
    pub std: f64,
    /// Values equal to zero.
    pub zeros: u64,
    /// NaN values.
    pub nan: u64,
    /// ±inf values.
    pub infinite: u64,
    /// `(level, value)` for each of [`QUANTILES`].
    pub quantiles: Vec<(f64, f64)>,
    /// Worst-case rank error of the quantiles and histogram as a fraction
    /// of the count (0 = exact).
    pub quantile_rank_error: f64,
    /// Equal-width histogram over [min, max].
    pub histogram: Histogram,
}

/// An equal-width histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `bins + 1` edges.
    pub edges: Vec<f64>,
    /// Counts per bin (`[e_i, e_{i+1})`, last bin closed).
    pub counts: Vec<u64>,
}

/// Strings and dates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSummary {
    /// Lexically smallest value (dates: earliest).
    pub min: String,
    /// Lexically largest value (dates: latest).
    pub max: String,
    /// Shortest length in characters.
    pub min_length: u64,
    /// Longest length in characters.
    pub max_length: u64,
    /// Mean length in characters.
    pub mean_length: f64,
}

/// A frequent value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    /// The value, rendered.
    pub value: String,
    /// Its count (a lower bound when `top_values_error > 0`).
    pub count: u64,
}

impl Profile {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profile serializes")
    }

    /// The profile of a column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Profiles a file, streaming. CSV files are cut into record-aligned
/// chunks that decode and summarize in parallel; other formats stream
/// batch by batch.
pub fn profile(path: &Path) -> Result<Profile> {
    let options = ReadOptions::new();
    if read::Format::from_path(path)? == read::Format::Csv {
        if let Some(p) = profile_csv(path, &options, csv::CHUNK_BYTES)? {
            return Ok(p);
        }
    }
    profile_stream(read::open(path, &options)?)
}

/// Profiles in-memory batches.
pub fn profile_batches(batches: &[RecordBatch]) -> Result<Profile> {
    profile_stream(batches.iter().cloned().map(Ok))
}

/// Parts summarized at once: one per thread, so memory is a few chunks
/// per thread whatever the file size.
fn round_size() -> usize {
    rayon::current_num_threads().clamp(1, 16)
}

/// Profiles a stream of batches. Reading (on a helper thread) overlaps
/// with the statistics; batches are summarized in parallel, each column
/// in parallel, and the summaries merged in stream order.
pub fn profile_stream<I>(batches: I) -> Result<Profile>
where
    I: IntoIterator<Item = Result<RecordBatch>>,
    I::IntoIter: Send,
{
    let iter = batches.into_iter();
    let round = round_size();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch>>(round);
        scope.spawn(move || {
            for b in iter {
                if tx.send(b).is_err() {
                    break;
                }
            }
        });
        let mut profiler: Option<Profiler> = None;
        let mut rx = rx.into_iter().peekable();
        while rx.peek().is_some() {
            let parts = rx.by_ref().take(round).collect::<Result<Vec<_>>>()?;
            let profiler =
                profiler.get_or_insert_with(|| Profiler::new(parts[0].schema().fields()));
            let summaries = parts
                .par_iter()
                .map(|b| profiler.summarize(std::slice::from_ref(b)))
                .collect::<Result<Vec<_>>>()?;
            for s in summaries {
                profiler.merge(s);
            }
        }
        Ok(profiler.map_or_else(
            || Profile {
                version: PROFILE_VERSION,
                rows: 0,
                columns: Vec::new(),
            },
            Profiler::finish,
        ))
    })
}

/// The CSV fast path: `Ok(None)` when the file cannot be cut into chunks
/// (see [`crate::csv`]) and must be read sequentially.
///
/// A file whose schema is inferred from every record is read once: the
/// schema is guessed from its first chunk, and the pass that summarizes the
/// records also classifies them as inference does. Only when the types
/// found differ from the guess (integers until a decimal in the last chunk)
/// is the file read again, under the schema inferred from every record.
fn profile_csv(path: &Path, options: &ReadOptions, chunk_bytes: usize) -> Result<Option<Profile>> {
    let size = std::fs::metadata(path)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let sample = if size > options.csv_full_inference_bytes {
        csv::Sample::Records(options.csv_infer_rows)
    } else {
        let Some((guess, start)) = csv::infer_schema(path, csv::Sample::FirstChunk, chunk_bytes)?
        else {
            return Ok(None);
        };
        match scan_csv(
            path,
            CsvPlan::new(guess, Types::Guessed),
            start,
            chunk_bytes,
        )? {
            Scan::Done(p) => return Ok(Some(p)),
            Scan::NotSplittable => return Ok(None),
            Scan::Mistyped => csv::Sample::All,
        }
    };
    let Some((schema, start)) = csv::infer_schema(path, sample, chunk_bytes)? else {
        return Ok(None);
    };
    match scan_csv(
        path,
        CsvPlan::new(schema, Types::Inferred),
        start,
        chunk_bytes,
    )? {
        Scan::Done(p) => Ok(Some(p)),
        // `Mistyped` only comes from a guessed schema.
        Scan::NotSplittable | Scan::Mistyped => Ok(None),
    }
}

/// Whether a CSV schema is the one inferred for the file or a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Types {
    /// Inferred by the rules of arrow-csv over the sample it needs.
    Inferred,
    /// Guessed from a part of the file: to be checked on every record.
    Guessed,
}

/// How one CSV column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Int64, parsed from the field.
    Int,
    /// Float64, parsed from the field.
    Float,
    /// Utf8, the field itself.
    Str,
    /// Other types (booleans, dates, timestamps, all-null): through arrow's
    /// reader, whose conversions are not worth repeating.
    Arrow,
}

/// How the chunks of one CSV file are read.
struct CsvPlan {
    schema: arrow_schema::SchemaRef,
    reads: Vec<Read>,
    /// The columns read as [`Read::Arrow`].
    arrow: Vec<usize>,
    /// The columns whose values are classified, to check a guessed type
    /// (strings are strings whatever comes later).
    check: Vec<bool>,
}

impl CsvPlan {
    fn new(schema: arrow_schema::SchemaRef, types: Types) -> CsvPlan {
        let reads: Vec<Read> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => Read::Int,
                DataType::Float64 => Read::Float,
                DataType::Utf8 => Read::Str,
                _ => Read::Arrow,
            })
            .collect();
        let arrow = (0..reads.len())
            .filter(|&i| reads[i] == Read::Arrow)
            .collect();
        let check = schema
            .fields()
            .iter()
            .map(|f| types == Types::Guessed && *f.data_type() != DataType::Utf8)
            .collect();
        CsvPlan {
            schema,
            reads,
            arrow,
            check,
        }
    }
}

/// Values tallied within a chunk before they reach their column's
/// summaries: each value costs one hash and one lookup, and the distinct
/// set, the frequent items, min/max and lengths see each distinct value
/// once with its count. Exact: none of those depends on the order of the
/// values, and the frequent items never prune while a chunk's tally is
/// spilled into them ([`TALLY_LIMIT`]), so they end up with the counts
/// that value-by-value insertion gives.
enum Tally {
    /// Values go straight to the summaries (floats, columns read by arrow,
    /// and tallies spilled because full).
    Off,
    /// By hash (as the distinct counter hashes them): the value, its count.
    Strings(HashMap<u64, (String, u64), BuildHasherDefault<PreHashed>>),
    Ints(HashMap<u64, (i64, u64), BuildHasherDefault<PreHashed>>),
}

/// Distinct values a tally holds before it spills; at most the number of
/// values frequent items hold without pruning.
const TALLY_LIMIT: usize = 2 * FREQUENT_CAPACITY;

impl Tally {
    #[inline]
    fn string(&mut self, acc: &mut Acc, s: &str) {
        let Tally::Strings(map) = self else {
            return acc.string(s);
        };
        let h = hash_bytes(s.as_bytes());
        let full = map.len() >= TALLY_LIMIT;
        match map.get_mut(&h) {
            Some((v, c)) if v == s => *c += 1,
            None if !full => {
                map.insert(h, (s.to_string(), 1));
            }
            // Full, or two values with one hash.
            _ => {
                self.spill(acc);
                acc.string(s);
            }
        }
    }

    #[inline]
    fn int(&mut self, acc: &mut Acc, v: i64) {
        // Every value, in order: the mean's rounding depends on the order.
        acc.number(v as f64);
        let Tally::Ints(map) = self else {
            acc.distinct.insert_hash(hash_u64(v as u64));
            acc.ints.insert(&v);
            return;
        };
        // `hash_u64` is a bijection: one hash, one value.
        let h = hash_u64(v as u64);
        let full = map.len() >= TALLY_LIMIT;
        match map.get_mut(&h) {
            Some((_, c)) => *c += 1,
            None if !full => {
                map.insert(h, (v, 1));
            }
            None => {
                self.spill(acc);
                acc.distinct.insert_hash(h);
                acc.ints.insert(&v);
            }
        }
    }

    /// Hands the tallied values to the summaries; values then go straight
    /// there.
    fn spill(&mut self, acc: &mut Acc) {
        match std::mem::replace(self, Tally::Off) {
            Tally::Off => {}
            Tally::Strings(map) => {
                for (h, (s, c)) in map {
                    acc.strings_counted(&s, h, c);
                }
            }
            Tally::Ints(map) => {
                for (h, (v, c)) in map {
                    acc.distinct.insert_hash(h);
                    acc.ints.insert_counted(&v, c);
                }
            }
        }
    }
}

/// The outcome of [`scan_csv`].
enum Scan {
    Done(Profile),
    NotSplittable,
    /// The guessed schema is not the inferred one.
    Mistyped,
}

/// Profiles the records of the CSV file `path` from byte `start` on, in
/// chunks summarized in parallel and merged in file order.
fn scan_csv(path: &Path, plan: CsvPlan, start: u64, chunk_bytes: usize) -> Result<Scan> {
    let mut chunks = csv::Chunks::open(path, start, chunk_bytes)?;
    let round = round_size();
    let mut profiler = Profiler::new(plan.schema.fields());
    // Type bits over every record; strings need no checking.
    let mut packed: Vec<u16> = plan
        .schema
        .fields()
        .iter()
        .map(|f| {
            if *f.data_type() == DataType::Utf8 {
                csv::UTF8
            } else {
                0
            }
        })
        .collect();
    let guessed = plan.check.contains(&true);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(round);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || loop {
            for bytes in recycled.try_iter() {
                chunks.recycle(bytes);
            }
            let next = chunks.next_chunk();
            let stop = !matches!(next, Ok(Some(_)));
            if tx.send(next).is_err() || stop {
                break;
            }
        });
        loop {
            let mut parts = Vec::with_capacity(round);
            let mut done = false;
            while parts.len() < round {
                match rx.recv() {
                    Ok(Ok(Some(c))) => parts.push(c),
                    Ok(Ok(None)) | Err(_) => {
                        done = true;
                        break;
                    }
                    Ok(Err(csv::SplitError::Data(e))) => return Err(e),
                    Ok(Err(csv::SplitError::NotSplittable)) => return Ok(Scan::NotSplittable),
                }
            }
            let summaries: Vec<_> = parts
                .par_iter()
                .map(|c| profiler.summarize_csv(&c.bytes, &plan))
                .collect();
            for (s, c) in summaries.into_iter().zip(parts) {
                match s {
                    Ok((s, bits)) => {
                        profiler.merge(s);
                        for (p, b) in packed.iter_mut().zip(bits) {
                            *p |= b;
                        }
                    }
                    // Under a guessed type a value that does not parse may
                    // just mean the guess was wrong.
                    Err(PartError::Csv(_)) if guessed => return Ok(Scan::Mistyped),
                    Err(PartError::Csv(e)) => return Err(csv::chunk_error(path, e, profiler.rows)),
                    Err(PartError::Data(e)) => return Err(e),
                }
                // The reader may be gone (the last chunk was read).
                let _ = recycle.send(c.bytes);
            }
            if done {
                if guessed && !csv::types_match(&plan.schema, &packed) {
                    return Ok(Scan::Mistyped);
                }
                return Ok(Scan::Done(profiler.finish()));
            }
        }
    })
}

enum PartError {
    Csv(arrow_schema::ArrowError),
    Data(DataError),
}

/// Column summaries of the stream so far.
struct Profiler {
    rows: u64,
    columns: Vec<Acc>,
}

/// Column summaries of one part of the stream.
struct Summary {
    rows: u64,
    columns: Vec<Acc>,
}

impl Profiler {
    fn new(fields: &arrow_schema::Fields) -> Profiler {
        Profiler {
            rows: 0,
            columns: fields
                .iter()
                .map(|f| {
                    Acc::new(
                        f.name().clone(),
                        f.data_type().to_string(),
                        Physical::of(f.data_type()),
                    )
                })
                .collect(),
        }
    }

    /// Summarizes batches of one part, columns in parallel.
    fn summarize(&self, batches: &[RecordBatch]) -> Result<Summary> {
        let columns = self
            .columns
            .par_iter()
            .enumerate()
            .map(|(i, global)| {
                let mut acc = global.fresh();
                for batch in batches {
                    acc.push_array(batch.column(i))?;
                }
                acc.seal(global);
                Ok(acc)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Summary {
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            columns,
        })
    }

    /// Summarizes one CSV chunk read straight from its fields (see
    /// [`CsvPlan`], [`csv::for_each_record`]), and the type bits of its
    /// records where `plan` checks them. Any record the direct reading cannot take (a parse failure,
    /// the wrong width, invalid UTF-8) sends the whole chunk through arrow's
    /// reader, which either reads it the same way or gives its own error.
    fn summarize_csv(
        &self,
        bytes: &[u8],
        plan: &CsvPlan,
    ) -> std::result::Result<(Summary, Vec<u16>), PartError> {
        let mut columns: Vec<Acc> = self.columns.iter().map(Acc::fresh).collect();
        let mut tallies: Vec<Tally> = plan
            .reads
            .iter()
            .map(|r| match r {
                Read::Int => Tally::Ints(HashMap::default()),
                Read::Str => Tally::Strings(HashMap::default()),
                Read::Float | Read::Arrow => Tally::Off,
            })
            .collect();
        // Numbers are parsed record by record but summarized column by
        // column afterwards, so that one column's summaries (a 16 KiB
        // HyperLogLog, a tally) stay in cache while its values go in.
        let mut ints: Vec<Vec<i64>> = vec![Vec::new(); columns.len()];
        let mut floats: Vec<Vec<f64>> = vec![Vec::new(); columns.len()];
        let mut bits = vec![0u16; columns.len()];
        let rows = csv::for_each_record(bytes, columns.len(), u64::MAX, |fields| {
            for (i, &s) in fields.iter().enumerate() {
                let read = plan.reads[i];
                if s.is_empty() {
                    // Every type reads an empty field as null, as arrow does.
                    if read != Read::Arrow {
                        columns[i].nulls += 1;
                    }
                    continue;
                }
                if plan.check[i] {
                    bits[i] |= csv::classify(s);
                }
                // The parsers arrow's reader calls, so values are the same.
                match read {
                    Read::Int => match Int64Type::parse(s) {
                        Some(v) => ints[i].push(v),
                        None => return false,
                    },
                    Read::Float => match Float64Type::parse(s) {
                        Some(v) => floats[i].push(v),
                        None => return false,
                    },
                    Read::Str => tallies[i].string(&mut columns[i], s),
                    Read::Arrow => {}
                }
            }
            true
        });
        let Some(rows) = rows else {
            return self.summarize_csv_with_arrow(bytes, plan);
        };
        for (i, (acc, mut tally)) in columns.iter_mut().zip(tallies).enumerate() {
            if plan.reads[i] != Read::Arrow {
                acc.rows += rows;
            }
            acc.distinct.reserve(floats[i].len());
            for &v in &floats[i] {
                acc.float(v);
            }
            for &v in &ints[i] {
                tally.int(acc, v);
            }
            tally.spill(acc);
        }
        if !plan.arrow.is_empty() {
            let batches = csv::decode(bytes, plan.schema.clone(), None, Some(plan.arrow.clone()))
                .map_err(PartError::Csv)?;
            for batch in &batches {
                for (array, &i) in batch.columns().iter().zip(&plan.arrow) {
                    columns[i].push_array(array).map_err(PartError::Data)?;
                }
            }
        }
        for (acc, global) in columns.iter_mut().zip(&self.columns) {
            acc.seal(global);
        }
        Ok((Summary { rows, columns }, bits))
    }

    /// [`Profiler::summarize_csv`] through arrow's reader.
    fn summarize_csv_with_arrow(
        &self,
        bytes: &[u8],
        plan: &CsvPlan,
    ) -> std::result::Result<(Summary, Vec<u16>), PartError> {
        let batches =
            csv::decode(bytes, plan.schema.clone(), None, None).map_err(PartError::Csv)?;
        let summary = self.summarize(&batches).map_err(PartError::Data)?;
        let mut bits = vec![0u16; plan.check.len()];
        if plan.check.contains(&true) {
            let checked: Vec<usize> = (0..bits.len()).filter(|&i| plan.check[i]).collect();
            let found = csv::type_bits(bytes, &plan.schema, &checked).map_err(PartError::Csv)?;
            for (&i, b) in checked.iter().zip(found) {
                bits[i] = b;
            }
        }
        Ok((summary, bits))
    }

    /// Adds a later part.
    fn merge(&mut self, part: Summary) {
        self.rows += part.rows;
        self.columns
            .par_iter_mut()
            .zip(part.columns)
            .for_each(|(g, p)| g.merge(p));
    }

    fn finish(self) -> Profile {
        Profile {
            version: PROFILE_VERSION,
            rows: self.rows,
            columns: self.columns.into_par_iter().map(Acc::finish).collect(),
        }
    }
}

struct Acc {
    name: String,
    data_type: String,
    physical: Physical,
    rows: u64,
    nulls: u64,
    distinct: DistinctCounter,
    // numbers
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    zeros: u64,
    nan: u64,
    infinite: u64,
    quantiles: QuantileSketch,
    ints: FrequentItems<i64>,
    // strings
    strings: FrequentItems<String>,
    smin: Option<String>,
    smax: Option<String>,
    len_min: u64,
    len_max: u64,
    len_sum: u64,
}

impl Acc {
    fn new(name: String, data_type: String, physical: Physical) -> Acc {
        Acc {
            name,
            data_type,
            physical,
            rows: 0,
            nulls: 0,
            distinct: DistinctCounter::new(),
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zeros: 0,
            nan: 0,
            infinite: 0,
            quantiles: QuantileSketch::new(),
            ints: FrequentItems::new(FREQUENT_CAPACITY),
            strings: FrequentItems::new(FREQUENT_CAPACITY),
            smin: None,
            smax: None,
            len_min: u64::MAX,
            len_max: 0,
            len_sum: 0,
        }
    }

    /// An empty summary for a later part of this column. Once the
    /// distinct count is an estimate, parts skip the exact phase (the
    /// merged registers are the same either way).
    fn fresh(&self) -> Acc {
        let mut acc = Acc::new(self.name.clone(), self.data_type.clone(), self.physical);
        if !self.distinct.is_exact() {
            acc.distinct = DistinctCounter::new_estimating();
        }
        acc
    }

    /// Ends a part of the stream that `global` summarizes so far. The
    /// quantile sketch is compacted here, in parallel with other parts,
    /// unless the part will likely be merged as raw values (all parts of
    /// this round together still within the exact limit), where the sort
    /// would be wasted.
    fn seal(&mut self, global: &Acc) {
        let round = round_size() as u64;
        if !global
            .quantiles
            .merges_exactly(self.quantiles.count() * round)
        {
            self.quantiles.seal();
        }
    }

    /// Adds the summary of a later part.
    fn merge(&mut self, o: Acc) {
        self.rows += o.rows;
        self.nulls += o.nulls;
        self.distinct.merge(o.distinct);
        if o.n > 0 {
            // Chan et al.'s pairwise update of mean and sum of squares.
            let n = self.n + o.n;
            let delta = o.mean - self.mean;
            self.mean += delta * (o.n as f64 / n as f64);
            self.m2 += o.m2 + delta * delta * (self.n as f64 * o.n as f64 / n as f64);
            self.n = n;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.zeros += o.zeros;
        self.nan += o.nan;
        self.infinite += o.infinite;
        self.quantiles.merge(o.quantiles);
        self.ints.merge(o.ints);
        self.strings.merge(o.strings);
        if let Some(s) = o.smin {
            if self.smin.as_ref().is_none_or(|m| s < *m) {
                self.smin = Some(s);
            }
        }
        if let Some(s) = o.smax {
            if self.smax.as_ref().is_none_or(|m| s > *m) {
                self.smax = Some(s);
            }
        }
        self.len_min = self.len_min.min(o.len_min);
        self.len_max = self.len_max.max(o.len_max);
        self.len_sum += o.len_sum;
    }

    #[inline]
    fn number(&mut self, x: f64) {
        if x.is_nan() {
            self.nan += 1;
            return;
        }
        if x.is_infinite() {
            self.infinite += 1;
            return;
        }
        // Welford's update: numerically stable mean and variance.
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        if x == 0.0 {
            self.zeros += 1;
        }
        self.quantiles.insert(x);
    }

    #[inline]
    fn string(&mut self, s: &str) {
        self.strings_counted(s, hash_bytes(s.as_bytes()), 1);
    }

    /// `count` occurrences of `s`, whose [`hash_bytes`] is `h`.
    fn strings_counted(&mut self, s: &str, h: u64, count: u64) {
        self.distinct.insert_hash(h);
        self.strings.insert_counted(s, count);
        let len = s.chars().count() as u64;
        self.len_min = self.len_min.min(len);
        self.len_max = self.len_max.max(len);
        self.len_sum += len * count;
        if self.smin.as_deref().is_none_or(|m| s < m) {
            self.smin = Some(s.to_string());
        }
        if self.smax.as_deref().is_none_or(|m| s > m) {
            self.smax = Some(s.to_string());
        }
    }

    #[inline]
    fn int(&mut self, v: i64) {
        self.distinct.insert_hash(hash_u64(v as u64));
        self.ints.insert(&v);
        self.number(v as f64);
    }

    #[inline]
    fn float(&mut self, v: f64) {
        if v.is_finite() {
            self.distinct.insert_hash(hash_f64(v));
        }
        self.number(v);
    }

    /// Adds the values of an array of this column.
    fn push_array(&mut self, array: &ArrayRef) -> Result<()> {
        if self.physical == Physical::Other {
            self.rows += array.len() as u64;
            self.nulls += array.null_count() as u64;
            return Ok(());
        }
        let values = Values::from_array(array).ok_or_else(|| DataError::Column {
            column: self.name.clone(),
            message: format!("cannot read type {}", array.data_type()),
        })?;
        self.push(&values);
        Ok(())
    }

    fn push(&mut self, values: &Values) {
        self.rows += values.len() as u64;
        match values {
            Values::Int(a) => {
                self.nulls += a.null_count() as u64;
                for v in a.iter().flatten() {
                    self.int(v);
                }
            }
            Values::Float(a) => {
                self.nulls += a.null_count() as u64;
                for v in a.iter().flatten() {
                    self.float(v);
                }
            }
            Values::Str(a) => {
                for v in a.iter() {
                    match v {
                        Some(s) if !s.is_empty() => self.string(s),
                        _ => self.nulls += 1,
                    }
                }
            }
            Values::Bool(a) => {
                self.nulls += a.null_count() as u64;
                for v in a.iter().flatten() {
                    self.string(if v { "True" } else { "False" });
                }
            }
        }
    }

    fn finish(self) -> ColumnProfile {
        let (distinct, distinct_exact) = self.distinct.estimate();
        let count = self.rows - self.nulls;
        let kind = ColumnKind::infer(self.physical, distinct, count, self.nulls > 0);
        let numeric = (matches!(self.physical, Physical::Integer | Physical::Float)).then(|| {
            let (min, max) = if self.n == 0 {
                (f64::NAN, f64::NAN)
            } else {
                (self.min, self.max)
            };
            let edges = if self.n == 0 {
                Vec::new()
            } else if min == max {
                vec![min - 0.5, max + 0.5]
            } else {
                crate::stats::linspace(min, max, HISTOGRAM_BINS + 1)
            };
            let counts = if edges.is_empty() {
                Vec::new()
            } else {
                self.quantiles.histogram(&edges)
            };
            NumericSummary {
                min,
                max,
                mean: if self.n == 0 { f64::NAN } else { self.mean },
                std: if self.n < 2 {
                    f64::NAN
                } else {
                    (self.m2 / (self.n - 1) as f64).sqrt()
                },
                zeros: self.zeros,
                nan: self.nan,
                infinite: self.infinite,
                quantiles: if self.n == 0 {
                    Vec::new()
                } else {
                    QUANTILES
                        .iter()
                        .copied()
                        .zip(self.quantiles.quantiles(&QUANTILES))
                        .collect()
                },
                quantile_rank_error: self.quantiles.rank_error_bound(),
                histogram: Histogram { edges, counts },
            }
        });
        let text = (matches!(
            self.physical,
            Physical::String | Physical::Datetime | Physical::Boolean
        ) && self.smin.is_some())
        .then(|| TextSummary {
            min: self.smin.clone().unwrap_or_default(),
            max: self.smax.clone().unwrap_or_default(),
            min_length: self.len_min,
            max_length: self.len_max,
            mean_length: self.len_sum as f64 / count.max(1) as f64,
        });
        let (top_values, top_values_error) = match (kind, self.physical) {
            (ColumnKind::Categorical | ColumnKind::Text, Physical::Integer) => (
                self.ints
                    .top(TOP_VALUES)
                    .into_iter()
                    .map(|(v, c)| TopValue {
                        value: v.to_string(),
                        count: c,
                    })
                    .collect(),
                self.ints.error_bound(),
            ),
            (ColumnKind::Categorical | ColumnKind::Text, _) => (
                self.strings
                    .top(TOP_VALUES)
                    .into_iter()
                    .map(|(v, c)| TopValue { value: v, count: c })
                    .collect(),
                self.strings.error_bound(),
            ),
            _ => (Vec::new(), 0),
        };
        let mut top_values: Vec<TopValue> = top_values;
        if kind == ColumnKind::Text {
            // Free text: a value seen once says nothing, and a count within
            // the Misra–Gries error could belong to any value.
            top_values.retain(|t| t.count > 1 && t.count > top_values_error);
        }
        ColumnProfile {
            name: self.name,
            data_type: self.data_type,
            physical: self.physical,
            kind,
            count,
            nulls: self.nulls,
            distinct,
            distinct_exact,
            numeric,
            text,
            top_values,
            top_values_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};

    #[test]
    fn profile_of_a_small_batch() {
        let b = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(2.0),
                    None,
                    Some(4.0),
                    Some(f64::NAN),
                ])) as ArrayRef,
            ),
            (
                "k",
                Arc::new(Int64Array::from(vec![1, 1, 2, 1, 3])) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("bb"),
                    Some("a"),
                    Some(""),
                    None,
                    Some("bb"),
                ])) as ArrayRef,
            ),
        ])
        .unwrap();
        // Split in two batches to exercise the merge across batches.
        let p = profile_batches(&[b.slice(0, 2), b.slice(2, 3)]).unwrap();
        assert_eq!(p.rows, 5);
        let x = p.column("x").unwrap();
        assert_eq!(
            (x.count, x.nulls, x.distinct, x.kind),
            (4, 1, 3, ColumnKind::Numerical)
        );
        let n = x.numeric.as_ref().unwrap();
        assert_eq!((n.min, n.max, n.nan), (1.0, 4.0, 1));
        assert!((n.mean - 7.0 / 3.0).abs() < 1e-15);
        // Sample std of 1, 2, 4: sqrt(((4/3)² + (1/3)² + (5/3)²) / 2).
        assert!((n.std - (7.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(n.quantiles[3], (0.5, 2.0));
        assert_eq!(n.histogram.counts.iter().sum::<u64>(), 3);
        let k = p.column("k").unwrap();
        assert_eq!(k.kind, ColumnKind::Categorical);
        assert_eq!(
            k.top_values[0],
            TopValue {
                value: "1".into(),
                count: 3
            }
        );
        let s = p.column("s").unwrap();
        assert_eq!((s.count, s.nulls, s.distinct), (3, 2, 2));
        let t = s.text.as_ref().unwrap();
        assert_eq!(
            (t.min.as_str(), t.max.as_str(), t.min_length, t.max_length),
            ("a", "bb", 1, 2)
        );
        assert_eq!(
            s.top_values[0],
            TopValue {
                value: "bb".into(),
                count: 2
            }
        );
        // Round trip through JSON (stored with dataset versions).
        let back: Profile = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back.rows, p.rows);
        assert_eq!(back.columns.len(), 3);
    }

    /// A CSV with the awkward cases: quoted commas, doubled quotes and
    /// newlines inside quotes, CRLF and LF, empty fields, NaN/inf, dates,
    /// booleans, and more distinct values than the exact top-values limit.
    fn awkward_csv(rows: usize) -> String {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut out = String::from("i,f,s,c,b,d,u\n");
        for r in 0..rows {
            let i = if r % 17 == 0 {
                String::new()
            } else {
                rng.random_range(-500i64..500).to_string()
            };
            let f = match r % 41 {
                0 => "NaN".to_string(),
                1 => "inf".to_string(),
                2 => String::new(),
                3 => "1e5".to_string(),
                4 => ".5".to_string(),
                _ => format!("{}", rng.random::<f64>() * 100.0 - 50.0),
            };
            let s = match r % 7 {
                0 => format!("\"a,{r}\""),
                1 => format!("\"say \"\"hi\"\" {r}\""),
                2 => format!("\"two\nlines {}\"", r % 5),
                3 => String::new(),
                4 => format!("été{}", r % 3),
                _ => format!("w{}", rng.random_range(0..3000)),
            };
            let c = ["x", "y", "z"][r % 3];
            let b = if r % 2 == 0 { "true" } else { "False" };
            let d = format!("2024-01-{:02}", 1 + r % 28);
            let u = format!("id-{r}");
            let eol = if r % 3 == 0 { "\r\n" } else { "\n" };
            out.push_str(&format!("{i},{f},{s},{c},{b},{d},{u}{eol}"));
        }
        out
    }

    fn assert_same(a: &Profile, b: &Profile) {
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.columns.len(), b.columns.len());
        for (x, y) in a.columns.iter().zip(&b.columns) {
            let ctx = &x.name;
            assert_eq!(
                (&x.name, &x.data_type, x.kind, x.count, x.nulls),
                (&y.name, &y.data_type, y.kind, y.count, y.nulls),
                "{ctx}"
            );
            assert_eq!(
                (x.distinct, x.distinct_exact),
                (y.distinct, y.distinct_exact),
                "{ctx}"
            );
            assert_eq!(x.text, y.text, "{ctx}");
            // Misra–Gries summaries depend on where the stream was cut;
            // whether they are exact does not.
            if y.top_values_error == 0 {
                assert_eq!(
                    (&x.top_values, x.top_values_error),
                    (&y.top_values, 0),
                    "{ctx}"
                );
            } else {
                assert!(x.top_values_error > 0, "{ctx}");
            }
            match (&x.numeric, &y.numeric) {
                (Some(n), Some(m)) => {
                    assert_eq!(
                        (n.min, n.max, n.zeros, n.nan, n.infinite),
                        (m.min, m.max, m.zeros, m.nan, m.infinite),
                        "{ctx}"
                    );
                    assert_eq!(n.quantiles, m.quantiles, "{ctx}");
                    assert_eq!(n.histogram, m.histogram, "{ctx}");
                    assert!((n.mean - m.mean).abs() <= 1e-12 * m.mean.abs().max(1.0));
                    assert!((n.std - m.std).abs() <= 1e-12 * m.std.abs().max(1.0));
                }
                (n, m) => assert_eq!(n, m, "{ctx}"),
            }
        }
    }

    #[test]
    fn csv_in_small_chunks_profiles_as_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("awkward.csv");
        std::fs::write(&path, awkward_csv(5000)).unwrap();
        // Arrow's own inference, and the whole file as one batch.
        let file = std::fs::File::open(&path).unwrap();
        let (arrow_schema, _) = arrow_csv::reader::Format::default()
            .with_header(true)
            .infer_schema(file, None)
            .unwrap();
        let options = ReadOptions {
            batch_size: 1 << 20,
            ..ReadOptions::new()
        };
        let reader = read::open(&path, &options).unwrap();
        assert_eq!(*reader.schema(), arrow_schema);
        let whole: Vec<RecordBatch> = reader.collect::<Result<_>>().unwrap();
        assert_eq!(whole.len(), 1);
        let one = profile_batches(&whole).unwrap();
        assert_eq!(one.rows, 5000);
        let empty = (0..5000).filter(|r| r % 7 == 3).count() as u64;
        assert_eq!(one.column("s").unwrap().nulls, empty);
        assert!(one.column("s").unwrap().top_values_error > 0);
        for chunk in [97, 1000, 64 << 10] {
            let chunked = profile_csv(&path, &ReadOptions::new(), chunk)
                .unwrap()
                .expect("splittable");
            assert_same(&chunked, &one);
        }
        assert_same(&profile(&path).unwrap(), &one);
    }

    #[test]
    fn a_wrong_guess_from_the_first_chunk_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.csv");
        // Types the first chunk does not show: a decimal, strings in an
        // empty column, a boolean among integers; all in the last record.
        let mut text = String::from("n,late,t\n");
        for r in 0..3000 {
            let late = if r < 2000 {
                String::new()
            } else {
                format!("v{}", r % 7)
            };
            text.push_str(&format!("{r},{late},{}\n", r % 5));
        }
        text.push_str("2.5,x,true\n");
        std::fs::write(&path, &text).unwrap();
        let options = ReadOptions {
            batch_size: 1 << 20,
            ..ReadOptions::new()
        };
        let whole: Vec<RecordBatch> = read::open(&path, &options)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let one = profile_batches(&whole).unwrap();
        assert_eq!(
            one.columns
                .iter()
                .map(|c| c.data_type.as_str())
                .collect::<Vec<_>>(),
            ["Float64", "Utf8", "Utf8"]
        );
        for chunk in [97, 4096, 1 << 20] {
            let chunked = profile_csv(&path, &ReadOptions::new(), chunk)
                .unwrap()
                .expect("splittable");
            assert_same(&chunked, &one);
        }
    }

    #[test]
    fn csv_errors_name_the_file_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        // One record with a field too many, far into the file.
        let mut text = awkward_csv(2500);
        text.push_str("1,2,x,x,true,2024-01-01,u,extra\n");
        text.push_str(awkward_csv(500).split_once('\n').unwrap().1);
        std::fs::write(&path, &text).unwrap();
        let strings = Arc::new(arrow_schema::Schema::new(
            ["i", "f", "s", "c", "b", "d", "u"]
                .map(|n| arrow_schema::Field::new(n, arrow_schema::DataType::Utf8, true))
                .to_vec(),
        ));
        let arrow_err = arrow_csv::ReaderBuilder::new(strings)
            .with_header(true)
            .build(std::fs::File::open(&path).unwrap())
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        for chunk in [97, 4096] {
            let err = profile_csv(&path, &ReadOptions::new(), chunk)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(err.ends_with(&arrow_err), "{err} vs {arrow_err}");
        }
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_falls_back_to_sequential_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        std::fs::write(&path, "a,b\n1,x\"y\n2,z\n").unwrap();
        assert!(profile_csv(&path, &ReadOptions::new(), 4)
            .unwrap()
            .is_none());
        let p = profile(&path).unwrap();
        assert_eq!(p.rows, 2);
        assert_eq!(p.column("b").unwrap().text.as_ref().unwrap().min, "x\"y");
    }
}
