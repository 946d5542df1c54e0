#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! Import from every supported format and CRS into a real GeoPackage and a real PostGIS (the
//! same tests on both), its failure modes, and the GeoPackage's validity as GDAL sees it.

use citytwin_city::import::{ImportRequest, NoProgress};
use citytwin_city::store::gpkg::GeoPackageStore;
use citytwin_city::testing::Backend;
use citytwin_city::{City, Error, WriteMode};
use citytwin_tiles::proj::haversine_m;
use citytwin_tiles::{Crs, Value};
use geo::{Centroid, Geometry, MultiPolygon};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference(name: &str) -> PathBuf {
    repo().join("fixtures/reference").join(name)
}

async fn city_in(backend: Backend, dir: &Path) -> City {
    City::open(backend.fresh_store(dir).await.unwrap())
        .await
        .unwrap()
}

/// Runs each named test against the GeoPackage and the PostGIS store.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod geopackage {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::GeoPackage).await;
            })*
        }
        mod postgis {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgis).await;
            })*
        }
    };
}

on_both_stores!(
    geojson_round_trips_with_types_and_chinese_text,
    geopackage_flatgeobuf_shapefile_and_csv_import_alike,
    web_mercator_input_is_converted_to_wgs84,
    bad_files_fail_with_file_feature_and_reason_and_change_nothing,
    tile_fields_select_the_attributes_written_into_tiles,
    append_adds_features_with_fresh_ids,
);

async fn import(
    city: &City,
    path: &Path,
    layer: &str,
) -> citytwin_city::Result<citytwin_city::LayerMeta> {
    city.import(ImportRequest::new(path, layer), Arc::new(NoProgress))
        .await
}

const SAMPLE: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"新街口","floors":30,"height":120.5,"open":true},"geometry":{"type":"Polygon","coordinates":[[[118.780,32.040],[118.781,32.040],[118.781,32.041],[118.780,32.041],[118.780,32.040]]]}},
{"type":"Feature","properties":{"name":"鼓楼","floors":12,"height":40.0,"open":false},"geometry":{"type":"Polygon","coordinates":[[[118.770,32.060],[118.772,32.060],[118.772,32.062],[118.770,32.062],[118.770,32.060]]]}},
{"type":"Feature","properties":{"name":"河西","floors":5,"height":null,"open":true},"geometry":{"type":"MultiPolygon","coordinates":[[[[118.720,32.000],[118.721,32.000],[118.721,32.001],[118.720,32.001],[118.720,32.000]]]]}}
]}"#;

