use std::fmt;
use std::str::FromStr;

/// The BLAKE3 hash of an object's bytes: the object's only name.
///
/// Objects are immutable, so two objects with the same hash are the same
/// object. The textual form is 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectHash([u8; 32]);

impl ObjectHash {
    /// Hashes a byte slice.
    pub fn of_bytes(bytes: &[u8]) -> ObjectHash {
        ObjectHash(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps an already computed BLAKE3 digest.
    pub fn from_digest(digest: blake3::Hash) -> ObjectHash {
        ObjectHash(*digest.as_bytes())
    }

    /// Wraps 32 raw bytes (as stored by [`ObjectHash::as_bytes`]).
    pub fn from_bytes(bytes: [u8; 32]) -> ObjectHash {
        ObjectHash(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The full 64-digit hex form.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// The first `n` hex digits, for display.
    pub fn short(&self, n: usize) -> String {
        let mut s = self.to_string();
        s.truncate(n.min(64));
        s
    }
}

impl fmt::Display for ObjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write, not 32 formatted ones: manifests and object paths
        // print a hash per file.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ObjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectHash({})", self.short(12))
    }
}

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("invalid object hash {input:?}: expected 64 lowercase hex digits")]
pub struct ParseHashError {
    input: String,
}

impl FromStr for ObjectHash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseHashError {
            input: s.chars().take(80).collect(),
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(err)?;
            let lo = hex_digit(pair[1]).ok_or_else(err)?;
            out[i] = hi << 4 | lo;
        }
        Ok(ObjectHash(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_text() {
        let h = ObjectHash::of_bytes(b"abc");
        assert_eq!(
            h.to_string(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(h.to_string().parse::<ObjectHash>().unwrap(), h);
        assert!("6437".parse::<ObjectHash>().is_err());
        assert!(h.to_string().to_uppercase().parse::<ObjectHash>().is_err());
        assert!("zz".repeat(32).parse::<ObjectHash>().is_err());
    }
}
