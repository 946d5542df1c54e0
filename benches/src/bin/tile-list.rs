//! Prints the benchmark's 1,000 tile paths (`z/x/y`) for a layer of a GeoPackage store, for the
//! HTTP load scripts: `tile-list <store.gpkg> <layer> [min_zoom max_zoom]`.

use citytwin_benches::tile_list;
use citytwin_city::store::gpkg::GeoPackageStore;
use citytwin_city::{LayerIndex, Store};
use std::io::Write;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(store), Some(layer)) = (args.get(1), args.get(2)) else {
        return Err("usage: tile-list <store.gpkg> <layer> [min_zoom max_zoom]".into());
    };
    let lo: u8 = args
        .get(3)
        .map_or(Ok(10), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let hi: u8 = args
        .get(4)
        .map_or(Ok(16), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let store = GeoPackageStore::open(&PathBuf::from(store))
        .await
        .map_err(|e| e.to_string())?;
    let meta = store
        .layers()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|m| &m.name == layer)
        .ok_or_else(|| format!("no layer {layer}"))?;
    let features = store
        .read_features(layer)
        .await
        .map_err(|e| e.to_string())?;
    let index = LayerIndex::build(meta, features, 1);
    let mut out = std::io::stdout().lock();
    for t in tile_list(&index, 1000, lo..=hi, 7) {
        writeln!(out, "{}/{}/{}", t.z, t.x, t.y).map_err(|e| e.to_string())?;
    }
    Ok(())
}
