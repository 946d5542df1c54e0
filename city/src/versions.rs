//! Versioned base layers: the city as of any date.
//!
//! Importing a layer again with an `--as-of` date adds a version instead of erasing the past.
//! Every stored row carries the day it became valid (`valid_from`) and, once a later version
//! changed or removed it, the day it stopped (`valid_to`); features that did not change keep
//! their one row. Features are matched across versions by a stable key field chosen at the
//! first versioned import. The current version is what the twin always loaded; the layer as of
//! an earlier day is built on first use from the current rows and the past ones kept beside
//! them, and cached per version.

use crate::index::{IndexedFeature, LayerIndex};
use crate::layer::{Feature, LayerMeta};
use crate::{Error, Result};
use citytwin_tiles::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A calendar day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(time::Date);

const ISO: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

impl Day {
    /// Reads `YYYY-MM-DD`, or an RFC 3339 time (its date where it was written).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        time::Date::parse(s, ISO)
            .or_else(|_| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(time::OffsetDateTime::date)
            })
            .map(Self)
            .map_err(|_| {
                Error::Invalid(format!(
                    "{s:?} is not a date: use YYYY-MM-DD (or an RFC 3339 time)"
                ))
            })
    }

    /// Today in Beijing time (UTC+8), the city's calendar.
    #[must_use]
    pub fn today() -> Self {
        Self(crate::clock::today())
    }

    /// The day as `YYYY-MM-DD`, as stored and compared in SQL.
    #[must_use]
    pub fn iso(self) -> String {
        self.0.format(ISO).unwrap_or_default()
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.iso())
    }
}

/// One version of a layer: from which day it holds, and what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// the day this version holds from (`YYYY-MM-DD`)
    pub date: String,
    /// features in the layer as of this version
    pub features: u64,
    /// features new in this version
    pub added: u64,
    /// features gone in this version
    pub removed: u64,
    /// features whose geometry or attributes changed in this version
    pub changed: u64,
    /// where this version came from
    #[serde(default)]
    pub source: String,
    /// when it was imported (RFC 3339)
    #[serde(default)]
    pub imported_at: String,
}

/// Rows of a versioned layer besides its current features, as the store reads them.
#[derive(Debug, Default)]
pub struct StoredHistory {
    /// the id of each past row and of each current row newer than the first version, with
    /// the day it became valid and, for past rows, the day it stopped
    pub intervals: Vec<(i64, String, Option<String>)>,
    /// the past rows' features (ids as in `intervals`)
    pub past: Vec<Feature>,
}

/// What a store writes for a new version, in one transaction.
#[derive(Debug)]
pub struct VersionWrite<'a> {
    /// the day the new version holds from
    pub day: Day,
    /// for a layer not versioned before: the day its rows are valid from
    pub first: Option<Day>,
    /// current rows the version ends (changed or removed)
    pub closed: &'a [i64],
    /// rows the version adds (new, or the new state of changed features; ids are assigned)
    pub added: &'a [Feature],
}

/// The SQL condition selecting a layer's rows as of its meta: the current ones of a versioned
/// layer, those valid on `as_of` of a past view, every row of a layer without versions.
#[must_use]
pub fn row_filter(meta: &LayerMeta) -> String {
    match (&meta.as_of, meta.versions.is_empty()) {
        (Some(d), _) if Day::parse(d).is_ok() => {
            // a validated day: safe to write into the statement
            format!(" AND valid_from <= '{d}' AND (valid_to IS NULL OR valid_to > '{d}')")
        }
        (_, false) => " AND valid_to IS NULL".into(),
        _ => String::new(),
    }
}

/// The rows of a versioned layer its history keeps (bind the first version's day): the past
/// ones, and the current ones newer than the first version — a current row from the first
/// version on stands on every day a version is in force, and needs no entry.
pub const HISTORY_ROWS: &str = "valid_to IS NOT NULL OR valid_from > ?";

