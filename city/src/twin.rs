//! The twin itself: the store plus an index per layer, kept in step.

use crate::import::{ImportRequest, Progress};
use crate::index::LayerIndex;
use crate::layer::LayerMeta;
use crate::stats::GridAssignment;
use crate::store::Store;
use crate::territory::{Level, TerritoryTree};
use crate::{Error, Result};
use citytwin_tiles::{
    EncodedLayer, LayerEncoder, LayerStats, SourceFeature, TileBudget, TileCoord, encode_tile,
};
use geo::{Rect, coord};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Extent and buffer of every tile written.
pub use citytwin_tiles::encode::{BUFFER as TILE_BUFFER, EXTENT as TILE_EXTENT};

/// A request for one (possibly composite) tile.
#[derive(Debug, Clone)]
pub struct TileRequest<'a> {
    /// layer names, in drawing order
    pub layers: &'a [String],
    /// the tile
    pub coord: TileCoord,
    /// limits for the whole tile, split among its layers
    pub budget: TileBudget,
    /// per layer (aligned with `layers`; empty: the layers as they are), the reader's plan:
    /// its form (raw, desensitised, aggregate cells) and the rows it sees
    pub plans: &'a [crate::access::ReadPlan],
    /// the day the layers are drawn as of (`None`: their current versions)
    pub at: Option<crate::versions::Day>,
}

/// An encoded tile with what each layer contributed.
#[derive(Debug, Clone)]
pub struct TileOutput {
    /// MVT bytes (uncompressed); empty when no layer has features there
    pub bytes: Vec<u8>,
    /// per-layer statistics
    pub stats: Vec<(String, LayerStats)>,
}

type LayerMap = BTreeMap<String, Arc<LayerIndex>>;

/// A read plan's rows: a text field and the territorial code its values must start with.
type Rows = Option<(usize, String)>;

/// How the twin holds its layers.
#[derive(Debug, Clone, Default)]
pub struct CityOptions {
    /// layers too large for memory: the store tiles them itself (PostGIS with `ST_AsMVT`);
    /// every other layer is read into an in-memory index
    pub store_tiled: BTreeSet<String>,
    /// deadlines per event category and the duplicate-merge window
    pub live: crate::live::LiveOptions,
    /// the audit log's key and retention (days); without it nothing is audited (tools and
    /// tests that open a twin only to read it)
    pub audit: Option<(crate::audit::AuditKey, u32)>,
    /// the public-holiday calendar deadlines in working days count with (the shipped
    /// Chinese one when absent)
    pub calendar: Option<crate::calendar::Calendar>,
}

/// The live twin: a store and the indexes built from it.
pub struct City {
    store: Arc<dyn Store>,
    pub(crate) credentials: crate::keys::Credentials,
    pub(crate) audit: Option<crate::audit::AuditLog>,
    options: CityOptions,
    layers: RwLock<Arc<LayerMap>>,
    versions: AtomicU64,
    changes: broadcast::Sender<String>,
    writes: tokio::sync::Mutex<()>,
    territory: RwLock<Option<Arc<TerritoryTree>>>,
    assignments: RwLock<HashMap<String, Arc<GridAssignment>>>,
    derived: tokio::sync::Mutex<()>,
    pub(crate) views: crate::views::Views,
    pub(crate) governance: crate::records::Records,
    pub(crate) qualities: RwLock<HashMap<String, Arc<crate::quality::Quality>>>,
    pub(crate) calendar: crate::calendar::Calendar,
    pub(crate) live: crate::live::Live,
    pub(crate) snapshots: crate::versions::Snapshots,
    pub(crate) details: crate::quality::FullDetails,
}

