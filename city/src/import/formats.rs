//! Readers for each supported file format, all producing a [`RawLayer`].

use super::{Progress, RawFeature, RawLayer};
use crate::layer::{Field, FieldKind};
use crate::{Error, Result};
use citytwin_tiles::{Crs, Value};
use geo::Geometry;
use geozero::geo_types::GeoWriter;
use geozero::{
    ColumnValue, CoordDimensions, FeatureProcessor, GeomProcessor, PropertyProcessor,
    error::Result as GzResult,
};
use std::io::Read;
use std::path::Path;

/// The file formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 7946 GeoJSON
    GeoJson,
    /// OGC GeoPackage
    GeoPackage,
    /// FlatGeobuf
    FlatGeobuf,
    /// ESRI Shapefile (.shp with .dbf and optional .prj)
    Shapefile,
    /// CSV with lon/lat or WKT columns
    Csv,
}

impl Format {
    /// Recognises a format by file extension.
    #[must_use]
    pub fn detect(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
        match ext.as_str() {
            "geojson" | "json" => Some(Self::GeoJson),
            "gpkg" => Some(Self::GeoPackage),
            "fgb" => Some(Self::FlatGeobuf),
            "shp" => Some(Self::Shapefile),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

pub(super) fn read(
    format: Format,
    path: &Path,
    source_layer: Option<&str>,
    progress: &dyn Progress,
) -> Result<RawLayer> {
    let file = path.display().to_string();
    let io = |e: std::io::Error| Error::Io {
        path: file.clone(),
        source: e,
    };
    match format {
        Format::GeoJson => {
            let bytes = std::fs::read(path).map_err(io)?;
            read_geojson(&file, &bytes, progress)
        }
        Format::FlatGeobuf => {
            check_fgb_frame(path).map_err(|reason| Error::ImportFile {
                file: file.clone(),
                reason,
            })?;
            let reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
            // found by fuzzing: a string property's length past its feature's buffer
            // panicked in the FlatGeobuf reader
            guarded(&file, "FlatGeobuf", || read_fgb(&file, reader, progress))
        }
        Format::Shapefile => read_shp(&file, path, progress),
        Format::Csv => {
            let reader = std::fs::File::open(path).map_err(io)?;
            read_csv(&file, reader, progress)
        }
        Format::GeoPackage => read_gpkg(&file, path, source_layer, progress),
    }
}

fn json_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
        serde_json::Value::String(s) => Value::from(s),
        other => Value::from(other.to_string()),
    }
}

/// The CRS a GeoJSON document declares in its (pre-RFC 7946) `crs` member.
fn geojson_crs(head: &[u8]) -> Result<Option<Crs>> {
    let head = String::from_utf8_lossy(head);
    let Some(at) = head.find("\"crs\"") else {
        return Ok(None);
    };
    let rest = &head[at..];
    // the name inside "properties", not the `"type": "name"` before it
    let Some(props_at) = rest.find("\"properties\"") else {
        return Ok(None);
    };
    let rest = &rest[props_at..];
    let Some(name_at) = rest.find("\"name\"") else {
        return Ok(None);
    };
    let value: String = rest[name_at + 6..]
        .chars()
        .skip_while(|c| *c != '"')
        .skip(1)
        .take_while(|c| *c != '"')
        .collect();
    let code = value.rsplit(':').next().unwrap_or(&value);
    Ok(Some(Crs::parse(code).or_else(|_| Crs::parse(&value))?))
}

fn read_geojson(file: &str, bytes: &[u8], progress: &dyn Progress) -> Result<RawLayer> {
    let crs = geojson_crs(&bytes[..bytes.len().min(4096)]).map_err(|e| Error::ImportFile {
        file: file.to_owned(),
        reason: e.to_string(),
    })?;
    let head: String = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut features = Vec::new();
    let mut push = |f: geojson::Feature, n: usize| -> Result<()> {
        let geometry = match f.geometry {
            Some(g) => Some(
                Geometry::<f64>::try_from(g).map_err(|e| Error::ImportFeature {
                    file: file.to_owned(),
                    feature: n,
                    reason: format!("unreadable geometry: {e}"),
                })?,
            ),
            None => None,
        };
        let properties = f
            .properties
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, json_value(v)))
            .collect();
        features.push(RawFeature {
            geometry,
            properties,
        });
        Ok(())
    };
    if head.contains("\"FeatureCollection\"") {
        // stream the features so a truncated file fails at the feature where it breaks
        let reader = geojson::FeatureReader::from_reader(bytes);
        for (i, f) in reader.features().enumerate() {
            let f = f.map_err(|e| Error::ImportFeature {
                file: file.to_owned(),
                feature: i + 1,
                reason: format!("malformed or truncated GeoJSON: {e}"),
            })?;
            push(f, i + 1)?;
            if (i + 1) % 10_000 == 0 {
                progress.advance(10_000);
            }
        }
    } else {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::ImportFile {
            file: file.to_owned(),
            reason: format!("not UTF-8: {e}"),
        })?;
        let doc: geojson::GeoJson = text.parse().map_err(|e| Error::ImportFile {
            file: file.to_owned(),
            reason: format!("malformed GeoJSON: {e}"),
        })?;
        match doc {
            geojson::GeoJson::Feature(f) => push(f, 1)?,
            geojson::GeoJson::Geometry(g) => push(geojson::Feature::from(g), 1)?,
            geojson::GeoJson::FeatureCollection(fc) => {
                for (i, f) in fc.features.into_iter().enumerate() {
                    push(f, i + 1)?;
                }
            }
        }
    }
    Ok(RawLayer {
        via_gdal: false,
        features,
        crs,
        fields: Vec::new(),
    })
}

