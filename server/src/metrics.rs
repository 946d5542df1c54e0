//! Prometheus metrics of the HTTP server and the tile pipeline.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// matched route pattern
    pub route: String,
    /// status code
    pub status: u16,
}

/// Labels of a tile request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TileLabels {
    /// hit or miss
    pub cache: &'static str,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// requests by route and status
    pub requests: Family<RequestLabels, Counter>,
    /// request latency in seconds
    pub latency: Histogram,
    /// tile requests by cache outcome
    pub tiles: Family<TileLabels, Counter>,
    /// time to encode an uncached tile, in seconds
    pub tile_encode: Histogram,
    /// bytes of encoded tiles (uncompressed)
    pub tile_bytes: Histogram,
    /// features dropped or merged to keep tiles inside their budget
    pub tile_thinned: Counter,
    /// layers loaded
    pub layers: Gauge,
    /// features indexed over all layers
    pub features: Gauge,
    /// sensor readings taken (HTTP and MQTT)
    pub readings: Counter,
    /// MQTT messages refused (malformed, unknown sensor or unit)
    pub mqtt_rejected: Counter,
    /// open WebSocket and SSE subscriptions
    pub subscribers: Gauge,
    /// dashboard stream frames rendered
    pub frames: Counter,
}

impl Metrics {
    /// Creates and registers all metrics.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("citytwin");
        let m = Self {
            requests: Family::default(),
            latency: Histogram::new(exponential_buckets(0.0001, 2.5, 14)),
            tiles: Family::default(),
            tile_encode: Histogram::new(exponential_buckets(0.0001, 2.5, 14)),
            tile_bytes: Histogram::new(exponential_buckets(256.0, 4.0, 10)),
            tile_thinned: Counter::default(),
            layers: Gauge::default(),
            features: Gauge::default(),
            readings: Counter::default(),
            mqtt_rejected: Counter::default(),
            subscribers: Gauge::default(),
            frames: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "readings",
            "Sensor readings taken, durable",
            m.readings.clone(),
        );
        registry.register(
            "mqtt_rejected",
            "MQTT messages refused as malformed or naming an unknown sensor or unit",
            m.mqtt_rejected.clone(),
        );
        registry.register(
            "live_subscribers",
            "Open WebSocket and server-sent-event subscriptions",
            m.subscribers.clone(),
        );
        registry.register(
            "dashboard_frames",
            "Dashboard stream frames rendered (only when the data changed)",
            m.frames.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            m.latency.clone(),
        );
        registry.register(
            "tile_requests",
            "Tile requests by cache outcome",
            m.tiles.clone(),
        );
        registry.register(
            "tile_encode_seconds",
            "Time to encode an uncached tile",
            m.tile_encode.clone(),
        );
        registry.register(
            "tile_size_bytes",
            "Encoded tile size before compression",
            m.tile_bytes.clone(),
        );
        registry.register(
            "tile_features_thinned",
            "Features merged or dropped by tile budgets",
            m.tile_thinned.clone(),
        );
        registry.register("layers", "Layers loaded", m.layers.clone());
        registry.register(
            "indexed_features",
            "Features in the spatial index",
            m.features.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
