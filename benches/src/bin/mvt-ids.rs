//! `mvt-ids <tile.mvt>…`: for each (uncompressed) tile file, one line per layer with its name,
//! feature count and a digest of the sorted feature ids, so two servers' tiles can be compared
//! feature for feature. An empty file is an empty tile.

use geozero::mvt::{Message, Tile};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

fn main() -> Result<(), String> {
    let mut out = String::new();
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let tile = Tile::decode(bytes.as_slice()).map_err(|e| format!("{path}: {e}"))?;
        if tile.layers.iter().all(|l| l.features.is_empty()) {
            let _ = writeln!(out, "{path} - 0 0");
        }
        for layer in &tile.layers {
            let mut ids: Vec<u64> = layer.features.iter().filter_map(|f| f.id).collect();
            ids.sort_unstable();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            ids.hash(&mut h);
            let _ = writeln!(
                out,
                "{path} {} {} {:016x}",
                layer.name,
                layer.features.len(),
                h.finish()
            );
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).map_err(|e| e.to_string())
}