/// A geozero processor that collects features as geo-types geometries and typed properties.
struct Collector {
    geo: GeoWriter,
    properties: Vec<(String, Value)>,
    features: Vec<RawFeature>,
}

impl Collector {
    fn new() -> Self {
        Self {
            geo: GeoWriter::new(),
            properties: Vec::new(),
            features: Vec::new(),
        }
    }
}

impl GeomProcessor for Collector {
    fn dimensions(&self) -> CoordDimensions {
        CoordDimensions::xy()
    }
    fn xy(&mut self, x: f64, y: f64, idx: usize) -> GzResult<()> {
        self.geo.xy(x, y, idx)
    }
    fn point_begin(&mut self, idx: usize) -> GzResult<()> {
        self.geo.point_begin(idx)
    }
    fn point_end(&mut self, idx: usize) -> GzResult<()> {
        self.geo.point_end(idx)
    }
    fn multipoint_begin(&mut self, size: usize, idx: usize) -> GzResult<()> {
        self.geo.multipoint_begin(size, idx)
    }
    fn multipoint_end(&mut self, idx: usize) -> GzResult<()> {
        self.geo.multipoint_end(idx)
    }
    fn linestring_begin(&mut self, tagged: bool, size: usize, idx: usize) -> GzResult<()> {
        self.geo.linestring_begin(tagged, size, idx)
    }
    fn linestring_end(&mut self, tagged: bool, idx: usize) -> GzResult<()> {
        self.geo.linestring_end(tagged, idx)
    }
    fn multilinestring_begin(&mut self, size: usize, idx: usize) -> GzResult<()> {
        self.geo.multilinestring_begin(size, idx)
    }
    fn multilinestring_end(&mut self, idx: usize) -> GzResult<()> {
        self.geo.multilinestring_end(idx)
    }
    fn polygon_begin(&mut self, tagged: bool, size: usize, idx: usize) -> GzResult<()> {
        self.geo.polygon_begin(tagged, size, idx)
    }
    fn polygon_end(&mut self, tagged: bool, idx: usize) -> GzResult<()> {
        self.geo.polygon_end(tagged, idx)
    }
    fn multipolygon_begin(&mut self, size: usize, idx: usize) -> GzResult<()> {
        self.geo.multipolygon_begin(size, idx)
    }
    fn multipolygon_end(&mut self, idx: usize) -> GzResult<()> {
        self.geo.multipolygon_end(idx)
    }
    fn geometrycollection_begin(&mut self, size: usize, idx: usize) -> GzResult<()> {
        self.geo.geometrycollection_begin(size, idx)
    }
    fn geometrycollection_end(&mut self, idx: usize) -> GzResult<()> {
        self.geo.geometrycollection_end(idx)
    }
}

