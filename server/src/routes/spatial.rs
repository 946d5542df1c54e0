//! Spatial questions over one layer: `/layers/{layer}/nearest`, `/within`, `/intersects`,
//! statistics per territory (`/stats`) and per regular cell (`/cells`).

use crate::app::AppState;
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::routes::geojson_response;
use crate::routes::selection::{SELECTION_PARAMS, selection};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use citytwin_city::access::{Form, ReadPlan};
use citytwin_city::cells::{CellSpec, aggregate};
use citytwin_city::geojson::{Properties, write_feature, write_geometry};
use citytwin_city::invisible::{FIXED_UNITS, Tally, check_resolution, field_position};
use citytwin_city::query::{Near, Selection, intersecting, nearest, within};
use citytwin_city::stats::{StatsRequest, statistics};
use citytwin_city::territory::Level;
use citytwin_city::{FieldKind, LayerIndex};
use citytwin_tiles::value::json_string;
use geo::Geometry;
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/layers/{layer}/nearest", get(nearest_features))
        .route("/layers/{layer}/within", get(within_distance))
        .route(
            "/layers/{layer}/intersects",
            post(intersects).layer(axum::extract::DefaultBodyLimit::max(
                crate::auth::body_limit("/layers/{layer}/intersects"),
            )),
        )
        .route("/layers/{layer}/stats", get(stats))
        .route("/layers/{layer}/cells", get(cells))
}

/// A layer held in memory that the caller may see, with its read plan, or 404.
pub fn layer(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<(Arc<LayerIndex>, ReadPlan)> {
    let (l, plan) = caller
        .layer(state, name)
        .map_err(|_| Problem::not_found(format!("no layer {name:?}")))?;
    if !l.resident {
        return Err(Problem::bad_parameter(
            "layer",
            format!(
                "layer {name:?} is tiled by the store and not held in memory; it answers tiles only"
            ),
        ));
    }
    Ok((l, plan))
}

/// The request's selection, narrowed to the read plan's rows.
fn planned(p: &Params, l: &LayerIndex, plan: &ReadPlan) -> ApiResult<Selection> {
    let mut sel = selection(p, &l.meta)?;
    sel.rows.clone_from(&plan.territory);
    Ok(sel)
}

fn params_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = SELECTION_PARAMS.to_vec();
    v.extend_from_slice(extra);
    v
}

fn point(p: &Params) -> ApiResult<(f64, f64)> {
    let pt = (p.f64("lon")?, p.f64("lat")?);
    citytwin_city::query::check_point(pt)
        .map_err(|e| Problem::bad_parameter("lon/lat", e.to_string()))?;
    Ok(pt)
}

fn collection(l: &LayerIndex, found: &[Near<'_>], more: bool) -> Response {
    let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
    for (i, n) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let d = format!("{:.2}", n.distance_m);
        write_feature(
            &mut out,
            &l.meta,
            n.feature,
            Properties::All,
            &[("distance_m", d)],
            true,
        );
    }
    let _ = write!(
        out,
        r#"],"numberReturned":{},"truncated":{more}}}"#,
        found.len()
    );
    geojson_response(out)
}

/// The k features nearest to a point, nearest first, with distances in metres.
#[utoipa::path(get, path = "/layers/{layer}/nearest", tag = "spatial",
    params(
        ("layer" = String, Path, description = "layer name"),
        ("lon" = f64, Query, minimum = -180, maximum = 180, description = "longitude, WGS84"),
        ("lat" = f64, Query, minimum = -85, maximum = 85, description = "latitude, WGS84"),
        ("k" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "how many, 1..=1000 (default 10)"),
        ("max_distance" = Option<f64>, Query, description = "metres; farther features are left out"),
        ("filter" = Option<String>, Query, description = "CQL2 text the features must match"),
        ("datetime" = Option<String>, Query, description = "time window the features must intersect"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
    ),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection with `distance_m` on each feature", content_type = "application/geo+json"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such layer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn nearest_features(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let (l, plan) = layer(&state, &caller, &name)?;
    plan.features_allowed()?;
    caller.expensive(&state)?;
    p.only(&params_with(&["lon", "lat", "k", "max_distance"]))?;
    let pt = point(&p)?;
    let k = p.count("k", 10, 1000)?;
    let max = p.opt_f64("max_distance")?;
    if max.is_some_and(|m| m <= 0.0) {
        return Err(Problem::bad_parameter(
            "max_distance",
            "max_distance must be > 0 metres",
        ));
    }
    let sel = planned(&p, &l, &plan)?;
    let limits = state.limits;
    blocking(move || {
        let found = nearest(&l, pt, k, max, &sel, &limits)?;
        caller.served(&state, &plan, Some(found.len() as u64));
        Ok(collection(&l, &found, false))
    })
    .await
}

