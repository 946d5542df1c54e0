//! Where layers live between runs: the store trait and its backends.
//!
//! The embedded default is one GeoPackage file ([`gpkg::GeoPackageStore`]); production runs
//! on PostgreSQL/PostGIS ([`postgis::PostgisStore`]). Both implement [`Store`], and the same
//! tests run against both. Every write is atomic: it lands whole or not at all.

pub mod cluster;
pub mod gpkg;
pub mod postgis;

use crate::audit::{AuditEntry, AuditQuery};
use crate::change::{Change, Millis};
use crate::keys::{ApiKey, Revocation};
use crate::layer::{Feature, FieldKind, LayerMeta};
use crate::{Error, Result};
use async_trait::async_trait;
use citytwin_tiles::{EncodedLayer, TileBudget, TileCoord, Value};
use geo::{BoundingRect, Geometry, MultiLineString, MultiPolygon};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// How a write treats the features already in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// The layer afterwards holds exactly the written features.
    #[default]
    Replace,
    /// The written features are added to those already there.
    Append,
}

/// A selection of the live change log.
#[derive(Debug, Clone)]
pub struct ChangeQuery {
    /// only changes after this sequence number
    pub after_seq: u64,
    /// only changes at or after this time
    pub from: Option<Millis>,
    /// only changes at or before this time
    pub to: Option<Millis>,
    /// whether readings are included
    pub readings: bool,
    /// most changes returned
    pub limit: usize,
}

impl Default for ChangeQuery {
    fn default() -> Self {
        Self {
            after_seq: 0,
            from: None,
            to: None,
            readings: true,
            limit: 10_000,
        }
    }
}

/// A column of the readings a query of observations may bound or order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsColumn {
    /// the reading's place in the change log (the observation's id)
    Seq,
    /// when it was measured
    At,
    /// its value
    Value,
}

impl ObsColumn {
    fn sql(self) -> &'static str {
        match self {
            Self::Seq => "seq",
            Self::At => "at",
            Self::Value => "value",
        }
    }
}

/// A comparison of a column with a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// Raw readings in the change log, as SensorThings Observations: of which sensors, within
/// which bounds, in which order, which page.
#[derive(Debug, Clone, Default)]
pub struct ObservationQuery {
    /// only these sensors (`None`: every sensor)
    pub sensors: Option<Vec<String>>,
    /// every bound holds
    pub bounds: Vec<(ObsColumn, Cmp, f64)>,
    /// order (column, descending); the change log's order breaks ties
    pub order: Vec<(ObsColumn, bool)>,
    /// rows skipped
    pub offset: u64,
    /// most rows
    pub limit: u64,
}

/// A raw reading with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    /// place in the change log
    pub seq: u64,
    /// when it was measured
    pub at: Millis,
    /// the sensor
    pub sensor: String,
    /// the value
    pub value: f64,
}

/// A parameter of [`observation_sql`].
#[derive(Debug, Clone)]
pub(crate) enum ObsBind {
    Int(i64),
    Float(f64),
    /// the sensor list: a JSON array (SQLite's json_each) or a text array (PostgreSQL)
    Sensors(Vec<String>),
    /// one sensor
    Sensor(String),
}

