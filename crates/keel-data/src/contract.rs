//! Data contracts (`*.contract.yaml`) and streaming validation.
//!
//! The format borrows ODCS's vocabulary (columns with a logical type,
//! `required`-style nullability, `unique`, valid values, patterns, row
//! counts) and Great Expectations' `mostly`:
//!
//! ```yaml
//! name: orders
//! rows: { min: 1000, max: 10000000 }   # row-count range (either bound optional)
//! strict: true                        # no columns beyond these
//! columns:
//!   - name: id
//!     type: integer                   # integer | number | string | boolean | datetime
//!     nullable: false                 # default: true
//!     unique: true
//!   - name: amount
//!     type: number
//!     min: 0                          # inclusive bounds
//!     max: 10000
//!     mostly: 0.99                    # GX-style: share of rows that must pass
//!   - name: country
//!     allowed: [FR, DE, US]
//!   - name: email
//!     pattern: '^[^@]+@[^@]+$'        # regex search; anchor it for a full match
//!     length: { min: 3, max: 254 }    # in characters
//! reference:                          # train/validation consistency
//!   path: train.parquet               # relative to the contract file
//!   drift_share: 0.5
//!   columns:                          # drift limits; all contract columns if omitted
//!     amount: { method: wasserstein, threshold: 0.1 }
//!     country: {}                     # Evidently's default test and threshold
//! ```
//!
//! `mostly` (0–1) applies to every value check of its column: the check
//! passes iff `passing / evaluated ≥ mostly`, where nulls are not evaluated
//! except by the `nullable: false` check itself (GX semantics).
//!
//! A malformed contract is a [`DataError::Contract`] naming the file, line,
//! column and field.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::column::{Physical, Values};
use crate::drift::{self, ColumnOverride, DriftOptions, Sample};
use crate::error::{DataError, Result};
use crate::read::{self, ReadOptions};
use crate::sketch::{hash_bytes, hash_f64, hash_u64};

/// A parsed contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// A name for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Row-count range.
    #[serde(default)]
    pub rows: Option<Range>,
    /// Whether columns not listed here are an error.
    #[serde(default)]
    pub strict: bool,
    /// Column specifications.
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// Reference dataset and drift limits.
    #[serde(default)]
    pub reference: Option<ReferenceSpec>,
    /// Where the contract was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// An inclusive range; either bound may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Lower bound.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound.
    #[serde(default)]
    pub max: Option<f64>,
}

impl Range {
    fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) => format!("between {a} and {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => "any".into(),
        }
    }
}

/// A logical column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogicalType {
    /// Integers.
    Integer,
    /// Integers or floats.
    Number,
    /// Strings.
    String,
    /// Booleans.
    Boolean,
    /// Dates and timestamps.
    Datetime,
}

impl LogicalType {
    fn accepts(self, p: Physical) -> bool {
        matches!(
            (self, p),
            (LogicalType::Integer, Physical::Integer)
                | (LogicalType::Number, Physical::Integer | Physical::Float)
                | (LogicalType::String, Physical::String)
                | (LogicalType::Boolean, Physical::Boolean)
                | (LogicalType::Datetime, Physical::Datetime)
        )
    }
}

/// One column's expectations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Expected logical type.
    #[serde(default, rename = "type")]
    pub logical_type: Option<LogicalType>,
    /// Whether nulls are allowed (default true).
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Whether values must be unique.
    #[serde(default)]
    pub unique: bool,
    /// Inclusive lower bound (numbers).
    #[serde(default)]
    pub min: Option<f64>,
    /// Inclusive upper bound (numbers).
    #[serde(default)]
    pub max: Option<f64>,
    /// The only values allowed.
    #[serde(default)]
    pub allowed: Option<Vec<Scalar>>,
    /// A regex each value must match (search semantics).
    #[serde(default)]
    pub pattern: Option<String>,
    /// `pattern`, compiled when the contract is checked.
    #[serde(skip)]
    pub compiled_pattern: Option<regex::Regex>,
    /// String length range, in characters.
    #[serde(default)]
    pub length: Option<Range>,
    /// Share of evaluated rows that must pass each value check (GX).
    #[serde(default)]
    pub mostly: Option<f64>,
}

