//! Uncached tile encoding on the city-scale buildings layer (≥ 1M footprints): the fixed set of
//! 1,000 tiles over z10–z16, and the same number at z14 alone.

#![allow(missing_docs, clippy::unwrap_used)]

use citytwin_benches::{city_buildings, tile_list};
use citytwin_city::twin::encode_layer;
use citytwin_tiles::{TileBudget, TileCoord};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::path::Path;

fn encode(index: &citytwin_city::LayerIndex, t: TileCoord, budget: &TileBudget) -> usize {
    encode_layer(index, t, budget)
        .unwrap()
        .map_or(0, |l| citytwin_tiles::encode_tile(&[l]).len())
}

fn tiles(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let index = city_buildings(&repo);
    let mixed = tile_list(&index, 1000, 10..=16, 7);
    let z14 = tile_list(&index, 1000, 14..=14, 7);
    let budget = TileBudget::default();
    let mut g = c.benchmark_group("uncached_buildings_tiles");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 tiles z10-z16", |b| {
        b.iter(|| {
            mixed
                .iter()
                .map(|&t| encode(&index, t, &budget))
                .sum::<usize>()
        });
    });
    g.bench_function("1000 tiles z14", |b| {
        b.iter(|| {
            z14.iter()
                .map(|&t| encode(&index, t, &budget))
                .sum::<usize>()
        });
    });
    g.finish();
}

criterion_group!(benches, tiles);
criterion_main!(benches);
