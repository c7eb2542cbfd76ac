//! Who may talk to the server: Host and Origin checks (DNS rebinding,
//! cross-site requests) and bearer/basic authentication with tokens minted
//! by `keel token create`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use keel_store::tracking::tokens::{self, TokenHash};
use keel_store::tracking::Actor;
use tokio::sync::RwLock;

use crate::error::ApiError;
use crate::AppState;

/// Server access configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Require a token on every request (except `/health`).
    pub require_auth: bool,
    /// Host names (without port) the `Host` header may carry; `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
}

impl Config {
    /// Loopback only, no authentication: the default of `keel server`.
    pub fn loopback() -> Config {
        Config {
            require_auth: false,
            allowed_hosts: Some(vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "[::1]".into(),
                "::1".into(),
            ]),
        }
    }

    /// Refuses to listen on a non-loopback address without authentication.
    pub fn check_bind(&self, addr: &SocketAddr) -> std::io::Result<()> {
        if !addr.ip().is_loopback() && !self.require_auth {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to serve on non-loopback address {addr} without authentication: mint a token \
                     with `keel token create` and start the server with --auth"
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct TokenCache(RwLock<Option<(Instant, Vec<TokenHash>)>>);

impl TokenCache {
    async fn check(&self, state: &AppState, secret: &str) -> Result<Option<String>, ApiError> {
        const FRESH: Duration = Duration::from_secs(2);
        if let Some((at, list)) = &*self.0.read().await {
            if at.elapsed() < FRESH {
                if let Some(name) = tokens::check(list, secret) {
                    return Ok(Some(name));
                }
            }
        }
        // A miss or a stale cache: reload (a token minted a moment ago works).
        let list = tokens::all(&state.store).await?;
        let found = tokens::check(&list, secret);
        *self.0.write().await = Some((Instant::now(), list));
        Ok(found)
    }
}

fn host_of(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest
            .split(']')
            .next()
            .map_or(value, |h| &value[..h.len() + 2]);
    }
    value.split(':').next().unwrap_or(value)
}

fn allowed(config: &Config, host: &str) -> bool {
    match &config.allowed_hosts {
        None => true,
        Some(list) => list.iter().any(|h| h.eq_ignore_ascii_case(host)),
    }
}

fn credentials(req: &Request) -> Option<(Option<String>, String)> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(t) = v.strip_prefix("Bearer ") {
        return Some((None, t.trim().to_string()));
    }
    let b = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((Some(user.to_string()), pass.to_string()))
}

/// The middleware in front of every route.
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if let Some(h) = &host {
        if !allowed(&state.config, host_of(h)) {
            return ApiError::forbidden(
                "Host not allowed: this server only answers requests addressed to its own name",
            )
            .into_response();
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        {
            let origin_host = url::Url::parse(origin)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string));
            let same = match (&origin_host, &host) {
                (Some(o), Some(h)) => {
                    o.eq_ignore_ascii_case(host_of(h)) && allowed(&state.config, o)
                }
                _ => false,
            };
            if !same {
                return ApiError::forbidden("Cross-origin requests are not allowed")
                    .into_response();
            }
        }
    }
    let creds = credentials(&req);
    let actor = if state.config.require_auth && req.uri().path() != "/health" {
        let Some((_user, secret)) = creds else {
            return unauthorized("Authentication required: set MLFLOW_TRACKING_TOKEN (or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)");
        };
        match state.tokens.check(&state, &secret).await {
            // The token's owner, not a user name the client claims.
            Ok(Some(name)) => Actor(name),
            Ok(None) => return unauthorized("Invalid credentials"),
            Err(e) => return e.into_response(),
        }
    } else {
        Actor(creds.and_then(|c| c.0).unwrap_or_else(|| "local".into()))
    };
    req.extensions_mut().insert(actor);
    next.run(req).await
}

fn unauthorized(msg: &str) -> Response {
    let mut r = ApiError::unauthenticated(msg).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"keel\""),
    );
    r
}
