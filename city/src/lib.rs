//! citytwin-city: the twin of the city.
//!
//! Layers of features and their metadata, the store trait with its embedded GeoPackage
//! backend, import from the common GIS file formats, the per-layer spatial index, and the
//! generator of Nanjing's fixture data. Nothing here knows about HTTP.

pub mod access;
pub mod audit;
pub mod calendar;
pub mod catalog;
pub mod cells;
pub mod change;
pub mod clock;
pub mod cluster;
pub mod desensitise;
pub mod filter;
pub mod generate;
pub mod geojson;
pub mod grants;
pub mod import;
pub mod index;
pub mod invisible;
pub mod keys;
pub mod layer;
pub mod live;
pub mod objections;
pub mod quality;
pub mod query;
pub mod records;
pub mod sta;
pub mod stats;
pub mod store;
pub mod suppress;
pub mod temporal;
pub mod territory;
pub mod testing;
pub mod twin;
pub mod versions;
mod views;

pub use index::LayerIndex;
pub use layer::{ExternalTable, Feature, Field, FieldKind, GeometryKind, LayerMeta};
pub use store::{Store, WriteMode};
pub use twin::{City, CityOptions, TileOutput, TileRequest};

/// Everything that can go wrong in the twin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No layer of that name.
    #[error("layer {0:?} does not exist")]
    UnknownLayer(String),
    /// A layer name that cannot be a table name.
    #[error(
        "invalid layer name {0:?}: use 1 to 63 lowercase letters, digits or _, starting with a letter"
    )]
    InvalidLayerName(String),
    /// An import that failed at one feature.
    #[error("{file}: feature {feature}: {reason}")]
    ImportFeature {
        /// the file being imported
        file: String,
        /// 1-based feature number
        feature: usize,
        /// what is wrong
        reason: String,
    },
    /// An import that failed as a whole (unreadable, unknown format or CRS).
    #[error("{file}: {reason}")]
    ImportFile {
        /// the file being imported
        file: String,
        /// what is wrong
        reason: String,
    },
    /// Input that breaks a rule of the twin.
    #[error("{0}")]
    Invalid(String),
    /// A query that would cost more than its caps allow.
    #[error("{0}")]
    TooExpensive(String),
    /// Nothing there: an unknown territory, a point outside every grid.
    #[error("{0}")]
    NotFound(String),
    /// A change that the current state does not allow (an illegal event transition, a busy
    /// unit); `state` is where the thing stands now.
    #[error("{detail}")]
    Conflict {
        /// what is wrong
        detail: String,
        /// the current state
        state: String,
        /// what is allowed from there
        allowed: Vec<String>,
    },
    /// The principal may not do this (it lacks the role).
    #[error("{0}")]
    Forbidden(String),
    /// The principal may not know the thing exists: shown as if it did not (`shown`), with
    /// the true reason for the audit log.
    #[error("{shown}")]
    Hidden {
        /// what the client is told: that the thing does not exist
        shown: String,
        /// why, for the audit log
        reason: String,
    },
    /// The store could not take a write; nothing was applied.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// Tile math or encoding failed.
    #[error(transparent)]
    Tiles(#[from] citytwin_tiles::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: String,
        /// the cause
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the error is the caller's fault (bad input) rather than the server's.
    #[must_use]
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownLayer(_)
                | Error::InvalidLayerName(_)
                | Error::ImportFeature { .. }
                | Error::ImportFile { .. }
                | Error::Invalid(_)
                | Error::TooExpensive(_)
                | Error::NotFound(_)
                | Error::Conflict { .. }
                | Error::Forbidden(_)
                | Error::Hidden { .. }
                | Error::Tiles(_)
        )
    }
}

/// Runs `work` over consecutive slices of `items` (at least `min_chunk` long) on every core;
/// each call gets its slice's offset in `items`. The results come back in slice order.
pub(crate) fn on_all_cores<T: Sync, R: Send>(
    items: &[T],
    min_chunk: usize,
    work: impl Fn(usize, &[T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = items.len().div_ceil(threads).max(min_chunk).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                let work = &work;
                s.spawn(move || work(k * chunk, part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
