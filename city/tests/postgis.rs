#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! What only the PostGIS store does, against a real PostGIS: tiles encoded in the database
//! with ST_AsMVT carry the same features as tiles from the in-memory index; tables citytwin
//! did not create are published with their SRID honoured and never written to; and a write
//! that fails half-way through its COPY leaves nothing behind (checked on both backends).

use citytwin_city::generate::read_manifest;
use citytwin_city::import::{ImportRequest, NoProgress, import};
use citytwin_city::store::postgis::{PostgisStore, PublishRequest};
use citytwin_city::testing::{Backend, fresh_postgis};
use citytwin_city::twin::encode_layer;
use citytwin_city::{City, CityOptions, Feature, LayerMeta, Store, TileRequest, WriteMode};
use citytwin_tiles::proj::lonlat_to_mercator;
use citytwin_tiles::{TileBudget, TileCoord, Value};
use geozero::mvt::tile::{Feature as MvtFeature, Layer};
use geozero::mvt::{Message, Tile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/nanjing")
}

/// Imports fixture layers into a store with their catalogue metadata.
async fn import_fixtures(store: &dyn Store, layers: &[&str]) {
    for entry in read_manifest(&fixtures()).unwrap() {
        if !layers.contains(&entry.meta.name.as_str()) {
            continue;
        }
        let mut req = ImportRequest::new(fixtures().join(&entry.file), &entry.meta.name);
        req.minzoom = Some(entry.meta.minzoom);
        req.maxzoom = Some(entry.meta.maxzoom);
        req.tile_fields.clone_from(&entry.meta.tile_fields);
        import(store, req, Arc::new(NoProgress)).await.unwrap();
    }
}

/// A decoded feature: its properties and the bounding box of its geometry in tile units.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: i32,
    props: BTreeMap<String, String>,
    bbox: [i64; 4],
}

fn property(layer: &Layer, v: u32) -> String {
    let v = &layer.values[v as usize];
    if let Some(s) = &v.string_value {
        return format!("s:{s}");
    }
    if let Some(b) = v.bool_value {
        return format!("b:{b}");
    }
    let n = v
        .int_value
        .or(v.sint_value)
        .map(|i| i as f64)
        .or(v.uint_value.map(|u| u as f64))
        .or(v.double_value)
        .or(v.float_value.map(f64::from))
        .unwrap();
    format!("n:{n}")
}

