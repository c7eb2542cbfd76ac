//! Dataset versions in the metadata DB.

use keel_core::{DatasetPath, ObjectHash, VersionSeq};
use sqlx::any::AnyRow;

use super::tree::Kind;
use crate::db::{get, now_ms, Db};
use crate::error::{Result, StoreError};

/// One recorded version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetVersion {
    /// The dataset.
    pub path: DatasetPath,
    /// Its version number.
    pub seq: VersionSeq,
    /// Version hash: the file's object, or the directory's manifest.
    pub hash: ObjectHash,
    /// File or directory.
    pub kind: Kind,
    /// Total bytes.
    pub size: u64,
    /// Number of files.
    pub nfiles: u64,
    /// The git commit of the project when the version was added.
    pub git_commit: Option<String>,
    /// Whether the git work tree had uncommitted changes then.
    pub git_dirty: bool,
    /// When, in ms since the epoch.
    pub created_at_ms: i64,
    /// Who (the OS user).
    pub created_by: String,
    /// An optional message.
    pub message: Option<String>,
}

/// What to record for a new version.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// The dataset.
    pub path: &'a DatasetPath,
    /// Version hash.
    pub hash: ObjectHash,
    /// File or directory.
    pub kind: Kind,
    /// Total bytes.
    pub size: u64,
    /// Number of files.
    pub nfiles: u64,
    /// Git commit and dirty flag, if in a git work tree.
    pub git: Option<(String, bool)>,
    /// Who.
    pub created_by: &'a str,
    /// Optional message.
    pub message: Option<&'a str>,
}

const COLUMNS: &str =
    "path, seq, hash, kind, size, nfiles, git_commit, git_dirty, created_at, created_by, message";

fn from_row(row: &AnyRow) -> Result<DatasetVersion> {
    let path: String = get(row, 0)?;
    let hash: String = get(row, 2)?;
    let kind: String = get(row, 3)?;
    let corrupt = |what: &str| StoreError::Parse {
        path: "metadata DB: dataset_versions".into(),
        line: None,
        message: format!("{what} of {path}"),
    };
    Ok(DatasetVersion {
        path: DatasetPath::new(&path).map_err(|e| corrupt(&e.to_string()))?,
        seq: VersionSeq(get(row, 1)?),
        hash: hash.parse().map_err(|_| corrupt("bad hash"))?,
        kind: Kind::parse(&kind).ok_or_else(|| corrupt("bad kind"))?,
        size: u64::try_from(get::<i64>(row, 4)?).unwrap_or(0),
        nfiles: u64::try_from(get::<i64>(row, 5)?).unwrap_or(0),
        git_commit: get(row, 6)?,
        git_dirty: get::<i64>(row, 7)? != 0,
        created_at_ms: get(row, 8)?,
        created_by: get(row, 9)?,
        message: get(row, 10)?,
    })
}

/// Records a version, unless the dataset's latest version already has
/// this hash (re-adding unchanged data, or re-running an add that was
/// killed after its commit). Returns the version and whether it is new.
pub async fn record(db: &Db, v: &NewVersion<'_>) -> Result<(DatasetVersion, bool)> {
    let ctx = || format!("recording a version of {}", v.path);
    // Two concurrent adds may pick the same next number; the primary key
    // refuses the second, which then retries with the next one.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = db.pool().begin().await.map_err(StoreError::db(ctx()))?;
        sqlx::query(
            "INSERT INTO datasets (path, created_at) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING",
        )
        .bind(v.path.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db(ctx()))?;
        let latest = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dataset_versions WHERE path = $1 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(v.path.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::db(ctx()))?;
        let latest = latest.as_ref().map(from_row).transpose()?;
        if let Some(l) = latest.as_ref().filter(|l| l.hash == v.hash) {
            return Ok((l.clone(), false));
        }
        let seq = latest.map(|l| l.seq.0 + 1).unwrap_or(1);
        let (commit, dirty) = match &v.git {
            Some((c, d)) => (Some(c.clone()), *d),
            None => (None, false),
        };
        let created_at = now_ms();
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO dataset_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(v.path.as_str())
        .bind(seq)
        .bind(v.hash.to_hex())
        .bind(v.kind.as_str())
        .bind(i64::try_from(v.size).unwrap_or(i64::MAX))
        .bind(i64::try_from(v.nfiles).unwrap_or(i64::MAX))
        .bind(commit.clone())
        .bind(i64::from(dirty))
        .bind(created_at)
        .bind(v.created_by)
        .bind(v.message)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 10 => continue,
            Err(e) => return Err(StoreError::db(ctx())(e)),
        }
        tx.commit().await.map_err(StoreError::db(ctx()))?;
        return Ok((
            DatasetVersion {
                path: v.path.clone(),
                seq: VersionSeq(seq),
                hash: v.hash,
                kind: v.kind,
                size: v.size,
                nfiles: v.nfiles,
                git_commit: commit,
                git_dirty: dirty,
                created_at_ms: created_at,
                created_by: v.created_by.to_string(),
                message: v.message.map(str::to_string),
            },
            true,
        ));
    }
}

/// Every version of a dataset, oldest first.
pub async fn list(db: &Db, path: &DatasetPath) -> Result<Vec<DatasetVersion>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dataset_versions WHERE path = $1 ORDER BY seq"
    )))
    .bind(path.as_str())
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::db(format!("listing versions of {path}")))?;
    rows.iter().map(from_row).collect()
}

/// Every version of every dataset.
pub async fn list_all(db: &Db) -> Result<Vec<DatasetVersion>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dataset_versions ORDER BY path, seq"
    )))
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::db("listing dataset versions"))?;
    rows.iter().map(from_row).collect()
}

/// Resolves a version spec (`3`, `v3`, `latest`, or a hash prefix of at
/// least 4 digits) among a dataset's versions.
pub fn resolve<'a>(
    path: &DatasetPath,
    versions: &'a [DatasetVersion],
    spec: &str,
) -> Result<&'a DatasetVersion> {
    let not_found = || StoreError::VersionNotFound {
        path: path.to_string(),
        spec: spec.to_string(),
    };
    if spec == "latest" {
        return versions.last().ok_or_else(not_found);
    }
    let num = spec.strip_prefix('v').unwrap_or(spec);
    if let Ok(n) = num.parse::<i64>() {
        if let Some(v) = versions.iter().find(|v| v.seq.0 == n) {
            return Ok(v);
        }
    }
    if spec.len() >= 4 && spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<_> = versions
            .iter()
            .filter(|v| v.hash.to_hex().starts_with(spec))
            .collect();
        // Versions with the same content (v1, then v3 after a checkout of
        // v1 and a re-add) are the same data: the latest of them answers.
        let distinct: std::collections::HashSet<_> = hits.iter().map(|v| v.hash).collect();
        return match (hits.last(), distinct.len()) {
            (None, _) => Err(not_found()),
            (Some(latest), 1) => Ok(latest),
            (Some(_), n) => Err(StoreError::AmbiguousVersion {
                path: path.to_string(),
                spec: spec.to_string(),
                count: n,
            }),
        };
    }
    Err(not_found())
}
