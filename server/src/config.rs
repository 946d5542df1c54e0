//! Configuration in three layers: command-line flags over environment variables over a TOML
//! file, over built-in defaults. `citytwin serve --print-config` shows the effective result.

use citytwin_city::catalog::Classification;
use citytwin_city::live::history::HistoryPolicy;
use citytwin_city::live::{LiveLayer, LiveOptions};
use citytwin_tiles::TileBudget;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Flags of `citytwin serve`; every one also reads an environment variable.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file
    #[arg(long, env = "CITYTWIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// address to listen on
    #[arg(long, env = "CITYTWIN_LISTEN")]
    pub listen: Option<String>,
    /// the store: a GeoPackage path, or a PostGIS URL (postgres://user@host/db[?schema=name])
    #[arg(long, env = "CITYTWIN_STORE")]
    pub store: Option<String>,
    /// layers too large for memory, tiled by PostGIS itself (comma-separated)
    #[arg(long, env = "CITYTWIN_STORE_TILED", value_delimiter = ',')]
    pub store_tiled: Option<Vec<String>>,
    /// create the store from the demo fixtures when it is missing (`--demo=false` turns off
    /// a configuration file's `demo = true`)
    #[arg(long, env = "CITYTWIN_DEMO", num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_name = "BOOL")]
    pub demo: Option<bool>,
    /// folder with the fixture manifest used by --demo
    #[arg(long, env = "CITYTWIN_FIXTURES")]
    pub fixtures: Option<PathBuf>,
    /// folder of the browser pages
    #[arg(long, env = "CITYTWIN_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// folder of the MapLibre styles
    #[arg(long, env = "CITYTWIN_STYLES_DIR")]
    pub styles_dir: Option<PathBuf>,
    /// tile cache size in MiB (0 turns the cache off)
    #[arg(long, env = "CITYTWIN_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// largest tile layer, in bytes before compression
    #[arg(long, env = "CITYTWIN_TILE_MAX_BYTES")]
    pub tile_max_bytes: Option<usize>,
    /// most features in one tile
    #[arg(long, env = "CITYTWIN_TILE_MAX_FEATURES")]
    pub tile_max_features: Option<usize>,
    /// log format: human or json
    #[arg(long, env = "CITYTWIN_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// seconds between checks for layers changed in the store by another process (0: never)
    #[arg(long, env = "CITYTWIN_REFRESH_SECS")]
    pub refresh_secs: Option<u64>,
    /// MQTT broker to take readings and positions from (mqtt://host:port)
    #[arg(long, env = "CITYTWIN_MQTT")]
    pub mqtt: Option<String>,
    /// NATS server with JetStream (nats://host:port): run as one of several instances on the
    /// same PostGIS store, one of which writes (see README, "Running several instances")
    #[arg(long, env = "CITYTWIN_NATS")]
    pub nats: Option<String>,
    /// a streaming replica of the PostGIS store for heavy reads (layer loads, tiles, history)
    #[arg(long, env = "CITYTWIN_STORE_READ")]
    pub store_read: Option<String>,
    /// a report within this many metres of an open event of its category joins it
    #[arg(long, env = "CITYTWIN_MERGE_DISTANCE_M")]
    pub merge_distance_m: Option<f64>,
    /// … when that event was reported at most this many minutes before
    #[arg(long, env = "CITYTWIN_MERGE_WINDOW_MINS")]
    pub merge_window_mins: Option<u64>,
    /// run the traffic simulator against this server (hotline reports, readings, units;
    /// `--simulate=false` turns off a configuration file's `simulate = true`)
    #[arg(long, env = "CITYTWIN_SIMULATE", num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_name = "BOOL")]
    pub simulate: Option<bool>,
    /// the audit log's HMAC key file (made when missing; default: beside the GeoPackage,
    /// `<store>.audit-key`, or data/audit.key for PostGIS)
    #[arg(long, env = "CITYTWIN_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
    /// days audit entries are kept (at least 180)
    #[arg(long, env = "CITYTWIN_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// the public-holiday calendar objection deadlines count working days with (TOML: a
    /// table per year with `off` and `work` dates; default: the shipped Chinese calendar)
    #[arg(long, env = "CITYTWIN_CALENDAR")]
    pub calendar: Option<PathBuf>,
    /// a second address serving only /metrics, without credentials (for Prometheus on the
    /// operators' network); on the main address /metrics needs the system-admin role
    #[arg(long, env = "CITYTWIN_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// the city's OpenID Connect provider (issuer URL): people sign in through it
    #[arg(long, env = "CITYTWIN_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// the audience citytwin's access tokens carry (default urn:citytwin)
    #[arg(long, env = "CITYTWIN_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// web origins allowed to write and to open the live feed (comma-separated), besides
    /// citytwin's own
    #[arg(long, env = "CITYTWIN_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// print the effective configuration as TOML and exit
    #[arg(long)]
    pub print_config: bool,
}

