//! The OpenAPI 3.0 document of every endpoint (`/api`) and a readable page of it (`/api/docs`).

use crate::params::Params;
use crate::problem::ApiResult;
use crate::problem::Problem;
use crate::routes::{
    access, assets, catalog, features, governance, live, ogc_tiles, ops, render, spatial, sta,
    styles, territory, tiles, versions,
};
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::OnceLock;
use utoipa::OpenApi;

use crate::app::AppState;

// the derive expands to a for_each clippy frowns on
#[allow(clippy::needless_for_each)]
mod doc {
    use super::{
        access, assets, catalog, features, governance, live, ogc_tiles, ops, render, spatial, sta,
        styles, territory, tiles, versions,
    };
    use utoipa::OpenApi;

    #[derive(OpenApi)]
    #[openapi(
    info(
        title = "citytwin",
        description = "A live digital twin of Nanjing: vector tiles, the territory tree, statistics, spatial queries and OGC API – Features.",
        license(name = "Apache-2.0"),
    ),
    paths(
        tiles::tile, tiles::tilejson,
        catalog::list, catalog::one, catalog::quality,
        styles::list, styles::one, assets::fonts, assets::glyphs, assets::sprite,
        territory::locate, territory::locate_many, territory::search, territory::one, territory::children,
        spatial::nearest_features, spatial::within_distance, spatial::intersects, spatial::stats, spatial::cells,
        versions::versions, versions::diff,
        features::landing, features::conformance, features::collections, features::collection,
        features::queryables, features::items, features::item,
        ogc_tiles::matrix_sets, ogc_tiles::matrix_set, ogc_tiles::tilesets, ogc_tiles::tileset,
        ogc_tiles::tile,
        sta::root, sta::read, sta::create,
        live::report, live::list_events, live::one_event, live::transition, live::assign,
        live::command, live::nearest_units, live::register_sensor, live::list_sensors,
        live::one_sensor, live::read_one, live::read_batch, live::history, live::register_unit,
        live::list_units, live::one_unit, live::move_unit, live::unit_status, live::websocket,
        live::sse, live::changes, live::state_at, live::ticket, live::follow_report,
        render::static_map, render::list, render::dashboard, render::stream, render::screen,
        ops::health, ops::metrics,
        access::me, access::audit, access::list_keys, access::create_key, access::revoke_key,
        access::revocations, access::revoke, access::auth_config,
        governance::list_grants, governance::one_grant, governance::request_grant,
        governance::approve_grant, governance::refuse_grant, governance::revoke_grant,
        governance::list_objections, governance::one_objection, governance::object,
        governance::decide,
        super::document, super::docs,
    ),
    tags(
        (name = "tiles", description = "XYZ vector tiles and TileJSON"),
        (name = "styles", description = "MapLibre styles, their glyphs and sprites"),
        (name = "versions", description = "A base layer's versions and what changed between two dates"),
        (name = "catalog", description = "the layer catalogue with provenance"),
        (name = "territory", description = "the five-level territory tree: city, district, street, community, grid"),
        (name = "statistics", description = "counts and sums per territory and per cell"),
        (name = "spatial", description = "nearest, within a distance, intersecting a geometry"),
        (name = "ogc-features", description = "OGC API – Features Part 1 and Part 3 (CQL2 text)"),
        (name = "sensorthings", description = "OGC SensorThings API 1.1 over the sensors: Things, Locations, HistoricalLocations, Datastreams, Sensors, ObservedProperties, Observations, FeaturesOfInterest"),
        (name = "ogc-tiles", description = "OGC API – Tiles: WebMercatorQuad vector tilesets of each collection"),
        (name = "live", description = "events and their closed loop, sensors and readings, response units, the change feed and the time machine"),
        (name = "render", description = "server-rendered static maps and big-screen dashboards: PNG frames, an MJPEG stream, a full-screen page"),
        (name = "operations", description = "health and metrics"),
        (name = "access", description = "who is asking, the audit log (auditors), keys and revocations (security admins)"),
        (name = "governance", description = "the data bureau's procedures: requests for conditionally shared or opened layers (grants) and objections to data"),
        (name = "web", description = "the browser viewer and its files"),
        (name = "api", description = "this API's description"),
    )
)]
    pub struct ApiDoc;
}
use doc::ApiDoc;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api", get(document))
        .route("/api/docs", get(docs))
}

fn extra_path(summary: &str, tag: &str, content_type: &str, params: &[(&str, &str)]) -> Value {
    json!({ "get": {
        "tags": [tag],
        "summary": summary,
        "parameters": params.iter().map(|(n, d)| json!({
            "name": n, "in": "path", "required": true, "description": d, "schema": { "type": "string" }
        })).collect::<Vec<_>>(),
        "responses": {
            "200": { "description": summary, "content": { content_type: {} } },
            "404": { "description": "no such file", "content": { "application/problem+json": {} } },
        },
    }})
}

