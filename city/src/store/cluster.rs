//! The store as an instance of a cluster sees it: the primary for every write and every read
//! that must be current, a streaming replica (when there is one) for the heavy reads — layer
//! loads, store-encoded tiles, history — and a notice to every other instance after each
//! write they must take up at once (a layer, a grant or objection, a key or revocation).
//!
//! A replica is read only when it already shows what the primary shows: the same version of
//! the layer, the same last change. A client therefore never misses its own acknowledged
//! write, whichever instance it asks.

use super::{Bucket, ChangeQuery, Checkpoint, ObservationQuery, ObservationRow, Store, WriteMode};
use crate::Result;
use crate::audit::{AuditEntry, AuditQuery};
use crate::change::{Change, Millis};
use crate::cluster::{Lease, Notice};
use crate::keys::{ApiKey, Revocation};
use crate::layer::{Feature, LayerMeta};
use async_trait::async_trait;
use citytwin_tiles::{EncodedLayer, TileBudget, TileCoord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Tells the other instances of a cluster what changed in the store.
#[async_trait]
pub trait Announce: Send + Sync {
    /// Sends a notice; returns once it is on its way.
    async fn announce(&self, notice: Notice);
}

/// How long a read waits for the replica to catch up before it goes to the primary.
const REPLICA_WAIT: Duration = Duration::from_millis(200);

/// A store shared by the instances of a cluster.
pub struct ClusterStore {
    primary: Arc<dyn Store>,
    replica: Option<Arc<dyn Store>>,
    announce: Option<Arc<dyn Announce>>,
    /// the layer versions the replica showed when last asked, and when that was
    replica_layers: RwLock<(HashMap<String, String>, Option<Instant>)>,
    /// until when change reads skip the replica (it was found behind)
    behind_until: RwLock<Option<Instant>>,
    /// heavy reads answered by the replica and by the primary
    from_replica: AtomicU64,
    from_primary: AtomicU64,
}

/// How many heavy reads each side answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// by the replica
    pub replica: u64,
    /// by the primary (no replica, or it did not yet show the last write)
    pub primary: u64,
}

impl ClusterStore {
    /// The primary store, with a replica for heavy reads and the instances to tell.
    #[must_use]
    pub fn new(
        primary: Arc<dyn Store>,
        replica: Option<Arc<dyn Store>>,
        announce: Option<Arc<dyn Announce>>,
    ) -> Self {
        Self {
            primary,
            replica,
            announce,
            replica_layers: RwLock::new((HashMap::new(), None)),
            behind_until: RwLock::new(None),
            from_replica: AtomicU64::new(0),
            from_primary: AtomicU64::new(0),
        }
    }

    /// How many heavy reads each side answered so far.
    #[must_use]
    pub fn reads(&self) -> Reads {
        Reads {
            replica: self.from_replica.load(Ordering::Relaxed),
            primary: self.from_primary.load(Ordering::Relaxed),
        }
    }

    /// The store a heavy read goes to, counted.
    fn pick<'a>(&'a self, replica: Option<&'a dyn Store>) -> &'a dyn Store {
        match replica {
            Some(r) => {
                self.from_replica.fetch_add(1, Ordering::Relaxed);
                r
            }
            None => {
                self.from_primary.fetch_add(1, Ordering::Relaxed);
                self.primary.as_ref()
            }
        }
    }

    async fn tell(&self, notice: Notice) {
        if let Some(a) = &self.announce {
            a.announce(notice).await;
        }
    }

    /// The replica, when it shows this version of the layer (asked again at most every
    /// 200 ms while it does not).
    /// Where a layer's rows are read: the replica when it shows the primary's version of the
    /// layer, else the primary.
    async fn reader_of(&self, layer: &str) -> Result<&dyn Store> {
        let version = self
            .primary
            .layers()
            .await?
            .into_iter()
            .find(|m| m.name == layer)
            .map(|m| m.updated_at)
            .unwrap_or_default();
        let replica = self.replica_for_layer(layer, &version).await;
        Ok(self.pick(replica))
    }

    async fn replica_for_layer(&self, name: &str, updated_at: &str) -> Option<&dyn Store> {
        let replica = self.replica.as_deref()?;
        let shows = |m: &HashMap<String, String>| m.get(name).is_some_and(|v| v == updated_at);
        let asked = {
            let guard = self
                .replica_layers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if shows(&guard.0) {
                return Some(replica);
            }
            guard.1
        };
        if asked.is_some_and(|t| t.elapsed() < REPLICA_WAIT) {
            return None;
        }
        let metas = replica.layers().await.ok()?;
        let seen: HashMap<String, String> =
            metas.into_iter().map(|m| (m.name, m.updated_at)).collect();
        let ok = shows(&seen);
        *self
            .replica_layers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (seen, Some(Instant::now()));
        ok.then_some(replica)
    }

