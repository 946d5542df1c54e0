//! The browser viewer and the MapLibre GL JS files it loads, all served locally.

use crate::app::AppState;
use crate::config::Settings;
use crate::problem::Problem;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

/// Routes of this area: `/` (the viewer), `/web/*` (its files), `/vendor/maplibre-gl/*`.
pub fn router(settings: &Settings) -> Router<AppState> {
    let web = settings.web_dir.clone();
    let maplibre = web.join("node_modules/maplibre-gl/dist");
    let index = web.join("index.html");
    let installed = maplibre.join("maplibre-gl.mjs").exists();
    Router::new()
        .route(
            "/",
            get(move || {
                let index = index.clone();
                async move { viewer(&index, installed) }
            }),
        )
        .nest_service("/web", ServeDir::new(web))
        .nest_service("/vendor/maplibre-gl", ServeDir::new(maplibre))
}

fn viewer(index: &std::path::Path, installed: bool) -> Response {
    if !installed {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "viewer-not-installed",
            "MapLibre GL JS is not installed: run `npm ci --prefix web` (scripts/demo does it)",
        )
        .into_response();
    }
    match std::fs::read_to_string(index) {
        Ok(html) => Html(html).into_response(),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "viewer-missing",
            format!("{}: {e}", index.display()),
        )
        .into_response(),
    }
}