/// The SQL of a query of observations (or of their number) in either dialect, with its
/// parameters in order.
pub(crate) fn observation_sql(
    q: &ObservationQuery,
    count: bool,
    postgres: bool,
) -> (String, Vec<ObsBind>) {
    use std::fmt::Write as _;
    let mut binds = Vec::new();
    let ph = |b: ObsBind, binds: &mut Vec<ObsBind>| {
        binds.push(b);
        if postgres {
            format!("${}", binds.len())
        } else {
            "?".to_owned()
        }
    };
    let mut sql = if count {
        "SELECT count(*) FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading'"
            .to_owned()
    } else {
        "SELECT seq, at, entity, value FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading'".to_owned()
    };
    if let Some([one]) = q.sensors.as_deref() {
        // one sensor (a Datastream's Observations): its index range, in order
        let p = ph(ObsBind::Sensor(one.clone()), &mut binds);
        let _ = write!(sql, " AND entity = {p}");
    } else if let Some(list) = &q.sensors {
        let p = ph(ObsBind::Sensors(list.clone()), &mut binds);
        if postgres {
            let _ = write!(sql, " AND entity = ANY({p})");
        } else {
            let _ = write!(sql, " AND entity IN (SELECT value FROM json_each({p}))");
        }
    }
    for (col, cmp, v) in &q.bounds {
        // integers for the integer columns, so their indexes serve
        let bind = if *col != ObsColumn::Value && v.fract() == 0.0 && v.abs() < 9e15 {
            ObsBind::Int(*v as i64)
        } else {
            ObsBind::Float(*v)
        };
        let p = ph(bind, &mut binds);
        let op = match cmp {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
        };
        let _ = write!(sql, " AND {} {op} {p}", col.sql());
    }
    if !count {
        let mut order: Vec<String> = q
            .order
            .iter()
            .map(|(c, desc)| format!("{} {}", c.sql(), if *desc { "DESC" } else { "ASC" }))
            .collect();
        if !q.order.iter().any(|(c, _)| *c == ObsColumn::Seq) {
            order.push("seq ASC".into());
        }
        let limit = ph(
            ObsBind::Int(i64::try_from(q.limit).unwrap_or(i64::MAX)),
            &mut binds,
        );
        let offset = ph(
            ObsBind::Int(i64::try_from(q.offset).unwrap_or(i64::MAX)),
            &mut binds,
        );
        let _ = write!(
            sql,
            " ORDER BY {} LIMIT {limit} OFFSET {offset}",
            order.join(", ")
        );
    }
    (sql, binds)
}

/// A sensor's readings over one interval (or one reading, when not downsampled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// start of the interval (the reading's time when not downsampled)
    pub start: Millis,
    /// readings in it
    pub count: u64,
    /// smallest value
    pub min: f64,
    /// largest value
    pub max: f64,
    /// mean value
    pub avg: f64,
}

impl Bucket {
    /// A bucket from the `(start, count, min, max, avg)` row both stores select.
    #[must_use]
    pub(crate) fn from_row((start, count, min, max, avg): (i64, i64, f64, f64, f64)) -> Self {
        Self {
            start,
            count: count as u64,
            min,
            max,
            avg,
        }
    }
}

/// A checkpoint of the live twin: the state at `at` from the changes numbered up to `seq`
/// (a change numbered later but timed at or before `at`, such as a late reading, is read from
/// the log beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// the time it shows
    pub at: Millis,
    /// the last change it holds
    pub seq: u64,
}

impl From<(i64, i64)> for Checkpoint {
    /// A checkpoint from its stored `(at, seq)` row.
    fn from((at, seq): (i64, i64)) -> Self {
        Self {
            at,
            seq: seq as u64,
        }
    }
}

/// The columns of the change log, in the order both stores write them.
pub(crate) const CHANGE_COLUMNS: &str = "seq, at, layer, kind, entity, lon, lat, grid, value, body";

/// The live twin at a time, in both stores' SQL (PostgreSQL's `$n` parameters; SQLite reads
/// them as `?n`): of a checkpoint's changes ($1: its time, or none), the log's changes it
/// does not hold (timed after $2 or numbered after $3) up to $4 and numbered at most $5, and
/// the rollups' last readings after $2 up to $4, the latest change of each thing and the
/// latest reading of each sensor, in sequence order (rollups, numbered 0, first).
pub(crate) const LIVE_AT: &str = "SELECT seq, at, layer, kind, entity, lon, lat, grid, value, body FROM (SELECT c.*, row_number() OVER (PARTITION BY layer, entity, kind = 'reading' ORDER BY CASE WHEN kind = 'reading' THEN at ELSE 0 END DESC, seq DESC) AS rn FROM (SELECT seq, at, layer, kind, entity, lon, lat, grid, value, body FROM citytwin_checkpoint_changes WHERE checkpoint = $1 UNION ALL SELECT seq, at, layer, kind, entity, lon, lat, grid, value, body FROM citytwin_changes WHERE (at > $2 OR seq > $3) AND at <= $4 AND seq <= $5 UNION ALL SELECT 0, last_at, 'sensors', 'reading', entity, 0.0, 0.0, NULL, last_value, NULL FROM citytwin_reading_rollups WHERE last_at > $2 AND last_at <= $4) AS c) AS r WHERE rn = 1 ORDER BY seq";

