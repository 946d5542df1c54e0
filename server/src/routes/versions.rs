//! A base layer's versions and what changed between two dates:
//! `/layers/{layer}/versions`, `/layers/{layer}/diff`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::routes::geojson_response;
use crate::routes::spatial::blocking;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use citytwin_city::geojson::{Properties, write_feature};
use citytwin_city::territory::Level;
use citytwin_city::territory::NONE;
use citytwin_city::versions::Day;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/layers/{layer}/versions", get(versions))
        .route("/layers/{layer}/diff", get(diff))
}

/// A layer's versions, oldest first, with what each changed.
#[utoipa::path(get, path = "/layers/{layer}/versions", tag = "versions",
    params(("layer" = String, Path, description = "layer name")),
    responses(
        (status = 200, description = "the versions: date, features, added, removed, changed, source, imported_at", content_type = "application/json"),
        (status = 404, description = "no such layer (or not one the caller may see)", content_type = "application/problem+json"),
    ))]
pub(crate) async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.only(&[])?;
    let (l, plan) = caller
        .layer(&state, &name)
        .map_err(|_| Problem::not_found(format!("no layer {name:?}")))?;
    caller.served(&state, &plan, Some(l.meta.versions.len() as u64));
    Ok(Json(json!({
        "layer": l.meta.name,
        "key": l.meta.version_key,
        "versions": l.meta.versions,
    }))
    .into_response())
}

/// A kind of change (for the API description).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types)]
pub(crate) enum Change {
    added,
    removed,
    changed,
}

/// A level of the territory tree (for the API description).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types)]
pub(crate) enum By {
    city,
    district,
    street,
    community,
    grid,
}

fn day(p: &Params, name: &str) -> ApiResult<Day> {
    let v = p.text(name).ok_or_else(|| {
        Problem::bad_parameter(name, format!("{name} is required: a date, YYYY-MM-DD"))
    })?;
    Day::parse(v).map_err(|e| Problem::bad_parameter(name, e.to_string()))
}

/// Features added, removed and changed between two dates, or their counts per territory unit.
#[utoipa::path(get, path = "/layers/{layer}/diff", tag = "versions",
    params(
        ("layer" = String, Path, description = "layer name"),
        ("from" = String, Query, format = Date, description = "the earlier date, YYYY-MM-DD"),
        ("to" = String, Query, format = Date, description = "the later date, YYYY-MM-DD"),
        ("change" = Option<Change>, Query, description = "only added, removed or changed features"),
        ("by" = Option<By>, Query, description = "count the changes per unit of a level instead of listing them"),
        ("within" = Option<String>, Query, description = "with by: only units under this territory code"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "features per page (default 1000)"),
        ("offset" = Option<usize>, Query, description = "features to skip"),
    ),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection of the changes (properties change, changed_fields and the layer's fields), or with by: counts per unit", content_type = "application/geo+json"),
        (status = 400, description = "a bad date, from not before to, or a layer without versions", content_type = "application/problem+json"),
        (status = 404, description = "no such layer (or not one the caller may see)", content_type = "application/problem+json"),
    ))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    // the access decision comes first: a layer the caller may not see is not there
    caller
        .layer(&state, &name)
        .map_err(|_| Problem::not_found(format!("no layer {name:?}")))?;
    p.only(&["from", "to", "change", "by", "within", "limit", "offset"])?;
    if caller.cx.at.is_some() {
        return Err(Problem::bad_parameter(
            "at",
            "a diff is between from and to; at says nothing here",
        ));
    }
    let (from, to) = (day(&p, "from")?, day(&p, "to")?);
    let only = p
        .text("change")
        .map(|c| match c {
            "added" | "removed" | "changed" => Ok(c.to_owned()),
            other => Err(Problem::bad_parameter(
                "change",
                format!("{other:?}: use added, removed or changed"),
            )),
        })
        .transpose()?;
    let limit = p.count("limit", 1000, 10_000)?;
    let offset = p.offset("offset")?;
    caller.expensive(&state)?;
    let cx = caller.cx.clone();
    let city = state.city.clone();
    let n = name.clone();
    let (changes, plan) = tokio::task::spawn_blocking(move || city.changes(&cx, &n, from, to))
        .await
        .map_err(|e| Problem::from(citytwin_city::Error::Invalid(format!("diff failed: {e}"))))?
        .map_err(|e| match e {
            citytwin_city::Error::UnknownLayer(_) => {
                Problem::not_found(format!("no layer {name:?}"))
            }
            e => Problem::from(e),
        })?;
    let kind_of = |f: &citytwin_city::index::IndexedFeature| f.values[0].to_string();
    let wanted = move |f: &citytwin_city::index::IndexedFeature| {
        only.as_ref()
            .is_none_or(|o| f.values[0] == citytwin_tiles::Value::from(o.as_str()))
    };
    let mut totals: BTreeMap<String, u64> = ["added", "removed", "changed"]
        .iter()
        .map(|k| ((*k).to_owned(), 0))
        .collect();
    for f in changes.features() {
        *totals.entry(kind_of(f)).or_default() += 1;
    }
    if let Some(by) = p.text("by") {
        let level = Level::parse(by).map_err(|e| Problem::bad_parameter("by", e.to_string()))?;
        let tree = state.city.territory().await?;
        let within = p
            .text("within")
            .map(|c| {
                tree.by_code(c).ok_or_else(|| {
                    Problem::unknown("within", format!("no territory with code {c:?}"))
                })
            })
            .transpose()?;
        caller.served(&state, &plan, Some(changes.len() as u64));
        return blocking(move || {
            let assignment = citytwin_city::stats::GridAssignment::compute(&tree, &changes);
            let mut per_unit: BTreeMap<u32, [u64; 3]> = BTreeMap::new();
            for (f, &g) in changes.features().iter().zip(&assignment.grid_of) {
                if g == NONE || !wanted(f) {
                    continue;
                }
                let unit = tree.chain(g)[level as usize];
                if within.is_some_and(|w| !tree.is_under(unit as usize, w)) {
                    continue;
                }
                let slot = match f.values[0].to_string().as_str() {
                    "added" => 0,
                    "removed" => 1,
                    _ => 2,
                };
                per_unit.entry(unit).or_default()[slot] += 1;
            }
            let units: Vec<_> = per_unit
                .iter()
                .map(|(&u, c)| {
                    let t = tree.unit(u as usize);
                    json!({ "code": t.code, "name": t.name, "added": c[0], "removed": c[1], "changed": c[2] })
                })
                .collect();
            Ok(Json(json!({
                "layer": changes.meta.name, "from": from.iso(), "to": to.iso(), "by": level.name(),
                "totals": totals, "units": units,
            }))
            .into_response())
        })
        .await;
    }
    caller.served(&state, &plan, Some(changes.len() as u64));
    blocking(move || {
        let selected: Vec<_> = changes.features().iter().filter(|f| wanted(f)).collect();
        let page = selected.iter().skip(offset).take(limit);
        let mut out = String::from(r#"{"type":"FeatureCollection","features":["#);
        let mut returned = 0;
        for (i, f) in page.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_feature(&mut out, &changes.meta, f, Properties::All, &[], true);
            returned += 1;
        }
        let _ = write!(
            out,
            r#"],"from":"{}","to":"{}","totals":{},"numberMatched":{},"numberReturned":{returned}}}"#,
            from.iso(),
            to.iso(),
            serde_json::to_string(&totals).unwrap_or_default(),
            selected.len()
        );
        Ok(geojson_response(out))
    })
    .await
}
