//! The embedded store: one OGC GeoPackage file (SQLite), readable by QGIS and GDAL.
//!
//! Each layer is a GeoPackage feature table (`fid`, `geom`, attribute columns) registered in
//! `gpkg_contents` and `gpkg_geometry_columns`; citytwin's own metadata (title, zooms, source,
//! acquisition date…) lives in `citytwin_layers` as JSON. Geometries are WGS84 (EPSG:4326).

use super::parse_meta;
use super::{
    AUDIT_COLUMNS, AuditRow, Bucket, CHANGE_COLUMNS, ChangeQuery, Checkpoint, Interner, LIVE_AT,
    ObsBind, ObservationQuery, ObservationRow, Store, WriteMode, append_columns, audit_entry,
    bounds_of, column_list, from_body, live_at_params, observation_sql, quote, to_body,
    to_column_form, union_bounds,
};
use crate::audit::{AuditEntry, AuditQuery};
use crate::change::{Change, Millis};
use crate::keys::{ApiKey, Revocation};
use crate::layer::{Feature, FieldKind, LayerMeta, check_layer_name, now_rfc3339};
use crate::versions::HISTORY_ROWS;
use crate::{Error, Result};
use async_trait::async_trait;
use citytwin_tiles::Value;
use geo::{BoundingRect, Geometry};
use geozero::{CoordDimensions, ToWkb};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

const WGS84_WKT: &str = r#"GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]]"#;

const SCHEMA: &[&str] = &[
    "PRAGMA application_id = 1196444487",
    "PRAGMA user_version = 10400",
    "CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)",
    "CREATE TABLE IF NOT EXISTS gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER, CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))",
    "CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), CONSTRAINT uk_gc_table_name UNIQUE (table_name), CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name), CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))",
    "CREATE TABLE IF NOT EXISTS citytwin_layers (name TEXT PRIMARY KEY, meta TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS citytwin_changes (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, layer TEXT NOT NULL, kind TEXT NOT NULL, entity TEXT NOT NULL, lon REAL NOT NULL, lat REAL NOT NULL, grid TEXT, value REAL, body TEXT)",
    "CREATE INDEX IF NOT EXISTS citytwin_changes_at ON citytwin_changes (at)",
    "CREATE INDEX IF NOT EXISTS citytwin_changes_entity ON citytwin_changes (layer, entity, at)",
    // raw readings past their retention, folded per sensor and interval
    "CREATE TABLE IF NOT EXISTS citytwin_reading_rollups (entity TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, total REAL NOT NULL, last_at INTEGER NOT NULL, last_value REAL NOT NULL, PRIMARY KEY (entity, bucket))",
    "CREATE INDEX IF NOT EXISTS citytwin_reading_rollups_last ON citytwin_reading_rollups (last_at)",
    // the live twin at a time, so the past is read from the nearest one, not the whole log
    "CREATE TABLE IF NOT EXISTS citytwin_checkpoints (at INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS citytwin_checkpoint_changes (checkpoint INTEGER NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, layer TEXT NOT NULL, kind TEXT NOT NULL, entity TEXT NOT NULL, lon REAL NOT NULL, lat REAL NOT NULL, grid TEXT, value REAL, body TEXT)",
    "CREATE INDEX IF NOT EXISTS citytwin_checkpoint_changes_at ON citytwin_checkpoint_changes (checkpoint)",
    "CREATE TABLE IF NOT EXISTS citytwin_keys (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS citytwin_records (kind TEXT NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id))",
    "CREATE TABLE IF NOT EXISTS citytwin_revocations (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS citytwin_audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, channel TEXT NOT NULL, decision TEXT NOT NULL, count INTEGER, client TEXT NOT NULL, request_id TEXT NOT NULL, detail TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS citytwin_audit_at ON citytwin_audit (at)",
    // the audit log is append-only, and entries stay at least 180 days; the triggers come
    // back on every open, and the hash chain shows what happened while one was dropped
    "CREATE TRIGGER IF NOT EXISTS citytwin_audit_append_only BEFORE UPDATE ON citytwin_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS citytwin_audit_retention BEFORE DELETE ON citytwin_audit WHEN old.at > (CAST(strftime('%s', 'now') AS INTEGER) - 180 * 86400) * 1000 BEGIN SELECT RAISE(ABORT, 'audit entries are kept at least 180 days'); END",
];