impl std::fmt::Debug for City {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("City")
            .field("store", &self.store.describe())
            .field("layers", &self.snapshot().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl City {
    /// Opens the twin over a store, loading and indexing every layer.
    pub async fn open(store: Arc<dyn Store>) -> Result<Self> {
        Self::open_with(store, CityOptions::default()).await
    }

    /// Opens the twin over a store with options: every layer is loaded and indexed, except
    /// those the store tiles itself.
    pub async fn open_with(store: Arc<dyn Store>, options: CityOptions) -> Result<Self> {
        if !options.store_tiled.is_empty() && !store.encodes_tiles() {
            return Err(Error::Invalid(format!(
                "{} cannot tile layers itself (asked for {}); that needs the PostGIS store",
                store.describe(),
                options
                    .store_tiled
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (changes, _) = broadcast::channel(256);
        let live = crate::live::Live::open(Arc::clone(&store), options.live.clone()).await?;
        let credentials = crate::keys::Credentials::open(Arc::clone(&store)).await?;
        let audit = match &options.audit {
            Some((key, days)) => {
                Some(crate::audit::AuditLog::open(Arc::clone(&store), key.clone(), *days).await?)
            }
            None => None,
        };
        let calendar = options
            .calendar
            .clone()
            .unwrap_or_else(crate::calendar::Calendar::china);
        let city = Self {
            store,
            credentials,
            audit,
            options,
            layers: RwLock::new(Arc::new(BTreeMap::new())),
            versions: AtomicU64::new(1),
            changes,
            writes: tokio::sync::Mutex::new(()),
            territory: RwLock::new(None),
            assignments: RwLock::new(HashMap::new()),
            derived: tokio::sync::Mutex::new(()),
            views: crate::views::Views::default(),
            governance: crate::records::Records::default(),
            qualities: RwLock::new(HashMap::new()),
            calendar,
            live,
            snapshots: crate::versions::Snapshots::default(),
            details: crate::quality::FullDetails::default(),
        };
        let metas = city.store.layers().await?;
        let loads = metas.into_iter().map(|m| city.load_layer(m));
        let loaded = futures_util::future::try_join_all(loads).await?;
        let map: LayerMap = loaded
            .into_iter()
            .map(|l| (l.meta.name.clone(), l))
            .collect();
        *city.layers.write().map_err(|_| poisoned())? = Arc::new(map);
        city.reload_records().await?;
        Ok(city)
    }

    async fn load_layer(&self, meta: LayerMeta) -> Result<Arc<LayerIndex>> {
        if self.options.store_tiled.contains(&meta.name) {
            let version = self.versions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(layer = %meta.name, features = meta.feature_count, "layer tiled by the store");
            return Ok(Arc::new(LayerIndex::in_store(meta, version)));
        }
        let started = std::time::Instant::now();
        let features = self.store.read_features(&meta.name).await?;
        let history = if meta.versions.is_empty() {
            None
        } else {
            Some(self.store.read_history(&meta.name).await?)
        };
        let read = started.elapsed();
        let version = self.versions.fetch_add(1, Ordering::Relaxed);
        let name = meta.name.clone();
        let index = tokio::task::spawn_blocking(move || {
            let mut index = LayerIndex::build(meta, features, version);
            if let Some(h) = history {
                index.history = Some(Arc::new(crate::versions::History::from_stored(h)?));
            }
            Ok::<_, Error>(index)
        })
        .await
        .map_err(|e| Error::Invalid(format!("index build failed: {e}")))??;
        tracing::info!(
            layer = %name,
            features = index.len(),
            read_ms = read.as_millis() as u64,
            index_ms = started.elapsed().saturating_sub(read).as_millis() as u64,
            "layer loaded"
        );
        Ok(Arc::new(index))
    }

    /// The store behind the twin.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn snapshot(&self) -> Arc<LayerMap> {
        self.sync_live_layers();
        self.layers
            .read()
            .map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }

    /// One layer's index.
    #[must_use]
    pub fn layer(&self, name: &str) -> Option<Arc<LayerIndex>> {
        self.snapshot().get(name).cloned()
    }

    /// Every layer, ordered by name.
    #[must_use]
    pub fn layers(&self) -> Vec<Arc<LayerIndex>> {
        self.snapshot().values().cloned().collect()
    }

    /// Names of layers as they change (imported, appended, dropped, reloaded).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn install(&self, index: Option<Arc<LayerIndex>>, name: &str) -> Result<()> {
        {
            let mut guard = self.layers.write().map_err(|_| poisoned())?;
            let mut map = (**guard).clone();
            match index {
                Some(i) => map.insert(name.to_owned(), i),
                None => map.remove(name),
            };
            *guard = Arc::new(map);
        }
        let _ = self.changes.send(name.to_owned());
        Ok(())
    }

    pub(crate) fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn install_live(&self, index: LayerIndex) -> Result<()> {
        let name = index.meta.name.clone();
        self.install(Some(Arc::new(index)), &name)
    }

    /// Imports a file into a layer: read and validate, write atomically, rebuild the index.
    /// On any error the layer, in the store and in the index, is as it was.
    pub async fn import(
        &self,
        req: ImportRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<LayerMeta> {
        if crate::live::LiveLayer::parse(&req.layer).is_some() {
            return Err(Error::Invalid(format!(
                "layer name {:?} is the twin's live layer; import under another name",
                req.layer
            )));
        }
        let _write = self.writes.lock().await;
        let imported =
            crate::import::import(self.store.as_ref(), req, Arc::clone(&progress)).await?;
        let index = match imported.features {
            Some(features)
                if !self.options.store_tiled.contains(&imported.meta.name)
                    && imported.meta.versions.is_empty() =>
            {
                let version = self.versions.fetch_add(1, Ordering::Relaxed);
                let m = imported.meta.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || LayerIndex::build(m, features, version))
                        .await
                        .map_err(|e| Error::Invalid(format!("index build failed: {e}")))?,
                )
            }
            _ => self.load_layer(imported.meta.clone()).await?,
        };
        self.install(Some(index), &imported.meta.name)?;
        Ok(imported.meta)
    }

    /// Removes a layer.
    pub async fn drop_layer(&self, name: &str) -> Result<()> {
        if crate::live::LiveLayer::parse(name).is_some() {
            return Err(Error::Invalid(format!(
                "layer {name} is the twin's live layer; it cannot be dropped"
            )));
        }
        let _write = self.writes.lock().await;
        if self.layer(name).is_none() {
            return Err(Error::UnknownLayer(name.to_owned()));
        }
        self.store.drop_layer(name).await?;
        self.install(None, name)
    }

    /// Reloads layers another process changed in the store; returns their names.
    pub async fn refresh(&self) -> Result<Vec<String>> {
        let _write = self.writes.lock().await;
        let metas = self.store.layers().await?;
        let current = self.snapshot();
        let mut changed = Vec::new();
        for meta in &metas {
            let stale = current
                .get(&meta.name)
                .is_none_or(|l| l.meta.updated_at != meta.updated_at);
            if stale {
                let index = self.load_layer(meta.clone()).await?;
                self.install(Some(index), &meta.name)?;
                changed.push(meta.name.clone());
            }
        }
        for name in current.keys() {
            if crate::live::LiveLayer::parse(name).is_none()
                && !metas.iter().any(|m| &m.name == name)
            {
                self.install(None, name)?;
                changed.push(name.clone());
            }
        }
        Ok(changed)
    }

    fn territory_layers(&self) -> Vec<Arc<LayerIndex>> {
        let snapshot = self.snapshot();
        Level::ALL
            .iter()
            .filter_map(|l| snapshot.get(l.layer()))
            .filter(|l| l.resident)
            .cloned()
            .collect()
    }

    fn cached_territory(&self, layers: &[Arc<LayerIndex>]) -> Option<Arc<TerritoryTree>> {
        let guard = self.territory.read().ok()?;
        let tree = guard.as_ref()?;
        let fresh = tree.versions.len() == layers.len()
            && tree
                .versions
                .iter()
                .zip(layers)
                .all(|((n, v), l)| *n == l.meta.name && *v == l.version);
        fresh.then(|| Arc::clone(tree))
    }

    /// The territory tree of the current territory layers, built on first use and again
    /// whenever one of them changes.
    pub async fn territory(&self) -> Result<Arc<TerritoryTree>> {
        let layers = self.territory_layers();
        if let Some(t) = self.cached_territory(&layers) {
            return Ok(t);
        }
        let _one_build = self.derived.lock().await;
        let layers = self.territory_layers();
        if let Some(t) = self.cached_territory(&layers) {
            return Ok(t);
        }
        if !layers.iter().any(|l| l.meta.name == Level::Grid.layer()) {
            return Err(Error::NotFound(
                "the twin has no grids layer, so no territory tree".into(),
            ));
        }
        let started = std::time::Instant::now();
        let tree = tokio::task::spawn_blocking(move || TerritoryTree::build(&layers))
            .await
            .map_err(|e| Error::Invalid(format!("territory build failed: {e}")))?;
        tracing::info!(
            units = tree.units().len(),
            grids = tree.grid_count(),
            ms = started.elapsed().as_millis() as u64,
            "territory tree built"
        );
        let tree = Arc::new(tree);
        *self.territory.write().map_err(|_| poisoned())? = Some(Arc::clone(&tree));
        Ok(tree)
    }

    /// The grid of every feature of a layer under a tree, computed on first use per version.
    pub async fn assignment(
        &self,
        index: &Arc<LayerIndex>,
        tree: &Arc<TerritoryTree>,
    ) -> Result<Arc<GridAssignment>> {
        // a view (desensitised points lie elsewhere) is assigned apart from its layer
        let key = format!("{}\u{0}{}", index.cache_name(), index.form.name());
        let cached = || {
            self.assignments
                .read()
                .ok()
                .and_then(|m| m.get(&key).cloned())
                .filter(|a| a.is_current(tree, index))
        };
        if let Some(a) = cached() {
            return Ok(a);
        }
        let _one_build = self.derived.lock().await;
        if let Some(a) = cached() {
            return Ok(a);
        }
        if !index.resident {
            return Err(Error::Invalid(format!(
                "layer {} is tiled by the store and not held in memory; it has no statistics",
                index.meta.name
            )));
        }
        let started = std::time::Instant::now();
        let (t, i) = (Arc::clone(tree), Arc::clone(index));
        let a = Arc::new(
            tokio::task::spawn_blocking(move || GridAssignment::compute(&t, &i))
                .await
                .map_err(|e| Error::Invalid(format!("grid assignment failed: {e}")))?,
        );
        tracing::info!(
            layer = %index.meta.name,
            features = index.len(),
            ms = started.elapsed().as_millis() as u64,
            "features assigned to grids"
        );
        let mut map = self.assignments.write().map_err(|_| poisoned())?;
        let layers = self.snapshot();
        map.retain(|key, _| {
            key.split(['\u{0}', '@'])
                .next()
                .is_some_and(|n| layers.contains_key(n))
        });
        map.insert(key, Arc::clone(&a));
        Ok(a)
    }

    /// Encodes one tile: layers held in memory from their indexes (on the blocking pool),
    /// layers the store tiles by the store. Layers below their minimum zoom contribute nothing.
    pub async fn tile(&self, req: &TileRequest<'_>) -> Result<TileOutput> {
        let snapshot = self.snapshot();
        let indexes: Vec<Arc<LayerIndex>> = req
            .layers
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let raw = snapshot
                    .get(n)
                    .cloned()
                    .ok_or_else(|| Error::UnknownLayer(n.clone()))?;
                let raw = self.layer_on(raw, req.at);
                match req.plans.get(k) {
                    Some(plan) => self.view_of(&raw, plan, Some(req.coord.z)),
                    None => Ok(raw),
                }
            })
            .collect::<Result<_>>()?;
        let budget = req.budget.split(indexes.len());
        let coord = req.coord;
        let rows_of = |k: usize| req.plans.get(k).and_then(|p| p.territory.clone());
        if let Some((_, i)) = indexes
            .iter()
            .enumerate()
            .find(|(k, i)| !i.resident && rows_of(*k).is_some())
        {
            return Err(Error::Invalid(format!(
                "layer {} is tiled by the store, which cannot narrow it to a territory",
                i.meta.name
            )));
        }
        let resident: Vec<(Arc<LayerIndex>, Rows)> = indexes
            .iter()
            .enumerate()
            .filter(|(_, i)| i.resident)
            .map(|(k, i)| (Arc::clone(i), rows_of(k)))
            .collect();
        let mut from_memory = if resident.is_empty() {
            Vec::new()
        } else {
            tokio::task::spawn_blocking(move || {
                resident
                    .iter()
                    .map(|(i, rows)| encode_layer_rows(i, coord, &budget, rows.as_ref()))
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::Invalid(format!("tile task failed: {e}")))??
        }
        .into_iter();
        let from_store = futures_util::future::try_join_all(
            indexes
                .iter()
                .filter(|i| !i.resident)
                .map(|i| self.store.tile_layer(&i.meta, coord, &budget)),
        )
        .await?;
        let mut from_store = from_store.into_iter();
        let mut layers = Vec::new();
        let mut stats = Vec::new();
        for index in &indexes {
            let out = if index.resident {
                from_memory.next().flatten()
            } else {
                from_store.next().flatten()
            };
            if let Some(out) = out {
                // the current version's tiles where something gave way, for its quality
                if index.meta.as_of.is_none() {
                    self.details.note(
                        &index.meta.name,
                        index.version & ((1 << 40) - 1),
                        coord,
                        &out.stats,
                    );
                }
                stats.push((index.meta.name.clone(), out.stats));
                if out.stats.written > 0 {
                    layers.push(out);
                }
            }
        }
        let bytes = if layers.is_empty() {
            Vec::new()
        } else {
            encode_tile(&layers)
        };
        Ok(TileOutput { bytes, stats })
    }
}

/// Encodes one layer of one tile from its index; `None` below the layer's minimum zoom or when
/// nothing touches the tile.
pub fn encode_layer(
    index: &LayerIndex,
    coord: TileCoord,
    budget: &TileBudget,
) -> Result<Option<EncodedLayer>> {
    encode_layer_rows(index, coord, budget, None)
}

/// Encodes one layer of one tile from its index, keeping only the features whose text at
/// `rows.0` starts with `rows.1` when given (a territory-scoped read plan).
pub fn encode_layer_rows(
    index: &LayerIndex,
    coord: TileCoord,
    budget: &TileBudget,
    rows: Option<&(usize, String)>,
) -> Result<Option<EncodedLayer>> {
    let meta = &index.meta;
    if coord.z < meta.minzoom {
        return Ok(None);
    }
    let bounds = coord.bounds();
    let pad = coord.span() * f64::from(TILE_BUFFER) / f64::from(TILE_EXTENT);
    let area = Rect::new(
        coord! { x: bounds.min().x - pad, y: bounds.min().y - pad },
        coord! { x: bounds.max().x + pad, y: bounds.max().y + pad },
    );
    let features: Vec<SourceFeature<'_>> = index
        .query(area)
        .filter(|f| rows.is_none_or(|r| crate::access::in_rows(&f.values, r)))
        .map(|f| SourceFeature {
            id: f.id as u64,
            geometry: &f.geometry,
            values: &f.values,
            size: f.size,
            anchor: f.anchor,
        })
        .collect();
    if features.is_empty() {
        return Ok(None);
    }
    let encoder = LayerEncoder {
        name: &meta.name,
        fields: meta.tile_columns(),
        extent: TILE_EXTENT,
        buffer: TILE_BUFFER,
        generalise: coord.z < meta.maxzoom,
    };
    Ok(Some(encoder.encode(coord, &features, budget)?))
}

fn poisoned() -> Error {
    Error::Invalid("layer table lock poisoned".into())
}
