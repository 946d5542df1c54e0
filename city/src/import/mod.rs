//! Import of GIS files into layers: read, validate, convert to WGS84, then one atomic write.
//!
//! Formats: GeoJSON, GeoPackage, FlatGeobuf, Shapefile and CSV with lon/lat (or WKT) columns.
//! Coordinate systems: EPSG:4326, EPSG:4490 (CGCS2000, taken as WGS84), GCJ-02 and EPSG:3857.
//! Any bad feature stops the import with the file, the feature number and the reason, and the
//! layer is left as it was.

mod formats;
pub mod gdal;
pub mod validity;

use crate::layer::{
    Feature, Field, FieldKind, GeometryKind, LayerMeta, check_field_name, check_layer_name,
};
use crate::store::{Store, WriteMode};
use crate::{Error, Result};
use citytwin_tiles::{Crs, Value};
use geo::{Geometry, MapCoords};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use formats::Format;

/// What to import and where.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// the file
    pub path: PathBuf,
    /// the target layer
    pub layer: String,
    /// the file's coordinate system, when it does not say (or says wrongly)
    pub crs: Option<Crs>,
    /// replace the layer (default) or append to it
    pub mode: WriteMode,
    /// the table inside a GeoPackage holding several
    pub source_layer: Option<String>,
    /// title for the catalogue
    pub title: Option<String>,
    /// description for the catalogue
    pub description: Option<String>,
    /// minimum zoom of the layer's tiles
    pub minzoom: Option<u8>,
    /// maximum zoom of the layer's tiles
    pub maxzoom: Option<u8>,
    /// where the data came from
    pub source: Option<String>,
    /// when the source data was acquired (ISO date)
    pub acquired: Option<String>,
    /// the attributes written into tiles (`None`: keep the layer's choice, all by default)
    pub tile_fields: Option<Vec<String>>,
    /// the field holding each feature's time (`None`: keep the layer's choice)
    pub time_field: Option<String>,
    /// the layer's entry in the classified catalogue (`None`: keep the layer's, if any)
    pub classification: Option<crate::catalog::Classification>,
    /// what to do with a feature whose geometry is invalid or missing
    pub invalid: Invalid,
    /// the file's CRS when citytwin's own readers do not know it (`EPSG:4549`, a WKT or PROJ
    /// string): the file is then read through GDAL, which converts it
    pub source_crs: Option<String>,
    /// a base-map layer made from an OpenStreetMap file (read through GDAL)
    pub osm: Option<gdal::Osm>,
    /// add the file as a version of the layer holding from this day (`YYYY-MM-DD`) instead of
    /// replacing it; a layer with versions always takes a new one (from `acquired`, else
    /// today, when this is not given)
    pub as_of: Option<String>,
    /// the field that identifies a feature across versions (default: the layer's, else `id`)
    pub version_key: Option<String>,
}

/// What an import does with a feature it cannot take as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Invalid {
    /// stop, naming the feature (nothing is written)
    #[default]
    Fail,
    /// leave the feature out, and say so in the report
    Skip,
    /// make its geometry valid (as PostGIS's `ST_MakeValid` does); leave it out when nothing
    /// valid is left; say so in the report
    Repair,
}

impl Invalid {
    /// `fail`, `skip` or `repair`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(Self::Fail),
            "skip" => Ok(Self::Skip),
            "repair" => Ok(Self::Repair),
            other => Err(Error::Invalid(format!(
                "--invalid {other:?}: use fail, skip or repair"
            ))),
        }
    }
}

/// A feature an import repaired or left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amended {
    /// its number in the file, from 1 (also its id in the layer when kept)
    pub feature: usize,
    /// its own id, when it has one (an `id`, `osm_id`, `fid` or `objectid` attribute)
    pub id: Option<String>,
    /// `repaired` or `skipped`
    pub action: &'static str,
    /// what was wrong
    pub reason: String,
}

/// Writes the report of an import's repaired and skipped features as CSV.
pub fn write_report(path: &std::path::Path, amended: &[Amended]) -> Result<()> {
    use std::fmt::Write as _;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("feature,id,action,reason\n");
    for a in amended {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            a.feature,
            a.id.as_deref().map(quote).unwrap_or_default(),
            a.action,
            quote(&a.reason)
        );
    }
    std::fs::write(path, out).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

