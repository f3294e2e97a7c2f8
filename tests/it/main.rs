#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Parley's integration tests: one binary (fast to link), the real app on a random port.
//! `PARLEY_TEST_DATABASE_URL=postgres://…` runs the same suite on PostgreSQL.

mod accounts;
mod conversations;
mod e2e;
mod friends;
mod helpers;
mod messages;
mod metrics;
mod ops;
mod security;
mod stream;
mod topology;
