//! Tile archives for a CDN: `citytwin export --format pmtiles|mbtiles`.
//!
//! The tiles are the server's own (the same `City::tile`, budgets and read plans) for the
//! layers the exporting principal may read — the public unless `--key` names another — with
//! the provenance of the data in the archive's metadata. Tiles are spooled into
//! `OUT.part` (an MBTiles file) with a checkpoint every few hundred tiles, so an export that
//! stops resumes where it stopped; the archive is written beside it and renamed onto `OUT`
//! only when whole.

use crate::cli::StoreArgs;
use citytwin_city::access::{Context, Principal, ReadPlan};
use citytwin_city::import::Progress as _;
use citytwin_city::twin::City;
use citytwin_city::{CityOptions, TileRequest};
use citytwin_tiles::{TileBudget, TileCoord};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tiles written between checkpoints.
const CHECKPOINT: usize = 256;

/// The archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// PMTiles v3: one file, read by range requests straight from a CDN or object store
    Pmtiles,
    /// MBTiles 1.3: an SQLite file (GDAL, QGIS, tile servers)
    Mbtiles,
}

/// `citytwin export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// pmtiles or mbtiles
    #[arg(long, value_enum)]
    pub format: Format,
    /// layers, comma-separated, in drawing order
    #[arg(long)]
    pub layers: String,
    /// west,south,east,north in WGS84 (default: the layers' bounds)
    #[arg(long)]
    pub bbox: Option<String>,
    /// zoom range, e.g. 10-16 (or one zoom)
    #[arg(long, default_value = "0-14")]
    pub zooms: String,
    /// the archive to write
    #[arg(long)]
    pub out: PathBuf,
    /// export as the principal of this API key (default: the public)
    #[arg(long, env = "CITYTWIN_EXPORT_KEY")]
    pub key: Option<String>,
    /// largest tile layer in bytes, as `serve --tile-max-bytes`
    #[arg(long)]
    pub tile_max_bytes: Option<usize>,
    /// most features in one tile, as `serve --tile-max-features`
    #[arg(long)]
    pub tile_max_features: Option<usize>,
    /// tiles made at once
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// the store and audit key
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What an export did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// the archive
    pub out: String,
    /// tiles looked at
    pub tiles: u64,
    /// tiles written (the rest were empty)
    pub written: u64,
    /// tiles taken over from a stopped export
    pub resumed: u64,
    /// size of the archive
    pub bytes: u64,
    /// seconds the export took
    pub seconds: f64,
}

fn parse_zooms(s: &str) -> Result<(u8, u8), String> {
    let bad = || format!("--zooms {s:?}: give one zoom or a range like 10-16, within 0-22");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u8 = a.trim().parse().map_err(|_| bad())?;
    let b: u8 = b.trim().parse().map_err(|_| bad())?;
    if a > b || b > 22 {
        return Err(bad());
    }
    Ok((a, b))
}

fn parse_bbox(s: &str) -> Result<[f64; 4], String> {
    let bad = || format!("--bbox {s:?}: give west,south,east,north in degrees");
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [w, so, e, n] = v[..] else {
        return Err(bad());
    };
    let ok = v.iter().all(|x| x.is_finite())
        && (-180.0..=180.0).contains(&w)
        && (-180.0..=180.0).contains(&e)
        && (-85.06..=85.06).contains(&so)
        && (-85.06..=85.06).contains(&n)
        && w < e
        && so < n;
    if ok { Ok([w, so, e, n]) } else { Err(bad()) }
}

/// Every tile of the export, in the order it is made (zoom by zoom, row by row).
fn tiles(bbox: [f64; 4], zooms: (u8, u8)) -> Vec<TileCoord> {
    use citytwin_tiles::proj::lonlat_to_mercator;
    let (x0, y0) = lonlat_to_mercator(bbox[0], bbox[1]);
    let (x1, y1) = lonlat_to_mercator(bbox[2], bbox[3]);
    let rect = geo::Rect::new(geo::coord! { x: x0, y: y0 }, geo::coord! { x: x1, y: y1 });
    (zooms.0..=zooms.1)
        .flat_map(|z| TileCoord::covering(rect, z))
        .collect()
}

