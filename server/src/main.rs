//! The `citytwin` command: serve, import, fixtures, layers, publish, drop.

use citytwin::app::{AppState, spawn_watchers};
use citytwin::config::{ServeArgs, Settings, repo_dir};
use citytwin::progress::Bar;
use citytwin_city::generate::{Reference, Scale, generate, write_fixtures};
use citytwin_city::import::{ImportRequest, import};
use citytwin_city::store::StoreSpec;
use citytwin_city::store::cluster::ClusterStore;
use citytwin_city::store::postgis::{PostgisStore, PublishRequest};
use citytwin_city::{City, CityOptions, Store, WriteMode};
use citytwin_tiles::Crs;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "citytwin",
    version,
    about = "A live digital twin of a city: vector tiles, APIs and dashboards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve tiles, styles, the catalogue and the viewer over HTTP.
    Serve(ServeArgs),
    /// Import a GeoJSON, GeoPackage, FlatGeobuf, Shapefile or CSV file into a layer.
    Import(ImportArgs),
    /// Generate the Nanjing fixture data set (deterministic for a seed).
    Fixtures(FixturesArgs),
    /// List the layers of a store.
    Layers {
        /// the store: a GeoPackage path or a PostGIS URL
        #[arg(long, env = "CITYTWIN_STORE", default_value = "data/citytwin.gpkg")]
        store: String,
    },
    /// Serve an existing PostGIS table or view (one citytwin did not create) as a layer.
    Publish(PublishArgs),
    /// Drive realistic live traffic (reports, readings, units) through a running server.
    Simulate(citytwin::simulate::SimulateArgs),
    /// The classified catalogue: show a layer's entry, or set its owner, classes and level.
    #[command(subcommand)]
    Catalog(citytwin::cli::CatalogCommand),
    /// API keys for machines: create (the key is shown once), list, revoke.
    #[command(subcommand)]
    Keys(citytwin::cli::KeysCommand),
    /// Cut off (or restore) a user of the identity provider at once.
    #[command(subcommand)]
    Users(citytwin::cli::UsersCommand),
    /// The audit log: verify its hash chain, or show entries.
    #[command(subcommand)]
    Audit(citytwin::cli::AuditCommand),
    /// Requests for layers shared or opened on conditions: list, request, approve, refuse,
    /// revoke.
    #[command(subcommand)]
    Grants(citytwin::cli_governance::GrantsCommand),
    /// Objections to data: list (overdue first), decide.
    #[command(subcommand)]
    Objections(citytwin::cli_governance::ObjectionsCommand),
    /// Write a PMTiles or MBTiles archive of the server's tiles (for a CDN), resumable.
    Export(citytwin::export::ExportArgs),
    /// Warm the tile caches of running instances for a box and zoom range.
    Seed(citytwin::export::SeedArgs),
    /// Remove a layer (a published table is only unpublished, never dropped).
    Drop {
        /// the layer
        #[arg(long)]
        layer: String,
        /// the store: a GeoPackage path or a PostGIS URL
        #[arg(long, env = "CITYTWIN_STORE", default_value = "data/citytwin.gpkg")]
        store: String,
    },
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// the table or view, optionally schema-qualified (public.roads)
    table: String,
    /// the layer name to serve it under (lowercase letters, digits, _)
    #[arg(long)]
    layer: String,
    /// the PostGIS store: postgres://user@host/db[?schema=name]
    #[arg(long, env = "CITYTWIN_STORE")]
    store: String,
    /// the geometry column (default: the only one)
    #[arg(long)]
    geometry_column: Option<String>,
    /// the integer id column (default: the primary key)
    #[arg(long)]
    id_column: Option<String>,
    /// the SRID, for a geometry column that declares none
    #[arg(long)]
    srid: Option<i32>,
    /// title for the catalogue
    #[arg(long)]
    title: Option<String>,
    /// lowest zoom of the layer's tiles
    #[arg(long)]
    minzoom: Option<u8>,
    /// zoom of full detail
    #[arg(long)]
    maxzoom: Option<u8>,
    /// the attributes written into tiles, comma-separated (default: all)
    #[arg(long, value_delimiter = ',')]
    tile_fields: Option<Vec<String>>,
    /// the classified catalogue entry (all of --owner, --share, --open, --level, or none)
    #[command(flatten)]
    class: citytwin::cli::ClassArgs,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// the file to import: GeoJSON, GeoPackage, FlatGeobuf, Shapefile or CSV, or anything
    /// GDAL reads (OSM PBF, File Geodatabase, KML, GML, DXF, MapInfo, …) when GDAL is installed
    file: PathBuf,
    /// the target layer (lowercase letters, digits, _)
    #[arg(long)]
    layer: String,
    /// the file's CRS: EPSG:4326, EPSG:4490, GCJ-02, EPSG:3857, or any other GDAL knows, such as
    /// CGCS2000's EPSG:4549 (default: what the file says, else EPSG:4326)
    #[arg(long)]
    crs: Option<String>,
    /// add to the layer instead of replacing it
    #[arg(long)]
    append: bool,
    /// a feature with an invalid or missing geometry: fail (stop, nothing written), skip (leave
    /// it out) or repair (make it valid as PostGIS's ST_MakeValid does)
    #[arg(long, default_value = "fail")]
    invalid: String,
    /// where to list the repaired and skipped features (CSV; default: <layer>.import-report.csv)
    #[arg(long)]
    report: Option<PathBuf>,
    /// make a base-map layer from an OpenStreetMap file (.osm.pbf, through GDAL): buildings,
    /// roads, water or pois, its tags mapped to the demo layers' fields
    #[arg(long)]
    osm: Option<String>,
    /// the store: a GeoPackage path or a PostGIS URL
    #[arg(long, env = "CITYTWIN_STORE", default_value = "data/citytwin.gpkg")]
    store: String,
    /// the table to read from a GeoPackage that holds several
    #[arg(long)]
    source_layer: Option<String>,
    /// title for the catalogue
    #[arg(long)]
    title: Option<String>,
    /// lowest zoom of the layer's tiles
    #[arg(long)]
    minzoom: Option<u8>,
    /// zoom of full detail
    #[arg(long)]
    maxzoom: Option<u8>,
    /// where the data came from
    #[arg(long)]
    source: Option<String>,
    /// when the source data was acquired (YYYY-MM-DD)
    #[arg(long)]
    acquired: Option<String>,
    /// the attributes written into tiles, comma-separated (default: all)
    #[arg(long, value_delimiter = ',')]
    tile_fields: Option<Vec<String>>,
    /// the field holding each feature's time: RFC 3339 text or an integer year (for `datetime`
    /// queries and temporal filters)
    #[arg(long)]
    time_field: Option<String>,
    /// add the file as a version of the layer holding from this day (YYYY-MM-DD) instead of
    /// replacing it: unchanged features are kept once, the past stays readable with ?at=. A
    /// layer with versions always takes a new one (from --acquired, else today)
    #[arg(long)]
    as_of: Option<String>,
    /// the field that names each feature the same in every version (default: the layer's,
    /// else id)
    #[arg(long)]
    version_key: Option<String>,
    /// the classified catalogue entry (all of --owner, --share, --open, --level, or none)
    #[command(flatten)]
    class: citytwin::cli::ClassArgs,
}