/// Bounding box of an MVT geometry command stream.
fn bbox(f: &MvtFeature) -> [i64; 4] {
    let (mut x, mut y) = (0i64, 0i64);
    let mut b = [i64::MAX, i64::MAX, i64::MIN, i64::MIN];
    let mut i = 0;
    let zz = |v: u32| i64::from((v >> 1) as i32 ^ -((v & 1) as i32));
    while i < f.geometry.len() {
        let (cmd, count) = (f.geometry[i] & 7, f.geometry[i] >> 3);
        i += 1;
        if cmd == 7 {
            continue;
        }
        for _ in 0..count {
            x += zz(f.geometry[i]);
            y += zz(f.geometry[i + 1]);
            i += 2;
            b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
    }
    b
}

fn decode(layer_bytes: &[u8]) -> BTreeMap<u64, Seen> {
    let layer = Layer::decode(layer_bytes).unwrap();
    layer
        .features
        .iter()
        .map(|f| {
            let props = f
                .tags
                .chunks(2)
                .map(|kv| (layer.keys[kv[0] as usize].clone(), property(&layer, kv[1])))
                .collect();
            (
                f.id.unwrap(),
                Seen {
                    kind: f.r#type.unwrap_or(0),
                    props,
                    bbox: bbox(f),
                },
            )
        })
        .collect()
}

#[tokio::test]
async fn database_tiles_carry_the_same_features_as_memory_tiles() {
    let (store, _) = fresh_postgis().await.unwrap();
    import_fixtures(store.as_ref(), &["buildings", "roads", "pois", "grids"]).await;
    let city = City::open(store.clone()).await.unwrap();
    let budget = TileBudget::default();
    let mut compared = 0;
    for layer in ["buildings", "roads", "pois", "grids"] {
        let index = city.layer(layer).unwrap();
        let z0 = index.meta.maxzoom.max(index.meta.minzoom);
        for (z, lon, lat) in [
            (z0, 118.7800, 32.0420),
            (z0 + 1, 118.7690, 32.0610),
            (z0 + 2, 118.7420, 32.0030),
            (z0, 118.8200, 31.9400),
        ] {
            let (x, y) = lonlat_to_mercator(lon, lat);
            let coord = TileCoord::containing(x, y, z);
            let memory = encode_layer(&index, coord, &budget).unwrap();
            let database = store.tile_layer(&index.meta, coord, &budget).await.unwrap();
            let (Some(memory), Some(database)) = (memory, database) else {
                panic!("{layer} {coord}: one path has no tile");
            };
            let (m, d) = (decode(&memory.bytes), decode(&database.bytes));
            assert!(!m.is_empty(), "{layer} {coord}: empty");
            let only_m: Vec<_> = m.keys().filter(|k| !d.contains_key(k)).collect();
            let only_d: Vec<_> = d.keys().filter(|k| !m.contains_key(k)).collect();
            assert!(
                only_m.is_empty() && only_d.is_empty(),
                "{layer} {coord}: ids only in memory {only_m:?}, only in the database {only_d:?}"
            );
            for (id, a) in &m {
                let b = &d[id];
                assert_eq!(a.kind, b.kind, "{layer} {coord} feature {id}: type");
                assert_eq!(a.props, b.props, "{layer} {coord} feature {id}: properties");
                // the same geometry, snapped to the same grid: one unit of rounding apart;
                // where the buffer's edge (outside the visible tile) cuts a feature, PostGIS
                // snaps before clipping and we clip before snapping, so slivers along the cut
                // may differ by up to a pixel (16 units)
                let edge = |b: &[i64; 4]| b.iter().any(|v| *v <= -64 || *v >= 4160);
                let tolerance = if edge(&a.bbox) || edge(&b.bbox) {
                    16
                } else {
                    1
                };
                let off = (0..4).map(|i| (a.bbox[i] - b.bbox[i]).abs()).max().unwrap();
                assert!(
                    off <= tolerance,
                    "{layer} {coord} feature {id}: {:?} vs {:?}",
                    a.bbox,
                    b.bbox
                );
            }
            compared += m.len();
        }
    }
    assert!(compared > 1000, "only {compared} features compared");

    // a city that tiles buildings in the database answers composite tiles from both sides
    let options = CityOptions {
        store_tiled: ["buildings".to_owned()].into(),
        ..CityOptions::default()
    };
    let mixed = City::open_with(store.clone(), options).await.unwrap();
    assert!(!mixed.layer("buildings").unwrap().resident);
    assert_eq!(mixed.layer("buildings").unwrap().feature_count(), 50_000);
    let (x, y) = lonlat_to_mercator(118.78, 32.042);
    let out = mixed
        .tile(&TileRequest {
            layers: &["roads".to_owned(), "buildings".to_owned()],
            coord: TileCoord::containing(x, y, 15),
            budget,
            plans: &[],
            at: None,
        })
        .await
        .unwrap();
    let tile = Tile::decode(out.bytes.as_slice()).unwrap();
    let names: Vec<_> = tile.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["roads", "buildings"]);
    assert!(tile.layers[1].features.len() > 100);
}

#[tokio::test]
async fn the_geopackage_store_cannot_tile_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Backend::GeoPackage.fresh_store(dir.path()).await.unwrap();
    let options = CityOptions {
        store_tiled: ["buildings".to_owned()].into(),
        ..CityOptions::default()
    };
    let err = City::open_with(store, options).await.unwrap_err();
    assert!(err.to_string().contains("PostGIS"), "{err}");
}