/// [`LIVE_AT`]'s five parameters: from checkpoint `from` (or the whole log) to `until`,
/// changes numbered up to `until_seq`.
pub(crate) fn live_at_params(
    from: Option<Checkpoint>,
    until: Millis,
    until_seq: u64,
) -> (i64, i64, i64, i64, i64) {
    let (cp, at, seq) = from.map_or((i64::MIN, i64::MIN, 0), |c| (c.at, c.at, c.seq as i64));
    (
        cp,
        at,
        seq,
        until,
        i64::try_from(until_seq).unwrap_or(i64::MAX),
    )
}

/// A persistent home for layers and their metadata.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short description for logs and `/health`, such as `geopackage:/data/city.gpkg`.
    fn describe(&self) -> String;

    /// Metadata of every layer, ordered by name.
    async fn layers(&self) -> Result<Vec<LayerMeta>>;

    /// Every feature of a layer in id order, geometries in WGS84.
    async fn read_features(&self, layer: &str) -> Result<Vec<Feature>>;

    /// Writes features and metadata in one transaction and returns the metadata as stored
    /// (bounds, count and update time filled in). On error the layer is as it was before.
    async fn write_layer(
        &self,
        meta: &LayerMeta,
        features: &[Feature],
        mode: WriteMode,
    ) -> Result<LayerMeta>;

    /// Adds a version to a layer in one transaction: the closed rows end on the version's
    /// day, the added rows start on it, and the metadata (with its versions) is stored as
    /// given (bounds and update time filled in). A layer not versioned before first gets its
    /// validity columns, its rows valid from `first`. On error the layer is as it was.
    async fn write_version(
        &self,
        meta: &LayerMeta,
        version: &crate::versions::VersionWrite<'_>,
    ) -> Result<LayerMeta> {
        let _ = version;
        Err(Error::Invalid(format!(
            "{} keeps no versions of layer {}",
            self.describe(),
            meta.name
        )))
    }

    /// A versioned layer's rows besides its current features: the validity of the rows
    /// [`crate::versions::HISTORY_ROWS`] selects, and the features of the rows no longer
    /// current.
    async fn read_history(&self, layer: &str) -> Result<crate::versions::StoredHistory> {
        Err(Error::Invalid(format!(
            "{} keeps no versions of layer {layer}",
            self.describe()
        )))
    }

    /// Removes a layer with its features and metadata (a published table of someone else's
    /// is only unpublished, never dropped).
    async fn drop_layer(&self, layer: &str) -> Result<()>;

    /// Succeeds when the store answers a trivial query.
    async fn ping(&self) -> Result<()>;

    /// Whether [`Store::tile_layer`] works: layers too large for memory can then be tiled
    /// by the store itself.
    fn encodes_tiles(&self) -> bool {
        false
    }

    /// Encodes one layer of one tile inside the store, under the tile budget; `None` when no
    /// feature touches the tile.
    async fn tile_layer(
        &self,
        meta: &LayerMeta,
        coord: TileCoord,
        budget: &TileBudget,
    ) -> Result<Option<EncodedLayer>> {
        let _ = (coord, budget);
        Err(Error::Invalid(format!(
            "{} cannot encode tiles itself; serve layer {} from memory",
            self.describe(),
            meta.name
        )))
    }

    /// Appends live changes in one transaction that is durable when this returns.
    async fn append_changes(&self, changes: &[Arc<Change>]) -> Result<()>;

    /// Changes of the log in sequence order, selected by sequence number and time.
    async fn read_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>>;

    /// The last sequence number of the change log (0 when empty).
    async fn last_change(&self) -> Result<u64>;

    /// The live twin at `until`: the latest change carrying a snapshot of each event, sensor
    /// and unit, and the latest reading of each sensor (from the log, or from a rollup where
    /// the raw readings were downsampled), at or before `until`. Read from checkpoint `from`
    /// and the changes it does not hold when given, else from the whole log.
    async fn live_at(&self, from: Option<Checkpoint>, until: Millis) -> Result<Vec<Change>>;

    /// The latest checkpoint at or before `at`.
    async fn checkpoint_before(&self, at: Millis) -> Result<Option<Checkpoint>>;

    /// Every checkpoint, oldest first.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>>;

    /// Writes checkpoint `mark`: what [`Store::live_at`] answers for `mark.at`, from the
    /// changes up to `mark.seq`, starting from checkpoint `from`.
    async fn put_checkpoint(&self, mark: Checkpoint, from: Option<Checkpoint>) -> Result<()>;

    /// Removes the checkpoints taken at these times.
    async fn drop_checkpoints(&self, at: &[Millis]) -> Result<()>;

    /// The time of the oldest raw reading in the log that [`Store::downsample_readings`]
    /// would fold (not the log's last change).
    async fn oldest_reading(&self) -> Result<Option<Millis>>;

    /// Folds the raw readings timed in `[from, to)` into rollups per sensor and `step`
    /// milliseconds (count, min, max, sum, last), merged with rollups already there, and
    /// removes them from the log, in one transaction; returns how many were folded. The
    /// log's last change stays whatever it is: the next change is numbered after it.
    async fn downsample_readings(&self, from: Millis, to: Millis, step: Millis) -> Result<u64>;

    /// A sensor's readings in `[from, to)`, raw or per `interval` milliseconds, oldest first.
    async fn reading_history(
        &self,
        sensor: &str,
        from: Millis,
        to: Millis,
        interval: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<Bucket>>;

    /// Raw readings as SensorThings Observations (rolled-up readings are not observations).
    async fn observations(&self, q: &ObservationQuery) -> Result<Vec<ObservationRow>>;

    /// How many raw readings a query of observations matches (its page aside).
    async fn count_observations(&self, q: &ObservationQuery) -> Result<u64>;

    /// Replaces an existing layer's metadata (a catalogue change), stamping its update time;
    /// returns it as stored. The features stay as they are.
    async fn set_layer_meta(&self, meta: &LayerMeta) -> Result<LayerMeta>;

    /// Every API key citytwin issued (hashes only).
    async fn keys(&self) -> Result<Vec<ApiKey>>;

    /// One API key by id.
    async fn key(&self, id: &str) -> Result<Option<ApiKey>>;

    /// Stores a key, or its new state (revoked).
    async fn put_key(&self, key: &ApiKey) -> Result<()>;

    /// The data bureau's records of one kind (`grant`, `objection`): their JSON bodies,
    /// oldest first.
    async fn records(&self, kind: &str) -> Result<Vec<String>>;

    /// Stores a record, or its new state, under its kind and id; `at` orders the records.
    async fn put_record(&self, kind: &str, id: &str, at: i64, body: &str) -> Result<()>;

    /// Revocations after a sequence number, oldest first.
    async fn revocations(&self, after: u64) -> Result<Vec<Revocation>>;

    /// Appends a revocation (its `seq` is assigned by the store).
    async fn add_revocation(&self, r: &Revocation) -> Result<()>;

    /// Appends audit entries in one transaction, durable when this returns.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;

    /// The last audit entry's sequence number and hash.
    async fn audit_head(&self) -> Result<Option<(u64, String)>>;

    /// Audit entries in sequence order.
    async fn read_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Removes audit entries older than `before` (retention); returns how many.
    async fn prune_audit(&self, before: Millis) -> Result<u64>;

    /// Lets go of files and connections (flushing what needs flushing).
    async fn close(&self) {}

    /// Takes the writer lock of a cluster of instances on this store, if no one holds it:
    /// `None` while another instance holds it. Only a shared server store has one.
    async fn lead(&self) -> Result<Option<Box<dyn crate::cluster::Lease>>> {
        Err(Error::Invalid(format!(
            "{} is one process's store: several instances need the PostGIS store",
            self.describe()
        )))
    }
}