#[derive(Debug, clap::Args)]
struct FixturesArgs {
    /// small (the committed demo set) or city (≥ 1M buildings, for benches)
    #[arg(long, default_value = "small")]
    scale: String,
    /// random seed
    #[arg(long, default_value_t = 20_250_101)]
    seed: u64,
    /// output folder (GeoJSON files and manifest.json)
    #[arg(long)]
    out: Option<PathBuf>,
    /// folder with the real reference data
    #[arg(long)]
    reference: Option<PathBuf>,
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // a log reader that goes away must not take the server with it: tracing-subscriber would
    // report the failed write with eprintln!, which panics on a closed stderr
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens the store a `--store` value names; a GeoPackage must exist unless `create`.
async fn open_store(spec: &str, create: bool) -> Result<Arc<dyn Store>, String> {
    let spec = StoreSpec::parse(spec);
    if let StoreSpec::GeoPackage(path) = &spec
        && !create
        && !path.exists()
    {
        return Err(format!("store {} does not exist", path.display()));
    }
    let store = spec.open().await.map_err(|e| e.to_string())?;
    citytwin::cluster::announcing(store).await
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut settings = Settings::resolve(&args)?;
    if args.print_config {
        #[allow(clippy::print_stdout)]
        {
            print!("{}", settings.to_toml());
        }
        return Ok(());
    }
    init_logging(&settings.log_format);
    let started = std::time::Instant::now();
    let spec = StoreSpec::parse(&settings.store);
    if let StoreSpec::GeoPackage(path) = &spec {
        if settings.demo {
            let created =
                citytwin::demo::ensure_demo_store(path, &settings.fixtures, Arc::new(Bar::new()))
                    .await?;
            if created {
                tracing::info!(store = %path.display(), "created the demo store from fixtures");
            }
        } else if !path.exists() {
            return Err(format!(
                "store {} does not exist: import data into it first, or run with --demo",
                path.display()
            ));
        }
    }
    let mut store = spec.open().await.map_err(|e| e.to_string())?;
    let replica = match settings.store_read.as_deref().map(StoreSpec::parse) {
        Some(read @ StoreSpec::Postgres(_)) => Some(
            read.open()
                .await
                .map_err(|e| format!("the read replica: {e}"))?,
        ),
        Some(StoreSpec::GeoPackage(_)) => {
            return Err("--store-read takes a PostGIS replica's URL".into());
        }
        None => None,
    };
    let nats = match &settings.nats {
        Some(url) => {
            if !matches!(spec, StoreSpec::Postgres(_)) {
                return Err(
                    "--nats runs several instances on one store: give --store a PostGIS URL".into(),
                );
            }
            Some(citytwin::cluster::connect(url).await?)
        }
        None => None,
    };
    if replica.is_some() || nats.is_some() {
        let notices = nats.clone().map(|c| {
            Arc::new(citytwin::cluster::Notices(c))
                as Arc<dyn citytwin_city::store::cluster::Announce>
        });
        store = Arc::new(ClusterStore::new(store, replica, notices));
    }
    if settings.demo && matches!(spec, StoreSpec::Postgres(_)) {
        let n = citytwin::demo::ensure_demo_layers(
            store.as_ref(),
            &settings.fixtures,
            Arc::new(Bar::new()),
        )
        .await?;
        if n > 0 {
            tracing::info!(store = %store.describe(), layers = n, "imported the demo layers");
        }
    }
    if settings.demo {
        let catalog = citytwin::demo::demo_catalog(&repo_dir("demo/catalog.toml"))?;
        let n = citytwin::demo::classify_demo_layers(store.as_ref(), &catalog).await?;
        if n > 0 {
            tracing::info!(layers = n, "classified the demo layers");
        }
        for live in citytwin_city::live::LiveLayer::ALL {
            if let Some(c) = catalog.get(live.name()) {
                settings
                    .catalog
                    .entry(live.name().to_owned())
                    .or_insert_with(|| c.clone());
            }
        }
    }
    let audit_key = citytwin_city::audit::AuditKey::load(&settings.audit_key, true)
        .map_err(|e| format!("audit key: {e}"))?;
    let calendar = settings
        .calendar
        .as_deref()
        .map(citytwin_city::calendar::Calendar::load)
        .transpose()
        .map_err(|e| format!("calendar: {e}"))?;
    let options = CityOptions {
        store_tiled: settings.store_tiled.iter().cloned().collect(),
        live: settings.live_options(),
        audit: Some((audit_key, settings.audit_retention_days)),
        calendar,
    };
    let city = Arc::new(
        City::open_with(Arc::clone(&store), options)
            .await
            .map_err(|e| e.to_string())?,
    );
    if let Some(client) = nats {
        citytwin::cluster::join(Arc::clone(&city), store, client).await?;
    }
    let state = AppState::new(Arc::clone(&city), settings.clone());
    spawn_watchers(&state);
    if let Some(addr) = &settings.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
        let s = state.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let s = s.clone();
                async move { citytwin::routes::ops::metrics_text(&s) }
            }),
        );
        tracing::info!(%addr, "metrics served without credentials");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    if let Some(url) = &settings.mqtt {
        citytwin::mqtt::spawn(state.clone(), url)?;
    }
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        %addr,
        layers = city.layers().len(),
        features = city.layers().iter().map(|l| l.feature_count()).sum::<u64>(),
        startup_ms = started.elapsed().as_millis() as u64,
        "citytwin is serving; open http://{addr}/"
    );
    if settings.simulate {
        let args = citytwin::simulate::SimulateArgs {
            url: format!("http://{addr}"),
            mqtt: settings.mqtt.clone(),
            sensors: 120,
            units: 24,
            rate: 60.0,
            reports_per_min: 6.0,
            duration: None,
            seed: 2026,
            key: Some(citytwin::demo::simulator_key(&city).await?),
        };
        tokio::spawn(async move {
            if let Err(e) = citytwin::simulate::run(args).await {
                tracing::warn!(error = %e, "the simulator stopped");
            }
        });
    }
    citytwin::app::serve(listener, state)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn run_import(a: ImportArgs) -> Result<(), String> {
    init_logging("human");
    let store = open_store(&a.store, true).await?;
    let mut req = ImportRequest::new(a.file, &a.layer);
    // a CRS citytwin's readers do not know goes to GDAL with the file
    match a.crs.as_deref().map(|c| (c, Crs::parse(c))) {
        Some((_, Ok(crs))) => req.crs = Some(crs),
        Some((text, Err(_))) => req.source_crs = Some(text.to_owned()),
        None => {}
    }
    req.mode = if a.append {
        WriteMode::Append
    } else {
        WriteMode::Replace
    };
    req.source_layer = a.source_layer;
    req.title = a.title;
    req.minzoom = a.minzoom;
    req.maxzoom = a.maxzoom;
    req.source = a.source;
    req.acquired = a.acquired;
    req.tile_fields = a.tile_fields;
    req.time_field = a.time_field;
    req.as_of = a
        .as_of
        .map(|d| {
            citytwin_city::versions::Day::parse(&d)
                .map(citytwin_city::versions::Day::iso)
                .map_err(|e| format!("--as-of: {e}"))
        })
        .transpose()?;
    req.version_key = a.version_key;
    req.classification = a.class.classification()?;
    req.invalid = citytwin_city::import::Invalid::parse(&a.invalid).map_err(|e| e.to_string())?;
    req.osm = a
        .osm
        .as_deref()
        .map(citytwin_city::import::gdal::Osm::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let report = a
        .report
        .unwrap_or_else(|| PathBuf::from(format!("{}.import-report.csv", a.layer)));
    let started = std::time::Instant::now();
    let imported = import(store.as_ref(), req, Arc::new(Bar::new())).await;
    store.close().await;
    let imported = imported.map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let count = |action: &str| {
        imported
            .amended
            .iter()
            .filter(|a| a.action == action)
            .count()
    };
    let (repaired, skipped) = (count("repaired"), count("skipped"));
    if !imported.amended.is_empty() {
        citytwin_city::import::write_report(&report, &imported.amended)
            .map_err(|e| e.to_string())?;
    }
    if let Some(v) = imported.meta.versions.last() {
        tracing::info!(
            layer = %imported.meta.name,
            version = %v.date,
            versions = imported.meta.versions.len(),
            added = v.added,
            removed = v.removed,
            changed = v.changed,
            "version added"
        );
    }
    tracing::info!(
        layer = %imported.meta.name,
        features = imported.meta.feature_count,
        repaired,
        skipped,
        report = %if imported.amended.is_empty() { "-".into() } else { report.display().to_string() },
        seconds = format!("{secs:.2}"),
        "imported"
    );
    Ok(())
}

fn run_fixtures(a: FixturesArgs) -> Result<(), String> {
    init_logging("human");
    let scale = Scale::parse(&a.scale).map_err(|e| e.to_string())?;
    let reference_dir = a
        .reference
        .unwrap_or_else(|| repo_dir("fixtures/reference"));
    let out = a.out.unwrap_or_else(|| match scale {
        Scale::Small => repo_dir("fixtures/nanjing"),
        Scale::City => PathBuf::from("data/fixtures-city"),
    });
    let reference = Reference::load(&reference_dir).map_err(|e| e.to_string())?;
    let layers = generate(&reference, scale, a.seed, &Bar::new());
    write_fixtures(&layers, &out).map_err(|e| e.to_string())?;
    for l in &layers {
        tracing::info!(layer = %l.meta.name, features = l.features.len(), "generated");
    }
    tracing::info!(out = %out.display(), "fixtures written");
    Ok(())
}

async fn list_layers(store: &str) -> Result<(), String> {
    let store = open_store(store, false).await?;
    let layers = store.layers().await.map_err(|e| e.to_string())?;
    #[allow(clippy::print_stdout)]
    for m in layers {
        println!(
            "{:<14} {:<10} {:>9} features  z{}-{}  {}",
            m.name,
            m.geometry_kind.name(),
            m.feature_count,
            m.minzoom,
            m.maxzoom,
            m.title
        );
    }
    store.close().await;
    Ok(())
}

async fn publish(a: PublishArgs) -> Result<(), String> {
    init_logging("human");
    let class = a.class.classification()?;
    let StoreSpec::Postgres(url) = StoreSpec::parse(&a.store) else {
        return Err("publishing a table needs the PostGIS store (--store postgres://…)".into());
    };
    let store = PostgisStore::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    let meta = store
        .publish(&PublishRequest {
            layer: a.layer,
            table: a.table,
            geometry_column: a.geometry_column,
            id_column: a.id_column,
            srid: a.srid,
            title: a.title,
            minzoom: a.minzoom,
            maxzoom: a.maxzoom,
            tile_fields: a.tile_fields,
        })
        .await;
    let meta = match (meta, class) {
        (Ok(mut m), Some(c)) => match citytwin_city::catalog::check_fields(&c, &m) {
            Ok(()) => {
                m.classification = Some(c);
                store.set_layer_meta(&m).await
            }
            Err(e) => Err(e),
        },
        (m, _) => m,
    };
    store.close().await;
    let meta = meta.map_err(|e| e.to_string())?;
    tracing::info!(
        layer = %meta.name,
        features = meta.feature_count,
        source = %meta.source,
        "published"
    );
    Ok(())
}

async fn drop_layer(layer: &str, store: &str) -> Result<(), String> {
    init_logging("human");
    let store = open_store(store, false).await?;
    let result = store.drop_layer(layer).await;
    store.close().await;
    result.map_err(|e| e.to_string())?;
    tracing::info!(layer, "dropped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("citytwin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(a) => serve(a).await,
            Command::Import(a) => run_import(a).await,
            Command::Fixtures(a) => tokio::task::spawn_blocking(move || run_fixtures(a))
                .await
                .map_err(|e| e.to_string())?,
            Command::Layers { store } => list_layers(&store).await,
            Command::Publish(a) => publish(a).await,
            Command::Drop { layer, store } => drop_layer(&layer, &store).await,
            Command::Catalog(c) => citytwin::cli::catalog(c).await,
            Command::Keys(c) => citytwin::cli::keys(c).await,
            Command::Users(c) => citytwin::cli::users(c).await,
            Command::Grants(c) => citytwin::cli_governance::grants(c).await,
            Command::Objections(c) => citytwin::cli_governance::objections(c).await,
            Command::Audit(c) => citytwin::cli::audit(c).await,
            Command::Export(a) => {
                init_logging("human");
                let summary = citytwin::export::run(a).await?;
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
                }
                Ok(())
            }
            Command::Seed(a) => {
                init_logging("human");
                let seeded = citytwin::export::seed(a).await?;
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string(&seeded).unwrap_or_default());
                }
                if seeded.failed > 0 {
                    return Err(format!(
                        "{} tile requests failed; the first: {}",
                        seeded.failed,
                        seeded.first_failure.unwrap_or_default()
                    ));
                }
                Ok(())
            }
            Command::Simulate(a) => {
                init_logging("human");
                citytwin::simulate::run(a).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("citytwin: error: {e}");
            ExitCode::FAILURE
        }
    }
}