impl PropertyProcessor for Collector {
    fn property(&mut self, _idx: usize, name: &str, value: &ColumnValue) -> GzResult<bool> {
        let v = match *value {
            ColumnValue::Byte(v) => Value::Int(v.into()),
            ColumnValue::UByte(v) => Value::Int(v.into()),
            ColumnValue::Bool(v) => Value::Bool(v),
            ColumnValue::Short(v) => Value::Int(v.into()),
            ColumnValue::UShort(v) => Value::Int(v.into()),
            ColumnValue::Int(v) => Value::Int(v.into()),
            ColumnValue::UInt(v) => Value::Int(v.into()),
            ColumnValue::Long(v) => Value::Int(v),
            ColumnValue::ULong(v) => Value::Int(v as i64),
            ColumnValue::Float(v) => Value::Float(v.into()),
            ColumnValue::Double(v) => Value::Float(v),
            ColumnValue::String(s) | ColumnValue::Json(s) | ColumnValue::DateTime(s) => {
                Value::from(s.trim_end())
            }
            ColumnValue::Binary(_) => Value::Null,
        };
        self.properties.push((name.to_owned(), v));
        Ok(false)
    }
}

impl FeatureProcessor for Collector {
    fn feature_begin(&mut self, _idx: u64) -> GzResult<()> {
        self.properties.clear();
        Ok(())
    }
    fn feature_end(&mut self, _idx: u64) -> GzResult<()> {
        self.features.push(RawFeature {
            geometry: self.geo.take_geometry(),
            properties: std::mem::take(&mut self.properties),
        });
        Ok(())
    }
}

