//! The planners' queries in process: point → grid over the ~10,000-grid tree, per-grid counts
//! over 1 million points (assigning them, then counting with a filter), and OGC API item
//! queries for a z14-sized bbox over the city-scale buildings.

#![allow(missing_docs, clippy::unwrap_used)]

use citytwin_benches::{city_buildings, tile_list};
use citytwin_city::LayerIndex;
use citytwin_city::filter::Filter;
use citytwin_city::generate::Rng;
use citytwin_city::layer::{Feature, Field, FieldKind, GeometryKind, LayerMeta};
use citytwin_city::query::{Limits, Selection, page};
use citytwin_city::stats::{GridAssignment, StatsRequest, statistics};
use citytwin_city::territory::{Level, TerritoryTree};
use citytwin_tiles::Value;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use geo::{Contains, Point};
use rand::{Rng as _, SeedableRng};
use std::path::Path;

/// The territory tree of the committed fixture set, and the city outline.
fn tree() -> (TerritoryTree, geo::MultiPolygon<f64>) {
    citytwin_benches::territory_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// `n` random points inside the city, with a category and a value.
fn points(city: &geo::MultiPolygon<f64>, n: usize) -> Vec<Feature> {
    let mut rng = Rng::seed_from_u64(7);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = Point::new(
            rng.random_range(118.36..119.24),
            rng.random_range(31.23..32.62),
        );
        if city.contains(&p) {
            out.push(Feature {
                id: out.len() as i64 + 1,
                geometry: p.into(),
                values: vec![
                    Value::from(["open", "closed"][out.len() % 2]),
                    Value::Float(rng.random_range(0.0..100.0)),
                ],
            });
        }
    }
    out
}

fn planners(c: &mut Criterion) {
    let (tree, city) = tree();
    eprintln!(
        "tree: {} units, {} grids",
        tree.units().len(),
        tree.grid_count()
    );
    let pts = points(&city, 1_000_000);
    let coords: Vec<(f64, f64)> = pts
        .iter()
        .map(|f| match &f.geometry {
            geo::Geometry::Point(p) => (p.x(), p.y()),
            _ => unreachable!(),
        })
        .collect();

    let mut g = c.benchmark_group("locate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(coords.len() as u64));
    g.bench_function("1M points, one core", |b| {
        b.iter(|| {
            coords
                .iter()
                .filter_map(|&(x, y)| tree.locate(x, y))
                .count()
        });
    });
    g.bench_function("1M points, one core, without the raster", |b| {
        b.iter(|| {
            coords
                .iter()
                .filter_map(|&(x, y)| tree.locate_exact(x, y))
                .count()
        });
    });
    g.finish();

    let mut meta = LayerMeta::new("incidents", GeometryKind::Point);
    meta.fields = vec![
        Field {
            name: "status".into(),
            kind: FieldKind::Text,
        },
        Field {
            name: "value".into(),
            kind: FieldKind::Real,
        },
    ];
    let layer = LayerIndex::build(meta, pts, 1);
    let limits = Limits::default();
    let mut g = c.benchmark_group("per_grid_counts");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("assign 1M points to grids (all cores)", |b| {
        b.iter(|| GridAssignment::compute(&tree, &layer).per_grid.len());
    });
    let assignment = GridAssignment::compute(&tree, &layer);
    let plain = StatsRequest {
        level: Level::Grid,
        within: None,
        field: None,
        selection: Selection::default(),
    };
    g.bench_function("count 1M assigned points per grid", |b| {
        b.iter(|| {
            statistics(&tree, &layer, &assignment, &plain, &limits)
                .unwrap()
                .len()
        });
    });
    let filtered = StatsRequest {
        level: Level::Grid,
        within: None,
        field: layer.meta.field_index("value"),
        selection: Selection {
            filter: Some(Filter::parse("status = 'open' AND value > 10", &layer.meta).unwrap()),
            ..Selection::default()
        },
    };
    g.bench_function("count and sum 1M points per grid with a CQL2 filter", |b| {
        b.iter(|| {
            statistics(&tree, &layer, &assignment, &filtered, &limits)
                .unwrap()
                .len()
        });
    });
    g.finish();

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let buildings = city_buildings(&repo);
    let tiles = tile_list(&buildings, 1000, 14..=14, 7);
    let boxes: Vec<Selection> = tiles
        .iter()
        .map(|t| Selection {
            bbox: Some(t.bounds()),
            ..Selection::default()
        })
        .collect();
    let mut g = c.benchmark_group("items_z14_bbox");
    g.sample_size(10);
    g.throughput(Throughput::Elements(boxes.len() as u64));
    for limit in [10, 100] {
        g.bench_function(
            format!("1000 z14 boxes over 1.05M buildings, limit {limit}"),
            |b| {
                b.iter(|| {
                    boxes
                        .iter()
                        .map(|s| {
                            page(&buildings, s, 0, limit, &limits, None)
                                .unwrap()
                                .features
                                .len()
                        })
                        .sum::<usize>()
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, planners);
criterion_main!(benches);
