//! CSV in parallel: the file cut into record-aligned chunks that decode
//! independently, and schema inference over those chunks.
//!
//! Both reproduce `arrow-csv` exactly: chunks split into records and fields
//! as arrow's reader splits them ([`for_each_record`]: `csv-core` itself, or
//! for chunks without quotes or carriage returns a scan that finds the
//! same fields), or decode with arrow's own reader ([`decode`]: same
//! quoting, nulls, number parsing and errors, with line numbers shifted
//! back to the whole file); inference gives the type arrow's
//! `Format::infer_schema` gives, through the same rules with a fast path
//! for the common plain values (the regular expressions still decide
//! anything unusual).
//!
//! Chunks end at a newline outside quotes. Quote parity is only sound when
//! every quote that opens a quoted field sits at the start of a field, as
//! `csv-core` requires; a file with a quote inside an unquoted field (or a
//! record longer than [`MAX_CARRY`]) is reported as not splittable and the
//! caller reads it sequentially.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use rayon::prelude::*;
use regex::RegexSet;

use crate::error::{DataError, Result};

/// Bytes per chunk. Small enough that a few chunks per thread, decoded,
/// stay far below the memory budget; large enough that per-chunk overhead
/// (a fresh decoder, a merge) is negligible.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// The longest a single record may be before the file counts as not
/// splittable.
const MAX_CARRY: usize = 64 << 20;

/// One record-aligned piece of a CSV file (no header).
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The bytes, whole records only.
    pub bytes: Vec<u8>,
}

/// Reads a CSV file as record-aligned chunks, after its header.
pub(crate) struct Chunks {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    eof: bool,
    chunk_bytes: usize,
    /// Buffers of chunks already consumed, handed back by [`Chunks::recycle`]:
    /// a fresh 4 MiB buffer per chunk costs its page faults every time.
    spare: Vec<Vec<u8>>,
}

impl Chunks {
    /// The chunks of `path` from byte `start` on, about `chunk_bytes` each.
    pub fn open(path: &Path, start: u64, chunk_bytes: usize) -> Result<Chunks> {
        let mut file = File::open(path).map_err(io_err(path))?;
        file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        Ok(Chunks {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            eof: false,
            chunk_bytes: chunk_bytes.max(1),
            spare: Vec::new(),
        })
    }

    /// Takes back the buffer of a consumed chunk for a later one.
    pub fn recycle(&mut self, mut bytes: Vec<u8>) {
        bytes.clear();
        self.spare.push(bytes);
    }