/// The configuration file: the same keys as the flags, all optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// see [`ServeArgs::listen`]
    pub listen: Option<String>,
    /// see [`ServeArgs::store`]
    pub store: Option<String>,
    /// see [`ServeArgs::store_tiled`]
    pub store_tiled: Option<Vec<String>>,
    /// see [`ServeArgs::demo`]
    pub demo: Option<bool>,
    /// see [`ServeArgs::fixtures`]
    pub fixtures: Option<PathBuf>,
    /// see [`ServeArgs::web_dir`]
    pub web_dir: Option<PathBuf>,
    /// see [`ServeArgs::styles_dir`]
    pub styles_dir: Option<PathBuf>,
    /// see [`ServeArgs::cache_mb`]
    pub cache_mb: Option<u64>,
    /// see [`ServeArgs::tile_max_bytes`]
    pub tile_max_bytes: Option<usize>,
    /// see [`ServeArgs::tile_max_features`]
    pub tile_max_features: Option<usize>,
    /// see [`ServeArgs::log_format`]
    pub log_format: Option<String>,
    /// see [`ServeArgs::refresh_secs`]
    pub refresh_secs: Option<u64>,
    /// see [`ServeArgs::mqtt`]
    pub mqtt: Option<String>,
    /// see [`ServeArgs::nats`]
    pub nats: Option<String>,
    /// see [`ServeArgs::store_read`]
    pub store_read: Option<String>,
    /// see [`ServeArgs::merge_distance_m`]
    pub merge_distance_m: Option<f64>,
    /// see [`ServeArgs::merge_window_mins`]
    pub merge_window_mins: Option<u64>,
    /// see [`ServeArgs::simulate`]
    pub simulate: Option<bool>,
    /// hours to close an event, per category (`[deadlines]` table: `waterlogging = 2`)
    pub deadlines: Option<BTreeMap<String, u32>>,
    /// see [`ServeArgs::audit_key`]
    pub audit_key: Option<PathBuf>,
    /// see [`ServeArgs::audit_retention_days`]
    pub audit_retention_days: Option<u32>,
    /// see [`ServeArgs::calendar`]
    pub calendar: Option<PathBuf>,
    /// see [`ServeArgs::metrics_listen`]
    pub metrics_listen: Option<String>,
    /// the catalogue entries of the live layers (`[catalog.events]` with owner, share, open,
    /// level, update_frequency)
    pub catalog: Option<BTreeMap<String, Classification>>,
    /// the identity provider (`[oidc]`: issuer, audience, client_id, scopes, algorithms,
    /// leeway_secs and the claim names)
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// see [`ServeArgs::cors_origins`]
    pub cors_origins: Option<Vec<String>>,
    /// per-principal rate limits (`[rates]`)
    pub rates: Option<Rates>,
    /// caps on streams, sensors per key and the frame cache (`[limits]`)
    pub limits: Option<Caps>,
    /// how much raw history is kept and how often the twin is checkpointed (`[history]`)
    pub history: Option<HistoryPolicy>,
}

