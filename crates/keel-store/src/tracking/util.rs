//! SQL helpers shared by tracking and registry: typed binds collected while
//! building a query (values are never spliced into SQL text), row getters
//! and opaque page tokens.

use base64::Engine;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::error::{TrackingError, TrackingResult};
use crate::db::Backend;

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    I64(i64),
    OptI64(Option<i64>),
    F64(f64),
    Blob(Vec<u8>),
}

/// SQL text plus its binds, built together so that `$n` always matches.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    /// Placeholders are SQLite's anonymous `?` (see [`Sql::in_order`]).
    anonymous: bool,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
            anonymous: false,
        }
    }

    /// For statements whose text is written in the order of their binds
    /// (multi-row INSERTs): placeholders are `?` on SQLite. SQLite looks
    /// each `$n` up by a linear search of the statement's parameter names,
    /// so binding n of them costs O(n²): with 4,608 binds that was 77% of
    /// the time of a 1,000-point log-batch.
    pub fn in_order(backend: Backend, text: &str) -> Sql {
        Sql {
            anonymous: backend == Backend::Sqlite,
            ..Sql::new(text)
        }
    }

    /// Adds a bind and returns its placeholder.
    pub fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        if self.anonymous {
            "?".to_string()
        } else {
            format!("${}", self.binds.len())
        }
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        bind_all(
            sqlx::query(sqlx::AssertSqlSafe(self.text.as_str())),
            &self.binds,
        )
    }

    /// Runs the statement on a SQLite lane connection (the text stays in
    /// its prepared-statement cache); returns the rows changed.
    pub fn execute_on(&self, c: &rusqlite::Connection) -> rusqlite::Result<usize> {
        let mut st = c.prepare_cached(&self.text)?;
        self.bind_to(&mut st)?;
        st.raw_execute()
    }

    /// Runs a query on a SQLite lane connection, mapping each row.
    pub fn fetch_on<T>(
        &self,
        c: &rusqlite::Connection,
        context: &'static str,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> TrackingResult<T>,
    ) -> TrackingResult<Vec<T>> {
        let err = TrackingError::sqlite(context);
        let mut st = match c.prepare_cached(&self.text) {
            Ok(st) => st,
            Err(e) => return Err(err(e)),
        };
        if let Err(e) = self.bind_to(&mut st) {
            return Err(err(e));
        }
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        loop {
            match rows.next() {
                Ok(Some(r)) => out.push(row(r)?),
                Ok(None) => return Ok(out),
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Binds as sqlx does on SQLite: `?` in order, `$n` to bind n.
    fn bind_to(&self, st: &mut rusqlite::Statement<'_>) -> rusqlite::Result<()> {
        for i in 1..=st.parameter_count() {
            let n = st
                .parameter_name(i)
                .and_then(|name| name.get(1..)?.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or(i);
            let Some(b) = self.binds.get(n - 1) else {
                return Err(rusqlite::Error::InvalidParameterCount(n, self.binds.len()));
            };
            match b {
                Bind::Text(s) => st.raw_bind_parameter(i, s)?,
                Bind::OptText(s) => st.raw_bind_parameter(i, s)?,
                Bind::I64(v) => st.raw_bind_parameter(i, v)?,
                Bind::OptI64(v) => st.raw_bind_parameter(i, v)?,
                Bind::F64(v) => st.raw_bind_parameter(i, v)?,
                Bind::Blob(v) => st.raw_bind_parameter(i, v)?,
            }
        }
        Ok(())
    }
}

pub(crate) fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    binds: &[Bind],
) -> Query<'q, Any, AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::OptText(s) => q.bind(s.clone()),
            Bind::I64(v) => q.bind(*v),
            Bind::OptI64(v) => q.bind(*v),
            Bind::F64(v) => q.bind(*v),
            Bind::Blob(v) => q.bind(v.clone()),
        };
    }
    q
}

/// A column type both drivers decode.
pub(crate) trait ColType:
    for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}
impl<T> ColType for T where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}

/// A result row of either driver (sqlx, or the SQLite lane's rusqlite),
/// so that rows are turned into entities by one function.
pub(crate) trait Cols {
    /// Column `name`, decoded as `T`.
    fn cell<T: ColType>(&self, name: &str) -> TrackingResult<T>;
}

impl Cols for AnyRow {
    fn cell<T: ColType>(&self, name: &str) -> TrackingResult<T> {
        col(self, name)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn cell<T: ColType>(&self, name: &str) -> TrackingResult<T> {
        rusqlite::Row::get(self, name).map_err(TrackingError::sqlite("reading a column"))
    }
}

pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> TrackingResult<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(|source| {
        TrackingError::Store(crate::StoreError::Db {
            context: format!("reading column {name}"),
            source,
        })
    })
}

/// Placeholders `$a, $a+1, …` for `n` values starting after `start` binds.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start + 1..=start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An opaque page token: base64 of `{"offset": N}`, as MLflow's own.
pub(crate) fn encode_token(offset: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

pub(crate) fn decode_token(token: Option<&str>) -> TrackingResult<i64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || {
        TrackingError::invalid(format!(
            "Invalid page token, could not base64-decode: {token:?}"
        ))
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let offset = v
        .get("offset")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(bad)?;
    if offset < 0 {
        return Err(bad());
    }
    Ok(offset)
}

/// Turns a fetched `limit + 1` rows into a page.
pub(crate) fn paginate<T>(mut items: Vec<T>, offset: i64, limit: i64) -> super::Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    super::Page {
        next_page_token: more.then(|| encode_token(offset + limit)),
        items,
    }
}

/// Whether a DB error is a unique/primary-key violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code()
                    .is_some_and(|c| c == "23505" || c == "1555" || c == "2067")
                || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}
