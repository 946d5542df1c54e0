//! The browser viewer and the MapLibre GL JS files it loads, all served locally; `/` answers
//! clients asking for JSON with the OGC API landing page.

use crate::app::AppState;
use crate::app::base_url;
use crate::config::Settings;
use crate::problem::Problem;
use crate::routes::features::landing_page;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
            get(move |headers: HeaderMap, uri: Uri| {
                let index = index.clone();
                async move {
                    if wants_json(&headers, &uri) {
                        Json(landing_page(&base_url(&headers))).into_response()
                    } else {
                        viewer(&index, installed)
                    }
                }
            }),
        )
        .nest_service("/web", ServeDir::new(web))
        .nest_service("/vendor/maplibre-gl", ServeDir::new(maplibre))
}

/// Whether a request for `/` asks for the OGC API landing page rather than the viewer:
/// `f=json`, or an Accept header naming JSON before (or without) HTML.
fn wants_json(headers: &HeaderMap, uri: &Uri) -> bool {
    if let Some(q) = uri.query() {
        if q.split('&').any(|kv| kv == "f=json") {
            return true;
        }
        if q.split('&').any(|kv| kv == "f=html") {
            return false;
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match (accept.find("json"), accept.find("text/html")) {
        (Some(j), Some(h)) => j < h,
        (Some(_), None) => true,
        _ => false,
    }
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