/// The day of a layer's first version (`YYYY-MM-DD`; empty without versions).
#[must_use]
pub fn first_day(meta: &LayerMeta) -> String {
    meta.versions
        .first()
        .map(|v| v.date.clone())
        .unwrap_or_default()
}

/// A versioned layer's past in memory, beside its current index.
#[derive(Debug, Default)]
pub struct History {
    /// the first day of each current feature newer than the first version (the others hold
    /// from it)
    since: HashMap<i64, Day>,
    /// past rows, in Web Mercator, with the days they held from and until (exclusive)
    past: Vec<(IndexedFeature, Day, Day)>,
}

impl History {
    /// Builds the past from the store's rows.
    pub fn from_stored(stored: StoredHistory) -> Result<Self> {
        let mut since = HashMap::new();
        let mut until = HashMap::new();
        for (id, from, to) in stored.intervals {
            let from = Day::parse(&from)?;
            match to {
                None => {
                    since.insert(id, from);
                }
                Some(to) => {
                    until.insert(id, (from, Day::parse(&to)?));
                }
            }
        }
        let past = stored
            .past
            .into_iter()
            .filter_map(|f| {
                let (from, to) = until.get(&f.id).copied()?;
                Some((crate::index::project(f), from, to))
            })
            .collect();
        Ok(Self { since, past })
    }

    /// Past rows kept.
    #[must_use]
    pub fn past_rows(&self) -> usize {
        self.past.len()
    }
}

/// The version of a layer in force on a day: its index in `meta.versions`, `None` before the
/// first.
#[must_use]
pub fn version_on(meta: &LayerMeta, day: Day) -> Option<usize> {
    meta.versions
        .iter()
        .rposition(|v| Day::parse(&v.date).is_ok_and(|d| d <= day))
}

/// The layer as it was on `day` (in force: the version `version`, or nothing before the
/// first), built from the current index and its history.
#[must_use]
pub fn snapshot(raw: &LayerIndex, version: Option<usize>, number: u64) -> LayerIndex {
    let mut meta = raw.meta.clone();
    let day = version.and_then(|i| Day::parse(&meta.versions[i].date).ok());
    meta.as_of = Some(version.map_or_else(
        || "0001-01-01".to_owned(),
        |i| meta.versions[i].date.clone(),
    ));
    meta.versions.truncate(version.map_or(0, |i| i + 1));
    // what the catalogue and the attribution say is that version's provenance
    if let Some(v) = meta.versions.last() {
        if !v.source.is_empty() {
            meta.source.clone_from(&v.source);
        }
        if !v.imported_at.is_empty() {
            meta.updated_at.clone_from(&v.imported_at);
        }
    }
    if !raw.resident {
        meta.feature_count = meta.versions.last().map_or(0, |v| v.features);
        return LayerIndex::in_store(meta, number);
    }
    let mut features = Vec::new();
    if let (Some(day), Some(h)) = (day, raw.history.as_ref()) {
        features.extend(
            raw.features()
                .iter()
                .filter(|f| h.since.get(&f.id).is_none_or(|d| *d <= day))
                .cloned(),
        );
        features.extend(
            h.past
                .iter()
                .filter(|(_, from, to)| *from <= day && day < *to)
                .map(|(f, _, _)| f.clone()),
        );
    }
    meta.feature_count = features.len() as u64;
    LayerIndex::from_indexed(meta, features, number, raw.form)
}

/// One feature's change between two dates.
#[derive(Debug, Clone)]
pub struct Changed {
    /// `added`, `removed` or `changed`
    pub kind: &'static str,
    /// the feature as of the later date (as of the earlier one when removed)
    pub feature: IndexedFeature,
    /// the fields whose values differ (`geometry` when the geometry does), for `changed`
    pub fields: Vec<String>,
}

