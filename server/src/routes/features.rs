//! OGC API – Features, Part 1 (core, GeoJSON, OpenAPI 3.0) and Part 3 (filtering with CQL2
//! text, queryables) over every layer held in memory, at the paths the standard names
//! (`/conformance`, `/collections/…`). The landing page is `/` asked for JSON (the viewer
//! answers browsers there) and always `/ogc`.

use crate::app::{AppState, CountKey, base_url};
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::routes::geojson_response;
use crate::routes::selection::{SELECTION_PARAMS, is_crs84, selection};
use crate::routes::spatial::blocking;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use citytwin_city::access::ReadPlan;
use citytwin_city::geojson::{Properties, write_feature};
use citytwin_city::query::page;
use citytwin_city::{FieldKind, LayerIndex, temporal};
use citytwin_tiles::value::json_string;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;

/// CRS84, the only CRS served.
pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// The conformance classes implemented.
pub const CONFORMANCE: [&str; 13] = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
];

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ogc", get(landing))
        .route("/conformance", get(conformance))
        .route("/collections", get(collections))
        .route("/collections/{collectionId}", get(collection))
        .route("/collections/{collectionId}/items", get(items))
        .route("/collections/{collectionId}/items/{featureId}", get(item))
        .route("/collections/{collectionId}/queryables", get(queryables))
}

fn only_f(p: &Params) -> ApiResult<()> {
    p.only(&["f"])?;
    match p.text("f") {
        None | Some("json" | "application/json") => Ok(()),
        Some(f) => Err(Problem::bad_parameter(
            "f",
            format!("only f=json is served, not {f:?}"),
        )),
    }
}

/// The landing page: links to the API definition, conformance and collections (also at `/`
/// for clients asking for JSON).
#[utoipa::path(get, path = "/ogc", tag = "ogc-features",
    responses((status = 200, description = "landing page with links")))]
pub(crate) async fn landing(
    caller: Caller,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.public();
    only_f(&p)?;
    Ok(Json(landing_page(&base_url(&headers))))
}

/// The landing page document.
#[must_use]
pub fn landing_page(base: &str) -> Value {
    json!({
        "title": "citytwin — Nanjing",
        "description": "The city's layers as OGC API – Features: GeoJSON, paging, bbox, datetime and CQL2 filters",
        "links": [
            { "href": format!("{base}/ogc"), "rel": "self", "type": "application/json", "title": "this document" },
            { "href": format!("{base}/api"), "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0", "title": "the API definition" },
            { "href": format!("{base}/api/docs"), "rel": "service-doc", "type": "text/html", "title": "the API documentation" },
            { "href": format!("{base}/conformance"), "rel": "conformance", "type": "application/json", "title": "conformance classes" },
            { "href": format!("{base}/collections"), "rel": "data", "type": "application/json", "title": "the collections" },
            { "href": format!("{base}/tileMatrixSets"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", "type": "application/json", "title": "the tile matrix sets (OGC API – Tiles)" },
            { "href": format!("{base}/"), "rel": "alternate", "type": "text/html", "title": "the map viewer" },
        ],
    })
}

/// The conformance classes the server implements.
#[utoipa::path(get, path = "/conformance", tag = "ogc-features",
    responses((status = 200, description = "`conformsTo`: the conformance class URIs")))]
pub(crate) async fn conformance(caller: Caller, p: Params) -> ApiResult<Json<Value>> {
    caller.public();
    only_f(&p)?;
    let all: Vec<&str> = CONFORMANCE
        .iter()
        .chain(crate::routes::ogc_tiles::CONFORMANCE.iter())
        .copied()
        .collect();
    Ok(Json(json!({ "conformsTo": all })))
}

fn time_extent(l: &LayerIndex) -> Option<Value> {
    let t = l.time_extent()?;
    Some(json!({
        "interval": [[temporal::format(t.start), temporal::format(t.end)]],
        "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
    }))
}

