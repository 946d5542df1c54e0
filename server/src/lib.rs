//! citytwin's server: CLI, configuration, HTTP adapters and wiring. Domain logic lives in
//! `citytwin-city`; this crate only translates between HTTP and the twin.

pub mod app;
pub mod auth;
pub mod cli;
pub mod cli_governance;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod export;
pub mod fuzzing;
pub mod metrics;
pub mod mqtt;
pub mod oidc;
pub mod params;
pub mod problem;
pub mod progress;
pub mod render;
pub mod routes;
pub mod simulate;
pub mod streams;

pub use app::{AppState, router};
pub use config::Settings;
