//! Application state, the router, and the serve loop with graceful shutdown.

use crate::config::Settings;
use crate::metrics::{Metrics, RequestLabels};
use crate::routes;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use bytes::Bytes;
use citytwin_city::City;
use citytwin_city::query::Limits;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::Instant;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

/// A tile cache key: the layer list, the versions of those layers, and the tile.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct TileKey {
    /// comma-joined layer names
    pub layers: Arc<str>,
    /// combined version of the layers; a changed layer never hits an old entry
    pub version: u64,
    /// combined read-plan key of the layers: a tile is never served across plans
    pub plan: u64,
    /// zoom
    pub z: u8,
    /// column
    pub x: u32,
    /// row
    pub y: u32,
}

/// An encoded tile, kept both raw and gzipped.
#[derive(Debug)]
pub struct CachedTile {
    /// MVT bytes
    pub raw: Bytes,
    /// gzip of `raw`
    pub gzip: Bytes,
    /// strong ETag of the content
    pub etag: String,
    /// at a layer's maximum zoom, what gave way so every feature is in the tile (the
    /// `citytwin-detail` header): attributes left out, or the byte budget exceeded
    pub detail: Option<String>,
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// the twin
    pub city: Arc<City>,
    /// effective configuration
    pub settings: Arc<Settings>,
    /// tile cache; `None` when turned off
    pub tiles: Option<Cache<TileKey, Arc<CachedTile>>>,
    /// metrics
    pub metrics: Arc<Metrics>,
    /// start time, for `/health`
    pub started: Instant,
    /// caps on every query
    pub limits: Limits,
    /// numbers of matches of item queries, so paging through one counts it once
    pub counts: Cache<CountKey, u64>,
    /// the renderer for static maps and dashboards, opened on first use
    pub render: Arc<crate::render::RenderService>,
    /// the latest JPEG frames of dashboard streams, shared by streams showing the same
    pub frames: Cache<crate::routes::render::FrameKey, Bytes>,
    /// the identity provider's tokens, checked locally; `None` when no one signs in
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// tokens already checked, for a minute (revocation and expiry are still checked on
    /// every request)
    pub tokens: Cache<String, Arc<citytwin_city::access::Principal>>,
    /// one-use tickets for streams, for 30 seconds
    pub tickets: Cache<String, Arc<citytwin_city::access::Principal>>,
    /// rate limits per principal
    pub rates: Arc<crate::auth::RateLimits>,
    /// fonts, glyph ranges and sprite sheets for MapLibre styles
    pub assets: Arc<crate::routes::assets::Assets>,
    /// the open streams, capped in all and per caller
    pub streams: Arc<crate::streams::Streams>,
    /// true once the server is stopping: every open stream (live feed, server-sent events,
    /// MJPEG) ends, so the drain is bounded
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// How long a stopping server waits for requests still running once its streams were told
/// to end; what is still open then is cut (acknowledged writes are durable already).
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A count cache key: the layer, its version, and the selection's parameters as given.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct CountKey {
    /// layer name
    pub layer: Arc<str>,
    /// layer version; a changed layer never hits an old count
    pub version: u64,
    /// bbox, datetime and filter parameters, joined
    pub selection: String,
    /// the read plan's key: counts are never shared across plans
    pub plan: u64,
}

impl AppState {
    /// State over an opened twin.
    #[must_use]
    pub fn new(city: Arc<City>, settings: Settings) -> Self {
        let tiles = (settings.cache_mb > 0).then(|| {
            Cache::builder()
                .max_capacity(settings.cache_mb * 1024 * 1024)
                .weigher(|_k: &TileKey, v: &Arc<CachedTile>| {
                    u32::try_from(v.raw.len() + v.gzip.len() + 128).unwrap_or(u32::MAX)
                })
                .support_invalidation_closures()
                .build()
        });
        let rates = settings.rates;
        let frame_bytes = settings.limits.frame_cache_mb * 1024 * 1024;
        let metrics = Arc::new(Metrics::new());
        let streams = crate::streams::Streams::new(
            settings.limits.streams,
            settings.limits.streams_per_caller,
            metrics.subscribers.clone(),
        );
        let oidc = settings
            .oidc
            .clone()
            .and_then(|c| crate::oidc::Oidc::new(c).ok())
            .map(Arc::new);
        let assets = Arc::new(crate::routes::assets::Assets::new(&settings.styles_dir));
        let state = Self {
            assets,
            city,
            settings: Arc::new(settings),
            tiles,
            metrics,
            streams,
            started: Instant::now(),
            limits: Limits::default(),
            // about 16 MiB of counts: the key's text and the count, with the map's overhead
            counts: Cache::builder()
                .max_capacity(16 * 1024 * 1024)
                .weigher(|k: &CountKey, _v: &u64| {
                    u32::try_from(k.layer.len() + k.selection.len() + 96).unwrap_or(u32::MAX)
                })
                .build(),
            render: Arc::new(crate::render::RenderService::new(
                citytwin_renderer::Options::default(),
            )),
            frames: Cache::builder()
                .max_capacity(frame_bytes)
                .weigher(|_k: &crate::routes::render::FrameKey, v: &Bytes| {
                    u32::try_from(v.len() + 256).unwrap_or(u32::MAX)
                })
                .time_to_live(std::time::Duration::from_mins(2))
                .build(),
            oidc,
            tokens: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_mins(1))
                .build(),
            tickets: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(30))
                .build(),
            rates: Arc::new(crate::auth::RateLimits::new(rates)),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
        };
        state.update_gauges();
        state
    }

    /// Refreshes the layer and feature gauges.
    pub fn update_gauges(&self) {
        let layers = self.city.layers();
        self.metrics.layers.set(layers.len() as i64);
        self.metrics
            .features
            .set(layers.iter().map(|l| l.feature_count() as i64).sum());
    }

    /// Drops cached tiles of a layer that changed (entries would no longer be hit anyway, as
    /// keys carry layer versions; this frees their memory at once).
    pub fn forget_layer(&self, name: &str) {
        if let Some(cache) = &self.tiles {
            let name = name.to_owned();
            let _ = cache.invalidate_entries_if(move |k, _| k.layers.split(',').any(|l| l == name));
        }
        self.update_gauges();
    }
}

