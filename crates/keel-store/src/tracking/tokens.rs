//! API tokens for the server: minted once, stored only as a BLAKE3 hash,
//! compared in constant time.

use super::error::{TrackingError, TrackingResult};
use super::util::col;
use crate::db::now_ms;
use crate::Store;

const CONTEXT: &str = "keel 2026 api token v1";

/// A minted token. `secret` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id (for listing and revoking).
    pub token_id: String,
    /// Owner name; recorded as the actor of requests made with the token.
    pub name: String,
    /// The secret to hand to the client (`MLFLOW_TRACKING_TOKEN`).
    pub secret: String,
}

/// A stored token: its owner and hash.
#[derive(Debug, Clone)]
pub struct TokenHash {
    /// Owner name.
    pub name: String,
    /// `derive_key(CONTEXT, secret)`.
    pub hash: blake3::Hash,
}

/// Hashes a presented secret.
pub fn hash_secret(secret: &str) -> blake3::Hash {
    blake3::Hash::from(blake3::derive_key(CONTEXT, secret.as_bytes()))
}

/// Mints a token for `name`.
pub async fn create(store: &Store, name: &str) -> TrackingResult<NewToken> {
    super::validate::name("Token owner", name)?;
    let secret = format!(
        "keel_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let token_id = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(
        "INSERT INTO api_tokens (token_id, name, hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&token_id)
    .bind(name)
    .bind(hash_secret(&secret).to_hex().to_string())
    .bind(now_ms())
    .execute(store.db.pool())
    .await
    .map_err(TrackingError::db("storing token"))?;
    Ok(NewToken {
        token_id,
        name: name.to_string(),
        secret,
    })
}

/// Every live token's hash.
pub async fn all(store: &Store) -> TrackingResult<Vec<TokenHash>> {
    let rows = sqlx::query("SELECT name, hash FROM api_tokens WHERE revoked_at IS NULL")
        .fetch_all(store.db.pool())
        .await
        .map_err(TrackingError::db("reading tokens"))?;
    rows.iter()
        .map(|r| {
            let hex: String = col(r, "hash")?;
            let hash = blake3::Hash::from_hex(&hex).map_err(|_| {
                TrackingError::invalid(format!("stored token hash {hex:?} is malformed"))
            })?;
            Ok(TokenHash {
                name: col(r, "name")?,
                hash,
            })
        })
        .collect()
}

/// The owner of `secret` among `tokens`, comparing every hash in constant time.
pub fn check(tokens: &[TokenHash], secret: &str) -> Option<String> {
    let h = hash_secret(secret);
    let mut found = None;
    for t in tokens {
        // blake3::Hash's `==` is constant-time; no early exit either.
        if t.hash == h {
            found = Some(t.name.clone());
        }
    }
    found
}
