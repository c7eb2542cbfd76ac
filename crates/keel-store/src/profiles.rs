//! Cached data profiles, by content hash: a profile is a pure function of
//! a file's bytes and the profiler's version, so `keel data profile` of a
//! versioned (or any unchanged) file is computed once. The profile itself
//! is JSON that keel-store does not interpret.

use crate::db::{now_ms, Db};
use crate::{Result, StoreError};

/// The `profiles` component's schema.
pub const PROFILES_V1: crate::migrations::Migration = crate::migrations::Migration {
    component: "profiles",
    version: 1,
    name: "data profiles by content hash",
    only: None,
    sql: "
CREATE TABLE data_profiles (
    content_hash TEXT NOT NULL,
    profile_version BIGINT NOT NULL,
    profile TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (content_hash, profile_version)
);
",
};

/// The profile stored for `content_hash` by profiler `version`, if any.
pub async fn get(db: &Db, content_hash: &str, version: i64) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT profile FROM data_profiles WHERE content_hash = $1 AND profile_version = $2",
    )
    .bind(content_hash)
    .bind(version)
    .fetch_optional(db.pool())
    .await
    .map_err(StoreError::db(format!(
        "reading the profile of {content_hash}"
    )))?;
    row.map(|r| crate::db::get(&r, 0)).transpose()
}

/// Stores a profile; a concurrent writer of the same key wins silently
/// (both computed the same profile).
pub async fn put(db: &Db, content_hash: &str, version: i64, profile_json: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO data_profiles (content_hash, profile_version, profile, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (content_hash, profile_version) DO NOTHING",
    )
    .bind(content_hash)
    .bind(version)
    .bind(profile_json)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .map_err(StoreError::db(format!(
        "storing the profile of {content_hash}"
    )))?;
    Ok(())
}