/// Caps that keep memory bounded however many clients come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caps {
    /// streams open at once: live feed WebSockets and server-sent events, dashboard MJPEG
    pub streams: usize,
    /// streams one caller (a key, a user; the public as one) may hold open
    pub streams_per_caller: usize,
    /// sensors one key or user may register
    pub sensors_per_key: usize,
    /// MiB of rendered dashboard frames kept for streams showing the same
    pub frame_cache_mb: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            streams: 10_000,
            streams_per_caller: 100,
            sensors_per_key: 100_000,
            frame_cache_mb: 64,
        }
    }
}

/// Rate limits per principal (per client address for the public), each a steady rate with a
/// burst of twice as many.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rates {
    /// writes a second
    pub writes_per_sec: u32,
    /// expensive queries (statistics, cells, nearest/within/intersects, items, renders) a second
    pub queries_per_sec: u32,
    /// citizen reports by the public a minute, per client address
    pub public_reports_per_min: u32,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            writes_per_sec: 2000,
            queries_per_sec: 50,
            public_reports_per_min: 6,
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Settings {
    /// address to listen on
    pub listen: String,
    /// GeoPackage path or PostGIS URL
    pub store: String,
    /// layers the store tiles itself
    pub store_tiled: Vec<String>,
    /// create the store from fixtures when missing
    pub demo: bool,
    /// fixture manifest folder
    pub fixtures: PathBuf,
    /// browser pages
    pub web_dir: PathBuf,
    /// MapLibre styles
    pub styles_dir: PathBuf,
    /// tile cache size in MiB
    pub cache_mb: u64,
    /// tile byte budget
    pub tile_max_bytes: usize,
    /// tile feature budget
    pub tile_max_features: usize,
    /// human or json
    pub log_format: String,
    /// seconds between store change checks
    pub refresh_secs: u64,
    /// MQTT broker URL
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<String>,
    /// NATS server URL (several instances)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<String>,
    /// read replica of the store
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_read: Option<String>,
    /// duplicate-merge distance in metres
    pub merge_distance_m: f64,
    /// duplicate-merge window in minutes
    pub merge_window_mins: u64,
    /// run the simulator
    pub simulate: bool,
    /// hours to close an event, per category (over the built-in table)
    pub deadlines: BTreeMap<String, u32>,
    /// the audit key file
    pub audit_key: PathBuf,
    /// days audit entries are kept
    pub audit_retention_days: u32,
    /// the public-holiday calendar file (the shipped one when absent)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<PathBuf>,
    /// the address serving /metrics without credentials
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// the live layers' catalogue entries
    pub catalog: BTreeMap<String, Classification>,
    /// the identity provider, when people sign in
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<crate::oidc::OidcConfig>,
    /// other web origins allowed to write and open the feed
    pub cors_origins: Vec<String>,
    /// rate limits
    pub rates: Rates,
    /// caps on streams, sensors per key and the frame cache
    pub limits: Caps,
    /// the live twin's history policy
    pub history: HistoryPolicy,
}

