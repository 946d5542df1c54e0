//! OGC API – Tiles (core, tileset, tilesets list, geodata tilesets, WebMercatorQuad, vector
//! tiles as MVT) beside the XYZ routes, so GDAL's OGC API driver, QGIS and OpenLayers open a
//! layer's tiles without a URL template: `/tileMatrixSets…` and
//! `/collections/{collectionId}/tiles…`. The tiles are the XYZ routes' own (the same cache,
//! access decision and ETags); only the paths and the metadata differ.

use crate::app::{AppState, base_url};
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::routes::tiles::{serve, tile_number};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use citytwin_city::LayerIndex;
use citytwin_tiles::proj::lonlat_to_mercator;
use citytwin_tiles::{TileCoord, WEB_MERCATOR_MAX};
use serde_json::{Value, json};

/// The one tile matrix set served.
pub const WEB_MERCATOR_QUAD: &str = "WebMercatorQuad";
/// Its registered URI.
pub const WEB_MERCATOR_QUAD_URI: &str =
    "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad";
/// The deepest tile matrix described (the tile pyramid's own limit).
const DEEPEST: u8 = 24;

/// The conformance classes of OGC API – Tiles and the Tile Matrix Set standard implemented.
pub const CONFORMANCE: [&str; 9] = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
];

/// Link relation of a collection's vector tilesets.
pub const REL_TILESETS_VECTOR: &str = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector";
const REL_TILING_SCHEME: &str = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme";
const MVT: &str = "application/vnd.mapbox-vector-tile";

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tileMatrixSets", get(matrix_sets))
        .route("/tileMatrixSets/{tileMatrixSetId}", get(matrix_set))
        .route("/collections/{collectionId}/tiles", get(tilesets))
        .route(
            "/collections/{collectionId}/tiles/{tileMatrixSetId}",
            get(tileset),
        )
        .route(
            "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
            get(tile),
        )
}

fn only_f(p: &Params, extra: &[&str]) -> ApiResult<()> {
    let mut known = vec!["f"];
    known.extend_from_slice(extra);
    p.only(&known)?;
    match p.text("f") {
        None | Some("json" | "application/json" | "mvt") => Ok(()),
        Some(f) => Err(Problem::bad_parameter(
            "f",
            format!("only f=json (metadata) and f=mvt (tiles) are served, not {f:?}"),
        )),
    }
}

fn check_set(id: &str) -> ApiResult<()> {
    if id == WEB_MERCATOR_QUAD {
        Ok(())
    } else {
        Err(Problem::not_found(format!(
            "no tile matrix set {id:?}; {WEB_MERCATOR_QUAD} is the one served"
        )))
    }
}

/// Size of a cell at a zoom, in metres at the equator.
fn cell_size(z: u8) -> f64 {
    2.0 * WEB_MERCATOR_MAX / 256.0 / f64::from(1u32 << z)
}

/// The WebMercatorQuad tile matrix set as the Tile Matrix Set standard 2.0 writes it, with
/// version 1.0's names for the same numbers beside.
#[must_use]
pub fn web_mercator_quad() -> Value {
    let matrices: Vec<Value> = (0..=DEEPEST)
        .map(|z| {
            let n = 1u32 << z;
            json!({
                "id": z.to_string(),
                "identifier": z.to_string(),
                // 0.28 mm pixels
                "scaleDenominator": cell_size(z) / 0.000_28,
                "cellSize": cell_size(z),
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-WEB_MERCATOR_MAX, WEB_MERCATOR_MAX],
                "topLeftCorner": [-WEB_MERCATOR_MAX, WEB_MERCATOR_MAX],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": n,
                "matrixHeight": n,
            })
        })
        .collect();
    json!({
        "id": WEB_MERCATOR_QUAD,
        "title": "Google Maps Compatible for the World",
        "uri": WEB_MERCATOR_QUAD_URI,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": matrices,
        // the names of the standard's version 1.0 beside 2.0's, for readers of 1.0 (GDAL
        // before 3.7 reads only these)
        "identifier": WEB_MERCATOR_QUAD,
        "supportedCRS": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "boundingBox": {
            "type": "BoundingBoxType",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
            "lowerCorner": [-WEB_MERCATOR_MAX, -WEB_MERCATOR_MAX],
            "upperCorner": [WEB_MERCATOR_MAX, WEB_MERCATOR_MAX],
        },
    })
}

/// The tile matrix sets served: WebMercatorQuad.
#[utoipa::path(get, path = "/tileMatrixSets", tag = "ogc-tiles",
    responses((status = 200, description = "`tileMatrixSets` with links to their definitions")))]