async fn exec(store: &PostgisStore, sql: &str) {
    sqlx::query(sql).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn published_tables_keep_their_srid_and_are_never_written() {
    let (store, _) = fresh_postgis().await.unwrap();
    let s = store.schema().to_owned();
    // a city's own table in CGCS2000 / Gauss-Kruger 120E (EPSG:4549), and a view of it that
    // declares no SRID and has no primary key
    exec(
        &store,
        &format!(
            "CREATE TABLE {s}.city_roads (gid serial PRIMARY KEY, name varchar(40), lanes int4, \
             width numeric, opened date, extra jsonb, geom geometry(LineString, 4549))"
        ),
    )
    .await;
    exec(
        &store,
        &format!(
            "INSERT INTO {s}.city_roads (name, lanes, width, opened, geom) VALUES \
             ('中山路', 6, 32.5, '1929-06-01', ST_Transform(ST_GeomFromText('LINESTRING(118.78 32.04, 118.79 32.05)', 4326), 4549)), \
             ('汉中路', 4, NULL, NULL, ST_Transform(ST_GeomFromText('LINESTRING(118.76 32.04, 118.78 32.041)', 4326), 4549))"
        ),
    )
    .await;
    exec(
        &store,
        &format!(
            "CREATE VIEW {s}.wide_roads AS SELECT gid, name, ST_SetSRID(geom, 0) AS g \
             FROM {s}.city_roads WHERE lanes >= 6"
        ),
    )
    .await;

    let meta = store
        .publish(&PublishRequest {
            layer: "city_roads".into(),
            table: format!("{s}.city_roads"),
            minzoom: Some(10),
            ..PublishRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(meta.feature_count, 2);
    let fields: Vec<_> = meta.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        fields,
        ["name", "lanes", "width", "opened"],
        "jsonb is skipped"
    );
    let b = meta.bounds.unwrap();
    assert!(
        (b[0] - 118.76).abs() < 1e-6 && (b[3] - 32.05).abs() < 1e-6,
        "{b:?}"
    );
    assert_eq!(meta.external.as_ref().unwrap().srid, 4549);

    // read back in WGS84, from memory and from the database
    let features = store.read_features("city_roads").await.unwrap();
    let first = geo::CoordsIter::coords_iter(&features[0].geometry)
        .next()
        .unwrap();
    assert!((first.x - 118.78).abs() < 1e-7 && (first.y - 32.04).abs() < 1e-7);
    assert_eq!(features[0].values[0], Value::from("中山路"));
    assert_eq!(features[0].values[1], Value::Int(6));
    assert_eq!(features[0].values[2], Value::Float(32.5));
    assert_eq!(features[0].values[3], Value::from("1929-06-01"));
    assert_eq!(features[1].values[2], Value::Null);
    let city = City::open(store.clone()).await.unwrap();
    let index = city.layer("city_roads").unwrap();
    let (x, y) = lonlat_to_mercator(118.785, 32.045);
    let coord = TileCoord::containing(x, y, 12);
    let budget = TileBudget::default();
    let memory = decode(&encode_layer(&index, coord, &budget).unwrap().unwrap().bytes);
    let database = decode(
        &store
            .tile_layer(&index.meta, coord, &budget)
            .await
            .unwrap()
            .unwrap()
            .bytes,
    );
    assert_eq!(memory.keys().collect::<Vec<_>>(), [&1, &2]);
    assert_eq!(
        memory.keys().collect::<Vec<_>>(),
        database.keys().collect::<Vec<_>>()
    );
    assert_eq!(memory[&1].props, database[&1].props);

    // the view: no SRID and no key → clear errors, then published with both given
    let view = PublishRequest {
        layer: "wide_roads".into(),
        table: format!("{s}.wide_roads"),
        ..PublishRequest::default()
    };
    let err = store.publish(&view).await.unwrap_err().to_string();
    assert!(err.contains("SRID"), "{err}");
    let err = store
        .publish(&PublishRequest {
            srid: Some(4549),
            ..view.clone()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("id column"), "{err}");
    let wide = store
        .publish(&PublishRequest {
            srid: Some(4549),
            id_column: Some("gid".into()),
            ..view.clone()
        })
        .await
        .unwrap();
    assert_eq!(wide.feature_count, 1);
    let f = store.read_features("wide_roads").await.unwrap();
    let c = geo::CoordsIter::coords_iter(&f[0].geometry).next().unwrap();
    assert!(
        (c.x - 118.78).abs() < 1e-7,
        "SRID assigned, then transformed"
    );
    for bad in [
        PublishRequest {
            table: format!("{s}.nosuch"),
            ..view.clone()
        },
        PublishRequest {
            layer: "Bad Name".into(),
            ..view.clone()
        },
        PublishRequest {
            geometry_column: Some("name".into()),
            srid: Some(4549),
            id_column: Some("gid".into()),
            ..view.clone()
        },
        PublishRequest {
            srid: Some(999_999),
            id_column: Some("gid".into()),
            ..view.clone()
        },
        PublishRequest {
            srid: Some(4549),
            id_column: Some("name".into()),
            ..view.clone()
        },
    ] {
        assert!(store.publish(&bad).await.is_err(), "{bad:?}");
    }

    // never written: an import into it fails, and dropping only unpublishes
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.geojson");
    std::fs::write(&file, r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"LineString","coordinates":[[118.7,32.0],[118.8,32.1]]}}]}"#).unwrap();
    let err = import(
        store.as_ref(),
        ImportRequest::new(&file, "city_roads"),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("published"), "{err}");
    store.drop_layer("city_roads").await.unwrap();
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {s}.city_roads"))
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 2, "the city's table is still there");
    assert!(
        store
            .layers()
            .await
            .unwrap()
            .iter()
            .all(|m| m.name != "city_roads")
    );
    // and a table citytwin did not create is not overwritten by an import of the same name
    let err = import(
        store.as_ref(),
        ImportRequest::new(&file, "city_roads"),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a citytwin layer"), "{err}");
}

fn square(id: i64, lon: f64, name: &str) -> Feature {
    let p = geo::Rect::new(
        geo::coord! { x: lon, y: 32.0 },
        geo::coord! { x: lon + 0.001, y: 32.001 },
    )
    .to_polygon();
    Feature {
        id,
        geometry: geo::MultiPolygon::new(vec![p]).into(),
        values: vec![Value::from(name)],
    }
}