/// Walks a FlatGeobuf file's frame before the reader trusts its lengths: the index the header
/// implies and every feature's length must fit in the file (the reader allocates a feature's
/// stated length before reading it: found by fuzzing, 2.6 GB for a file of 959 bytes).
fn check_fgb_frame(path: &Path) -> std::result::Result<(), String> {
    use std::io::{Seek, SeekFrom};
    let open = || std::fs::File::open(path).map_err(|e| e.to_string());
    let (features, node_size) = {
        let fgb = flatgeobuf::FgbReader::open(std::io::BufReader::new(open()?))
            .map_err(|e| format!("not a FlatGeobuf file: {e}"))?;
        let h = fgb.header();
        (h.features_count(), h.index_node_size())
    };
    let file = open()?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    // features follow each other: a buffered reader skips most of them inside its buffer
    let mut f = std::io::BufReader::with_capacity(1 << 16, file);
    let u32_next = |f: &mut std::io::BufReader<std::fs::File>| -> Option<u64> {
        let mut b = [0u8; 4];
        f.read_exact(&mut b).ok()?;
        Some(u64::from(u32::from_le_bytes(b)))
    };
    f.seek(SeekFrom::Start(8)).map_err(|e| e.to_string())?;
    let header = u32_next(&mut f).ok_or("no header")?;
    let mut pos = 12 + header;
    if node_size > 0 && features > 0 {
        if features > len {
            return Err(format!(
                "the header claims {features} features in a file of {len} bytes"
            ));
        }
        let index = flatgeobuf::packed_r_tree::PackedRTree::index_size(
            usize::try_from(features).unwrap_or(usize::MAX),
            node_size,
        );
        pos = pos.saturating_add(u64::try_from(index).unwrap_or(u64::MAX));
    }
    if pos > len {
        return Err(format!(
            "the header and index ({pos} bytes) run past the end of the file ({len} bytes)"
        ));
    }
    f.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    while pos < len {
        n += 1;
        let size = u32_next(&mut f).ok_or_else(|| format!("feature {n} is cut short"))?;
        pos = pos.saturating_add(4 + size);
        if pos > len {
            return Err(format!(
                "feature {n} claims {size} bytes, past the end of the file ({len} bytes)"
            ));
        }
        f.seek_relative(i64::try_from(size).unwrap_or(i64::MAX))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn read_fgb<R: Read>(file: &str, reader: R, progress: &dyn Progress) -> Result<RawLayer> {
    let ferr = |reason: String| Error::ImportFile {
        file: file.to_owned(),
        reason,
    };
    let fgb = flatgeobuf::FgbReader::open(reader)
        .map_err(|e| ferr(format!("not a FlatGeobuf file: {e}")))?;
    let header = fgb.header();
    let crs = match header.crs() {
        Some(c) if c.code() != 0 => {
            Some(Crs::parse(&c.code().to_string()).map_err(|e| ferr(e.to_string()))?)
        }
        _ => None,
    };
    let fields = header
        .columns()
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    use flatgeobuf::ColumnType as T;
                    let kind = match c.type_() {
                        T::Bool => FieldKind::Boolean,
                        T::Byte
                        | T::UByte
                        | T::Short
                        | T::UShort
                        | T::Int
                        | T::UInt
                        | T::Long
                        | T::ULong => FieldKind::Integer,
                        T::Float | T::Double => FieldKind::Real,
                        _ => FieldKind::Text,
                    };
                    Field {
                        name: c.name().to_owned(),
                        kind,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    use flatgeobuf::FallibleStreamingIterator;
    use geozero::FeatureAccess;
    let mut iter = fgb
        .select_all_seq()
        .map_err(|e| ferr(format!("unreadable FlatGeobuf: {e}")))?;
    let mut collector = Collector::new();
    let mut n = 0usize;
    loop {
        let next = iter.next().map_err(|e| Error::ImportFeature {
            file: file.to_owned(),
            feature: n + 1,
            reason: format!("truncated or corrupt FlatGeobuf: {e}"),
        })?;
        let Some(feature) = next else { break };
        n += 1;
        feature
            .process(&mut collector, n as u64)
            .map_err(|e| Error::ImportFeature {
                file: file.to_owned(),
                feature: n,
                reason: e.to_string(),
            })?;
        if n.is_multiple_of(10_000) {
            progress.advance(10_000);
        }
    }
    Ok(RawLayer {
        via_gdal: false,
        features: collector.features,
        crs,
        fields,
    })
}

/// Reads a shapefile's `.prj` to a CRS; `Ok(None)` when there is none.
fn prj_crs(file: &str, path: &Path) -> Result<Option<Crs>> {
    let Ok(wkt) = std::fs::read_to_string(path.with_extension("prj")) else {
        return Ok(None);
    };
    let w = wkt.to_ascii_uppercase();
    let crs = if w.contains("PSEUDO") || w.contains("AUXILIARY_SPHERE") || w.contains("3857") {
        Crs::WebMercator
    } else if w.starts_with("PROJCS") {
        return Err(Error::ImportFile {
            file: file.to_owned(),
            reason: format!("unsupported projected CRS in .prj: {}", wkt.trim()),
        });
    } else if w.contains("2000") {
        Crs::Cgcs2000
    } else if w.contains("WGS_1984") || w.contains("WGS 84") || w.contains("WGS84") {
        Crs::Wgs84
    } else {
        return Err(Error::ImportFile {
            file: file.to_owned(),
            reason: format!("unknown CRS in .prj: {}", wkt.trim()),
        });
    };
    Ok(Some(crs))
}

fn read_shp(file: &str, path: &Path, progress: &dyn Progress) -> Result<RawLayer> {
    let ferr = |reason: String| Error::ImportFile {
        file: file.to_owned(),
        reason,
    };
    let crs = prj_crs(file, path)?;
    check_dbf(&path.with_extension("dbf")).map_err(ferr)?;
    check_shp_records(path).map_err(ferr)?;
    // found by fuzzing: a dBase header too short for its own fields
    guarded(file, "shapefile or .dbf", || {
        read_shp_features(file, path, progress)
    })
    .map(|mut l| {
        l.crs = crs;
        l
    })
}

/// Runs a third-party binary reader over untrusted bytes: a fault it does not foresee (a
/// panic) is this file's error, not the server's.
fn guarded(file: &str, what: &str, read: impl FnOnce() -> Result<RawLayer>) -> Result<RawLayer> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(Error::ImportFile {
            file: file.to_owned(),
            reason: format!("a corrupt {what}: its reader failed on it"),
        })
    })
}

