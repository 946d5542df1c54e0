//! Shared pieces of citytwin's benches: the city-scale buildings layer and the fixed list of
//! 1,000 tile coordinates over z10–z16 that every tile benchmark uses.

use citytwin_city::LayerIndex;
use citytwin_city::generate::{Reference, Rng, base};
use citytwin_city::import::NoProgress;
use citytwin_tiles::TileCoord;
use geo::{BoundingRect, Centroid};
use rand::{Rng as _, SeedableRng};
use std::path::Path;

/// Number of buildings in the city-scale set.
pub const CITY_BUILDINGS: usize = 1_050_000;

/// Generates the city-scale buildings (the same generator as `citytwin fixtures --scale city`)
/// and indexes them.
#[must_use]
pub fn city_buildings(repo: &Path) -> LayerIndex {
    let reference = Reference::load(&repo.join("fixtures/reference")).expect("reference data");
    let water = base::water(&reference);
    let mut rng = Rng::seed_from_u64(20_250_101);
    let layer = base::buildings(&reference, &water, CITY_BUILDINGS, &mut rng, &NoProgress);
    LayerIndex::build(layer.meta, layer.features, 1)
}

/// `n` tiles at zooms drawn from `zooms`, each over a randomly chosen feature, so the set
/// follows the data's density the way map users do. Deterministic for a seed.
#[must_use]
pub fn tile_list(
    index: &LayerIndex,
    n: usize,
    zooms: std::ops::RangeInclusive<u8>,
    seed: u64,
) -> Vec<TileCoord> {
    let mut rng = Rng::seed_from_u64(seed);
    let features = index.features();
    (0..n)
        .map(|_| {
            let f = &features[rng.random_range(0..features.len())];
            let c = f
                .geometry
                .centroid()
                .or_else(|| f.geometry.bounding_rect().map(|r| r.center().into()))
                .unwrap_or_default();
            let z = rng.random_range(zooms.clone());
            TileCoord::containing(c.x(), c.y(), z)
        })
        .collect()
}

/// A scratch folder removed when dropped.
#[derive(Debug)]
pub struct Scratch(pub std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo city (the committed Nanjing fixtures, 50,000 buildings) over a GeoPackage built in
/// a scratch folder of its own; keep the folder as long as the city.
pub fn demo_city(rt: &tokio::runtime::Runtime, repo: &Path) -> (citytwin_city::City, Scratch) {
    let dir = std::env::temp_dir().join(format!("citytwin-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let scratch = Scratch(dir);
    let city = rt.block_on(async {
        let path = scratch.0.join("demo.gpkg");
        citytwin::demo::ensure_demo_store(
            &path,
            &repo.join("fixtures/nanjing"),
            std::sync::Arc::new(NoProgress),
        )
        .await
        .expect("demo store");
        let store = citytwin_city::store::gpkg::GeoPackageStore::open(&path)
            .await
            .expect("open demo store");
        // classified as scripts/demo classifies it
        let catalog =
            citytwin::demo::demo_catalog(&repo.join("demo/catalog.toml")).expect("demo catalogue");
        citytwin::demo::classify_demo_layers(&store, &catalog)
            .await
            .expect("classify demo layers");
        let mut live = citytwin_city::live::LiveOptions::default();
        for l in citytwin_city::live::LiveLayer::ALL {
            if let Some(c) = catalog.get(l.name()) {
                live.catalog.insert(l.name().to_owned(), c.clone());
            }
        }
        citytwin_city::City::open_with(
            std::sync::Arc::new(store),
            citytwin_city::CityOptions {
                live,
                ..citytwin_city::CityOptions::default()
            },
        )
        .await
        .expect("open demo city")
    });
    (city, scratch)
}

/// The territory tree of the committed fixture set (generated again from the reference
/// districts), and the city outline.
#[must_use]
pub fn territory_tree(
    repo: &Path,
) -> (
    citytwin_city::territory::TerritoryTree,
    geo::MultiPolygon<f64>,
) {
    use citytwin_city::territory::{Level, TerritoryTree};
    let reference = Reference::load(&repo.join("fixtures/reference")).expect("reference data");
    let layers = citytwin_city::generate::generate(
        &reference,
        citytwin_city::generate::Scale::Small,
        20_250_101,
        &NoProgress,
    );
    let indexes: Vec<std::sync::Arc<LayerIndex>> = layers
        .into_iter()
        .filter(|l| Level::is_territory_layer(&l.meta.name))
        .map(|l| std::sync::Arc::new(LayerIndex::build(l.meta, l.features, 1)))
        .collect();
    (TerritoryTree::build(&indexes), reference.city)
}