#[tokio::test]
async fn a_write_failing_half_way_leaves_nothing_behind_on_either_store() {
    for backend in [Backend::GeoPackage, Backend::Postgis] {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.fresh_store(dir.path()).await.unwrap();
        let mut meta = LayerMeta::new("blocks", citytwin_city::GeometryKind::Polygon);
        meta.fields = vec![citytwin_city::Field {
            name: "name".into(),
            kind: citytwin_city::FieldKind::Text,
        }];
        let good: Vec<Feature> = (1..=3000)
            .map(|i| square(i, 118.0 + i as f64 * 1e-4, "a"))
            .collect();
        store
            .write_layer(&meta, &good, WriteMode::Replace)
            .await
            .unwrap();
        // the last feature is broken: the whole write must roll back
        let mut bad: Vec<Feature> = (1..=5000)
            .map(|i| square(i, 118.5 + i as f64 * 1e-4, "b"))
            .collect();
        bad.last_mut().unwrap().values.clear();
        for mode in [WriteMode::Replace, WriteMode::Append] {
            assert!(
                store.write_layer(&meta, &bad, mode).await.is_err(),
                "{backend:?}"
            );
            assert_eq!(
                store.read_features("blocks").await.unwrap(),
                good,
                "{backend:?}"
            );
            let m = store.layers().await.unwrap();
            assert_eq!(m[0].feature_count, 3000, "{backend:?}");
        }
        let mut fresh = meta.clone();
        fresh.name = "fresh".into();
        assert!(
            store
                .write_layer(&fresh, &bad, WriteMode::Replace)
                .await
                .is_err()
        );
        assert_eq!(
            store.layers().await.unwrap().len(),
            1,
            "{backend:?}: no half layer"
        );
        assert!(store.read_features("fresh").await.is_err());
    }
}

#[tokio::test]
async fn live_changes_land_in_both_stores_and_come_back() {
    use citytwin_city::live::{
        Action, EventState, NewEvent, NewSensor, Place, ReadingIn, Severity, Source, Thresholds, ts,
    };
    for backend in [Backend::GeoPackage, Backend::Postgis] {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.fresh_store(dir.path()).await.unwrap();
        import_fixtures(
            store.as_ref(),
            &["grids", "communities", "streets", "districts"],
        )
        .await;
        let city = City::open(Arc::clone(&store)).await.unwrap();
        let (lon, lat) = (118.7800, 32.0932);
        let (event, merged) = city
            .report_event(
                &citytwin_city::testing::operator(),
                NewEvent {
                    source: Source::Citizen,
                    category: "road-damage".into(),
                    severity: Severity::General,
                    description: "pothole".into(),
                    lon,
                    lat,
                    media: vec!["https://example.org/pothole.jpg".into()],
                    reporter: None,
                    actor: None,
                    receipt: None,
                    place: Place::default(),
                },
            )
            .await
            .unwrap();
        assert!(!merged);
        assert_eq!(
            event.place.grid.as_ref().map(|g| g.code.as_str()),
            Some("320102001001001"),
            "{backend:?}"
        );
        assert_eq!(event.owner.as_ref().unwrap().code, "320102001");
        let outside = city.place(119.9, 33.9).await.unwrap_err();
        assert!(outside.is_client_error(), "{outside}");
        city.transition_event(
            &citytwin_city::testing::operator(),
            event.id,
            Action::Accept,
            "",
        )
        .await
        .unwrap();
        city.register_sensor(
            &citytwin_city::testing::operator(),
            NewSensor {
                id: "WL-7".into(),
                kind: "water-level".into(),
                name: Some("Xinjiekou underpass".into()),
                lon,
                lat,
                unit: "m".into(),
                thresholds: Thresholds {
                    high: Some(0.5),
                    ..Thresholds::default()
                },
                place: Place::default(),
                registered_by: None,
            },
        )
        .await
        .unwrap();
        let t0 = (ts::now() / 60_000 - 30) * 60_000;
        let readings: Vec<ReadingIn> = (0..120)
            .map(|i| ReadingIn {
                sensor: "WL-7".into(),
                at: t0 + i * 15_000,
                value: if i == 100 {
                    0.9
                } else {
                    0.1 + (i % 4) as f64 * 0.01
                },
            })
            .collect();
        let (taken, raised, cleared) = city
            .ingest(&citytwin_city::testing::operator(), readings)
            .await
            .unwrap();
        assert_eq!((taken, raised, cleared), (120, 1, 1), "{backend:?}");
        let buckets = city
            .readings("WL-7", t0, t0 + 1_800_000, Some(60_000), 100)
            .await
            .unwrap();
        assert_eq!(buckets.len(), 30, "{backend:?}");
        assert!(buckets.iter().all(|b| b.count == 4));
        let spike = buckets.iter().find(|b| b.max > 0.8).unwrap();
        assert_eq!(spike.start, t0 + 25 * 60_000);
        assert!((spike.min - 0.11).abs() < 1e-9, "{spike:?}");
        let raw = city
            .readings("WL-7", t0, t0 + 60_000, None, 100)
            .await
            .unwrap();
        assert_eq!(raw.len(), 4);
        let seq = city.live_seq();
        drop(city);
        let city = City::open(Arc::clone(&store)).await.unwrap();
        city.with_live(|s| {
            assert_eq!(s.seq, seq, "{backend:?}");
            assert_eq!(s.events[&event.id].state, EventState::Accepted);
            assert_eq!(s.events.len(), 2, "the alarm opened an event");
            let sensor = &s.sensors["WL-7"];
            assert_eq!(sensor.latest.unwrap().at, t0 + 119 * 15_000);
            assert!(sensor.alarm.is_none());
        });
        let before = city.live_state_at(event.reported_at).await.unwrap();
        assert_eq!(
            before.events[&event.id].state,
            EventState::Reported,
            "{backend:?}"
        );
        assert!(before.sensors.is_empty() || before.sensors["WL-7"].latest.is_none());
    }
}