/// Features added, removed and changed from layer `a` to layer `b` (both the same layer at two
/// dates), matched by the key field; ordered by key.
pub fn diff(a: &LayerIndex, b: &LayerIndex, key: &str) -> Result<Vec<Changed>> {
    let ka = a
        .meta
        .field_index(key)
        .ok_or_else(|| missing_key(&a.meta, key))?;
    let kb = b
        .meta
        .field_index(key)
        .ok_or_else(|| missing_key(&b.meta, key))?;
    fn by_key(l: &LayerIndex, k: usize) -> std::collections::BTreeMap<String, &IndexedFeature> {
        l.features()
            .iter()
            .map(|f| (key_text(&f.values[k]), f))
            .collect()
    }
    let (old, new) = (by_key(a, ka), by_key(b, kb));
    let mut out = Vec::new();
    for (k, f) in &new {
        match old.get(k) {
            None => out.push(Changed {
                kind: "added",
                feature: (*f).clone(),
                fields: Vec::new(),
            }),
            Some(o) => {
                let fields = changed_fields(&a.meta, o, &b.meta, f);
                if !fields.is_empty() {
                    out.push(Changed {
                        kind: "changed",
                        feature: (*f).clone(),
                        fields,
                    });
                }
            }
        }
    }
    for (k, f) in &old {
        if !new.contains_key(k) {
            out.push(Changed {
                kind: "removed",
                feature: (*f).clone(),
                fields: Vec::new(),
            });
        }
    }
    Ok(out)
}

fn missing_key(meta: &LayerMeta, key: &str) -> Error {
    Error::Invalid(format!("layer {} has no key field {key:?}", meta.name))
}

/// [`key_text`] without copying a text key.
fn key_ref(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::Text(t) => std::borrow::Cow::Borrowed(t),
        other => std::borrow::Cow::Owned(key_text(other)),
    }
}

/// A key value as text (integers and texts alike), so `12` and `"12"` match.
#[must_use]
pub fn key_text(v: &Value) -> String {
    match v {
        Value::Text(t) => t.to_string(),
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 9e15 => format!("{}", *x as i64),
        other => other.to_string(),
    }
}

/// Geometries compared across versions: a polygon or line and its one-part multi form (as
/// the stores keep them) are the same.
fn same_geometry(a: &geo::Geometry<f64>, b: &geo::Geometry<f64>) -> bool {
    use geo::Geometry as G;
    match (a, b) {
        (G::Polygon(p), G::MultiPolygon(m)) | (G::MultiPolygon(m), G::Polygon(p)) => {
            m.0.len() == 1 && m.0[0] == *p
        }
        (G::LineString(l), G::MultiLineString(m)) | (G::MultiLineString(m), G::LineString(l)) => {
            m.0.len() == 1 && m.0[0] == *l
        }
        _ => a == b,
    }
}

/// Values compared across versions: integers and reals of equal value are equal.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::Float(x)) | (Value::Float(x), Value::Int(i)) => {
            x.fract() == 0.0 && x.abs() < 9e15 && *i == *x as i64
        }
        _ => a == b,
    }
}

/// The fields (by name, over both field lists) and `geometry` whose values differ.
fn changed_fields(
    ma: &LayerMeta,
    a: &IndexedFeature,
    mb: &LayerMeta,
    b: &IndexedFeature,
) -> Vec<String> {
    let mut out = Vec::new();
    if a.geometry != b.geometry {
        out.push("geometry".to_owned());
    }
    let value = |m: &LayerMeta, f: &IndexedFeature, name: &str| {
        m.field_index(name)
            .map_or(Value::Null, |i| f.values[i].clone())
    };
    let mut names: Vec<&str> = mb.fields.iter().map(|f| f.name.as_str()).collect();
    names.extend(
        ma.fields
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| mb.field_index(n).is_none()),
    );
    for n in names {
        if !same_value(&value(ma, a, n), &value(mb, b, n)) {
            out.push(n.to_owned());
        }
    }
    out
}

/// The plan of a new version: which current rows end, which rows are added, and the counts.
#[derive(Debug, Default)]
pub struct Plan {
    /// current row ids that end (removed or changed)
    pub closed: Vec<i64>,
    /// positions in the new features of the rows to add (new or changed)
    pub added: Vec<usize>,
    /// counts
    pub new: u64,
    /// removed features
    pub removed: u64,
    /// changed features
    pub changed: u64,
}

