//! serde for `f64` fields that may be NaN or ±inf: finite values are JSON
//! numbers, the others the strings `"NaN"`, `"inf"`, `"-inf"` (JSON has no
//! literal for them and `serde_json` would write `null`, which does not
//! read back).

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes one value.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// Deserializes one value.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum F {
        N(f64),
        S(String),
    }
    match F::deserialize(d)? {
        F::N(v) => Ok(v),
        F::S(s) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "inf" | "Infinity" => Ok(f64::INFINITY),
            "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
        },
    }
}
