#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! Versioned base layers on both stores: two (then three) versions of a layer with known
//! differences, read as of dates before, between and after them — features, tiles (from
//! memory and, on PostGIS, from ST_AsMVT), the diff — with storage growing by the changed
//! features only, and every way to get a version wrong refused with a message.

use citytwin_city::catalog::{Classification, OpenClass, ShareClass};
use citytwin_city::import::{ImportRequest, NoProgress};
use citytwin_city::testing::{Backend, operator};
use citytwin_city::versions::Day;
use citytwin_city::{City, CityOptions, TileRequest, WriteMode};
use citytwin_tiles::proj::lonlat_to_mercator;
use citytwin_tiles::{TileBudget, TileCoord, Value};
use geozero::mvt::{Message, Tile};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Block `i`: a small square on a 10×10 lattice, keyed `B{i}`.
fn block(i: usize, height: i64, shift: f64) -> serde_json::Value {
    let x = 118.78 + (i % 10) as f64 * 0.001 + shift;
    let y = 32.04 + (i / 10) as f64 * 0.001;
    json!({"type": "Feature", "properties": {"code": format!("B{i}"), "height": height, "name": format!("block {i}")},
        "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 0.0005, y], [x + 0.0005, y + 0.0005], [x, y + 0.0005], [x, y]]]}})
}

fn write(dir: &Path, name: &str, features: &[serde_json::Value]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
    .unwrap();
    path
}

/// 2020: blocks 0–99 at height 10. 2025: 0–2 gone, 10 and 11 raised to 20, 20 moved east,
/// 100–103 new. 2026: 10 raised again to 30.
fn versions(dir: &Path) -> [std::path::PathBuf; 3] {
    let v2020: Vec<_> = (0..100).map(|i| block(i, 10, 0.0)).collect();
    let v2025 = |b10: i64| -> Vec<serde_json::Value> {
        (3..104)
            .map(|i| match i {
                10 => block(i, b10, 0.0),
                11 => block(i, 20, 0.0),
                20 => block(i, 10, 0.0001),
                100.. => block(i, 5, 0.0),
                _ => block(i, 10, 0.0),
            })
            .collect()
    };
    [
        write(dir, "v2020.geojson", &v2020),
        write(dir, "v2025.geojson", &v2025(20)),
        // heights with fractions from 2026: the column widens to reals
        write(dir, "v2026.geojson", &{
            let mut v = v2025(30);
            v[7]["properties"]["height"] = json!(30.5);
            v
        }),
    ]
}

async fn import_as_of(city: &City, path: &Path, day: Option<&str>) -> citytwin_city::Result<()> {
    let mut req = ImportRequest::new(path, "blocks");
    req.as_of = day.map(str::to_owned);
    req.version_key = Some("code".into());
    // open to all, so the access check lets the test's reader see it
    req.classification = Some(Classification::new(
        "planning",
        ShareClass::Unconditional,
        OpenClass::Unconditional,
        1,
    ));
    city.import(req, Arc::new(NoProgress)).await.map(|_| ())
}

fn day(s: &str) -> Option<Day> {
    Day::parse(s).ok()
}

/// The codes and heights of the layer as of a day.
fn state(city: &City, at: Option<&str>) -> Vec<(String, i64)> {
    let l = city.layer_on(city.layer("blocks").unwrap(), at.and_then(day));
    let (c, h) = (
        l.meta.field_index("code").unwrap(),
        l.meta.field_index("height").unwrap(),
    );
    let mut v: Vec<(String, i64)> = l
        .features()
        .iter()
        .map(|f| {
            // in decimetres
            let height = match f.values[h] {
                Value::Int(i) => i * 10,
                Value::Float(x) => (x * 10.0).round() as i64,
                ref v => panic!("height {v:?}"),
            };
            (f.values[c].to_string(), height)
        })
        .collect();
    v.sort();
    v
}

fn height(state: &[(String, i64)], code: &str) -> Option<i64> {
    state.iter().find(|(c, _)| c == code).map(|(_, h)| *h)
}

/// The feature ids of the z16 tile over block `i`, as of a day.
async fn tile_ids(city: &City, i: usize, at: Option<&str>) -> BTreeSet<u64> {
    let (x, y) = lonlat_to_mercator(
        118.78 + (i % 10) as f64 * 0.001 + 0.0002,
        32.04 + (i / 10) as f64 * 0.001 + 0.0002,
    );
    let out = city
        .tile(&TileRequest {
            layers: &["blocks".to_owned()],
            coord: TileCoord::containing(x, y, 16),
            budget: TileBudget::default(),
            plans: &[],
            at: at.and_then(day),
        })
        .await
        .unwrap();
    if out.bytes.is_empty() {
        return BTreeSet::new();
    }
    Tile::decode(out.bytes.as_slice()).unwrap().layers[0]
        .features
        .iter()
        .map(|f| f.id.unwrap())
        .collect()
}

/// Rows the store holds for the layer: its current features and its past rows.
async fn stored_rows(store: &dyn citytwin_city::Store) -> usize {
    store.read_features("blocks").await.unwrap().len()
        + store.read_history("blocks").await.unwrap().past.len()
}

/// The row id of a block as of a day.
fn fid(city: &City, code: &str, at: &str) -> u64 {
    let l = city.layer_on(city.layer("blocks").unwrap(), day(at));
    let c = l.meta.field_index("code").unwrap();
    l.features()
        .iter()
        .find(|f| f.values[c].to_string() == code)
        .unwrap()
        .id as u64
}

async fn run(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let [v2020, v2025, v2026] = versions(dir.path());
    let store = backend.fresh_store(dir.path()).await.unwrap();
    let city = City::open(Arc::clone(&store)).await.unwrap();
    import_as_of(&city, &v2020, Some("2020-01-01"))
        .await
        .unwrap();
    import_as_of(&city, &v2025, Some("2025-01-01"))
        .await
        .unwrap();
    let meta = city.layer("blocks").unwrap().meta.clone();
    let counts: Vec<_> = meta
        .versions
        .iter()
        .map(|v| (v.date.as_str(), v.features, v.added, v.removed, v.changed))
        .collect();
    assert_eq!(
        counts,
        [("2020-01-01", 100, 100, 0, 0), ("2025-01-01", 101, 4, 3, 3)]
    );
    assert_eq!(meta.version_key.as_deref(), Some("code"));
    // storage grows by the changed features only: 100 rows, then 4 new and 3 new states
    let rows = store.read_history("blocks").await.unwrap();
    assert_eq!(stored_rows(store.as_ref()).await, 107, "{backend:?}");
    assert_eq!(rows.past.len(), 6, "3 removed and 3 changed rows closed");
    assert_eq!(store.read_features("blocks").await.unwrap().len(), 101);

    // before, between and after
    assert!(state(&city, Some("2019-12-31")).is_empty());
    let then = state(&city, Some("2020-06-01"));
    let now = state(&city, Some("2025-06-01"));
    assert_eq!(then.len(), 100);
    assert_eq!(now.len(), 101);
    assert_eq!(
        state(&city, None),
        now,
        "without a date: the current version"
    );
    assert_eq!(height(&then, "B10"), Some(100));
    assert_eq!(height(&now, "B10"), Some(200));
    assert_eq!(height(&then, "B0"), Some(100));
    assert_eq!(height(&now, "B0"), None);
    assert_eq!(height(&then, "B100"), None);
    assert_eq!(height(&now, "B100"), Some(50));
    let current = city.layer("blocks").unwrap();
    assert!(
        Arc::ptr_eq(
            &city.layer_on(Arc::clone(&current), day("2030-01-01")),
            &current
        ),
        "a day in the current version reads the current index itself"
    );
    let past = city.layer_on(Arc::clone(&current), day("2020-06-01"));
    assert!(
        Arc::ptr_eq(
            &city.layer_on(Arc::clone(&current), day("2024-12-31")),
            &past
        ),
        "one index per version, whichever day of it is asked"
    );

    // tiles: the removed block is in 2020's tile only, the new one in today's only
    let (b0, b100) = (
        fid(&city, "B0", "2020-06-01"),
        fid(&city, "B100", "2025-06-01"),
    );
    assert!(tile_ids(&city, 0, Some("2020-06-01")).await.contains(&b0));
    assert!(!tile_ids(&city, 0, None).await.contains(&b0));
    assert!(tile_ids(&city, 100, None).await.contains(&b100));
    assert!(tile_ids(&city, 100, Some("2020-06-01")).await.is_empty());
    assert!(tile_ids(&city, 5, Some("2019-01-01")).await.is_empty());

    // the diff, as the operator sees the layer
    let (diff, _) = city
        .changes(
            &operator(),
            "blocks",
            Day::parse("2020-06-01").unwrap(),
            Day::parse("2025-06-01").unwrap(),
        )
        .unwrap();
    let (kind, fields, code) = (0, 1, diff.meta.field_index("code").unwrap());
    let mut seen: Vec<(String, String, String)> = diff
        .features()
        .iter()
        .map(|f| {
            (
                f.values[code].to_string(),
                f.values[kind].to_string(),
                f.values[fields].to_string(),
            )
        })
        .collect();
    seen.sort();
    let expect = [
        ("B0", "removed", ""),
        ("B1", "removed", ""),
        ("B10", "changed", "height"),
        ("B100", "added", ""),
        ("B101", "added", ""),
        ("B102", "added", ""),
        ("B103", "added", ""),
        ("B11", "changed", "height"),
        ("B2", "removed", ""),
        ("B20", "changed", "geometry"),
    ];
    let expect: Vec<(String, String, String)> = expect
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect();
    assert_eq!(seen, expect);
    assert!(
        city.changes(
            &operator(),
            "blocks",
            Day::parse("2025-06-01").unwrap(),
            Day::parse("2020-06-01").unwrap()
        )
        .is_err()
    );

    // a third version; the second still reads as it was
    import_as_of(&city, &v2026, Some("2026-01-01"))
        .await
        .unwrap();
    assert_eq!(height(&state(&city, Some("2025-06-01")), "B10"), Some(200));
    assert_eq!(height(&state(&city, None), "B10"), Some(305));
    assert_eq!(stored_rows(store.as_ref()).await, 108);

    // the past comes back from the store alone (a fresh twin over it)
    let reopened = City::open(Arc::clone(&store)).await.unwrap();
    assert_eq!(state(&reopened, Some("2020-06-01")), then);
    assert_eq!(
        height(&state(&reopened, Some("2025-06-01")), "B10"),
        Some(200)
    );
    let height_kind = |c: &City| {
        let l = c.layer("blocks").unwrap();
        l.meta.fields[l.meta.field_index("height").unwrap()].kind
    };
    assert_eq!(height_kind(&reopened), citytwin_city::FieldKind::Real);
    assert_eq!(height(&state(&reopened, None), "B10"), Some(305));

    // ways to get a version wrong
    let err = import_as_of(&city, &v2025, Some("2025-06-01"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("later day"), "{err}");
    let mut append = ImportRequest::new(&v2025, "blocks");
    append.mode = WriteMode::Append;
    let err = city.import(append, Arc::new(NoProgress)).await.unwrap_err();
    assert!(err.to_string().contains("--append"), "{err}");
    let twice = write(
        dir.path(),
        "twice.geojson",
        &[block(1, 10, 0.0), block(2, 10, 0.0), block(1, 12, 0.0)],
    );
    let err = import_as_of(&city, &twice, Some("2027-01-01"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("feature 3"), "{err}");
    let mut keyless = ImportRequest::new(&v2020, "other");
    keyless.as_of = Some("2020-01-01".into());
    let err = city
        .import(keyless, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--version-key"), "{err}");
    // refusals changed nothing
    assert_eq!(city.layer("blocks").unwrap().meta.versions.len(), 3);
    assert_eq!(stored_rows(store.as_ref()).await, 108);

    // a layer without versions becomes one: its rows hold from its acquisition
    let mut plain = ImportRequest::new(&v2020, "plain");
    plain.acquired = Some("2021-03-01".into());
    city.import(plain, Arc::new(NoProgress)).await.unwrap();
    assert!(city.layer("plain").unwrap().meta.versions.is_empty());
    let mut next = ImportRequest::new(&v2025, "plain");
    next.as_of = Some("2025-01-01".into());
    next.version_key = Some("code".into());
    city.import(next, Arc::new(NoProgress)).await.unwrap();
    let plain = city.layer("plain").unwrap();
    let dates: Vec<&str> = plain
        .meta
        .versions
        .iter()
        .map(|v| v.date.as_str())
        .collect();
    assert_eq!(dates, ["2021-03-01", "2025-01-01"]);
    assert_eq!(
        city.layer_on(Arc::clone(&plain), day("2022-01-01")).len(),
        100
    );
    assert_eq!(city.layer_on(plain, day("2021-02-28")).len(), 0);

    // PostGIS: a layer tiled by the store answers as of a date with ST_AsMVT
    if backend == Backend::Postgis {
        let tiled = City::open_with(
            Arc::clone(&store),
            CityOptions {
                store_tiled: ["blocks".to_owned()].into(),
                ..CityOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(!tiled.layer("blocks").unwrap().resident);
        assert!(tile_ids(&tiled, 0, Some("2020-06-01")).await.contains(&b0));
        assert!(!tile_ids(&tiled, 0, None).await.contains(&b0));
        assert!(tile_ids(&tiled, 100, None).await.contains(&b100));
        assert!(tile_ids(&tiled, 100, Some("2020-06-01")).await.is_empty());
        assert!(tile_ids(&tiled, 5, Some("2019-01-01")).await.is_empty());
    }
    store.close().await;
}

#[tokio::test]
async fn versions_on_the_geopackage() {
    run(Backend::GeoPackage).await;
}

#[tokio::test]
async fn versions_on_postgis() {
    run(Backend::Postgis).await;
}
