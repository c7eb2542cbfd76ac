//! Normalization of Arrow arrays into the four value kinds the statistics
//! work on: 64-bit integers, 64-bit floats, strings and booleans.
//!
//! Dates and timestamps become ISO-8601 strings (they sort correctly and
//! read well in reports); dictionary arrays become plain strings; unsigned
//! and narrower integers widen to `i64`; decimals and narrower floats widen
//! to `f64`. Empty strings count as nulls, as pandas reads them.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};

/// The physical kind of a column after normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Physical {
    /// Integers (any width, signed or not).
    Integer,
    /// Floating point and decimals.
    Float,
    /// Strings, dictionary-encoded strings.
    String,
    /// Booleans.
    Boolean,
    /// Dates and timestamps.
    Datetime,
    /// Anything else (lists, structs, binary): not profiled.
    Other,
}

impl Physical {
    /// The physical kind of an Arrow data type.
    pub fn of(dt: &DataType) -> Physical {
        use DataType::*;
        match dt {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Physical::Integer,
            Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..)
            | Decimal256(..) => Physical::Float,
            Utf8 | LargeUtf8 | Utf8View => Physical::String,
            Dictionary(_, v) if matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View) => {
                Physical::String
            }
            Boolean => Physical::Boolean,
            Date32 | Date64 | Timestamp(..) => Physical::Datetime,
            _ => Physical::Other,
        }
    }
}

/// A normalized column slice.
#[derive(Debug, Clone)]
pub enum Values {
    /// Integer values.
    Int(Int64Array),
    /// Float values.
    Float(Float64Array),
    /// String values (also dates and timestamps, as ISO-8601).
    Str(StringArray),
    /// Boolean values.
    Bool(BooleanArray),
}

impl Values {
    /// Normalizes one array; `None` for unsupported types.
    pub fn from_array(array: &ArrayRef) -> Option<Values> {
        let cast = |to: &DataType| arrow_cast::cast(array, to).ok();
        Some(match Physical::of(array.data_type()) {
            Physical::Integer => match array.data_type() {
                DataType::Int64 => Values::Int(array.as_primitive::<Int64Type>().clone()),
                _ => Values::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone()),
            },
            Physical::Float => match array.data_type() {
                DataType::Float64 => Values::Float(array.as_primitive::<Float64Type>().clone()),
                _ => Values::Float(
                    cast(&DataType::Float64)?
                        .as_primitive::<Float64Type>()
                        .clone(),
                ),
            },
            Physical::String | Physical::Datetime => match array.data_type() {
                DataType::Utf8 => Values::Str(array.as_string::<i32>().clone()),
                _ => Values::Str(cast(&DataType::Utf8)?.as_string::<i32>().clone()),
            },
            Physical::Boolean => Values::Bool(array.as_boolean().clone()),
            Physical::Other => return None,
        })
    }

    /// Number of slots, nulls included.
    pub fn len(&self) -> usize {
        match self {
            Values::Int(a) => a.len(),
            Values::Float(a) => a.len(),
            Values::Str(a) => a.len(),
            Values::Bool(a) => a.len(),
        }
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether slot `i` is missing: null, or an empty string.
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Values::Int(a) => a.is_null(i),
            Values::Float(a) => a.is_null(i),
            Values::Str(a) => a.is_null(i) || a.value(i).is_empty(),
            Values::Bool(a) => a.is_null(i),
        }
    }

    /// Slot `i` rendered for reports (`None` when missing).
    pub fn display(&self, i: usize) -> Option<String> {
        if self.is_missing(i) {
            return None;
        }
        Some(match self {
            Values::Int(a) => a.value(i).to_string(),
            Values::Float(a) => format_f64(a.value(i)),
            Values::Str(a) => a.value(i).to_string(),
            Values::Bool(a) => if a.value(i) { "True" } else { "False" }.to_string(),
        })
    }
}

/// Formats a float the way Python's `repr` does for the common cases
/// (`1.0`, `0.25`, `1e-07`), so reports read the same as pandas output.
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == v.trunc() && v.abs() < 1e16 {
        return format!("{v:.1}");
    }
    format!("{v}")
}

/// Column type in Evidently's sense: what drift test and which profile
/// sections apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Continuous numbers.
    Numerical,
    /// A small set of values (strings, booleans, low-cardinality integers).
    Categorical,
    /// Free text: strings with more distinct values than half the count.
    Text,
    /// Dates and timestamps.
    Datetime,
    /// Anything else.
    Unknown,
}

/// Integers with at most this many distinct values are categorical
/// (Evidently's `INTEGER_CARDINALITY_LIMIT`).
pub const INTEGER_CARDINALITY_LIMIT: u64 = 10;

impl ColumnKind {
    /// Evidently 0.7's `infer_column_type`, applied to the column as pandas
    /// would load it: an integer column with nulls is `float64` in pandas,
    /// hence numerical.
    pub fn infer(physical: Physical, distinct: u64, count: u64, has_nulls: bool) -> ColumnKind {
        match physical {
            Physical::Float => ColumnKind::Numerical,
            Physical::Integer if has_nulls => ColumnKind::Numerical,
            Physical::Integer if distinct <= INTEGER_CARDINALITY_LIMIT => ColumnKind::Categorical,
            Physical::Integer => ColumnKind::Numerical,
            Physical::String if count == 0 => ColumnKind::Unknown,
            Physical::String if distinct as f64 > count as f64 * 0.5 => ColumnKind::Text,
            Physical::String | Physical::Boolean => ColumnKind::Categorical,
            Physical::Datetime => ColumnKind::Datetime,
            Physical::Other => ColumnKind::Unknown,
        }
    }
}