    fn fill(&mut self, want: usize) -> Result<()> {
        while !self.eof && self.buf.len() < want {
            // `read_to_end` fills spare capacity without zeroing it first.
            self.buf.reserve_exact(want - self.buf.len());
            let n = (&mut self.file)
                .take((want - self.buf.len()) as u64)
                .read_to_end(&mut self.buf)
                .map_err(io_err(&self.path))?;
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The next chunk, `Ok(None)` at the end.
    pub fn next_chunk(&mut self) -> std::result::Result<Option<Chunk>, SplitError> {
        let mut want = self.chunk_bytes;
        loop {
            self.fill(want).map_err(SplitError::Data)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            let cut = if self.eof && self.buf.len() < want {
                // Everything left is the last chunk; still checked.
                split_point(&self.buf, true).ok_or(SplitError::NotSplittable)?;
                self.buf.len()
            } else {
                split_point(&self.buf, false).ok_or(SplitError::NotSplittable)?
            };
            if cut == 0 {
                // No complete record yet: read more.
                if want >= MAX_CARRY {
                    return Err(SplitError::NotSplittable);
                }
                want *= 2;
                continue;
            }
            // The partial record after the cut starts the next buffer.
            let mut next = self.spare.pop().unwrap_or_default();
            next.extend_from_slice(&self.buf[cut..]);
            self.buf.truncate(cut);
            let bytes = std::mem::replace(&mut self.buf, next);
            return Ok(Some(Chunk { bytes }));
        }
    }
}

/// Why [`Chunks::next_chunk`] stopped.
#[derive(Debug)]
pub(crate) enum SplitError {
    /// Reading failed.
    Data(DataError),
    /// Quote parity cannot be trusted (see the module docs), or a record
    /// is longer than [`MAX_CARRY`].
    NotSplittable,
}

/// The end of the last whole record in `buf` (just past a newline outside
/// quotes), or 0 if there is none; `None` if a quote opens somewhere other
/// than at a field start. With `last`, `buf` is the end of the file and the
/// whole of it is checked.
fn split_point(buf: &[u8], last: bool) -> Option<usize> {
    if memchr::memchr(b'"', buf).is_none() {
        return Some(if last {
            buf.len()
        } else {
            memchr::memrchr(b'\n', buf).map_or(0, |i| i + 1)
        });
    }
    let mut quoted = false;
    let mut cut = 0;
    for i in memchr::memchr2_iter(b'"', b'\n', buf) {
        if buf[i] == b'\n' {
            if !quoted {
                cut = i + 1;
            }
        } else if quoted {
            quoted = false;
        } else {
            // An opening quote: at a field start, or the second half of an
            // escaped `""` inside a quoted field.
            if i > 0 && !matches!(buf[i - 1], b',' | b'\n' | b'\r' | b'"') {
                return None;
            }
            quoted = true;
        }
    }
    if last {
        return (!quoted).then_some(buf.len());
    }
    Some(cut)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The header of a CSV file: the column names (as arrow reads them) and
/// the byte offset where the records start.
pub(crate) fn header(path: &Path) -> Result<(Vec<String>, u64)> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    let mut want = 1 << 16;
    loop {
        let old = buf.len();
        buf.resize(want, 0);
        let mut n = old;
        loop {
            let r = file.read(&mut buf[n..]).map_err(io_err(path))?;
            if r == 0 {
                break;
            }
            n += r;
            if n == want {
                break;
            }
        }
        buf.truncate(n);
        let eof = n < want;
        let mut reader = csv_core::Reader::new();
        let mut out = vec![0u8; buf.len() + 1];
        let mut ends = vec![0usize; buf.len() + 2];
        let (res, nin, _, _) = reader.read_record(&buf, &mut out, &mut ends);
        let end = match res {
            csv_core::ReadRecordResult::Record => Some(nin),
            _ if eof => Some(buf.len()),
            _ => None,
        };
        if let Some(end) = end {
            let format = arrow_csv::reader::Format::default().with_header(true);
            let (schema, _) = format
                .infer_schema(&buf[..end], Some(0))
                .map_err(|e| decode_err(path, e))?;
            let names = schema.fields().iter().map(|f| f.name().clone()).collect();
            return Ok((names, end as u64));
        }
        if want >= MAX_CARRY {
            return Err(decode_err(path, "the header row is longer than 64 MiB"));
        }
        want *= 2;
    }
}

pub(crate) fn decode_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Decodes one chunk with arrow's reader under `schema` (at most `limit`
/// records; only the `columns` given).
pub(crate) fn decode(
    chunk: &[u8],
    schema: SchemaRef,
    limit: Option<usize>,
    columns: Option<Vec<usize>>,
) -> std::result::Result<Vec<RecordBatch>, ArrowError> {
    let mut builder = arrow_csv::ReaderBuilder::new(schema)
        .with_header(false)
        .with_batch_size(1 << 16);
    if let Some(limit) = limit {
        builder = builder.with_bounds(0, limit);
    }
    if let Some(columns) = columns {
        builder = builder.with_projection(columns);
    }
    builder.build(chunk)?.collect()
}

/// An error from chunk decoding, with its line numbers moved from the
/// chunk to the file (`rows_before` records precede the chunk; the header
/// is line 0 as arrow counts).
pub(crate) fn chunk_error(path: &Path, e: ArrowError, rows_before: u64) -> DataError {
    static LINE: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\bline (\d+)").expect("valid regex"));
    let message = e.to_string();
    let message = LINE.replace_all(&message, |c: &regex::Captures<'_>| {
        let n: u64 = c[1].parse().unwrap_or(0);
        format!("line {}", n + rows_before + 1)
    });
    decode_err(path, message)
}

/// Must match arrow-csv's `REGEX_SET`, pattern for pattern and in order:
/// the first match decides.
static REGEX_SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"(?i)^(true)$|^(false)$(?-i)",
        r"^[+-]?(\d+)$",
        r"^[+-]?((\d*\.\d+|\d+\.\d*)([eE][-+]?\d+)?|\d+([eE][-+]?\d+))$",
        r"^\d{4}-\d\d-\d\d$",
        r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[^\d\.].*)?$",
        r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{1,3}(?:[^\d].*)?$",
        r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{1,6}(?:[^\d].*)?$",
        r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\.\d{1,9}(?:[^\d].*)?$",
    ])
    .expect("valid regexes")
});

