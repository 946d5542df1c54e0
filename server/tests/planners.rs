#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! The planners' API against the demo store: point location, the territory tree, statistics,
//! nearest/within/intersects, OGC API – Features with CQL2 (also through GDAL's OAPIF driver),
//! the OpenAPI document, and bad input on every endpoint.

mod common;

use common::{TestServer, client, server};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// 新街口 (Xinjiekou), inside 玄武区.
const XJK: (f64, f64) = (118.7969, 32.0603);

async fn get(srv: &TestServer, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = client()
        .get(format!("{}{path}", srv.base))
        .query(query)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    if !status.is_success() {
        assert_eq!(
            ctype, "application/problem+json",
            "{path} {query:?} → {status}"
        );
    }
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

async fn ok(srv: &TestServer, path: &str, query: &[(&str, &str)]) -> Value {
    let (status, body) = get(srv, path, query).await;
    assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
    body
}

/// Asserts a 4xx problem naming the parameter at fault.
async fn bad(srv: &TestServer, path: &str, query: &[(&str, &str)], status: u16, parameter: &str) {
    let (got, body) = get(srv, path, query).await;
    assert_eq!(got.as_u16(), status, "{path} {query:?}: {body}");
    if !parameter.is_empty() {
        assert_eq!(body["parameter"], parameter, "{path} {query:?}: {body}");
    }
    assert!(!body["detail"].as_str().unwrap().is_empty());
}

async fn post(srv: &TestServer, path: &str, body: &str) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}{path}", srv.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn ids(fc: &Value) -> Vec<i64> {
    fc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect()
}

fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.0 - a.0).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// Every POI as (id, lon, lat, category), read through the items endpoint.
async fn all_pois(srv: &TestServer) -> Vec<(i64, f64, f64, String)> {
    let fc = ok(srv, "/collections/pois/items", &[("limit", "10000")]).await;
    assert_eq!(fc["numberMatched"], fc["numberReturned"]);
    fc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let c = &f["geometry"]["coordinates"];
            (
                f["id"].as_i64().unwrap(),
                c[0].as_f64().unwrap(),
                c[1].as_f64().unwrap(),
                f["properties"]["category"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn locate_answers_the_five_levels_for_one_point_or_many() {
    let srv = server();
    let (lon, lat) = (XJK.0.to_string(), XJK.1.to_string());
    let r = ok(srv, "/grids/locate", &[("lon", &lon), ("lat", &lat)]).await;
    let code = |level: &str| r[level]["code"].as_str().unwrap().to_owned();
    assert_eq!(code("city"), "320100");
    assert_eq!(code("district"), "320102");
    assert_eq!(r["district"]["name"], "玄武区");
    assert!(code("street").starts_with(&code("district")));
    assert!(code("community").starts_with(&code("street")));
    assert!(code("grid").starts_with(&code("community")));
    assert_eq!(code("grid").len(), 15);

    // the grid's own outline contains the point, and its territory says so
    let grid = ok(srv, &format!("/territories/{}", code("grid")), &[]).await;
    assert_eq!(grid["properties"]["level"], "grid");
    assert_eq!(grid["properties"]["parent"]["code"], code("community"));

    bad(
        srv,
        "/grids/locate",
        &[("lon", "100"), ("lat", "30")],
        404,
        "",
    )
    .await;
    bad(
        srv,
        "/grids/locate",
        &[("lon", "east"), ("lat", "30")],
        400,
        "lon",
    )
    .await;
    bad(srv, "/grids/locate", &[("lat", "30")], 400, "lon").await;
    bad(
        srv,
        "/grids/locate",
        &[("lon", "200"), ("lat", "30")],
        400,
        "lon/lat",
    )
    .await;
    bad(
        srv,
        "/grids/locate",
        &[("lon", "118"), ("lat", "32"), ("x", "1")],
        400,
        "x",
    )
    .await;

    let (status, many) = post(
        srv,
        "/grids/locate",
        &json!({ "points": [[XJK.0, XJK.1], [100.0, 30.0], [118.78, 32.04]] }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(many["located"], 2);
    assert_eq!(many["results"][0]["grid"]["code"], code("grid"));
    assert!(many["results"][1].is_null());
    let (status, body) = post(srv, "/grids/locate", r#"{"pts": []}"#).await;
    assert_eq!(
        (status.as_u16(), body["parameter"].as_str()),
        (400, Some("points"))
    );
    let (status, body) = post(srv, "/grids/locate", r#"{"points": [[118, 95]]}"#).await;
    assert_eq!(
        (status.as_u16(), body["parameter"].as_str()),
        (400, Some("points"))
    );
    let too_many = json!({ "points": vec![[XJK.0, XJK.1]; 10_001] }).to_string();
    let (status, body) = post(srv, "/grids/locate", &too_many).await;
    assert_eq!(
        (status.as_u16(), body["parameter"].as_str()),
        (400, Some("points"))
    );
}

#[tokio::test]
async fn shared_vertices_of_grids_always_locate_to_one_of_their_grids() {
    let srv = server();
    let kids = ok(srv, "/territories/320102001/children", &[]).await;
    let community = kids["features"][0]["id"].as_str().unwrap().to_owned();
    let grids = ok(srv, &format!("/territories/{community}/children"), &[]).await;
    let first = &grids["features"][0];
    let ring = first["geometry"]["coordinates"][0][0].as_array().unwrap();
    for v in ring.iter().take(6) {
        let (lon, lat) = (v[0].to_string(), v[1].to_string());
        let a = ok(srv, "/grids/locate", &[("lon", &lon), ("lat", &lat)]).await;
        let b = ok(srv, "/grids/locate", &[("lon", &lon), ("lat", &lat)]).await;
        assert_eq!(a["grid"], b["grid"], "the answer never changes");
        assert!(a["grid"]["code"].as_str().unwrap().len() == 15);
    }
}

#[tokio::test]
async fn the_tree_has_units_children_counts_and_search() {
    let srv = server();
    let d = ok(srv, "/territories/320102", &[]).await;
    let p = &d["properties"];
    assert_eq!(d["type"], "Feature");
    assert_eq!(d["geometry"]["type"], "MultiPolygon");
    assert_eq!(p["name"], "玄武区");
    assert_eq!(p["parent"]["code"], "320100");
    assert!(p["area_km2"].as_f64().unwrap() > 50.0);
    let children = p["children"].as_array().unwrap();
    assert_eq!(children.len(), 7, "玄武区 has 7 streets");
    // counts of the district are the sums over its streets
    let buildings = p["feature_counts"]["buildings"].as_u64().unwrap();
    assert!(buildings > 1000);
    let mut sum = 0;
    for c in children {
        let code = c["code"].as_str().unwrap();
        let s = ok(
            srv,
            &format!("/territories/{code}"),
            &[("geometry", "false")],
        )
        .await;
        assert!(s["geometry"].is_null());
        sum += s["properties"]["feature_counts"]["buildings"]
            .as_u64()
            .unwrap();
    }
    assert_eq!(sum, buildings);
    let kids = ok(
        srv,
        "/territories/320102/children",
        &[("geometry", "false")],
    )
    .await;
    assert_eq!(kids["features"].as_array().unwrap().len(), 7);

    let found = ok(srv, "/territories", &[("q", "新街口")]).await;
    assert!(
        found["territories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["level"] == "street")
    );
    let found = ok(
        srv,
        "/territories",
        &[("prefix", "320102"), ("level", "street")],
    )
    .await;
    assert_eq!(found["count"], 7);
    let found = ok(
        srv,
        "/territories",
        &[("level", "district"), ("limit", "3")],
    )
    .await;
    assert_eq!(found["count"], 3);

    bad(srv, "/territories/999999", &[], 404, "").await;
    bad(
        srv,
        "/territories/320102",
        &[("geometry", "maybe")],
        400,
        "geometry",
    )
    .await;
    bad(srv, "/territories", &[("level", "planet")], 400, "level").await;
    bad(srv, "/territories", &[("limit", "0")], 400, "limit").await;
    bad(srv, "/territories", &[("limit", "5000")], 400, "limit").await;
}

#[tokio::test]
async fn statistics_per_territory_add_up_and_filter() {
    let srv = server();
    let by_district = ok(srv, "/layers/pois/stats", &[("by", "district")]).await;
    let units = by_district["units"].as_array().unwrap();
    assert_eq!(units.len(), 11, "all eleven districts, zeros included");
    let total: u64 = units.iter().map(|u| u["count"].as_u64().unwrap()).sum();
    assert_eq!(by_district["total"], total);
    let city = ok(srv, "/layers/pois/stats", &[("by", "city")]).await;
    assert_eq!(city["total"], total);
    let grids = ok(srv, "/layers/pois/stats", &[]).await;
    assert_eq!(grids["by"], "grid");
    assert!(grids["units"].as_array().unwrap().len() > 5000);
    assert_eq!(grids["total"], total);

    // a filter and a time window narrow what is counted; a field is summed and averaged
    let hospitals = ok(
        srv,
        "/layers/pois/stats",
        &[("by", "district"), ("filter", "category = 'hospital'")],
    )
    .await;
    let items = ok(
        srv,
        "/collections/pois/items",
        &[("filter", "category = 'hospital'"), ("limit", "1")],
    )
    .await;
    assert_eq!(hospitals["total"], items["numberMatched"]);
    let heights = ok(
        srv,
        "/layers/buildings/stats",
        &[
            ("by", "street"),
            ("within", "320102"),
            ("field", "height"),
            ("datetime", "2010-01-01/.."),
        ],
    )
    .await;
    let streets = heights["units"].as_array().unwrap();
    assert_eq!(streets.len(), 7);
    for s in streets.iter().filter(|s| s["count"].as_u64().unwrap() > 0) {
        let (min, mean, max) = (
            s["min"].as_f64().unwrap(),
            s["mean"].as_f64().unwrap(),
            s["max"].as_f64().unwrap(),
        );
        assert!(min <= mean && mean <= max, "{s}");
        assert!((s["sum"].as_f64().unwrap() / s["count"].as_f64().unwrap() - mean).abs() < 0.01);
    }
    let all_years = ok(
        srv,
        "/layers/buildings/stats",
        &[("by", "street"), ("within", "320102")],
    )
    .await;
    assert!(heights["total"].as_u64().unwrap() < all_years["total"].as_u64().unwrap());

    let choropleth = ok(
        srv,
        "/layers/pois/stats",
        &[("by", "district"), ("f", "geojson")],
    )
    .await;
    assert_eq!(choropleth["type"], "FeatureCollection");
    let f = &choropleth["features"][0];
    assert_eq!(f["geometry"]["type"], "MultiPolygon");
    assert!(f["properties"]["count"].is_u64());
    assert!(f["properties"]["density_per_km2"].is_number());

    bad(srv, "/layers/pois/stats", &[("by", "planet")], 400, "by").await;
    bad(
        srv,
        "/layers/pois/stats",
        &[("field", "category")],
        400,
        "field",
    )
    .await;
    bad(
        srv,
        "/layers/pois/stats",
        &[("field", "nope")],
        404,
        "field",
    )
    .await;
    bad(srv, "/layers/pois/stats", &[("within", "1")], 404, "within").await;
    bad(srv, "/layers/pois/stats", &[("f", "xml")], 400, "f").await;
    bad(
        srv,
        "/layers/pois/stats",
        &[("datetime", "2020-01-01")],
        400,
        "datetime",
    )
    .await;
    bad(srv, "/layers/nowhere/stats", &[], 404, "").await;
}

#[tokio::test]
async fn cells_aggregate_for_heat_maps() {
    let srv = server();
    let all = ok(srv, "/layers/pois/stats", &[("by", "city")]).await["total"]
        .as_u64()
        .unwrap();
    let matched = ok(srv, "/collections/pois/items", &[("limit", "1")]).await["numberMatched"]
        .as_u64()
        .unwrap();
    let hex = ok(srv, "/layers/pois/cells", &[("h3", "7")]).await;
    let cells = hex["features"].as_array().unwrap();
    let counted: u64 = cells
        .iter()
        .map(|c| c["properties"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, matched);
    assert!(all <= matched);
    let ring = cells[0]["geometry"]["coordinates"][0].as_array().unwrap();
    assert_eq!(ring.len(), 7, "a hexagon, closed");
    assert_eq!(
        cells[0]["id"].as_str().unwrap().len(),
        15,
        "H3 index in hex"
    );

    let squares = ok(
        srv,
        "/layers/buildings/cells",
        &[
            ("size", "1000"),
            ("bbox", "118.70,32.00,118.90,32.10"),
            ("field", "height"),
        ],
    )
    .await;
    let s = &squares["features"][0];
    assert!(s["properties"]["mean"].as_f64().unwrap() > 0.0);
    let ring = s["geometry"]["coordinates"][0].as_array().unwrap();
    let (a, b) = (
        (ring[0][0].as_f64().unwrap(), ring[0][1].as_f64().unwrap()),
        (ring[1][0].as_f64().unwrap(), ring[1][1].as_f64().unwrap()),
    );
    let side = haversine(a, b);
    assert!(
        (side - 1000.0).abs() < 30.0,
        "a square about 1 km a side: {side}"
    );

    bad(srv, "/layers/pois/cells", &[], 400, "h3").await;
    bad(
        srv,
        "/layers/pois/cells",
        &[("h3", "7"), ("size", "100")],
        400,
        "h3",
    )
    .await;
    bad(srv, "/layers/pois/cells", &[("h3", "16")], 400, "h3").await;
    bad(srv, "/layers/pois/cells", &[("size", "1")], 400, "size").await;
}

#[tokio::test]
async fn nearest_within_and_intersects_agree_with_brute_force() {
    let srv = server();
    let pois = all_pois(srv).await;
    let mut by_distance: Vec<(f64, i64)> = pois
        .iter()
        .map(|p| (haversine(XJK, (p.1, p.2)), p.0))
        .collect();
    by_distance.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (lon, lat) = (XJK.0.to_string(), XJK.1.to_string());

    let near = ok(
        srv,
        "/layers/pois/nearest",
        &[("lon", &lon), ("lat", &lat), ("k", "5")],
    )
    .await;
    let got: Vec<(f64, i64)> = near["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["properties"]["distance_m"].as_f64().unwrap(),
                f["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        by_distance[..5].iter().map(|b| b.1).collect::<Vec<_>>()
    );
    for (g, b) in got.iter().zip(&by_distance) {
        assert!((g.0 - b.0).abs() < 1.0, "{g:?} vs {b:?}");
    }
    let schools = ok(
        srv,
        "/layers/pois/nearest",
        &[
            ("lon", &lon),
            ("lat", &lat),
            ("k", "3"),
            ("filter", "category = 'school'"),
        ],
    )
    .await;
    for f in schools["features"].as_array().unwrap() {
        assert_eq!(f["properties"]["category"], "school");
    }
    let capped = ok(
        srv,
        "/layers/pois/nearest",
        &[
            ("lon", &lon),
            ("lat", &lat),
            ("k", "1000"),
            ("max_distance", "500"),
        ],
    )
    .await;
    let within_500 = by_distance.iter().filter(|b| b.0 <= 500.0).count();
    assert_eq!(capped["features"].as_array().unwrap().len(), within_500);

    let around = ok(
        srv,
        "/layers/pois/within",
        &[("lon", &lon), ("lat", &lat), ("radius", "800")],
    )
    .await;
    let mut expect: Vec<i64> = by_distance
        .iter()
        .filter(|b| b.0 <= 800.0)
        .map(|b| b.1)
        .collect();
    let mut got = ids(&around);
    expect.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expect);
    let two = ok(
        srv,
        "/layers/pois/within",
        &[
            ("lon", &lon),
            ("lat", &lat),
            ("radius", "800"),
            ("limit", "2"),
        ],
    )
    .await;
    assert_eq!(two["truncated"], true);

    let square = json!({ "type": "Polygon", "coordinates": [[[118.78, 32.05], [118.80, 32.05], [118.80, 32.07], [118.78, 32.07], [118.78, 32.05]]] });
    let (status, inside) = post(srv, "/layers/pois/intersects", &square.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let mut expect: Vec<i64> = pois
        .iter()
        .filter(|p| (118.78..=118.80).contains(&p.1) && (32.05..=32.07).contains(&p.2))
        .map(|p| p.0)
        .collect();
    expect.sort_unstable();
    assert_eq!(ids(&inside), expect);
    let feature = json!({ "type": "Feature", "properties": {}, "geometry": square });
    let (_, again) = post(srv, "/layers/pois/intersects", &feature.to_string()).await;
    assert_eq!(ids(&again), expect);

    bad(
        srv,
        "/layers/pois/nearest",
        &[("lon", &lon), ("lat", &lat), ("k", "0")],
        400,
        "k",
    )
    .await;
    bad(
        srv,
        "/layers/pois/nearest",
        &[("lon", &lon), ("lat", &lat), ("k", "100000")],
        400,
        "k",
    )
    .await;
    bad(srv, "/layers/pois/nearest", &[("lon", &lon)], 400, "lat").await;
    bad(
        srv,
        "/layers/pois/nearest",
        &[("lon", &lon), ("lat", &lat), ("max_distance", "-1")],
        400,
        "max_distance",
    )
    .await;
    bad(
        srv,
        "/layers/pois/within",
        &[("lon", &lon), ("lat", &lat), ("radius", "1e9")],
        400,
        "radius",
    )
    .await;
    bad(
        srv,
        "/layers/pois/within",
        &[("lon", &lon), ("lat", &lat)],
        400,
        "radius",
    )
    .await;
    bad(
        srv,
        "/layers/nowhere/nearest",
        &[("lon", &lon), ("lat", &lat)],
        404,
        "",
    )
    .await;
    for body in [
        "not json",
        r#"{"type":"Polygon","coordinates":[[[1,2],[3]]]}"#,
        r#"{"type":"FeatureCollection","features":[]}"#,
        r#"{"type":"Point","coordinates":[500,32]}"#,
    ] {
        let (status, p) = post(srv, "/layers/pois/intersects", body).await;
        assert_eq!(
            (status.as_u16(), p["parameter"].as_str()),
            (400, Some("body")),
            "{body}: {p}"
        );
    }
}

#[tokio::test]
async fn ogc_api_features_landing_conformance_and_collections() {
    let srv = server();
    let landing: Value = client()
        .get(format!("{}/", srv.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rels: Vec<&str> = landing["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    for rel in ["self", "service-desc", "service-doc", "conformance", "data"] {
        assert!(rels.contains(&rel), "{rel} in {rels:?}");
    }
    assert_eq!(ok(srv, "/ogc", &[]).await["links"], landing["links"]);
    let conf = ok(srv, "/conformance", &[]).await;
    let classes: Vec<&str> = conf["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(classes.contains(&"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"));
    assert!(classes.contains(&"http://www.opengis.net/spec/cql2/1.0/conf/cql2-text"));

    let cols = ok(srv, "/collections", &[]).await;
    let names: Vec<&str> = cols["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for n in ["buildings", "pois", "grids", "districts", "roads"] {
        assert!(names.contains(&n), "{n}");
    }
    let b = ok(srv, "/collections/buildings", &[]).await;
    assert_eq!(b["itemType"], "feature");
    assert_eq!(
        b["extent"]["spatial"]["bbox"][0].as_array().unwrap().len(),
        4
    );
    assert!(
        b["extent"]["temporal"]["interval"][0][0]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let q = ok(srv, "/collections/buildings/queryables", &[]).await;
    assert_eq!(q["properties"]["height"]["type"], "integer");
    assert!(q["properties"]["geometry"].is_object());

    bad(srv, "/collections/nowhere", &[], 404, "").await;
    bad(srv, "/collections/nowhere/items", &[], 404, "").await;
    bad(srv, "/collections/nowhere/queryables", &[], 404, "").await;
    bad(srv, "/collections", &[("f", "html")], 400, "f").await;
    bad(srv, "/conformance", &[("x", "1")], 400, "x").await;
}

#[tokio::test]
async fn ogc_items_page_by_bbox_datetime_and_properties() {
    let srv = server();
    let first = ok(srv, "/collections/buildings/items", &[("limit", "5")]).await;
    assert_eq!(first["numberReturned"], 5);
    let next = first["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "next")
        .unwrap();
    let second: Value = client()
        .get(next["href"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["numberReturned"], 5);
    assert!(ids(&first).iter().all(|i| !ids(&second).contains(i)));
    assert_eq!(first["numberMatched"], second["numberMatched"]);

    // paging a filtered query: later pages stop early on the remembered count, same features
    let q = [
        ("filter", "use = 'education' AND height > 20"),
        ("limit", "7"),
    ];
    let mut page = ok(srv, "/collections/buildings/items", &q).await;
    let mut paged = ids(&page);
    for _ in 0..2 {
        let next = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .unwrap();
        let following: Value = client()
            .get(next["href"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(following["numberMatched"], page["numberMatched"]);
        paged.extend(ids(&following));
        page = following;
    }
    let whole = ok(
        srv,
        "/collections/buildings/items",
        &[q[0], ("limit", "21")],
    )
    .await;
    assert_eq!(paged, ids(&whole));

    let bbox = "118.78,32.04,118.80,32.06";
    let inside = ok(
        srv,
        "/collections/pois/items",
        &[("bbox", bbox), ("limit", "1000")],
    )
    .await;
    assert!(inside["numberReturned"].as_u64().unwrap() > 0);
    for f in inside["features"].as_array().unwrap() {
        let c = &f["geometry"]["coordinates"];
        let (x, y) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
        assert!((118.78..=118.80).contains(&x) && (32.04..=32.06).contains(&y));
    }
    let paged = ok(
        srv,
        "/collections/pois/items",
        &[("bbox", bbox), ("limit", "3"), ("offset", "3")],
    )
    .await;
    assert_eq!(
        ids(&paged),
        ids(&inside)[3..6].to_vec(),
        "pages of a bbox are stable"
    );

    let recent = ok(
        srv,
        "/collections/buildings/items",
        &[("datetime", "2020-01-01/.."), ("limit", "200")],
    )
    .await;
    for f in recent["features"].as_array().unwrap() {
        assert!(f["properties"]["year"].as_i64().unwrap() >= 2020);
    }
    let year = ok(
        srv,
        "/collections/buildings/items",
        &[("datetime", "2015-06-01"), ("limit", "200")],
    )
    .await;
    for f in year["features"].as_array().unwrap() {
        assert_eq!(f["properties"]["year"], 2015);
    }

    let some = ok(
        srv,
        "/collections/buildings/items",
        &[("properties", "height,use"), ("limit", "2")],
    )
    .await;
    let props = some["features"][0]["properties"].as_object().unwrap();
    assert_eq!(props.keys().collect::<Vec<_>>(), ["height", "use"]);

    let id = first["features"][0]["id"].as_i64().unwrap();
    let one = ok(srv, &format!("/collections/buildings/items/{id}"), &[]).await;
    assert_eq!(one["id"], id);
    assert_eq!(one["properties"], first["features"][0]["properties"]);
    bad(srv, "/collections/buildings/items/999999999", &[], 404, "").await;
    bad(srv, "/collections/buildings/items/abc", &[], 404, "").await;

    let items = "/collections/pois/items";
    bad(
        srv,
        items,
        &[("bbox", "118.8,32.1,118.7,32.0")],
        400,
        "bbox",
    )
    .await;
    bad(srv, items, &[("bbox", "1,2,3")], 400, "bbox").await;
    bad(srv, items, &[("bbox", "a,b,c,d")], 400, "bbox").await;
    bad(srv, items, &[("bbox", "-200,0,0,10")], 400, "bbox").await;
    bad(srv, items, &[("limit", "100000")], 400, "limit").await;
    bad(srv, items, &[("limit", "-1")], 400, "limit").await;
    bad(srv, items, &[("offset", "x")], 400, "offset").await;
    bad(srv, items, &[("datetime", "2020-01-01")], 400, "datetime").await;
    bad(
        srv,
        "/collections/buildings/items",
        &[("datetime", "2021/2020")],
        400,
        "datetime",
    )
    .await;
    bad(srv, items, &[("properties", "colour")], 400, "properties").await;
    bad(srv, items, &[("bbox-crs", "EPSG:3857")], 400, "bbox-crs").await;
    bad(
        srv,
        items,
        &[("filter-lang", "cql2-json")],
        400,
        "filter-lang",
    )
    .await;
    bad(srv, items, &[("sortby", "name")], 400, "sortby").await;
}

#[tokio::test]
async fn cql2_filters_select_what_they_say() {
    let srv = server();
    let items = |filter: &'static str| async move {
        ok(
            server(),
            "/collections/buildings/items",
            &[("filter", filter), ("limit", "500")],
        )
        .await
    };
    let check = |fc: &Value, what: &str, pred: &dyn Fn(&Value) -> bool| {
        let feats = fc["features"].as_array().unwrap();
        assert!(!feats.is_empty(), "{what} matched nothing");
        for f in feats {
            assert!(pred(f), "{what}: {f}");
        }
    };
    let p = |f: &Value, k: &str| f["properties"][k].clone();
    check(
        &items("height > 100 AND use = 'office'").await,
        "and",
        &|f| p(f, "height").as_f64().unwrap() > 100.0 && p(f, "use") == "office",
    );
    check(
        &items("use = 'education' OR use = 'public'").await,
        "or",
        &|f| p(f, "use") == "education" || p(f, "use") == "public",
    );
    check(
        &items("NOT use = 'residential' AND floors < 3").await,
        "not",
        &|f| p(f, "use") != "residential" && p(f, "floors").as_i64().unwrap() < 3,
    );
    check(&items("use LIKE 'resid%'").await, "like", &|f| {
        p(f, "use") == "residential"
    });
    check(&items("use IN ('education', 'office')").await, "in", &|f| {
        p(f, "use") == "education" || p(f, "use") == "office"
    });
    check(&items("floors BETWEEN 30 AND 32").await, "between", &|f| {
        (30..=32).contains(&p(f, "floors").as_i64().unwrap())
    });
    check(
        &items("use IS NOT NULL AND id < 50").await,
        "is null",
        &|f| f["id"].as_i64().unwrap() < 50,
    );
    check(
        &items("T_INTERSECTS(year, INTERVAL('2021-01-01', '2021-12-31'))").await,
        "t_intersects",
        &|f| p(f, "year") == 2021,
    );
    let in_box = |f: &Value| {
        f["geometry"]["coordinates"][0][0]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| {
                (118.78..=118.80).contains(&c[0].as_f64().unwrap())
                    && (32.04..=32.06).contains(&c[1].as_f64().unwrap())
            })
    };
    check(
        &items("S_INTERSECTS(geometry, POLYGON((118.78 32.04, 118.80 32.04, 118.80 32.06, 118.78 32.06, 118.78 32.04)))").await,
        "s_intersects",
        &|f| in_box(f),
    );
    check(
        &items("S_WITHIN(geometry, POLYGON((118.78 32.04, 118.80 32.04, 118.80 32.06, 118.78 32.06, 118.78 32.04))) AND height > 50").await,
        "s_within",
        &|f| in_box(f) && p(f, "height").as_f64().unwrap() > 50.0,
    );
    let near = items("S_DWITHIN(geometry, POINT(118.7969 32.0603), 300)").await;
    check(&near, "s_dwithin", &|f| {
        f["geometry"]["coordinates"][0][0]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| haversine(XJK, (c[0].as_f64().unwrap(), c[1].as_f64().unwrap())) < 400.0)
    });
    let all = ok(srv, "/collections/buildings/items", &[("limit", "1")]).await["numberMatched"]
        .as_u64()
        .unwrap();
    assert!(near["numberMatched"].as_u64().unwrap() < all / 10);

    let items_path = "/collections/buildings/items";
    let (_, p1) = get(srv, items_path, &[("filter", "colour = 'red'")]).await;
    assert_eq!(p1["parameter"], "filter");
    assert!(p1["detail"].as_str().unwrap().contains("colour"));
    bad(
        srv,
        items_path,
        &[("filter", "height > 'tall'")],
        400,
        "filter",
    )
    .await;
    bad(srv, items_path, &[("filter", "height >")], 400, "filter").await;
    bad(
        srv,
        items_path,
        &[("filter", "S_INTERSECTS(geometry, POLYGON((1 2, 3)))")],
        400,
        "filter",
    )
    .await;
    bad(
        srv,
        items_path,
        &[("filter", "S_INTERSECTS(geometry, POINT(500 32))")],
        400,
        "filter",
    )
    .await;
    bad(
        srv,
        items_path,
        &[("filter", "height + 1 > 3")],
        400,
        "filter",
    )
    .await;
    bad(
        srv,
        items_path,
        &[("filter-crs", "EPSG:3857"), ("filter", "id = 1")],
        400,
        "filter-crs",
    )
    .await;
}

#[tokio::test]
async fn gdal_reads_the_collections_and_sends_cql2_filters() {
    let srv = server();
    let url = format!("OAPIF:{}", srv.base);
    // GDAL signs in with the operator's key, as any client of the city would
    let headers = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        headers.path(),
        format!("Authorization: Bearer {}\n", common::OPERATOR),
    )
    .unwrap();
    let list = std::process::Command::new("ogrinfo")
        .args(["-ro", "-so", "-q", &url])
        .env("GDAL_HTTP_HEADER_FILE", headers.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    for layer in ["buildings", "pois", "grids"] {
        assert!(text.contains(&format!(": {layer} ")), "{layer} in {text}");
    }

    let filter = "category = 'hospital' AND name LIKE '%医院%'";
    let expected = ok(
        srv,
        "/collections/pois/items",
        &[("filter", filter), ("limit", "1")],
    )
    .await["numberMatched"]
        .as_u64()
        .unwrap();
    assert!(expected > 0);
    let out = std::process::Command::new("ogrinfo")
        .args(["-ro", "-al", "-geom=NO", &url, "pois", "-where", filter])
        .env("GDAL_HTTP_HEADER_FILE", headers.path())
        .env("CPL_DEBUG", "ON")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/collections/pois/items?limit=10&filter="),
        "GDAL evaluated the filter itself instead of sending it:\n{stderr}"
    );
    assert_eq!(stdout.matches("OGRFeature(pois)").count() as u64, expected);
    assert_eq!(
        stdout.matches("category (String) = hospital").count() as u64,
        expected
    );
}

/// GDAL's OGCAPI driver opens a collection's vector tiles through OGC API – Tiles (landing
/// links, the tileset list, the tileset, the WebMercatorQuad definition, the tile template)
/// and reads the same roads the XYZ tiles carry.
#[tokio::test]
async fn gdal_reads_a_collection_through_ogc_api_tiles() {
    use geozero::mvt::{Message, Tile};
    let srv = server();
    let conformance = ok(srv, "/conformance", &[]).await;
    for class in [
        "ogcapi-tiles-1/1.0/conf/core",
        "ogcapi-tiles-1/1.0/conf/tileset",
        "ogcapi-tiles-1/1.0/conf/mvt",
    ] {
        assert!(conformance.to_string().contains(class), "{class}");
    }
    let tms = ok(srv, "/tileMatrixSets/WebMercatorQuad", &[]).await;
    assert_eq!(tms["tileMatrices"].as_array().unwrap().len(), 25);
    assert_eq!(tms["tileMatrices"][14]["matrixWidth"], 16384);
    bad(srv, "/tileMatrixSets/WorldCRS84Quad", &[], 404, "").await;
    bad(srv, "/collections/roads/tiles/WorldCRS84Quad", &[], 404, "").await;
    bad(srv, "/collections/roads,pois/tiles", &[], 404, "").await;
    bad(
        srv,
        "/collections/roads/tiles/WebMercatorQuad/14/x/1",
        &[],
        400,
        "tileRow",
    )
    .await;
    let tileset = ok(srv, "/collections/roads/tiles/WebMercatorQuad", &[]).await;
    let (minzoom, maxzoom) = (
        tileset["minTileMatrix"]
            .as_str()
            .unwrap()
            .parse::<u8>()
            .unwrap(),
        tileset["maxTileMatrix"]
            .as_str()
            .unwrap()
            .parse::<u8>()
            .unwrap(),
    );
    // a box around 新街口 in EPSG:3857, the tile matrix set's CRS
    let (minx, miny, maxx, maxy) = (13_222_000.0, 3_768_000.0, 13_226_000.0, 3_771_500.0);
    let out = std::process::Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("server/tests/read_ogc_tiles.py"))
        .arg(format!("OGCAPI:{}/collections/roads", srv.base))
        .arg("Zoom level 14")
        .args([minx, miny, maxx, maxy].map(|v: f64| v.to_string()))
        .output()
        .expect("scripts/setup-python makes .venv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers: Vec<&str> = read["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (minzoom..=maxzoom)
        .map(|z| format!("Zoom level {z}"))
        .collect();
    assert_eq!(layers, expected, "one layer per tile matrix of the tileset");
    assert!(
        read["layers"][0]["fields"]
            .to_string()
            .contains("\"class\"")
    );
    let mut from_gdal: Vec<String> = read["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect();
    from_gdal.sort();
    from_gdal.dedup();
    assert!(!from_gdal.is_empty(), "GDAL read roads: {read}");
    // the same names the XYZ tiles over the box carry
    let span = 2.0 * citytwin_tiles::WEB_MERCATOR_MAX / f64::from(1u32 << 14);
    let cols = ((minx + citytwin_tiles::WEB_MERCATOR_MAX) / span).floor() as u32
        ..=((maxx + citytwin_tiles::WEB_MERCATOR_MAX) / span).floor() as u32;
    let rows = ((citytwin_tiles::WEB_MERCATOR_MAX - maxy) / span).floor() as u32
        ..=((citytwin_tiles::WEB_MERCATOR_MAX - miny) / span).floor() as u32;
    let mut from_xyz = Vec::new();
    let mut compared = false;
    for y in rows {
        for x in cols.clone() {
            let resp = client()
                .get(format!("{}/tiles/roads/14/{x}/{y}.mvt", srv.base))
                .send()
                .await
                .unwrap();
            if resp.status() != StatusCode::OK {
                continue;
            }
            let bytes = resp.bytes().await.unwrap();
            if !compared {
                // the same tile at the OGC path, byte for byte (row before column there)
                let ogc = client()
                    .get(format!(
                        "{}/collections/roads/tiles/WebMercatorQuad/14/{y}/{x}",
                        srv.base
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(ogc.status(), StatusCode::OK);
                assert_eq!(
                    ogc.headers()["content-type"],
                    "application/vnd.mapbox-vector-tile"
                );
                assert_eq!(ogc.bytes().await.unwrap(), bytes);
                compared = true;
            }
            let tile = Tile::decode(bytes).unwrap();
            for layer in &tile.layers {
                let Some(k) = layer.keys.iter().position(|k| k == "name") else {
                    continue;
                };
                for f in &layer.features {
                    for pair in f.tags.chunks(2) {
                        if pair[0] as usize == k
                            && let Some(v) = &layer.values[pair[1] as usize].string_value
                        {
                            from_xyz.push(v.clone());
                        }
                    }
                }
            }
        }
    }
    from_xyz.sort();
    from_xyz.dedup();
    assert!(compared, "no XYZ tile over the box to compare");
    assert_eq!(from_gdal, from_xyz);
}

#[tokio::test]
async fn openapi_describes_every_endpoint_and_the_docs_page_shows_them() {
    let srv = server();
    let doc = ok(srv, "/api", &[]).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let paths = doc["paths"].as_object().unwrap();
    let served = [
        "/",
        "/api",
        "/api/docs",
        "/catalog",
        "/catalog/{layer}",
        "/collections",
        "/collections/{collectionId}",
        "/collections/{collectionId}/items",
        "/collections/{collectionId}/items/{featureId}",
        "/collections/{collectionId}/queryables",
        "/conformance",
        "/grids/locate",
        "/health",
        "/layers/{layer}/cells",
        "/layers/{layer}/intersects",
        "/layers/{layer}/nearest",
        "/layers/{layer}/stats",
        "/layers/{layer}/within",
        "/metrics",
        "/ogc",
        "/styles",
        "/styles/{file}",
        "/territories",
        "/territories/{code}",
        "/territories/{code}/children",
        "/tiles/{layers}",
        "/tiles/{layers}/tilejson.json",
        "/tiles/{layers}/{z}/{x}/{y}",
        "/vendor/maplibre-gl/{file}",
        "/web/{file}",
        "/events",
        "/events/{id}",
        "/events/{id}/transitions",
        "/events/{id}/units",
        "/events/{id}/command",
        "/events/{id}/nearest-units",
        "/sensors",
        "/sensors/{id}",
        "/sensors/{id}/readings",
        "/readings",
        "/units",
        "/units/{id}",
        "/units/{id}/position",
        "/units/{id}/status",
        "/live",
        "/live/sse",
        "/live/changes",
        "/live/state",
        "/render/{file}",
        "/dashboards",
        "/dashboards/{file}",
        "/dashboards/{id}/stream",
        "/screen/{id}",
        "/me",
        "/auth/config",
        "/audit",
        "/admin/keys",
        "/admin/keys/{id}/revoke",
        "/admin/revocations",
        "/catalog/{layer}/quality",
        "/layers/{layer}/versions",
        "/layers/{layer}/diff",
        "/grants",
        "/grants/{id}",
        "/grants/{id}/approve",
        "/grants/{id}/refuse",
        "/grants/{id}/revoke",
        "/objections",
        "/objections/{id}",
        "/objections/{id}/decision",
        "/live/tickets",
        "/vendor/oidc-client-ts/{file}",
        "/reports/{receipt}",
        "/fonts",
        "/fonts/{fontstack}/{range}",
        "/sprites/{file}",
        "/tileMatrixSets",
        "/tileMatrixSets/{tileMatrixSetId}",
        "/collections/{collectionId}/tiles",
        "/collections/{collectionId}/tiles/{tileMatrixSetId}",
        "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
        "/v1.1",
        "/v1.1/{path}",
    ];
    for p in served {
        assert!(paths.contains_key(p), "{p} missing from /api");
        // and every documented path answers something other than "no route"
        let concrete = p
            .replace("{layer}", "pois")
            .replace("{collectionId}", "pois")
            .replace("{featureId}", "1")
            .replace("{code}", "320102")
            .replace("{layers}", "pois")
            .replace("{file}", "index.html")
            .replace("{z}/{x}/{y}", "14/13598/6650.mvt")
            .replace("{tileMatrixSetId}", "WebMercatorQuad")
            .replace("{tileMatrix}/{tileRow}/{tileCol}", "14/6650/13598")
            .replace("{fontstack}/{range}", "WenQuanYi%20Micro%20Hei/0-255.pbf")
            .replace("{path}", "Things")
            .replace("{id}", "1");
        let resp = client()
            .get(format!("{}{concrete}", srv.base))
            .send()
            .await
            .unwrap();
        if p == "/live/sse" {
            // an endless stream: its headers are the answer
            assert_eq!(resp.status().as_u16(), 200);
            continue;
        }
        let body = resp.text().await.unwrap();
        assert!(!body.contains("\"no resource at"), "{concrete}: {body}");
    }
    assert_eq!(
        paths.len(),
        served.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(paths["/grids/locate"]["post"].is_object());
    let docs = client()
        .get(format!("{}/api/docs", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.headers()["content-type"], "text/html; charset=utf-8");
    let html = docs.text().await.unwrap();
    for p in served {
        assert!(
            html.contains(&format!("<code>{}</code>", p.replace('&', "&amp;"))),
            "{p} missing from the docs page"
        );
    }
    let browser = client()
        .get(format!("{}/api", srv.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(browser.text().await.unwrap().starts_with("<!doctype html>"));
}

#[tokio::test]
async fn the_postgis_store_answers_the_same() {
    let (gpkg, pg) = (server(), common::server_on(common::Backend::Postgis));
    let (lon, lat) = (XJK.0.to_string(), XJK.1.to_string());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        ("/grids/locate", vec![("lon", &lon), ("lat", &lat)], "grid"),
        (
            "/layers/buildings/stats",
            vec![("by", "district"), ("field", "height")],
            "units",
        ),
        (
            "/collections/buildings/items",
            vec![
                (
                    "filter",
                    "height > 60 AND S_DWITHIN(geometry, POINT(118.7969 32.0603), 2000)",
                ),
                ("limit", "20"),
            ],
            "numberMatched",
        ),
        (
            "/layers/pois/nearest",
            vec![("lon", &lon), ("lat", &lat), ("k", "5")],
            "features",
        ),
    ];
    for (path, query, key) in cases {
        let a = ok(gpkg, path, &query).await;
        let b = ok(pg, path, &query).await;
        assert_eq!(a[key], b[key], "{path} differs between the stores");
    }
}

/// Codes and heights (in decimetres) of the demo's buildings in each of its versions, from the
/// fixture the demo derives them from.
fn demo_versions() -> [std::collections::BTreeMap<String, i64>; 2] {
    let text =
        std::fs::read_to_string(common::repo().join("fixtures/nanjing/buildings.geojson")).unwrap();
    citytwin::demo::building_versions(&text)
        .unwrap()
        .map(|body| {
            let fc: Value = serde_json::from_str(&body).unwrap();
            fc["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let p = &f["properties"];
                    (
                        p["code"].as_str().unwrap().to_owned(),
                        decimetres(&p["height"]),
                    )
                })
                .collect()
        })
}

fn decimetres(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 10.0).round() as i64
}

/// One building by code as of a date (`None` when it did not stand then): its row id and
/// height in decimetres.
async fn building(srv: &TestServer, code: &str, at: &str) -> Option<(i64, i64)> {
    let filter = format!("code = '{code}'");
    let mut q = vec![("filter", filter.as_str())];
    if !at.is_empty() {
        q.push(("at", at));
    }
    let fc = ok(srv, "/collections/buildings/items", &q).await;
    let f = fc["features"].as_array().unwrap().first()?;
    Some((
        f["id"].as_i64().unwrap(),
        decimetres(&f["properties"]["height"]),
    ))
}

/// The demo's buildings in 2020 and 2025, read as of dates before, between and after on both
/// stores: versions, items (and OGC `datetime`), tiles and TileJSON, statistics, nearest, the
/// diff listed and counted per territory unit, a static map; bad dates refused.
async fn the_city_as_of_any_date(srv: &TestServer) {
    let [then, now] = demo_versions();
    let v = ok(srv, "/layers/buildings/versions", &[]).await;
    assert_eq!(v["key"], "code");
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{v}");
    assert_eq!(versions[0]["date"], "2020-01-01");
    assert_eq!(versions[0]["features"], then.len());
    assert_eq!(versions[1]["features"], now.len());
    let added = now.keys().filter(|c| !then.contains_key(*c)).count();
    let removed = then.keys().filter(|c| !now.contains_key(*c)).count();
    let changed = now
        .iter()
        .filter(|(c, h)| then.get(*c).is_some_and(|t| t != *h))
        .count();
    assert_eq!(
        (
            &versions[1]["added"],
            &versions[1]["removed"],
            &versions[1]["changed"]
        ),
        (&json!(added), &json!(removed), &json!(changed))
    );
    // the catalogue lists them too
    let cat = ok(srv, "/catalog/buildings", &[]).await;
    assert_eq!(cat["versions"].as_array().unwrap().len(), 2, "{cat}");

    // items: counts per date, one of each kind of change
    for (at, n) in [
        ("2019-12-31", 0),
        ("2020-06-01", then.len()),
        ("2024-12-31", then.len()),
        ("2025-01-01", now.len()),
        ("", now.len()),
    ] {
        let q: Vec<(&str, &str)> = [("limit", "1")]
            .into_iter()
            .chain((!at.is_empty()).then_some(("at", at)))
            .collect();
        let fc = ok(srv, "/collections/buildings/items", &q).await;
        assert_eq!(fc["numberMatched"], n, "at {at:?}");
    }
    let new_code = now.keys().find(|c| !then.contains_key(*c)).unwrap();
    let gone_code = then.keys().find(|c| !now.contains_key(*c)).unwrap();
    let (raised, old_height) = then
        .iter()
        .find(|(c, h)| now.get(*c).is_some_and(|n| n != *h))
        .unwrap();
    assert_eq!(building(srv, new_code, "2020-06-01").await, None);
    let (new_id, _) = building(srv, new_code, "").await.unwrap();
    let (gone_id, _) = building(srv, gone_code, "2020-06-01").await.unwrap();
    assert_eq!(building(srv, gone_code, "").await, None);
    assert_eq!(
        building(srv, raised, "2020-06-01").await.unwrap().1,
        *old_height
    );
    assert_eq!(building(srv, raised, "").await.unwrap().1, now[raised]);
    // OGC API's datetime names the version of a layer without its own time field; buildings
    // have one (year built), so there it filters by year as before
    let fc = ok(
        srv,
        "/collections/buildings/items",
        &[("datetime", "2023-01-01/2023-12-31"), ("limit", "1")],
    )
    .await;
    assert!(fc["numberMatched"].as_u64().unwrap() > 0);

    // tiles: at full detail (z14) the gone building is in 2020's tile only, the new one in
    // today's only; the TileJSON's tile URLs carry the date
    let tile_ids = |lonlat: (f64, f64), at: &'static str| {
        let url = {
            let (x, y) = citytwin_tiles::proj::lonlat_to_mercator(lonlat.0, lonlat.1);
            let c = citytwin_tiles::TileCoord::containing(x, y, 14);
            format!(
                "{}/tiles/buildings/14/{}/{}.mvt?at={at}",
                srv.base, c.x, c.y
            )
        };
        async move {
            let bytes = client()
                .get(url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            use geozero::mvt::Message;
            geozero::mvt::Tile::decode(bytes.as_ref())
                .unwrap()
                .layers
                .iter()
                .flat_map(|l| l.features.iter().map(|f| f.id.unwrap() as i64))
                .collect::<Vec<i64>>()
        }
    };
    let centre = |id: i64, at: &str| {
        let url = format!("/collections/buildings/items/{id}");
        let at = at.to_owned();
        async move {
            let f = ok(srv, &url, &[("at", at.as_str())]).await;
            let ring = &f["geometry"]["coordinates"][0][0];
            (ring[0][0].as_f64().unwrap(), ring[0][1].as_f64().unwrap())
        }
    };
    let new_at = centre(new_id, "").await;
    let gone_at = centre(gone_id, "2020-06-01").await;
    assert!(tile_ids(new_at, "").await.contains(&new_id));
    assert!(!tile_ids(new_at, "2020-06-01").await.contains(&new_id));
    assert!(tile_ids(gone_at, "2020-06-01").await.contains(&gone_id));
    assert!(!tile_ids(gone_at, "").await.contains(&gone_id));
    let tj = ok(srv, "/tiles/buildings", &[("at", "2020-06-01")]).await;
    assert!(
        tj["tiles"][0].as_str().unwrap().ends_with("?at=2020-06-01"),
        "{tj}"
    );

    // a static map of the new building's block: drawn differently as of 2020
    let render = |at: &'static str| {
        let url = format!(
            "{}/render/nanjing.png?center={},{}&zoom=17&width=256&height=256&pitch=0&at={at}",
            srv.base, new_at.0, new_at.1
        );
        async move {
            let resp = client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.bytes().await.unwrap()
        }
    };
    assert_ne!(render("2020-06-01").await, render("").await);
    assert_eq!(render("2025-06-01").await, render("").await);

    // nearest: at 2020 the gone building stands where it stood
    let (lon, lat) = (gone_at.0.to_string(), gone_at.1.to_string());
    let near = |at: &'static str| {
        let (lon, lat) = (lon.clone(), lat.clone());
        async move {
            let fc = ok(
                srv,
                "/layers/buildings/nearest",
                &[("lon", &lon), ("lat", &lat), ("k", "1"), ("at", at)],
            )
            .await;
            ids(&fc)
        }
    };
    assert_eq!(near("2020-06-01").await, [gone_id]);
    assert_ne!(near("2025-06-01").await, [gone_id]);

    // statistics as of each date, and the diff counted per district, agree
    let total = |at: &'static str| async move {
        ok(
            srv,
            "/layers/buildings/stats",
            &[("by", "district"), ("at", at)],
        )
        .await["total"]
            .as_i64()
            .unwrap()
    };
    let (t2020, t2025) = (total("2020-06-01").await, total("2025-06-01").await);
    let per = ok(
        srv,
        "/layers/buildings/diff",
        &[
            ("from", "2020-06-01"),
            ("to", "2025-06-01"),
            ("by", "district"),
        ],
    )
    .await;
    let sum = |k: &str| {
        per["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u[k].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(sum("added") - sum("removed"), t2025 - t2020, "{per}");
    assert_eq!(per["totals"]["added"], added);
    // new buildings per street since 2020, inside one district
    let streets = ok(
        srv,
        "/layers/buildings/diff",
        &[
            ("from", "2020-01-01"),
            ("to", "2025-01-01"),
            ("by", "street"),
            ("within", "320102"),
            ("change", "added"),
        ],
    )
    .await;
    let units = streets["units"].as_array().unwrap();
    assert!(!units.is_empty());
    for u in units {
        assert!(u["code"].as_str().unwrap().starts_with("320102"), "{u}");
        assert_eq!(u["removed"], 0);
    }
    // the diff listed: the raised building with the fields that changed
    let listed = ok(
        srv,
        "/layers/buildings/diff",
        &[
            ("from", "2020-06-01"),
            ("to", "2025-06-01"),
            ("change", "changed"),
            ("limit", "10000"),
        ],
    )
    .await;
    assert_eq!(listed["numberMatched"], changed);
    let f = listed["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["code"] == raised.as_str())
        .unwrap();
    assert_eq!(f["properties"]["change"], "changed");
    assert!(
        f["properties"]["changed_fields"]
            .as_str()
            .unwrap()
            .contains("height"),
        "{f}"
    );

    // bad dates and diffs are problems naming the parameter
    bad(
        srv,
        "/collections/buildings/items",
        &[("at", "2020-13-45")],
        400,
        "at",
    )
    .await;
    bad(srv, "/tiles/buildings", &[("at", "yesterday")], 400, "at").await;
    bad(
        srv,
        "/layers/buildings/diff",
        &[("to", "2025-01-01")],
        400,
        "from",
    )
    .await;
    bad(
        srv,
        "/layers/buildings/diff",
        &[("from", "2025-01-01"), ("to", "2020-01-01")],
        400,
        "",
    )
    .await;
    bad(
        srv,
        "/layers/roads/diff",
        &[("from", "2020-01-01"), ("to", "2025-01-01")],
        400,
        "",
    )
    .await;
    bad(
        srv,
        "/layers/buildings/diff",
        &[
            ("from", "2020-01-01"),
            ("to", "2025-01-01"),
            ("change", "moved"),
        ],
        400,
        "change",
    )
    .await;
    bad(srv, "/layers/nowhere/versions", &[], 404, "").await;
}

#[tokio::test]
async fn the_city_as_of_any_date_on_the_geopackage() {
    the_city_as_of_any_date(server()).await;
}

#[tokio::test]
async fn the_city_as_of_any_date_on_postgis() {
    the_city_as_of_any_date(common::server_on(common::Backend::Postgis)).await;
}

/// The viewer's date slider moves the buildings between their versions, in headless Chromium.
#[tokio::test]
async fn the_viewer_slider_moves_between_versions() {
    let base = server().base.clone();
    let shot = common::repo().join("target/test-artifacts/viewer-2020.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(common::repo().join("web/tests/versions.mjs"))
        .arg(&base)
        .arg(common::OPERATOR)
        .arg(&shot)
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "slider test failed:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(
        report["dates"],
        json!(["2020-01-01", "2025-01-01"]),
        "{report}"
    );
    assert!(
        report["then"]["buildings"].as_u64().unwrap() > 0,
        "{report}"
    );
}
