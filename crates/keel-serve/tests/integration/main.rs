//! keel-serve integration tests: handlers through the router (`oneshot`),
//! signature validation, hot swap under load, the prediction log, the
//! monitor, and real clients (Python) when `KEEL_PYTHON` is set.

mod handlers;
mod monitor;
mod python;
mod swap;
mod util;
