//! Tiles of a past version against the current one, uncached, in process:
//! `versions-profile <store.gpkg> <layer> <date>` opens the store, builds the layer as of the
//! date (timed), then encodes the bench's 1,000 z10–z16 tiles over the current version and over
//! the past one, alternately, three rounds each, and prints tiles/s for both.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]
use citytwin_benches::tile_list;
use citytwin_city::store::gpkg::GeoPackageStore;
use citytwin_city::twin::encode_layer;
use citytwin_city::versions::Day;
use citytwin_city::{City, LayerIndex};
use citytwin_tiles::{TileBudget, TileCoord};
use std::sync::Arc;

fn rate(index: &LayerIndex, tiles: &[TileCoord]) -> f64 {
    let t = std::time::Instant::now();
    for &c in tiles {
        let l = encode_layer(index, c, &TileBudget::default()).unwrap();
        std::hint::black_box(l.map(|l| citytwin_tiles::encode_tile(&[l]).len()));
    }
    tiles.len() as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, layer, date] = args.as_slice() else {
        eprintln!("usage: versions-profile <store.gpkg> <layer> <YYYY-MM-DD>");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let city = rt.block_on(async {
        let store = GeoPackageStore::open(std::path::Path::new(store))
            .await
            .unwrap();
        City::open(Arc::new(store)).await.unwrap()
    });
    let current = city.layer(layer).unwrap();
    let t = std::time::Instant::now();
    let past = city.layer_on(Arc::clone(&current), Some(Day::parse(date).unwrap()));
    println!(
        "{layer}: current {} features, as of {date} {} features (built in {:.2} s)",
        current.len(),
        past.len(),
        t.elapsed().as_secs_f64()
    );
    let tiles = tile_list(&current, 1000, 10..=16, 7);
    for round in 1..=3 {
        let now = rate(&current, &tiles);
        let then = rate(&past, &tiles);
        println!(
            "round {round}: current {now:.0} tiles/s, as of {date} {then:.0} tiles/s ({:+.1} %)",
            (then / now - 1.0) * 100.0
        );
    }
}