/// Readings past their retention are folded into rollups that answer the same interval
/// history, and the past read from checkpoints (and their rollups) is the past the whole log
/// showed, on both stores: `/live/state?at=` and start-up no longer scan the whole log.
#[tokio::test]
async fn the_history_stays_bounded_and_answers_the_same() {
    use citytwin_city::live::history::HistoryPolicy;
    use citytwin_city::live::{LiveOptions, NewSensor, Place, ReadingIn, Sample, Thresholds, ts};
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let op = citytwin_city::testing::operator;
    for backend in [Backend::GeoPackage, Backend::Postgis] {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.fresh_store(dir.path()).await.unwrap();
        import_fixtures(
            store.as_ref(),
            &["grids", "communities", "streets", "districts"],
        )
        .await;
        let options = CityOptions {
            live: LiveOptions {
                history: HistoryPolicy {
                    raw_readings_days: 2,
                    rollup_minutes: 60,
                    checkpoint_hours: 1,
                },
                ..LiveOptions::default()
            },
            ..CityOptions::default()
        };
        let city = City::open_with(Arc::clone(&store), options.clone())
            .await
            .unwrap();
        for (i, id) in ["H-0", "H-1", "H-2"].into_iter().enumerate() {
            city.register_sensor(
                &op(),
                NewSensor {
                    id: id.into(),
                    kind: "water-level".into(),
                    name: None,
                    lon: 118.78 + i as f64 * 0.001,
                    lat: 32.0932,
                    unit: "m".into(),
                    thresholds: Thresholds::default(),
                    place: Place::default(),
                    registered_by: None,
                },
            )
            .await
            .unwrap();
        }
        let now = ts::now();
        let day0 = now / HOUR * HOUR - 5 * DAY;
        // two readings an hour (at :30 and :45) of H-1 and H-2 for five days, up to 2 h ago
        let mut readings = Vec::new();
        for h in 0..(5 * 24 - 2) {
            for (s, offset) in [("H-1", 0.0), ("H-2", 5.0)] {
                for (m, d) in [(30, 0.001), (45, 0.002)] {
                    readings.push(ReadingIn {
                        sensor: s.into(),
                        at: day0 + h * HOUR + m * 60_000,
                        value: offset + h as f64 * 0.01 + d,
                    });
                }
            }
        }
        let cut = (now - 2 * DAY) / HOUR * HOUR;
        let old = readings.iter().filter(|r| r.at < cut).count() as u64;
        city.ingest(&op(), readings).await.unwrap();
        async fn history(
            city: &City,
            window: (i64, i64),
            step: i64,
        ) -> Vec<citytwin_city::store::Bucket> {
            city.readings("H-1", window.0, window.1, Some(step), 10_000)
                .await
                .unwrap()
        }
        let hourly = history(&city, (day0, now), HOUR).await;
        let six_hourly = history(&city, (day0, now), 6 * HOUR).await;
        assert_eq!(hourly.len(), 5 * 24 - 2, "{backend:?}");
        // the sensors were registered now: the past's latest readings are read in the store
        let t_old = day0 + 40 * HOUR;
        let store_ = Arc::clone(&store);
        let readings_at = move |t: i64| {
            let store = Arc::clone(&store_);
            async move {
                let from = store.checkpoint_before(t).await.unwrap();
                let rows = store.live_at(from, t).await.unwrap();
                rows.into_iter()
                    .filter(|c| c.kind == "reading" && c.entity != "H-0")
                    .map(|c| (c.entity, (c.at, c.value)))
                    .collect::<BTreeMap<_, _>>()
            }
        };
        let old_before = readings_at(t_old).await;
        assert_eq!(old_before.len(), 2, "{backend:?}");
        assert_eq!(old_before["H-1"].0, t_old - 15 * 60_000, "{backend:?}");
        let latest =
            |s: &citytwin_city::live::LiveState| (s.sensors["H-1"].latest, s.sensors["H-2"].latest);
        // three checkpoints on one Beijing day more than two days ago, the log growing between
        let start = (day0 + 8 * HOUR) / DAY * DAY + DAY - 8 * HOUR;
        let bump = |at: i64| ReadingIn {
            sensor: "H-0".into(),
            at,
            value: 1.0,
        };
        let mut marks = Vec::new();
        for t in [start + HOUR, start + 3 * HOUR, start + 5 * HOUR] {
            let done = city.maintain_history(t).await.unwrap();
            assert_eq!(done.readings_folded, 0, "{backend:?}");
            marks.push(done.checkpoint.expect("a checkpoint was due").at);
            city.ingest(&op(), vec![bump(day0 - HOUR)]).await.unwrap();
        }
        assert_eq!(marks, [start + HOUR, start + 3 * HOUR, start + 5 * HOUR]);
        assert_eq!(
            readings_at(t_old).await,
            old_before,
            "{backend:?}: read from a checkpoint"
        );
        // the retention: readings before the cut are folded, the day's earlier checkpoints go
        let done = city.maintain_history(now).await.unwrap();
        // the third bump is the log's last change: it stays (the next is numbered after it)
        assert_eq!(done.readings_folded, old + 2, "{backend:?}");
        assert_eq!(done.checkpoint.map(|c| c.at), Some(now));
        assert_eq!(done.checkpoints_dropped, 2, "{backend:?}");
        let kept: Vec<i64> = store
            .checkpoints()
            .await
            .unwrap()
            .iter()
            .map(|c| c.at)
            .collect();
        assert_eq!(kept, [start + 5 * HOUR, now], "{backend:?}");
        // the same history at an hour or coarser, from rollups and raw readings together
        for (before, step) in [(&hourly, HOUR), (&six_hourly, 6 * HOUR)] {
            let after = history(&city, (day0, now), step).await;
            assert_eq!(after.len(), before.len(), "{backend:?}");
            for (a, b) in after.iter().zip(before.iter()) {
                assert_eq!((a.start, a.count), (b.start, b.count), "{backend:?}");
                assert!((a.min - b.min).abs() < 1e-9 && (a.max - b.max).abs() < 1e-9);
                assert!((a.avg - b.avg).abs() < 1e-9, "{backend:?}: {a:?} {b:?}");
            }
        }
        // raw history of folded hours comes as their rollups
        let raw = city
            .readings("H-1", day0, day0 + 3 * HOUR, None, 100)
            .await
            .unwrap();
        assert_eq!(raw.len(), 3, "{backend:?}");
        assert!(raw.iter().all(|b| b.count == 2 && b.start % HOUR == 0));
        let recent = city
            .readings("H-1", now - DAY, now, None, 100)
            .await
            .unwrap();
        assert!(recent.iter().all(|b| b.count == 1), "{backend:?}");
        // the past reads the same from rollups and checkpoints as it did from the raw log
        assert_eq!(readings_at(t_old).await, old_before, "{backend:?}");
        let live = city.with_live(|s| latest(s));
        assert_eq!(
            latest(&city.live_state_at(now).await.unwrap()),
            live,
            "{backend:?}"
        );
        // a late reading (timed before the checkpoint, written after it) is not lost
        let late = Sample {
            at: now - 60_000,
            value: 9.5,
        };
        city.ingest(
            &op(),
            vec![ReadingIn {
                sensor: "H-1".into(),
                at: late.at,
                value: late.value,
            }],
        )
        .await
        .unwrap();
        let then = city.live_state_at(ts::now()).await.unwrap();
        assert_eq!(then.sensors["H-1"].latest, Some(late), "{backend:?}");
        // no checkpoint is due; the bump that was the last change is folded now it is not
        let again = city.maintain_history(now).await.unwrap();
        assert_eq!((again.readings_folded, again.checkpoint), (1, None));
        let again = city.maintain_history(now).await.unwrap();
        assert_eq!((again.readings_folded, again.checkpoint), (0, None));
        // start-up reads the twin from the checkpoint and the log after it
        drop(city);
        let city = City::open_with(Arc::clone(&store), options).await.unwrap();
        city.with_live(|s| {
            assert_eq!(s.sensors["H-1"].latest, Some(late), "{backend:?}");
            assert_eq!(s.sensors.len(), 3);
        });
    }
}

