//! The per-layer spatial index: features pre-projected to Web Mercator in an R-tree.

use crate::layer::{Feature, LayerMeta};
use crate::temporal::{self, TimeInterval};
use citytwin_tiles::Value;
use citytwin_tiles::proj::lonlat_to_mercator;
use geo::{Area, BoundingRect, Euclidean, Geometry, Length, MapCoords, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, Envelope, RTree, RTreeObject};

/// A feature as the index keeps it.
#[derive(Debug, Clone)]
pub struct IndexedFeature {
    /// feature id
    pub id: i64,
    /// geometry in Web Mercator metres
    pub geometry: Geometry<f64>,
    /// values aligned with the layer's fields
    pub values: Box<[Value]>,
    /// area (polygons), length (lines) or a stable pseudo-random rank (points), for thinning
    pub size: f64,
    /// a vertex of the feature, where a merged pixel stands for it at low zoom
    pub anchor: geo::Coord<f64>,
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// One layer's features and their R-tree, immutable once built (a change builds a new one).
#[derive(Debug)]
pub struct LayerIndex {
    /// the layer's metadata as stored
    pub meta: LayerMeta,
    features: Vec<IndexedFeature>,
    tree: RTree<Entry>,
    /// increases every time the layer changes; part of tile cache keys and ETags
    pub version: u64,
    /// whether the features are here; `false` for layers too large for memory, which the
    /// store tiles itself (the index then holds only the metadata)
    pub resident: bool,
    /// (id, position) sorted by id, built on the first lookup by id
    ids: std::sync::OnceLock<Vec<(i64, u32)>>,
    /// the span of the features' times, found on first use
    time_extent: std::sync::OnceLock<Option<TimeInterval>>,
    /// what these features are of the layer: the layer itself, or a view derived from it for
    /// readers without the right to the raw data
    pub form: crate::access::Form,
    /// a versioned layer's past rows (current index only; `None` for layers without versions
    /// and for views)
    pub history: Option<std::sync::Arc<crate::versions::History>>,
    /// for the layer as of a past date: the version of the current index it was built from
    pub parent: u64,
}

/// A feature moved to Web Mercator, with its rank and anchor.
pub(crate) fn project(f: Feature) -> IndexedFeature {
    let geometry = f.geometry.map_coords(|c| {
        let (x, y) = lonlat_to_mercator(c.x, c.y);
        geo::Coord { x, y }
    });
    let size = match &geometry {
        Geometry::Polygon(_) | Geometry::MultiPolygon(_) => geometry.unsigned_area(),
        Geometry::LineString(l) => Euclidean.length(l),
        Geometry::MultiLineString(l) => Euclidean.length(l),
        _ => point_rank(f.id),
    };
    let anchor = geo::CoordsIter::coords_iter(&geometry)
        .next()
        .unwrap_or_default();
    IndexedFeature {
        id: f.id,
        anchor,
        geometry,
        values: f.values.into_boxed_slice(),
        size,
    }
}

/// Z-order (Morton) code of a WGS84 position at 2^-16 of the world per axis.
fn morton(lon: f64, lat: f64) -> u64 {
    let q = |v: f64, lo: f64, span: f64| (((v - lo) / span).clamp(0.0, 1.0) * 65_535.0) as u64;
    let spread = |mut v: u64| {
        v = (v | (v << 8)) & 0x00FF_00FF;
        v = (v | (v << 4)) & 0x0F0F_0F0F;
        v = (v | (v << 2)) & 0x3333_3333;
        (v | (v << 1)) & 0x5555_5555
    };
    spread(q(lon, -180.0, 360.0)) | (spread(q(lat, -90.0, 180.0)) << 1)
}

/// A stable pseudo-random rank for a point id, so thinning keeps an even sample.
fn point_rank(id: i64) -> f64 {
    let mut x = id as u64 ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x >> 11) as f64
}