/// A folder of the repository: relative to the working directory when it exists there,
/// otherwise beside the source tree this binary was built from.
#[must_use]
pub fn repo_dir(rel: &str) -> PathBuf {
    let here = PathBuf::from(rel);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

impl Settings {
    /// Merges flags/env over the file over defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("invalid config {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let log_format = args
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "human".into());
        if log_format != "human" && log_format != "json" {
            return Err(format!("log format {log_format:?}: use human or json"));
        }
        let defaults = TileBudget::default();
        let store = args
            .store
            .clone()
            .or(file.store.clone())
            .unwrap_or_else(|| "data/citytwin.gpkg".into());
        let audit_retention_days = args
            .audit_retention_days
            .or(file.audit_retention_days)
            .unwrap_or(citytwin_city::audit::MIN_RETENTION_DAYS);
        if audit_retention_days < citytwin_city::audit::MIN_RETENTION_DAYS {
            return Err(format!(
                "audit retention {audit_retention_days} days: entries are kept at least {} days",
                citytwin_city::audit::MIN_RETENTION_DAYS
            ));
        }
        let catalog = file.catalog.clone().unwrap_or_default();
        for (layer, c) in &catalog {
            if LiveLayer::parse(layer).is_none() {
                return Err(format!(
                    "[catalog.{layer}]: only the live layers (events, sensors, units) are classified in the configuration; classify base layers with `citytwin catalog set`"
                ));
            }
            c.check().map_err(|e| format!("[catalog.{layer}]: {e}"))?;
        }
        let mut oidc = file.oidc.clone();
        if let Some(issuer) = &args.oidc_issuer {
            oidc.get_or_insert_with(crate::oidc::OidcConfig::default)
                .issuer
                .clone_from(issuer);
        }
        if let (Some(aud), Some(o)) = (&args.oidc_audience, oidc.as_mut()) {
            o.audience.clone_from(aud);
        }
        if let Some(o) = &oidc {
            crate::oidc::Oidc::new(o.clone())?;
        }
        let rates = file.rates.unwrap_or_default();
        if rates.writes_per_sec == 0
            || rates.queries_per_sec == 0
            || rates.public_reports_per_min == 0
        {
            return Err("[rates]: every rate must be at least 1".into());
        }
        let limits = file.limits.unwrap_or_default();
        if limits.streams == 0 || limits.streams_per_caller == 0 || limits.sensors_per_key == 0 {
            return Err(
                "[limits]: streams, streams_per_caller and sensors_per_key must be at least 1"
                    .into(),
            );
        }
        let history = file.history.unwrap_or_default();
        history.check().map_err(|e| format!("[history]: {e}"))?;
        Ok(Self {
            limits,
            history,
            oidc,
            cors_origins: args
                .cors_origins
                .clone()
                .or(file.cors_origins.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.is_empty())
                .collect(),
            rates,
            audit_key: args
                .audit_key
                .clone()
                .or(file.audit_key.clone())
                .unwrap_or_else(|| default_audit_key(&store)),
            audit_retention_days,
            calendar: args.calendar.clone().or(file.calendar.clone()),
            metrics_listen: args
                .metrics_listen
                .clone()
                .or(file.metrics_listen.clone())
                .filter(|m| !m.is_empty()),
            catalog,
            listen: args
                .listen
                .clone()
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            store,
            store_tiled: args
                .store_tiled
                .clone()
                .or(file.store_tiled)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            demo: args.demo.or(file.demo).unwrap_or(false),
            fixtures: args
                .fixtures
                .clone()
                .or(file.fixtures)
                .unwrap_or_else(|| repo_dir("fixtures/nanjing")),
            web_dir: args
                .web_dir
                .clone()
                .or(file.web_dir)
                .unwrap_or_else(|| repo_dir("web")),
            styles_dir: args
                .styles_dir
                .clone()
                .or(file.styles_dir)
                .unwrap_or_else(|| repo_dir("styles")),
            cache_mb: args.cache_mb.or(file.cache_mb).unwrap_or(256),
            tile_max_bytes: args
                .tile_max_bytes
                .or(file.tile_max_bytes)
                .unwrap_or(defaults.max_bytes),
            tile_max_features: args
                .tile_max_features
                .or(file.tile_max_features)
                .unwrap_or(defaults.max_features),
            log_format,
            refresh_secs: args.refresh_secs.or(file.refresh_secs).unwrap_or(5),
            mqtt: args.mqtt.clone().or(file.mqtt).filter(|m| !m.is_empty()),
            nats: args.nats.clone().or(file.nats).filter(|m| !m.is_empty()),
            store_read: args
                .store_read
                .clone()
                .or(file.store_read)
                .filter(|m| !m.is_empty()),
            merge_distance_m: {
                let m = args
                    .merge_distance_m
                    .or(file.merge_distance_m)
                    .unwrap_or(100.0);
                if !(m.is_finite() && (0.0..=10_000.0).contains(&m)) {
                    return Err(format!("merge distance {m} m: use 0 to 10000"));
                }
                m
            },
            merge_window_mins: args
                .merge_window_mins
                .or(file.merge_window_mins)
                .unwrap_or(120),
            simulate: args.simulate.or(file.simulate).unwrap_or(false),
            deadlines: {
                let mut d = LiveOptions::default().deadlines;
                d.extend(file.deadlines.unwrap_or_default());
                d
            },
        })
    }

    /// Deadlines and the duplicate-merge window for the live twin.
    #[must_use]
    pub fn live_options(&self) -> LiveOptions {
        LiveOptions {
            merge_distance_m: self.merge_distance_m,
            merge_window_ms: self.merge_window_mins as i64 * 60_000,
            deadlines: self.deadlines.clone(),
            catalog: self.catalog.clone(),
            history: self.history,
            max_sensors_per_key: self.limits.sensors_per_key,
            ..LiveOptions::default()
        }
    }

    /// The tile budget configured.
    #[must_use]
    pub fn budget(&self) -> TileBudget {
        TileBudget {
            max_bytes: self.tile_max_bytes,
            max_features: self.tile_max_features,
        }
    }

    /// The effective configuration as TOML, with any database password masked.
    #[must_use]
    pub fn to_toml(&self) -> String {
        let shown = Self {
            store: mask_password(&self.store),
            mqtt: self.mqtt.as_deref().map(mask_password),
            nats: self.nats.as_deref().map(mask_password),
            store_read: self.store_read.as_deref().map(mask_password),
            ..self.clone()
        };
        toml::to_string(&shown).unwrap_or_default()
    }
}