/// `scheme://host` of the request, honouring reverse-proxy headers.
#[must_use]
pub fn base_url(headers: &HeaderMap) -> String {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let proto = get("x-forwarded-proto").unwrap_or("http");
    let host = get("x-forwarded-host")
        .or_else(|| get(header::HOST.as_str()))
        .unwrap_or("localhost");
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        .collect();
    let proto = if proto == "https" { "https" } else { "http" };
    format!("{proto}://{host}")
}

async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let start = Instant::now();
    let resp = next.run(req).await;
    state.metrics.latency.observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    // reads are open to pages of any origin (they carry no ambient credentials: tokens
    // travel in headers); writes only to the origins configured
    let writers: Arc<Vec<String>> = Arc::new(state.settings.cors_origins.clone());
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            let method = parts
                .headers
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|m| m.to_str().ok())
                .unwrap_or_else(|| parts.method.as_str());
            matches!(method, "GET" | "HEAD")
                || origin
                    .to_str()
                    .is_ok_and(|o| writers.iter().any(|w| w == o))
        }))
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::HEAD,
            axum::http::Method::POST,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_ENCODING,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-render-warnings"),
            header::HeaderName::from_static("x-request-id"),
        ]);
    Router::new()
        .merge(routes::tiles::router())
        .merge(routes::catalog::router())
        .merge(routes::styles::router())
        .merge(routes::assets::router())
        .merge(routes::ops::router())
        .merge(routes::territory::router())
        .merge(routes::spatial::router())
        .merge(routes::versions::router())
        .merge(routes::features::router())
        .merge(routes::ogc_tiles::router())
        .merge(routes::sta::router())
        .merge(routes::live::router())
        .merge(routes::render::router())
        .merge(routes::api::router())
        .merge(routes::access::router())
        .merge(routes::governance::router())
        .merge(routes::web::router())
        .fallback(routes::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(crate::auth::body_limit("")))
        .layer(middleware::from_fn(crate::auth::guard))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(cors)
        // the span names the method and path only: queries may carry tickets, and headers
        // carry credentials, and neither may reach the logs
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// Keeps the caches in step with layer changes and picks up changes other processes made:
/// layers, and revocations (twice a second, so a revoked user's streams close within one).
pub fn spawn_watchers(state: &AppState) {
    let city = Arc::clone(&state.city);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            match city.credentials().refresh().await {
                Ok(cut) if !cut.is_empty() => tracing::info!(?cut, "revoked; their streams close"),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "revocation check failed"),
            }
            // grants and objections the command line changed, every 2 s
            n += 1;
            if n.is_multiple_of(4)
                && let Err(e) = city.reload_records().await
            {
                tracing::debug!(error = %e, "reloading grants and objections failed");
            }
        }
    });
    // data quality, assessed again every ten minutes (the dashboards read the last one)
    let city = Arc::clone(&state.city);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_mins(10));
        loop {
            tick.tick().await;
            city.assess_all().await;
        }
    });
    // the live history kept bounded (raw readings past their retention folded, checkpoints),
    // by the instance that writes
    let city = Arc::clone(&state.city);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_mins(10));
        loop {
            tick.tick().await;
            if !city.writes() {
                continue;
            }
            match city.maintain_history(citytwin_city::live::ts::now()).await {
                Ok(done) if done.readings_folded > 0 || done.checkpoint.is_some() => {
                    tracing::info!(
                        folded = done.readings_folded,
                        checkpoint = ?done.checkpoint.map(|c| c.at),
                        dropped = done.checkpoints_dropped,
                        "live history maintained"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "maintaining the live history failed"),
            }
        }
    });
    let mut changes = state.city.subscribe();
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(name) => {
                    s.forget_layer(&name);
                    // a base layer imported or reloaded is assessed at once (live layers
                    // change all the time: the schedule assesses them)
                    if citytwin_city::live::LiveLayer::parse(&name).is_none() {
                        let city = Arc::clone(&s.city);
                        tokio::spawn(async move {
                            if let Some(l) = city.layer(&name)
                                && let Err(e) = city.quality(&l).await
                            {
                                tracing::warn!(layer = %name, error = %e, "quality check failed");
                            }
                        });
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(c) = &s.tiles {
                        c.invalidate_all();
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let secs = state.settings.refresh_secs;
    if secs > 0 {
        let city = Arc::clone(&state.city);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
            tick.tick().await;
            loop {
                tick.tick().await;
                match city.refresh().await {
                    Ok(changed) if !changed.is_empty() => {
                        tracing::info!(?changed, "reloaded layers changed in the store");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "store refresh failed"),
                }
            }
        });
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Serves until asked to stop, then ends every stream and waits at most [`DRAIN`] for the
/// requests still running.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let closing = Arc::clone(&state.closing);
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        closing.send_replace(true);
        let _ = stopping.send(());
    });
    let deadline = async {
        if stopped.await.is_ok() {
            tokio::time::sleep(DRAIN).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = server => r,
        () = deadline => {
            tracing::warn!(drain = ?DRAIN, "requests still running after the drain; cut");
            Ok(())
        }
    }
}

/// Whether the client accepts a gzipped body (`Accept-Encoding: gzip` or `*`, not `q=0`).
#[must_use]
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name == "gzip" || name == "*") && !q_zero
        })
}