/// Keys, revocations, catalogue entries and the audit log live in both stores alike: a key
/// made in one process works in another and stops at its revocation; the audit chain holds,
/// and each store refuses to edit or truncate it.
#[tokio::test]
async fn access_records_live_in_both_stores() {
    use citytwin_city::access::Role;
    use citytwin_city::audit::{AuditKey, AuditLog, AuditQuery, AuditRecord, verify};
    use citytwin_city::catalog::{CatalogUpdate, OpenClass, ShareClass};
    use citytwin_city::keys::{Credentials, NewKey, Refusal};
    for backend in [Backend::GeoPackage, Backend::Postgis] {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.fresh_store(dir.path()).await.unwrap();
        import_fixtures(store.as_ref(), &["districts"]).await;
        let meta = citytwin_city::catalog::update(
            store.as_ref(),
            "districts",
            &CatalogUpdate {
                owner: Some("civil-affairs".into()),
                share: Some(ShareClass::Unconditional),
                open: Some(OpenClass::Unconditional),
                level: Some(1),
                update_frequency: Some("yearly".into()),
                ..CatalogUpdate::default()
            },
        )
        .await
        .unwrap();
        let stored = store.layers().await.unwrap();
        assert_eq!(stored[0].classification, meta.classification, "{backend:?}");
        assert_eq!(stored[0].feature_count, 11, "{backend:?}: features kept");
        let one = Credentials::open(Arc::clone(&store)).await.unwrap();
        let (key, token) = one
            .create(NewKey {
                name: "gw".into(),
                roles: [Role::Gateway].into_iter().collect(),
                sensors: Some(vec!["WL-*".into()]),
                expires_at: citytwin_city::live::ts::now() + 3_600_000,
                created_by: "test".into(),
                ..NewKey::default()
            })
            .await
            .unwrap();
        let other = Credentials::open(Arc::clone(&store)).await.unwrap();
        assert!(other.principal_of_key(&token).await.is_ok(), "{backend:?}");
        one.revoke_key(&key.id, "lost", "test").await.unwrap();
        one.revoke("user:abc", true, "left", "test").await.unwrap();
        assert_eq!(
            other.refresh().await.unwrap(),
            vec![format!("key:{}", key.id), "user:abc".to_owned()],
            "{backend:?}"
        );
        assert_eq!(other.principal_of_key(&token).await, Err(Refusal::Revoked));
        assert!(other.is_revoked("user:abc"));
        let audit_key = AuditKey::new(vec![9; 32]).unwrap();
        let log = AuditLog::open(Arc::clone(&store), audit_key.clone(), 180)
            .await
            .unwrap();
        for i in 0..5 {
            log.record_durable(AuditRecord {
                principal: format!("user:{i}"),
                action: "read".into(),
                target: "districts".into(),
                channel: "items".into(),
                allowed: true,
                count: Some(i),
                ..AuditRecord::default()
            })
            .await
            .unwrap();
        }
        let ok = verify(store.as_ref(), &audit_key, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.entries, 5, "{backend:?}");
        let entries = store.read_audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(entries[2].principal, "user:2");
        assert_eq!(entries[2].count, Some(2));
        // the store's own guard: entries younger than the retention cannot be deleted
        assert!(
            store
                .prune_audit(citytwin_city::live::ts::now())
                .await
                .is_err(),
            "{backend:?}: young entries were pruned"
        );
        assert_eq!(
            verify(store.as_ref(), &audit_key, None)
                .await
                .unwrap()
                .unwrap()
                .entries,
            5
        );
    }
}

