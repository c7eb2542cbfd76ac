/// How long work reports its progress, without the library knowing how it
/// is shown (the CLI draws bars; the server and tests show nothing).
pub trait Progress: Send + Sync {
    /// A new phase starts; `total` is in `unit`s when known.
    fn begin(&self, label: &str, total: Option<u64>, unit: Unit);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is over.
    fn end(&self);
}

/// What a progress phase counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (shown as KiB/MiB/GiB and a rate).
    Bytes,
    /// Plain items (files, jobs, rows).
    Items,
}

/// Progress that is shown nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _label: &str, _total: Option<u64>, _unit: Unit) {}
    fn advance(&self, _n: u64) {}
    fn end(&self) {}
}
