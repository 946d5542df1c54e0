#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! The HTTP surface against a real demo store: tiles, TileJSON, catalogue, styles, viewer,
//! operations, and every kind of bad request.

mod common;

use common::{Backend, METRICS, TestServer, client, client_with, repo, server, server_on};
use geozero::mvt::{Message, Tile};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Read;
use std::sync::Arc;

/// z14 tile over Xinjiekou, the densest part of the city.
const CENTRE: (u32, u32, u32) = (14, 13598, 6650);

fn tile_url(srv: &TestServer, layers: &str, (z, x, y): (u32, u32, u32)) -> String {
    format!("{}/tiles/{layers}/{z}/{x}/{y}.mvt", srv.base)
}

/// Runs each named test against a demo server on the GeoPackage and one on PostGIS.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod geopackage {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::server_on(super::Backend::GeoPackage)).await;
            })*
        }
        mod postgis {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::server_on(super::Backend::Postgis)).await;
            })*
        }
    };
}

on_both_stores!(
    tiles_are_mvt_with_the_layers_asked_for,
    gzip_etag_not_modified_and_cors,
    tiles_outside_the_data_or_zoom_range_are_empty,
    bad_tile_requests_are_400_problems_naming_the_parameter,
    tilejson_describes_layers_and_composites_for_the_asking_host,
    catalogue_lists_every_layer_with_its_metadata,
    health_and_metrics,
    low_zoom_tiles_stay_inside_the_budget,
    cache_follows_layer_changes,
    sensorthings_observations_come_from_either_store,
);

