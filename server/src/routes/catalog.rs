//! The catalogue of layers: `/catalog` and `/catalog/{layer}`.

use crate::app::{AppState, base_url};
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use citytwin_city::LayerIndex;
use citytwin_city::access::ReadPlan;
use citytwin_city::records::Disputes;
use serde_json::{Value, json};

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(list))
        .route("/catalog/{layer}", get(one))
        .route("/catalog/{layer}/quality", get(quality))
}

/// A layer's entry in the classified catalogue as served: owner department, update
/// frequency, share and open class, security level (`null` for a layer not classified, which
/// counts as not shared and not open).
#[must_use]
pub fn classification(m: &citytwin_city::LayerMeta) -> Value {
    match &m.classification {
        Some(c) => json!({
            "layer": m.name,
            "owner": c.owner,
            "update_frequency": c.update_frequency,
            "share": c.share.name(),
            "open": c.open.name(),
            "level": c.level,
            "personal": c.personal.iter().map(|(f, mask)| (f.clone(), json!(mask.name()))).collect::<serde_json::Map<_, _>>(),
            "precision_m": c.precision_m,
            "aggregable": c.aggregable,
            "min_count": c.level.ge(&3).then(|| c.k()),
        }),
        None => json!({
            "layer": m.name, "owner": null, "update_frequency": null,
            "share": "not-shared", "open": "not-open", "level": null,
        }),
    }
}

/// Where a layer's data came from and when (Data art. 27), as TileJSON, OGC API collections
/// and the catalogue show it.
#[must_use]
pub fn provenance(m: &citytwin_city::LayerMeta) -> Value {
    json!({
        "layer": m.name,
        "source": m.source,
        "acquired": m.acquired,
        "updated_at": m.updated_at,
        "owner": m.classification.as_ref().map(|c| c.owner.clone()),
    })
}

fn entry(l: &LayerIndex, plan: &ReadPlan, disputes: &Disputes, base: &str) -> Value {
    let m = &l.meta;
    let c = classification(m);
    json!({
        "form": plan.form.name(),
        // an open objection to the layer, or to features of it (Data art. 35)
        "disputed": disputes.layer,
        "disputed_features": disputes.features.len(),
        "name": m.name,
        "title": m.title,
        "description": m.description,
        "owner": c["owner"],
        "update_frequency": c["update_frequency"],
        "share": c["share"],
        "open": c["open"],
        "level": c["level"],
        "personal": c["personal"],
        "precision_m": c["precision_m"],
        "geometry_type": m.geometry_kind.name(),
        "fields": m.fields.iter().map(|f| json!({"name": f.name, "type": f.kind})).collect::<Vec<_>>(),
        "tile_fields": m.tile_columns().iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        "minzoom": m.minzoom,
        "maxzoom": m.maxzoom,
        "source": m.source,
        "acquired": m.acquired,
        "updated_at": m.updated_at,
        "bounds": m.bounds,
        "feature_count": m.feature_count,
        "time_field": m.time_field,
        // a base layer kept in versions: read any of them with ?at=
        "version_key": m.version_key,
        "versions": m.versions,
        "links": {
            "tilejson": format!("{base}/tiles/{}", m.name),
            "tiles": format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", m.name),
            "features": format!("{base}/collections/{}/items", m.name),
            "versions": (!m.versions.is_empty()).then(|| format!("{base}/layers/{}/versions", m.name)),
        },
    })
}

/// The catalogue of layers: metadata, provenance and tile links.
#[utoipa::path(get, path = "/catalog", tag = "catalog",
    responses((status = 200, description = "every layer with its metadata")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Json<Value> {
    caller.listing();
    let base = base_url(&headers);
    let layers: Vec<Value> = state
        .city
        .visible_layers(caller.principal())
        .iter()
        .map(|(l, plan)| entry(l, plan, &state.city.disputes(&l.meta.name), &base))
        .collect();
    Json(json!({ "layers": layers }))
}

/// One layer's catalogue entry.
#[utoipa::path(get, path = "/catalog/{layer}", tag = "catalog",
    params(("layer" = String, Path, description = "layer name")),
    responses(
        (status = 200, description = "the layer's metadata"),
        (status = 404, description = "no such layer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(layer): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let (l, plan) = caller
        .layer(&state, &layer)
        .map_err(|_| Problem::not_found(format!("no layer {layer:?} in the catalogue")))?;
    let disputes = state.city.disputes(&l.meta.name);
    Ok(Json(entry(&l, &plan, &disputes, &base_url(&headers))))
}

/// A layer's data quality (Gov art. 11): completeness per field, invalid geometries,
/// features outside the city, duplicate ids, age against the declared update frequency.
#[utoipa::path(get, path = "/catalog/{layer}/quality", tag = "catalog",
    params(("layer" = String, Path, description = "layer name")),
    responses(
        (status = 200, description = "the layer's last assessment (at most ten minutes old)"),
        (status = 404, description = "no such layer, or one the store tiles itself", content_type = "application/problem+json"),
    ))]
pub(crate) async fn quality(
    State(state): State<AppState>,
    caller: Caller,
    Path(layer): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, plan) = caller
        .layer(&state, &layer)
        .map_err(|_| Problem::not_found(format!("no layer {layer:?} in the catalogue")))?;
    let raw = state
        .city
        .layer(&layer)
        .ok_or_else(|| Problem::not_found(format!("no layer {layer:?} in the catalogue")))?;
    let q = state.city.quality(&raw).await?.ok_or_else(|| {
        Problem::not_found(format!(
            "layer {layer:?} is tiled by the store: its quality is the store's"
        ))
    })?;
    caller.served(&state, &plan, None);
    let mut v = serde_json::to_value(q.as_ref()).unwrap_or_default();
    v["assessed_at"] = citytwin_city::live::ts::format(q.assessed_at).into();
    // what gave way in its full-detail tiles (never features: attributes, then the budget)
    v["full_detail"] = serde_json::to_value(state.city.full_detail(&raw)).unwrap_or_default();
    if plan.form != citytwin_city::access::Form::Raw {
        // feature ids point at records this reader does not see as they are
        v["invalid_examples"] = json!([]);
    }
    Ok(Json(v))
}
