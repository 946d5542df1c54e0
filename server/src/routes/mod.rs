//! HTTP routes, one module per area.

pub mod access;
pub mod api;
pub mod assets;
pub mod catalog;
mod contract;
pub mod features;
pub mod governance;
pub mod live;
pub mod ogc_tiles;
pub mod ops;
pub mod render;
pub mod selection;
pub mod spatial;
pub mod sta;
pub mod styles;
pub mod territory;
pub mod tiles;
pub mod versions;
pub mod web;

use crate::problem::Problem;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

/// A GeoJSON body already written.
#[must_use]
pub fn geojson_response(body: String) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    resp
}

/// 404 problem for any path no route matches.
pub async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no resource at {}", uri.path()))
}