fn describe(l: &LayerIndex, base: &str) -> Value {
    let m = &l.meta;
    let attribution = citytwin_city::catalog::provenance(&[(m, l.form)]);
    let href = format!("{base}/collections/{}", m.name);
    let catalog = crate::routes::catalog::classification(m);
    let mut extent = json!({
        "spatial": { "bbox": [m.bounds.unwrap_or([-180.0, -90.0, 180.0, 90.0])], "crs": CRS84 },
    });
    if let Some(t) = time_extent(l) {
        extent["temporal"] = t;
    }
    json!({
        "id": m.name,
        "title": m.title,
        "description": m.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": extent,
        "attribution": attribution,
        "provenance": crate::routes::catalog::provenance(m),
        "catalog": catalog,
        "links": [
            { "href": href, "rel": "self", "type": "application/json", "title": "this collection" },
            { "href": format!("{href}/items"), "rel": "items", "type": "application/geo+json", "title": "its features" },
            { "href": format!("{href}/queryables"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json", "title": "what filters may use" },
            // the relation name drafts of Part 3 used (GDAL ≤ 3.6 follows only this one)
            { "href": format!("{href}/queryables"), "rel": "queryables", "type": "application/schema+json", "title": "what filters may use" },
            { "href": format!("{base}/tiles/{}", m.name), "rel": "describedby", "type": "application/json", "title": "TileJSON of its vector tiles" },
            { "href": format!("{href}/tiles"), "rel": crate::routes::ogc_tiles::REL_TILESETS_VECTOR, "type": "application/json", "title": "its vector tilesets (OGC API – Tiles)" },
        ],
    })
}

/// Every layer held in memory, as a collection.
#[utoipa::path(get, path = "/collections", tag = "ogc-features",
    responses((status = 200, description = "the collections with their extents and links")))]
pub(crate) async fn collections(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.listing();
    only_f(&p)?;
    let base = base_url(&headers);
    let list: Vec<Value> = state
        .city
        .visible_layers(caller.principal())
        .iter()
        .filter(|(l, _)| l.resident)
        .map(|(l, _)| describe(l, &base))
        .collect();
    Ok(Json(json!({
        "links": [{ "href": format!("{base}/collections"), "rel": "self", "type": "application/json" }],
        "collections": list,
    })))
}

/// A collection: a layer held in memory that the caller may see (layers tiled by the store
/// are not collections), with the caller's read plan.
fn collection_layer(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Arc<LayerIndex>, ReadPlan)> {
    caller
        .layer(state, id)
        .ok()
        .filter(|(l, _)| l.resident)
        .ok_or_else(|| Problem::not_found(format!("no collection {id:?}")))
}

/// One collection.
#[utoipa::path(get, path = "/collections/{collectionId}", tag = "ogc-features",
    params(("collectionId" = String, Path, description = "collection (layer) id")),
    responses(
        (status = 200, description = "the collection"),
        (status = 404, description = "no such collection", content_type = "application/problem+json"),
    ))]
pub(crate) async fn collection(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Json<Value>> {
    let (l, _) = collection_layer(&state, &caller, &id)?;
    only_f(&p)?;
    Ok(Json(describe(&l, &base_url(&headers))))
}

/// The properties a filter may use, as JSON Schema.
#[utoipa::path(get, path = "/collections/{collectionId}/queryables", tag = "ogc-features",
    params(("collectionId" = String, Path, description = "collection (layer) id")),
    responses(
        (status = 200, description = "JSON Schema of the queryable properties", content_type = "application/schema+json"),
        (status = 404, description = "no such collection", content_type = "application/problem+json"),
    ))]
pub(crate) async fn queryables(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    let (l, _) = collection_layer(&state, &caller, &id)?;
    only_f(&p)?;
    let base = base_url(&headers);
    let time = l.meta.time_field.clone();
    let draft: Vec<Value> = std::iter::once(json!({ "id": "id", "type": "integer" }))
        .chain(
            l.meta
                .fields
                .iter()
                .map(|f| json!({ "id": f.name, "type": json_type(f.kind) })),
        )
        .collect();
    let mut props = serde_json::Map::new();
    props.insert(
        "id".into(),
        json!({ "title": "feature id", "type": "integer" }),
    );
    for f in &l.meta.fields {
        let mut s = json!({ "type": json_type(f.kind) });
        s["title"] = json!(f.name);
        if time.as_deref() == Some(f.name.as_str()) {
            s["description"] = json!(if f.kind == FieldKind::Text {
                "the feature's time (RFC 3339); use with T_ functions and datetime"
            } else {
                "the feature's year; use with T_ functions and datetime"
            });
            if f.kind == FieldKind::Text {
                s["format"] = json!("date-time");
            }
        }
        props.insert(f.name.clone(), s);
    }
    props.insert(
        "geometry".into(),
        json!({ "title": "geometry", "format": format!("geometry-{}", l.meta.geometry_kind.name().to_lowercase()),
                "x-ogc-role": "primary-geometry" }),
    );
    let body = json!({
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": format!("{base}/collections/{id}/queryables"),
        "type": "object",
        "title": l.meta.title,
        "properties": props,
        "additionalProperties": false,
        // the list drafts of Part 3 used, which GDAL ≤ 3.6 reads to decide what to send
        "queryables": draft,
    });
    let mut resp = axum::response::IntoResponse::into_response(Json(body));
    // JSON Schema's own media type when the client names it (or names none); plain JSON for
    // clients that accept only that
    let plain = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| !a.contains("schema+json") && !a.contains("*/*"));
    if !plain {
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/schema+json"),
        );
    }
    Ok(resp)
}