/// Features within a distance of a point, nearest first.
#[utoipa::path(get, path = "/layers/{layer}/within", tag = "spatial",
    params(
        ("layer" = String, Path, description = "layer name"),
        ("lon" = f64, Query, minimum = -180, maximum = 180, description = "longitude, WGS84"),
        ("lat" = f64, Query, minimum = -85, maximum = 85, description = "latitude, WGS84"),
        ("radius" = f64, Query, minimum = 0, maximum = 100000, description = "metres, up to 100000"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "most features, 1..=10000 (default 1000)"),
        ("filter" = Option<String>, Query, description = "CQL2 text the features must match"),
        ("datetime" = Option<String>, Query, description = "time window the features must intersect"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
    ),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection with `distance_m`; `truncated` when the limit cut it", content_type = "application/geo+json"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such layer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn within_distance(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let (l, plan) = layer(&state, &caller, &name)?;
    plan.features_allowed()?;
    caller.expensive(&state)?;
    p.only(&params_with(&["lon", "lat", "radius", "limit"]))?;
    let pt = point(&p)?;
    let radius = p.f64("radius")?;
    if !(radius > 0.0 && radius <= 100_000.0) {
        return Err(Problem::bad_parameter(
            "radius",
            "radius must be above 0 and at most 100000 metres",
        ));
    }
    let limit = p.count("limit", 1000, state.limits.max_features)?;
    let sel = planned(&p, &l, &plan)?;
    let limits = state.limits;
    blocking(move || {
        let (found, more) = within(&l, pt, radius, limit, &sel, &limits)?;
        caller.served(&state, &plan, Some(found.len() as u64));
        Ok(collection(&l, &found, more))
    })
    .await
}

/// Reads a posted GeoJSON geometry, Feature or FeatureCollection of one feature.
fn posted_geometry(body: &[u8]) -> ApiResult<Geometry<f64>> {
    let bad = |d: String| Problem::bad_parameter("body", d);
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8".into()))?;
    let gj: geojson::GeoJson = text
        .parse()
        .map_err(|e| bad(format!("the body is not GeoJSON: {e}")))?;
    let g = match gj {
        geojson::GeoJson::Geometry(g) => g,
        geojson::GeoJson::Feature(f) => f
            .geometry
            .ok_or_else(|| bad("the posted Feature has no geometry".into()))?,
        geojson::GeoJson::FeatureCollection(fc) if fc.features.len() == 1 => fc.features[0]
            .geometry
            .clone()
            .ok_or_else(|| bad("the posted Feature has no geometry".into()))?,
        geojson::GeoJson::FeatureCollection(_) => {
            return Err(bad("post one geometry or one Feature".into()));
        }
    };
    let g = Geometry::<f64>::try_from(g).map_err(|e| bad(format!("invalid geometry: {e}")))?;
    if geo::CoordsIter::coords_count(&g) > 100_000 {
        return Err(bad("the geometry has more than 100000 vertices".into()));
    }
    Ok(g)
}