/// The OpenAPI document as JSON.
#[must_use]
pub fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
        let paths = &mut doc["paths"];
        paths["/"] = extra_path(
            "the map viewer for browsers; the OGC API landing page for clients asking for JSON (or f=json)",
            "web",
            "text/html",
            &[],
        );
        paths["/tiles/{layers}/tilejson.json"] = extra_path(
            "TileJSON, as at /tiles/{layers}",
            "tiles",
            "application/json",
            &[("layers", "layer names, comma-separated")],
        );
        // filter-lang's values, for clients that look for them here (GDAL)
        if let Some(params) = paths["/collections/{collectionId}/items"]["get"]["parameters"].as_array_mut() {
            for p in params.iter_mut().filter(|p| p["name"] == "filter-lang") {
                p["schema"] = json!({ "type": "string", "enum": ["cql2-text", "cql-text"], "default": "cql2-text" });
            }
        }
        paths["/web/{file}"] = extra_path(
            "the viewer's own files",
            "web",
            "application/octet-stream",
            &[("file", "path under web/")],
        );
        paths["/vendor/maplibre-gl/{file}"] = extra_path(
            "MapLibre GL JS, served locally",
            "web",
            "application/javascript",
            &[("file", "path under maplibre-gl/dist")],
        );
        paths["/vendor/oidc-client-ts/{file}"] = extra_path(
            "oidc-client-ts (sign-in with PKCE in the browser), served locally",
            "web",
            "application/javascript",
            &[("file", "oidc-client-ts.min.js")],
        );
        super::contract::complete(&mut doc);
        doc
    })
}

/// This document: OpenAPI 3.0 of every endpoint (`f=html` or a browser's Accept gives the page).
#[utoipa::path(get, path = "/api", tag = "api",
    params(("f" = Option<String>, Query, description = "json (default) or html")),
    responses((status = 200, description = "the OpenAPI 3.0 document", content_type = "application/vnd.oai.openapi+json;version=3.0")))]
pub(crate) async fn document(
    caller: crate::auth::Caller,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    caller.public();
    p.only(&["f"])?;
    let html = match p.text("f") {
        Some("html") => true,
        Some("json") => false,
        Some(f) => {
            return Err(Problem::bad_parameter(
                "f",
                format!("f is json or html, not {f:?}"),
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("text/html")),
    };
    if html {
        return Ok(Html(page()).into_response());
    }
    let mut resp = axum::Json(openapi()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oai.openapi+json;version=3.0"),
    );
    Ok(resp)
}

/// The API described for people: every endpoint with its parameters and responses.
#[utoipa::path(get, path = "/api/docs", tag = "api",
    responses((status = 200, description = "an HTML page", content_type = "text/html")))]
pub(crate) async fn docs(caller: crate::auth::Caller) -> Html<String> {
    caller.public();
    Html(page())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Renders the document as one self-contained HTML page (no scripts, works offline).
fn page() -> String {
    let doc = openapi();
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>citytwin API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#1d2733}\
         h2{border-bottom:2px solid #d0d7de;padding-bottom:.2em;margin-top:2em}\
         .op{border:1px solid #d0d7de;border-radius:6px;margin:1em 0;padding:.6em 1em}\
         .m{display:inline-block;min-width:4em;font-weight:700;color:#fff;border-radius:4px;text-align:center;margin-right:.6em}\
         .get{background:#1f6feb}.post{background:#1a7f37}code{background:#f3f5f7;padding:0 .3em;border-radius:3px}\
         table{border-collapse:collapse;width:100%;margin:.4em 0}td,th{border-bottom:1px solid #eee;text-align:left;padding:.2em .5em;vertical-align:top}\
         </style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>{} {}</h1><p>{}</p><p>Machine-readable: <a href=\"/api\">/api</a> (OpenAPI {}).</p>",
        esc(text(&doc["info"]["title"])),
        esc(text(&doc["info"]["version"])),
        esc(text(&doc["info"]["description"])),
        esc(text(&doc["openapi"])),
    );
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    for tag in doc["tags"].as_array().into_iter().flatten() {
        let name = text(&tag["name"]);
        let _ = write!(
            out,
            "<h2 id=\"{0}\">{0}</h2><p>{1}</p>",
            esc(name),
            esc(text(&tag["description"]))
        );
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap_or(&empty) {
                if !op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == name))
                {
                    continue;
                }
                let summary = op["summary"]
                    .as_str()
                    .or(op["description"].as_str())
                    .unwrap_or("");
                let _ = write!(
                    out,
                    "<div class=\"op\"><span class=\"m {method}\">{}</span><code>{}</code><p>{}</p>",
                    method.to_uppercase(),
                    esc(path),
                    esc(summary)
                );
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    out.push_str(
                        "<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>",
                    );
                    for p in params {
                        let _ = write!(
                            out,
                            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(text(&p["name"])),
                            if p["required"] == json!(true) {
                                " *"
                            } else {
                                ""
                            },
                            esc(text(&p["in"])),
                            esc(text(&p["schema"]["type"])),
                            esc(text(&p["description"])),
                        );
                    }
                    out.push_str("</table>");
                }
                if let Some(body) = op.get("requestBody") {
                    let _ = write!(out, "<p>Body: {}</p>", esc(text(&body["description"])));
                }
                out.push_str("<table><tr><th>status</th><th>response</th></tr>");
                for (code, r) in op["responses"].as_object().unwrap_or(&empty) {
                    let types: Vec<&str> = r["content"]
                        .as_object()
                        .map(|c| c.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td>{} <small>{}</small></td></tr>",
                        esc(code),
                        esc(text(&r["description"])),
                        esc(&types.join(", "))
                    );
                }
                out.push_str("</table></div>");
            }
        }
    }
    out.push_str("</body></html>");
    out
}
