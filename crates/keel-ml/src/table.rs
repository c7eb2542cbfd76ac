//! A small column-oriented table read from CSV.
//!
//! keel-ml reads evaluation and training data itself with this simple
//! reader (RFC 4180 quoting, header row required) so it does not depend on
//! the Arrow stack; callers that already hold data in another form build a
//! [`Table`] with [`Table::from_columns`].

use std::path::{Path, PathBuf};

use crate::Error;

/// Named string columns of equal length.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    names: Vec<String>,
    cols: Vec<Vec<String>>,
    source: PathBuf,
}

impl Table {
    /// A table from named columns; fails if lengths differ or names repeat.
    pub fn from_columns(cols: Vec<(String, Vec<String>)>) -> Result<Table, Error> {
        let n = cols.first().map_or(0, |c| c.1.len());
        let mut names = Vec::new();
        let mut data = Vec::new();
        for (name, c) in cols {
            if c.len() != n {
                return Err(Error::Input(format!(
                    "column {name:?} has {} rows, expected {n}",
                    c.len()
                )));
            }
            if names.contains(&name) {
                return Err(Error::Input(format!("column {name:?} appears twice")));
            }
            names.push(name);
            data.push(c);
        }
        Ok(Table {
            names,
            cols: data,
            source: PathBuf::from("<memory>"),
        })
    }

    /// Reads a CSV file with a header row.
    pub fn read_csv(path: &Path) -> Result<Table, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let data_err = |message: String| Error::Data {
            file: path.to_path_buf(),
            message,
        };
        let mut records = parse_csv(&text).map_err(&data_err)?.into_iter();
        let (_, header) = records
            .next()
            .ok_or_else(|| data_err("empty file: a header row is required".into()))?;
        let names: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(data_err(format!("line 1: column {n:?} appears twice")));
            }
        }
        let mut cols = vec![Vec::new(); names.len()];
        for (line, rec) in records {
            if rec.len() == 1 && rec[0].is_empty() {
                continue; // blank line
            }
            if rec.len() != names.len() {
                return Err(data_err(format!(
                    "line {line}: {} fields, the header has {}",
                    rec.len(),
                    names.len()
                )));
            }
            for (c, v) in cols.iter_mut().zip(rec) {
                c.push(v);
            }
        }
        Ok(Table {
            names,
            cols,
            source: path.to_path_buf(),
        })
    }

    /// Writes the table as CSV.
    pub fn write_csv(&self, path: &Path) -> Result<(), Error> {
        let mut s = String::new();
        let quote = |v: &str| {
            if v.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", v.replace('"', "\"\""))
            } else {
                v.to_string()
            }
        };
        s.push_str(
            &self
                .names
                .iter()
                .map(|n| quote(n))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
        for r in 0..self.n_rows() {
            let row: Vec<String> = self.cols.iter().map(|c| quote(&c[r])).collect();
            s.push_str(&row.join(","));
            s.push('\n');
        }
        std::fs::write(path, s).map_err(|e| Error::io(path, e))
    }

    /// Column names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.cols.first().map_or(0, Vec::len)
    }

    /// Where the table came from (for messages).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// A column's raw values.
    pub fn column(&self, name: &str) -> Result<&[String], Error> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.cols[i].as_slice())
            .ok_or_else(|| Error::Data {
                file: self.source.clone(),
                message: format!("no column {name:?} (columns: {})", self.names.join(", ")),
            })
    }

    /// A column parsed as numbers; empty, `NA`, `NaN` and `null` are NaN.
    pub fn numeric(&self, name: &str) -> Result<Vec<f64>, Error> {
        self.column(name)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                parse_number(v).ok_or_else(|| Error::Data {
                    file: self.source.clone(),
                    message: format!("line {}: column {name:?}: {v:?} is not a number", i + 2),
                })
            })
            .collect()
    }

    /// Keeps the rows where `keep` is true.
    pub fn filter(&self, keep: &[bool]) -> Table {
        Table {
            names: self.names.clone(),
            cols: self
                .cols
                .iter()
                .map(|c| {
                    c.iter()
                        .zip(keep)
                        .filter(|(_, &k)| k)
                        .map(|(v, _)| v.clone())
                        .collect()
                })
                .collect(),
            source: self.source.clone(),
        }
    }
}

/// Parses a number; missing markers give NaN; other text gives `None`.
pub fn parse_number(v: &str) -> Option<f64> {
    let t = v.trim();
    match t {
        "" | "NA" | "N/A" | "NaN" | "nan" | "null" | "NULL" | "None" => Some(f64::NAN),
        "true" | "True" | "TRUE" => Some(1.0),
        "false" | "False" | "FALSE" => Some(0.0),
        _ => t.parse().ok(),
    }
}

/// Splits CSV text into records, each with its 1-based starting line.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut start) = (1usize, 1usize);
    let mut in_quotes = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => rec.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                rec.push(std::mem::take(&mut field));
                out.push((start, std::mem::take(&mut rec)));
                line += 1;
                start = line;
                any = false;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("line {start}: unterminated quoted field"));
    }
    if any {
        rec.push(field);
        out.push((start, rec));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_and_crlf() {
        let r = parse_csv("a,b\r\n\"x,\"\"y\"\"\",2\r\n3,\n").unwrap();
        assert_eq!(r[0].1, vec!["a", "b"]);
        assert_eq!(r[1].1, vec!["x,\"y\"", "2"]);
        assert_eq!(r[2], (3, vec!["3".to_string(), String::new()]));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(parse_csv("a\n\"x\n").unwrap_err().contains("line 2"));
    }
}
