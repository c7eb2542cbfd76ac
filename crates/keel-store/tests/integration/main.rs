//! The store test suite. Every scenario runs on SQLite and, when
//! `KEEL_TEST_POSTGRES` names a server (CI always starts one), on
//! PostgreSQL too, each in a fresh database.

mod backends;
mod data;
mod db;
mod tracking;
