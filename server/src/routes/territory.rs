//! The territory tree: `/grids/locate` (one point or many), `/territories` (search),
//! `/territories/{code}` and `/territories/{code}/children`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::routes::geojson_response;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use citytwin_city::geojson::write_geometry;
use citytwin_city::territory::{Level, NONE, TerritoryTree};
use citytwin_tiles::value::json_string;
use geo::Geometry;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/grids/locate",
            get(locate)
                .post(locate_many)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::auth::body_limit("/grids/locate"),
                )),
        )
        .route("/territories", get(search))
        .route("/territories/{code}", get(one))
        .route("/territories/{code}/children", get(children))
}

/// The territory tree, for a caller who may read the grids it is made of (a twin whose grids
/// the caller may not see has no tree for it).
async fn tree_for(state: &AppState, caller: &Caller) -> ApiResult<Arc<TerritoryTree>> {
    let (_, plan) = caller
        .layer(state, Level::Grid.layer())
        .map_err(|_| Problem::not_found("the twin has no grids layer, so no territory tree"))?;
    caller.served(state, &plan, None);
    Ok(state.city.territory().await?)
}

fn unit_ref(tree: &TerritoryTree, u: u32) -> Value {
    if u == NONE {
        return Value::Null;
    }
    let t = tree.unit(u as usize);
    json!({ "code": t.code, "name": t.name })
}

fn located(tree: &TerritoryTree, grid: u32) -> Value {
    let chain = tree.chain(grid);
    json!({
        "grid": unit_ref(tree, chain[Level::Grid as usize]),
        "community": unit_ref(tree, chain[Level::Community as usize]),
        "street": unit_ref(tree, chain[Level::Street as usize]),
        "district": unit_ref(tree, chain[Level::District as usize]),
        "city": unit_ref(tree, chain[Level::City as usize]),
    })
}

/// The grid, community, street, district and city containing a point.
#[utoipa::path(get, path = "/grids/locate", tag = "territory",
    params(
        ("lon" = f64, Query, minimum = -180, maximum = 180, description = "longitude, WGS84"),
        ("lat" = f64, Query, minimum = -85, maximum = 85, description = "latitude, WGS84"),
    ),
    responses(
        (status = 200, description = "the grid and the units above it, with codes and names"),
        (status = 400, description = "a missing or malformed coordinate", content_type = "application/problem+json"),
        (status = 404, description = "the point is outside every grid of the city", content_type = "application/problem+json"),
    ))]
pub(crate) async fn locate(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    // the decision first: a caller who may not see the grids learns nothing else
    let tree = tree_for(&state, &caller).await?;
    p.only(&["lon", "lat"])?;
    let (lon, lat) = (p.f64("lon")?, p.f64("lat")?);
    citytwin_city::query::check_point((lon, lat))
        .map_err(|e| Problem::bad_parameter("lon/lat", e.to_string()))?;
    let grid = tree.locate(lon, lat).ok_or_else(|| {
        Problem::not_found(format!("({lon}, {lat}) is outside every grid of the city"))
    })?;
    let mut out = located(&tree, grid);
    out["lon"] = json!(lon);
    out["lat"] = json!(lat);
    Ok(Json(out))
}

/// Locates many points: `{"points": [[lon, lat], …]}` → one result per point, `null` outside.
#[utoipa::path(post, path = "/grids/locate", tag = "territory",
    request_body(content = String, content_type = "application/json",
        description = r#"{"points": [[lon, lat], …]}, at most 10,000 points"#),
    responses(
        (status = 200, description = "`results`: per point, the grid chain or null outside the city"),
        (status = 400, description = "a malformed body or point", content_type = "application/problem+json"),
    ))]
pub(crate) async fn locate_many(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    // the decision first: a caller who may not see the grids learns nothing else
    let tree = tree_for(&state, &caller).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        points: Vec<(f64, f64)>,
    }
    let body: Body = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_parameter(
            "points",
            format!("expected {{\"points\": [[lon, lat], …]}}: {e}"),
        )
    })?;
    let max = state.limits.max_points;
    if body.points.len() > max {
        return Err(Problem::bad_parameter(
            "points",
            format!("{} points is more than the cap of {max}", body.points.len()),
        ));
    }
    for (i, &(lon, lat)) in body.points.iter().enumerate() {
        citytwin_city::query::check_point((lon, lat))
            .map_err(|e| Problem::bad_parameter("points", format!("point {i}: {e}")))?;
    }
    let t = Arc::clone(&tree);
    let results = tokio::task::spawn_blocking(move || {
        body.points
            .iter()
            .map(|&(lon, lat)| t.locate(lon, lat).map_or(Value::Null, |g| located(&t, g)))
            .collect::<Vec<Value>>()
    })
    .await
    .map_err(|e| Problem::from(citytwin_city::Error::Invalid(e.to_string())))?;
    let found = results.iter().filter(|r| !r.is_null()).count();
    Ok(Json(json!({ "located": found, "results": results })))
}

fn summary(tree: &TerritoryTree, u: usize) -> Value {
    let t = tree.unit(u);
    json!({
        "code": t.code,
        "name": t.name,
        "level": t.level.name(),
        "parent": t.parent.map(|p| tree.unit(p).code.clone()),
        "children": t.children.len(),
        "area_km2": (t.area_km2 * 1000.0).round() / 1000.0,
    })
}