/// Features intersecting a posted GeoJSON geometry (a polygon, usually).
#[utoipa::path(post, path = "/layers/{layer}/intersects", tag = "spatial",
    params(
        ("layer" = String, Path, description = "layer name"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "most features, 1..=10000 (default 1000)"),
        ("filter" = Option<String>, Query, description = "CQL2 text the features must match"),
        ("datetime" = Option<String>, Query, description = "time window the features must intersect"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
    ),
    request_body(content = String, content_type = "application/geo+json", description = "a GeoJSON geometry or Feature in WGS84"),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection in id order; `truncated` when the limit cut it", content_type = "application/geo+json"),
        (status = 400, description = "a bad body or parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such layer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn intersects(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let (l, plan) = layer(&state, &caller, &name)?;
    plan.features_allowed()?;
    caller.expensive(&state)?;
    p.only(&params_with(&["limit"]))?;
    let limit = p.count("limit", 1000, state.limits.max_features)?;
    let g = posted_geometry(&body)?;
    let sel = planned(&p, &l, &plan)?;
    let limits = state.limits;
    blocking(move || {
        let (found, more) = intersecting(&l, &g, limit, &sel, &limits).map_err(|e| match e {
            citytwin_city::Error::Invalid(d) => Problem::bad_parameter("body", d),
            e => Problem::from(e),
        })?;
        caller.served(&state, &plan, Some(found.len() as u64));
        let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
        for (i, f) in found.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_feature(&mut out, &l.meta, f, Properties::All, &[], true);
        }
        let _ = write!(
            out,
            r#"],"numberReturned":{},"truncated":{more}}}"#,
            found.len()
        );
        Ok(geojson_response(out))
    })
    .await
}

/// Runs CPU-bound query work off the async workers.
pub async fn blocking(
    work: impl FnOnce() -> ApiResult<Response> + Send + 'static,
) -> ApiResult<Response> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Problem::from(citytwin_city::Error::Invalid(format!("query failed: {e}"))))?
}

fn numeric_field(l: &LayerIndex, p: &Params) -> ApiResult<Option<usize>> {
    p.text("field")
        .map(|f| match l.meta.field_index(f) {
            Some(i) if matches!(l.meta.fields[i].kind, FieldKind::Integer | FieldKind::Real) => {
                Ok(i)
            }
            Some(_) => Err(Problem::bad_parameter(
                "field",
                format!("field {f:?} is not numeric"),
            )),
            None => Err(Problem::unknown(
                "field",
                format!("layer {} has no field {f:?}", l.meta.name),
            )),
        })
        .transpose()
}

fn output_format(p: &Params) -> ApiResult<bool> {
    match p.text("f") {
        None | Some("json") => Ok(false),
        Some("geojson") => Ok(true),
        Some(v) => Err(Problem::bad_parameter(
            "f",
            format!("f is json or geojson, not {v:?}"),
        )),
    }
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        "null".into()
    }
}