/// SensorThings Observations are the store's readings, on both stores (their SQL differs by
/// dialect): one Datastream's, filtered and counted, and all of them.
async fn sensorthings_observations_come_from_either_store(srv: &TestServer) {
    let id = if srv.base.contains(&server_on(Backend::GeoPackage).base) {
        "STA-G"
    } else {
        "STA-P"
    };
    let post = |path: String, body: Value| {
        client()
            .post(format!("{}{path}", srv.base))
            .json(&body)
            .send()
    };
    let s = post("/sensors".into(), serde_json::json!({ "id": id, "type": "rainfall", "lon": 118.7969, "lat": 32.0603, "unit": "mm/h" })).await.unwrap();
    assert_eq!(s.status(), StatusCode::CREATED);
    let t0 = citytwin_city::live::ts::now() - 3_600_000;
    let readings: Vec<Value> = (0..5)
        .map(|i| serde_json::json!({ "sensor": id, "value": f64::from(i), "at": citytwin_city::live::ts::format(t0 + i64::from(i) * 60_000) }))
        .collect();
    let r = post(
        "/readings".into(),
        serde_json::json!({ "readings": readings }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let one = get_json(format!(
        "{}/v1.1/Datastreams('{id}')/Observations?$filter=result gt 1 and phenomenonTime ge {}&$orderby=result desc&$count=true",
        srv.base,
        citytwin_city::live::ts::format(t0)
    ))
    .await;
    let results: Vec<f64> = one["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["result"].as_f64().unwrap())
        .collect();
    assert_eq!(results, vec![4.0, 3.0, 2.0], "{one}");
    assert_eq!(one["@iot.count"], 3);
    let all = get_json(format!(
        "{}/v1.1/Observations?$filter=result ge 4&$top=10000",
        srv.base
    ))
    .await;
    let first = &all["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["result"] == 4.0)
        .cloned()
        .unwrap_or(Value::Null);
    let seq = first["@iot.id"].as_u64().unwrap();
    let back = get_json(format!("{}/v1.1/Observations({seq})/Datastream", srv.base)).await;
    assert!(back["@iot.id"].as_str().is_some(), "{back}");
}

async fn get_json<U: reqwest::IntoUrl>(url: U) -> Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn problem(url: &str) -> (StatusCode, Value) {
    let resp = client().get(url).send().await.unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "{url} answered {status} without problem+json"
    );
    (status, resp.json().await.unwrap())
}

async fn tiles_are_mvt_with_the_layers_asked_for(srv: &'static TestServer) {
    let resp = client()
        .get(tile_url(srv, "buildings", CENTRE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.mapbox-vector-tile"
    );
    let tile = Tile::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(tile.layers.len(), 1);
    let layer = &tile.layers[0];
    assert_eq!(layer.name, "buildings");
    assert_eq!(layer.extent, Some(4096));
    assert!(
        layer.features.len() > 100,
        "{} buildings",
        layer.features.len()
    );
    for key in ["use", "height", "floors", "year"] {
        assert!(layer.keys.iter().any(|k| k == key), "missing {key}");
    }
    let resp = client()
        .get(tile_url(srv, "districts,roads,buildings", CENTRE))
        .send()
        .await
        .unwrap();
    let tile = Tile::decode(resp.bytes().await.unwrap()).unwrap();
    let names: Vec<&str> = tile.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["districts", "roads", "buildings"]);
    // .pbf is accepted as well
    let resp = client()
        .get(tile_url(srv, "buildings", CENTRE).replace(".mvt", ".pbf"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn gzip_etag_not_modified_and_cors(srv: &'static TestServer) {
    let url = tile_url(srv, "buildings,pois", CENTRE);
    let plain = client().get(&url).send().await.unwrap();
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();
    let resp = client()
        .get(&url)
        .header("accept-encoding", "gzip, deflate")
        .header("origin", "http://example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    // reads are open to pages of any origin (the origin is named back, as writes are not)
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://example.org"
    );
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    let gz = resp.bytes().await.unwrap();
    assert!(gz.len() < plain.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);
    let resp = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client()
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // a CORS preflight
    let resp = client()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://example.org")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://example.org"
    );
}

async fn tiles_outside_the_data_or_zoom_range_are_empty(srv: &'static TestServer) {
    // the middle of the Pacific
    let resp = client()
        .get(tile_url(srv, "buildings", (10, 10, 400)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    // buildings start at z10
    let resp = client()
        .get(tile_url(srv, "buildings", (8, 212, 104)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // overzoom past the layer's maxzoom still carries the features
    let resp = client()
        .get(tile_url(
            srv,
            "buildings",
            (17, 13598 * 8 + 4, 6650 * 8 + 4),
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

async fn bad_tile_requests_are_400_problems_naming_the_parameter(srv: &'static TestServer) {
    let base = &srv.base;
    for (path, param) in [
        ("/tiles/buildings/3/8/1.mvt", "z/x/y"),
        ("/tiles/buildings/3/1/9.mvt", "z/x/y"),
        ("/tiles/buildings/25/0/0.mvt", "z/x/y"),
        ("/tiles/buildings/a/0/0.mvt", "z"),
        ("/tiles/buildings/1/-1/0.mvt", "x"),
        ("/tiles/buildings/1/0/0.png", "y"),
        ("/tiles/buildings,buildings/1/0/0.mvt", "layers"),
        ("/styles/..%2Fsecret", "style"),
    ] {
        let (status, body) = problem(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["parameter"], param, "{path}: {body}");
        assert_eq!(body["status"], 400);
        assert!(
            body["detail"].as_str().unwrap().len() > 10,
            "{path}: {body}"
        );
    }
    for path in ["/nothing/here", "/catalog/nosuch", "/styles/nosuch.json"] {
        let (status, body) = problem(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    // a layer that does not exist is not found, and the problem names the parameter
    for path in [
        "/tiles/nosuch/1/0/0.mvt",
        "/tiles/buildings,nosuch/1/0/0.mvt",
        "/tiles/nosuch",
    ] {
        let (status, body) = problem(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["parameter"], "layers", "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("nosuch"),
            "{body}"
        );
    }
}

async fn tilejson_describes_layers_and_composites_for_the_asking_host(srv: &'static TestServer) {
    let base = &srv.base;
    let resp = client()
        .get(format!("{base}/tiles/districts,buildings"))
        .header("host", "maps.example.org:8443")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let tj: Value = resp.json().await.unwrap();
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(
        tj["tiles"][0],
        "https://maps.example.org:8443/tiles/districts,buildings/{z}/{x}/{y}.mvt"
    );
    assert_eq!(tj["minzoom"], 0);
    assert_eq!(tj["maxzoom"], 14);
    let layers = tj["vector_layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[1]["id"], "buildings");
    assert_eq!(layers[1]["fields"]["height"], "Number");
    assert_eq!(layers[1]["fields"]["use"], "String");
    assert_eq!(layers[1]["minzoom"], 10);
    let b = tj["bounds"].as_array().unwrap();
    assert!(b[0].as_f64().unwrap() > 118.3 && b[2].as_f64().unwrap() < 119.3);
    let tj: Value = get_json(format!("{base}/tiles/grids/tilejson.json")).await;
    assert_eq!(tj["vector_layers"][0]["id"], "grids");
    assert!(tj["tiles"][0].as_str().unwrap().starts_with(base));
}

async fn catalogue_lists_every_layer_with_its_metadata(srv: &'static TestServer) {
    let cat: Value = client()
        .get(format!("{}/catalog", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let layers = cat["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    for want in [
        "city",
        "districts",
        "streets",
        "communities",
        "grids",
        "jiangbei",
        "buildings",
        "roads",
        "water",
        "pois",
        "events",
        "sensors",
        "units",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // level-3 components belong to urban management: the operations centre gets them only
    // as aggregates; its own level-3 hotline it reads as it is
    let form = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap()["form"].clone();
    assert_eq!(form("components"), "aggregate", "{names:?}");
    assert_eq!(form("hotline"), "raw");
    assert_eq!(form("buildings"), "raw");
    let buildings = layers.iter().find(|l| l["name"] == "buildings").unwrap();
    assert_eq!(buildings["owner"], "planning");
    assert_eq!(buildings["share"], "unconditional");
    assert_eq!(buildings["open"], "conditional");
    assert_eq!(buildings["level"], 2);
    let grids = layers.iter().find(|l| l["name"] == "grids").unwrap();
    assert!(grids["feature_count"].as_u64().unwrap() > 9000);
    assert_eq!(grids["geometry_type"], "Polygon");
    assert!(
        grids["acquired"].is_string()
            && grids["updated_at"].is_string()
            && grids["source"].is_string()
    );
    assert_eq!(grids["fields"][0]["name"], "code");
    let one: Value = client()
        .get(format!("{}/catalog/districts", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["feature_count"], 11);
}

/// Every style in `styles/`, as served, passes MapLibre's own validator.
#[tokio::test]
async fn styles_are_served_absolute_and_pass_the_maplibre_validator() {
    let base = &server().base;
    let list: Value = get_json(format!("{base}/styles")).await;
    let styles = list["styles"].as_array().unwrap();
    let on_disk = std::fs::read_dir(repo().join("styles"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(styles.len(), on_disk);
    let validator = repo().join("web/node_modules/.bin/gl-style-validate");
    assert!(
        validator.exists(),
        "run scripts/setup-test-deps to install the style validator"
    );
    let dir = tempfile::tempdir().unwrap();
    for s in styles {
        let style: Value = get_json(s["url"].as_str().unwrap()).await;
        for (name, source) in style["sources"].as_object().unwrap() {
            let url = source["url"].as_str().unwrap();
            assert!(url.starts_with(base), "source {name}: {url}");
            let tj = client().get(url).send().await.unwrap();
            assert_eq!(tj.status(), StatusCode::OK, "source {name} points at {url}");
        }
        let path = dir
            .path()
            .join(format!("{}.json", s["id"].as_str().unwrap()));
        std::fs::write(&path, serde_json::to_vec_pretty(&style).unwrap()).unwrap();
        let out = std::process::Command::new(&validator)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "style {} is invalid: {}{}",
            s["id"],
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn health_and_metrics(srv: &'static TestServer) {
    let base = &srv.base;
    let h: Value = get_json(format!("{base}/health")).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["store"]["status"], "up");
    assert!(h["layers"].as_u64().unwrap() >= 11);
    // a tile with something in it, twice: a 200 and a cache hit of this test's own
    for _ in 0..2 {
        let r = client()
            .get(tile_url(srv, "districts", CENTRE))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // metrics are for system admins
    let refused = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let resp = client_with(METRICS)
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("citytwin_tile_requests_total{cache=\"hit\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "citytwin_http_requests_total{route=\"/tiles/{layers}/{z}/{x}/{y}\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("citytwin_indexed_features"), "{text}");
}

/// At low zoom the whole centre's buildings must not make a giant tile.
async fn low_zoom_tiles_stay_inside_the_budget(srv: &'static TestServer) {
    let budget = srv.state.settings.tile_max_bytes;
    for (z, x, y) in [(10, 849, 415), (11, 1699, 831), (12, 3399, 1662)] {
        let resp = client()
            .get(tile_url(srv, "buildings", (z, x, y)))
            .send()
            .await
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.len() <= budget, "z{z}: {} bytes", bytes.len());
        let tile = Tile::decode(bytes).unwrap();
        assert!(
            !tile.layers[0].features.is_empty(),
            "z{z} lost every building"
        );
    }
    let text = client_with(METRICS)
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let thinned: f64 = text
        .lines()
        .find(|l| l.starts_with("citytwin_tile_features_thinned_total"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(thinned > 0.0);
}

/// A layer changed by an import is fresh on the very next request, cache or not.
async fn cache_follows_layer_changes(srv: &'static TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lon: f64| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!(r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{"v":1}},"geometry":{{"type":"Point","coordinates":[{lon},32.0603]}}}}]}}"#)).unwrap();
        p
    };
    let import = |path: std::path::PathBuf| {
        let city = Arc::clone(&srv.state.city);
        srv.handle.spawn(async move {
            let mut req = citytwin_city::import::ImportRequest::new(path, "scratch");
            req.minzoom = Some(0);
            req.classification = Some(citytwin_city::catalog::Classification::new(
                "ops",
                citytwin_city::catalog::ShareClass::Unconditional,
                citytwin_city::catalog::OpenClass::Unconditional,
                1,
            ));
            city.import(req, Arc::new(citytwin_city::import::NoProgress))
                .await
                .unwrap()
        })
    };
    import(write("a.geojson", 118.7969)).await.unwrap();
    let url = tile_url(srv, "scratch", CENTRE);
    let first = client().get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first_tag = first.headers()["etag"].clone();
    let again = client().get(&url).send().await.unwrap();
    assert_eq!(again.headers()["etag"], first_tag);
    // move the point out of the tile
    import(write("b.geojson", 119.1)).await.unwrap();
    let after = client().get(&url).send().await.unwrap();
    assert_eq!(
        after.status(),
        StatusCode::NO_CONTENT,
        "stale tile after the layer changed"
    );
}

/// Runs a browser test of `web/tests/{script}.mjs` against `base`: its last line of output
/// as JSON, and the screenshot it saved.
async fn in_chromium(script: &str, base: &str) -> (Value, std::path::PathBuf) {
    let shot = repo().join(format!("target/test-artifacts/{script}.png"));
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(repo().join(format!("web/tests/{script}.mjs")))
        .arg(base)
        .arg(&shot)
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} test failed:\n{stdout}\n{stderr}"
    );
    let report = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    (report, shot)
}

/// The viewer in headless Chromium with no Chinese font of the machine within reach draws
/// Chinese and Latin labels through citytwin's glyph PBFs and the POI icons through its
/// sprite, with no icon missing.
#[tokio::test]
async fn labels_and_icons_come_from_citytwins_own_glyphs_and_sprite() {
    let base = server().base.clone();
    let (report, shot) = in_chromium("symbols", &base).await;
    assert!(
        report["report"]["chinese"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(report["report"]["pois"].as_u64().unwrap() > 0, "{report}");
    // the glyphs and the sprite were citytwin's, and the same ranges answer directly
    let glyph = report["fetched"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .find(|p| p.starts_with("/fonts/"))
        .unwrap()
        .to_owned();
    let resp = client().get(format!("{base}{glyph}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

/// Glyph ranges and sprites answer as MapLibre asks, and bad requests say what is wrong.
#[tokio::test]
async fn glyphs_and_sprites_are_served_and_bad_requests_named() {
    let base = server().base.clone();
    let get = |path: &str| client().get(format!("{base}{path}")).send();
    let fonts: Value = get("/fonts").await.unwrap().json().await.unwrap();
    assert_eq!(fonts["fonts"][0]["family"], "WenQuanYi Micro Hei");
    // an unknown font of a stack is passed over; a stack of none is not found
    let ok = get("/fonts/Noto%20Sans%20Regular,WenQuanYi%20Micro%20Hei/0-255.pbf")
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.bytes().await.unwrap().len() > 10_000);
    for (path, status) in [
        ("/fonts/Nobody%20Sans/0-255.pbf", 404),
        ("/fonts/WenQuanYi%20Micro%20Hei/0-256.pbf", 400),
        ("/fonts/WenQuanYi%20Micro%20Hei/1-256.pbf", 400),
        ("/fonts/WenQuanYi%20Micro%20Hei/0-255.png", 400),
        ("/sprites/nothing.json", 404),
        ("/sprites/..%2Fstyles.json", 404),
        ("/sprites/citytwin.svg", 404),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
    for (file, ratio) in [("citytwin.json", 1), ("citytwin@2x.json", 2)] {
        let index: Value = get(&format!("/sprites/{file}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for icon in [
            "poi-hospital",
            "event-waterlogging-open",
            "sensor-gas-alarm",
            "unit-pump-busy",
        ] {
            assert_eq!(index[icon]["pixelRatio"], ratio, "{icon} in {file}");
            assert_eq!(index[icon]["width"], 24 * ratio, "{icon} in {file}");
        }
    }
    let png = get("/sprites/citytwin@2x.png").await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[1..4], b"PNG");
}

/// The viewer in headless Chromium draws districts and buildings, offline.
#[tokio::test]
async fn viewer_draws_nanjing_in_headless_chromium() {
    let base = server().base.clone();
    let (report, shot) = in_chromium("viewer", &base).await;
    assert!(
        report["counts"]["districts"].as_u64().unwrap() > 0,
        "{report}"
    );
    // the public view: buildings are open only on request, so the signed-out map has none
    assert_eq!(
        report["counts"]["buildings"].as_u64().unwrap(),
        0,
        "{report}"
    );
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}