/// The columns of the audit log, in the order both stores write and read them.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, principal, action, target, channel, decision, count, client, request_id, detail, hash";

/// An audit row as both stores read it.
pub(crate) type AuditRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
    String,
);

/// An audit entry from its row.
pub(crate) fn audit_entry(r: AuditRow) -> AuditEntry {
    let (
        seq,
        at,
        principal,
        action,
        target,
        channel,
        decision,
        count,
        client,
        request_id,
        detail,
        hash,
    ) = r;
    AuditEntry {
        seq: seq as u64,
        at,
        principal,
        action,
        target,
        channel,
        decision,
        count: count.map(|c| c as u64),
        client,
        request_id,
        detail,
        hash,
    }
}

/// Reads a stored JSON body of a key or revocation.
pub(crate) fn from_body<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T> {
    serde_json::from_str(body)
        .map_err(|e| Error::Invalid(format!("corrupt {what} in the store: {e}")))
}

/// A layer's stored metadata (JSON), both stores' `citytwin_layers.meta`.
pub(crate) fn parse_meta(json: &str) -> Result<LayerMeta> {
    serde_json::from_str(json).map_err(|e| Error::Invalid(format!("corrupt layer metadata: {e}")))
}

/// A JSON body to store.
pub(crate) fn to_body<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(format!("cannot encode: {e}")))
}