pub(crate) async fn matrix_sets(
    caller: Caller,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.public();
    only_f(&p, &[])?;
    let base = base_url(&headers);
    Ok(Json(json!({
        "tileMatrixSets": [{
            "id": WEB_MERCATOR_QUAD,
            "title": "Google Maps Compatible for the World",
            "uri": WEB_MERCATOR_QUAD_URI,
            "links": [{ "href": format!("{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}"), "rel": "self", "type": "application/json", "title": WEB_MERCATOR_QUAD }],
        }],
    })))
}

/// A tile matrix set's definition (Tile Matrix Set standard 2.0, JSON).
#[utoipa::path(get, path = "/tileMatrixSets/{tileMatrixSetId}", tag = "ogc-tiles",
    params(("tileMatrixSetId" = String, Path, description = "WebMercatorQuad")),
    responses(
        (status = 200, description = "the tile matrices: scale, cell size, origin, matrix sizes"),
        (status = 404, description = "no such tile matrix set", content_type = "application/problem+json"),
    ))]
pub(crate) async fn matrix_set(
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.public();
    only_f(&p, &[])?;
    check_set(&id)?;
    Ok(Json(web_mercator_quad()))
}

/// One layer the caller may see, or a 404 as for a layer that does not exist.
fn one_layer(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(std::sync::Arc<LayerIndex>, citytwin_city::access::ReadPlan)> {
    // a comma would name several layers to the XYZ routes: a collection is one
    if id.contains(',') {
        return Err(Problem::not_found(format!("no collection {id:?}")));
    }
    caller
        .layer(state, id)
        .map_err(|_| Problem::not_found(format!("no collection {id:?}")))
}

fn tileset_summary(l: &LayerIndex, base: &str) -> Value {
    let href = format!(
        "{base}/collections/{}/tiles/{WEB_MERCATOR_QUAD}",
        l.meta.name
    );
    json!({
        "title": format!("{} (vector tiles)", if l.meta.title.is_empty() { &l.meta.name } else { &l.meta.title }),
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": WEB_MERCATOR_QUAD_URI,
        "links": [
            { "href": href, "rel": "self", "type": "application/json", "title": "the tileset" },
            { "href": format!("{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}"), "rel": REL_TILING_SCHEME, "type": "application/json", "title": WEB_MERCATOR_QUAD },
        ],
    })
}

/// A collection's tilesets: its vector tiles in WebMercatorQuad.
#[utoipa::path(get, path = "/collections/{collectionId}/tiles", tag = "ogc-tiles",
    params(("collectionId" = String, Path, description = "collection (layer) id")),
    responses(
        (status = 200, description = "`tilesets`"),
        (status = 404, description = "no such collection", content_type = "application/problem+json"),
    ))]
pub(crate) async fn tilesets(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Json<Value>> {
    let (l, _) = one_layer(&state, &caller, &id)?;
    only_f(&p, &[])?;
    let base = base_url(&headers);
    Ok(Json(json!({
        "links": [{ "href": format!("{base}/collections/{id}/tiles"), "rel": "self", "type": "application/json" }],
        "tilesets": [tileset_summary(&l, &base)],
    })))
}

/// The tile limits of a layer's bounds at each of its zooms.
fn limits(l: &LayerIndex) -> Vec<Value> {
    let b = l.meta.bounds.unwrap_or([-180.0, -85.0, 180.0, 85.0]);
    let (x0, y0) = lonlat_to_mercator(b[0], b[1].max(-85.051_128));
    let (x1, y1) = lonlat_to_mercator(b[2], b[3].min(85.051_128));
    (l.meta.minzoom..=l.meta.maxzoom.min(DEEPEST))
        .map(|z| {
            let top_left = TileCoord::containing(x0, y1, z);
            let bottom_right = TileCoord::containing(x1, y0, z);
            json!({
                "tileMatrix": z.to_string(),
                "minTileRow": top_left.y,
                "maxTileRow": bottom_right.y,
                "minTileCol": top_left.x,
                "maxTileCol": bottom_right.x,
            })
        })
        .collect()
}

/// A collection's tileset: its tile matrix set, limits per zoom, its one layer with fields,
/// and the tile URL template.
#[utoipa::path(get, path = "/collections/{collectionId}/tiles/{tileMatrixSetId}", tag = "ogc-tiles",
    params(
        ("collectionId" = String, Path, description = "collection (layer) id"),
        ("tileMatrixSetId" = String, Path, description = "WebMercatorQuad"),
    ),
    responses(
        (status = 200, description = "the tileset metadata (OGC Two Dimensional Tile Matrix Set and Tile Set Metadata 2.0)"),
        (status = 404, description = "no such collection or tile matrix set", content_type = "application/problem+json"),
    ))]
