//! HTTP routes, one module per area.

pub mod catalog;
pub mod ops;
pub mod styles;
pub mod tiles;
pub mod web;

use crate::problem::Problem;
use axum::http::Uri;

/// 404 problem for any path no route matches.
pub async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no resource at {}", uri.path()))
}
