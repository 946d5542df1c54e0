//! The production store: PostgreSQL with PostGIS, over sqlx.
//!
//! citytwin keeps its tables in a schema of its own (`citytwin` unless the URL says
//! `?schema=…`): the layer catalogue `citytwin_layers` (created by the migrations in
//! `city/migrations/postgres`) and one table per layer — `fid bigint` primary key,
//! `geom geometry(<type>,4326)` with a GiST index, one column per attribute. Imports go through
//! `COPY … (FORMAT binary)` inside one transaction, so a failed import leaves nothing behind.
//!
//! Tables and views citytwin did not create are served too ([`PostgisStore::publish`]): their
//! SRID is honoured (geometries are transformed to WGS84 when read, to Web Mercator when tiled)
//! and citytwin never writes to them.
//!
//! Layers too large to hold in memory are tiled in the database with `ST_AsMVT`
//! ([`Store::tile_layer`]).

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
use crate::layer::{
    ExternalTable, Feature, Field, FieldKind, GeometryKind, LayerMeta, check_layer_name,
    now_rfc3339,
};
use crate::{Error, Result};
use async_trait::async_trait;
use citytwin_tiles::{EncodedLayer, LayerStats, TileBudget, TileCoord, Value};
use futures_util::TryStreamExt;
use geo::{BoundingRect, Geometry};
use geozero::{CoordDimensions, ToWkb};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres, Row, Transaction};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The schema migrations, embedded in the binary; sqlx records them in `_sqlx_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "layers",
        include_str!("../../migrations/postgres/0001_layers.sql"),
    ),
    (
        2,
        "live",
        include_str!("../../migrations/postgres/0002_live.sql"),
    ),
    (
        3,
        "access",
        include_str!("../../migrations/postgres/0003_access.sql"),
    ),
    (
        4,
        "records",
        include_str!("../../migrations/postgres/0004_records.sql"),
    ),
    (
        5,
        "history",
        include_str!("../../migrations/postgres/0005_history.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures_util::future::BoxFuture<
        's,
        std::result::Result<Vec<Migration>, sqlx::error::BoxDynError>,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// How long a caller waits for a pooled connection before the store counts as down.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest an ordinary statement may run (imports are exempt).
pub const STATEMENT_TIMEOUT: &str = "30s";
/// Connections in the pool.
pub const POOL_SIZE: u32 = 16;

/// Options for publishing a table or view citytwin did not create.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// the layer name to serve it under
    pub layer: String,
    /// the table or view, optionally schema-qualified (`public.roads`)
    pub table: String,
    /// the geometry column (default: the only one)
    pub geometry_column: Option<String>,
    /// the integer id column (default: the single-column integer primary key)
    pub id_column: Option<String>,
    /// the SRID, for geometry columns that declare none
    pub srid: Option<i32>,
    /// catalogue title
    pub title: Option<String>,
    /// lowest zoom
    pub minzoom: Option<u8>,
    /// zoom of full detail
    pub maxzoom: Option<u8>,
    /// attributes written into tiles (default: all)
    pub tile_fields: Option<Vec<String>>,
}

/// A PostGIS database holding citytwin's layers (and serving published tables).
#[derive(Debug, Clone)]
pub struct PostgisStore {
    pool: PgPool,
    schema: String,
    label: String,
}

/// Splits citytwin's own `schema` parameter off a connection URL.
fn split_schema(url: &str) -> Result<(String, String)> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut schema = "citytwin".to_owned();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(s) => schema = s.to_owned(),
            None => rest.push(pair),
        }
    }
    if check_layer_name(&schema).is_err() {
        return Err(Error::Invalid(format!(
            "schema {schema:?} in the store URL: use lowercase letters, digits and _"
        )));
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

fn pg_change(r: &sqlx::postgres::PgRow) -> Result<Option<Change>> {
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

impl PostgisStore {
    /// Connects, creates citytwin's schema when missing and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let (url, schema) = split_schema(url)?;
        let options = PgConnectOptions::from_str(&url)?
            .application_name("citytwin")
            .options([
                ("search_path", format!("{schema},public")),
                ("statement_timeout", STATEMENT_TIMEOUT.to_owned()),
                // "table does not exist, skipping" and the like are not worth a log line
                ("client_min_messages", "warning".to_owned()),
            ])
            // bulk reads and imports are slow by nature; a slow tile query is the one to see
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let label = format!(
            "postgis:{}@{}:{}/{} schema {schema}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_mins(5))
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        // a streaming replica follows the primary's schema and takes no writes
        let replica: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&pool)
            .await?;
        if replica {
            return Ok(Self {
                pool,
                schema,
                label: format!("{label} (replica)"),
            });
        }
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&schema)))
            .execute(&pool)
            .await?;
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| Error::Invalid(format!("migrations: {e}")))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::Invalid(format!("migrating {label}: {e}")))?;
        Ok(Self {
            pool,
            schema,
            label,
        })
    }

    /// The connection pool (for tools and tests).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema citytwin's tables live in.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A transaction writing a layer: no statement timeout (imports may take longer than an
    /// ordinary statement) and the layer's lock, so one writer per layer at a time (released
    /// at commit or rollback).
    async fn layer_write(&self, layer: &str) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("citytwin layer {}.{layer}", self.schema))
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn meta_of(&self, layer: &str) -> Result<Option<LayerMeta>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT meta::text FROM citytwin_layers WHERE name = $1")
                .bind(layer)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(json,)| parse_meta(&json)).transpose()
    }

    /// Serves a table or view citytwin did not create as a layer, read-only. Its geometry
    /// column, SRID, id column and attribute columns are read from the catalogue; publishing
    /// again refreshes the metadata (count, bounds, columns).
    pub async fn publish(&self, req: &PublishRequest) -> Result<LayerMeta> {
        check_layer_name(&req.layer)?;
        let old = self.meta_of(&req.layer).await?;
        if let Some(old) = &old
            && old.external.is_none()
        {
            return Err(Error::Invalid(format!(
                "layer {} already exists and holds imported data; drop it or pick another name",
                req.layer
            )));
        }
        let found: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text, c.oid::int8 FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
        )
        .bind(&req.table)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| Error::Invalid(format!("table {:?}: {e}", req.table)))?;
        let Some((schema, name, oid)) = found else {
            return Err(Error::Invalid(format!(
                "table or view {:?} does not exist",
                req.table
            )));
        };
        let table = format!("{}.{}", quote(&schema), quote(&name));
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.attname::text, t.typname::text FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(oid)
        .fetch_all(&self.pool)
        .await?;
        let geometry_columns: Vec<&str> = columns
            .iter()
            .filter(|(_, t)| t == "geometry")
            .map(|(n, _)| n.as_str())
            .collect();
        let geometry_column = match (&req.geometry_column, geometry_columns.as_slice()) {
            (Some(g), all) if all.contains(&g.as_str()) => g.clone(),
            (Some(g), all) => {
                return Err(Error::Invalid(format!(
                    "{table} has no geometry column {g:?} (geometry columns: {})",
                    all.join(", ")
                )));
            }
            (None, [one]) => (*one).to_owned(),
            (None, []) => {
                return Err(Error::Invalid(format!("{table} has no geometry column")));
            }
            (None, many) => {
                return Err(Error::Invalid(format!(
                    "{table} has several geometry columns ({}); name one",
                    many.join(", ")
                )));
            }
        };
        let g = quote(&geometry_column);
        let declared: Option<(i32, String)> = sqlx::query_as(
            "SELECT srid, type::text FROM geometry_columns \
             WHERE f_table_schema = $1 AND f_table_name = $2 AND f_geometry_column = $3",
        )
        .bind(&schema)
        .bind(&name)
        .bind(&geometry_column)
        .fetch_optional(&self.pool)
        .await?;
        let sample: Option<(i32, String)> = sqlx::query_as(&format!(
            "SELECT ST_SRID({g}), GeometryType({g}) FROM {table} WHERE {g} IS NOT NULL LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        let data_srid = declared
            .as_ref()
            .map(|d| d.0)
            .filter(|s| *s != 0)
            .or(sample.as_ref().map(|s| s.0))
            .unwrap_or(0);
        let srid = match (req.srid, data_srid) {
            (Some(s), _) | (None, s) if s != 0 => s,
            _ => {
                return Err(Error::Invalid(format!(
                    "{table}.{geometry_column} declares no SRID; give it (for example EPSG 4490)"
                )));
            }
        };
        let known: Option<(i32,)> =
            sqlx::query_as("SELECT srid FROM spatial_ref_sys WHERE srid = $1")
                .bind(srid)
                .fetch_optional(&self.pool)
                .await?;
        if known.is_none() {
            return Err(Error::Invalid(format!(
                "SRID {srid} is not in spatial_ref_sys"
            )));
        }
        let type_name = declared
            .as_ref()
            .map(|d| d.1.clone())
            .filter(|t| t != "GEOMETRY")
            .or(sample.map(|s| s.1))
            .unwrap_or_default();
        let Some(geometry_kind) =
            GeometryKind::parse(&type_name).filter(|_| type_name != "GEOMETRY")
        else {
            return Err(Error::Invalid(format!(
                "{table}.{geometry_column} holds {type_name:?} geometries; publish a view that selects points, lines or polygons"
            )));
        };
        let id_column = match &req.id_column {
            Some(c) => c.clone(),
            None => {
                let keys: Vec<(String,)> = sqlx::query_as(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                     ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1::oid AND i.indisprimary",
                )
                .bind(oid)
                .fetch_all(&self.pool)
                .await?;
                match keys.as_slice() {
                    [(one,)] => one.clone(),
                    _ => {
                        return Err(Error::Invalid(format!(
                            "{table} has no single-column primary key; name its integer id column"
                        )));
                    }
                }
            }
        };
        match columns.iter().find(|(n, _)| n == &id_column) {
            Some((_, t)) if matches!(t.as_str(), "int2" | "int4" | "int8") => {}
            Some((_, t)) => {
                return Err(Error::Invalid(format!(
                    "id column {id_column:?} of {table} is {t}, not an integer"
                )));
            }
            None => {
                return Err(Error::Invalid(format!(
                    "{table} has no column {id_column:?}"
                )));
            }
        }
        let fields: Vec<Field> = columns
            .iter()
            .filter(|(n, _)| n != &geometry_column && n != &id_column)
            .filter_map(|(n, t)| {
                let kind = match t.as_str() {
                    "int2" | "int4" | "int8" => FieldKind::Integer,
                    "float4" | "float8" | "numeric" => FieldKind::Real,
                    "bool" => FieldKind::Boolean,
                    "text" | "varchar" | "bpchar" | "name" | "date" | "timestamp"
                    | "timestamptz" | "uuid" => FieldKind::Text,
                    other => {
                        tracing::warn!(table = %table, column = %n, r#type = other, "column type not served; skipped");
                        return None;
                    }
                };
                Some(Field {
                    name: n.clone(),
                    kind,
                })
            })
            .collect();
        let external = ExternalTable {
            table: table.clone(),
            geometry_column: geometry_column.clone(),
            id_column,
            srid,
            assign_srid: data_srid == 0,
        };
        let mut meta = LayerMeta::new(&req.layer, geometry_kind);
        meta.fields = fields;
        // publishing again keeps the layer's entry in the classified catalogue
        meta.classification = old.as_ref().and_then(|o| o.classification.clone());
        meta.territory_field = old.and_then(|o| o.territory_field);
        let (count, extent): (i64, Option<Vec<u8>>) = sqlx::query_as(&format!(
            "SELECT count(*)::int8, ST_AsBinary(ST_SetSRID(ST_Extent(ST_Transform({}, 4326))::geometry, 4326)) FROM {table}",
            source_geometry(&external)
        ))
        .fetch_one(&self.pool)
        .await?;
        meta.feature_count = count as u64;
        meta.bounds = extent
            .and_then(|wkb| read_wkb(&wkb).ok())
            .and_then(|g| g.bounding_rect())
            .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
        meta.title = req.title.clone().unwrap_or_else(|| name.clone());
        meta.source = format!("PostGIS table {schema}.{name} (EPSG:{srid})");
        if let Some(z) = req.minzoom {
            meta.minzoom = z;
        }
        if let Some(z) = req.maxzoom {
            meta.maxzoom = z;
        }
        if meta.minzoom > meta.maxzoom || meta.maxzoom > citytwin_tiles::tile::MAX_ZOOM {
            return Err(Error::Invalid(format!(
                "zoom range {}..{} is invalid",
                meta.minzoom, meta.maxzoom
            )));
        }
        if let Some(keep) = &req.tile_fields {
            if let Some(unknown) = keep.iter().find(|k| meta.field_index(k).is_none()) {
                return Err(Error::Invalid(format!(
                    "tile field {unknown:?} is not a column of {table}"
                )));
            }
            meta.tile_fields = Some(keep.clone());
        }
        meta.external = Some(external);
        meta.updated_at = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        save_meta(&mut tx, &meta).await?;
        tx.commit().await?;
        Ok(meta)
    }
}

async fn own_table_exists(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    name: &str,
) -> Result<bool> {
    let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{}.{}", quote(schema), quote(name)))
        .fetch_one(&mut **tx)
        .await?;
    Ok(exists)
}

async fn save_meta(tx: &mut Transaction<'_, Postgres>, meta: &LayerMeta) -> Result<()> {
    let json = serde_json::to_string(meta)
        .map_err(|e| Error::Invalid(format!("cannot encode metadata: {e}")))?;
    sqlx::query(
        "INSERT INTO citytwin_layers (name, meta, updated_at) VALUES ($1, $2::jsonb, now()) \
         ON CONFLICT (name) DO UPDATE SET meta = EXCLUDED.meta, updated_at = now()",
    )
    .bind(&meta.name)
    .bind(json)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn read_wkb(mut wkb: &[u8]) -> Result<Geometry<f64>> {
    <Geometry<f64> as geozero::wkb::FromWkb>::from_wkb(&mut wkb, geozero::wkb::WkbDialect::Wkb)
        .map_err(|e| Error::Invalid(format!("unreadable geometry: {e}")))
}

/// The geometry expression of a layer's rows, with its SRID set.
fn source_geometry(ext: &ExternalTable) -> String {
    if ext.assign_srid {
        format!("ST_SetSRID({}, {})", quote(&ext.geometry_column), ext.srid)
    } else {
        quote(&ext.geometry_column)
    }
}

/// Where a layer's rows are: table, id expression, geometry expression and SRID.
struct Source {
    table: String,
    id: String,
    geometry: String,
    srid: i32,
    /// ` AND …`: the rows of the version the metadata asks for (empty: every row)
    rows: String,
}

impl Source {
    fn of(schema: &str, meta: &LayerMeta) -> Self {
        match &meta.external {
            Some(ext) => Self {
                table: ext.table.clone(),
                id: quote(&ext.id_column),
                geometry: source_geometry(ext),
                srid: ext.srid,
                rows: String::new(),
            },
            None => Self {
                table: format!("{}.{}", quote(schema), quote(&meta.name)),
                id: "fid".into(),
                geometry: "geom".into(),
                srid: 4326,
                rows: crate::versions::row_filter(meta),
            },
        }
    }

    /// The geometry in WGS84.
    fn wgs84(&self) -> String {
        if self.srid == 4326 {
            self.geometry.clone()
        } else {
            format!("ST_Transform({}, 4326)", self.geometry)
        }
    }
}

/// A column read with the type its field kind says.
fn select_field(f: &Field) -> String {
    let c = quote(&f.name);
    match f.kind {
        FieldKind::Integer => format!("{c}::int8"),
        FieldKind::Real => format!("{c}::float8"),
        FieldKind::Text => format!("{c}::text"),
        FieldKind::Boolean => format!("{c}::bool"),
    }
}

fn pg_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer => "bigint",
        FieldKind::Real => "double precision",
        FieldKind::Text => "text",
        FieldKind::Boolean => "boolean",
    }
}

fn pg_geometry_type(kind: GeometryKind) -> &'static str {
    match kind {
        GeometryKind::Point => "geometry(Geometry,4326)",
        GeometryKind::LineString => "geometry(MultiLineString,4326)",
        GeometryKind::Polygon => "geometry(MultiPolygon,4326)",
    }
}

/// The body of a binary `COPY`: header, tuples, trailer (PostgreSQL's documented format).
struct CopyBinary {
    buf: Vec<u8>,
}

impl CopyBinary {
    fn new() -> Self {
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension
        Self { buf }
    }

    fn tuple(&mut self, fields: usize) {
        self.buf.extend_from_slice(&(fields as i16).to_be_bytes());
    }

    fn field(&mut self, data: &[u8]) {
        self.buf
            .extend_from_slice(&(data.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(data);
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// One value in the binary form of its column's type.
    fn value(&mut self, v: &Value, column: FieldKind) -> std::result::Result<(), String> {
        match (column, v) {
            (_, Value::Null) => self.null(),
            (FieldKind::Integer, Value::Int(i)) => self.field(&i.to_be_bytes()),
            (FieldKind::Integer, Value::Bool(b)) => self.field(&i64::from(*b).to_be_bytes()),
            (FieldKind::Real, Value::Float(x)) => self.field(&x.to_be_bytes()),
            (FieldKind::Real, Value::Int(i)) => self.field(&(*i as f64).to_be_bytes()),
            (FieldKind::Boolean, Value::Bool(b)) => self.field(&[u8::from(*b)]),
            (FieldKind::Text, Value::Text(s)) => self.field(s.as_bytes()),
            (FieldKind::Text, Value::Int(i)) => self.field(i.to_string().as_bytes()),
            (FieldKind::Text, Value::Float(x)) => self.field(x.to_string().as_bytes()),
            (FieldKind::Text, Value::Bool(b)) => self.field(b.to_string().as_bytes()),
            (kind, v) => return Err(format!("{v:?} does not fit a {kind:?} column")),
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// Strips the `Tile` framing off `ST_AsMVT`'s output, leaving the one `Layer` message.
fn layer_message(tile: &[u8]) -> Option<&[u8]> {
    let rest = tile.strip_prefix(&[0x1a])?;
    let (mut len, mut shift, mut used) = (0usize, 0u32, 0usize);
    for &b in rest.iter().take(10) {
        used += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return rest.get(used..used + len);
        }
        shift += 7;
    }
    None
}

#[async_trait]
impl Store for PostgisStore {
    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn layers(&self) -> Result<Vec<LayerMeta>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT meta::text FROM citytwin_layers ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|(json,)| parse_meta(json)).collect()
    }

    async fn read_features(&self, layer: &str) -> Result<Vec<Feature>> {
        check_layer_name(layer)?;
        let meta = self
            .meta_of(layer)
            .await?
            .ok_or_else(|| Error::UnknownLayer(layer.to_owned()))?;
        let src = Source::of(&self.schema, &meta);
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
            "SELECT min({id})::int8, max({id})::int8 FROM {t}",
            id = src.id,
            t = src.table
        ))
        .fetch_one(&self.pool)
        .await?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(Vec::new());
        };
        let cols: String = meta
            .fields
            .iter()
            .map(|f| format!(", {}", select_field(f)))
            .collect();
        let sql = format!(
            "SELECT {id}::int8, ST_AsBinary({g}){cols} FROM {t} \
             WHERE {id} BETWEEN $1 AND $2 AND {geom} IS NOT NULL{rows} ORDER BY {id}",
            rows = src.rows,
            id = src.id,
            g = src.wgs84(),
            geom = src.geometry,
            t = src.table
        );
        // large layers are read over several connections, in slices of the id range
        let slices: i64 = if meta.feature_count > 50_000 { 4 } else { 1 };
        let step = (hi - lo) / slices + 1;
        let fields: &[Field] = &meta.fields;
        let reads = (0..slices).map(|i| {
            let (a, b) = (lo + i * step, (lo + (i + 1) * step - 1).min(hi));
            let (sql, pool) = (&sql, &self.pool);
            async move {
                let mut rows = sqlx::query(sql).bind(a).bind(b).fetch(pool);
                let mut out = Vec::new();
                let mut interner = Interner::default();
                while let Some(row) = rows.try_next().await? {
                    out.push(feature_of_row(&row, fields, &mut interner)?);
                }
                Ok::<_, Error>(out)
            }
        });
        let parts = futures_util::future::try_join_all(reads).await?;
        Ok(parts.into_iter().flatten().collect())
    }

    async fn write_layer(
        &self,
        meta: &LayerMeta,
        features: &[Feature],
        mode: WriteMode,
    ) -> Result<LayerMeta> {
        check_layer_name(&meta.name)?;
        if meta.external.is_some() {
            return Err(Error::Invalid(format!(
                "layer {} is a published table; citytwin does not write to it",
                meta.name
            )));
        }
        let mut tx = self.layer_write(&meta.name).await?;
        // a versioned layer's rows hold from its latest version
        let from = meta.versions.last().map(|v| v.date.clone());
        let stored =
            write_rows(&mut tx, &self.schema, meta, features, mode, from.as_deref()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn write_version(
        &self,
        meta: &LayerMeta,
        v: &crate::versions::VersionWrite<'_>,
    ) -> Result<LayerMeta> {
        check_layer_name(&meta.name)?;
        let table = format!("{}.{}", quote(&self.schema), quote(&meta.name));
        let mut tx = self.layer_write(&meta.name).await?;
        if let Some(first) = v.first {
            sqlx::query(&format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS valid_from text, ADD COLUMN IF NOT EXISTS valid_to text"
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!("UPDATE {table} SET valid_from = $1"))
                .bind(first.iso())
                .execute(&mut *tx)
                .await?;
        }
        let closed = sqlx::query(&format!(
            "UPDATE {table} SET valid_to = $1 WHERE fid = ANY($2) AND valid_to IS NULL"
        ))
        .bind(v.day.iso())
        .bind(v.closed)
        .execute(&mut *tx)
        .await?;
        if closed.rows_affected() != v.closed.len() as u64 {
            return Err(Error::Invalid(format!(
                "layer {} changed while its new version was compared; import it again",
                meta.name
            )));
        }
        let mut stored = write_rows(
            &mut tx,
            &self.schema,
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
        let table = format!("{}.{}", quote(&self.schema), quote(layer));
        let intervals: Vec<(i64, String, Option<String>)> = sqlx::query_as(&format!(
            "SELECT fid, valid_from, valid_to FROM {table} WHERE {}",
            crate::versions::HISTORY_ROWS.replace('?', "$1")
        ))
        .bind(crate::versions::first_day(&meta))
        .fetch_all(&self.pool)
        .await?;
        let cols: String = meta
            .fields
            .iter()
            .map(|f| format!(", {}", select_field(f)))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT fid, ST_AsBinary(geom){cols} FROM {table} WHERE valid_to IS NOT NULL ORDER BY fid"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut interner = Interner::default();
        let past = rows
            .iter()
            .map(|row| feature_of_row(row, &meta.fields, &mut interner))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::versions::StoredHistory { intervals, past })
    }

    async fn drop_layer(&self, layer: &str) -> Result<()> {
        check_layer_name(layer)?;
        let mut tx = self.pool.begin().await?;
        let row: Option<(String,)> =
            sqlx::query_as("DELETE FROM citytwin_layers WHERE name = $1 RETURNING meta::text")
                .bind(layer)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((json,)) = row else {
            return Err(Error::UnknownLayer(layer.to_owned()));
        };
        if parse_meta(&json)?.external.is_none() {
            sqlx::query(&format!(
                "DROP TABLE IF EXISTS {}.{}",
                quote(&self.schema),
                quote(layer)
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn lead(&self) -> Result<Option<Box<dyn crate::cluster::Lease>>> {
        use sqlx::Connection as _;
        // a connection of its own, outside the pool: the lock lives as long as it does, and
        // PostgreSQL lets go of it the moment the holder's connection drops (kill -9 too)
        let options = (*self.pool.connect_options()).clone();
        let mut conn = sqlx::postgres::PgConnection::connect_with(&options).await?;
        // one lock per schema: clusters in other schemas of the database have their own
        let held: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1::int4, hashtext(current_schema()))")
                .bind(WRITER_LOCK)
                .fetch_one(&mut conn)
                .await?;
        if held {
            Ok(Some(Box::new(WriterLease(conn))))
        } else {
            let _ = sqlx::Connection::close(conn).await;
            Ok(None)
        }
    }

    async fn append_changes(&self, changes: &[Arc<Change>]) -> Result<()> {
        let col = |f: &dyn Fn(&Change) -> Option<String>| -> Vec<Option<String>> {
            changes.iter().map(|c| f(c)).collect()
        };
        sqlx::query(&format!(
            "INSERT INTO citytwin_changes ({CHANGE_COLUMNS}) SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[], $8::text[], $9::float8[], $10::text[])"
        ))
        .bind(changes.iter().map(|c| c.seq as i64).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.at).collect::<Vec<_>>())
        .bind(col(&|c| Some(c.layer.name().to_owned())))
        .bind(col(&|c| Some(c.kind.to_owned())))
        .bind(col(&|c| Some(c.entity.clone())))
        .bind(changes.iter().map(|c| c.lon).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.lat).collect::<Vec<_>>())
        .bind(col(&|c| c.grid.clone()))
        .bind(changes.iter().map(|c| c.value).collect::<Vec<_>>())
        .bind(col(&|c| c.body.clone()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn read_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANGE_COLUMNS} FROM citytwin_changes WHERE seq > $1 AND at >= $2 AND at <= $3 AND ($4 OR kind <> 'reading') ORDER BY seq LIMIT $5"
        ))
        .bind(q.after_seq as i64)
        .bind(q.from.unwrap_or(Millis::MIN))
        .bind(q.to.unwrap_or(Millis::MAX))
        .bind(q.readings)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(pg_change)
            .collect::<Result<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect())
    }

    async fn last_change(&self) -> Result<u64> {
        let (seq,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM citytwin_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0) as u64)
    }

    async fn live_at(&self, from: Option<Checkpoint>, until: Millis) -> Result<Vec<Change>> {
        let p = live_at_params(from, until, u64::MAX);
        let rows = sqlx::query(LIVE_AT)
            .bind(p.0)
            .bind(p.1)
            .bind(p.2)
            .bind(p.3)
            .bind(p.4)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(pg_change)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn checkpoint_before(&self, at: Millis) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT at, seq FROM citytwin_checkpoints WHERE at <= $1 ORDER BY at DESC LIMIT 1",
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
        let p = live_at_params(from, mark.at, mark.seq);
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO citytwin_checkpoint_changes (checkpoint, {CHANGE_COLUMNS}) SELECT $6, {CHANGE_COLUMNS} FROM ({LIVE_AT}) AS l"
        ))
        .bind(p.0)
        .bind(p.1)
        .bind(p.2)
        .bind(p.3)
        .bind(p.4)
        .bind(mark.at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO citytwin_checkpoints (at, seq) VALUES ($1, $2)")
            .bind(mark.at)
            .bind(mark.seq as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn drop_checkpoints(&self, at: &[Millis]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM citytwin_checkpoint_changes WHERE checkpoint = ANY($1)")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM citytwin_checkpoints WHERE at = ANY($1)")
            .bind(at)
            .execute(&mut *tx)
            .await?;
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
        sqlx::query(
            "INSERT INTO citytwin_reading_rollups AS r (entity, bucket, n, lo, hi, total, last_at, last_value) SELECT entity, (at / $3) * $3 AS b, count(*), min(value), max(value), sum(value), max(at), (array_agg(value ORDER BY at DESC, seq DESC))[1] FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND at >= $1 AND at < $2 AND seq < $4 GROUP BY entity, b ON CONFLICT (entity, bucket) DO UPDATE SET n = r.n + excluded.n, lo = least(r.lo, excluded.lo), hi = greatest(r.hi, excluded.hi), total = r.total + excluded.total, last_value = CASE WHEN excluded.last_at >= r.last_at THEN excluded.last_value ELSE r.last_value END, last_at = greatest(r.last_at, excluded.last_at)",
        )
        .bind(from)
        .bind(to)
        .bind(step)
        .bind(top)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query(
            "DELETE FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND at >= $1 AND at < $2 AND seq < $3",
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
                "SELECT b, sum(n)::int8, min(lo), max(hi), sum(total) / sum(n)::float8 FROM (SELECT (at / $4) * $4 AS b, 1::int8 AS n, value AS lo, value AS hi, value AS total FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND entity = $1 AND at >= $2 AND at < $3 UNION ALL SELECT (bucket / $4) * $4, n, lo, hi, total FROM citytwin_reading_rollups WHERE entity = $1 AND bucket >= $2 AND bucket < $3) AS u GROUP BY b ORDER BY b LIMIT $5",
            )
            .bind(sensor).bind(from).bind(to).bind(step).bind(limit as i64)
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query_as::<_, (i64, i64, f64, f64, f64, i64)>(
                "SELECT at, 1::int8, value, value, value, seq FROM citytwin_changes WHERE layer = 'sensors' AND kind = 'reading' AND entity = $1 AND at >= $2 AND at < $3 UNION ALL SELECT bucket, n, lo, hi, total / n, 0::int8 FROM citytwin_reading_rollups WHERE entity = $1 AND bucket >= $2 AND bucket < $3 ORDER BY 1, 6 LIMIT $4",
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

    fn encodes_tiles(&self) -> bool {
        true
    }

    async fn tile_layer(
        &self,
        meta: &LayerMeta,
        coord: TileCoord,
        budget: &TileBudget,
    ) -> Result<Option<EncodedLayer>> {
        use citytwin_tiles::encode::{BUFFER as TILE_BUFFER, EXTENT as TILE_EXTENT};
        if coord.z < meta.minzoom {
            return Ok(None);
        }
        let src = Source::of(&self.schema, meta);
        let cols: String = meta
            .tile_columns()
            .iter()
            .map(|(i, _)| {
                format!(
                    ", {} AS {}",
                    select_field(&meta.fields[*i]),
                    quote(&meta.fields[*i].name)
                )
            })
            .collect();
        let g = &src.geometry;
        let generalise = coord.z < meta.maxzoom;
        // below full detail, features smaller than a pixel are left out (the in-memory path
        // folds them into merged pixels); the largest features go first when over budget
        let (size, order) = match meta.geometry_kind {
            GeometryKind::Point => (None, format!("{} ", src.id)),
            GeometryKind::LineString | GeometryKind::Polygon => (
                generalise.then(|| {
                    format!(
                        "AND (ST_XMax({g}) - ST_XMin({g})) + (ST_YMax({g}) - ST_YMin({g})) \
                         >= (ST_XMax(env.area) - ST_XMin(env.area)) / 264.0"
                    )
                }),
                format!(
                    "(ST_XMax({g}) - ST_XMin({g})) + (ST_YMax({g}) - ST_YMin({g})) DESC, {}",
                    src.id
                ),
            ),
        };
        let transform = if src.srid == 3857 {
            g.clone()
        } else {
            format!("ST_Transform({g}, 3857)")
        };
        let area = if src.srid == 3857 {
            "ST_TileEnvelope($1, $2, $3, margin => $4)".to_owned()
        } else {
            // segmentised, so the envelope's sides stay covered in curved projections
            format!(
                "ST_Transform(ST_Segmentize(ST_TileEnvelope($1, $2, $3, margin => $4), $5), {})",
                src.srid
            )
        };
        let sql_with = |cols: &str| {
            format!(
                "WITH env AS (SELECT ST_TileEnvelope($1, $2, $3) AS tile, {area} AS area), \
                 rows AS ( \
                   SELECT {id}::int8 AS \"__ct_fid\", \
                     ST_AsMVTGeom({transform}, env.tile, {TILE_EXTENT}, {TILE_BUFFER}, true) AS \"__ct_geom\"{cols} \
                   FROM {t}, env WHERE {g} && env.area {size}{rows} \
                   ORDER BY {order} LIMIT $6) \
                 SELECT ST_AsMVT(rows.*, $7, {TILE_EXTENT}, '__ct_geom', '__ct_fid'), count(*)::int8 \
                 FROM rows WHERE \"__ct_geom\" IS NOT NULL",
                id = src.id,
                t = src.table,
                rows = src.rows,
                size = size.clone().unwrap_or_default(),
            )
        };
        let sql = sql_with(&cols);
        let pad = f64::from(TILE_BUFFER) / f64::from(TILE_EXTENT);
        if !generalise {
            // at full detail every feature goes in (a client overzooms this tile): the
            // attributes give way, and a tile still over the byte budget is served whole
            let mut stats = LayerStats::default();
            for (sql, dropped) in [(sql.clone(), 0), (sql_with(""), meta.tile_columns().len())] {
                let (tile, written): (Option<Vec<u8>>, i64) = sqlx::query_as(&sql)
                    .bind(i32::from(coord.z))
                    .bind(coord.x as i32)
                    .bind(coord.y as i32)
                    .bind(pad)
                    .bind(coord.span() / 8.0)
                    .bind(i64::MAX)
                    .bind(&meta.name)
                    .fetch_one(&self.pool)
                    .await?;
                let Some(layer) = tile.as_deref().and_then(layer_message) else {
                    return Ok(None);
                };
                stats.written = written as usize;
                stats.candidates = written as usize;
                stats.bytes = layer.len();
                stats.fields_dropped = dropped;
                stats.over_budget = layer.len() > budget.max_bytes;
                if !stats.over_budget || dropped > 0 {
                    return Ok(Some(EncodedLayer {
                        bytes: layer.to_vec(),
                        stats,
                    }));
                }
            }
        }
        let mut limit = budget.max_features as i64;
        let mut stats = LayerStats::default();
        for _ in 0..4 {
            let (tile, written): (Option<Vec<u8>>, i64) = sqlx::query_as(&sql)
                .bind(i32::from(coord.z))
                .bind(coord.x as i32)
                .bind(coord.y as i32)
                .bind(pad)
                .bind(coord.span() / 8.0)
                .bind(limit)
                .bind(&meta.name)
                .fetch_one(&self.pool)
                .await?;
            let Some(layer) = tile.as_deref().and_then(layer_message) else {
                return Ok(None);
            };
            stats.written = written as usize;
            stats.candidates = stats.candidates.max(written as usize);
            stats.bytes = layer.len();
            if layer.len() <= budget.max_bytes || written <= 1 {
                return Ok(Some(EncodedLayer {
                    bytes: layer.to_vec(),
                    stats,
                }));
            }
            // over the byte budget: keep the larger half and try again
            stats.dropped_budget += (written / 2) as usize;
            limit = written / 2;
        }
        Err(Error::Invalid(format!(
            "layer {} at {coord} does not fit the tile budget",
            meta.name
        )))
    }

    async fn observations(&self, q: &ObservationQuery) -> Result<Vec<ObservationRow>> {
        let (sql, binds) = observation_sql(q, false, true);
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
        let (sql, binds) = observation_sql(q, true, true);
        let query = bind_observations(sqlx::query_as::<_, (i64,)>(&sql), binds);
        Ok(query.fetch_one(&self.pool).await?.0 as u64)
    }

    async fn set_layer_meta(&self, meta: &LayerMeta) -> Result<LayerMeta> {
        let mut stored = meta.clone();
        stored.updated_at = now_rfc3339();
        let done = sqlx::query(
            "UPDATE citytwin_layers SET meta = $1::jsonb, updated_at = now() WHERE name = $2",
        )
        .bind(to_body(&stored)?)
        .bind(&meta.name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::UnknownLayer(meta.name.clone()));
        }
        Ok(stored)
    }

    async fn keys(&self) -> Result<Vec<ApiKey>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT body::text FROM citytwin_keys ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|(b,)| from_body("key", b)).collect()
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT body::text FROM citytwin_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| from_body("key", &b)).transpose()
    }

    async fn put_key(&self, key: &ApiKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO citytwin_keys (id, body) VALUES ($1, $2::jsonb) \
             ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
        )
        .bind(&key.id)
        .bind(to_body(key)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn records(&self, kind: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT body::text FROM citytwin_records WHERE kind = $1 ORDER BY at, id",
        )
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }

    async fn put_record(&self, kind: &str, id: &str, at: i64, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO citytwin_records (kind, id, at, body) VALUES ($1, $2, $3, $4::jsonb) \
             ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body",
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
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body::text FROM citytwin_revocations WHERE seq > $1 ORDER BY seq",
        )
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
        sqlx::query("INSERT INTO citytwin_revocations (body) VALUES ($1::jsonb)")
            .bind(to_body(r)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        let text = |f: &dyn Fn(&AuditEntry) -> &str| -> Vec<String> {
            entries.iter().map(|e| f(e).to_owned()).collect()
        };
        sqlx::query(&format!(
            "INSERT INTO citytwin_audit ({AUDIT_COLUMNS}) SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[])"
        ))
        .bind(entries.iter().map(|e| e.seq as i64).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(text(&|e| &e.principal))
        .bind(text(&|e| &e.action))
        .bind(text(&|e| &e.target))
        .bind(text(&|e| &e.channel))
        .bind(text(&|e| &e.decision))
        .bind(entries.iter().map(|e| e.count.map(|c| c as i64)).collect::<Vec<_>>())
        .bind(text(&|e| &e.client))
        .bind(text(&|e| &e.request_id))
        .bind(text(&|e| &e.detail))
        .bind(text(&|e| &e.hash))
        .execute(&self.pool)
        .await?;
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
            "SELECT {AUDIT_COLUMNS} FROM citytwin_audit WHERE seq > $1 AND at >= $2 AND at <= $3 \
             AND ($4::text IS NULL OR principal = $4) AND ($5::text IS NULL OR target = $5) \
             AND ($6::text IS NULL OR action = $6) AND ($7::text IS NULL OR decision = $7) ORDER BY seq LIMIT $8"
        ))
        .bind(q.after as i64)
        .bind(q.from.unwrap_or(Millis::MIN))
        .bind(q.to.unwrap_or(Millis::MAX))
        .bind(&q.principal)
        .bind(&q.target)
        .bind(&q.action)
        .bind(&q.decision)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    async fn prune_audit(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM citytwin_audit WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The advisory lock the writer of a cluster holds, with its schema's hash ("ctw" in ASCII).
const WRITER_LOCK: i32 = 0x0063_7477;

/// The writer lock, held by its own connection (which holds no other lock).
struct WriterLease(sqlx::postgres::PgConnection);

#[async_trait]
impl crate::cluster::Lease for WriterLease {
    async fn check(&mut self) -> Result<()> {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_backend_pid() AND classid = $1::int4::oid)",
        )
        .bind(WRITER_LOCK)
        .fetch_one(&mut self.0)
        .await?;
        if held {
            Ok(())
        } else {
            Err(Error::Unavailable("the writer lock was lost".into()))
        }
    }
}

/// Writes a layer's rows and metadata inside a transaction holding the layer's lock.
async fn write_rows(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    meta: &LayerMeta,
    features: &[Feature],
    mode: WriteMode,
    valid_from: Option<&str>,
) -> Result<LayerMeta> {
    let table = format!("{}.{}", quote(schema), quote(&meta.name));
    let existing: Option<LayerMeta> = {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT meta::text FROM citytwin_layers WHERE name = $1")
                .bind(&meta.name)
                .fetch_optional(&mut **tx)
                .await?;
        row.map(|(j,)| parse_meta(&j)).transpose()?
    };
    if let Some(old) = &existing
        && old.external.is_some()
    {
        return Err(Error::Invalid(format!(
            "layer {} is a published table; citytwin does not write to it",
            meta.name
        )));
    }
    if existing.is_none() && own_table_exists(tx, schema, &meta.name).await? {
        return Err(Error::Invalid(format!(
            "table {table} exists but is not a citytwin layer; pick another layer name"
        )));
    }
    let mut stored = meta.clone();
    // the column kinds the values are written as
    let mut column_kinds: Vec<FieldKind> = meta.fields.iter().map(|f| f.kind).collect();
    let mut first_id = None;
    match (&existing, mode) {
        (Some(old), WriteMode::Append) => {
            let existing_kinds = append_columns(old, meta)?;
            for (i, (f, existing)) in meta.fields.iter().zip(existing_kinds).enumerate() {
                match existing {
                    Some(kind) => {
                        if old
                            .fields
                            .iter()
                            .any(|o| o.name == f.name && o.kind != kind)
                        {
                            sqlx::query(&format!(
                                "ALTER TABLE {table} ALTER COLUMN {c} TYPE {t} USING {c}::{t}",
                                c = quote(&f.name),
                                t = pg_type(kind)
                            ))
                            .execute(&mut **tx)
                            .await?;
                        }
                        column_kinds[i] = kind;
                    }
                    None => {
                        sqlx::query(&format!(
                            "ALTER TABLE {table} ADD COLUMN {} {}",
                            quote(&f.name),
                            pg_type(f.kind)
                        ))
                        .execute(&mut **tx)
                        .await?;
                    }
                }
            }
            for f in &old.fields {
                if let Some(i) = stored.fields.iter().position(|n| n.name == f.name) {
                    stored.fields[i].kind = f.kind.widen(stored.fields[i].kind);
                } else {
                    stored.fields.push(f.clone());
                }
            }
            let (max,): (Option<i64>,) = sqlx::query_as(&format!("SELECT max(fid) FROM {table}"))
                .fetch_one(&mut **tx)
                .await?;
            first_id = Some(max.unwrap_or(0) + 1);
            stored.feature_count = old.feature_count + features.len() as u64;
            stored.bounds = union_bounds(old.bounds, bounds_of(features));
        }
        _ => {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut **tx)
                .await?;
            let cols: String = meta
                .fields
                .iter()
                .map(|f| format!(", {} {}", quote(&f.name), pg_type(f.kind)))
                .collect();
            let validity = if meta.versions.is_empty() {
                ""
            } else {
                ", valid_from text, valid_to text"
            };
            sqlx::query(&format!(
                "CREATE TABLE {table} (fid bigint NOT NULL, geom {} NOT NULL{cols}{validity})",
                pg_geometry_type(meta.geometry_kind)
            ))
            .execute(&mut **tx)
            .await?;
            stored.feature_count = features.len() as u64;
            stored.bounds = bounds_of(features);
        }
    }
    let columns = column_list(meta);
    let mut copy = (**tx)
        .copy_in_raw(&format!(
            "COPY {table} (fid, geom{columns}{validity}) FROM STDIN (FORMAT binary)",
            validity = if valid_from.is_some() {
                ", valid_from"
            } else {
                ""
            }
        ))
        .await?;
    let mut body = CopyBinary::new();
    let mut failure = None;
    for (n, f) in features.iter().enumerate() {
        if f.values.len() != meta.fields.len() {
            failure = Some(format!(
                "feature {} has {} values for {} fields",
                f.id,
                f.values.len(),
                meta.fields.len()
            ));
            break;
        }
        body.tuple(meta.fields.len() + 2 + usize::from(valid_from.is_some()));
        let id = first_id.map_or(f.id, |first| first + n as i64);
        body.field(&id.to_be_bytes());
        match to_column_form(&f.geometry).to_ewkb(CoordDimensions::xy(), Some(4326)) {
            Ok(ewkb) => body.field(&ewkb),
            Err(e) => {
                failure = Some(format!("feature {}: cannot encode geometry: {e}", f.id));
                break;
            }
        }
        if let Some(e) = f
            .values
            .iter()
            .zip(&column_kinds)
            .find_map(|(v, k)| body.value(v, *k).err())
        {
            failure = Some(format!("feature {}: {e}", f.id));
            break;
        }
        if let Some(d) = valid_from {
            body.field(d.as_bytes());
        }
        if body.buf.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut body.buf)).await?;
        }
    }
    if let Some(reason) = failure {
        copy.abort(reason.clone()).await?;
        return Err(Error::Invalid(reason));
    }
    copy.send(body.finish()).await?;
    copy.finish().await?;
    if existing.is_none() || mode == WriteMode::Replace {
        sqlx::query(&format!("ALTER TABLE {table} ADD PRIMARY KEY (fid)"))
            .execute(&mut **tx)
            .await?;
        sqlx::query(&format!("CREATE INDEX ON {table} USING gist (geom)"))
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(&format!("ANALYZE {table}"))
        .execute(&mut **tx)
        .await?;
    stored.updated_at = now_rfc3339();
    save_meta(tx, &stored).await?;
    Ok(stored)
}

/// A feature from a row of `fid, WKB, fields…`.
fn feature_of_row(
    row: &sqlx::postgres::PgRow,
    fields: &[Field],
    interner: &mut Interner,
) -> Result<Feature> {
    let id: i64 = row.try_get(0)?;
    let wkb: &[u8] = row.try_get(1)?;
    let geometry = read_wkb(wkb).map_err(|e| Error::Invalid(format!("feature {id}: {e}")))?;
    let mut values = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let c = i + 2;
        values.push(match f.kind {
            FieldKind::Integer => row
                .try_get::<Option<i64>, _>(c)?
                .map_or(Value::Null, Value::Int),
            FieldKind::Real => row
                .try_get::<Option<f64>, _>(c)?
                .map_or(Value::Null, Value::Float),
            FieldKind::Boolean => row
                .try_get::<Option<bool>, _>(c)?
                .map_or(Value::Null, Value::Bool),
            FieldKind::Text => row
                .try_get::<Option<&str>, _>(c)?
                .map_or(Value::Null, |t| interner.text(t)),
        });
    }
    Ok(Feature {
        id,
        geometry,
        values,
    })
}

/// A query of observations with its parameters bound in order.
fn bind_observations<O>(
    mut query: sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    binds: Vec<ObsBind>,
) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    for b in binds {
        query = match b {
            ObsBind::Int(v) => query.bind(v),
            ObsBind::Float(v) => query.bind(v),
            ObsBind::Sensor(one) => query.bind(one),
            ObsBind::Sensors(list) => query.bind(list),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_taken_off_the_url() {
        let (url, schema) = split_schema("postgres://u@h/db?schema=nj&sslmode=disable").unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=disable");
        assert_eq!(schema, "nj");
        let (url, schema) = split_schema("postgres://u@h/db").unwrap();
        assert_eq!(
            (url.as_str(), schema.as_str()),
            ("postgres://u@h/db", "citytwin")
        );
        assert!(split_schema("postgres://h/db?schema=Bad;drop").is_err());
    }

    #[test]
    fn tile_framing_is_stripped() {
        let layer = vec![7u8; 300];
        let mut tile = vec![0x1a, 0xac, 0x02];
        tile.extend_from_slice(&layer);
        assert_eq!(layer_message(&tile), Some(layer.as_slice()));
        assert_eq!(layer_message(&[]), None);
        assert_eq!(layer_message(&[0x1a, 0x05, 1]), None);
    }

    #[test]
    fn copy_values_take_their_column_type() {
        let mut c = CopyBinary::new();
        c.value(&Value::Int(2), FieldKind::Real).unwrap();
        assert_eq!(&c.buf[19..], &[0, 0, 0, 8, 64, 0, 0, 0, 0, 0, 0, 0]);
        assert!(c.value(&Value::from("x"), FieldKind::Integer).is_err());
    }
}