/// Searches units by name (contains), code prefix and level.
#[utoipa::path(get, path = "/territories", tag = "territory",
    params(
        ("q" = Option<String>, Query, description = "text the name contains (or an exact code)"),
        ("prefix" = Option<String>, Query, description = "code prefix, e.g. 320102"),
        ("level" = Option<String>, Query, description = "city, district, street, community or grid"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "most results, 1..=1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "matching units in code order"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    // the decision first: a caller who may not see the grids learns nothing else
    let tree = tree_for(&state, &caller).await?;
    p.only(&["q", "prefix", "level", "limit"])?;
    let level = p
        .text("level")
        .map(Level::parse)
        .transpose()
        .map_err(|e| Problem::bad_parameter("level", e.to_string()))?;
    let limit = p.count("limit", 100, 1000)?;
    let found = tree.search(p.text("q"), p.text("prefix"), level, limit);
    Ok(Json(json!({
        "count": found.len(),
        "territories": found.iter().map(|&u| summary(&tree, u)).collect::<Vec<_>>(),
    })))
}

fn find(tree: &TerritoryTree, code: &str) -> ApiResult<usize> {
    tree.by_code(code)
        .ok_or_else(|| Problem::not_found(format!("no territory with code {code:?}")))
}

fn with_geometry(p: &Params) -> ApiResult<bool> {
    Ok(p.flag("geometry")?.unwrap_or(true))
}

/// Counts of every layer's features in a unit (territory layers themselves left out).
async fn feature_counts(
    state: &AppState,
    caller: &Caller,
    tree: &Arc<TerritoryTree>,
    u: usize,
) -> ApiResult<BTreeMap<String, Value>> {
    let mut counts = BTreeMap::new();
    let code = tree.unit(u).code.clone();
    for (layer, plan) in state.city.visible_layers(caller.principal()) {
        if !layer.resident || Level::is_territory_layer(&layer.meta.name) {
            continue;
        }
        // a territory-scoped reader counts only inside its own territory
        if !plan.shows_code(Some(&code)) {
            continue;
        }
        if plan.form == citytwin_city::access::Form::Aggregate {
            // a level-3 layer: its suppressed count from the table of the whole tree
            let agg = state.city.unit_aggregates(&plan, tree).await?;
            counts.insert(layer.meta.name.clone(), agg.units[u].count_json(agg.k));
            continue;
        }
        let a = state.city.assignment(&layer, tree).await?;
        counts.insert(layer.meta.name.clone(), tree.roll_up(&a.per_grid)[u].into());
    }
    Ok(counts)
}

fn feature_json(out: &mut String, tree: &TerritoryTree, u: usize, props: &Value, geometry: bool) {
    let t = tree.unit(u);
    let _ = write!(
        out,
        r#"{{"type":"Feature","id":{},"properties":{},"geometry":"#,
        json_string(&t.code),
        props
    );
    if geometry {
        write_geometry(out, &Geometry::MultiPolygon(t.shape.clone()), false);
    } else {
        out.push_str("null");
    }
    out.push('}');
}

/// One unit as a GeoJSON Feature: parent, children, area and feature counts.
#[utoipa::path(get, path = "/territories/{code}", tag = "territory",
    params(
        ("code" = String, Path, description = "division code, e.g. 320102 or a grid's 15 digits"),
        ("geometry" = Option<bool>, Query, description = "include the outline (default true)"),
    ),
    responses(
        (status = 200, description = "GeoJSON Feature", content_type = "application/geo+json"),
        (status = 404, description = "no unit has that code", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    // the decision first: a caller who may not see the grids learns nothing else
    let tree = tree_for(&state, &caller).await?;
    p.only(&["geometry"])?;
    let geometry = with_geometry(&p)?;
    let u = find(&tree, &code)?;
    let t = tree.unit(u);
    let mut props = summary(&tree, u);
    props["parent"] = t.parent.map_or(Value::Null, |p| unit_ref(&tree, p as u32));
    props["children"] = t
        .children
        .iter()
        .map(|&c| unit_ref(&tree, c as u32))
        .collect();
    props["feature_counts"] = json!(feature_counts(&state, &caller, &tree, u).await?);
    let mut out = String::new();
    feature_json(&mut out, &tree, u, &props, geometry);
    Ok(geojson_response(out))
}

/// The units one level down, as a GeoJSON FeatureCollection.
#[utoipa::path(get, path = "/territories/{code}/children", tag = "territory",
    params(
        ("code" = String, Path, description = "division code"),
        ("geometry" = Option<bool>, Query, description = "include outlines (default true)"),
    ),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection", content_type = "application/geo+json"),
        (status = 404, description = "no unit has that code", content_type = "application/problem+json"),
    ))]
pub(crate) async fn children(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    // the decision first: a caller who may not see the grids learns nothing else
    let tree = tree_for(&state, &caller).await?;
    p.only(&["geometry"])?;
    let geometry = with_geometry(&p)?;
    let u = find(&tree, &code)?;
    let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
    for (i, &c) in tree.unit(u).children.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        feature_json(&mut out, &tree, c, &summary(&tree, c), geometry);
    }
    out.push_str("]}");
    Ok(geojson_response(out))
}