/// Where the audit key lives by default: beside a GeoPackage store, or `data/audit.key` for
/// PostGIS (every instance on one database must be given the same key).
#[must_use]
pub fn default_audit_key(store: &str) -> PathBuf {
    match citytwin_city::store::StoreSpec::parse(store) {
        citytwin_city::store::StoreSpec::GeoPackage(p) => {
            PathBuf::from(format!("{}.audit-key", p.display()))
        }
        citytwin_city::store::StoreSpec::Postgres(_) => PathBuf::from("data/audit.key"),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
#[must_use]
pub fn mask_password(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let (auth, tail) = rest.split_once('@').unwrap_or(("", rest));
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{tail}"),
        None => spec.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ncache_mb = 7\nstore = \"x.gpkg\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            store: Some("flag.gpkg".into()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.store, "flag.gpkg");
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.cache_mb, 7);
        assert_eq!(s.refresh_secs, 5);
    }

    #[test]
    fn a_flag_turns_off_what_the_file_turned_on() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "demo = true\nsimulate = true\n").unwrap();
        let resolve = |flags: &[&str]| {
            let mut argv = vec!["citytwin", "--config", path.to_str().unwrap()];
            argv.extend_from_slice(flags);
            let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
            let s = Settings::resolve(&cli.serve).unwrap();
            (s.demo, s.simulate)
        };
        assert_eq!(resolve(&[]), (true, true));
        assert_eq!(resolve(&["--demo=false"]), (false, true));
        assert_eq!(
            resolve(&["--demo=false", "--simulate=false"]),
            (false, false)
        );
        assert_eq!(resolve(&["--demo", "--simulate=true"]), (true, true));
        assert!(<Cli as clap::Parser>::try_parse_from(["citytwin", "--demo=perhaps"]).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(Settings::resolve(&args).unwrap_err().contains("lissten"));
        let args = ServeArgs {
            log_format: Some("xml".into()),
            ..ServeArgs::default()
        };
        assert!(Settings::resolve(&args).is_err());
    }

    #[test]
    fn passwords_never_reach_the_printed_config() {
        assert_eq!(
            mask_password("postgres://ct:s3cret@db:5432/city?schema=nj"),
            "postgres://ct:***@db:5432/city?schema=nj"
        );
        assert_eq!(
            mask_password("postgres://ct@db/city"),
            "postgres://ct@db/city"
        );
        assert_eq!(mask_password("data/x.gpkg"), "data/x.gpkg");
        let s = Settings::resolve(&ServeArgs {
            store: Some("postgres://a:b@h/d".into()),
            store_tiled: Some(vec!["buildings".into()]),
            ..ServeArgs::default()
        })
        .unwrap();
        assert!(!s.to_toml().contains(":b@"));
        assert!(s.to_toml().contains("store_tiled = [\"buildings\"]"));
    }
}