/// Counts (and sum, mean, min, max of a numeric field) of a layer's features per territory.
#[utoipa::path(get, path = "/layers/{layer}/stats", tag = "statistics",
    params(
        ("layer" = String, Path, description = "layer name"),
        ("by" = Option<String>, Query, description = "grid (default), community, street, district or city"),
        ("within" = Option<String>, Query, description = "only units inside the unit of this code"),
        ("field" = Option<String>, Query, description = "numeric field to sum and average"),
        ("filter" = Option<String>, Query, description = "CQL2 text the counted features must match"),
        ("datetime" = Option<String>, Query, description = "time window the counted features must intersect"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
        ("bbox" = Option<String>, Query, description = "only features intersecting west,south,east,north"),
        ("f" = Option<String>, Query, description = "json (default) or geojson (choropleth-ready, with outlines)"),
    ),
    responses(
        (status = 200, description = "one entry per unit of the level, zeros included"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such layer or unit", content_type = "application/problem+json"),
    ))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let (l, plan) = layer(&state, &caller, &name)?;
    caller.expensive(&state)?;
    p.only(&params_with(&["by", "within", "field", "f"]))?;
    if plan.form == Form::Aggregate {
        return aggregate_stats(&state, &caller, &plan, &p).await;
    }
    let level = Level::parse(p.text("by").unwrap_or("grid"))
        .map_err(|e| Problem::bad_parameter("by", e.to_string()))?;
    let field = numeric_field(&l, &p)?;
    let geojson = output_format(&p)?;
    let selection: Selection = planned(&p, &l, &plan)?;
    let tree = state.city.territory().await?;
    let within = within_unit(&p, &tree)?;
    let assignment = state.city.assignment(&l, &tree).await?;
    let limits = state.limits;
    blocking(move || {
        let req = StatsRequest { level, within, field, selection };
        let units = statistics(&tree, &l, &assignment, &req, &limits)?;
        caller.served(&state, &plan, Some(units.len() as u64));
        let total: u64 = units.iter().map(|u| u.count).sum();
        let field_name = field.map(|i| l.meta.fields[i].name.clone());
        let entry = |u: &citytwin_city::stats::UnitStats| {
            let t = tree.unit(u.unit);
            let mut v = json!({ "code": t.code, "name": t.name, "count": u.count,
                "density_per_km2": if t.area_km2 > 0.0 { (u.count as f64 / t.area_km2 * 100.0).round() / 100.0 } else { 0.0 } });
            if field.is_some() {
                v["sum"] = serde_json::from_str(&number(u.sum)).unwrap_or_default();
                v["mean"] = u.mean().map_or(serde_json::Value::Null, |m| serde_json::from_str(&number(m)).unwrap_or_default());
                v["min"] = serde_json::from_str(&number(u.min)).unwrap_or_default();
                v["max"] = serde_json::from_str(&number(u.max)).unwrap_or_default();
            }
            v
        };
        if !geojson {
            let body = json!({
                "layer": l.meta.name, "by": level.name(), "field": field_name, "total": total,
                "units": units.iter().map(entry).collect::<Vec<_>>(),
            });
            return Ok(axum::response::IntoResponse::into_response(axum::Json(body)));
        }
        let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
        for (i, u) in units.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let t = tree.unit(u.unit);
            let _ = write!(out, r#"{{"type":"Feature","id":{},"properties":{},"geometry":"#, json_string(&t.code), entry(u));
            write_geometry(&mut out, &Geometry::MultiPolygon(t.shape.clone()), false);
            out.push('}');
        }
        let _ = write!(out, r#"],"layer":{},"by":"{}","total":{total}}}"#, json_string(&l.meta.name), level.name());
        Ok(geojson_response(out))
    })
    .await
}

/// Counts (and sums of a numeric field) on H3 cells or square cells, for heat maps.
#[utoipa::path(get, path = "/layers/{layer}/cells", tag = "statistics",
    params(
        ("layer" = String, Path, description = "layer name"),
        ("h3" = Option<u8>, Query, description = "H3 resolution 0..=15 (give h3 or size)"),
        ("size" = Option<f64>, Query, description = "square cell side in metres, 10..=100000"),
        ("field" = Option<String>, Query, description = "numeric field to sum and average"),
        ("filter" = Option<String>, Query, description = "CQL2 text the counted features must match"),
        ("datetime" = Option<String>, Query, description = "time window the counted features must intersect"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
        ("bbox" = Option<String>, Query, description = "only features intersecting west,south,east,north"),
    ),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection of cells with features, each with count (and sum, mean)", content_type = "application/geo+json"),
        (status = 400, description = "a bad parameter, or more than 100000 cells", content_type = "application/problem+json"),
        (status = 404, description = "no such layer", content_type = "application/problem+json"),
    ))]
