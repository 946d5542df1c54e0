//! What each reader is handed of a layer, by its read plan's form: the layer itself, its
//! desensitised view, or its aggregates. Views are built on first use per layer version and
//! kept beside the layer; a channel never sees the raw index of a layer its reader may not
//! see raw.

use crate::access::{Form, ReadPlan};
use crate::index::LayerIndex;
use crate::invisible::{H3Aggregates, TerritoryAggregates};
use crate::territory::TerritoryTree;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The H3 resolution a view of aggregates is drawn with where no zoom says otherwise
/// (renders, feature listings): cells of about 5 km².
pub const DEFAULT_RESOLUTION: u8 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ViewKind {
    /// the layer with its disputed features marked, of this disputes generation
    Marked(u64),
    /// desensitised (and marked)
    Desensitised(u64),
    /// desensitised as a grant allows (and marked)
    Granted(String, u64),
    /// aggregate cells of a resolution
    Cells(u8),
}

/// The views and aggregates of the twin's layers.
#[derive(Debug, Default)]
pub(crate) struct Views {
    layers: RwLock<HashMap<(String, ViewKind), Arc<LayerIndex>>>,
    h3: RwLock<HashMap<String, Arc<H3Aggregates>>>,
    units: RwLock<HashMap<String, Arc<TerritoryAggregates>>>,
    /// one build of a view at a time (a view of cells computes the aggregates under
    /// `count`, never under this one)
    build: std::sync::Mutex<()>,
    /// one count of aggregates at a time
    count: std::sync::Mutex<()>,
}

fn cached<K: std::hash::Hash + Eq, V: Clone>(
    map: &RwLock<HashMap<K, V>>,
    key: &K,
    current: impl Fn(&V) -> bool,
) -> Option<V> {
    map.read()
        .ok()
        .and_then(|m| m.get(key).cloned())
        .filter(|v| current(v))
}

impl Views {
    fn h3(&self, raw: &Arc<LayerIndex>) -> Arc<H3Aggregates> {
        let current = |a: &Arc<H3Aggregates>| a.layer_version == raw.version;
        if let Some(a) = cached(&self.h3, &raw.cache_name(), current) {
            return a;
        }
        let _one = self.count.lock();
        if let Some(a) = cached(&self.h3, &raw.cache_name(), current) {
            return a;
        }
        let a = Arc::new(H3Aggregates::compute(raw));
        if let Ok(mut m) = self.h3.write() {
            m.insert(raw.cache_name(), Arc::clone(&a));
        }
        a
    }

    fn view(
        &self,
        raw: &Arc<LayerIndex>,
        kind: ViewKind,
        build: impl FnOnce() -> LayerIndex,
    ) -> Arc<LayerIndex> {
        let name = raw.cache_name();
        let key = (name.clone(), kind);
        let version = raw.version;
        // a marked view carries the disputes generation above bit 40
        let current = |v: &Arc<LayerIndex>| v.version & ((1 << 40) - 1) == version;
        if let Some(v) = cached(&self.layers, &key, current) {
            return v;
        }
        let _one = self.build.lock();
        if let Some(v) = cached(&self.layers, &key, current) {
            return v;
        }
        let v = Arc::new(build());
        if let Ok(mut m) = self.layers.write() {
            // views of older versions go
            m.retain(|(n, _), old| *n != name || current(old));
            m.insert(key, Arc::clone(&v));
        }
        v
    }
}

/// Adds a `disputed` field (true on features with an open objection) to a view.
fn mark(
    index: &LayerIndex,
    disputed: &std::collections::BTreeSet<i64>,
    generation: u64,
) -> LayerIndex {
    let mut meta = index.meta.clone();
    meta.fields.push(crate::Field {
        name: "disputed".into(),
        kind: crate::FieldKind::Boolean,
    });
    if let Some(t) = meta.tile_fields.as_mut() {
        t.push("disputed".into());
    }
    let features = index
        .features()
        .iter()
        .map(|f| {
            let mut values = f.values.to_vec();
            values.push(if disputed.contains(&f.id) {
                citytwin_tiles::Value::Bool(true)
            } else {
                citytwin_tiles::Value::Null
            });
            crate::index::IndexedFeature {
                values: values.into_boxed_slice(),
                ..f.clone()
            }
        })
        .collect();
    LayerIndex::from_indexed(
        meta,
        features,
        marked_version(index.version, generation),
        index.form,
    )
}

/// A view's version: its layer's, with the disputes generation in the high bits, so caches
/// keyed by version see a new mark.
fn marked_version(version: u64, generation: u64) -> u64 {
    if generation == 0 {
        version
    } else {
        version | (generation << 40)
    }
}