/// Which store a `--store` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// a GeoPackage file (`path.gpkg` or `geopackage:path`)
    GeoPackage(PathBuf),
    /// a PostgreSQL/PostGIS database (`postgres://…` or `postgresql://…`)
    Postgres(String),
}

impl StoreSpec {
    /// Reads a `--store` value.
    #[must_use]
    pub fn parse(spec: &str) -> Self {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Self::Postgres(spec.to_owned())
        } else {
            Self::GeoPackage(PathBuf::from(
                spec.strip_prefix("geopackage:").unwrap_or(spec),
            ))
        }
    }

    /// Opens (and for a GeoPackage creates, for PostGIS migrates) the store.
    pub async fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(match self {
            Self::GeoPackage(path) => Arc::new(gpkg::GeoPackageStore::open(path).await?),
            Self::Postgres(url) => Arc::new(postgis::PostgisStore::connect(url).await?),
        })
    }
}

/// Checks that features described by `new` can be appended to the layer `old`, and returns
/// for each of `new`'s fields the kind of the existing column (`None`: a column to add; a
/// kind wider than the column's: a column to widen, integers to reals).
pub(crate) fn append_columns(old: &LayerMeta, new: &LayerMeta) -> Result<Vec<Option<FieldKind>>> {
    if old.geometry_kind != new.geometry_kind {
        return Err(Error::Invalid(format!(
            "layer {} holds {} geometries, not {}",
            new.name,
            old.geometry_kind.name(),
            new.geometry_kind.name()
        )));
    }
    new.fields
        .iter()
        .map(|f| match old.fields.iter().find(|o| o.name == f.name) {
            // whole numbers before, fractions now: the column widens to reals
            Some(o) if o.kind == FieldKind::Integer && f.kind == FieldKind::Real => {
                Ok(Some(FieldKind::Real))
            }
            Some(o) if o.kind != f.kind && o.kind.widen(f.kind) != o.kind => {
                Err(Error::Invalid(format!(
                    "field {} of layer {} is {:?}, the new features have {:?}",
                    f.name, new.name, o.kind, f.kind
                )))
            }
            Some(o) => Ok(Some(o.kind)),
            None => Ok(None),
        })
        .collect()
}

/// Stores polygons and lines in their multi form, as the column types say.
pub(crate) fn to_column_form(g: &Geometry<f64>) -> Geometry<f64> {
    match g {
        Geometry::Polygon(p) => Geometry::MultiPolygon(MultiPolygon::new(vec![p.clone()])),
        Geometry::LineString(l) => Geometry::MultiLineString(MultiLineString::new(vec![l.clone()])),
        other => other.clone(),
    }
}

/// An SQL identifier, quoted.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `, "a", "b"…`: the layer's attribute columns, quoted, to follow `fid, geom` in a column list.
pub(crate) fn column_list(meta: &LayerMeta) -> String {
    meta.fields
        .iter()
        .map(|f| format!(", {}", quote(&f.name)))
        .collect()
}

/// WGS84 bounds of features.
pub(crate) fn bounds_of(features: &[Feature]) -> Option<[f64; 4]> {
    features
        .iter()
        .filter_map(|f| f.geometry.bounding_rect())
        .fold(None, |acc: Option<[f64; 4]>, r| {
            union_bounds(acc, Some([r.min().x, r.min().y, r.max().x, r.max().y]))
        })
}

/// The bounds covering both.
pub(crate) fn union_bounds(a: Option<[f64; 4]>, b: Option<[f64; 4]>) -> Option<[f64; 4]> {
    match (a, b) {
        (Some(a), Some(b)) => Some([
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ]),
        (a, b) => a.or(b),
    }
}

/// Shares one allocation among repeated short texts (categories, codes) of a bulk read.
#[derive(Default)]
pub(crate) struct Interner(HashMap<Box<str>, Arc<str>>);

impl Interner {
    pub(crate) fn text(&mut self, t: &str) -> Value {
        if t.len() <= 24 && self.0.len() < 10_000 {
            Value::Text(Arc::clone(
                self.0.entry(t.into()).or_insert_with(|| Arc::from(t)),
            ))
        } else {
            Value::from(t)
        }
    }
}