pub(crate) async fn cells(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    let (l, plan) = layer(&state, &caller, &name)?;
    caller.expensive(&state)?;
    p.only(&params_with(&["h3", "size", "field"]))?;
    if plan.form == Form::Aggregate {
        return aggregate_cells(&state, &caller, &plan, &p);
    }
    let spec = match (p.text("h3"), p.opt_f64("size")?) {
        (Some(r), None) => CellSpec::H3(r.parse().map_err(|_| {
            Problem::bad_parameter("h3", format!("h3 is a resolution 0..=15, not {r:?}"))
        })?),
        (None, Some(m)) => CellSpec::Square(m),
        _ => {
            return Err(Problem::bad_parameter(
                "h3",
                "give either h3 (a resolution) or size (metres)",
            ));
        }
    };
    let field = numeric_field(&l, &p)?;
    let sel = planned(&p, &l, &plan)?;
    let limits = state.limits;
    blocking(move || {
        let cells = aggregate(&l, &sel, spec, field, &limits).map_err(|e| match e {
            citytwin_city::Error::Invalid(d) => Problem::bad_parameter(
                if matches!(spec, CellSpec::H3(_)) {
                    "h3"
                } else {
                    "size"
                },
                d,
            ),
            e => Problem::from(e),
        })?;
        caller.served(&state, &plan, Some(cells.len() as u64));
        let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut props = json!({ "cell": c.key, "count": c.count });
            if field.is_some() {
                props["sum"] = serde_json::from_str(&number(c.sum)).unwrap_or_default();
                props["mean"] = if c.values > 0 {
                    serde_json::from_str(&number(c.sum / c.values as f64)).unwrap_or_default()
                } else {
                    serde_json::Value::Null
                };
            }
            let _ = write!(
                out,
                r#"{{"type":"Feature","id":{},"properties":{props},"geometry":"#,
                json_string(&c.key)
            );
            write_geometry(&mut out, &Geometry::Polygon(c.outline.clone()), false);
            out.push('}');
        }
        let _ = write!(out, r#"],"numberReturned":{}}}"#, cells.len());
        Ok(geojson_response(out))
    })
    .await
}

/// The unit `within` names, when it does.
fn within_unit(
    p: &Params,
    tree: &citytwin_city::territory::TerritoryTree,
) -> ApiResult<Option<usize>> {
    p.text("within")
        .map(|c| {
            tree.by_code(c)
                .ok_or_else(|| Problem::unknown("within", format!("no territory with code {c:?}")))
        })
        .transpose()
}

/// The position among a level-3 layer's aggregable fields of the one `field` names.
fn aggregable_field(p: &Params, fields: &[String]) -> ApiResult<Option<usize>> {
    p.text("field")
        .map(|f| {
            field_position(fields, f).map_err(|e| Problem::bad_parameter("field", e.to_string()))
        })
        .transpose()
}

/// Refuses what would move a level-3 layer's fixed units: a filter, box or time window.
fn fixed_units_only(p: &Params) -> ApiResult<()> {
    match SELECTION_PARAMS.iter().find(|n| p.text(n).is_some()) {
        Some(n) => Err(Problem::bad_parameter(n, FIXED_UNITS)),
        None => Ok(()),
    }
}

/// A suppressed tally's JSON fields: count (a number, "<k", or null), `suppressed` when it
/// is, and the field's sum and mean when shown.
fn tally_json(
    t: &Tally,
    k: u32,
    field: Option<usize>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut v = serde_json::Map::new();
    v.insert("count".into(), t.count_json(k));
    if let Some(s) = t.suppressed() {
        v.insert("suppressed".into(), s.into());
    }
    if let Some(f) = field {
        let num = |x: Option<f64>| {
            x.map_or(serde_json::Value::Null, |x| {
                serde_json::from_str(&number(x)).unwrap_or_default()
            })
        };
        v.insert("sum".into(), num(t.sum(f)));
        v.insert("mean".into(), num(t.mean(f)));
    }
    v
}