fn yes() -> bool {
    true
}

/// A value in an `allowed` list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
}

/// The reference dataset and its drift limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    /// The reference data, relative to the contract file.
    pub path: PathBuf,
    /// Dataset drift share (reported; each column is its own check).
    #[serde(default)]
    pub drift_share: Option<f64>,
    /// Per-column drift method and threshold.
    #[serde(default)]
    pub columns: Option<BTreeMap<String, ColumnOverride>>,
}

impl Contract {
    /// Reads and checks a contract file.
    pub fn from_path(path: &Path) -> Result<Contract> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Contract::from_yaml(&text, path)
    }

    /// Parses contract text; `path` is used in errors and to resolve the
    /// reference dataset.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Contract> {
        let mut c: Contract = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // The location is reported separately; drop the " at line …" tail.
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            DataError::Contract {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        c.path = path.to_path_buf();
        c.check(text)?;
        Ok(c)
    }

    /// Semantic checks serde cannot express. Errors point at the field's
    /// line inside the column's block (found by its `name:` line), or at
    /// the `name:` line itself.
    fn check(&mut self, text: &str) -> Result<()> {
        let path = self.path.clone();
        let err = |index: usize, col: &str, field: &str, msg: String| {
            let lines: Vec<&str> = text.lines().collect();
            let is_name = |l: &str| {
                let t = l
                    .trim_start()
                    .trim_start_matches("- ")
                    .trim_start_matches('{')
                    .trim();
                t.starts_with(&format!("name: {col}"))
                    || t.starts_with(&format!("name: \"{col}\""))
                    || t.starts_with(&format!("name: '{col}'"))
            };
            let start = lines.iter().position(|l| is_name(l));
            let line = start.map_or(0, |s| {
                let block_end = lines[s + 1..]
                    .iter()
                    .position(|l| l.trim_start().starts_with("- "))
                    .map_or(lines.len(), |e| s + 1 + e);
                let key = format!("{field}:");
                (s..block_end)
                    .find(|i| {
                        let t = lines[*i].trim_start().trim_start_matches("- ");
                        t.starts_with(&key)
                            || t.contains(&format!(" {key}"))
                            || t.contains(&format!("{{{key}"))
                    })
                    .unwrap_or(s)
                    + 1
            });
            DataError::Contract {
                path: path.clone(),
                line,
                column: 0,
                message: format!("columns[{index}].{field}: {msg}"),
            }
        };
        for (i, c) in self.columns.iter_mut().enumerate() {
            if let Some(p) = &c.pattern {
                c.compiled_pattern = Some(regex::Regex::new(p).map_err(|e| {
                    err(
                        i,
                        &c.name,
                        "pattern",
                        format!("invalid regex: {}", e.to_string().replace('\n', " ")),
                    )
                })?);
            }
            if let Some(m) = c.mostly {
                if !(0.0..=1.0).contains(&m) {
                    return Err(err(
                        i,
                        &c.name,
                        "mostly",
                        format!("must be between 0 and 1, got {m}"),
                    ));
                }
            }
        }
        let err = |col: &str, field: &str, msg: String| {
            let i = self.columns.iter().position(|c| c.name == col).unwrap_or(0);
            err(i, col, field, msg)
        };
        let mut seen = HashSet::new();
        for c in &self.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(err(&c.name, "name", "column listed twice".into()));
            }
            if let (Some(a), Some(b)) = (c.min, c.max) {
                if a > b {
                    return Err(err(
                        &c.name,
                        "min",
                        format!("min {a} is greater than max {b}"),
                    ));
                }
            }
            let t = c.logical_type;
            if (c.min.is_some() || c.max.is_some())
                && matches!(t, Some(LogicalType::String | LogicalType::Boolean))
            {
                return Err(err(
                    &c.name,
                    "min",
                    "min/max apply to numbers, not to this type".into(),
                ));
            }
            if (c.pattern.is_some() || c.length.is_some())
                && matches!(
                    t,
                    Some(LogicalType::Integer | LogicalType::Number | LogicalType::Boolean)
                )
            {
                return Err(err(
                    &c.name,
                    "pattern",
                    "pattern/length apply to strings, not to this type".into(),
                ));
            }
        }
        if let Some(r) = &self.reference {
            for name in r.columns.iter().flat_map(|c| c.keys()) {
                if !self.columns.iter().any(|c| &c.name == name) {
                    return Err(DataError::Contract {
                        path: self.path.clone(),
                        line: 0,
                        column: 0,
                        message: format!("reference.columns.{name}: not a column of this contract"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked: `row_count`, `strict`, `present`, `type`,
    /// `not_null`, `unique`, `between`, `allowed`, `pattern`, `length`,
    /// `drift`.
    pub check: String,
    /// The column (none for table checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The expectation in words.
    pub expected: String,
    /// Verdict.
    pub success: bool,
    /// Rows looked at.
    pub element_count: u64,
    /// Rows with no value (not evaluated, except by `not_null`).
    pub missing_count: u64,
    /// Rows that failed.
    pub unexpected_count: u64,
    /// `unexpected_count / evaluated` (0 when nothing was evaluated).
    pub unexpected_fraction: f64,
    /// The GX `mostly` in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mostly: Option<f64>,
    /// Observed value of aggregate checks (row count, type, drift score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Up to 20 distinct failing values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// The outcome of validating a dataset against a contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The contract file.
    pub contract: String,
    /// The contract's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The data validated.
    pub data: String,
    /// Every check passed.
    pub success: bool,
    /// Rows in the data.
    pub rows: u64,
    /// Checks evaluated.
    pub evaluated: usize,
    /// Checks that passed.
    pub successful: usize,
    /// Every check, in contract order.
    pub checks: Vec<CheckResult>,
    /// The drift report against the reference, when the contract has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<drift::DriftReport>,
}

impl ValidationReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// A self-contained HTML page.
    pub fn to_html(&self) -> String {
        crate::html::validation_html(self)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.success)
    }
}

const MAX_EXAMPLES: usize = 20;

/// Counters for one column-map check.
#[derive(Debug, Clone, Default)]
struct MapCounter {
    evaluated: u64,
    unexpected: u64,
    examples: Vec<String>,
}

impl MapCounter {
    fn fail(&mut self, v: &Values, i: usize) {
        self.unexpected += 1;
        if self.examples.len() < MAX_EXAMPLES {
            if let Some(s) = v.display(i) {
                if !self.examples.contains(&s) {
                    self.examples.push(s);
                }
            }
        }
    }
}

struct AllowedSet {
    strings: HashSet<String>,
    numbers: Vec<f64>,
    bools: Vec<bool>,
}

struct ColumnState<'c> {
    spec: &'c ColumnSpec,
    physical: Option<Physical>,
    data_type: String,
    rows: u64,
    missing: u64,
    between: MapCounter,
    allowed: MapCounter,
    allowed_set: Option<AllowedSet>,
    pattern: MapCounter,
    length: MapCounter,
    unique_counts: HashMap<u64, u32>,
    unique_examples: Vec<String>,
}

impl<'c> ColumnState<'c> {
    fn new(spec: &'c ColumnSpec) -> Self {
        let allowed_set = spec.allowed.as_ref().map(|vals| {
            let mut s = AllowedSet {
                strings: HashSet::new(),
                numbers: Vec::new(),
                bools: Vec::new(),
            };
            for v in vals {
                match v {
                    Scalar::Bool(b) => {
                        s.bools.push(*b);
                        s.strings.insert(if *b { "True" } else { "False" }.into());
                    }
                    Scalar::Number(n) => {
                        s.numbers.push(*n);
                        s.strings.insert(crate::column::format_f64(*n));
                        if n.fract() == 0.0 {
                            s.strings.insert(format!("{}", *n as i64));
                        }
                    }
                    Scalar::String(t) => {
                        s.strings.insert(t.clone());
                        if let Ok(n) = t.parse::<f64>() {
                            s.numbers.push(n);
                        }
                    }
                }
            }
            s
        });
        ColumnState {
            spec,
            physical: None,
            data_type: String::new(),
            rows: 0,
            missing: 0,
            between: MapCounter::default(),
            allowed: MapCounter::default(),
            allowed_set,
            pattern: MapCounter::default(),
            length: MapCounter::default(),
            unique_counts: HashMap::new(),
            unique_examples: Vec::new(),
        }
    }

    fn push(&mut self, v: &Values) {
        let s = self.spec;
        let range = Range {
            min: s.min,
            max: s.max,
        };
        let check_range = s.min.is_some() || s.max.is_some();
        for i in 0..v.len() {
            self.rows += 1;
            if v.is_missing(i) {
                self.missing += 1;
                continue;
            }
            if check_range {
                let x = match v {
                    Values::Int(a) => Some(a.value(i) as f64),
                    Values::Float(a) => Some(a.value(i)),
                    _ => None,
                };
                if let Some(x) = x {
                    self.between.evaluated += 1;
                    if !range.contains(x) {
                        self.between.fail(v, i);
                    }
                }
            }
            if let Some(set) = &self.allowed_set {
                self.allowed.evaluated += 1;
                let ok = match v {
                    Values::Int(a) => set.numbers.contains(&(a.value(i) as f64)),
                    Values::Float(a) => set.numbers.contains(&a.value(i)),
                    Values::Str(a) => set.strings.contains(a.value(i)),
                    Values::Bool(a) => {
                        set.bools.contains(&a.value(i))
                            || set
                                .strings
                                .contains(if a.value(i) { "True" } else { "False" })
                    }
                };
                if !ok {
                    self.allowed.fail(v, i);
                }
            }
            if let Values::Str(a) = v {
                let text = a.value(i);
                if let Some(p) = &s.compiled_pattern {
                    self.pattern.evaluated += 1;
                    if !p.is_match(text) {
                        self.pattern.fail(v, i);
                    }
                }
                if let Some(r) = &s.length {
                    self.length.evaluated += 1;
                    if !r.contains(text.chars().count() as f64) {
                        self.length.fail(v, i);
                    }
                }
            }
            if s.unique {
                let h = match v {
                    Values::Int(a) => hash_u64(a.value(i) as u64),
                    Values::Float(a) => hash_f64(a.value(i)),
                    Values::Str(a) => hash_bytes(a.value(i).as_bytes()),
                    Values::Bool(a) => hash_u64(a.value(i) as u64),
                };
                let c = self.unique_counts.entry(h).or_insert(0);
                *c += 1;
                if *c == 2 && self.unique_examples.len() < MAX_EXAMPLES {
                    if let Some(d) = v.display(i) {
                        self.unique_examples.push(d);
                    }
                }
            }
        }
    }

    fn results(self, out: &mut Vec<CheckResult>) {
        let s = self.spec;
        let col = Some(s.name.clone());
        let Some(physical) = self.physical else {
            out.push(CheckResult {
                check: "present".into(),
                column: col,
                expected: "column is present".into(),
                success: false,
                element_count: 0,
                missing_count: 0,
                unexpected_count: 0,
                unexpected_fraction: 0.0,
                mostly: None,
                observed: Some("missing".into()),
                examples: Vec::new(),
            });
            return;
        };
        let base = |check: &str, expected: String| CheckResult {
            check: check.into(),
            column: col.clone(),
            expected,
            success: true,
            element_count: self.rows,
            missing_count: self.missing,
            unexpected_count: 0,
            unexpected_fraction: 0.0,
            mostly: None,
            observed: None,
            examples: Vec::new(),
        };
        let map = |check: &str, expected: String, c: MapCounter| {
            let mut r = base(check, expected);
            let frac = if c.evaluated == 0 {
                0.0
            } else {
                c.unexpected as f64 / c.evaluated as f64
            };
            r.unexpected_count = c.unexpected;
            r.unexpected_fraction = frac;
            r.mostly = s.mostly;
            r.success = pass_rate(c.evaluated, c.unexpected) >= s.mostly.unwrap_or(1.0);
            r.examples = c.examples;
            r
        };
        if let Some(t) = s.logical_type {
            let mut r = base("type", format!("type {}", format!("{t:?}").to_lowercase()));
            r.success = t.accepts(physical);
            r.observed = Some(self.data_type.clone());
            out.push(r);
        }
        if !s.nullable {
            let mut r = base("not_null", "no nulls".into());
            r.unexpected_count = self.missing;
            r.unexpected_fraction = if self.rows == 0 {
                0.0
            } else {
                self.missing as f64 / self.rows as f64
            };
            r.mostly = s.mostly;
            r.success = pass_rate(self.rows, self.missing) >= s.mostly.unwrap_or(1.0);
            out.push(r);
        }
        if s.unique {
            let dup_rows: u64 = self
                .unique_counts
                .values()
                .filter(|c| **c > 1)
                .map(|c| *c as u64)
                .sum();
            let evaluated = self.rows - self.missing;
            let mut r = base("unique", "values are unique".into());
            r.unexpected_count = dup_rows;
            r.unexpected_fraction = if evaluated == 0 {
                0.0
            } else {
                dup_rows as f64 / evaluated as f64
            };
            r.mostly = s.mostly;
            r.success = pass_rate(evaluated, dup_rows) >= s.mostly.unwrap_or(1.0);
            r.examples = self.unique_examples;
            out.push(r);
        }
        if s.min.is_some() || s.max.is_some() {
            let range = Range {
                min: s.min,
                max: s.max,
            };
            let mut r = map(
                "between",
                format!("values {}", range.describe()),
                self.between,
            );
            if !matches!(physical, Physical::Integer | Physical::Float) {
                r.success = false;
                r.observed = Some(format!("{} is not numeric", self.data_type));
            }
            out.push(r);
        }
        if let Some(a) = &s.allowed {
            let shown: Vec<String> = a
                .iter()
                .map(|v| match v {
                    Scalar::Bool(b) => b.to_string(),
                    Scalar::Number(n) => n.to_string(),
                    Scalar::String(t) => t.clone(),
                })
                .collect();
            out.push(map(
                "allowed",
                format!("values in [{}]", shown.join(", ")),
                self.allowed,
            ));
        }
        if let Some(p) = &s.pattern {
            let mut r = map("pattern", format!("values match /{p}/"), self.pattern);
            if physical != Physical::String {
                r.success = false;
                r.observed = Some(format!("{} is not a string column", self.data_type));
            }
            out.push(r);
        }
        if let Some(l) = &s.length {
            let mut r = map("length", format!("length {}", l.describe()), self.length);
            if physical != Physical::String {
                r.success = false;
                r.observed = Some(format!("{} is not a string column", self.data_type));
            }
            out.push(r);
        }
    }
}

fn pass_rate(evaluated: u64, unexpected: u64) -> f64 {
    if evaluated == 0 {
        1.0
    } else {
        (evaluated - unexpected) as f64 / evaluated as f64
    }
}

/// Validates a file against a contract (streaming; `unique` keeps one hash
/// per distinct value).
pub fn validate(data: &Path, contract: &Contract) -> Result<ValidationReport> {
    let reader = read::open(data, &ReadOptions::new())?;
    let schema = reader.schema();
    let mut report = validate_stream(&schema, reader, contract, &data.display().to_string())?;
    if let Some(r) = &contract.reference {
        let base = contract.path.parent().unwrap_or(Path::new("."));
        let ref_path = if r.path.is_absolute() {
            r.path.clone()
        } else {
            base.join(&r.path)
        };
        let cols: Vec<String> = match &r.columns {
            Some(c) => c.keys().cloned().collect(),
            None => contract.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let cols: Vec<String> = cols
            .into_iter()
            .filter(|c| schema.index_of(c).is_ok())
            .collect();
        let reference = Sample::from_path(&ref_path, Some(&cols))?;
        let current = Sample::from_path(data, Some(&cols))?;
        add_drift(&mut report, r, cols, &reference, &current)?;
    }
    Ok(report)
}

/// Validates in-memory batches against a contract (the reference drift
/// checks need [`validate`] or [`add_drift`]).
pub fn validate_batches(batches: &[RecordBatch], contract: &Contract) -> Result<ValidationReport> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => std::sync::Arc::new(arrow_schema::Schema::empty()),
    };
    validate_stream(
        &schema,
        batches.iter().cloned().map(Ok),
        contract,
        "<memory>",
    )
}

/// Adds one `drift` check per reference column to a report.
pub fn add_drift(
    report: &mut ValidationReport,
    spec: &ReferenceSpec,
    columns: Vec<String>,
    reference: &Sample,
    current: &Sample,
) -> Result<()> {
    let mut options = DriftOptions::evidently_defaults();
    options.columns = Some(columns);
    if let Some(s) = spec.drift_share {
        options.drift_share = s;
    }
    if let Some(c) = &spec.columns {
        options.per_column = c.clone();
    }
    let d = drift::drift(reference, current, &options)?;
    for c in &d.columns {
        let method = c.method.map_or("skipped".to_string(), |m| m.to_string());
        let expected = match c.method {
            Some(m) if m.is_p_value() => {
                format!("no drift vs reference ({method} p-value ≥ {})", c.threshold)
            }
            Some(_) => format!("no drift vs reference ({method} < {})", c.threshold),
            None => "no drift vs reference".into(),
        };
        report.checks.push(CheckResult {
            check: "drift".into(),
            column: Some(c.column.clone()),
            expected,
            success: !c.drifted,
            element_count: c.current_count + c.current_missing,
            missing_count: c.current_missing,
            unexpected_count: 0,
            unexpected_fraction: 0.0,
            mostly: None,
            observed: Some(match &c.skipped {
                Some(why) => format!("skipped: {why}"),
                None => format!("{method} = {:.6}", c.score),
            }),
            examples: Vec::new(),
        });
    }
    report.drift = Some(d);
    report.evaluated = report.checks.len();
    report.successful = report.checks.iter().filter(|c| c.success).count();
    report.success = report.successful == report.evaluated;
    Ok(())
}

fn validate_stream<I>(
    schema: &arrow_schema::Schema,
    batches: I,
    contract: &Contract,
    data_name: &str,
) -> Result<ValidationReport>
where
    I: IntoIterator<Item = Result<RecordBatch>>,
{
    use rayon::prelude::*;
    let mut states: Vec<ColumnState> = contract.columns.iter().map(ColumnState::new).collect();
    for st in &mut states {
        if let Ok(f) = schema.field_with_name(&st.spec.name) {
            st.physical = Some(Physical::of(f.data_type()));
            st.data_type = f.data_type().to_string();
        }
    }
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        states.par_iter_mut().try_for_each(|st| -> Result<()> {
            if st.physical.is_none() {
                return Ok(());
            }
            let Some(array) = batch.column_by_name(&st.spec.name) else {
                return Ok(());
            };
            match Values::from_array(array) {
                Some(v) => st.push(&v),
                None => st.rows += array.len() as u64,
            }
            Ok(())
        })?;
    }
    let mut checks = Vec::new();
    if let Some(r) = &contract.rows {
        checks.push(CheckResult {
            check: "row_count".into(),
            column: None,
            expected: format!("row count {}", r.describe()),
            success: r.contains(rows as f64),
            element_count: rows,
            missing_count: 0,
            unexpected_count: 0,
            unexpected_fraction: 0.0,
            mostly: None,
            observed: Some(rows.to_string()),
            examples: Vec::new(),
        });
    }
    if contract.strict {
        let extra: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !contract.columns.iter().any(|c| &c.name == n))
            .collect();
        checks.push(CheckResult {
            check: "strict".into(),
            column: None,
            expected: "no columns beyond the contract's".into(),
            success: extra.is_empty(),
            element_count: schema.fields().len() as u64,
            missing_count: 0,
            unexpected_count: extra.len() as u64,
            unexpected_fraction: 0.0,
            mostly: None,
            observed: None,
            examples: extra,
        });
    }
    for st in states {
        st.results(&mut checks);
    }
    let successful = checks.iter().filter(|c| c.success).count();
    Ok(ValidationReport {
        contract: contract.path.display().to_string(),
        name: contract.name.clone(),
        data: data_name.to_string(),
        success: successful == checks.len(),
        rows,
        evaluated: checks.len(),
        successful,
        checks,
        drift: None,
    })
}