/// A fresh GeoPackage store in a folder, for imports tested without a twin.
async fn gpkg_store(dir: &Path) -> Arc<dyn citytwin_city::Store> {
    Arc::new(
        citytwin_city::store::gpkg::GeoPackageStore::open(&dir.join("s.gpkg"))
            .await
            .unwrap(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn ogr2ogr(args: &[&str]) {
    let out = Command::new("ogr2ogr")
        .args(args)
        .output()
        .expect("ogr2ogr (Debian gdal-bin) must be installed: run scripts/setup-test-deps");
    assert!(
        out.status.success(),
        "ogr2ogr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(v: &Value) -> &str {
    match v {
        Value::Text(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

async fn geojson_round_trips_with_types_and_chinese_text(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let city = city_in(backend, dir.path()).await;
    let meta = import(&city, &write(dir.path(), "b.geojson", SAMPLE), "sample")
        .await
        .unwrap();
    assert_eq!(meta.feature_count, 3);
    let kinds: Vec<_> = meta
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    use citytwin_city::FieldKind::*;
    assert_eq!(
        kinds,
        vec![
            ("name", Text),
            ("floors", Integer),
            ("height", Real),
            ("open", Boolean)
        ]
    );
    let back = city.store().read_features("sample").await.unwrap();
    assert_eq!(text(&back[0].values[0]), "新街口");
    assert_eq!(back[1].values[1], Value::Int(12));
    assert_eq!(back[2].values[2], Value::Null);
    assert_eq!(back[0].values[3], Value::Bool(true));
    let b = meta.bounds.unwrap();
    assert!((b[0] - 118.72).abs() < 1e-9 && (b[3] - 32.062).abs() < 1e-9);
    assert_eq!(city.layer("sample").unwrap().len(), 3);
}

async fn geopackage_flatgeobuf_shapefile_and_csv_import_alike(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let src = write(dir.path(), "src.geojson", SAMPLE);
    let d = dir.path().display().to_string();
    ogr2ogr(&[
        "-f",
        "GPKG",
        &format!("{d}/in.gpkg"),
        src.to_str().unwrap(),
        "-nln",
        "blocks",
    ]);
    ogr2ogr(&[
        "-f",
        "FlatGeobuf",
        &format!("{d}/in.fgb"),
        src.to_str().unwrap(),
    ]);
    ogr2ogr(&[
        "-f",
        "ESRI Shapefile",
        &format!("{d}/in.shp"),
        src.to_str().unwrap(),
        "-lco",
        "ENCODING=UTF-8",
    ]);
    let csv = write(
        dir.path(),
        "in.csv",
        "name,lon,lat,kind\n雨花台,118.779,31.995,park\n玄武湖,118.795,32.074,lake\n",
    );
    let city = city_in(backend, dir.path()).await;
    for (file, layer) in [
        ("in.gpkg", "from_gpkg"),
        ("in.fgb", "from_fgb"),
        ("in.shp", "from_shp"),
    ] {
        let meta = import(&city, &dir.path().join(file), layer)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(meta.feature_count, 3, "{file}");
        let idx = meta
            .field_index("name")
            .unwrap_or_else(|| panic!("{file}: no name field in {:?}", meta.fields));
        let back = city.store().read_features(layer).await.unwrap();
        let mut names: Vec<String> = back
            .iter()
            .map(|f| text(&f.values[idx]).to_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["新街口", "河西", "鼓楼"], "{file}");
        let c = back[0].geometry.centroid().unwrap();
        assert!(
            (c.x() - 118.7705).abs() < 0.02 && (c.y() - 32.04).abs() < 0.03,
            "{file}: {c:?}"
        );
    }
    let meta = import(&city, &csv, "from_csv").await.unwrap();
    assert_eq!(meta.feature_count, 2);
    assert_eq!(meta.geometry_kind, citytwin_city::GeometryKind::Point);
    let back = city.store().read_features("from_csv").await.unwrap();
    assert_eq!(
        back[0].geometry,
        Geometry::Point(geo::Point::new(118.779, 31.995))
    );
}

async fn web_mercator_input_is_converted_to_wgs84(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = citytwin_tiles::proj::lonlat_to_mercator(118.78, 32.04);
    let text = format!(
        r#"{{"type":"FeatureCollection","crs":{{"type":"name","properties":{{"name":"urn:ogc:def:crs:EPSG::3857"}}}},"features":[{{"type":"Feature","properties":{{}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}]}}"#
    );
    let city = city_in(backend, dir.path()).await;
    let meta = import(&city, &write(dir.path(), "m.geojson", &text), "merc")
        .await
        .unwrap();
    assert!(meta.source.contains("EPSG:3857"), "{}", meta.source);
    let back = city.store().read_features("merc").await.unwrap();
    let Geometry::Point(p) = back[0].geometry else {
        panic!()
    };
    assert!((p.x() - 118.78).abs() < 1e-9 && (p.y() - 32.04).abs() < 1e-9);
}

fn centroids(
    features: &[citytwin_city::Feature],
    code_field: usize,
    strip: &str,
) -> Vec<(String, (f64, f64))> {
    let mut v: Vec<_> = features
        .iter()
        .map(|f| {
            let code = match &f.values[code_field] {
                Value::Text(s) => s.trim_start_matches(strip).to_owned(),
                Value::Int(i) => i.to_string(),
                other => panic!("{other:?}"),
            };
            let c = f.geometry.centroid().unwrap();
            (code, (c.x(), c.y()))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The Amap districts are GCJ-02; converted on import they must fall onto Tianditu's.
#[tokio::test]
async fn gcj02_amap_districts_land_on_tianditu_districts() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_in(Backend::GeoPackage, dir.path()).await;
    let t = import(
        &city,
        &reference("nanjing_districts_tianditu_cgcs2000.geojson"),
        "tianditu",
    )
    .await
    .unwrap();
    let mut req = ImportRequest::new(reference("nanjing_districts_amap_gcj02.geojson"), "amap");
    req.crs = Some(Crs::Gcj02);
    let a = city.import(req, Arc::new(NoProgress)).await.unwrap();
    let raw = import(
        &city,
        &reference("nanjing_districts_amap_gcj02.geojson"),
        "amap_raw",
    )
    .await
    .unwrap();
    let tc = centroids(
        &city.store().read_features("tianditu").await.unwrap(),
        t.field_index("gb").unwrap(),
        "156",
    );
    let ac = centroids(
        &city.store().read_features("amap").await.unwrap(),
        a.field_index("adcode").unwrap(),
        "",
    );
    let rc = centroids(
        &city.store().read_features("amap_raw").await.unwrap(),
        raw.field_index("adcode").unwrap(),
        "",
    );
    assert_eq!(tc.len(), 11);
    // The two sets are different surveys (Amap's is finer, and draws Jiangning in two parts and
    // Lishui in three), so single districts differ by up to a few hundred metres whatever the
    // datum. What the datum shifts is every district the same way: that systematic offset must
    // vanish, and each district must move much closer.
    let (mut before_e, mut before_n, mut after_e, mut after_n) = (0.0, 0.0, 0.0, 0.0);
    let mut afters = Vec::new();
    for ((tcode, tp), ((acode, ap), (_, rp))) in tc.iter().zip(ac.iter().zip(&rc)) {
        assert_eq!(tcode, acode);
        let after = haversine_m(*tp, *ap);
        let before = haversine_m(*tp, *rp);
        eprintln!("district {tcode}: {before:.0} m apart before conversion, {after:.0} m after");
        assert!(
            before > 300.0,
            "district {tcode}: only {before:.1} m apart before conversion"
        );
        assert!(
            after < before,
            "district {tcode}: {after:.1} m after vs {before:.1} m before"
        );
        afters.push(after);
        before_e += (rp.0 - tp.0) * 94_400.0 / 11.0;
        before_n += (rp.1 - tp.1) * 110_570.0 / 11.0;
        after_e += (ap.0 - tp.0) * 94_400.0 / 11.0;
        after_n += (ap.1 - tp.1) * 110_570.0 / 11.0;
    }
    let before = f64::hypot(before_e, before_n);
    let after = f64::hypot(after_e, after_n);
    eprintln!("mean offset: {before:.0} m before conversion, {after:.0} m after");
    assert!(
        before > 450.0,
        "mean offset before conversion {before:.0} m"
    );
    assert!(after < 50.0, "mean offset after conversion {after:.0} m");
    afters.sort_by(f64::total_cmp);
    assert!(
        afters[5] < 100.0,
        "median district distance after conversion {:.0} m",
        afters[5]
    );
    // and the shapes overlap better: intersection over union per district
    let shapes = |fs: Vec<citytwin_city::Feature>,
                  idx: usize,
                  strip: &str|
     -> Vec<(String, MultiPolygon<f64>)> {
        let mut v: Vec<_> = fs
            .into_iter()
            .map(|f| {
                let code = match &f.values[idx] {
                    Value::Text(s) => s.trim_start_matches(strip).to_owned(),
                    Value::Int(i) => i.to_string(),
                    other => panic!("{other:?}"),
                };
                let mp = match f.geometry {
                    Geometry::MultiPolygon(mp) => mp,
                    Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
                    other => panic!("{other:?}"),
                };
                (code, mp)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let ts = shapes(
        city.store().read_features("tianditu").await.unwrap(),
        t.field_index("gb").unwrap(),
        "156",
    );
    let as_ = shapes(
        city.store().read_features("amap").await.unwrap(),
        a.field_index("adcode").unwrap(),
        "",
    );
    let rs = shapes(
        city.store().read_features("amap_raw").await.unwrap(),
        raw.field_index("adcode").unwrap(),
        "",
    );
    for ((code, tshape), ((_, ashape), (_, rshape))) in ts.iter().zip(as_.iter().zip(&rs)) {
        use geo::{Area, BooleanOps};
        let iou = |o: &MultiPolygon<f64>| {
            tshape.intersection(o).unsigned_area() / tshape.union(o).unsigned_area()
        };
        let (after, before) = (iou(ashape), iou(rshape));
        eprintln!("district {code}: overlap {before:.3} before conversion, {after:.3} after");
        assert!(
            after > before && after > 0.92,
            "district {code}: overlap {after:.3} after, {before:.3} before"
        );
    }
}

async fn assert_unchanged(city: &City, layer: &str, before: &[citytwin_city::Feature]) {
    assert_eq!(city.store().read_features(layer).await.unwrap(), before);
    assert_eq!(city.layer(layer).unwrap().len(), before.len());
}

async fn bad_files_fail_with_file_feature_and_reason_and_change_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let city = city_in(backend, dir.path()).await;
    let good = write(dir.path(), "good.geojson", SAMPLE);
    import(&city, &good, "blocks").await.unwrap();
    let before = city.store().read_features("blocks").await.unwrap();

    // a bow-tie polygon is invalid
    let bowtie = SAMPLE.replacen(
        "[[[118.770,32.060],[118.772,32.060],[118.772,32.062],[118.770,32.062],[118.770,32.060]]]",
        "[[[118.770,32.060],[118.772,32.062],[118.772,32.060],[118.770,32.062],[118.770,32.060]]]",
        1,
    );
    let err = import(
        &city,
        &write(dir.path(), "bowtie.geojson", &bowtie),
        "blocks",
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::ImportFeature { feature: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("bowtie.geojson") && msg.contains("self-intersection"),
        "{msg}"
    );
    assert_unchanged(&city, "blocks", &before).await;

    // a point among polygons
    let mixed = SAMPLE.replacen(
        r#"{"type":"MultiPolygon","coordinates":[[[[118.720,32.000],[118.721,32.000],[118.721,32.001],[118.720,32.001],[118.720,32.000]]]]}"#,
        r#"{"type":"Point","coordinates":[118.72,32.0]}"#,
        1,
    );
    let err = import(&city, &write(dir.path(), "mixed.geojson", &mixed), "blocks")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ImportFeature { feature: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("wrong geometry type"), "{err}");
    assert_unchanged(&city, "blocks", &before).await;

    // a file cut off in the middle of its third feature
    let cut = &SAMPLE[..SAMPLE.rfind("118.721").unwrap()];
    let err = import(&city, &write(dir.path(), "cut.geojson", cut), "blocks")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ImportFeature { feature: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_unchanged(&city, "blocks", &before).await;

    // coordinates that are not longitude/latitude
    let projected = SAMPLE.replace("118.780,32.040", "500000,3500000");
    let err = import(
        &city,
        &write(dir.path(), "proj.geojson", &projected),
        "blocks",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::ImportFeature { feature: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--crs"), "{err}");
    assert_unchanged(&city, "blocks", &before).await;

    // a CRS citytwin's readers do not know, declared by a shapefile's .prj …
    let d = dir.path().display().to_string();
    ogr2ogr(&[
        "-f",
        "ESRI Shapefile",
        &format!("{d}/utm.shp"),
        good.to_str().unwrap(),
        "-t_srs",
        "EPSG:32650",
    ]);
    // … goes through GDAL, which knows it: the blocks land where they were
    let meta = import(&city, &dir.path().join("utm.shp"), "utm")
        .await
        .unwrap();
    let b = meta.bounds.unwrap();
    assert!(
        (b[0] - 118.72).abs() < 1e-6 && (b[3] - 32.062).abs() < 1e-6,
        "{b:?}"
    );
    assert!(meta.source.contains("read by GDAL"), "{}", meta.source);
    assert_unchanged(&city, "blocks", &before).await;

    // an unknown CRS named by the operator
    assert!(Crs::parse("EPSG:32650").is_err());

    // a truncated FlatGeobuf
    ogr2ogr(&[
        "-f",
        "FlatGeobuf",
        &format!("{d}/whole.fgb"),
        good.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(dir.path().join("whole.fgb")).unwrap();
    std::fs::write(dir.path().join("half.fgb"), &bytes[..bytes.len() - 60]).unwrap();
    let err = import(&city, &dir.path().join("half.fgb"), "blocks")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("half.fgb"), "{err}");
    assert_unchanged(&city, "blocks", &before).await;

    // an unknown extension and a missing file
    assert!(
        import(&city, &write(dir.path(), "x.kml", "<kml/>"), "blocks")
            .await
            .is_err()
    );
    assert!(
        import(&city, &dir.path().join("nope.geojson"), "blocks")
            .await
            .is_err()
    );
    // a bad layer name
    assert!(matches!(
        import(&city, &good, "Bad-Name").await,
        Err(Error::InvalidLayerName(_))
    ));
    assert_unchanged(&city, "blocks", &before).await;
}

async fn tile_fields_select_the_attributes_written_into_tiles(backend: Backend) {
    use citytwin_city::TileRequest;
    use geozero::mvt::{Message, Tile};
    let dir = tempfile::tempdir().unwrap();
    let city = city_in(backend, dir.path()).await;
    let good = write(dir.path(), "good.geojson", SAMPLE);
    let mut req = ImportRequest::new(&good, "blocks");
    req.tile_fields = Some(vec!["name".into(), "height".into()]);
    let meta = city.import(req, Arc::new(NoProgress)).await.unwrap();
    assert_eq!(meta.fields.len(), 4, "the store keeps every field");
    let (x, y) = citytwin_tiles::proj::lonlat_to_mercator(118.7805, 32.0405);
    let tile = city
        .tile(&TileRequest {
            layers: &["blocks".to_owned()],
            coord: citytwin_tiles::TileCoord::containing(x, y, 15),
            budget: citytwin_tiles::TileBudget::default(),
            plans: &[],
            at: None,
        })
        .await
        .unwrap();
    let decoded = Tile::decode(tile.bytes.as_slice()).unwrap();
    assert_eq!(
        decoded.layers[0].keys,
        vec!["name".to_owned(), "height".to_owned()]
    );
    let mut req = ImportRequest::new(&good, "blocks");
    req.tile_fields = Some(vec!["nosuch".into()]);
    let err = city.import(req, Arc::new(NoProgress)).await.unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");
}

async fn append_adds_features_with_fresh_ids(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let city = city_in(backend, dir.path()).await;
    let good = write(dir.path(), "good.geojson", SAMPLE);
    import(&city, &good, "blocks").await.unwrap();
    let mut req = ImportRequest::new(&good, "blocks");
    req.mode = WriteMode::Append;
    let meta = city.import(req, Arc::new(NoProgress)).await.unwrap();
    assert_eq!(meta.feature_count, 6);
    let ids: Vec<i64> = city
        .store()
        .read_features("blocks")
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(city.layer("blocks").unwrap().len(), 6);
}

/// GDAL must see a valid GeoPackage and read our features back.
#[tokio::test]
async fn ogrinfo_reads_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gpkg");
    {
        let store = GeoPackageStore::open(&path).await.unwrap();
        let city = City::open(Arc::new(store.clone())).await.unwrap();
        import(
            &city,
            &reference("nanjing_districts_tianditu_cgcs2000.geojson"),
            "districts",
        )
        .await
        .unwrap();
        import(&city, &write(dir.path(), "s.geojson", SAMPLE), "sample")
            .await
            .unwrap();
        store.close().await;
    }
    let out = Command::new("ogrinfo")
        .args(["-ro", "-so", "-al"])
        .arg(&path)
        .output()
        .expect("ogrinfo (Debian gdal-bin) must be installed: run scripts/setup-test-deps");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("driver `GPKG'"), "{text}");
    assert!(
        text.contains("Layer name: districts") && text.contains("Feature Count: 11"),
        "{text}"
    );
    assert!(text.contains("Geometry: Multi Polygon"), "{text}");
    assert!(
        text.contains("EPSG\",4326") || text.contains("WGS 84"),
        "{text}"
    );
    let out = Command::new("ogrinfo")
        .args(["-ro", "-q"])
        .arg(&path)
        .args(["sample", "-where", "floors = 12"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name (String) = 鼓楼"), "{text}");
    assert!(text.contains("MULTIPOLYGON (((118.77 32.06"), "{text}");
    // GDAL's own validation of the file structure
    let out = Command::new("ogrinfo")
        .args(["-ro", "--config", "OGR_GPKG_INTEGRITY_CHECK", "YES"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("ERROR"), "{err}");
}

#[test]
fn reference_outline_covers_the_districts() {
    use geo::Area;
    let read = |name: &str| -> MultiPolygon<f64> {
        let text = std::fs::read_to_string(reference(name)).unwrap();
        let fc: geojson::FeatureCollection = text.parse().unwrap();
        let polys = fc.features.into_iter().flat_map(|f| {
            match Geometry::<f64>::try_from(f.geometry.unwrap()).unwrap() {
                Geometry::Polygon(p) => vec![p],
                Geometry::MultiPolygon(mp) => mp.0,
                _ => vec![],
            }
        });
        MultiPolygon::new(polys.collect())
    };
    let city = read("nanjing_city_tianditu_cgcs2000.geojson").unsigned_area();
    let districts = read("nanjing_districts_tianditu_cgcs2000.geojson").unsigned_area();
    assert!(
        (city - districts).abs() / city < 0.01,
        "city {city} vs districts {districts}"
    );
}

/// Real data is dirty: `--invalid skip` leaves out what cannot be taken, `--invalid repair`
/// makes geometries valid as ST_MakeValid does; both say which features and why, and
/// `fail` (the default) still stops at the first, saying how to go on.
#[tokio::test]
async fn invalid_geometries_fail_skip_or_repair_with_a_report() {
    use citytwin_city::import::{Invalid, import as import_file};
    use geo::Validation;
    let dir = tempfile::tempdir().unwrap();
    let store = gpkg_store(dir.path()).await;
    let dirty = write(
        dir.path(),
        "dirty.geojson",
        r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"id":"ok-1"},"geometry":{"type":"Polygon","coordinates":[[[118.780,32.040],[118.781,32.040],[118.781,32.041],[118.780,32.041],[118.780,32.040]]]}},
{"type":"Feature","properties":{"id":"bowtie"},"geometry":{"type":"Polygon","coordinates":[[[118.770,32.060],[118.772,32.062],[118.772,32.060],[118.770,32.062],[118.770,32.060]]]}},
{"type":"Feature","properties":{"id":"two-points"},"geometry":{"type":"Polygon","coordinates":[[[118.750,32.050],[118.751,32.051],[118.750,32.050]]]}},
{"type":"Feature","properties":{"id":"edge-hole"},"geometry":{"type":"Polygon","coordinates":[[[118.700,32.000],[118.704,32.000],[118.704,32.004],[118.700,32.004],[118.700,32.000]],[[118.700,32.000],[118.702,32.000],[118.702,32.002],[118.700,32.002],[118.700,32.000]]]}},
{"type":"Feature","properties":{"id":"no-geometry"},"geometry":null},
{"type":"Feature","properties":{"id":"ok-2"},"geometry":{"type":"Polygon","coordinates":[[[118.790,32.040],[118.791,32.040],[118.791,32.041],[118.790,32.041],[118.790,32.040]]]}}
]}"#,
    );
    let req = |invalid| {
        let mut r = ImportRequest::new(&dirty, "dirty");
        r.invalid = invalid;
        r
    };
    let err = import_file(store.as_ref(), req(Invalid::Fail), Arc::new(NoProgress))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::ImportFeature { feature: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("--invalid repair") && msg.contains("--invalid skip"),
        "{msg}"
    );
    assert!(
        store.layers().await.unwrap().is_empty(),
        "fail writes nothing"
    );

    let skipped = import_file(store.as_ref(), req(Invalid::Skip), Arc::new(NoProgress))
        .await
        .unwrap();
    let listed: Vec<(usize, Option<&str>, &str)> = skipped
        .amended
        .iter()
        .map(|a| (a.feature, a.id.as_deref(), a.action))
        .collect();
    assert_eq!(
        listed,
        [
            (2, Some("bowtie"), "skipped"),
            (3, Some("two-points"), "skipped"),
            (4, Some("edge-hole"), "skipped"),
            (5, Some("no-geometry"), "skipped"),
        ]
    );
    assert_eq!(skipped.meta.feature_count, 2);
    // kept features keep their number in the file as their id
    let ids: Vec<i64> = store
        .read_features("dirty")
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, [1, 6]);

    let repaired = import_file(store.as_ref(), req(Invalid::Repair), Arc::new(NoProgress))
        .await
        .unwrap();
    let listed: Vec<(usize, &str)> = repaired
        .amended
        .iter()
        .map(|a| (a.feature, a.action))
        .collect();
    assert_eq!(
        listed,
        [
            (2, "repaired"),
            (3, "skipped"),
            (4, "repaired"),
            (5, "skipped")
        ]
    );
    assert!(repaired.amended[0].reason.contains("self-intersection"));
    assert!(repaired.amended[1].reason.contains("nothing valid is left"));
    let features = store.read_features("dirty").await.unwrap();
    assert_eq!(features.len(), 4);
    for f in &features {
        assert!(f.geometry.is_valid(), "feature {} is still invalid", f.id);
    }
    let report = dir.path().join("report.csv");
    citytwin_city::import::write_report(&report, &repaired.amended).unwrap();
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("feature,id,action,reason\n"), "{text}");
    assert!(
        text.contains(
            "2,\"bowtie\",repaired,\"invalid geometry: exterior ring has a self-intersection\""
        ),
        "{text}"
    );
}

/// What GDAL reads imports through GDAL, converted from any CRS it knows: a KML, an Esri File
/// Geodatabase and a GeoPackage in CGCS2000's 3-degree Gauss-Krüger zone 120°E (EPSG:4549),
/// all made with `ogr2ogr` from the districts, land as the districts themselves do; so does a
/// shapefile without `.prj` given `--crs EPSG:4549`.
#[tokio::test]
async fn gdal_formats_and_crs_import_like_the_native_ones() {
    use citytwin_city::import::import as import_file;
    let dir = tempfile::tempdir().unwrap();
    let src = repo().join("fixtures/nanjing/districts.geojson");
    let src = src.to_str().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    ogr2ogr(&["-f", "KML", &at("d.kml"), src]);
    ogr2ogr(&["-f", "OpenFileGDB", &at("d.gdb"), src, "-nln", "districts"]);
    ogr2ogr(&["-f", "GPKG", &at("d4549.gpkg"), src, "-t_srs", "EPSG:4549"]);
    ogr2ogr(&[
        "-f",
        "ESRI Shapefile",
        &at("d4549.shp"),
        src,
        "-t_srs",
        "EPSG:4549",
        "-lco",
        "ENCODING=UTF-8",
    ]);
    std::fs::remove_file(dir.path().join("d4549.prj")).unwrap();
    let store = gpkg_store(dir.path()).await;
    let native = import_file(
        store.as_ref(),
        ImportRequest::new(repo().join("fixtures/nanjing/districts.geojson"), "native"),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let want = native.meta.bounds.unwrap();
    for (file, crs) in [
        ("d.kml", None),
        ("d.gdb", None),
        ("d4549.gpkg", None),
        ("d4549.shp", Some("EPSG:4549")),
    ] {
        let mut req = ImportRequest::new(dir.path().join(file), "via_gdal");
        req.source_crs = crs.map(str::to_owned);
        let got = import_file(store.as_ref(), req, Arc::new(NoProgress))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got.meta.feature_count, native.meta.feature_count, "{file}");
        let b = got.meta.bounds.unwrap();
        for i in 0..4 {
            assert!(
                (b[i] - want[i]).abs() < 1e-6,
                "{file}: bounds {b:?}, want {want:?}"
            );
        }
        let names: Vec<String> = store
            .read_features("via_gdal")
            .await
            .unwrap()
            .iter()
            .filter_map(|f| {
                got.meta
                    .fields
                    .iter()
                    .position(|x| x.name.eq_ignore_ascii_case("name"))
                    .map(|i| f.values[i].to_string())
            })
            .collect();
        assert!(
            names.iter().any(|n| n.contains("玄武")),
            "{file}: {names:?}"
        );
    }
    // a KML with several layers asks which
    ogr2ogr(&["-f", "GPKG", &at("two.gpkg"), src, "-nln", "a"]);
    ogr2ogr(&["-f", "GPKG", "-update", &at("two.gpkg"), src, "-nln", "b"]);
    ogr2ogr(&["-f", "KML", &at("two.kml"), &at("two.gpkg")]);
    let err = import_file(
        store.as_ref(),
        ImportRequest::new(dir.path().join("two.kml"), "two"),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--source-layer") && err.contains("a, b"),
        "{err}"
    );
}

/// A real OpenStreetMap extract (fixtures/osm, ODbL) makes base-map layers through GDAL, its
/// tags mapped to the layers' fields; about 1.5% of its buildings are invalid as mapped: `fail`
/// stops at the first, `repair` makes them valid (each listed) and leaves out what collapses.
#[tokio::test]
async fn an_osm_extract_imports_as_it_is_with_repair() {
    use citytwin_city::import::gdal::Osm;
    use citytwin_city::import::{Invalid, import as import_file};
    use geo::Validation;
    let dir = tempfile::tempdir().unwrap();
    let store = gpkg_store(dir.path()).await;
    let pbf = repo().join("fixtures/osm/finland-sample.osm.pbf");
    let req = |osm, invalid| {
        let mut r = ImportRequest::new(&pbf, "osm");
        r.osm = Some(osm);
        r.invalid = invalid;
        r
    };
    let err = import_file(
        store.as_ref(),
        req(Osm::Buildings, Invalid::Fail),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ImportFeature { .. }), "{err}");
    assert!(err.to_string().contains("--invalid repair"), "{err}");

    let got = import_file(
        store.as_ref(),
        req(Osm::Buildings, Invalid::Repair),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let repaired = got
        .amended
        .iter()
        .filter(|a| a.action == "repaired")
        .count();
    let skipped = got.amended.len() - repaired;
    assert!(repaired >= 5 && skipped >= 5, "{:?}", got.amended);
    assert!(
        got.amended.iter().all(|a| a.id.is_some()),
        "OSM ids in the report"
    );
    assert!(got.meta.feature_count > 2000, "{}", got.meta.feature_count);
    let fields: Vec<&str> = got.meta.fields.iter().map(|f| f.name.as_str()).collect();
    for f in ["osm_id", "use", "height", "floors", "year", "name"] {
        assert!(fields.contains(&f), "{fields:?}");
    }
    let features = store.read_features("osm").await.unwrap();
    let invalid: Vec<i64> = features
        .iter()
        .filter(|f| !f.geometry.is_valid())
        .map(|f| f.id)
        .collect();
    assert!(
        invalid.is_empty(),
        "still invalid after repair: {invalid:?}"
    );
    let floors = got
        .meta
        .fields
        .iter()
        .position(|f| f.name == "floors")
        .unwrap();
    assert!(
        features
            .iter()
            .any(|f| matches!(f.values[floors], Value::Int(n) if n > 0)),
        "building:levels mapped to floors"
    );

    let roads = import_file(
        store.as_ref(),
        req(Osm::Roads, Invalid::Repair),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert!(roads.meta.feature_count > 100);
    let class = roads
        .meta
        .fields
        .iter()
        .position(|f| f.name == "class")
        .unwrap();
    let classes: std::collections::BTreeSet<String> = store
        .read_features("osm")
        .await
        .unwrap()
        .iter()
        .map(|f| f.values[class].to_string())
        .collect();
    assert!(classes.contains("residential"), "{classes:?}");

    let pois = import_file(
        store.as_ref(),
        req(Osm::Pois, Invalid::Fail),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert!(pois.meta.feature_count > 0);
    let err = import_file(
        store.as_ref(),
        req(Osm::Water, Invalid::Fail),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nothing for --osm water"), "{err}");
}

/// A new layer's maximum zoom follows its density (as tippecanoe's -zg): a sparse layer stays
/// at 14; 30,000 points in a few hundred metres go deeper, so that at full detail, where every
/// feature must be in the tile, the tile still fits; a given --maxzoom wins.
#[tokio::test]
async fn a_dense_layer_gets_a_deeper_maxzoom() {
    use citytwin_city::import::import as import_file;
    let dir = tempfile::tempdir().unwrap();
    let store = gpkg_store(dir.path()).await;
    let sparse = import_file(
        store.as_ref(),
        ImportRequest::new(write(dir.path(), "s.geojson", SAMPLE), "sparse"),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(sparse.meta.maxzoom, 14);
    let points: Vec<String> = (0..30_000)
        .map(|i| {
            let (x, y) = (118.780 + f64::from(i % 200) * 0.00002, 32.040 + f64::from(i / 200) * 0.00002);
            format!(r#"{{"type":"Feature","properties":{{"n":{i}}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}"#)
        })
        .collect();
    let dense = write(
        dir.path(),
        "dense.geojson",
        &format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            points.join(",")
        ),
    );
    let got = import_file(
        store.as_ref(),
        ImportRequest::new(&dense, "dense"),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert!(got.meta.maxzoom >= 16, "{}", got.meta.maxzoom);
    // every feature of the densest full-detail tile fits the default budget there
    let city = City::open(Arc::clone(&store)).await.unwrap();
    let index = city.layer("dense").unwrap();
    let (x, y) = citytwin_tiles::proj::lonlat_to_mercator(118.782, 32.0415);
    let coord = citytwin_tiles::TileCoord::containing(x, y, got.meta.maxzoom);
    let out =
        citytwin_city::twin::encode_layer(&index, coord, &citytwin_tiles::TileBudget::default())
            .unwrap()
            .unwrap();
    assert!(
        !out.stats.over_budget && out.stats.fields_dropped == 0,
        "{:?}",
        out.stats
    );
    let mut req = ImportRequest::new(&dense, "dense_given");
    req.maxzoom = Some(14);
    let given = import_file(store.as_ref(), req, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(given.meta.maxzoom, 14);
}