/// Walks a `.shp` file's records before the reader trusts them: every record must fit in the
/// file, and a multipart shape's part and point counts must fit in its record, its part
/// offsets rising within its points (the reader subtracts and allocates them unchecked: found
/// by fuzzing, an offset past the points underflowed).
fn check_shp_records(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    fn int(f: &mut impl Read, big: bool) -> std::io::Result<i32> {
        let mut b = [0u8; 4];
        f.read_exact(&mut b)?;
        Ok(if big {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        })
    }
    let Ok(file) = std::fs::File::open(path) else {
        // a missing .shp is the reader's to report
        return Ok(());
    };
    let len = file.metadata().map_err(|e| format!(".shp: {e}"))?.len();
    let mut f = std::io::BufReader::with_capacity(1 << 16, file);
    let mut head = [0u8; 100];
    f.read_exact(&mut head)
        .map_err(|_| "the .shp is shorter than its 100-byte header".to_owned())?;
    // the header states the file's length in 16-bit words
    let stated = i64::from(i32::from_be_bytes([head[24], head[25], head[26], head[27]])) * 2;
    let end = match u64::try_from(stated) {
        Ok(end) if (100..=len).contains(&end) => end,
        _ => {
            return Err(format!(
                "the .shp's header states a length of {stated} bytes, not within 100..={len} (the file's size)"
            ));
        }
    };
    let (mut pos, mut n) = (100u64, 0u64);
    while pos < end {
        n += 1;
        let bad = |what: String| format!("shape record {n} (byte {pos}): {what}");
        let short = |_| bad("cut short".into());
        let _number = int(&mut f, true).map_err(short)?;
        let size = i64::from(int(&mut f, true).map_err(short)?) * 2;
        let Ok(size) = u64::try_from(size) else {
            return Err(bad(format!("negative length {size}")));
        };
        if size < 4 || pos + 8 + size > len {
            return Err(bad(format!(
                "length {size} is not within 4..={}",
                len.saturating_sub(pos + 8)
            )));
        }
        let kind = int(&mut f, false).map_err(short)?;
        let mut read = 4u64;
        let counts = |c: i32, what: &str| {
            u64::try_from(c).map_err(|_| bad(format!("negative {what} count {c}")))
        };
        match kind {
            // polyline, polygon, their Z and M forms, multipatch: bbox, parts, points
            3 | 5 | 13 | 15 | 23 | 25 | 31 => {
                if size < 44 {
                    return Err(bad(format!(
                        "length {size} is shorter than a multipart header"
                    )));
                }
                f.seek_relative(32).map_err(short)?;
                let parts = counts(int(&mut f, false).map_err(short)?, "part")?;
                let points = counts(int(&mut f, false).map_err(short)?, "point")?;
                read += 40;
                let types = if kind == 31 { parts * 4 } else { 0 };
                if 44 + parts * 4 + types + points * 16 > size {
                    return Err(bad(format!(
                        "{parts} parts and {points} points do not fit in its {size} bytes"
                    )));
                }
                let (mut last, points) = (0i64, i64::try_from(points).unwrap_or(i64::MAX));
                for p in 0..parts {
                    let at = i64::from(int(&mut f, false).map_err(short)?);
                    if at < last || at > points {
                        return Err(bad(format!(
                            "part {p} starts at point {at}, not within {last}..={points}"
                        )));
                    }
                    last = at;
                }
                read += parts * 4;
            }
            // multipoint and its Z and M forms: bbox, points
            8 | 18 | 28 => {
                if size < 40 {
                    return Err(bad(format!(
                        "length {size} is shorter than a multipoint header"
                    )));
                }
                f.seek_relative(32).map_err(short)?;
                let points = counts(int(&mut f, false).map_err(short)?, "point")?;
                read += 36;
                if 40 + points * 16 > size {
                    return Err(bad(format!(
                        "{points} points do not fit in its {size} bytes"
                    )));
                }
            }
            _ => {}
        }
        f.seek_relative(i64::try_from(size - read).unwrap_or(i64::MAX))
            .map_err(short)?;
        pos += 8 + size;
    }
    Ok(())
}