    /// The replica, when it holds every change the primary holds now (waiting up to 200 ms
    /// for it to catch up; a replica found behind is not asked again for 200 ms).
    async fn replica_for_changes(&self) -> Option<&dyn Store> {
        let replica = self.replica.as_deref()?;
        let skip = self
            .behind_until
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t);
        if skip {
            return None;
        }
        let need = self.primary.last_change().await.ok()?;
        let deadline = Instant::now() + REPLICA_WAIT;
        loop {
            if replica.last_change().await.ok()? >= need {
                return Some(replica);
            }
            if Instant::now() >= deadline {
                tracing::debug!(need, "the replica is behind; reading the primary");
                *self
                    .behind_until
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + REPLICA_WAIT);
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl Store for ClusterStore {
    fn describe(&self) -> String {
        match &self.replica {
            Some(r) => format!("{} (reads from {})", self.primary.describe(), r.describe()),
            None => self.primary.describe(),
        }
    }

    async fn layers(&self) -> Result<Vec<LayerMeta>> {
        self.primary.layers().await
    }

    async fn read_features(&self, layer: &str) -> Result<Vec<Feature>> {
        self.reader_of(layer).await?.read_features(layer).await
    }

    async fn write_layer(
        &self,
        meta: &LayerMeta,
        features: &[Feature],
        mode: WriteMode,
    ) -> Result<LayerMeta> {
        let stored = self.primary.write_layer(meta, features, mode).await?;
        self.tell(Notice::Layers).await;
        Ok(stored)
    }

    async fn write_version(
        &self,
        meta: &LayerMeta,
        version: &crate::versions::VersionWrite<'_>,
    ) -> Result<LayerMeta> {
        let stored = self.primary.write_version(meta, version).await?;
        self.tell(Notice::Layers).await;
        Ok(stored)
    }

    async fn read_history(&self, layer: &str) -> Result<crate::versions::StoredHistory> {
        self.reader_of(layer).await?.read_history(layer).await
    }

    async fn drop_layer(&self, layer: &str) -> Result<()> {
        self.primary.drop_layer(layer).await?;
        self.tell(Notice::Layers).await;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.primary.ping().await?;
        if let Some(r) = &self.replica {
            r.ping().await?;
        }
        Ok(())
    }

    fn encodes_tiles(&self) -> bool {
        self.primary.encodes_tiles()
    }

    async fn tile_layer(
        &self,
        meta: &LayerMeta,
        coord: TileCoord,
        budget: &TileBudget,
    ) -> Result<Option<EncodedLayer>> {
        let replica = self.replica_for_layer(&meta.name, &meta.updated_at).await;
        self.pick(replica).tile_layer(meta, coord, budget).await
    }

    async fn append_changes(&self, changes: &[Arc<Change>]) -> Result<()> {
        self.primary.append_changes(changes).await
    }

    async fn read_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        let replica = self.replica_for_changes().await;
        self.pick(replica).read_changes(q).await
    }

    async fn last_change(&self) -> Result<u64> {
        self.primary.last_change().await
    }

    async fn live_at(&self, from: Option<Checkpoint>, until: Millis) -> Result<Vec<Change>> {
        // checkpoints are not changes: a replica caught up with the log may not hold the
        // newest one yet, and a read from a checkpoint is short anyway
        if from.is_some() {
            return self.primary.live_at(from, until).await;
        }
        let replica = self.replica_for_changes().await;
        self.pick(replica).live_at(from, until).await
    }

    async fn checkpoint_before(&self, at: Millis) -> Result<Option<Checkpoint>> {
        self.primary.checkpoint_before(at).await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.primary.checkpoints().await
    }

    async fn put_checkpoint(&self, mark: Checkpoint, from: Option<Checkpoint>) -> Result<()> {
        self.primary.put_checkpoint(mark, from).await
    }

    async fn drop_checkpoints(&self, at: &[Millis]) -> Result<()> {
        self.primary.drop_checkpoints(at).await
    }

    async fn oldest_reading(&self) -> Result<Option<Millis>> {
        self.primary.oldest_reading().await
    }

    async fn downsample_readings(&self, from: Millis, to: Millis, step: Millis) -> Result<u64> {
        self.primary.downsample_readings(from, to, step).await
    }

    async fn observations(&self, q: &ObservationQuery) -> Result<Vec<ObservationRow>> {
        let replica = self.replica_for_changes().await;
        self.pick(replica).observations(q).await
    }

    async fn count_observations(&self, q: &ObservationQuery) -> Result<u64> {
        let replica = self.replica_for_changes().await;
        self.pick(replica).count_observations(q).await
    }

    async fn reading_history(
        &self,
        sensor: &str,
        from: Millis,
        to: Millis,
        interval: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<Bucket>> {
        let replica = self.replica_for_changes().await;
        self.pick(replica)
            .reading_history(sensor, from, to, interval, limit)
            .await
    }

    async fn set_layer_meta(&self, meta: &LayerMeta) -> Result<LayerMeta> {
        let stored = self.primary.set_layer_meta(meta).await?;
        self.tell(Notice::Layers).await;
        Ok(stored)
    }

    async fn keys(&self) -> Result<Vec<ApiKey>> {
        self.primary.keys().await
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>> {
        self.primary.key(id).await
    }

    async fn put_key(&self, key: &ApiKey) -> Result<()> {
        self.primary.put_key(key).await?;
        self.tell(Notice::Credentials).await;
        Ok(())
    }

    async fn records(&self, kind: &str) -> Result<Vec<String>> {
        self.primary.records(kind).await
    }

    async fn put_record(&self, kind: &str, id: &str, at: i64, body: &str) -> Result<()> {
        self.primary.put_record(kind, id, at, body).await?;
        self.tell(Notice::Records).await;
        Ok(())
    }

    async fn revocations(&self, after: u64) -> Result<Vec<Revocation>> {
        self.primary.revocations(after).await
    }

    async fn add_revocation(&self, r: &Revocation) -> Result<()> {
        self.primary.add_revocation(r).await?;
        self.tell(Notice::Credentials).await;
        Ok(())
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        self.primary.append_audit(entries).await
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        self.primary.audit_head().await
    }

    async fn read_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.primary.read_audit(q).await
    }

    async fn prune_audit(&self, before: Millis) -> Result<u64> {
        self.primary.prune_audit(before).await
    }

    async fn close(&self) {
        self.primary.close().await;
        if let Some(r) = &self.replica {
            r.close().await;
        }
    }

    async fn lead(&self) -> Result<Option<Box<dyn Lease>>> {
        self.primary.lead().await
    }
}