impl ImportRequest {
    /// A request with defaults: replace, CRS from the file (or WGS84).
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, layer: &str) -> Self {
        Self {
            path: path.into(),
            layer: layer.to_owned(),
            crs: None,
            mode: WriteMode::Replace,
            source_layer: None,
            title: None,
            description: None,
            minzoom: None,
            maxzoom: None,
            source: None,
            acquired: None,
            tile_fields: None,
            time_field: None,
            classification: None,
            invalid: Invalid::Fail,
            source_crs: None,
            osm: None,
            as_of: None,
            version_key: None,
        }
    }
}

/// Receives progress of a long import (the CLI draws a progress bar with it).
pub trait Progress: Send + Sync {
    /// A phase starts, with its total when known.
    fn phase(&self, name: &str, total: Option<u64>);
    /// `n` more units of the phase are done.
    fn advance(&self, n: u64);
    /// The import is over.
    fn finish(&self);
}

/// A progress sink that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// A feature as read from a file, before validation.
#[derive(Debug, Clone)]
pub struct RawFeature {
    /// geometry in the file's CRS, if it had one
    pub geometry: Option<Geometry<f64>>,
    /// properties in file order
    pub properties: Vec<(String, Value)>,
}

/// What a reader found in a file.
#[derive(Debug, Default)]
pub struct RawLayer {
    /// the features in file order
    pub features: Vec<RawFeature>,
    /// the CRS the file declares, if any
    pub crs: Option<Crs>,
    /// declared fields (GeoPackage, Shapefile, FlatGeobuf), so empty columns keep their type
    pub fields: Vec<Field>,
    /// read through GDAL, already in WGS84
    pub via_gdal: bool,
}

/// A file read, validated and converted: ready for the store.
#[derive(Debug)]
pub struct ValidLayer {
    /// geometry kind of every feature
    pub kind: GeometryKind,
    /// attribute columns
    pub fields: Vec<Field>,
    /// features with WGS84 geometries, ids from 1
    pub features: Vec<Feature>,
    /// the CRS converted from
    pub crs: Crs,
    /// features repaired or left out (with `--invalid repair|skip`)
    pub amended: Vec<Amended>,
    /// whether GDAL read the file (and converted it to WGS84)
    pub via_gdal: bool,
}

/// Reads and validates a file; nothing is written.
pub fn read_and_validate(req: &ImportRequest, progress: &dyn Progress) -> Result<ValidLayer> {
    let file = req.path.display().to_string();
    progress.phase("reading", None);
    let through_gdal = || {
        gdal::read(
            &req.path,
            req.source_layer.as_deref(),
            req.source_crs.as_deref(),
            req.osm,
            progress,
        )
    };
    let (raw, crs) = match Format::detect(&req.path).filter(|_| req.osm.is_none()) {
        // citytwin's own readers, unless the CRS is one only GDAL knows
        Some(format) if req.source_crs.is_none() && !req.path.is_dir() => {
            match formats::read(format, &req.path, req.source_layer.as_deref(), progress) {
                Err(e) if names_unknown_crs(&e) && gdal::available() => {
                    (through_gdal()?, Crs::Wgs84)
                }
                Err(e) => return Err(e),
                Ok(raw) => {
                    let crs = req.crs.or(raw.crs).unwrap_or(Crs::Wgs84);
                    (raw, crs)
                }
            }
        }
        // anything else GDAL reads, converted to WGS84 on the way
        _ => (through_gdal()?, Crs::Wgs84),
    };
    progress.phase("validating", Some(raw.features.len() as u64));
    let via_gdal = raw.via_gdal;
    let mut valid = validate(&file, raw, crs, req.invalid, progress)?;
    valid.via_gdal = via_gdal;
    Ok(valid)
}