/// Compares a new version's features (`fields` aligned with their values) with the current
/// rows, by the key field. A key missing or repeated in the new features is an error naming
/// the feature.
pub fn plan(
    current: &[Feature],
    current_meta: &LayerMeta,
    incoming: &[Feature],
    incoming_meta: &LayerMeta,
    key: &str,
    file: &str,
) -> Result<Plan> {
    let kc = current_meta
        .field_index(key)
        .ok_or_else(|| missing_key(current_meta, key))?;
    let ki = incoming_meta.field_index(key).ok_or_else(|| Error::ImportFile {
        file: file.to_owned(),
        reason: format!(
            "the layer's versions are matched by field {key:?}, which the file lacks (fields: {})",
            incoming_meta
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let old: HashMap<std::borrow::Cow<'_, str>, &Feature> = current
        .iter()
        .map(|f| (key_ref(&f.values[kc]), f))
        .collect();
    // the incoming values under the current fields' names, for comparison
    let map: Vec<Option<usize>> = current_meta
        .fields
        .iter()
        .map(|f| incoming_meta.field_index(&f.name))
        .collect();
    let extra = incoming_meta
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| current_meta.field_index(&f.name).is_none())
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    let mut seen: HashMap<std::borrow::Cow<'_, str>, usize> =
        HashMap::with_capacity(incoming.len());
    let mut p = Plan::default();
    for (n, f) in incoming.iter().enumerate() {
        let k = &f.values[ki];
        if matches!(k, Value::Null) {
            return Err(Error::ImportFeature {
                file: file.to_owned(),
                feature: n + 1,
                reason: format!(
                    "no value in the key field {key:?}, which matches features across versions"
                ),
            });
        }
        let k = key_ref(k);
        if let Some(first) = seen.get(&k) {
            return Err(Error::ImportFeature {
                file: file.to_owned(),
                feature: n + 1,
                reason: format!(
                    "key {key} = {k:?} is also feature {}'s; the key must name one feature",
                    first + 1
                ),
            });
        }
        let found = old.get(&k);
        seen.insert(k, n);
        match found {
            None => {
                p.new += 1;
                p.added.push(n);
            }
            Some(o) => {
                let same = same_geometry(&o.geometry, &f.geometry)
                    && map.iter().enumerate().all(|(c, m)| {
                        let v = m.map_or(&Value::Null, |i| &f.values[i]);
                        same_value(&o.values[c], v)
                    })
                    && extra.iter().all(|&i| matches!(f.values[i], Value::Null));
                if !same {
                    p.changed += 1;
                    p.closed.push(o.id);
                    p.added.push(n);
                }
            }
        }
    }
    for (k, o) in &old {
        if !seen.contains_key(k) {
            p.removed += 1;
            p.closed.push(o.id);
        }
    }
    p.closed.sort_unstable();
    Ok(p)
}

/// A layer's name and the version in force (`None`: before the first).
type SnapshotKey = (String, Option<usize>);

/// The twin's cache of layers as of past dates: one index per layer and version in force,
/// dropped when the layer changes.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    built: std::sync::RwLock<HashMap<SnapshotKey, Arc<LayerIndex>>>,
    build: std::sync::Mutex<()>,
}

/// Past versions held at once (each about as large as the layer's changed part plus its
/// R-tree); the oldest built goes first.
const SNAPSHOTS_KEPT: usize = 12;

impl crate::City {
    /// A layer as of a day: the current index when the day is in the current version (or the
    /// layer has no versions), else the version in force then, built on first use.
    #[must_use]
    pub fn layer_on(&self, raw: Arc<LayerIndex>, day: Option<Day>) -> Arc<LayerIndex> {
        let Some(day) = day else { return raw };
        if raw.meta.versions.is_empty() || raw.meta.as_of.is_some() {
            return raw;
        }
        let version = version_on(&raw.meta, day);
        if version == Some(raw.meta.versions.len() - 1) {
            return raw;
        }
        let key = (raw.meta.name.clone(), version);
        let fresh = |v: &Arc<LayerIndex>| v.parent == raw.version;
        let cached = || {
            self.snapshots
                .built
                .read()
                .ok()
                .and_then(|m| m.get(&key).cloned())
                .filter(fresh)
        };
        if let Some(v) = cached() {
            return v;
        }
        let _one = self.snapshots.build.lock();
        if let Some(v) = cached() {
            return v;
        }
        let started = std::time::Instant::now();
        let mut index = snapshot(&raw, version, self.next_version());
        index.parent = raw.version;
        let index = Arc::new(index);
        tracing::info!(
            layer = %raw.meta.name,
            as_of = index.meta.as_of.as_deref().unwrap_or(""),
            features = index.feature_count(),
            ms = started.elapsed().as_millis() as u64,
            "past version built"
        );
        if let Ok(mut m) = self.snapshots.built.write() {
            m.retain(|(n, _), v| *n != raw.meta.name || fresh(v));
            if m.len() >= SNAPSHOTS_KEPT
                && let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, v)| v.version)
                    .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
            m.insert(key, Arc::clone(&index));
        }
        index
    }
}

