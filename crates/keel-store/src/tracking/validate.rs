//! MLflow's limits and name rules (`mlflow/utils/validation.py`), with
//! MLflow's messages, and the confinement of every user-supplied path.

use super::error::{TrackingError, TrackingResult};

/// Longest metric/param/tag key.
pub const MAX_KEY: usize = 250;
/// Longest param value (longer values are truncated, as MLflow 3 does).
pub const MAX_PARAM_VALUE: usize = 6000;
/// Longest run tag value (truncated likewise).
pub const MAX_TAG_VALUE: usize = 8000;
/// Longest experiment or registered-model name.
pub const MAX_NAME: usize = 500;
/// Longest experiment tag value.
pub const MAX_EXPERIMENT_TAG_VALUE: usize = 20000;
/// Longest registry tag value.
pub const MAX_REGISTRY_TAG_VALUE: usize = 100_000;
/// log-batch limits.
pub const MAX_BATCH_METRICS: usize = 1000;
/// log-batch limits.
pub const MAX_BATCH_PARAMS: usize = 100;
/// log-batch limits.
pub const MAX_BATCH_TAGS: usize = 100;
/// Longest artifact path.
pub const MAX_ARTIFACT_PATH: usize = 1024;

/// Checks a metric/param/tag key: length and `^[/\w.\- :]*$`, and that it
/// does not normalise to something else (`a//b`, `./x`, `../x`, `/x`).
pub fn key(kind: &str, key: &str) -> TrackingResult<()> {
    if key.is_empty() {
        return Err(TrackingError::invalid(format!(
            "Missing value for required parameter 'key' ({kind})"
        )));
    }
    if key.chars().count() > MAX_KEY {
        return Err(TrackingError::invalid(format!(
            "{kind} '{}…' had length {}, which exceeded length limit of {MAX_KEY}",
            key.chars().take(40).collect::<String>(),
            key.chars().count()
        )));
    }
    let ok_chars = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':'));
    let normalises =
        key.starts_with('/') || key.contains("//") || key.split('/').any(|s| s == "." || s == "..");
    if !ok_chars || normalises {
        return Err(TrackingError::invalid(format!(
            "Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), \
             periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    Ok(())
}

/// Truncates `value` to `max` characters (MLflow 3 truncates long values by default).
pub fn truncate(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        value.to_string()
    } else {
        value.chars().take(max).collect()
    }
}

/// Checks that a value is at most `max` characters.
pub fn length(what: &str, value: &str, max: usize) -> TrackingResult<()> {
    let n = value.chars().count();
    if n > max {
        return Err(TrackingError::invalid(format!(
            "'{what}' exceeds the maximum length of {max} characters (got {n})"
        )));
    }
    Ok(())
}

/// An experiment or registered-model name: non-empty, at most 500 chars, no NUL.
pub fn name(what: &str, name: &str) -> TrackingResult<()> {
    if name.trim().is_empty() {
        return Err(TrackingError::invalid(format!(
            "{what} name must be a non-empty string"
        )));
    }
    length(&format!("{what} name"), name, MAX_NAME)?;
    if name.chars().any(char::is_control) {
        return Err(TrackingError::invalid(format!(
            "{what} name must not contain control characters"
        )));
    }
    Ok(())
}

/// A run or logged-model id: `^[a-zA-Z0-9][\w\-]{0,255}$`. Ids become
/// storage keys, so `/`, `.` and `%` are refused.
pub fn id(what: &str, id: &str) -> TrackingResult<()> {
    let mut chars = id.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 256
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(TrackingError::invalid(format!(
            "Invalid value '{id}' for parameter '{what}'"
        )));
    }
    Ok(())
}

/// An alias: `^[\w\-]*$`, at most 255, not `latest`, not `v<digits>`.
pub fn alias(alias: &str) -> TrackingResult<()> {
    let ok = !alias.is_empty()
        && alias.len() <= 255
        && alias
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(TrackingError::invalid(format!(
            "Invalid alias name: '{alias}'. Aliases may only contain alphanumerics, underscores (_), and dashes (-), \
             and must be at most 255 characters."
        )));
    }
    let lower = alias.to_ascii_lowercase();
    let version_like =
        lower.len() > 1 && lower.starts_with('v') && lower[1..].bytes().all(|b| b.is_ascii_digit());
    if lower == "latest" || version_like {
        return Err(TrackingError::invalid(format!(
            "'{alias}' alias name (case insensitive) is reserved."
        )));
    }
    Ok(())
}

