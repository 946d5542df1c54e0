//! Vector tiles and their TileJSON: `/tiles/{layers}/{z}/{x}/{y}.mvt`, `/tiles/{layers}`.

use crate::app::{AppState, CachedTile, TileKey, accepts_gzip, base_url};
use crate::auth::Caller;
use crate::metrics::TileLabels;
use crate::problem::{ApiResult, Problem};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use citytwin_city::access::ReadPlan;
use citytwin_city::{LayerIndex, TileRequest};
use citytwin_tiles::TileCoord;
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Arc;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tiles/{layers}", get(tilejson))
        .route("/tiles/{layers}/tilejson.json", get(tilejson))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(tile))
}

/// Resolves a comma-separated layer list against what the caller may see: a layer it may
/// not see is as unknown as one that does not exist.
fn resolve_layers(
    state: &AppState,
    caller: &Caller,
    spec: &str,
) -> ApiResult<Vec<(Arc<LayerIndex>, ReadPlan)>> {
    let mut out: Vec<(Arc<LayerIndex>, ReadPlan)> = Vec::new();
    for name in spec.split(',') {
        let name = name.trim();
        let Ok(layer) = caller.layer(state, name) else {
            let known: Vec<String> = state
                .city
                .visible_layers(caller.principal())
                .iter()
                .map(|(l, _)| l.meta.name.clone())
                .collect();
            return Err(Problem::unknown(
                "layers",
                format!("unknown layer {name:?}; known layers: {}", known.join(", ")),
            ));
        };
        if out.iter().any(|(l, _)| l.meta.name == name) {
            return Err(Problem::bad_parameter(
                "layers",
                format!("layer {name:?} is listed twice"),
            ));
        }
        out.push(layer);
    }
    Ok(out)
}

/// A tile's path segments `{z}/{x}/{y}.mvt` as a coordinate, or a problem naming the one at
/// fault.
pub fn parse_coord(z: &str, x: &str, y: &str) -> ApiResult<TileCoord> {
    let y = y
        .strip_suffix(".mvt")
        .or_else(|| y.strip_suffix(".pbf"))
        .ok_or_else(|| {
            Problem::bad_parameter("y", format!("{y:?}: tile URLs end in .mvt or .pbf"))
        })?;
    TileCoord::new(
        tile_number("z", z)?,
        tile_number("x", x)?,
        tile_number("y", y)?,
    )
    .map_err(|e| Problem::bad_parameter("z/x/y", e.to_string()))
}

/// A tile path's number (zoom, column, row), or a problem naming the segment at fault.
pub(crate) fn tile_number(name: &str, v: &str) -> ApiResult<u64> {
    v.parse::<u64>().map_err(|_| {
        Problem::bad_parameter(
            name,
            format!("{name} must be a non-negative integer, not {v:?}"),
        )
    })
}

/// Gzips a body, fast (tiles, and the cluster's forwarded batches).
pub(crate) fn gzip(raw: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 2),
        flate2::Compression::fast(),
    );
    let _ = enc.write_all(raw);
    Bytes::from(enc.finish().unwrap_or_default())
}

/// One vector tile (MVT) of one or more comma-separated layers, gzipped when accepted.
#[utoipa::path(get, path = "/tiles/{layers}/{z}/{x}/{y}", tag = "tiles",
    params(
        ("layers" = String, Path, description = "layer names, comma-separated, in drawing order"),
        ("z" = u8, Path, description = "zoom 0..=22"),
        ("x" = u32, Path, description = "column"),
        ("y" = String, Path, description = "row with .mvt or .pbf, e.g. 6873.mvt"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) layers with versions are drawn as of (default: their current versions)"),
    ),
    responses(
        (status = 200, description = "the tile", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "no feature in the tile"),
        (status = 304, description = "unchanged since the ETag given in If-None-Match"),
        (status = 400, description = "an unknown layer or a tile out of range", content_type = "application/problem+json"),
        (status = 503, description = "the store could not answer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((layers, z, x, y)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let resolved = resolve_layers(&state, &caller, &layers)?;
    let coord = parse_coord(&z, &x, &y)?;
    serve(&state, &caller, &resolved, coord, &headers).await
}

/// One tile of layers already resolved against the caller: from the cache or encoded, with
/// its ETag, gzipped when accepted (the XYZ and OGC API – Tiles routes both answer here).
pub(crate) async fn serve(
    state: &AppState,
    caller: &Caller,
    resolved: &[(Arc<LayerIndex>, ReadPlan)],
    coord: TileCoord,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let names: Vec<String> = resolved.iter().map(|(l, _)| l.meta.name.clone()).collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut plans = 0u64;
    for (l, plan) in resolved {
        l.version.hash(&mut hasher);
        plans = plans.rotate_left(7) ^ plan.key();
        state.city.tile_served(&caller.cx, plan);
    }
    let key = TileKey {
        layers: Arc::from(names.join(",")),
        version: hasher.finish(),
        plan: plans,
        z: coord.z,
        x: coord.x,
        y: coord.y,
    };
    let cached = state.tiles.as_ref().and_then(|c| c.get(&key));
    let tile = if let Some(t) = cached {
        state
            .metrics
            .tiles
            .get_or_create(&TileLabels { cache: "hit" })
            .inc();
        t
    } else {
        state
            .metrics
            .tiles
            .get_or_create(&TileLabels { cache: "miss" })
            .inc();
        let budget = state.settings.budget();
        let start = std::time::Instant::now();
        let plans: Vec<ReadPlan> = resolved.iter().map(|(_, p)| p.clone()).collect();
        let out = state
            .city
            .tile(&TileRequest {
                layers: &names,
                coord,
                budget,
                plans: &plans,
                at: caller.cx.at,
            })
            .await?;
        state
            .metrics
            .tile_encode
            .observe(start.elapsed().as_secs_f64());
        state.metrics.tile_bytes.observe(out.bytes.len() as f64);
        let thinned: usize = out
            .stats
            .iter()
            .map(|(_, s)| s.merged_tiny + s.dropped_budget)
            .sum();
        state.metrics.tile_thinned.inc_by(thinned as u64);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        out.bytes.hash(&mut h);
        let etag = format!("\"{:016x}{:04x}\"", h.finish(), out.bytes.len() & 0xffff);
        let gz = if out.bytes.is_empty() {
            Bytes::new()
        } else {
            gzip(&out.bytes)
        };
        // at a layer's maximum zoom nothing is dropped: say what gave way instead
        let detail: Vec<String> = out
            .stats
            .iter()
            .filter(|(_, s)| s.fields_dropped > 0 || s.over_budget)
            .map(|(layer, s)| {
                if s.over_budget {
                    format!(
                        "{layer}: over-budget {} bytes, {} attributes left out",
                        s.bytes, s.fields_dropped
                    )
                } else {
                    format!("{layer}: {} attributes left out", s.fields_dropped)
                }
            })
            .collect();
        let detail = (!detail.is_empty()).then(|| detail.join("; "));
        if let Some(d) = &detail {
            tracing::warn!(tile = %coord, detail = %d, "a full-detail tile kept every feature but not within the budget");
        }
        let t = Arc::new(CachedTile {
            raw: Bytes::from(out.bytes),
            gzip: gz,
            etag,
            detail,
        });
        if let Some(c) = &state.tiles {
            c.insert(key, Arc::clone(&t));
        }
        t
    };
    let etag =
        HeaderValue::from_str(&tile.etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    let mut resp = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == tile.etag || t.trim() == "*")
        }) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if tile.raw.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else if accepts_gzip(headers) {
        let mut r = tile.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        tile.raw.clone().into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.mapbox-vector-tile"),
    );
    h.insert(header::ETAG, etag);
    if let Some(d) = tile
        .detail
        .as_deref()
        .and_then(|d| HeaderValue::from_str(d).ok())
    {
        h.insert("citytwin-detail", d);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Ok(resp)
}