impl crate::City {
    /// What a reader with this plan is handed of a layer: the layer itself, its desensitised
    /// view, or (aggregates only) its H3 cells at the resolution for `zoom` (a default one
    /// without). A layer tiled by the store has no views: only its raw form is served, to its
    /// owner.
    pub(crate) fn view_of(
        &self,
        raw: &Arc<LayerIndex>,
        plan: &ReadPlan,
        zoom: Option<u8>,
    ) -> Result<Arc<LayerIndex>> {
        if plan.form != Form::Raw && !raw.resident {
            return Err(Error::Invalid(format!(
                "layer {} is tiled by the store and has no {} form; hold it in memory to serve it to readers without the right to its raw data",
                raw.meta.name,
                plan.form.name()
            )));
        }
        let disputes = self.governance.disputes(&raw.meta.name);
        let generation = if disputes.features.is_empty() || !raw.resident {
            0
        } else {
            disputes.generation
        };
        let marked = |v: LayerIndex| {
            if generation == 0 {
                v
            } else {
                mark(&v, &disputes.features, generation)
            }
        };
        // the entry a view reads (only views need it: the raw path clones nothing)
        let class = || {
            raw.meta.classification.clone().unwrap_or_else(|| {
                crate::catalog::Classification::new(
                    "none",
                    crate::catalog::ShareClass::NotShared,
                    crate::catalog::OpenClass::NotOpen,
                    4,
                )
            })
        };
        Ok(match (plan.form, &plan.grant) {
            (Form::Raw, _) if generation == 0 => Arc::clone(raw),
            (Form::Raw, _) => self.views.view(raw, ViewKind::Marked(generation), || {
                marked(crate::desensitise::view_as(
                    raw,
                    &std::collections::BTreeMap::default(),
                    None,
                    None,
                ))
            }),
            (Form::Desensitised, None) => {
                self.views
                    .view(raw, ViewKind::Desensitised(generation), || {
                        marked(crate::desensitise::view(raw, &class()))
                    })
            }
            (Form::Desensitised, Some(id)) => {
                let grant = self
                    .governance
                    .grants()
                    .into_iter()
                    .find(|g| &g.id == id)
                    .ok_or_else(|| Error::UnknownLayer(raw.meta.name.clone()))?;
                self.views
                    .view(raw, ViewKind::Granted(id.clone(), generation), || {
                        // personal fields the grant names are shown as they are; fields it
                        // does not name are left out
                        let class = class();
                        let mut masks = class.personal.clone();
                        if let Some(fields) = &grant.fields {
                            masks.retain(|f, _| !fields.contains(f));
                        }
                        marked(crate::desensitise::view_as(
                            raw,
                            &masks,
                            class.precision_m,
                            grant.fields.as_deref(),
                        ))
                    })
            }
            (Form::Aggregate, _) => {
                let r = zoom.map_or(DEFAULT_RESOLUTION, crate::invisible::resolution_for_zoom);
                // counted before the view's build takes its lock
                let counts = self.views.h3(raw);
                self.views.view(raw, ViewKind::Cells(r), || {
                    crate::invisible::view(&raw.meta, &counts, r)
                })
            }
        })
    }

    /// A JSON answer about a layer's things (live events, sensors, units; changes of the
    /// feed) as a reader with this plan sees it: desensitised when the plan says so. An
    /// answer for a reader with no plan (`None`: it may act on the thing but not read the
    /// layer) is desensitised too.
    #[must_use]
    pub fn shown_json(
        &self,
        layer: &str,
        plan: Option<&ReadPlan>,
        mut v: serde_json::Value,
    ) -> serde_json::Value {
        if plan.is_some_and(|p| p.form == Form::Raw) {
            return v;
        }
        if let Some(c) = self
            .layer(layer)
            .and_then(|l| l.meta.classification.clone())
            && c.desensitises()
        {
            crate::desensitise::mask_json(&mut v, &c);
        }
        v
    }

    /// A level-3 layer's suppressed counts on H3 cells, for a reader with an aggregate plan.
    pub fn cell_aggregates(&self, plan: &ReadPlan) -> Result<Arc<H3Aggregates>> {
        let raw = self.aggregated_layer(plan)?;
        Ok(self.views.h3(&raw))
    }

    /// A level-3 layer's suppressed counts on every unit of the territory tree, for a reader
    /// with an aggregate plan.
    pub async fn unit_aggregates(
        &self,
        plan: &ReadPlan,
        tree: &Arc<TerritoryTree>,
    ) -> Result<Arc<TerritoryAggregates>> {
        let raw = self.aggregated_layer(plan)?;
        let current = |a: &Arc<TerritoryAggregates>| a.is_current(tree, &raw);
        if let Some(a) = cached(&self.views.units, &raw.meta.name, current) {
            return Ok(a);
        }
        let assignment = self.assignment(&raw, tree).await?;
        let (t, r) = (Arc::clone(tree), Arc::clone(&raw));
        let a = Arc::new(
            tokio::task::spawn_blocking(move || TerritoryAggregates::compute(&t, &r, &assignment))
                .await
                .map_err(|e| Error::Invalid(format!("aggregation failed: {e}")))?,
        );
        if let Ok(mut m) = self.views.units.write() {
            m.insert(raw.meta.name.clone(), Arc::clone(&a));
        }
        Ok(a)
    }

    fn aggregated_layer(&self, plan: &ReadPlan) -> Result<Arc<LayerIndex>> {
        if plan.form != Form::Aggregate {
            return Err(Error::Invalid(format!(
                "layer {} is not served as aggregates to this reader",
                plan.layer
            )));
        }
        let raw = self
            .layer(&plan.layer)
            .ok_or_else(|| Error::UnknownLayer(plan.layer.clone()))?;
        if !raw.resident {
            return Err(Error::Invalid(format!(
                "layer {} is tiled by the store and has no aggregates",
                plan.layer
            )));
        }
        Ok(raw)
    }
}