const BOOL: u16 = 1;
const INT: u16 = 1 << 1;
const FLOAT: u16 = 1 << 2;
pub(crate) const UTF8: u16 = 1 << 8;

/// arrow-csv's `InferredDataType::update` for one non-null value: the bit
/// of its type.
pub(crate) fn classify(s: &str) -> u16 {
    let b = s.as_bytes();
    // Plain numbers first, the bulk of what numeric columns hold: a string
    // of that form is ASCII, not date-like and not a boolean, so the
    // checks below would come to the same answer.
    let body = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let int_digits = leading_digits(body);
    if int_digits > 0 && int_digits == body.len() {
        return if s.len() >= 19 && s.parse::<i64>().is_err() {
            UTF8
        } else {
            INT
        };
    }
    if is_decimal(body, int_digits) {
        return FLOAT;
    }
    if b.first() == Some(&b'"') {
        return UTF8;
    }
    // Non-ASCII (Unicode digits, case folding) and anything date-like go
    // to the regular expressions themselves.
    let date_like = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
    if !s.is_ascii() || date_like {
        return classify_regex(s);
    }
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
        return BOOL;
    }
    if matches!(s, "NaN" | "nan" | "inf" | "-inf") {
        return FLOAT;
    }
    UTF8
}

/// The number of ASCII digits `b` starts with, eight bytes at a time.
#[inline]
fn leading_digits(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // Per byte t = x ^ '0' is below 10 exactly for a digit; then
        // t + 0x76 stays below 0x80. A carry out of a byte can only come
        // from a non-digit and only reaches later bytes.
        let t = x ^ 0x3030_3030_3030_3030;
        let other = (t.wrapping_add(0x7676_7676_7676_7676) | t) & 0x8080_8080_8080_8080;
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `(\d*\.\d+|\d+\.\d*)([eE][-+]?\d+)?|\d+([eE][-+]?\d+)` on ASCII, where
/// `body` starts with `lead` digits.
fn is_decimal(body: &[u8], lead: usize) -> bool {
    let mut i = lead;
    let dot = body.get(i) == Some(&b'.');
    if dot {
        i += 1;
        let frac = leading_digits(&body[i..]);
        i += frac;
        if lead + frac == 0 {
            return false;
        }
    } else if lead == 0 {
        return false;
    }
    if i == body.len() {
        return dot;
    }
    if !matches!(body[i], b'e' | b'E') {
        return false;
    }
    i += 1;
    if matches!(body.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let exp = leading_digits(&body[i..]);
    exp > 0 && i + exp == body.len()
}

fn classify_regex(s: &str) -> u16 {
    match REGEX_SET.matches(s).into_iter().next() {
        Some(1) if s.len() >= 19 && s.parse::<i64>().is_err() => UTF8,
        Some(m) => 1 << m,
        None if matches!(s, "NaN" | "nan" | "inf" | "-inf") => FLOAT,
        None => UTF8,
    }
}

/// arrow-csv's `InferredDataType::get`.
fn data_type(packed: u16) -> DataType {
    match packed {
        0 => DataType::Null,
        1 => DataType::Boolean,
        2 => DataType::Int64,
        4 | 6 => DataType::Float64,
        b if b != 0 && (b & !0b1111_1000) == 0 => match b.leading_zeros() {
            8 => DataType::Timestamp(TimeUnit::Nanosecond, None),
            9 => DataType::Timestamp(TimeUnit::Microsecond, None),
            10 => DataType::Timestamp(TimeUnit::Millisecond, None),
            11 => DataType::Timestamp(TimeUnit::Second, None),
            _ => DataType::Date32,
        },
        _ => DataType::Utf8,
    }
}

/// Calls `record` with the fields of each record of `chunk` (at most
/// `limit`), as `csv-core` configured as arrow's reader splits them. The
/// number of records, or `None` when a record has other than `columns`
/// fields or is not UTF-8 (arrow's reader then produces its own error), or
/// `record` returned false.
pub(crate) fn for_each_record(
    chunk: &[u8],
    columns: usize,
    limit: u64,
    mut record: impl FnMut(&[&str]) -> bool,
) -> Option<u64> {
    match plain_text(chunk) {
        Some(text) => plain_records(text, columns, limit, |f| record(f)),
        None => quoted_records(chunk, columns, limit, record),
    }
}

/// `chunk` as text when it has no quote and no carriage return, the common
/// case that [`plain_records`] reads.
pub(crate) fn plain_text(chunk: &[u8]) -> Option<&str> {
    if memchr::memchr2(b'"', b'\r', chunk).is_some() {
        return None;
    }
    std::str::from_utf8(chunk).ok()
}

/// [`for_each_record`] on text without quotes or carriage returns. There
/// `csv-core`'s records are the non-empty lines (it skips empty ones) and
/// its fields the text between commas, so one vectorized scan for commas
/// and newlines finds them, and the fields are slices of the text itself.
pub(crate) fn plain_records<'a>(
    text: &'a str,
    columns: usize,
    limit: u64,
    mut record: impl FnMut(&[&'a str]) -> bool,
) -> Option<u64> {
    let bytes = text.as_bytes();
    let mut fields: Vec<&'a str> = Vec::with_capacity(columns);
    let mut rows = 0u64;
    let mut start = 0;
    for i in memchr::memchr2_iter(b',', b'\n', bytes) {
        if rows == limit {
            return Some(rows);
        }
        // Commas and newlines are ASCII: always character boundaries.
        fields.push(&text[start..i]);
        start = i + 1;
        if bytes[i] == b'\n' {
            if fields.len() == 1 && fields[0].is_empty() {
                fields.clear();
                continue;
            }
            if fields.len() != columns || !record(&fields) {
                return None;
            }
            rows += 1;
            fields.clear();
        }
    }
    // The last record of the file may have no newline.
    if rows < limit && (start < bytes.len() || !fields.is_empty()) {
        fields.push(&text[start..]);
        if fields.len() != columns || !record(&fields) {
            return None;
        }
        rows += 1;
    }
    Some(rows)
}

/// [`for_each_record`] through `csv-core` itself, for chunks with quotes
/// or carriage returns.
fn quoted_records(
    chunk: &[u8],
    columns: usize,
    limit: u64,
    mut record: impl FnMut(&[&str]) -> bool,
) -> Option<u64> {
    let mut reader = csv_core::Reader::new();
    let mut out = vec![0u8; 1 << 12];
    let mut ends = vec![0usize; columns + 1];
    let (mut outlen, mut endlen) = (0, 0);
    let mut input = chunk;
    let mut rows = 0u64;
    while rows < limit {
        let (res, nin, nout, nend) =
            reader.read_record(input, &mut out[outlen..], &mut ends[endlen..]);
        input = &input[nin..];
        outlen += nout;
        endlen += nend;
        match res {
            csv_core::ReadRecordResult::InputEmpty => {}
            csv_core::ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            csv_core::ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
            csv_core::ReadRecordResult::Record => {
                if endlen != columns {
                    return None;
                }
                let text = std::str::from_utf8(&out[..outlen]).ok()?;
                let mut fields = Vec::with_capacity(columns);
                let mut start = 0;
                for &end in &ends[..columns] {
                    // Not a boundary when a character was split by quotes.
                    fields.push(text.get(start..end)?);
                    start = end;
                }
                if !record(&fields) {
                    return None;
                }
                rows += 1;
                outlen = 0;
                endlen = 0;
            }
            csv_core::ReadRecordResult::End => break,
        }
    }
    Some(rows)
}

/// [`infer_chunk`] classifying fields as [`for_each_record`] splits them,
/// without building arrays. `None` when the chunk has a record of the
/// wrong width or invalid UTF-8: arrow's reader then produces its own
/// error.
fn infer_chunk_fast(
    chunk: &[u8],
    columns: usize,
    limit: Option<usize>,
    open: &[usize],
) -> Option<(Vec<u16>, u64)> {
    let mut bits = vec![0u16; columns];
    let mut wanted = vec![false; columns];
    for &i in open {
        wanted[i] = true;
    }
    let limit = limit.unwrap_or(usize::MAX) as u64;
    let rows = for_each_record(chunk, columns, limit, |fields| {
        for (i, v) in fields.iter().enumerate() {
            if !wanted[i] || v.is_empty() {
                continue;
            }
            bits[i] |= classify(v);
            if bits[i] & UTF8 != 0 {
                wanted[i] = false;
            }
        }
        true
    })?;
    Some((open.iter().map(|&i| bits[i]).collect(), rows))
}

/// The type bits of the `open` columns over the records of one chunk (at
/// most `limit`), and the number of records read.
fn infer_chunk(
    chunk: &[u8],
    strings: &SchemaRef,
    limit: Option<usize>,
    open: &[usize],
) -> std::result::Result<(Vec<u16>, u64), ArrowError> {
    if let Some(fast) = infer_chunk_fast(chunk, strings.fields().len(), limit, open) {
        return Ok(fast);
    }
    let mut packed = vec![0u16; open.len()];
    let mut rows = 0;
    for batch in decode(chunk, strings.clone(), limit, Some(open.to_vec()))? {
        rows += batch.num_rows() as u64;
        for (bits, col) in packed.iter_mut().zip(batch.columns()) {
            let col = col.as_string::<i32>();
            let mut seen = *bits;
            let mut last: &str = "";
            for v in col.iter().flatten() {
                // Runs of one value (categories) are classified once.
                if v.is_empty() || (v == last && seen != 0) {
                    continue;
                }
                seen |= classify(v);
                if seen & UTF8 != 0 {
                    break; // A string column: nothing can change it.
                }
                last = v;
            }
            *bits = seen;
        }
    }
    Ok((packed, rows))
}

/// Which records a schema is inferred from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sample {
    /// Every record (arrow's inference with no record limit).
    All,
    /// The first that many records.
    Records(usize),
    /// The records of the first chunk: a guess, for a reader that checks
    /// it against every record as it goes ([`types_match`]).
    FirstChunk,
}

/// The type bits of the `columns` of `schema` over every record of one
/// chunk.
pub(crate) fn type_bits(
    chunk: &[u8],
    schema: &Schema,
    columns: &[usize],
) -> std::result::Result<Vec<u16>, ArrowError> {
    let strings = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    Ok(infer_chunk(chunk, &strings, None, columns)?.0)
}

/// The schema arrow-csv infers for the CSV file `path` from the records of
/// `sample`, computed over chunks in parallel, and the offset of the first
/// record. `Ok(None)` when the file is not splittable.
pub(crate) fn infer_schema(
    path: &Path,
    sample: Sample,
    chunk_bytes: usize,
) -> Result<Option<(SchemaRef, u64)>> {
    let max_records = match sample {
        Sample::Records(n) => Some(n),
        Sample::All | Sample::FirstChunk => None,
    };
    let (names, start) = header(path)?;
    let strings: SchemaRef = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let mut chunks = Chunks::open(path, start, chunk_bytes)?;
    let mut packed = vec![0u16; names.len()];
    let mut rows = 0u64;
    let round = match sample {
        Sample::FirstChunk => 1,
        Sample::All | Sample::Records(_) => rayon::current_num_threads().clamp(1, 16),
    };
    'outer: loop {
        let mut batch = Vec::with_capacity(round);
        while batch.len() < round {
            match chunks.next_chunk() {
                Ok(Some(c)) => batch.push(c),
                Ok(None) => break,
                Err(SplitError::Data(e)) => return Err(e),
                Err(SplitError::NotSplittable) => return Ok(None),
            }
        }
        if batch.is_empty() {
            break;
        }
        // Columns already strings stay strings: only the others are read.
        let open: Vec<usize> = (0..names.len())
            .filter(|&i| packed[i] & UTF8 == 0)
            .collect();
        if open.is_empty() {
            break;
        }
        let results: Vec<_> = if let Some(max) = max_records {
            // A record budget: chunks in order, each told what is left.
            let mut out = Vec::new();
            let mut left = max.saturating_sub(rows as usize);
            for c in &batch {
                if left == 0 {
                    break;
                }
                let r = infer_chunk(&c.bytes, &strings, Some(left), &open);
                if let Ok((_, n)) = &r {
                    left -= *n as usize;
                }
                out.push(r);
            }
            out
        } else {
            batch
                .par_iter()
                .map(|c| infer_chunk(&c.bytes, &strings, None, &open))
                .collect()
        };
        for r in results {
            match r {
                Ok((bits, n)) => {
                    for (&i, b) in open.iter().zip(bits) {
                        packed[i] |= b;
                    }
                    rows += n;
                }
                Err(e) => return Err(chunk_error(path, e, rows)),
            }
            if max_records.is_some_and(|m| rows >= m as u64) {
                break 'outer;
            }
        }
        if sample == Sample::FirstChunk {
            break;
        }
    }
    Ok(Some((schema_of(&names, &packed), start)))
}

/// The schema of columns `names` with the type bits `packed`.
fn schema_of(names: &[String], packed: &[u16]) -> SchemaRef {
    let fields: Vec<Field> = names
        .iter()
        .zip(packed)
        .map(|(n, p)| Field::new(n, data_type(*p), true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Whether type bits gathered over every record (with [`classify`]) give
/// the types of `schema`.
pub(crate) fn types_match(schema: &Schema, packed: &[u16]) -> bool {
    schema
        .fields()
        .iter()
        .zip(packed)
        .all(|(f, p)| *f.data_type() == data_type(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_classification_agrees_with_the_regexes() {
        let samples = [
            "0",
            "-1",
            "+7",
            "12345678901234567890",
            "9223372036854775807",
            "1.",
            ".5",
            "-.5e3",
            "1e5",
            "1E+5",
            "1e",
            "e5",
            ".",
            "-",
            "+",
            "1.2.3",
            "1e5.0",
            "0x10",
            "true",
            "FALSE",
            "tRuE",
            "yes",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Inf",
            "2024-01-02",
            "2024-01-02 03:04:05",
            "2024-01-02T03:04:05.123",
            "2024-01-02T03:04:05.123456Z",
            "2024-13-99",
            "1234-",
            "abc",
            " 1",
            "1 ",
            "\"q",
            "١٢٣",
            "falſe",
            "00012",
            "1.5e-7",
            "-0",
            "1_000",
            "-0.2558802884476004",
            "0.15410753587651144",
            "12345678.9",
            "1234567890123456789012",
            "-9223372036854775808",
            "123456789e12",
            "1.23456789e-123",
            "123456789:",
            "12345678/",
            "1234567\u{7f}",
            "1234567\u{e9}",
            "2024-01-02T03:04:05.123456789",
        ];
        for s in samples {
            assert_eq!(classify(s), classify_regex(s), "{s:?}");
        }
    }

    #[test]
    fn leading_digits_counts_as_bytes_do() {
        for len in 0..20 {
            for pos in 0..len {
                for x in 0..=255u8 {
                    let mut b = vec![b'7'; len];
                    b[pos] = x;
                    b[len - 1] = if x == b'0' { b'x' } else { b'0' };
                    let want = b.iter().take_while(|c| c.is_ascii_digit()).count();
                    assert_eq!(leading_digits(&b), want, "{b:?}");
                }
            }
        }
    }

    #[test]
    fn plain_records_split_as_csv_core_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let alphabet = ["a", "bc", ",", "\n", "é"];
        for _ in 0..3000 {
            let len = rng.random_range(0..24);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            for columns in 1..4 {
                for limit in [1, 2, u64::MAX] {
                    let mut plain = Vec::new();
                    let n = plain_records(&text, columns, limit, |f| {
                        plain.push(f.join("|"));
                        true
                    });
                    let mut core = Vec::new();
                    let m = quoted_records(text.as_bytes(), columns, limit, |f| {
                        core.push(f.join("|"));
                        true
                    });
                    assert_eq!((n, plain), (m, core), "{text:?} {columns} {limit}");
                }
            }
        }
    }

    #[test]
    fn split_points_respect_quotes() {
        assert_eq!(split_point(b"a,b\nc,d\ne", false), Some(8));
        assert_eq!(split_point(b"a,\"b\nc\"\nd", false), Some(8));
        assert_eq!(split_point(b"a,\"b\"\"\nc\"\nd", false), Some(10));
        assert_eq!(split_point(b"a,b\"c\n", false), None);
        assert_eq!(split_point(b"a,\"b\n", true), None);
    }
}