/// Checks a dBase file's header before the reader trusts it: the header must hold its own
/// 32 bytes and terminator and fit in the file (a shorter one made the reader's field count
/// underflow and allocate without bound).
fn check_dbf(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        // a missing .dbf is the reader's to report
        return Ok(());
    };
    let len = f.metadata().map_err(|e| format!(".dbf: {e}"))?.len();
    let mut head = [0u8; 32];
    f.read_exact(&mut head)
        .map_err(|_| "the .dbf is shorter than its header".to_owned())?;
    let header_len = u64::from(u16::from_le_bytes([head[8], head[9]]));
    // Visual FoxPro (0x30..=0x32) keeps a 263-byte backlink after the field descriptors
    let backlink = if (0x30..=0x32).contains(&head[0]) {
        263
    } else {
        0
    };
    let least = 33 + backlink;
    if header_len < least || header_len > len {
        return Err(format!(
            "the .dbf's header length {header_len} is not within {least}..={len} (the file's size)"
        ));
    }
    // the field descriptors (32 bytes each) end with a 0x0D terminator; the reader
    // counts them from the header length and trusts the byte after them
    let fields = (header_len - backlink - 33) / 32;
    let at = 32 + fields * 32;
    let mut rest = Vec::new();
    f.take(at - 32 + 1)
        .read_to_end(&mut rest)
        .map_err(|e| format!(".dbf: {e}"))?;
    if rest.get(usize::try_from(at - 32).unwrap_or(usize::MAX)) != Some(&0x0D) {
        return Err(format!(
            "the .dbf's {fields} field descriptors are not followed by the 0x0D terminator at byte {at}"
        ));
    }
    Ok(())
}

fn read_shp_features(file: &str, path: &Path, progress: &dyn Progress) -> Result<RawLayer> {
    let ferr = |reason: String| Error::ImportFile {
        file: file.to_owned(),
        reason,
    };
    let crs = None;
    let reader = geozero::shp::ShpReader::from_path(path)
        .map_err(|e| ferr(format!("not a readable shapefile: {e}")))?;
    let mut collector = Collector::new();
    let iter = reader
        .iter_features(&mut collector)
        .map_err(|e| ferr(format!("shapefile without its .dbf: {e}")))?;
    let mut n = 0usize;
    for r in iter {
        n += 1;
        r.map_err(|e| Error::ImportFeature {
            file: file.to_owned(),
            feature: n,
            reason: format!("truncated or corrupt shapefile: {e}"),
        })?;
        if n.is_multiple_of(10_000) {
            progress.advance(10_000);
        }
    }
    Ok(RawLayer {
        via_gdal: false,
        features: collector.features,
        crs,
        fields: Vec::new(),
    })
}

