//! The data rules' costs in process: a level-3 layer of 60,000 calls (the city-scale hotline)
//! counted and suppressed over the whole ~11,000-unit territory tree and over H3 resolutions
//! 5–9, and its desensitised view (two personal fields masked, points snapped to 100 m).

#![allow(missing_docs, clippy::unwrap_used)]

use citytwin_city::LayerIndex;
use citytwin_city::catalog::{Classification, Mask, OpenClass, ShareClass};
use citytwin_city::generate::{CENTRES, Rng};
use citytwin_city::invisible::{H3Aggregates, TerritoryAggregates};
use citytwin_city::layer::{Feature, Field, FieldKind, GeometryKind, LayerMeta};
use citytwin_city::stats::GridAssignment;
use citytwin_city::territory::TerritoryTree;
use citytwin_tiles::Value;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use geo::{Contains, Point};
use rand::{Rng as _, SeedableRng};
use std::path::Path;

fn tree() -> (TerritoryTree, geo::MultiPolygon<f64>) {
    citytwin_benches::territory_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// `n` calls around the urban centres (most of the city's grids get none or a few).
fn calls(city: &geo::MultiPolygon<f64>, n: usize) -> LayerIndex {
    let mut rng = Rng::seed_from_u64(12_345);
    let mut features = Vec::with_capacity(n);
    while features.len() < n {
        let (lon, lat, _, sigma) = CENTRES[rng.random_range(0..CENTRES.len())];
        let d = sigma / 111.0;
        let p = Point::new(
            lon + rng.random_range(-d..d) * rng.random_range(0.0..1.0_f64),
            lat + rng.random_range(-d..d) * rng.random_range(0.0..1.0_f64),
        );
        if city.contains(&p) {
            let i = features.len();
            features.push(Feature {
                id: i as i64 + 1,
                geometry: p.into(),
                values: vec![
                    Value::from(format!("caller {i}").as_str()),
                    Value::from(format!("139{i:08}").as_str()),
                    Value::Float(rng.random_range(0.0..48.0)),
                ],
            });
        }
    }
    let mut meta = LayerMeta::new("hotline", GeometryKind::Point);
    meta.fields = vec![
        Field {
            name: "reporter".into(),
            kind: FieldKind::Text,
        },
        Field {
            name: "phone".into(),
            kind: FieldKind::Text,
        },
        Field {
            name: "hours".into(),
            kind: FieldKind::Real,
        },
    ];
    let mut c = Classification::new("ops", ShareClass::Conditional, OpenClass::Conditional, 3);
    c.personal.insert("reporter".into(), Mask::Name);
    c.personal.insert("phone".into(), Mask::Phone);
    c.aggregable = vec!["hours".into()];
    c.precision_m = Some(100);
    meta.classification = Some(c);
    LayerIndex::build(meta, features, 1)
}

fn governance(c: &mut Criterion) {
    let (tree, city) = tree();
    let index = calls(&city, 60_000);
    let assignment = GridAssignment::compute(&tree, &index);
    let mut g = c.benchmark_group("usable but invisible");
    g.sample_size(10);
    g.throughput(Throughput::Elements(index.len() as u64));
    g.bench_function(
        "territory tree: count, sum and suppress (60k calls, 11k units)",
        |b| {
            b.iter(|| TerritoryAggregates::compute(&tree, &index, &assignment));
        },
    );
    g.bench_function("H3 5-9: count, sum and suppress (60k calls)", |b| {
        b.iter(|| H3Aggregates::compute(&index));
    });
    let class = index.meta.classification.clone().unwrap();
    g.bench_function(
        "desensitised view: mask 2 fields, snap to 100 m (60k calls)",
        |b| {
            b.iter(|| citytwin_city::desensitise::view(&index, &class));
        },
    );
    g.finish();
    let t = TerritoryAggregates::compute(&tree, &index, &assignment);
    let hidden = t.units.iter().filter(|u| u.suppressed().is_some()).count();
    let h3 = H3Aggregates::compute(&index);
    eprintln!(
        "territory: {} units, {hidden} suppressed; H3 res 7: {} cells, res 9: {}",
        t.units.len(),
        h3.cells(7).len(),
        h3.cells(9).len()
    );
}

criterion_group!(benches, governance);
criterion_main!(benches);
