//! The browser viewer and the MapLibre GL JS files it loads, all served locally; `/` answers
//! clients asking for JSON with the OGC API landing page. Only the files the pages load are
//! served — never the rest of the web folder (its `node_modules`, lockfile or tests).

use crate::app::{AppState, base_url};
use crate::auth::Caller;
use crate::problem::Problem;
use crate::routes::features::landing_page;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::path::PathBuf;

/// The viewer's own files under `/web/`.
pub const WEB_FILES: [&str; 4] = ["viewer.js", "viewer.css", "favicon.svg", "auth.js"];

/// oidc-client-ts's browser bundle under `/vendor/oidc-client-ts/` (sign-in with PKCE).
pub const OIDC_CLIENT_FILES: [&str; 1] = ["oidc-client-ts.min.js"];

/// MapLibre GL JS's files under `/vendor/maplibre-gl/`.
pub const MAPLIBRE_FILES: [&str; 4] = [
    "maplibre-gl.mjs",
    "maplibre-gl-shared.mjs",
    "maplibre-gl-worker.mjs",
    "maplibre-gl.css",
];

/// Routes of this area: `/` (the viewer), `/web/{file}`, `/vendor/maplibre-gl/{file}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/web/{file}", get(web_file))
        .route("/vendor/maplibre-gl/{file}", get(maplibre_file))
        .route("/vendor/oidc-client-ts/{file}", get(oidc_client_file))
}

async fn root(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    caller.public();
    if wants_json(&headers, &uri) {
        return Json(landing_page(&base_url(&headers))).into_response();
    }
    let web = &state.settings.web_dir;
    let installed = web
        .join("node_modules/maplibre-gl/dist/maplibre-gl.mjs")
        .exists();
    viewer(&web.join("index.html"), installed)
}

async fn web_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
) -> Response {
    caller.public();
    serve_listed(&state.settings.web_dir, &WEB_FILES, &file).await
}

async fn maplibre_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
) -> Response {
    caller.public();
    let dir = state.settings.web_dir.join("node_modules/maplibre-gl/dist");
    serve_listed(&dir, &MAPLIBRE_FILES, &file).await
}

async fn oidc_client_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
) -> Response {
    caller.public();
    let dir = state
        .settings
        .web_dir
        .join("node_modules/oidc-client-ts/dist/browser");
    serve_listed(&dir, &OIDC_CLIENT_FILES, &file).await
}

/// Serves `file` from `dir` if it is one of `allowed`.
async fn serve_listed(dir: &std::path::Path, allowed: &[&str], file: &str) -> Response {
    if !allowed.contains(&file) {
        return Problem::not_found(format!("no file {file:?}")).into_response();
    }
    let path: PathBuf = dir.join(file);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let kind = match path.extension().and_then(|e| e.to_str()) {
                Some("js" | "mjs") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                _ => "application/octet-stream",
            };
            let mut resp = bytes.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            resp
        }
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "file-missing",
            format!("{file}: {e} (npm ci --prefix web installs the viewer's packages)"),
        )
        .into_response(),
    }
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