/// The `vector_layers` entry of one layer.
#[must_use]
pub fn vector_layer(l: &LayerIndex) -> Value {
    let fields: serde_json::Map<String, Value> = l
        .meta
        .tile_columns()
        .into_iter()
        .map(|(i, name)| {
            (
                name.to_owned(),
                json!(l.meta.fields[i].kind.tilejson_type()),
            )
        })
        .collect();
    json!({
        "id": l.meta.name,
        "description": if l.meta.description.is_empty() { l.meta.title.clone() } else { l.meta.description.clone() },
        "minzoom": l.meta.minzoom,
        "maxzoom": l.meta.maxzoom,
        "fields": fields,
        "geometry_type": l.meta.geometry_kind.name(),
    })
}

/// TileJSON 3.0 of one or more comma-separated layers (also at `/tiles/{layers}/tilejson.json`).
#[utoipa::path(get, path = "/tiles/{layers}", tag = "tiles",
    params(
        ("layers" = String, Path, description = "layer names, comma-separated"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) layers with versions are drawn as of; the tile URLs carry it (default: their current versions)"),
    ),
    responses(
        (status = 200, description = "TileJSON with vector_layers, bounds and zooms"),
        (status = 400, description = "an unknown layer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn tilejson(
    State(state): State<AppState>,
    caller: Caller,
    Path(layers): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let resolved = resolve_layers(&state, &caller, &layers)?;
    let indexes: Vec<Arc<LayerIndex>> = resolved.iter().map(|(l, _)| Arc::clone(l)).collect();
    let names: Vec<&str> = indexes.iter().map(|l| l.meta.name.as_str()).collect();
    let base = base_url(&headers);
    let minzoom = indexes.iter().map(|l| l.meta.minzoom).min().unwrap_or(0);
    let maxzoom = indexes.iter().map(|l| l.meta.maxzoom).max().unwrap_or(14);
    let bounds = indexes
        .iter()
        .filter_map(|l| l.meta.bounds)
        .reduce(|a, b| {
            [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ]
        })
        .unwrap_or([-180.0, -85.051_128_78, 180.0, 85.051_128_78]);
    let center_zoom = minzoom.max(10).min(maxzoom);
    let drawn: Vec<(&citytwin_city::LayerMeta, citytwin_city::access::Form)> =
        indexes.iter().map(|l| (&l.meta, l.form)).collect();
    let attribution = citytwin_city::catalog::provenance(&drawn);
    // the layers as of a date: so are their tiles
    let at = caller.cx.at.map(|d| format!("?at={d}")).unwrap_or_default();
    let body = json!({
        "tilejson": "3.0.0",
        "name": names.join(","),
        "description": indexes.iter().map(|l| l.meta.title.clone()).collect::<Vec<_>>().join(", "),
        "version": "1.0.0",
        "attribution": attribution,
        "provenance": indexes.iter().map(|l| crate::routes::catalog::provenance(&l.meta)).collect::<Vec<_>>(),
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt{at}", names.join(","))],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": bounds,
        "center": [ f64::midpoint(bounds[0], bounds[2]), f64::midpoint(bounds[1], bounds[3]), center_zoom ],
        "vector_layers": indexes.iter().map(|l| vector_layer(l)).collect::<Vec<_>>(),
        "catalog": indexes.iter().map(|l| crate::routes::catalog::classification(&l.meta)).collect::<Vec<_>>(),
    });
    Ok(axum::Json(body).into_response())
}