pub(crate) async fn tileset(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, set)): Path<(String, String)>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Json<Value>> {
    let (l, _) = one_layer(&state, &caller, &id)?;
    only_f(&p, &[])?;
    check_set(&set)?;
    let base = base_url(&headers);
    let m = &l.meta;
    let at = caller.cx.at.map(|d| format!("?at={d}")).unwrap_or_default();
    let vector = crate::routes::tiles::vector_layer(&l);
    let properties: serde_json::Map<String, Value> = vector["fields"]
        .as_object()
        .map(|f| {
            f.iter()
                .map(|(k, v)| (k.clone(), json!({ "type": v })))
                .collect()
        })
        .unwrap_or_default();
    let geometry = match m.geometry_kind.name() {
        "Point" => "points",
        "LineString" => "lines",
        _ => "polygons",
    };
    let b = m.bounds.unwrap_or([-180.0, -85.0, 180.0, 85.0]);
    Ok(Json(json!({
        "title": if m.title.is_empty() { m.name.clone() } else { m.title.clone() },
        "description": m.description,
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": WEB_MERCATOR_QUAD_URI,
        "tileMatrixSetLimits": limits(&l),
        "boundingBox": {
            "lowerLeft": [b[0], b[1]],
            "upperRight": [b[2], b[3]],
            "crs": crate::routes::features::CRS84,
        },
        "minTileMatrix": m.minzoom.to_string(),
        "maxTileMatrix": m.maxzoom.min(DEEPEST).to_string(),
        "attribution": citytwin_city::catalog::provenance(&[(m, l.form)]),
        "layers": [{
            "id": m.name,
            "title": m.title,
            "description": m.description,
            "dataType": "vector",
            "geometryDimension": match geometry { "points" => 0, "lines" => 1, _ => 2 },
            "minTileMatrix": m.minzoom.to_string(),
            "maxTileMatrix": m.maxzoom.min(DEEPEST).to_string(),
            "propertiesSchema": { "type": "object", "properties": properties },
        }],
        "links": [
            { "href": format!("{base}/collections/{id}/tiles/{WEB_MERCATOR_QUAD}"), "rel": "self", "type": "application/json", "title": "this tileset" },
            { "href": format!("{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}"), "rel": REL_TILING_SCHEME, "type": "application/json", "title": WEB_MERCATOR_QUAD },
            { "href": format!("{base}/collections/{id}/tiles/{WEB_MERCATOR_QUAD}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}{at}"), "rel": "item", "type": MVT, "templated": true, "title": "a tile (Mapbox Vector Tile)" },
            { "href": format!("{base}/collections/{id}"), "rel": "collection", "type": "application/json", "title": "the collection" },
            { "href": format!("{base}/tiles/{id}"), "rel": "describedby", "type": "application/json", "title": "TileJSON of the same tiles" },
        ],
    })))
}

/// One vector tile at `{tileMatrix}/{tileRow}/{tileCol}` (row before column, as the
/// standard orders them): the XYZ route's tile.
#[utoipa::path(get, path = "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", tag = "ogc-tiles",
    params(
        ("collectionId" = String, Path, description = "collection (layer) id"),
        ("tileMatrixSetId" = String, Path, description = "WebMercatorQuad"),
        ("tileMatrix" = u8, Path, description = "zoom 0..=24"),
        ("tileRow" = u32, Path, description = "row (y)"),
        ("tileCol" = u32, Path, description = "column (x)"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) layers with versions are drawn as of"),
    ),
    responses(
        (status = 200, description = "the tile", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "no feature in the tile"),
        (status = 304, description = "unchanged since the ETag given in If-None-Match"),
        (status = 400, description = "a tile out of range", content_type = "application/problem+json"),
        (status = 404, description = "no such collection or tile matrix set", content_type = "application/problem+json"),
    ))]
pub(crate) async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, set, z, row, col)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    let resolved = vec![one_layer(&state, &caller, &id)?];
    only_f(&p, &["at"])?;
    check_set(&set)?;
    let coord = TileCoord::new(
        tile_number("tileMatrix", &z)?,
        tile_number("tileCol", &col)?,
        tile_number("tileRow", &row)?,
    )
    .map_err(|e| Problem::bad_parameter("tileMatrix/tileRow/tileCol", e.to_string()))?;
    serve(&state, &caller, &resolved, coord, &headers).await
}
