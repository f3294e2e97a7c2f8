#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Parley's integration tests: one binary (fast to link), the real app on a random port.
//! `PARLEY_TEST_DATABASE_URL=postgres://…` runs the same suite on PostgreSQL.

mod accounts;
mod admin;
mod attachments;
mod combined_posts;
mod connections;
mod conversations;
mod e2e;
mod e2e_property;
mod friends;
mod helpers;
mod invites;
mod limits;
mod links;
mod live;
mod log;
mod message_features;
mod messages;
mod metrics;
mod names;
mod node_caches;
mod ops;
mod process;
mod push;
mod search;
mod security;
mod stream;
mod topology;