impl LayerIndex {
    /// Projects WGS84 features to Web Mercator and bulk-loads the tree.
    #[must_use]
    pub fn build(meta: LayerMeta, mut features: Vec<Feature>, version: u64) -> Self {
        // Neighbours in space become neighbours in memory: a tile's features are then read
        // from a few pages instead of all over the heap (projection below allocates the new
        // geometries in this order too).
        features.sort_by_cached_key(|f| {
            geo::CoordsIter::coords_iter(&f.geometry)
                .next()
                .map_or(0, |c| morton(c.x, c.y))
        });
        // projecting is independent per feature: large layers use every core
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let chunk = features.len().div_ceil(threads).max(50_000);
        let features: Vec<IndexedFeature> = if features.len() > chunk {
            let mut parts: Vec<Vec<Feature>> = Vec::new();
            let mut rest = features;
            while rest.len() > chunk {
                let tail = rest.split_off(chunk);
                parts.push(rest);
                rest = tail;
            }
            parts.push(rest);
            std::thread::scope(|s| {
                let handles: Vec<_> = parts
                    .into_iter()
                    .map(|p| s.spawn(move || p.into_iter().map(project).collect::<Vec<_>>()))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        } else {
            features.into_iter().map(project).collect()
        };
        Self::from_indexed(meta, features, version, crate::access::Form::Raw)
    }

    /// Bulk-loads the tree over features already in Web Mercator (a view derived from
    /// another index).
    #[must_use]
    pub fn from_indexed(
        meta: LayerMeta,
        features: Vec<IndexedFeature>,
        version: u64,
        form: crate::access::Form,
    ) -> Self {
        let entries: Vec<Entry> = features
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let r = f.geometry.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i as u32,
                ))
            })
            .collect();
        Self {
            meta,
            features,
            tree: RTree::bulk_load(entries),
            version,
            resident: true,
            ids: std::sync::OnceLock::new(),
            time_extent: std::sync::OnceLock::new(),
            form,

            history: None,
            parent: 0,
        }
    }

    /// A layer whose features stay in the store: metadata only.
    #[must_use]
    pub fn in_store(meta: LayerMeta, version: u64) -> Self {
        Self {
            meta,
            features: Vec::new(),
            tree: RTree::new(),
            version,
            resident: false,
            ids: std::sync::OnceLock::new(),
            time_extent: std::sync::OnceLock::new(),
            form: crate::access::Form::Raw,

            history: None,
            parent: 0,
        }
    }

    /// Features of the layer, held here or (for layers tiled by the store) in the store.
    #[must_use]
    pub fn feature_count(&self) -> u64 {
        if self.resident {
            self.features.len() as u64
        } else {
            self.meta.feature_count
        }
    }

    /// Features whose bounding box touches `area` (Web Mercator).
    pub fn query(&self, area: Rect<f64>) -> impl Iterator<Item = &IndexedFeature> {
        let env = AABB::from_corners([area.min().x, area.min().y], [area.max().x, area.max().y]);
        self.tree
            .locate_in_envelope_intersecting(&env)
            .map(|e| &self.features[e.data as usize])
    }

    /// Features whose bounding box touches an envelope (Web Mercator), in the R-tree's order
    /// (fixed for one version of the layer), each with whether its box lies inside `inside`.
    pub fn query_envelope<'a>(
        &'a self,
        env: &AABB<[f64; 2]>,
        inside: Option<AABB<[f64; 2]>>,
    ) -> impl Iterator<Item = (&'a IndexedFeature, bool)> {
        self.tree
            .locate_in_envelope_intersecting(env)
            .map(move |e| {
                let contained = inside.is_some_and(|i| i.contains_envelope(&e.geom().envelope()));
                (&self.features[e.data as usize], contained)
            })
    }

    /// Features by increasing distance of their bounding box from a point, with the squared
    /// distance (Web Mercator).
    pub fn nearest_by_envelope(
        &self,
        point: [f64; 2],
    ) -> impl Iterator<Item = (&IndexedFeature, f64)> {
        self.tree
            .nearest_neighbor_iter_with_distance_2(&point)
            .map(|(e, d2)| (&self.features[e.data as usize], d2))
    }

    /// Every feature, in spatial (Z-order) order.
    #[must_use]
    pub fn features(&self) -> &[IndexedFeature] {
        &self.features
    }

    /// From the earliest to the latest time of the features, when the layer has a time field
    /// and any feature a readable time.
    pub fn time_extent(&self) -> Option<TimeInterval> {
        *self.time_extent.get_or_init(|| {
            let i = self.meta.time_index().ok().flatten()?;
            self.features
                .iter()
                .filter_map(|f| temporal::of_value(&f.values[i]))
                .reduce(|a, b| TimeInterval {
                    start: a.start.min(b.start),
                    end: a.end.max(b.end),
                })
        })
    }

    /// A feature by id.
    #[must_use]
    pub fn by_id(&self, id: i64) -> Option<&IndexedFeature> {
        let ids = self.ids.get_or_init(|| {
            let mut v: Vec<(i64, u32)> = self
                .features
                .iter()
                .enumerate()
                .map(|(i, f)| (f.id, i as u32))
                .collect();
            v.sort_unstable();
            v
        });
        let at = ids.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        Some(&self.features[ids[at].1 as usize])
    }

    /// The position in [`LayerIndex::features`] of a feature borrowed from this index.
    #[must_use]
    pub fn position_of(&self, f: &IndexedFeature) -> Option<usize> {
        let size = std::mem::size_of::<IndexedFeature>();
        let start = self.features.as_ptr() as usize;
        let at = std::ptr::from_ref(f) as usize;
        let pos = at.checked_sub(start)? / size;
        (pos < self.features.len() && start + pos * size == at).then_some(pos)
    }

    /// The name caches of views and aggregates keep this index under: the layer's, with the
    /// date of a past version.
    #[must_use]
    pub fn cache_name(&self) -> String {
        match &self.meta.as_of {
            Some(d) => format!("{}@{d}", self.meta.name),
            None => self.meta.name.clone(),
        }
    }

    /// Number of features.
    #[must_use]
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether the layer is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Largest feature id, for appending.
    #[must_use]
    pub fn max_id(&self) -> i64 {
        self.features.iter().map(|f| f.id).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::GeometryKind;
    use geo::{Point, coord};

    #[test]
    fn finds_points_in_a_box_and_not_outside() {
        let feats = (0..100)
            .map(|i| Feature {
                id: i,
                geometry: Point::new(118.0 + i as f64 * 0.01, 32.0).into(),
                values: vec![],
            })
            .collect();
        let idx = LayerIndex::build(LayerMeta::new("p", GeometryKind::Point), feats, 1);
        let (x0, y0) = lonlat_to_mercator(118.095, 31.9);
        let (x1, y1) = lonlat_to_mercator(118.205, 32.1);
        let hits: Vec<i64> = {
            let mut v: Vec<i64> = idx
                .query(Rect::new(coord! {x: x0, y: y0}, coord! {x: x1, y: y1}))
                .map(|f| f.id)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(hits, (10..=20).collect::<Vec<_>>());
        assert_eq!(idx.max_id(), 99);
    }
}