/// `serve --store-read`: layer loads and history go to a streaming replica only when it shows
/// what the primary shows; while its replay is paused every read still sees the last write
/// (from the primary), and once it has caught up the replica answers.
#[tokio::test]
async fn a_replica_answers_heavy_reads_only_when_it_shows_the_last_write() {
    use citytwin_city::live::{NewSensor, Place, ReadingIn, Thresholds, ts};
    use citytwin_city::store::cluster::ClusterStore;
    let (primary, _) = fresh_postgis().await.unwrap();
    let schema = primary.schema().to_owned();
    // the replica shows the new schema once it has replayed its creation
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let replica = loop {
        let r = PostgisStore::connect(&citytwin_city::testing::replica_url(&schema)).await;
        if let Ok(r) = r
            && r.layers().await.is_ok()
        {
            break Arc::new(r);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica (scripts/setup-postgis-replica) never showed schema {schema}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        replica.describe().ends_with("(replica)"),
        "{}",
        replica.describe()
    );
    let cluster = Arc::new(ClusterStore::new(
        primary.clone(),
        Some(replica.clone()),
        None,
    ));
    let store: Arc<dyn Store> = cluster.clone();
    let replayed = |sql: &'static str| {
        let replica = replica.clone();
        async move {
            sqlx::query(sql).execute(replica.pool()).await.unwrap();
        }
    };
    let city = City::open(Arc::clone(&store)).await.unwrap();
    let cx = citytwin_city::testing::operator();
    city.register_sensor(
        &cx,
        NewSensor {
            id: "RP-1".into(),
            kind: "water-level".into(),
            name: None,
            lon: 118.78,
            lat: 32.05,
            unit: "m".into(),
            thresholds: Thresholds::default(),
            place: Place::default(),
            registered_by: None,
        },
    )
    .await
    .unwrap();
    replayed("SELECT pg_wal_replay_pause()").await;
    let now = ts::now();
    for i in 0..20 {
        city.ingest(
            &cx,
            vec![ReadingIn {
                sensor: "RP-1".into(),
                at: now - 20_000 + i * 1000,
                value: f64::from(i as i32),
            }],
        )
        .await
        .unwrap();
        // every acknowledged reading is in the history at once, the replica paused or not
        let h = city
            .readings("RP-1", now - 60_000, now + 1, None, 1000)
            .await
            .unwrap();
        assert_eq!(
            h.len() as i64,
            i + 1,
            "reading {i} missing from the history"
        );
    }
    import_fixtures(store.as_ref(), &["districts"]).await;
    let n = store.read_features("districts").await.unwrap().len();
    assert!(n > 0);
    // caught up, the replica answers the heavy reads
    replayed("SELECT pg_wal_replay_resume()").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while replica.last_change().await.unwrap() < primary.last_change().await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = cluster.reads();
    assert_eq!(store.read_features("districts").await.unwrap().len(), n);
    let h = city
        .readings("RP-1", now - 60_000, now + 1, None, 1000)
        .await
        .unwrap();
    assert_eq!(h.len(), 20);
    let after = cluster.reads();
    assert_eq!(
        (
            after.replica - before.replica,
            after.primary - before.primary
        ),
        (2, 0),
        "the replica did not answer: {before:?} → {after:?}"
    );
    // while it was paused, the primary answered
    assert!(before.primary >= 20, "{before:?}");
}

