//! Rendering for humans: tables, error reports.

/// Prints an error with its cause chain to stderr.
pub fn report_error(err: &anyhow::Error) {
    if err.downcast_ref::<crate::cmd::CheckFailed>().is_some() {
        eprintln!("keel: {err}");
        return;
    }
    eprintln!("error: {err:#}");
}
