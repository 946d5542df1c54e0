//! Where layers live between runs: the store trait and its backends.
//!
//! The embedded default is one GeoPackage file ([`gpkg::GeoPackageStore`]); a PostGIS backend
//! implements the same trait. Every write is atomic: it lands whole or not at all.

pub mod gpkg;

use crate::Result;
use crate::layer::{Feature, LayerMeta};
use async_trait::async_trait;

/// How a write treats the features already in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// The layer afterwards holds exactly the written features.
    #[default]
    Replace,
    /// The written features are added to those already there.
    Append,
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

    /// Removes a layer with its features and metadata.
    async fn drop_layer(&self, layer: &str) -> Result<()>;

    /// Succeeds when the store answers a trivial query.
    async fn ping(&self) -> Result<()>;
}