/// Whether a reader stopped at a CRS it does not know (GDAL may know it).
fn names_unknown_crs(e: &Error) -> bool {
    match e {
        Error::Tiles(citytwin_tiles::Error::UnknownCrs(_)) => true,
        Error::ImportFile { reason, .. } => {
            reason.contains("CRS") || reason.contains("coordinate reference system")
        }
        _ => false,
    }
}

fn infer_kind(v: &Value) -> Option<FieldKind> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(FieldKind::Boolean),
        Value::Int(_) => Some(FieldKind::Integer),
        Value::Float(_) => Some(FieldKind::Real),
        Value::Text(_) => Some(FieldKind::Text),
    }
}

fn coerce(v: Value, kind: FieldKind) -> Value {
    match (kind, v) {
        (FieldKind::Real, Value::Int(i)) => Value::Float(i as f64),
        (FieldKind::Integer, Value::Bool(b)) => Value::Int(i64::from(b)),
        (FieldKind::Text, Value::Int(i)) => Value::from(i.to_string()),
        (FieldKind::Text, Value::Float(f)) => Value::from(f.to_string()),
        (FieldKind::Text, Value::Bool(b)) => Value::from(b.to_string()),
        (_, v) => v,
    }
}

fn validate(
    file: &str,
    raw: RawLayer,
    crs: Crs,
    invalid: Invalid,
    progress: &dyn Progress,
) -> Result<ValidLayer> {
    let fail = |n: usize, reason: String| Error::ImportFeature {
        file: file.to_owned(),
        feature: n,
        reason,
    };
    if raw.features.is_empty() {
        return Err(Error::ImportFile {
            file: file.to_owned(),
            reason: "the file holds no features".into(),
        });
    }
    // fields: declared first, then in order of first appearance, widened across features
    let mut fields = raw.fields.clone();
    for f in &raw.features {
        for (name, v) in &f.properties {
            let Some(kind) = infer_kind(v) else {
                if !fields.iter().any(|x| &x.name == name) {
                    fields.push(Field {
                        name: name.clone(),
                        kind: FieldKind::Text,
                    });
                }
                continue;
            };
            match fields.iter_mut().find(|x| &x.name == name) {
                Some(field) => {
                    if !raw.fields.iter().any(|d| &d.name == name) {
                        field.kind = field.kind.widen(kind);
                    }
                }
                None => fields.push(Field {
                    name: name.clone(),
                    kind,
                }),
            }
        }
    }
    // columns seen only as null default to text; fix kinds that were first seen null
    for f in &mut fields {
        if let Some(kind) = raw
            .features
            .iter()
            .flat_map(|r| r.properties.iter())
            .filter(|(n, _)| n == &f.name)
            .filter_map(|(_, v)| infer_kind(v))
            .reduce(FieldKind::widen)
            && !raw.fields.iter().any(|d| d.name == f.name)
        {
            f.kind = kind;
        }
    }
    for f in &fields {
        check_field_name(&f.name).map_err(|e| Error::ImportFile {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
    }
    let mut kind = None;
    let mut features = Vec::with_capacity(raw.features.len());
    let mut amended = Vec::new();
    // a feature that cannot be taken as it is: the import stops, or it is left out and listed
    let how_on = "; --invalid repair makes geometries valid, --invalid skip leaves such features out (both list them in a report)";
    let refuse = |amended: &mut Vec<Amended>,
                  n: usize,
                  props: &[(String, Value)],
                  reason: String|
     -> Result<()> {
        if invalid == Invalid::Fail {
            return Err(fail(n, format!("{reason}{how_on}")));
        }
        amended.push(Amended {
            feature: n,
            id: own_id(props),
            action: "skipped",
            reason,
        });
        Ok(())
    };
    for (i, rf) in raw.features.into_iter().enumerate() {
        let n = i + 1;
        let Some(g) = rf.geometry else {
            refuse(
                &mut amended,
                n,
                &rf.properties,
                "the feature has no geometry".into(),
            )?;
            continue;
        };
        let Some(k) = GeometryKind::of(&g) else {
            refuse(
                &mut amended,
                n,
                &rf.properties,
                "geometry collections are not supported; split them into layers".into(),
            )?;
            continue;
        };
        match kind {
            None => kind = Some(k),
            Some(expected) if expected != k => {
                refuse(
                    &mut amended,
                    n,
                    &rf.properties,
                    format!(
                        "wrong geometry type: the layer holds {}, this feature is a {}",
                        expected.name(),
                        k.name()
                    ),
                )?;
                continue;
            }
            Some(_) => {}
        }
        let bad = std::cell::RefCell::new(None::<String>);
        let g = g.map_coords(|c| {
            if !(c.x.is_finite() && c.y.is_finite()) {
                bad.borrow_mut().get_or_insert_with(|| format!("coordinate ({}, {}) is not a number", c.x, c.y));
                return c;
            }
            if crs == Crs::WebMercator
                && (c.x.abs() > citytwin_tiles::WEB_MERCATOR_MAX * 1.001
                    || c.y.abs() > citytwin_tiles::WEB_MERCATOR_MAX * 1.001)
            {
                bad.borrow_mut().get_or_insert_with(|| {
                    format!("coordinate ({}, {}) is outside EPSG:3857", c.x, c.y)
                });
                return c;
            }
            let (x, y) = crs.to_wgs84(c.x, c.y);
            if !(-180.0..=180.0).contains(&x) || !(-90.0..=90.0).contains(&y) {
                bad.borrow_mut().get_or_insert_with(|| {
                    format!(
                        "coordinate ({}, {}) is outside {crs}'s range; is the file in another CRS? (use --crs)",
                        c.x, c.y
                    )
                });
            }
            geo::Coord { x, y }
        });
        if let Some(reason) = bad.into_inner() {
            // a coordinate outside the CRS's range is the file's CRS, not the feature: stop
            if reason.contains("(use --crs)") || reason.contains("outside EPSG:3857") {
                return Err(fail(n, reason));
            }
            refuse(&mut amended, n, &rf.properties, reason)?;
            continue;
        }
        let g = match validity::check(&g) {
            Ok(()) => g,
            Err(e) => {
                let reason = format!("invalid geometry: {e}");
                match (invalid, validity::repair(&g)) {
                    (Invalid::Repair, Some(fixed)) => {
                        amended.push(Amended {
                            feature: n,
                            id: own_id(&rf.properties),
                            action: "repaired",
                            reason,
                        });
                        fixed
                    }
                    (Invalid::Repair, None) => {
                        refuse(
                            &mut amended,
                            n,
                            &rf.properties,
                            format!("{reason}; nothing valid is left of it"),
                        )?;
                        continue;
                    }
                    _ => {
                        refuse(&mut amended, n, &rf.properties, reason)?;
                        continue;
                    }
                }
            }
        };
        let mut values = vec![Value::Null; fields.len()];
        for (name, v) in rf.properties {
            if let Some(idx) = fields.iter().position(|f| f.name == name) {
                values[idx] = coerce(v, fields[idx].kind);
            }
        }
        features.push(Feature {
            id: n as i64,
            geometry: g,
            values,
        });
        if n % 10_000 == 0 {
            progress.advance(10_000);
        }
    }
    let kind = kind
        .filter(|_| !features.is_empty())
        .ok_or_else(|| Error::ImportFile {
            file: file.to_owned(),
            reason: if amended.is_empty() {
                "the file holds no features".into()
            } else {
                format!("none of its {} features could be taken", amended.len())
            },
        })?;
    Ok(ValidLayer {
        kind,
        fields,
        features,
        crs,
        amended,
        via_gdal: false,
    })
}

/// A feature's own id, from an attribute real data names so.
fn own_id(props: &[(String, Value)]) -> Option<String> {
    ["id", "osm_id", "fid", "objectid", "OBJECTID", "ID"]
        .iter()
        .find_map(|name| props.iter().find(|(n, _)| n == name))
        .and_then(|(_, v)| match v {
            Value::Null => None,
            Value::Text(t) => Some(t.to_string()),
            other => Some(other.to_string()),
        })
}

/// The outcome of an import.
#[derive(Debug)]
pub struct Imported {
    /// the layer's metadata as stored
    pub meta: LayerMeta,
    /// the whole layer's features when the import replaced it (appends must re-read the store)
    pub features: Option<Vec<Feature>>,
    /// features repaired or left out
    pub amended: Vec<Amended>,
}

/// Imports a file into a store: read and validate (off the async threads), merge metadata with
/// the existing layer's, then one atomic write. On error the store is unchanged.
pub async fn import(
    store: &dyn Store,
    req: ImportRequest,
    progress: Arc<dyn Progress>,
) -> Result<Imported> {
    check_layer_name(&req.layer)?;
    if let (Some(a), Some(b)) = (req.minzoom, req.maxzoom)
        && a > b
    {
        return Err(Error::Invalid(format!("minzoom {a} is above maxzoom {b}")));
    }
    let existing = store
        .layers()
        .await?
        .into_iter()
        .find(|m| m.name == req.layer);
    let p = Arc::clone(&progress);
    // a new layer without a given maxzoom gets one from its density (off the async threads too)
    let guess = existing.is_none() && req.maxzoom.is_none();
    // a new version is compared with the current rows: they are read while the file is
    let versioned =
        req.as_of.is_some() || existing.as_ref().is_some_and(|m| !m.versions.is_empty());
    let current = async {
        match &existing {
            Some(m) if versioned && m.external.is_none() => {
                let started = std::time::Instant::now();
                let rows = store.read_features(&m.name).await;
                Some((rows, started.elapsed().as_millis() as u64))
            }
            _ => None,
        }
    };
    let parsed = tokio::task::spawn_blocking(move || {
        let v = read_and_validate(&req, p.as_ref()).map(|v| {
            let maxzoom = guess.then(|| guess_maxzoom(&v.features));
            (v, maxzoom)
        });
        (req, v)
    });
    let (parsed, current) = tokio::join!(parsed, current);
    let (req, valid) = parsed.map_err(|e| Error::Invalid(format!("import task failed: {e}")))?;
    let (valid, guessed) = valid?;
    let meta = merge_meta(existing.as_ref(), &req, &valid, guessed)?;
    if versioned {
        let current = match current {
            Some((rows, ms)) => Some((rows?, ms)),
            None => None,
        };
        return import_version(store, existing, current, meta, &req, valid, progress).await;
    }
    progress.phase("writing", None);
    let stored = store.write_layer(&meta, &valid.features, req.mode).await?;
    progress.finish();
    let whole = req.mode == WriteMode::Replace || existing.is_none();
    Ok(Imported {
        meta: stored,
        amended: valid.amended,
        features: whole.then_some(valid.features),
    })
}

/// Imports a file as a new version of a layer (or a new layer's first version): compares it
/// with the current rows by the key field and writes only what changed.
async fn import_version(
    store: &dyn Store,
    existing: Option<LayerMeta>,
    current: Option<(Vec<Feature>, u64)>,
    mut meta: LayerMeta,
    req: &ImportRequest,
    valid: ValidLayer,
    progress: Arc<dyn Progress>,
) -> Result<Imported> {
    use crate::versions::{Day, Version, VersionWrite};
    let file = file_label(&req.path);
    if req.mode == WriteMode::Append {
        return Err(Error::Invalid(format!(
            "layer {} keeps versions: import the whole layer as a new version (--as-of), not --append",
            req.layer
        )));
    }
    let day = match req.as_of.as_deref().or(req.acquired.as_deref()) {
        Some(d) => Day::parse(d)?,
        None => Day::today(),
    };
    let key = req
        .version_key
        .clone()
        .or_else(|| existing.as_ref().and_then(|m| m.version_key.clone()))
        .or_else(|| meta.field_index("id").map(|_| "id".to_owned()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "versions match features by a field that names each one the same in every version: give it with --version-key FIELD (fields: {})",
                meta.fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    if meta
        .fields
        .iter()
        .any(|f| f.name == "valid_from" || f.name == "valid_to")
    {
        return Err(Error::Invalid(format!(
            "{file} has a field valid_from or valid_to, which a versioned layer keeps for itself; rename it"
        )));
    }
    let stamp = |date: Day, features: u64, added: u64, removed: u64, changed: u64| Version {
        date: date.iso(),
        features,
        added,
        removed,
        changed,
        source: meta.source.clone(),
        imported_at: crate::layer::now_rfc3339(),
    };
    let Some(old) = existing else {
        // a new layer: its first version
        if meta.field_index(&key).is_none() {
            return Err(Error::Invalid(format!(
                "the key field {key:?} is not a field of {file}"
            )));
        }
        crate::versions::plan(&[], &meta, &valid.features, &meta, &key, &file)?;
        let n = valid.features.len() as u64;
        meta.version_key = Some(key);
        meta.versions = vec![stamp(day, n, n, 0, 0)];
        progress.phase("writing", None);
        let stored = store
            .write_layer(&meta, &valid.features, WriteMode::Replace)
            .await?;
        progress.finish();
        return Ok(Imported {
            meta: stored,
            amended: valid.amended,
            features: None,
        });
    };
    if old.external.is_some() {
        return Err(Error::Invalid(format!(
            "layer {} is a published table; citytwin keeps no versions of it",
            old.name
        )));
    }
    // a layer without versions becomes one: its rows hold from its acquisition (or last update)
    let first = if old.versions.is_empty() {
        let from = old
            .acquired
            .as_deref()
            .and_then(|d| Day::parse(d).ok())
            .or_else(|| Day::parse(&old.updated_at).ok())
            .unwrap_or(day);
        Some(from)
    } else {
        None
    };
    let latest = match (&first, old.versions.last()) {
        (Some(f), _) => *f,
        (None, Some(v)) => Day::parse(&v.date)?,
        (None, None) => day,
    };
    if day <= latest {
        return Err(Error::Invalid(format!(
            "layer {}'s latest version holds from {latest}; a new version must hold from a later day (--as-of)",
            old.name
        )));
    }
    progress.phase("comparing", None);
    let started = std::time::Instant::now();
    let (current, read_ms) = match current {
        Some(c) => c,
        None => (store.read_features(&old.name).await?, 0),
    };
    let (plan, current) = {
        let (old, meta, key, file) = (old.clone(), meta.clone(), key.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            let incoming = valid.features;
            let p = crate::versions::plan(&current, &old, &incoming, &meta, &key, &file);
            // a million geometries take a while to free: not on the import's path
            std::thread::spawn(move || drop(current));
            (p, (incoming, valid.amended))
        })
        .await
        .map_err(|e| Error::Invalid(format!("comparison failed: {e}")))?
    };
    let plan = plan?;
    let (incoming, amended) = current;
    let compare_ms = started.elapsed().as_millis() as u64;
    let features = old.feature_count - plan.removed;
    let features = features + plan.new;
    let mut versions = old.versions.clone();
    if let Some(f) = first {
        versions.push(stamp(f, old.feature_count, old.feature_count, 0, 0));
        versions[0].source.clone_from(&old.source);
        versions[0].imported_at.clone_from(&old.updated_at);
    }
    versions.push(stamp(day, features, plan.new, plan.removed, plan.changed));
    meta.versions = versions;
    meta.version_key = Some(key);
    meta.feature_count = features;
    let added: Vec<Feature> = plan.added.iter().map(|&i| incoming[i].clone()).collect();
    progress.phase("writing", None);
    let stored = store
        .write_version(
            &meta,
            &VersionWrite {
                day,
                first,
                closed: &plan.closed,
                added: &added,
            },
        )
        .await?;
    progress.finish();
    tracing::info!(
        layer = %stored.name,
        as_of = %day,
        added = plan.new,
        removed = plan.removed,
        changed = plan.changed,
        read_ms,
        compare_ms,
        write_ms = started.elapsed().as_millis() as u64 - compare_ms,
        "new version"
    );
    Ok(Imported {
        meta: stored,
        amended,
        features: None,
    })
}

fn merge_meta(
    existing: Option<&LayerMeta>,
    req: &ImportRequest,
    valid: &ValidLayer,
    guessed_maxzoom: Option<u8>,
) -> Result<LayerMeta> {
    let mut meta = existing
        .cloned()
        .unwrap_or_else(|| LayerMeta::new(&req.layer, valid.kind));
    meta.geometry_kind = valid.kind;
    meta.fields.clone_from(&valid.fields);
    if let Some(t) = &req.title {
        meta.title.clone_from(t);
    }
    if let Some(d) = &req.description {
        meta.description.clone_from(d);
    }
    if let Some(z) = req.minzoom {
        meta.minzoom = z;
    }
    if let Some(z) = req.maxzoom {
        meta.maxzoom = z;
    } else if let Some(z) = guessed_maxzoom {
        meta.maxzoom = z.max(meta.minzoom);
        if meta.maxzoom > 14 {
            tracing::info!(layer = %req.layer, maxzoom = meta.maxzoom, "a dense layer: its tiles go deeper than z14 so every feature fits at full detail");
        }
    }
    if meta.minzoom > meta.maxzoom || meta.maxzoom > citytwin_tiles::tile::MAX_ZOOM {
        return Err(Error::Invalid(format!(
            "zoom range {}..{} is invalid (0 ≤ minzoom ≤ maxzoom ≤ {})",
            meta.minzoom,
            meta.maxzoom,
            citytwin_tiles::tile::MAX_ZOOM
        )));
    }
    meta.source = req.source.clone().unwrap_or_else(|| {
        format!(
            "{} ({})",
            file_label(&req.path),
            if valid.via_gdal {
                "read by GDAL".to_owned()
            } else {
                valid.crs.to_string()
            }
        )
    });
    if req.acquired.is_some() {
        meta.acquired.clone_from(&req.acquired);
    }
    if let Some(keep) = &req.tile_fields {
        if let Some(unknown) = keep
            .iter()
            .find(|k| !meta.fields.iter().any(|f| &f.name == *k))
        {
            return Err(Error::Invalid(format!(
                "tile field {unknown:?} is not a field of the file ({})",
                meta.fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        meta.tile_fields = Some(keep.clone());
    }
    if req.time_field.is_some() {
        meta.time_field.clone_from(&req.time_field);
    } else if meta
        .time_field
        .as_ref()
        .is_some_and(|t| meta.field_index(t).is_none())
    {
        // the replacing file no longer has the layer's time field
        meta.time_field = None;
    }
    meta.time_index()?;
    if let Some(c) = &req.classification {
        c.check()?;
        crate::catalog::check_fields(c, &meta)?;
        meta.classification = Some(c.clone());
    }
    Ok(meta)
}

/// The file name without directories, for metadata.
#[must_use]
pub fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The maximum zoom for a new layer, chosen from its density the way tippecanoe's `-zg`
/// guesses one: 14, or deeper (up to 18) while the densest tile there would hold more than
/// half the default feature budget or, by an estimate of its encoded size, half the byte
/// budget — so at its maximum zoom, where every feature must be in the tile, it fits.
#[must_use]
pub fn guess_maxzoom(features: &[Feature]) -> u8 {
    use geo::{BoundingRect, CoordsIter};
    let budget = citytwin_tiles::TileBudget::default();
    let spots: Vec<((f64, f64), usize)> = features
        .iter()
        .filter_map(|f| {
            let r = f.geometry.bounding_rect()?;
            let c = r.center();
            // an estimate of the feature's encoded bytes: header, 2 per coordinate, attributes
            let cost = 8 + 2 * f.geometry.coords_count() + 4 * f.values.len();
            Some((citytwin_tiles::proj::lonlat_to_mercator(c.x, c.y), cost))
        })
        .collect();
    for z in 14..=18u8 {
        let mut tiles: std::collections::HashMap<(u32, u32), (usize, usize)> =
            std::collections::HashMap::new();
        for ((x, y), cost) in &spots {
            let t = citytwin_tiles::TileCoord::containing(*x, *y, z);
            let e = tiles.entry((t.x, t.y)).or_default();
            e.0 += 1;
            e.1 += cost;
        }
        let fits = tiles
            .values()
            .all(|(n, bytes)| *n <= budget.max_features / 2 && *bytes <= budget.max_bytes / 2);
        if fits {
            return z;
        }
    }
    18
}
