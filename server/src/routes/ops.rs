//! Operations: `/health` and `/metrics`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::problem::ApiResult;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use citytwin_city::access::Duty;
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
pub(crate) async fn health(
    State(state): State<AppState>,
    caller: Caller,
) -> Json<serde_json::Value> {
    caller.public();
    let store_up =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.city.store().ping())
            .await
            .is_ok_and(|r| r.is_ok());
    let layers = state.city.layers();
    Json(json!({
        "status": if store_up { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        // the kind of store only: its address is nobody's business but the operators'
        "store": { "backend": store_kind(&state), "status": if store_up { "up" } else { "down" } },
        "layers": layers.len(),
        "features": layers.iter().map(|l| l.feature_count()).sum::<u64>(),
        "uptime_seconds": state.started.elapsed().as_secs(),
        // whether this instance applies writes itself (one instance of a cluster does)
        "writes": state.city.writes(),
    }))
}

fn store_kind(state: &AppState) -> &'static str {
    if state.city.store().describe().starts_with("postgis") {
        "postgis"
    } else {
        "geopackage"
    }
}

/// Prometheus metrics (for the system-admin role; `--metrics-listen` serves them on an
/// address of their own without credentials).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.duty(&state, Duty::Metrics, "metrics")?;
    Ok(metrics_text(&state))
}

/// The metrics as Prometheus text.
#[must_use]
pub fn metrics_text(state: &AppState) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
