//! The data bureau's records the twin holds in memory — grants and objections — loaded when
//! it opens and reloaded when another process (the command line) changes them, with what
//! follows from them: which features are disputed, and the notices for objectors.

use crate::grants::Grant;
use crate::live::Millis;
use crate::objections::Objection;
use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// The disputed data of one layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disputes {
    /// changes whenever the set does (part of the layer's views' versions)
    pub generation: u64,
    /// features with an open objection
    pub features: BTreeSet<i64>,
    /// whether the layer as a whole has one
    pub layer: bool,
}

/// Grants, objections and what follows from them.
#[derive(Debug)]
pub(crate) struct Records {
    grants: RwLock<Vec<Grant>>,
    objections: RwLock<Vec<Objection>>,
    disputes: RwLock<HashMap<String, std::sync::Arc<Disputes>>>,
    generation: AtomicU64,
    /// bumped by every change made here: a reload that began before one is dropped
    writes: AtomicU64,
    notices: broadcast::Sender<(String, std::sync::Arc<str>)>,
}

impl Default for Records {
    fn default() -> Self {
        Self {
            grants: RwLock::default(),
            objections: RwLock::default(),
            disputes: RwLock::default(),
            generation: AtomicU64::new(1),
            writes: AtomicU64::new(0),
            notices: broadcast::channel(256).0,
        }
    }
}

impl Records {
    pub(crate) fn grants(&self) -> Vec<Grant> {
        self.grants.read().map(|g| g.clone()).unwrap_or_default()
    }

    pub(crate) fn objections(&self) -> Vec<Objection> {
        self.objections
            .read()
            .map(|o| o.clone())
            .unwrap_or_default()
    }

    /// The grants in force for a layer at `now`.
    pub(crate) fn grants_in_force(&self, layer: &str, now: Millis) -> Vec<Grant> {
        self.grants
            .read()
            .map(|g| {
                g.iter()
                    .filter(|g| g.layer == layer && g.in_force(now))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn disputes(&self, layer: &str) -> std::sync::Arc<Disputes> {
        self.disputes
            .read()
            .ok()
            .and_then(|d| d.get(layer).cloned())
            .unwrap_or_default()
    }

    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    pub(crate) fn remember_grant(&self, g: Grant) {
        if let Ok(mut all) = self.grants.write() {
            // counted under the lock, so a reload cannot slip between count and change
            self.writes.fetch_add(1, Ordering::AcqRel);
            match all.iter_mut().find(|x| x.id == g.id) {
                Some(x) => *x = g,
                None => all.push(g),
            }
        }
    }

    pub(crate) fn remember_objection(&self, o: Objection) {
        if let Ok(mut all) = self.objections.write() {
            self.writes.fetch_add(1, Ordering::AcqRel);
            match all.iter_mut().find(|x| x.id == o.id) {
                Some(x) => *x = o,
                None => all.push(o),
            }
        }
        self.recount();
    }

    /// Replaces everything with what the store holds (another process may have changed it),
    /// unless this process changed something since the store was read (`since`, the count
    /// of changes then): the next reload will see it.
    pub(crate) fn replace(&self, grants: Vec<Grant>, objections: Vec<Objection>, since: u64) {
        let changed = {
            let (Ok(mut g), Ok(mut o)) = (self.grants.write(), self.objections.write()) else {
                return;
            };
            if self.writes() != since {
                return;
            }
            if *g != grants {
                *g = grants;
            }
            let changed = *o != objections;
            if changed {
                *o = objections;
            }
            changed
        };
        if changed {
            self.recount();
        }
    }

    /// Recomputes the disputed data; a layer whose set changed gets a new generation.
    fn recount(&self) {
        let mut next: HashMap<String, Disputes> = HashMap::new();
        for o in self.objections().iter().filter(|o| o.disputes()) {
            let d = next.entry(o.layer.clone()).or_default();
            match o.feature {
                Some(f) => {
                    d.features.insert(f);
                }
                None => d.layer = true,
            }
        }
        if let Ok(mut old) = self.disputes.write() {
            let mut layers: BTreeSet<String> = old.keys().cloned().collect();
            layers.extend(next.keys().cloned());
            for layer in layers {
                let before = old.get(&layer).cloned().unwrap_or_default();
                let mut now = next.remove(&layer).unwrap_or_default();
                if now.features == before.features && now.layer == before.layer {
                    continue;
                }
                now.generation = self.generation.fetch_add(1, Ordering::Relaxed);
                old.insert(layer, std::sync::Arc::new(now));
            }
        }
    }

    /// Tells a principal something on its feed.
    pub(crate) fn notify(&self, principal: &str, json: String) {
        let _ = self.notices.send((principal.to_owned(), json.into()));
    }

    pub(crate) fn notices(&self) -> broadcast::Receiver<(String, std::sync::Arc<str>)> {
        self.notices.subscribe()
    }
}

impl crate::City {
    /// Reloads grants and objections from the store (the command line may have changed
    /// them); a revoked grant is then refused on the next request.
    pub async fn reload_records(&self) -> crate::Result<()> {
        let since = self.governance.writes();
        let grants = crate::grants::load(self.store().as_ref()).await?;
        let objections = crate::objections::load(self.store().as_ref()).await?;
        self.governance.replace(grants, objections, since);
        Ok(())
    }

    /// The disputed data of a layer.
    #[must_use]
    pub fn disputes(&self, layer: &str) -> std::sync::Arc<Disputes> {
        self.governance.disputes(layer)
    }

    /// Notices for principals (an objection decided): `(principal id, JSON)`.
    #[must_use]
    pub fn notices(&self) -> broadcast::Receiver<(String, std::sync::Arc<str>)> {
        self.governance.notices()
    }
}