/// Normalises a relative artifact path and confines it.
///
/// Refuses, rather than repairs, anything suspicious: `..` segments, `.`
/// segments, absolute paths, drive letters, backslashes, NUL and control
/// characters, `#`/`?`, and percent-encoding (MLflow decodes up to ten
/// rounds, so `%2e%2e` and `%252e%252e` are traversal; a path that still
/// contains `%` after the server's one decoding is refused outright).
/// `//` is refused; a trailing `/` is dropped. Returns the
/// `/`-joined segments; the empty string is the root.
pub fn artifact_path(raw: &str) -> TrackingResult<String> {
    let bad = |why: &str| {
        TrackingError::invalid(format!(
            "Invalid artifact path: '{}'. {why}",
            raw.escape_debug()
        ))
    };
    if raw.len() > MAX_ARTIFACT_PATH {
        return Err(bad("The path is too long."));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(bad("Control characters are not allowed."));
    }
    if raw.contains('\\') {
        return Err(bad("Backslashes are not allowed."));
    }
    if raw.contains('%') {
        return Err(bad("Percent-encoded characters are not allowed."));
    }
    if raw.contains('#') || raw.contains('?') {
        return Err(bad("'#' and '?' are not allowed."));
    }
    if raw.starts_with('/') || raw.starts_with('~') {
        return Err(bad("Absolute paths are not allowed."));
    }
    let first = raw.split('/').next().unwrap_or("");
    if first.len() >= 2 && first.as_bytes()[1] == b':' {
        return Err(bad("Drive letters and URI schemes are not allowed."));
    }
    if raw.contains("//") {
        return Err(bad("Empty path segments ('//') are not allowed."));
    }
    let mut out = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" => {}
            "." | ".." => return Err(bad("'.' and '..' segments are not allowed.")),
            s if s.contains(':') => return Err(bad("':' is not allowed.")),
            s => out.push(s),
        }
    }
    Ok(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_are_confined() {
        for bad in [
            "../x",
            "a/../../x",
            "%2e%2e/x",
            "%2e%2e%2fx",
            "%252e%252e%252f",
            "..%5cx",
            "a\\..\\b",
            "/etc/passwd",
            "//etc",
            "C:/x",
            "C:\\x",
            "x#frag",
            "x%23/../",
            "a\0b",
            "a\nb",
            "./x",
            "~/x",
            "file:///etc",
            "x?y=1",
        ] {
            assert!(artifact_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(artifact_path(&"a/".repeat(600)).is_err());
        assert_eq!(artifact_path("a/b/c.txt/").unwrap(), "a/b/c.txt");
        assert!(artifact_path("a//b").is_err());
        assert_eq!(artifact_path("").unwrap(), "");
        assert_eq!(artifact_path("model/MLmodel").unwrap(), "model/MLmodel");
    }

    #[test]
    fn keys_and_aliases() {
        assert!(key("metric", "loss/train").is_ok());
        assert!(key("metric", "../x").is_err());
        assert!(key("metric", "a//b").is_err());
        assert!(key("metric", "a;b").is_err());
        assert!(alias("champion").is_ok());
        assert!(alias("latest").is_err());
        assert!(alias("V12").is_err());
        assert!(alias("a.b").is_err());
        assert!(id("run_id", "0123abcd").is_ok());
        assert!(id("run_id", "../x").is_err());
        assert!(id("run_id", "a%2Fb").is_err());
    }
}