/// A GeoPackage file holding every layer.
#[derive(Debug, Clone)]
pub struct GeoPackageStore {
    path: PathBuf,
    pool: SqlitePool,
    /// the connection live changes are appended through (opened on the first append)
    log: Arc<std::sync::Mutex<Option<rusqlite::Connection>>>,
}

impl GeoPackageStore {
    /// Opens the GeoPackage at `path`, creating it (and its GeoPackage tables) when missing.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(30))
            .foreign_keys(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let mut tx = pool.begin().await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        for (name, id, org, code, def) in [
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined"),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined"),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, WGS84_WKT),
        ] {
            sqlx::query(
                "INSERT OR IGNORE INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, organization_coordsys_id, definition) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(name)
            .bind(id)
            .bind(org)
            .bind(code)
            .bind(def)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Self {
            path: path.to_path_buf(),
            pool,
            log: Arc::default(),
        })
    }

    /// The file this store lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One layer's metadata, if the layer exists.
    async fn meta_of(&self, layer: &str) -> Result<Option<LayerMeta>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT meta FROM citytwin_layers WHERE name = ?")
                .bind(layer)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(json,)| parse_meta(&json)).transpose()
    }

    /// Writes a complete, consistent copy of the store to `path` (SQLite's `VACUUM INTO`: the
    /// write-ahead log's pages included, whatever other connections hold), for a file to be
    /// renamed into place.
    pub async fn copy_to(&self, path: &Path) -> Result<()> {
        let _ = std::fs::remove_file(path);
        sqlx::query("VACUUM INTO ?")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool, checkpointing the write-ahead log into the file.
    pub async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

/// GeoPackage geometry blob: the `GP` header with an XY envelope, then little-endian WKB.
fn gpkg_blob(g: &Geometry<f64>) -> Result<Vec<u8>> {
    let wkb = g
        .to_wkb(CoordDimensions::xy())
        .map_err(|e| Error::Invalid(format!("cannot encode geometry: {e}")))?;
    let mut out = Vec::with_capacity(8 + 32 + wkb.len());
    out.extend_from_slice(b"GP");
    out.push(0);
    match g.bounding_rect() {
        Some(r) => {
            out.push(0b0000_0011);
            out.extend_from_slice(&4326i32.to_le_bytes());
            for v in [r.min().x, r.max().x, r.min().y, r.max().y] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        None => {
            out.push(0b0001_0001);
            out.extend_from_slice(&4326i32.to_le_bytes());
        }
    }
    out.extend_from_slice(&wkb);
    Ok(out)
}

#[async_trait]
impl Store for GeoPackageStore {
    fn describe(&self) -> String {
        format!("geopackage:{}", self.path.display())
    }

    async fn layers(&self) -> Result<Vec<LayerMeta>> {
        let rows = sqlx::query("SELECT meta FROM citytwin_layers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let json: String = r.try_get(0)?;
                parse_meta(&json)
            })
            .collect()
    }

    async fn read_features(&self, layer: &str) -> Result<Vec<Feature>> {
        check_layer_name(layer)?;
        let meta = self
            .meta_of(layer)
            .await?
            .ok_or_else(|| Error::UnknownLayer(layer.to_owned()))?;
        let cols: String = meta
            .fields
            .iter()
            .map(|f| format!(", {}", quote(&f.name)))
            .collect();
        let sql = format!(
            "SELECT fid, geom{cols} FROM {} WHERE fid BETWEEN ?1 AND ?2{} ORDER BY fid",
            quote(layer),
            crate::versions::row_filter(&meta)
        );
        let (lo, hi): (Option<i64>, Option<i64>) =
            sqlx::query_as(&format!("SELECT min(fid), max(fid) FROM {}", quote(layer)))
                .fetch_one(&self.pool)
                .await?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(Vec::new());
        };
        // large layers are read in parallel slices of the fid range
        let slices: i64 = if meta.feature_count > 50_000 { 4 } else { 1 };
        let step = (hi - lo) / slices + 1;
        let kinds: Arc<[FieldKind]> = meta.fields.iter().map(|f| f.kind).collect();
        let tasks: Vec<_> = (0..slices)
            .map(|i| {
                let (path, sql, kinds) = (self.path.clone(), sql.clone(), Arc::clone(&kinds));
                let (a, b) = (lo + i * step, (lo + (i + 1) * step - 1).min(hi));
                tokio::task::spawn_blocking(move || read_slice(&path, &sql, &kinds, a, b))
            })
            .collect();
        let mut out = Vec::with_capacity(meta.feature_count as usize);
        for t in tasks {
            out.extend(
                t.await
                    .map_err(|e| Error::Invalid(format!("read task failed: {e}")))??,
            );
        }
        Ok(out)
    }

    async fn write_layer(
        &self,
        meta: &LayerMeta,
        features: &[Feature],
        mode: WriteMode,
    ) -> Result<LayerMeta> {
        check_layer_name(&meta.name)?;
        let existing = self.meta_of(&meta.name).await?;
        let mut tx = self.pool.begin().await?;
        // a versioned layer's rows hold from its latest version
        let from = meta.versions.last().map(|v| v.date.clone());
        let stored = write_rows(&mut tx, existing, meta, features, mode, from.as_deref()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn write_version(
        &self,
        meta: &LayerMeta,
        v: &crate::versions::VersionWrite<'_>,
    ) -> Result<LayerMeta> {
        check_layer_name(&meta.name)?;
        let existing = self
            .meta_of(&meta.name)
            .await?
            .ok_or_else(|| Error::UnknownLayer(meta.name.clone()))?;
        let table = quote(&meta.name);
        let mut tx = self.pool.begin().await?;
        if let Some(first) = v.first {
            for col in ["valid_from", "valid_to"] {
                sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {col} TEXT"))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(&format!("UPDATE {table} SET valid_from = ?"))
                .bind(first.iso())
                .execute(&mut *tx)
                .await?;
        }
        let mut closed = 0;
        for chunk in v.closed.chunks(500) {
            let ids = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            closed += sqlx::query(&format!(
                "UPDATE {table} SET valid_to = ? WHERE fid IN ({ids}) AND valid_to IS NULL"
            ))
            .bind(v.day.iso())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if closed != v.closed.len() as u64 {
            return Err(Error::Invalid(format!(
                "layer {} changed while its new version was compared; import it again",
                meta.name
            )));
        }
        let mut stored = write_rows(
            &mut tx,
            Some(existing),
            meta,
            v.added,
            WriteMode::Append,
            Some(&v.day.iso()),
        )
        .await?;
        stored.feature_count = meta.feature_count;
        save_meta(&mut tx, &stored).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn read_history(&self, layer: &str) -> Result<crate::versions::StoredHistory> {
        check_layer_name(layer)?;
        let meta = self
            .meta_of(layer)
            .await?
            .ok_or_else(|| Error::UnknownLayer(layer.to_owned()))?;
        let table = quote(layer);
        let intervals: Vec<(i64, String, Option<String>)> = sqlx::query_as(&format!(
            "SELECT fid, valid_from, valid_to FROM {table} WHERE {HISTORY_ROWS}"
        ))
        .bind(crate::versions::first_day(&meta))
        .fetch_all(&self.pool)
        .await?;
        let sql = format!(
            "SELECT fid, geom{} FROM {table} WHERE fid BETWEEN ?1 AND ?2 AND valid_to IS NOT NULL ORDER BY fid",
            column_list(&meta)
        );
        let kinds: Vec<FieldKind> = meta.fields.iter().map(|f| f.kind).collect();
        let path = self.path.clone();
        let past = tokio::task::spawn_blocking(move || {
            read_slice(&path, &sql, &kinds, i64::MIN, i64::MAX)
        })
        .await
        .map_err(|e| Error::Invalid(format!("read task failed: {e}")))??;
        Ok(crate::versions::StoredHistory { intervals, past })
    }

    async fn drop_layer(&self, layer: &str) -> Result<()> {
        check_layer_name(layer)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", quote(layer)))
            .execute(&mut *tx)
            .await?;
        for table in ["gpkg_geometry_columns", "gpkg_contents"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE table_name = ?"))
                .bind(layer)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM citytwin_layers WHERE name = ?")
            .bind(layer)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::UnknownLayer(layer.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn append_changes(&self, changes: &[Arc<Change>]) -> Result<()> {
        let (log, path, batch) = (Arc::clone(&self.log), self.path.clone(), changes.to_vec());
        tokio::task::spawn_blocking(move || {
            let err = |e: rusqlite::Error| Error::Unavailable(format!("{}: {e}", path.display()));
            let mut guard = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.is_none() {
                let conn = rusqlite::Connection::open(&path).map_err(err)?;
                conn.busy_timeout(std::time::Duration::from_secs(30))
                    .map_err(err)?;
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(err)?;
                conn.pragma_update(None, "synchronous", "FULL")
                    .map_err(err)?;
                *guard = Some(conn);
            }
            let Some(conn) = guard.as_mut() else {
                return Err(Error::Unavailable("no log connection".into()));
            };
            let result = append_blocking(conn, &batch).map_err(err);
            if result.is_err() {
                // a connection in an unknown state is not reused
                *guard = None;
            }
            result
        })
        .await
        .map_err(|e| Error::Unavailable(format!("append task failed: {e}")))?
    }

    async fn read_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANGE_COLUMNS} FROM citytwin_changes WHERE seq > ? AND at >= ? AND at <= ? AND (? OR kind <> 'reading') ORDER BY seq LIMIT ?"
        ))
        .bind(q.after_seq as i64)
        .bind(q.from.unwrap_or(Millis::MIN))
        .bind(q.to.unwrap_or(Millis::MAX))
        .bind(q.readings)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        sqlite_changes(&rows)
    }

    async fn last_change(&self) -> Result<u64> {
        let (seq,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM citytwin_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0) as u64)
    }

    async fn live_at(&self, from: Option<Checkpoint>, until: Millis) -> Result<Vec<Change>> {
        let p = live_at_params(from, until, u64::MAX);
        let rows = sqlx::query(&LIVE_AT.replace('$', "?"))
            .bind(p.0)
            .bind(p.1)
            .bind(p.2)
            .bind(p.3)
            .bind(p.4)
            .fetch_all(&self.pool)
            .await?;
        sqlite_changes(&rows)
    }

    async fn checkpoint_before(&self, at: Millis) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT at, seq FROM citytwin_checkpoints WHERE at <= ? ORDER BY at DESC LIMIT 1",
        )
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Checkpoint::from))
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT at, seq FROM citytwin_checkpoints ORDER BY at")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Checkpoint::from).collect())
    }

    async fn put_checkpoint(&self, mark: Checkpoint, from: Option<Checkpoint>) -> Result<()> {
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            f64,
            f64,
            Option<String>,
            Option<f64>,
            Option<String>,
        );
        let p = live_at_params(from, mark.at, mark.seq);
        // read before the write transaction: a reader does not hold up the log's appends
        // (WAL), and the first checkpoint of a long log reads all of it
        let rows: Vec<Row> = sqlx::query_as(&LIVE_AT.replace('$', "?"))
            .bind(p.0)
            .bind(p.1)
            .bind(p.2)
            .bind(p.3)
            .bind(p.4)
            .fetch_all(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        let insert = format!(
            "INSERT INTO citytwin_checkpoint_changes (checkpoint, {CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        for r in rows {
            sqlx::query(&insert)
                .bind(mark.at)
                .bind(r.0)
                .bind(r.1)
                .bind(r.2)
                .bind(r.3)
                .bind(r.4)
                .bind(r.5)
                .bind(r.6)
                .bind(r.7)
                .bind(r.8)
                .bind(r.9)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO citytwin_checkpoints (at, seq) VALUES (?, ?)")
            .bind(mark.at)
            .bind(mark.seq as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn drop_checkpoints(&self, at: &[Millis]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for a in at {
            sqlx::query("DELETE FROM citytwin_checkpoint_changes WHERE checkpoint = ?")
                .bind(a)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM citytwin_checkpoints WHERE at = ?")
                .bind(a)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn oldest_reading(&self) -> Result<Option<Millis>> {
        let (at,): (Option<i64>,) = sqlx::query_as(
            "SELECT min(at) FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND seq < (SELECT max(seq) FROM citytwin_changes)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(at)
    }

    async fn downsample_readings(&self, from: Millis, to: Millis, step: Millis) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // the log's last change stays, whatever it is: its number is where the next one
        // counts from when the twin opens again
        let (top,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM citytwin_changes")
            .fetch_one(&mut *tx)
            .await?;
        let top = top.unwrap_or(0);
        // SQLite takes the other columns of an aggregate's row from the row holding max()
        sqlx::query(
            "INSERT INTO citytwin_reading_rollups (entity, bucket, n, lo, hi, total, last_at, last_value) SELECT entity, (at / ?3) * ?3 AS b, count(*), min(value), max(value), sum(value), max(at), value FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND at >= ?1 AND at < ?2 AND seq < ?4 GROUP BY entity, b ON CONFLICT (entity, bucket) DO UPDATE SET n = n + excluded.n, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi), total = total + excluded.total, last_value = CASE WHEN excluded.last_at >= last_at THEN excluded.last_value ELSE last_value END, last_at = max(last_at, excluded.last_at)",
        )
        .bind(from)
        .bind(to)
        .bind(step)
        .bind(top)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query(
            "DELETE FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND at >= ? AND at < ? AND seq < ?",
        )
        .bind(from)
        .bind(to)
        .bind(top)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }

    async fn reading_history(
        &self,
        sensor: &str,
        from: Millis,
        to: Millis,
        interval: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<Bucket>> {
        // raw readings from the log, older ones from their rollups
        let rows: Vec<(i64, i64, f64, f64, f64)> = match interval {
            Some(step) => sqlx::query_as(
                "SELECT b, sum(n), min(lo), max(hi), sum(total) / sum(n) FROM (SELECT (at / ?4) * ?4 AS b, 1 AS n, value AS lo, value AS hi, value AS total FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND entity = ?1 AND at >= ?2 AND at < ?3 UNION ALL SELECT (bucket / ?4) * ?4, n, lo, hi, total FROM citytwin_reading_rollups WHERE entity = ?1 AND bucket >= ?2 AND bucket < ?3) GROUP BY b ORDER BY b LIMIT ?5",
            )
            .bind(sensor).bind(from).bind(to).bind(step).bind(limit as i64)
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query_as::<_, (i64, i64, f64, f64, f64, i64)>(
                "SELECT at, 1, value, value, value, seq FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND entity = ?1 AND at >= ?2 AND at < ?3 UNION ALL SELECT bucket, n, lo, hi, total / n, 0 FROM citytwin_reading_rollups WHERE entity = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY 1, 6 LIMIT ?4",
            )
            .bind(sensor).bind(from).bind(to).bind(limit as i64)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(a, n, lo, hi, avg, _)| (a, n, lo, hi, avg))
            .collect(),
        };
        Ok(rows.into_iter().map(Bucket::from_row).collect())
    }

    async fn observations(&self, q: &ObservationQuery) -> Result<Vec<ObservationRow>> {
        let (sql, binds) = observation_sql(q, false, false);
        let query = bind_observations(sqlx::query_as::<_, (i64, i64, String, f64)>(&sql), binds);
        Ok(query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(seq, at, sensor, value)| ObservationRow {
                seq: seq as u64,
                at,
                sensor,
                value,
            })
            .collect())
    }

    async fn count_observations(&self, q: &ObservationQuery) -> Result<u64> {
        let (sql, binds) = observation_sql(q, true, false);
        let query = bind_observations(sqlx::query_as::<_, (i64,)>(&sql), binds);
        Ok(query.fetch_one(&self.pool).await?.0 as u64)
    }

    async fn set_layer_meta(&self, meta: &LayerMeta) -> Result<LayerMeta> {
        let mut stored = meta.clone();
        stored.updated_at = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE citytwin_layers SET meta = ? WHERE name = ?")
            .bind(to_body(&stored)?)
            .bind(&meta.name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::UnknownLayer(meta.name.clone()));
        }
        sqlx::query("UPDATE gpkg_contents SET identifier = ?, description = ?, last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name = ?")
            .bind(&meta.title)
            .bind(&meta.description)
            .bind(&meta.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn keys(&self) -> Result<Vec<ApiKey>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT body FROM citytwin_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|(b,)| from_body("key", b)).collect()
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM citytwin_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(b,)| from_body("key", &b)).transpose()
    }

    async fn put_key(&self, key: &ApiKey) -> Result<()> {
        sqlx::query("INSERT OR REPLACE INTO citytwin_keys (id, body) VALUES (?, ?)")
            .bind(&key.id)
            .bind(to_body(key)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn records(&self, kind: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM citytwin_records WHERE kind = ? ORDER BY at, id")
                .bind(kind)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    async fn put_record(&self, kind: &str, id: &str, at: i64, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO citytwin_records (kind, id, at, body) VALUES (?, ?, ?, ?)",
        )
        .bind(kind)
        .bind(id)
        .bind(at)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revocations(&self, after: u64) -> Result<Vec<Revocation>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, body FROM citytwin_revocations WHERE seq > ? ORDER BY seq")
                .bind(after as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|(seq, b)| {
                let mut r: Revocation = from_body("revocation", b)?;
                r.seq = *seq as u64;
                Ok(r)
            })
            .collect()
    }

    async fn add_revocation(&self, r: &Revocation) -> Result<()> {
        sqlx::query("INSERT INTO citytwin_revocations (body) VALUES (?)")
            .bind(to_body(r)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for e in entries {
            sqlx::query(&format!(
                "INSERT INTO citytwin_audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .bind(e.seq as i64)
            .bind(e.at)
            .bind(&e.principal)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.channel)
            .bind(&e.decision)
            .bind(e.count.map(|c| c as i64))
            .bind(&e.client)
            .bind(&e.request_id)
            .bind(&e.detail)
            .bind(&e.hash)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM citytwin_audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(s, h)| (s as u64, h)))
    }

    async fn read_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM citytwin_audit WHERE seq > ? AND at >= ? AND at <= ? \
             AND (? IS NULL OR principal = ?) AND (? IS NULL OR target = ?) \
             AND (? IS NULL OR action = ?) AND (? IS NULL OR decision = ?) ORDER BY seq LIMIT ?"
        ))
        .bind(q.after as i64)
        .bind(q.from.unwrap_or(Millis::MIN))
        .bind(q.to.unwrap_or(Millis::MAX))
        .bind(&q.principal)
        .bind(&q.principal)
        .bind(&q.target)
        .bind(&q.target)
        .bind(&q.action)
        .bind(&q.action)
        .bind(&q.decision)
        .bind(&q.decision)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    async fn prune_audit(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM citytwin_audit WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn close(&self) {
        GeoPackageStore::close(self).await;
    }
}

/// Appends changes in one transaction; with `synchronous = FULL` the commit returns once the
/// write-ahead log is on disk.
fn append_blocking(conn: &mut rusqlite::Connection, batch: &[Arc<Change>]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT INTO citytwin_changes ({CHANGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?;
        for c in batch {
            stmt.execute(rusqlite::params![
                c.seq as i64,
                c.at,
                c.layer.name(),
                c.kind,
                c.entity,
                c.lon,
                c.lat,
                c.grid,
                c.value,
                c.body
            ])?;
        }
    }
    tx.commit()
}

/// The changes of rows selected with `CHANGE_COLUMNS`, skipping kinds or layers this version
/// does not know.
fn sqlite_changes(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Change>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.extend(sqlite_change(r)?);
    }
    Ok(out)
}

fn sqlite_change(r: &sqlx::sqlite::SqliteRow) -> Result<Option<Change>> {
    let kind: String = r.try_get(3)?;
    let layer: String = r.try_get(2)?;
    Ok(Change::stored(
        r.try_get::<i64, _>(0)? as u64,
        r.try_get(1)?,
        &kind,
        &layer,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
        r.try_get(9)?,
    ))
}

/// Reads one slice of a feature table. Bulk reads go through rusqlite: sqlx's SQLite driver
/// hands every row across a worker thread, which costs about 3 µs a row (10 s for a million
/// buildings at start-up); a direct read takes a fifth of that.
fn read_slice(
    path: &Path,
    sql: &str,
    kinds: &[FieldKind],
    lo: i64,
    hi: i64,
) -> Result<Vec<Feature>> {
    use rusqlite::types::ValueRef as V;
    let err = |e: rusqlite::Error| Error::Invalid(format!("reading {}: {e}", path.display()));
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let mut rows = stmt.query([lo, hi]).map_err(err)?;
    let mut out = Vec::new();
    let mut interner = Interner::default();
    while let Some(row) = rows.next().map_err(err)? {
        let id: i64 = row.get(0).map_err(err)?;
        let V::Blob(mut blob) = row.get_ref(1).map_err(err)? else {
            continue;
        };
        let geometry = <Geometry<f64> as geozero::wkb::FromWkb>::from_wkb(
            &mut blob,
            geozero::wkb::WkbDialect::Geopackage,
        )
        .map_err(|e| Error::Invalid(format!("feature {id}: unreadable geometry: {e}")))?;
        let mut values = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            let v = row.get_ref(i + 2).map_err(err)?;
            values.push(match (kind, v) {
                (FieldKind::Boolean, V::Integer(b)) => Value::Bool(b != 0),
                (_, V::Integer(n)) => Value::Int(n),
                (_, V::Real(x)) => Value::Float(x),
                (_, V::Text(t)) => interner.text(&String::from_utf8_lossy(t)),
                (_, V::Null | V::Blob(_)) => Value::Null,
            });
        }
        out.push(Feature {
            id,
            geometry,
            values,
        });
    }
    Ok(out)
}

/// Writes a layer's rows and metadata inside a transaction (`existing`: the layer as stored).
async fn write_rows(
    tx: &mut sqlx::SqliteConnection,
    existing: Option<LayerMeta>,
    meta: &LayerMeta,
    features: &[Feature],
    mode: WriteMode,
    valid_from: Option<&str>,
) -> Result<LayerMeta> {
    let table = quote(&meta.name);
    let mut stored = meta.clone();
    match (&existing, mode) {
        (Some(old), WriteMode::Append) => {
            let existing_kinds = append_columns(old, meta)?;
            for (f, existing) in meta.fields.iter().zip(existing_kinds) {
                match existing {
                    Some(_) => {}
                    None => {
                        sqlx::query(&format!(
                            "ALTER TABLE {table} ADD COLUMN {} {}",
                            quote(&f.name),
                            f.kind.sql_type()
                        ))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            stored.feature_count = old.feature_count + features.len() as u64;
            stored.bounds = union_bounds(old.bounds, bounds_of(features));
        }
        _ => {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut *tx)
                .await?;
            let cols: String = meta
                .fields
                .iter()
                .map(|f| format!(", {} {}", quote(&f.name), f.kind.sql_type()))
                .collect();
            // a versioned layer's rows carry the days they hold from and until
            let validity = if meta.versions.is_empty() {
                ""
            } else {
                ", valid_from TEXT, valid_to TEXT"
            };
            sqlx::query(&format!(
                    "CREATE TABLE {table} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom {}{cols}{validity})",
                    meta.geometry_kind.gpkg_name()
                ))
                .execute(&mut *tx)
                .await?;
            stored.feature_count = features.len() as u64;
            stored.bounds = bounds_of(features);
        }
    }
    let columns = column_list(meta)
        + if valid_from.is_some() {
            ", valid_from"
        } else {
            ""
        };
    let per_row = meta.fields.len() + 2 + usize::from(valid_from.is_some());
    let rows_per_stmt = (30_000 / per_row).clamp(1, 400);
    for chunk in features.chunks(rows_per_stmt) {
        let placeholders = format!("({})", vec!["?"; per_row].join(","));
        let sql = format!(
            "INSERT INTO {table} (fid, geom{columns}) VALUES {}",
            vec![placeholders.as_str(); chunk.len()].join(",")
        );
        let mut q = sqlx::query(&sql);
        for f in chunk {
            if f.values.len() != meta.fields.len() {
                return Err(Error::Invalid(format!(
                    "feature {} has {} values for {} fields",
                    f.id,
                    f.values.len(),
                    meta.fields.len()
                )));
            }
            // appended features get fresh ids from the table's sequence
            let fid = (mode == WriteMode::Replace || existing.is_none()).then_some(f.id);
            q = q.bind(fid).bind(gpkg_blob(&to_column_form(&f.geometry))?);
            for v in &f.values {
                q = match v {
                    Value::Null => q.bind(None::<i64>),
                    Value::Bool(b) => q.bind(*b),
                    Value::Int(i) => q.bind(*i),
                    Value::Float(x) => q.bind(*x),
                    Value::Text(s) => q.bind(s.to_string()),
                };
            }
            if let Some(d) = valid_from {
                q = q.bind(d.to_owned());
            }
        }
        q.execute(&mut *tx).await?;
    }
    stored.updated_at = now_rfc3339();
    let b = stored.bounds.unwrap_or([0.0; 4]);
    sqlx::query("INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description, last_change, min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?, ?, ?, ?, 4326)")
            .bind(&meta.name)
            .bind(&meta.title)
            .bind(&meta.description)
            .bind(b[0])
            .bind(b[1])
            .bind(b[2])
            .bind(b[3])
            .execute(&mut *tx)
            .await?;
    sqlx::query("INSERT OR REPLACE INTO gpkg_geometry_columns (table_name, column_name, geometry_type_name, srs_id, z, m) VALUES (?, 'geom', ?, 4326, 0, 0)")
            .bind(&meta.name)
            .bind(meta.geometry_kind.gpkg_name())
            .execute(&mut *tx)
            .await?;
    if let (Some(old), WriteMode::Append) = (&existing, mode) {
        // keep columns the old layer had and the new features lack
        for f in &old.fields {
            if !stored.fields.iter().any(|n| n.name == f.name) {
                stored.fields.push(f.clone());
            }
        }
    }
    save_meta(tx, &stored).await?;
    Ok(stored)
}

/// Stores a layer's metadata.
async fn save_meta(tx: &mut sqlx::SqliteConnection, stored: &LayerMeta) -> Result<()> {
    let json = serde_json::to_string(stored)
        .map_err(|e| Error::Invalid(format!("cannot encode metadata: {e}")))?;
    sqlx::query("INSERT OR REPLACE INTO citytwin_layers (name, meta) VALUES (?, ?)")
        .bind(&stored.name)
        .bind(json)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A query of observations with its parameters bound in order.
fn bind_observations<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>,
    binds: Vec<ObsBind>,
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        query = match b {
            ObsBind::Int(v) => query.bind(v),
            ObsBind::Float(v) => query.bind(v),
            ObsBind::Sensor(one) => query.bind(one),
            ObsBind::Sensors(list) => query.bind(serde_json::Value::from(list).to_string()),
        };
    }
    query
}
