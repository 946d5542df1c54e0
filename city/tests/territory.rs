#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! The committed fixture set: the five-level tree partitions each parent exactly, codes extend
//! their parents' codes, and the generator reproduces the committed files byte for byte.

use citytwin_city::LayerIndex;
use citytwin_city::generate::{Reference, Scale, generate, read_manifest, write_fixtures};
use citytwin_city::import::NoProgress;
use citytwin_city::territory::{Level, TerritoryTree};
use geo::{Area, BooleanOps, BoundingRect, Geometry, MultiPolygon};
use rand::{Rng as _, SeedableRng};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Unit {
    code: String,
    parent: String,
    shape: MultiPolygon<f64>,
}

fn load(layer: &str) -> Vec<Unit> {
    let text = std::fs::read_to_string(
        repo()
            .join("fixtures/nanjing")
            .join(format!("{layer}.geojson")),
    )
    .unwrap();
    let fc: geojson::FeatureCollection = text.parse().unwrap();
    fc.features
        .into_iter()
        .map(|f| {
            let props = f.properties.clone().unwrap();
            let shape = match Geometry::<f64>::try_from(f.geometry.unwrap()).unwrap() {
                Geometry::MultiPolygon(mp) => mp,
                Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
                other => panic!("{other:?}"),
            };
            Unit {
                code: props["code"].as_str().unwrap().to_owned(),
                parent: props["parent"].as_str().unwrap().to_owned(),
                shape,
            }
        })
        .collect()
}

/// The area of a 1e-7° (about 1 cm) band along a shape's boundary: the rounding of the
/// coordinates written to GeoJSON may move the boundary that much.
fn band(shape: &MultiPolygon<f64>) -> f64 {
    use geo::{Euclidean, Length};
    let perimeter: f64 = shape
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .map(|r| Euclidean.length(r))
        .sum();
    perimeter * 1e-7
}

/// Children cover their parent with no gap and no overlap, and stay inside it.
fn assert_partition(parents: &[Unit], children: &[Unit], code_digits: usize) {
    let by_code: HashMap<&str, &Unit> = parents.iter().map(|p| (p.code.as_str(), p)).collect();
    let mut sums: HashMap<&str, f64> = HashMap::new();
    let mut bands: HashMap<&str, f64> = HashMap::new();
    for c in children {
        assert_eq!(c.code.len(), code_digits, "code {}", c.code);
        assert!(
            c.code.starts_with(&c.parent),
            "{} does not extend {}",
            c.code,
            c.parent
        );
        let parent = by_code
            .get(c.parent.as_str())
            .unwrap_or_else(|| panic!("no parent {}", c.parent));
        let outside = c.shape.difference(&parent.shape).unsigned_area();
        // coordinates are written to 1e-7° (1 cm): allow that much along the boundary
        assert!(
            outside < band(&c.shape),
            "{} sticks out of {} by {outside}",
            c.code,
            c.parent
        );
        *sums.entry(c.parent.as_str()).or_default() += c.shape.unsigned_area();
        *bands.entry(c.parent.as_str()).or_default() += band(&c.shape);
    }
    for p in parents {
        let sum = sums.get(p.code.as_str()).copied().unwrap_or(0.0);
        let area = p.shape.unsigned_area();
        let tolerance = bands.get(p.code.as_str()).copied().unwrap_or(0.0);
        assert!(
            (sum - area).abs() < tolerance,
            "children of {} cover {sum} of {area}",
            p.code
        );
    }
    // siblings and cousins touching each other overlap by nothing
    let tree = RTree::bulk_load(
        children
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let r = c.shape.bounding_rect().unwrap();
                GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                )
            })
            .collect(),
    );
    for (i, c) in children.iter().enumerate() {
        let r = c.shape.bounding_rect().unwrap();
        for other in tree.locate_in_envelope_intersecting(&AABB::from_corners(
            [r.min().x, r.min().y],
            [r.max().x, r.max().y],
        )) {
            if other.data > i {
                let o = &children[other.data].shape;
                let overlap = c.shape.intersection(o).unsigned_area();
                assert!(
                    overlap < band(&c.shape).min(band(o)),
                    "{} and {} overlap by {overlap}",
                    c.code,
                    children[other.data].code
                );
            }
        }
    }
}

#[test]
fn five_levels_partition_their_parents() {
    let districts = load("districts");
    let streets = load("streets");
    let communities = load("communities");
    let grids = load("grids");
    assert_eq!(districts.len(), 11);
    assert!(
        (90..=110).contains(&streets.len()),
        "{} streets",
        streets.len()
    );
    assert!(
        (1100..=1300).contains(&communities.len()),
        "{} communities",
        communities.len()
    );
    assert!(
        (9500..=10500).contains(&grids.len()),
        "{} grids",
        grids.len()
    );
    assert_partition(&districts, &streets, 9);
    assert_partition(&streets, &communities, 12);
    assert_partition(&communities, &grids, 15);
    assert!(districts.iter().any(|d| d.code == "320102"));
}

#[test]
fn the_generator_reproduces_the_committed_fixtures() {
    let reference = Reference::load(&repo().join("fixtures/reference")).unwrap();
    let committed = repo().join("fixtures/nanjing");
    let manifest = read_manifest(&committed).unwrap();
    let layers = generate(&reference, Scale::Small, 20_250_101, &NoProgress);
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(&layers, dir.path()).unwrap();
    assert_eq!(manifest.len(), layers.len());
    let fresh_manifest = std::fs::read(dir.path().join("manifest.json")).unwrap();
    assert!(
        fresh_manifest == std::fs::read(committed.join("manifest.json")).unwrap(),
        "manifest.json differs from a fresh generation"
    );
    for entry in manifest {
        let a = std::fs::read(committed.join(&entry.file)).unwrap();
        let b = std::fs::read(dir.path().join(&entry.file)).unwrap();
        assert!(
            a == b,
            "{} differs from a fresh generation: run `citytwin fixtures`",
            entry.file
        );
    }
    let buildings = layers.iter().find(|l| l.meta.name == "buildings").unwrap();
    assert_eq!(buildings.features.len(), 50_000);

    // the lookup raster of the tree built from these layers answers as the exact test does
    let indexes: Vec<Arc<LayerIndex>> = layers
        .into_iter()
        .filter(|l| Level::is_territory_layer(&l.meta.name))
        .map(|l| Arc::new(LayerIndex::build(l.meta, l.features, 1)))
        .collect();
    let tree = TerritoryTree::build(&indexes);
    assert_eq!(tree.grid_count(), 10_001);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut inside = 0;
    for _ in 0..200_000 {
        let (lon, lat) = (rng.random_range(118.3..119.3), rng.random_range(31.2..32.7));
        let fast = tree.locate(lon, lat);
        assert_eq!(fast, tree.locate_exact(lon, lat), "({lon}, {lat})");
        inside += usize::from(fast.is_some());
    }
    assert!(inside > 50_000, "{inside}");
    // and on the grids' own vertices, where edges meet
    for u in tree
        .units()
        .iter()
        .filter(|u| u.level == Level::Grid)
        .take(2000)
    {
        for c in u.shape.0[0].exterior().0.iter().take(4) {
            assert_eq!(tree.locate(c.x, c.y), tree.locate_exact(c.x, c.y));
            assert!(tree.locate(c.x, c.y).is_some());
        }
    }
}