impl crate::City {
    /// What changed in a layer from one day to a later one, as the asker sees the layer (its
    /// desensitised view too): an index of the added, removed and changed features with two
    /// fields before the layer's own, `change` (`added`, `removed`, `changed`) and
    /// `changed_fields` (comma-separated, `geometry` among them when it moved). Removed
    /// features carry their last values.
    pub fn changes(
        &self,
        cx: &crate::access::Context,
        name: &str,
        from: Day,
        to: Day,
    ) -> Result<(Arc<LayerIndex>, crate::access::ReadPlan)> {
        if from >= to {
            return Err(Error::Invalid(format!(
                "from ({from}) must be before to ({to})"
            )));
        }
        let on = |day: Day| crate::access::Context {
            at: Some(day),
            ..cx.clone()
        };
        let (a, plan) = self.read_plan(&on(from), name)?;
        plan.features_allowed()?;
        let (b, _) = self.read_plan(&on(to), name)?;
        if !b.resident {
            return Err(Error::Invalid(format!(
                "layer {name} is tiled by the store and not held in memory; it answers tiles only"
            )));
        }
        let current = self
            .layer(name)
            .ok_or_else(|| Error::UnknownLayer(name.to_owned()))?;
        let key = current.meta.version_key.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "layer {name} keeps no versions: import it again with --as-of to start them"
            ))
        })?;
        let changed = diff(&a, &b, &key)?;
        let mut meta = b.meta.clone();
        meta.fields = [("change", "text"), ("changed_fields", "text")]
            .iter()
            .map(|(n, _)| crate::Field {
                name: (*n).to_owned(),
                kind: crate::FieldKind::Text,
            })
            .chain(meta.fields.iter().cloned())
            .collect();
        meta.tile_fields = None;
        meta.time_field = None;
        meta.as_of = Some(format!("{from}..{to}"));
        let features: Vec<IndexedFeature> = changed
            .into_iter()
            .map(|c| {
                let source = if c.kind == "removed" {
                    &a.meta
                } else {
                    &b.meta
                };
                let mut values = vec![
                    Value::from(c.kind),
                    Value::from(c.fields.join(",").as_str()),
                ];
                values.extend(b.meta.fields.iter().map(|f| {
                    source
                        .field_index(&f.name)
                        .map_or(Value::Null, |i| c.feature.values[i].clone())
                }));
                IndexedFeature {
                    values: values.into_boxed_slice(),
                    ..c.feature
                }
            })
            .collect();
        meta.feature_count = features.len() as u64;
        let index = LayerIndex::from_indexed(meta, features, self.next_version(), b.form);
        Ok((Arc::new(index), plan))
    }
}