/// Statistics of a level-3 layer for a reader with an aggregate plan: every unit of the
/// level from one suppressed table of the whole tree.
async fn aggregate_stats(
    state: &AppState,
    caller: &Caller,
    plan: &ReadPlan,
    p: &Params,
) -> ApiResult<Response> {
    fixed_units_only(p)?;
    let level = Level::parse(p.text("by").unwrap_or("grid"))
        .map_err(|e| Problem::bad_parameter("by", e.to_string()))?;
    let geojson = output_format(p)?;
    let tree = state.city.territory().await?;
    let within = within_unit(p, &tree)?;
    let agg = state.city.unit_aggregates(plan, &tree).await?;
    let field = aggregable_field(p, &agg.fields)?;
    let units: Vec<usize> = (0..tree.units().len())
        .filter(|&u| tree.unit(u).level == level && within.is_none_or(|w| tree.is_under(u, w)))
        .collect();
    caller.served(state, plan, Some(units.len() as u64));
    let roots: Vec<usize> = (0..tree.units().len())
        .filter(|&u| tree.unit(u).parent.is_none())
        .collect();
    let total = match roots.as_slice() {
        [r] => agg.units[*r].count_json(agg.k),
        _ => serde_json::Value::Null,
    };
    let entry = |u: usize| {
        let t = tree.unit(u);
        let tally = &agg.units[u];
        let mut v = serde_json::Map::new();
        v.insert("code".into(), t.code.clone().into());
        v.insert("name".into(), t.name.clone().into());
        v.extend(tally_json(tally, agg.k, field));
        if let Some(c) = tally.shown.count() {
            let d = if t.area_km2 > 0.0 {
                (c as f64 / t.area_km2 * 100.0).round() / 100.0
            } else {
                0.0
            };
            v.insert("density_per_km2".into(), d.into());
        }
        serde_json::Value::Object(v)
    };
    let field_name = field.map(|i| agg.fields[i].clone());
    if !geojson {
        let body = json!({
            "layer": plan.layer, "by": level.name(), "field": field_name, "total": total,
            "form": "aggregate", "k": agg.k,
            "units": units.iter().map(|&u| entry(u)).collect::<Vec<_>>(),
        });
        return Ok(axum::response::IntoResponse::into_response(axum::Json(
            body,
        )));
    }
    let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
    for (i, &u) in units.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let t = tree.unit(u);
        let _ = write!(
            out,
            r#"{{"type":"Feature","id":{},"properties":{},"geometry":"#,
            json_string(&t.code),
            entry(u)
        );
        write_geometry(&mut out, &Geometry::MultiPolygon(t.shape.clone()), false);
        out.push('}');
    }
    let _ = write!(
        out,
        r#"],"layer":{},"by":"{}","total":{total},"form":"aggregate","k":{}}}"#,
        json_string(&plan.layer),
        level.name(),
        agg.k
    );
    Ok(geojson_response(out))
}

/// H3 cells of a level-3 layer for a reader with an aggregate plan: resolutions 5 to 9 only,
/// no square cells (their size and origin would move the units), suppressed.
fn aggregate_cells(
    state: &AppState,
    caller: &Caller,
    plan: &ReadPlan,
    p: &Params,
) -> ApiResult<Response> {
    fixed_units_only(p)?;
    if p.text("size").is_some() {
        return Err(Problem::bad_parameter("size", FIXED_UNITS));
    }
    let r: u8 = p
        .text("h3")
        .ok_or_else(|| Problem::bad_parameter("h3", "give h3, a resolution of 5 to 9"))?
        .parse()
        .map_err(|_| Problem::bad_parameter("h3", "h3 is a resolution of 5 to 9"))?;
    check_resolution(r).map_err(|e| Problem::bad_parameter("h3", e.to_string()))?;
    let agg = state.city.cell_aggregates(plan)?;
    let field = aggregable_field(p, &agg.fields)?;
    let cells = agg.cells(r);
    caller.served(state, plan, Some(cells.len() as u64));
    let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
    for (i, (cell, t)) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut props = tally_json(t, agg.k, field);
        props.insert("cell".into(), cell.to_string().into());
        let _ = write!(
            out,
            r#"{{"type":"Feature","id":{},"properties":{},"geometry":"#,
            json_string(&cell.to_string()),
            serde_json::Value::Object(props)
        );
        write_geometry(
            &mut out,
            &Geometry::Polygon(citytwin_city::cells::h3_outline(*cell)),
            false,
        );
        out.push('}');
    }
    let _ = write!(
        out,
        r#"],"numberReturned":{},"total":{},"form":"aggregate","k":{}}}"#,
        cells.len(),
        agg.total.count_json(agg.k),
        agg.k
    );
    Ok(geojson_response(out))
}