fn csv_value(s: &str) -> Value {
    let s = s.trim();
    if s.is_empty() {
        Value::Null
    } else if let Ok(i) = s.parse::<i64>() {
        Value::Int(i)
    } else if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            Value::Float(f)
        } else {
            Value::from(s)
        }
    } else {
        Value::from(s)
    }
}

fn read_csv<R: Read>(file: &str, reader: R, progress: &dyn Progress) -> Result<RawLayer> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| Error::ImportFile {
            file: file.to_owned(),
            reason: format!("unreadable CSV header: {e}"),
        })?
        .clone();
    let find = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let lon = find(&["lon", "lng", "long", "longitude", "x", "经度"]);
    let lat = find(&["lat", "latitude", "y", "纬度"]);
    let wkt = find(&["wkt", "geometry", "geom", "the_geom"]);
    let geom_cols: Vec<usize> = match (lon, lat, wkt) {
        (Some(a), Some(b), _) => vec![a, b],
        (_, _, Some(w)) => vec![w],
        _ => {
            return Err(Error::ImportFile {
                file: file.to_owned(),
                reason: "no geometry columns: name them lon and lat (or longitude/latitude, x/y), or wkt".into(),
            });
        }
    };
    let mut features = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let n = i + 1;
        let fail = |reason: String| Error::ImportFeature {
            file: file.to_owned(),
            feature: n,
            reason,
        };
        let rec = rec.map_err(|e| fail(format!("malformed CSV row: {e}")))?;
        let geometry = if let [x, y] = geom_cols[..] {
            let parse = |idx: usize, what: &str| -> Result<f64> {
                let s = rec.get(idx).unwrap_or("").trim();
                s.parse::<f64>()
                    .map_err(|_| fail(format!("{what} {s:?} is not a number")))
            };
            geo::Point::new(parse(x, "longitude")?, parse(y, "latitude")?).into()
        } else {
            let text = rec.get(geom_cols[0]).unwrap_or("");
            let w: wkt::Wkt<f64> = text
                .parse()
                .map_err(|e| fail(format!("invalid WKT {text:?}: {e}")))?;
            Geometry::<f64>::try_from(w).map_err(|e| fail(format!("unsupported WKT: {e}")))?
        };
        let properties = headers
            .iter()
            .enumerate()
            .filter(|(idx, _)| !geom_cols.contains(idx))
            .map(|(idx, h)| (h.trim().to_owned(), csv_value(rec.get(idx).unwrap_or(""))))
            .collect();
        features.push(RawFeature {
            geometry: Some(geometry),
            properties,
        });
        if n % 10_000 == 0 {
            progress.advance(10_000);
        }
    }
    Ok(RawLayer {
        via_gdal: false,
        features,
        crs: None,
        fields: Vec::new(),
    })
}

fn read_gpkg(
    file: &str,
    path: &Path,
    source_layer: Option<&str>,
    progress: &dyn Progress,
) -> Result<RawLayer> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            path: file.to_owned(),
            source: e,
        })?;
    rt.block_on(read_gpkg_async(file, path, source_layer, progress))
}