/// The JSON Schema type of a field.
fn json_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer => "integer",
        FieldKind::Real => "number",
        FieldKind::Text => "string",
        FieldKind::Boolean => "boolean",
    }
}

fn selected_properties(p: &Params, l: &LayerIndex) -> ApiResult<Option<Vec<usize>>> {
    p.text("properties")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    l.meta.field_index(n).ok_or_else(|| {
                        Problem::bad_parameter(
                            "properties",
                            format!("collection {} has no property {n:?}", l.meta.name),
                        )
                    })
                })
                .collect()
        })
        .transpose()
}

/// Features of a collection: paged, by bbox, time window and CQL2 filter.
#[utoipa::path(get, path = "/collections/{collectionId}/items", tag = "ogc-features",
    params(
        ("collectionId" = String, Path, description = "collection (layer) id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "page size, 1..=10000 (default 10)"),
        ("offset" = Option<usize>, Query, description = "features to skip (the `next` link sets it)"),
        ("bbox" = Option<String>, Query, description = "west,south,east,north in CRS84"),
        ("bbox-crs" = Option<String>, Query, description = "CRS84 only"),
        ("datetime" = Option<String>, Query, description = "instant or interval: 2020-01-01, 2020-01-01/.., ../2021-06-30T00:00:00Z"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
        ("filter" = Option<String>, Query, description = "CQL2 text, e.g. height > 30 AND S_INTERSECTS(geometry, POLYGON((…)))"),
        ("filter-lang" = Option<String>, Query, description = "cql2-text (the default and only one)"),
        ("filter-crs" = Option<String>, Query, description = "CRS84 only"),
        ("properties" = Option<String>, Query, description = "comma-separated properties to return (default all)"),
    ),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection with numberMatched, numberReturned and next link", content_type = "application/geo+json"),
        (status = 400, description = "a bad parameter, named in the problem", content_type = "application/problem+json"),
        (status = 404, description = "no such collection", content_type = "application/problem+json"),
    ))]
