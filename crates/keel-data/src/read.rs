//! Streaming readers: CSV, Parquet and Arrow IPC files into Arrow record
//! batches, one bounded batch at a time.
//!
//! Memory is bounded by the batch size (times the number of batches in
//! flight), never by the file size. CSV types are inferred from the whole
//! file when it is at most [`ReadOptions::csv_full_inference_bytes`],
//! otherwise from the first [`ReadOptions::csv_infer_rows`] records.
//! Empty CSV fields are nulls for every type, as in pandas.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use crate::error::{DataError, Result};

/// A file format keel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC, file or stream format (`.arrow`, `.ipc`, `.feather`).
    ArrowIpc,
}

impl Format {
    /// Guesses the format from the file extension.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "csv" | "txt" => Ok(Format::Csv),
            "parquet" | "pq" => Ok(Format::Parquet),
            "arrow" | "ipc" | "feather" | "arrows" => Ok(Format::ArrowIpc),
            _ => Err(DataError::UnknownFormat(path.to_path_buf())),
        }
    }
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Rows per record batch.
    pub batch_size: usize,
    /// CSV files up to this size have their schema inferred from every row.
    pub csv_full_inference_bytes: u64,
    /// Larger CSV files have their schema inferred from this many rows.
    pub csv_infer_rows: usize,
    /// Read only these columns (all when `None`).
    pub columns: Option<Vec<String>>,
}

impl ReadOptions {
    /// 64 Ki-row batches, full CSV inference up to 256 MiB, else from the
    /// first million rows; all columns.
    pub fn new() -> ReadOptions {
        ReadOptions {
            batch_size: 65_536,
            csv_full_inference_bytes: 256 << 20,
            csv_infer_rows: 1_000_000,
            columns: None,
        }
    }

    /// The same options restricted to `columns`.
    pub fn with_columns(mut self, columns: Option<Vec<String>>) -> ReadOptions {
        self.columns = columns;
        self
    }
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions::new()
    }
}

/// An iterator of record batches from one file.
pub struct BatchReader {
    path: PathBuf,
    schema: SchemaRef,
    inner: Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>,
}

impl std::fmt::Debug for BatchReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl BatchReader {
    /// The schema of the batches this reader yields.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for BatchReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| {
            r.map_err(|e| DataError::Decode {
                path: self.path.clone(),
                message: e.to_string(),
            })
        })
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn decode_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn projection(
    schema: &arrow_schema::Schema,
    columns: &Option<Vec<String>>,
    path: &Path,
) -> Result<Option<Vec<usize>>> {
    let Some(cols) = columns else { return Ok(None) };
    cols.iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| DataError::MissingColumn {
                column: c.clone(),
                source_name: path.display().to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Opens `path` (format from its extension) as a stream of batches.
pub fn open(path: &Path, options: &ReadOptions) -> Result<BatchReader> {
    match Format::from_path(path)? {
        Format::Csv => open_csv(path, options),
        Format::Parquet => open_parquet(path, options),
        Format::ArrowIpc => open_ipc(path, options),
    }
}

fn open_csv(path: &Path, options: &ReadOptions) -> Result<BatchReader> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let schema = csv_schema(path, options)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    let mut builder = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(options.batch_size);
    let out_schema = match projection(&schema, &options.columns, path)? {
        Some(p) => {
            builder = builder.with_projection(p.clone());
            Arc::new(schema.project(&p).map_err(|e| decode_err(path, e))?)
        }
        None => schema,
    };
    let reader = builder
        .build(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| decode_err(path, e))?;
    Ok(BatchReader {
        path: path.to_path_buf(),
        schema: out_schema,
        inner: Box::new(reader),
    })
}

/// The schema arrow-csv infers for `path` under `options`: over chunks in
/// parallel when the file splits into chunks, else by arrow itself.
pub(crate) fn csv_schema(path: &Path, options: &ReadOptions) -> Result<SchemaRef> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    let max_records = (size > options.csv_full_inference_bytes).then_some(options.csv_infer_rows);
    if let Some((schema, _)) = crate::csv::infer_schema(
        path,
        max_records.map_or(crate::csv::Sample::All, crate::csv::Sample::Records),
        crate::csv::CHUNK_BYTES,
    )? {
        return Ok(schema);
    }
    let file = File::open(path).map_err(io_err(path))?;
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(BufReader::with_capacity(1 << 20, file), max_records)
        .map_err(|e| decode_err(path, e))?;
    Ok(Arc::new(schema))
}

fn open_parquet(path: &Path, options: &ReadOptions) -> Result<BatchReader> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let file = File::open(path).map_err(io_err(path))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| decode_err(path, e))?
        .with_batch_size(options.batch_size);
    if let Some(p) = projection(builder.schema(), &options.columns, path)? {
        let mask = ProjectionMask::roots(builder.parquet_schema(), p);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(|e| decode_err(path, e))?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    Ok(BatchReader {
        path: path.to_path_buf(),
        schema,
        inner: Box::new(reader),
    })
}

fn open_ipc(path: &Path, options: &ReadOptions) -> Result<BatchReader> {
    let file = File::open(path).map_err(io_err(path))?;
    let file_reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None);
    let (schema, inner): (SchemaRef, Box<dyn Iterator<Item = _> + Send>) = match file_reader {
        Ok(r) => (r.schema(), Box::new(r)),
        Err(_) => {
            // Not the file format: try the streaming format.
            let file = File::open(path).map_err(io_err(path))?;
            let r = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| decode_err(path, e))?;
            (r.schema(), Box::new(r))
        }
    };
    let proj = projection(&schema, &options.columns, path)?;
    let (schema, inner): (SchemaRef, Box<dyn Iterator<Item = _> + Send>) = match proj {
        Some(p) => {
            let projected = Arc::new(schema.project(&p).map_err(|e| decode_err(path, e))?);
            let inner = inner.map(move |b: std::result::Result<RecordBatch, ArrowError>| {
                b.and_then(|b| b.project(&p))
            });
            (projected, Box::new(inner))
        }
        None => (schema, inner),
    };
    Ok(BatchReader {
        path: path.to_path_buf(),
        schema,
        inner,
    })
}

/// Reads every batch of a file into memory (for small files and tests).
pub fn read_all(path: &Path, options: &ReadOptions) -> Result<Vec<RecordBatch>> {
    open(path, options)?.collect()
}
