//! One input through each parser of outside input, as the fuzz targets (`fuzz/`, run by
//! `benches/fuzz.sh`) drive them and as `tests/fuzz_corpus.rs` replays their corpora and the
//! cases they found: whatever the bytes, an answer or an error, never a panic or a hang.

use citytwin_city::filter::{Filter, parse_wkt};
use citytwin_city::import::{ImportRequest, NoProgress, read_and_validate};
use citytwin_city::layer::{Field, FieldKind, GeometryKind, LayerMeta};
use citytwin_city::live::ts;
use citytwin_city::versions::Day;

/// The import readers: the first byte picks the format (GeoJSON, CSV, FlatGeobuf,
/// GeoPackage, Shapefile), the rest is the file; for a Shapefile two bytes give the length of
/// its `.shp`, and its `.dbf` follows. The features read, when the file was read.
pub fn import(data: &[u8]) -> Option<usize> {
    let (&pick, rest) = data.split_first()?;
    let dir = tempfile::tempdir().ok()?;
    let ext = ["geojson", "csv", "fgb", "gpkg", "shp"][usize::from(pick) % 5];
    let path = dir.path().join(format!("f.{ext}"));
    let written = if ext == "shp" {
        // two bytes (little-endian) give the length of the .shp, the .dbf follows it
        let (len, body) = rest.split_at_checked(2)?;
        let cut = usize::from(u16::from_le_bytes([len[0], len[1]])).min(body.len());
        let (shp, dbf) = body.split_at(cut);
        std::fs::write(&path, shp).and(std::fs::write(dir.path().join("f.dbf"), dbf))
    } else {
        std::fs::write(&path, rest)
    };
    written.ok()?;
    read_and_validate(&ImportRequest::new(&path, "fuzz"), &NoProgress)
        .ok()
        .map(|l| l.features.len())
}

/// CQL2 text against a layer with a field of each kind, and WKT.
pub fn cql2(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut meta = LayerMeta::new("fuzz", GeometryKind::Polygon);
    meta.fields = [
        ("name", FieldKind::Text),
        ("floors", FieldKind::Integer),
        ("height", FieldKind::Real),
        ("public", FieldKind::Boolean),
    ]
    .into_iter()
    .map(|(name, kind)| Field {
        name: name.into(),
        kind,
    })
    .collect();
    let _ = Filter::parse(text, &meta);
    let _ = parse_wkt(text);
}

/// A query string read as a request's, every typed reader over it, a tile path's segments,
/// times and dates.
pub fn params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = format!("/x?{text}").parse::<axum::http::Uri>()
        && let Ok(p) = crate::params::Params::from_uri(&uri)
    {
        let _ = p.only(&["bbox", "limit", "flag", "since", "x"]);
        for name in ["bbox", "limit", "flag", "since", "x"] {
            let _ = p.bbox(name);
            let _ = p.flag(name);
            let _ = p.seq(name);
            let _ = p.count(name, 10, 10_000);
            let _ = p.offset(name);
            let _ = p.opt_f64(name);
            let _ = p.check(name, crate::params::is_code, crate::params::CODE);
        }
    }
    let mut parts = text.splitn(3, '/');
    if let (Some(z), Some(x), Some(y)) = (parts.next(), parts.next(), parts.next()) {
        let _ = crate::routes::tiles::parse_coord(z, x, y);
    }
    let _ = ts::parse(text);
    let _ = Day::parse(text);
}

/// A MapLibre style (JSON) and a dashboard layout.
pub fn styles(data: &[u8]) {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = citytwin_renderer::Style::parse(&json);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = citytwin_renderer::Layout::parse(text);
    }
}

/// An MQTT message's payload, as readings of a sensor and as a unit's position.
pub fn mqtt(data: &[u8]) {
    let _ = crate::mqtt::decode_readings(data, "WL-0001");
    let _ = crate::mqtt::decode_position(data);
}