/// At a layer's maximum zoom every feature is in the tile on both paths, however small the
/// budget: the attributes give way first, then the byte budget, and the statistics say so.
#[tokio::test]
async fn full_detail_tiles_keep_every_feature_on_both_paths() {
    let (store, _) = fresh_postgis().await.unwrap();
    import_fixtures(store.as_ref(), &["buildings"]).await;
    let city = City::open(store.clone()).await.unwrap();
    let index = city.layer("buildings").unwrap();
    let (x, y) = lonlat_to_mercator(118.7800, 32.0420);
    let coord = TileCoord::containing(x, y, index.meta.maxzoom);
    let roomy = TileBudget::default();
    let all = encode_layer(&index, coord, &roomy).unwrap().unwrap();
    assert!(all.stats.written > 20, "{:?}", all.stats);
    let tight = TileBudget {
        max_bytes: 1_000,
        max_features: 5,
    };
    let memory = encode_layer(&index, coord, &tight).unwrap().unwrap();
    let database = store
        .tile_layer(&index.meta, coord, &tight)
        .await
        .unwrap()
        .unwrap();
    let fields = index.meta.tile_columns().len();
    for (path, out) in [("memory", &memory), ("database", &database)] {
        assert_eq!(
            out.stats.written, all.stats.written,
            "{path}: {:?}",
            out.stats
        );
        assert_eq!(out.stats.dropped_budget, 0, "{path}");
        assert_eq!(out.stats.fields_dropped, fields, "{path}: {:?}", out.stats);
        assert!(out.stats.over_budget, "{path}: {:?}", out.stats);
        assert_eq!(decode(&out.bytes).len(), all.stats.written, "{path}");
    }
    // one zoom out the budget holds again
    let above = TileCoord::containing(x, y, index.meta.maxzoom - 1);
    let out = encode_layer(&index, above, &tight).unwrap().unwrap();
    assert!(
        out.stats.bytes <= 1_000 && out.stats.written <= 5,
        "{:?}",
        out.stats
    );
    // the layer's quality says what gave way in the tiles the twin served (each tile once)
    assert_eq!(city.full_detail(&index).tiles_over_budget, 0);
    for _ in 0..2 {
        city.tile(&TileRequest {
            layers: &["buildings".to_owned()],
            coord,
            budget: tight,
            plans: &[],
            at: None,
        })
        .await
        .unwrap();
    }
    let detail = city.full_detail(&index);
    assert_eq!(
        (detail.tiles_over_budget, detail.tiles_attributes_dropped),
        (1, 1),
        "{detail:?}"
    );
    assert!(
        detail.examples[0].starts_with(&coord.to_string()),
        "{detail:?}"
    );
}