async fn spool(path: &Path) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value TEXT)",
        "CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
        "CREATE UNIQUE INDEX IF NOT EXISTS tile_index ON tiles (zoom_level, tile_column, tile_row)",
    ] {
        sqlx::query(ddl)
            .execute(&pool)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(pool)
}

async fn meta_value(pool: &SqlitePool, name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT value FROM metadata WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Runs an export.
pub async fn run(a: ExportArgs) -> Result<Summary, String> {
    let started = std::time::Instant::now();
    let zooms = parse_zooms(&a.zooms)?;
    let bbox = a.bbox.as_deref().map(parse_bbox).transpose()?;
    if a.jobs == 0 || a.jobs > 64 {
        return Err("--jobs: 1 to 64".into());
    }
    let store = crate::cli::open(&a.store.store).await?;
    let key = crate::cli::audit_key(&a.store, true)?;
    let city = City::open_with(
        store,
        CityOptions {
            audit: Some((key, 180)),
            ..CityOptions::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let principal = match &a.key {
        Some(token) => city
            .credentials()
            .principal_of_key(token)
            .await
            .map_err(|r| format!("--key: {r}"))?,
        None => Principal::public(),
    };
    let cx = Context::of(principal, "export");
    let names: Vec<String> = a
        .layers
        .split(',')
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        return Err("--layers: name at least one layer".into());
    }
    let mut resolved = Vec::new();
    for name in &names {
        let (view, plan) = city.read_plan(&cx, name).map_err(|_| {
            format!(
                "layer {name:?} does not exist, or {} may not export it",
                cx.principal.id
            )
        })?;
        resolved.push((view, plan));
    }
    let plans: Vec<ReadPlan> = resolved.iter().map(|(_, p)| p.clone()).collect();
    let bounds = bbox
        .or_else(|| {
            resolved
                .iter()
                .filter_map(|(l, _)| l.meta.bounds)
                .reduce(|a, b| {
                    [
                        a[0].min(b[0]),
                        a[1].min(b[1]),
                        a[2].max(b[2]),
                        a[3].max(b[3]),
                    ]
                })
        })
        .ok_or("the layers have no bounds: give --bbox")?;
    let defaults = TileBudget::default();
    let budget = TileBudget {
        max_bytes: a.tile_max_bytes.unwrap_or(defaults.max_bytes),
        max_features: a.tile_max_features.unwrap_or(defaults.max_features),
    };
    let coords = tiles(bounds, zooms);
    // what the spool was made for: a stopped export resumes only into the same export
    let versions: Vec<String> = resolved
        .iter()
        .map(|(l, p)| format!("{}@{}:{}", l.meta.name, l.meta.updated_at, p.key()))
        .collect();
    let params = json!({
        "layers": versions,
        "bbox": bounds,
        "zooms": [zooms.0, zooms.1],
        "budget": [budget.max_bytes, budget.max_features],
        "principal": cx.principal.id,
    })
    .to_string();
    let part = with_suffix(&a.out, ".part");
    let mut pool = spool(&part).await?;
    let mut done: usize = 0;
    match meta_value(&pool, "citytwin.export").await {
        Some(p) if p == params => {
            done = meta_value(&pool, "citytwin.export.done")
                .await
                .and_then(|d| d.parse().ok())
                .unwrap_or(0)
                .min(coords.len());
        }
        Some(_) => {
            // another export's leftovers: start again
            pool.close().await;
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(with_suffix(&part, "-wal"));
            let _ = std::fs::remove_file(with_suffix(&part, "-shm"));
            pool = spool(&part).await?;
        }
        None => {}
    }
    sqlx::query("INSERT OR REPLACE INTO metadata (name, value) VALUES ('citytwin.export', ?)")
        .bind(&params)
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let resumed = done as u64;
    if done > 0 {
        tracing::info!(done, total = coords.len(), "resuming a stopped export");
    }
    let bar = crate::progress::Bar::new();
    bar.phase("tiles", Some(coords.len() as u64));
    bar.advance(done as u64);
    let city = Arc::new(city);
    let names = Arc::new(names);
    let plans = Arc::new(plans);
    let mut made = futures_util::stream::iter(coords[done..].iter().copied())
        .map(|coord| {
            let (city, names, plans) = (Arc::clone(&city), Arc::clone(&names), Arc::clone(&plans));
            async move {
                let out = city
                    .tile(&TileRequest {
                        layers: &names,
                        coord,
                        budget,
                        plans: &plans,
                        at: None,
                    })
                    .await;
                (
                    coord,
                    out.map(|o| (!o.bytes.is_empty()).then(|| gzip(&o.bytes))),
                )
            }
        })
        .buffered(a.jobs);
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    let mut in_tx = 0;
    while let Some((coord, tile)) = made.next().await {
        let tile = tile.map_err(|e| format!("tile {coord}: {e}"))?;
        if let Some(data) = tile {
            sqlx::query("INSERT OR REPLACE INTO tiles (zoom_level, tile_column, tile_row, tile_data) VALUES (?, ?, ?, ?)")
                .bind(i64::from(coord.z))
                .bind(i64::from(coord.x))
                .bind((1_i64 << coord.z) - 1 - i64::from(coord.y))
                .bind(data)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        done += 1;
        in_tx += 1;
        bar.advance(1);
        if in_tx >= CHECKPOINT {
            checkpoint(&mut tx, done).await?;
            tx.commit().await.map_err(|e| e.to_string())?;
            tx = conn.begin().await.map_err(|e| e.to_string())?;
            in_tx = 0;
        }
    }
    checkpoint(&mut tx, done).await?;
    tx.commit().await.map_err(|e| e.to_string())?;
    drop(conn);
    bar.finish();
    city.audit_durable(cx.record(
        "export",
        &a.layers,
        true,
        Some(done as u64),
        &format!("{:?} z{}-{}", a.format, zooms.0, zooms.1),
    ))
    .await;
    // the metadata readers look for
    let drawn: Vec<(&citytwin_city::LayerMeta, citytwin_city::access::Form)> =
        resolved.iter().map(|(l, _)| (&l.meta, l.form)).collect();
    let attribution = citytwin_city::catalog::provenance(&drawn);
    let vector_layers: Vec<Value> = resolved
        .iter()
        .map(|(l, _)| crate::routes::tiles::vector_layer(l))
        .collect();
    let provenance: Vec<Value> = resolved
        .iter()
        .map(|(l, _)| crate::routes::catalog::provenance(&l.meta))
        .collect();
    let title = resolved
        .iter()
        .map(|(l, _)| l.meta.title.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let center = [
        f64::midpoint(bounds[0], bounds[2]),
        f64::midpoint(bounds[1], bounds[3]),
    ];
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM tiles")
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())?;
    let out_tmp = with_suffix(&a.out, ".tmp");
    match a.format {
        Format::Mbtiles => {
            let rows = [
                ("name", a.layers.clone()),
                ("description", title.clone()),
                ("format", "pbf".into()),
                ("type", "overlay".into()),
                ("version", "1".into()),
                ("minzoom", zooms.0.to_string()),
                ("maxzoom", zooms.1.to_string()),
                (
                    "bounds",
                    bounds
                        .iter()
                        .map(f64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                ("center", format!("{},{},{}", center[0], center[1], zooms.0)),
                ("attribution", attribution.clone()),
                (
                    "json",
                    json!({"vector_layers": vector_layers, "provenance": provenance}).to_string(),
                ),
            ];
            for (name, value) in rows {
                sqlx::query("INSERT OR REPLACE INTO metadata (name, value) VALUES (?, ?)")
                    .bind(name)
                    .bind(value)
                    .execute(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            sqlx::query("DELETE FROM metadata WHERE name LIKE 'citytwin.export%'")
                .execute(&pool)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("PRAGMA journal_mode = DELETE")
                .execute(&pool)
                .await
                .map_err(|e| e.to_string())?;
            pool.close().await;
            std::fs::rename(&part, &a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
        }
        Format::Pmtiles => {
            let metadata = json!({
                "name": a.layers,
                "description": title,
                "attribution": attribution,
                "vector_layers": vector_layers,
                "provenance": provenance,
            })
            .to_string();
            let file = std::fs::File::create(&out_tmp)
                .map_err(|e| format!("{}: {e}", out_tmp.display()))?;
            let mut writer = pmtiles::PmTilesWriter::new(pmtiles::TileType::Mvt)
                .precompressed(pmtiles::Compression::Gzip)
                .internal_compression(pmtiles::Compression::Gzip)
                .min_zoom(zooms.0)
                .max_zoom(zooms.1)
                .bounds(bounds[0], bounds[1], bounds[2], bounds[3])
                .center(center[0], center[1])
                .center_zoom(zooms.0)
                .metadata(metadata)
                .create(std::io::BufWriter::new(file))
                .map_err(|e| format!("{}: {e}", out_tmp.display()))?;
            // in the archive's order (Hilbert tile ids), each read from the spool
            let mut keys: Vec<(u64, u8, u32, u32)> = Vec::with_capacity(written as usize);
            let mut rows =
                sqlx::query("SELECT zoom_level, tile_column, tile_row FROM tiles").fetch(&pool);
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| e.to_string())?;
                let (z, x, r): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
                let (z, x, y) = (z as u8, x as u32, ((1_i64 << z) - 1 - r) as u32);
                let coord = pmtiles::TileCoord::new(z, x, y).map_err(|e| e.to_string())?;
                keys.push((pmtiles::TileId::from(coord).value(), z, x, y));
            }
            drop(rows);
            keys.sort_unstable();
            for (_, z, x, y) in keys {
                let data: Vec<u8> = sqlx::query_scalar(
                    "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                )
                .bind(i64::from(z))
                .bind(i64::from(x))
                .bind((1_i64 << z) - 1 - i64::from(y))
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
                let coord = pmtiles::TileCoord::new(z, x, y).map_err(|e| e.to_string())?;
                writer.add_tile(coord, &data).map_err(|e| e.to_string())?;
            }
            writer.finalize().map_err(|e| e.to_string())?;
            pool.close().await;
            std::fs::rename(&out_tmp, &a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
            for f in [
                part.clone(),
                with_suffix(&part, "-wal"),
                with_suffix(&part, "-shm"),
            ] {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    let bytes = std::fs::metadata(&a.out).map_or(0, |m| m.len());
    Ok(Summary {
        out: a.out.display().to_string(),
        tiles: coords.len() as u64,
        written: written as u64,
        resumed,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn checkpoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    done: usize,
) -> Result<(), String> {
    sqlx::query("INSERT OR REPLACE INTO metadata (name, value) VALUES ('citytwin.export.done', ?)")
        .bind(done.to_string())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zooms_and_boxes_are_checked() {
        assert_eq!(parse_zooms("10-16"), Ok((10, 16)));
        assert_eq!(parse_zooms("12"), Ok((12, 12)));
        for bad in ["16-10", "0-23", "a", "1-2-3", ""] {
            assert!(parse_zooms(bad).is_err(), "{bad}");
        }
        assert!(parse_bbox("118.7,31.9,118.9,32.1").is_ok());
        for bad in ["1,2,3", "118.9,31.9,118.7,32.1", "0,0,0,NaN", "0,-89,1,1"] {
            assert!(parse_bbox(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tiles_run_zoom_by_zoom_over_the_box() {
        let t = tiles([118.0, 31.0, 119.0, 32.0], (10, 12));
        assert!(t.first().is_some_and(|c| c.z == 10));
        assert!(t.windows(2).all(|w| w[0].z <= w[1].z));
        let n = |z: u8| t.iter().filter(|c| c.z == z).count();
        assert!(
            n(10) >= 6 && n(11) > n(10) && n(12) > n(11),
            "{} {} {}",
            n(10),
            n(11),
            n(12)
        );
        // every tile touches the box
        for c in &t {
            let b = c.bounds();
            let (w, s) = citytwin_tiles::proj::mercator_to_lonlat(b.min().x, b.min().y);
            let (e, nn) = citytwin_tiles::proj::mercator_to_lonlat(b.max().x, b.max().y);
            assert!(w <= 119.0 && e >= 118.0 && s <= 32.0 && nn >= 31.0, "{c}");
        }
    }
}

/// `citytwin seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// a running instance (give each instance of a cluster: each has its own cache)
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// layers, comma-separated, as in the tile URLs
    #[arg(long)]
    pub layers: String,
    /// west,south,east,north in WGS84
    #[arg(long)]
    pub bbox: String,
    /// zoom range, e.g. 10-16
    #[arg(long, default_value = "0-14")]
    pub zooms: String,
    /// the API key to ask with (tiles are cached per read plan)
    #[arg(long, env = "CITYTWIN_KEY")]
    pub key: Option<String>,
    /// requests in flight per instance
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
}

/// What seeding did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Seeded {
    /// tiles asked for (per instance)
    pub tiles: u64,
    /// answered with a tile
    pub ok: u64,
    /// answered empty (204)
    pub empty: u64,
    /// refused or failed, with the first reason
    pub failed: u64,
    /// the first failure
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    /// seconds it took
    pub seconds: f64,
}

/// Asks every instance for every tile of the range once, so their caches hold them.
pub async fn seed(a: SeedArgs) -> Result<Seeded, String> {
    let started = std::time::Instant::now();
    let zooms = parse_zooms(&a.zooms)?;
    let bbox = parse_bbox(&a.bbox)?;
    if a.jobs == 0 || a.jobs > 256 {
        return Err("--jobs: 1 to 256".into());
    }
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = &a.key {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {k}")
                .parse()
                .map_err(|_| "--key: not a valid header value")?,
        );
    }
    headers.insert(
        reqwest::header::ACCEPT_ENCODING,
        reqwest::header::HeaderValue::from_static("gzip"),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_mins(1))
        .build()
        .map_err(|e| e.to_string())?;
    let coords = tiles(bbox, zooms);
    let mut out = Seeded {
        tiles: coords.len() as u64,
        ..Seeded::default()
    };
    let requests = a.urls.iter().flat_map(|base| {
        let base = base.trim_end_matches('/').to_owned();
        let layers = a.layers.clone();
        coords
            .iter()
            .map(move |c| format!("{base}/tiles/{layers}/{}/{}/{}.mvt", c.z, c.x, c.y))
    });
    let mut answers = futures_util::stream::iter(requests)
        .map(|url| {
            let client = client.clone();
            async move {
                match client.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let _ = r.bytes().await;
                        (url, Ok(status))
                    }
                    Err(e) => (url, Err(e.to_string())),
                }
            }
        })
        .buffer_unordered(a.jobs * a.urls.len());
    while let Some((url, answer)) = answers.next().await {
        match answer {
            Ok(s) if s == reqwest::StatusCode::NO_CONTENT => out.empty += 1,
            Ok(s) if s.is_success() => out.ok += 1,
            Ok(s) => {
                out.failed += 1;
                out.first_failure.get_or_insert(format!("{url}: {s}"));
            }
            Err(e) => {
                out.failed += 1;
                out.first_failure.get_or_insert(format!("{url}: {e}"));
            }
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
