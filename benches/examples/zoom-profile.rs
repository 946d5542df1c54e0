//! Per-zoom encoding cost on the city-scale buildings: `zoom-profile 10 12 14 16` prints the
//! mean time, candidates, features written and bytes of 300 tiles at each zoom.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]
use citytwin_benches::{city_buildings, tile_list};
use citytwin_tiles::TileBudget;
fn main() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let t = std::time::Instant::now();
    let index = city_buildings(&repo);
    println!("built in {:?}", t.elapsed());
    let zs: Vec<u8> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    for &z in &zs {
        let tiles = tile_list(&index, 300, z..=z, 7);
        let t = std::time::Instant::now();
        let mut feats = 0;
        let mut cands = 0;
        let mut bytes = 0;
        let (mut tq, mut te, mut tp) = (
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
        );
        for &c in &tiles {
            let q = std::time::Instant::now();
            let n = index.query(c.bounds()).count();
            tq += q.elapsed();
            let q = std::time::Instant::now();
            let l = citytwin_city::twin::encode_layer(&index, c, &TileBudget::default()).unwrap();
            te += q.elapsed();
            let q = std::time::Instant::now();
            let _b = l.map(|l| citytwin_tiles::encode_tile(&[l]).len());
            tp += q.elapsed();
            let _ = n;
            if let Some(l) =
                citytwin_city::twin::encode_layer(&index, c, &TileBudget::default()).unwrap()
            {
                feats += l.stats.written;
                cands += l.stats.candidates;
                bytes += l.stats.bytes;
            }
        }
        println!(
            "  query {:?} encode {:?} protobuf {:?}",
            tq / 300,
            te / 300,
            tp / 300
        );
        println!(
            "z{z}: {:?}/tile, candidates {}, written {}, bytes {}",
            t.elapsed() / 300,
            cands / 300,
            feats / 300,
            bytes / 300
        );
    }
}
