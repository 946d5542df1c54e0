//! Operations: `/health` and `/metrics`.

use crate::app::AppState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Liveness and the store's state.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "status ok or degraded, store up or down, layer and feature counts")))]
pub(crate) async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let store_up =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.city.store().ping())
            .await
            .is_ok_and(|r| r.is_ok());
    let layers = state.city.layers();
    Json(json!({
        "status": if store_up { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "store": { "backend": state.city.store().describe(), "status": if store_up { "up" } else { "down" } },
        "layers": layers.len(),
        "features": layers.iter().map(|l| l.feature_count()).sum::<u64>(),
        "uptime_seconds": state.started.elapsed().as_secs(),
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