pub(crate) async fn items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    let caller = crate::routes::selection::dated(&state, caller, &id, &p)?;
    let (l, plan) = collection_layer(&state, &caller, &id)?;
    plan.features_allowed()?;
    caller.expensive(&state)?;
    let mut known = SELECTION_PARAMS.to_vec();
    known.extend(["limit", "offset", "properties", "filter-crs", "f"]);
    p.only(&known)?;
    if let Some(f) = p.text("f")
        && !matches!(f, "json" | "geojson" | "application/geo+json")
    {
        return Err(Problem::bad_parameter(
            "f",
            format!("only GeoJSON is served, not {f:?}"),
        ));
    }
    if let Some(crs) = p.text("filter-crs")
        && !is_crs84(crs)
    {
        return Err(Problem::bad_parameter(
            "filter-crs",
            format!("only CRS84 is supported, not {crs}"),
        ));
    }
    let limit = p.count("limit", 10, state.limits.max_features)?;
    let offset = p.offset("offset")?;
    let props = selected_properties(&p, &l)?;
    let mut sel = selection(&p, &l.meta)?;
    sel.rows.clone_from(&plan.territory);
    let base = base_url(&headers);
    // the request's own query, for self and next links, without offset
    let mut query: Vec<(String, String)> = [
        "at",
        "bbox",
        "bbox-crs",
        "datetime",
        "filter",
        "filter-lang",
        "filter-crs",
        "properties",
    ]
    .iter()
    .filter_map(|k| p.text(k).map(|v| ((*k).to_owned(), v.to_owned())))
    .collect();
    let key = CountKey {
        layer: Arc::from(l.meta.name.as_str()),
        version: l.version,
        selection: query
            .iter()
            .filter(|(k, _)| k != "properties")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
        plan: plan.key(),
    };
    query.push(("limit".into(), limit.to_string()));
    let limits = state.limits;
    let counts = state.counts.clone();
    let audit = (state.clone(), caller.clone());
    blocking(move || {
        let known = counts.get(&key);
        let pg = page(&l, &sel, offset, limit, &limits, known)?;
        if let (None, Some(n)) = (known, pg.matched) {
            counts.insert(key, n);
        }
        audit.1.served(&audit.0, &plan, Some(pg.features.len() as u64));
        let mut out = String::with_capacity(256 + pg.features.len() * 256);
        out.push_str(r#"{"type":"FeatureCollection","features":["#);
        for (i, f) in pg.features.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let p = props.as_deref().map_or(Properties::All, Properties::Only);
            write_feature(&mut out, &l.meta, f, p, &[], true);
        }
        let link = |off: usize| {
            let mut q = query.clone();
            if off > 0 {
                q.push(("offset".into(), off.to_string()));
            }
            format!("{base}/collections/{}/items?{}", l.meta.name, encode_query(&q))
        };
        let _ = write!(
            out,
            r#"],"timeStamp":{},"numberReturned":{}"#,
            json_string(&citytwin_city::layer::now_rfc3339()),
            pg.features.len()
        );
        if let Some(n) = pg.matched {
            let _ = write!(out, r#","numberMatched":{n}"#);
        }
        let _ = write!(
            out,
            r#","links":[{{"href":{},"rel":"self","type":"application/geo+json"}},{{"href":{},"rel":"collection","type":"application/json"}}"#,
            json_string(&link(offset)),
            json_string(&format!("{base}/collections/{}", l.meta.name))
        );
        if pg.more {
            let _ = write!(
                out,
                r#",{{"href":{},"rel":"next","type":"application/geo+json"}}"#,
                json_string(&link(offset + limit))
            );
        }
        out.push_str("]}");
        Ok(geojson_response(out))
    })
    .await
}

fn encode_query(q: &[(String, String)]) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One feature by id.
#[utoipa::path(get, path = "/collections/{collectionId}/items/{featureId}", tag = "ogc-features",
    params(
        ("collectionId" = String, Path, description = "collection (layer) id"),
        ("featureId" = i64, Path, description = "feature id"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) a layer with versions is read as of (default: its current version)"),
    ),
    responses(
        (status = 200, description = "GeoJSON Feature", content_type = "application/geo+json"),
        (status = 404, description = "no such collection or feature", content_type = "application/problem+json"),
    ))]
pub(crate) async fn item(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, fid)): Path<(String, String)>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    let (l, plan) = collection_layer(&state, &caller, &id)?;
    plan.features_allowed()?;
    p.only(&["f", "properties", "at"])?;
    let props = selected_properties(&p, &l)?;
    let missing = {
        let (id, fid) = (id.clone(), fid.clone());
        move || Problem::not_found(format!("collection {id} has no feature {fid:?}"))
    };
    let fid_num: i64 = fid.parse().map_err(|_| missing())?;
    let base = base_url(&headers);
    blocking(move || {
        let f = l
            .by_id(fid_num)
            .filter(|f| plan.shows(&f.values))
            .ok_or_else(missing)?;
        caller.served(&state, &plan, Some(1));
        let mut out = String::new();
        let p = props.as_deref().map_or(Properties::All, Properties::Only);
        write_feature(&mut out, &l.meta, f, p, &[], true);
        out.pop();
        let _ = write!(
            out,
            r#","links":[{{"href":{},"rel":"self","type":"application/geo+json"}},{{"href":{},"rel":"collection","type":"application/json"}}]}}"#,
            json_string(&format!("{base}/collections/{}/items/{fid_num}", l.meta.name)),
            json_string(&format!("{base}/collections/{}", l.meta.name))
        );
        Ok(geojson_response(out))
    })
    .await
}
