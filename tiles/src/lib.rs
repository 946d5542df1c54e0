//! citytwin-tiles: the pure geometry of vector tiles.
//!
//! Tile math (z/x/y ⇄ Web Mercator bounds), the coordinate systems used in China
//! (WGS84/CGCS2000, GCJ-02, Web Mercator), clipping with a buffer, simplification for the
//! zoom, and MVT encoding under a byte and feature budget. No I/O happens here.

pub mod clip;
mod commands;
pub mod encode;
pub mod proj;
pub mod tile;
pub mod value;

pub use encode::{EncodedLayer, LayerEncoder, LayerStats, SourceFeature, TileBudget, encode_tile};
pub use proj::Crs;
pub use tile::{TileCoord, WEB_MERCATOR_MAX};
pub use value::Value;

/// Errors raised by tile math and encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A zoom, column or row outside the tile pyramid.
    #[error("tile {z}/{x}/{y} is out of range: {reason}")]
    TileOutOfRange {
        /// requested zoom
        z: u64,
        /// requested column
        x: u64,
        /// requested row
        y: u64,
        /// what is wrong with it
        reason: String,
    },
    /// A coordinate reference system this crate does not know.
    #[error(
        "unknown coordinate reference system {0:?}; use EPSG:4326, EPSG:4490, GCJ-02 or EPSG:3857"
    )]
    UnknownCrs(String),
    /// The MVT writer refused a geometry.
    #[error("MVT encoding failed: {0}")]
    Mvt(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
