//! Parley: a self-hosted real-time chat server.
//!
//! Server-rendered pages (axum + askama), HTML form posts for every change, and one SSE stream per
//! browser that carries HTML fragments produced by an in-process event hub.
//!
//! # Layout
//! - [`config`]: flags and environment. [`app`]: build, run, shut down. [`server`]: the accept loop,
//!   timeouts and the connection budget. [`state`]: what handlers share.
//! - [`domain`]: types that parse user input. [`db`]: all SQL, over SQLite or PostgreSQL.
//! - [`auth`]: axum-login backend, password hashing. [`sessions`]: the store.
//! - [`chat`]: use cases, the only code that changes state; each records [`events`] in the same
//!   transaction, and `chat::reactions` runs their consequences there too.
//! - [`live`]: reads the event log in id order, renders each event once ([`live::fragments`]) and
//!   routes it to the audience's open streams ([`live::hub`]).
//! - [`views`]: askama view models mirroring `templates/`. [`web`]: HTTP routes and middleware.
//! - [`files`]: attachment bytes on disk (streamed uploads, images and thumbnails, the sweep).
//! - [`push`]: Web Push (VAPID keys, who gets a push, the sender off the request path).
//! - [`metrics`]: the Prometheus endpoint. [`ops`]: `parley copy` and `parley backup`.

pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod files;
pub mod live;
pub mod metrics;
pub mod ops;
pub mod push;
pub mod server;
pub mod sessions;
pub mod state;
pub mod telemetry;
pub mod views;
pub mod web;

pub use app::App;
pub use config::Config;
