#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! The fuzz targets' corpora (`fuzz/corpus/<target>`: the seeds and every input a run of
//! `benches/fuzz.sh` found new coverage with) and the cases that once failed
//! (`fuzz/regressions/<target>`), replayed through the same harnesses on every test run:
//! none may panic.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            assert!(
                std::panic::catch_unwind(|| harness(&data)).is_ok(),
                "{} panicked",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no inputs for {target}");
}

#[test]
fn import_readers() {
    replay("import", |d| {
        let _ = citytwin::fuzzing::import(d);
    });
    // the seeds reach the readers: each format's seed is read whole
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/import");
    for (seed, features) in [
        ("geojson", 1),
        ("fgb", 1),
        ("gpkg", 1),
        ("shp", 1),
        ("csv", 2),
    ] {
        let data = std::fs::read(seeds.join(seed)).unwrap();
        assert_eq!(
            citytwin::fuzzing::import(&data),
            Some(features),
            "the {seed} seed"
        );
    }
}

#[test]
fn cql2_filters() {
    replay("cql2", citytwin::fuzzing::cql2);
}

#[test]
fn query_and_tile_parameters() {
    replay("params", citytwin::fuzzing::params);
}

#[test]
fn styles_and_dashboard_layouts() {
    replay("styles", citytwin::fuzzing::styles);
}

#[test]
fn mqtt_payloads() {
    replay("mqtt", citytwin::fuzzing::mqtt);
}