async fn read_gpkg_async(
    file: &str,
    path: &Path,
    source_layer: Option<&str>,
    progress: &dyn Progress,
) -> Result<RawLayer> {
    use futures_util::TryStreamExt;
    use sqlx::{Connection, Row, ValueRef};
    let ferr = |reason: String| Error::ImportFile {
        file: file.to_owned(),
        reason,
    };
    if !path.exists() {
        return Err(ferr("no such file".into()));
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| ferr(format!("not a readable GeoPackage: {e}")))?;
    let tables: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns ORDER BY table_name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| ferr(format!("not a GeoPackage (no gpkg_geometry_columns): {e}")))?;
    let (table, geom_col, srs_id) = match source_layer {
        Some(name) => tables
            .into_iter()
            .find(|t| t.0 == name)
            .ok_or_else(|| ferr(format!("no feature table {name:?} in the GeoPackage")))?,
        None if tables.len() == 1 => tables
            .into_iter()
            .next()
            .ok_or_else(|| ferr("empty".into()))?,
        None => {
            let names: Vec<_> = tables.iter().map(|t| t.0.as_str()).collect();
            return Err(ferr(format!(
                "the GeoPackage holds {} feature tables ({}); choose one with --source-layer",
                names.len(),
                names.join(", ")
            )));
        }
    };
    let org: Option<(String, i64)> = sqlx::query_as(
        "SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
    )
    .bind(srs_id)
    .fetch_optional(&mut conn)
    .await?;
    let crs = match org {
        Some((org, code)) if org.eq_ignore_ascii_case("EPSG") => {
            Some(Crs::parse(&code.to_string()).map_err(|e| ferr(e.to_string()))?)
        }
        _ => None,
    };
    let info: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT name, type, pk FROM pragma_table_info('{}')",
        table.replace('\'', "''")
    ))
    .fetch_all(&mut conn)
    .await?;
    let fields: Vec<Field> = info
        .iter()
        .filter(|(name, _, pk)| *pk == 0 && name != &geom_col)
        .map(|(name, ty, _)| {
            let t = ty.to_ascii_uppercase();
            let kind = if t.contains("INT") {
                FieldKind::Integer
            } else if t.contains("REAL") || t.contains("DOUBLE") || t.contains("FLOAT") {
                FieldKind::Real
            } else if t.contains("BOOL") {
                FieldKind::Boolean
            } else {
                FieldKind::Text
            };
            Field {
                name: name.clone(),
                kind,
            }
        })
        .collect();
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let cols: String = fields.iter().map(|f| format!(", {}", q(&f.name))).collect();
    let sql = format!("SELECT {}{cols} FROM {}", q(&geom_col), q(&table));
    let mut rows = sqlx::query(&sql).fetch(&mut conn);
    let mut features = Vec::new();
    let mut n = 0usize;
    while let Some(row) = rows.try_next().await.map_err(|e| Error::ImportFeature {
        file: file.to_owned(),
        feature: n + 1,
        reason: format!("unreadable row: {e}"),
    })? {
        n += 1;
        let fail = |reason: String| Error::ImportFeature {
            file: file.to_owned(),
            feature: n,
            reason,
        };
        let g: geozero::wkb::Decode<Geometry<f64>> = row
            .try_get(0)
            .map_err(|e| fail(format!("unreadable geometry: {e}")))?;
        let mut properties = Vec::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            let raw = row.try_get_raw(i + 1)?;
            let v = if raw.is_null() {
                Value::Null
            } else {
                match f.kind {
                    FieldKind::Integer => Value::Int(row.try_get(i + 1)?),
                    FieldKind::Real => Value::Float(row.try_get(i + 1)?),
                    FieldKind::Boolean => Value::Bool(row.try_get(i + 1)?),
                    FieldKind::Text => Value::from(
                        row.try_get::<String, _>(i + 1)
                            .map_err(|e| fail(format!("field {}: {e}", f.name)))?,
                    ),
                }
            };
            properties.push((f.name.clone(), v));
        }
        features.push(RawFeature {
            geometry: g.geometry,
            properties,
        });
        if n.is_multiple_of(10_000) {
            progress.advance(10_000);
        }
    }
    Ok(RawLayer {
        via_gdal: false,
        features,
        crs,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geojson_crs_member_is_read() {
        let head = br#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}},"features":[]}"#;
        assert_eq!(geojson_crs(head).unwrap(), Some(Crs::WebMercator));
        assert_eq!(
            geojson_crs(br#"{"type":"FeatureCollection"}"#).unwrap(),
            None
        );
    }

    #[test]
    fn csv_values_are_typed() {
        assert_eq!(csv_value("42"), Value::Int(42));
        assert_eq!(csv_value("4.5"), Value::Float(4.5));
        assert_eq!(csv_value(""), Value::Null);
        assert_eq!(csv_value("玄武"), Value::from("玄武"));
    }
}
