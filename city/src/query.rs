//! Feature queries over a layer's index: items by bbox, time window and filter with paging;
//! the k nearest features to a point; features within a distance; features intersecting a
//! geometry. Index first (R-tree on bounding boxes), exact geometry tests after.
//!
//! Every query runs under [`Limits`]: a cap on the features returned and a deadline checked as
//! it scans, so no request can hold a core for long.

use crate::filter::Filter;
use crate::index::{IndexedFeature, LayerIndex};
pub use crate::layer::{check_point, to_mercator};
use crate::temporal::{self, TimeInterval};
use crate::{Error, Result};
use citytwin_tiles::proj::{haversine_m, lonlat_to_mercator, mercator_to_lonlat};
use geo::{BoundingRect, ClosestPoint, Coord, Geometry, Intersects, Point, Rect};
use rstar::AABB;
use std::time::{Duration, Instant};

/// Caps on every query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// most features one response carries
    pub max_features: usize,
    /// longest a query may scan
    pub timeout: Duration,
    /// most points in one batch locate
    pub max_points: usize,
    /// most cells in one aggregation
    pub max_cells: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_features: 10_000,
            timeout: Duration::from_secs(5),
            max_points: 10_000,
            max_cells: 100_000,
        }
    }
}

/// A deadline checked every few thousand steps.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    steps: u32,
}

impl Deadline {
    /// A deadline `timeout` from now.
    #[must_use]
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            steps: 0,
        }
    }

    /// Errs once the deadline has passed (checked every 4096 calls).
    pub fn check(&mut self) -> Result<()> {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(4096) && Instant::now() > self.at {
            return Err(Error::TooExpensive(
                "the query ran past its time limit; narrow it with bbox, filter or datetime".into(),
            ));
        }
        Ok(())
    }
}

/// A WGS84 bounding box `[west, south, east, north]` as Web Mercator.
pub fn mercator_rect(b: [f64; 4]) -> Result<Rect<f64>> {
    let [w, s, e, n] = b;
    if !b.iter().all(|v| v.is_finite()) {
        return Err(Error::Invalid("bbox values must be numbers".into()));
    }
    if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
        return Err(Error::Invalid(
            "bbox longitudes must be within -180..180".into(),
        ));
    }
    if !(-90.0..=90.0).contains(&s) || !(-90.0..=90.0).contains(&n) {
        return Err(Error::Invalid(
            "bbox latitudes must be within -90..90".into(),
        ));
    }
    if w > e || s > n {
        return Err(Error::Invalid(format!(
            "bbox {w},{s},{e},{n} is inverted: west must not exceed east nor south north"
        )));
    }
    let clamp = |v: f64| v.clamp(-85.051_128, 85.051_128);
    let (x0, y0) = lonlat_to_mercator(w, clamp(s));
    let (x1, y1) = lonlat_to_mercator(e, clamp(n));
    Ok(Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 }))
}

fn envelope(r: &Rect<f64>) -> AABB<[f64; 2]> {
    AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y])
}

fn overlap(a: Rect<f64>, b: Rect<f64>) -> Option<Rect<f64>> {
    let min_x = a.min().x.max(b.min().x);
    let min_y = a.min().y.max(b.min().y);
    let max_x = a.max().x.min(b.max().x);
    let max_y = a.max().y.min(b.max().y);
    (min_x <= max_x && min_y <= max_y)
        .then(|| Rect::new(Coord { x: min_x, y: min_y }, Coord { x: max_x, y: max_y }))
}

/// Where a selection's matches can be (Web Mercator).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Area {
    /// anywhere
    Everywhere,
    /// nowhere: the bbox and the filter's area do not meet
    Nowhere,
    /// inside this box
    Within(Rect<f64>),
}

/// What to select from a layer.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// features intersecting this Web Mercator box
    pub bbox: Option<Rect<f64>>,
    /// features whose time intersects this window
    pub datetime: Option<TimeInterval>,
    /// features the filter is true for
    pub filter: Option<Filter>,
    /// only features whose territorial code (text in this field) starts with this code: a
    /// territory-scoped reader's read plan
    pub rows: Option<(usize, String)>,
}

impl Selection {
    /// Whether it selects every feature.
    #[must_use]
    pub fn is_everything(&self) -> bool {
        self.bbox.is_none()
            && self.datetime.is_none()
            && self.filter.is_none()
            && self.rows.is_none()
    }

    /// Visits the matching features in a stable order (the index's for a full scan, the
    /// R-tree's for an area; both fixed for one version of the layer), stopping when `visit`
    /// returns false.
    pub fn scan<'a>(
        &self,
        index: &'a LayerIndex,
        deadline: &mut Deadline,
        mut visit: impl FnMut(&'a IndexedFeature) -> bool,
    ) -> Result<()> {
        let time_field = self.time_field(index)?;
        let area = match self.area() {
            Area::Everywhere => {
                for f in index.features() {
                    deadline.check()?;
                    if self.matches_with(f, false, time_field) && !visit(f) {
                        break;
                    }
                }
                return Ok(());
            }
            Area::Nowhere => return Ok(()),
            Area::Within(a) => a,
        };
        let bbox = self.bbox.as_ref().map(envelope);
        for (f, in_bbox) in index.query_envelope(&envelope(&area), bbox) {
            deadline.check()?;
            if self.matches_with(f, in_bbox, time_field) && !visit(f) {
                break;
            }
        }
        Ok(())
    }

    /// The area matches are confined to.
    pub(crate) fn area(&self) -> Area {
        match (self.bbox, self.filter.as_ref().and_then(|f| f.area)) {
            (Some(a), Some(b)) => overlap(a, b).map_or(Area::Nowhere, Area::Within),
            (Some(a), None) | (None, Some(a)) => Area::Within(a),
            (None, None) => Area::Everywhere,
        }
    }

    pub(crate) fn time_field(&self, index: &LayerIndex) -> Result<Option<usize>> {
        match self.datetime {
            Some(_) => Ok(Some(index.meta.time_index()?.ok_or_else(|| {
                Error::Invalid(format!(
                    "layer {} has no time field to match datetime against",
                    index.meta.name
                ))
            })?)),
            None => Ok(None),
        }
    }

    /// Whether a feature matches; `in_bbox` says its box is known to lie inside the bbox.
    pub(crate) fn matches_with(
        &self,
        f: &IndexedFeature,
        in_bbox: bool,
        time_field: Option<usize>,
    ) -> bool {
        if !in_bbox
            && let Some(b) = &self.bbox
            && !b.intersects(&f.geometry)
        {
            return false;
        }
        if let (Some(w), Some(i)) = (&self.datetime, time_field)
            && !temporal::of_value(&f.values[i]).is_some_and(|t| t.intersects(w))
        {
            return false;
        }
        if let Some(rows) = &self.rows
            && !crate::access::in_rows(&f.values, rows)
        {
            return false;
        }
        self.filter.as_ref().is_none_or(|flt| flt.matches(f))
    }

    /// Counts the matches of a bbox-only selection without reading the features whose box
    /// lies inside the bbox; `None` for other selections.
    fn count_bbox_only(&self, index: &LayerIndex, deadline: &mut Deadline) -> Result<Option<u64>> {
        let (Some(b), None, None, None) = (&self.bbox, &self.datetime, &self.filter, &self.rows)
        else {
            return Ok(None);
        };
        let env = envelope(b);
        let mut n = 0;
        for (f, inside) in index.query_envelope(&env, Some(env)) {
            deadline.check()?;
            if inside || b.intersects(&f.geometry) {
                n += 1;
            }
        }
        Ok(Some(n))
    }
}

/// One page of a selection.
#[derive(Debug)]
pub struct Page<'a> {
    /// the features of the page
    pub features: Vec<&'a IndexedFeature>,
    /// how many features match in all (`None` when counting stopped at the scan cap)
    pub matched: Option<u64>,
    /// whether more features follow the page
    pub more: bool,
}

/// Features `offset..offset + limit` of a selection, with the number of matches: `known`
/// when the caller counted this selection on this version of the layer before (the scan then
/// stops at the end of the page), else counted here.
pub fn page<'a>(
    index: &'a LayerIndex,
    sel: &Selection,
    offset: usize,
    limit: usize,
    limits: &Limits,
    known: Option<u64>,
) -> Result<Page<'a>> {
    if limit > limits.max_features {
        return Err(Error::Invalid(format!(
            "limit {limit} is above the cap of {}",
            limits.max_features
        )));
    }
    if sel.is_everything() {
        let all = index.features();
        let start = offset.min(all.len());
        let end = offset.saturating_add(limit).min(all.len());
        return Ok(Page {
            features: all[start..end].iter().collect(),
            matched: Some(all.len() as u64),
            more: end < all.len(),
        });
    }
    let mut deadline = Deadline::after(limits.timeout);
    let counted = match known {
        Some(n) => Some(n),
        None => sel.count_bbox_only(index, &mut deadline)?,
    };
    if let Some(matched) = counted {
        // the count is known; the page only needs its own features
        let mut features = Vec::with_capacity(limit.min(1024));
        let mut seen = 0usize;
        sel.scan(index, &mut deadline, |f| {
            if seen >= offset {
                features.push(f);
            }
            seen += 1;
            features.len() < limit
        })?;
        return Ok(Page {
            features,
            matched: Some(matched),
            more: (offset.saturating_add(limit) as u64) < matched,
        });
    }
    let mut seen = 0usize;
    let mut features = Vec::with_capacity(limit.min(1024));
    sel.scan(index, &mut deadline, |f| {
        if seen >= offset && seen - offset < limit {
            features.push(f);
        }
        seen += 1;
        true
    })?;
    Ok(Page {
        features,
        matched: Some(seen as u64),
        more: seen > offset.saturating_add(limit),
    })
}

/// Distance in metres on the sphere between a WGS84 point and a Web Mercator geometry.
#[must_use]
pub fn distance_m(lonlat: (f64, f64), g: &Geometry<f64>) -> f64 {
    let (x, y) = lonlat_to_mercator(lonlat.0, lonlat.1);
    let p = Point::new(x, y);
    let nearest = match g.closest_point(&p) {
        geo::Closest::Intersection(_) => return 0.0,
        geo::Closest::SinglePoint(q) => q,
        geo::Closest::Indeterminate => return f64::INFINITY,
    };
    haversine_m(lonlat, mercator_to_lonlat(nearest.x(), nearest.y()))
}

/// A feature with its distance to a point.
#[derive(Debug)]
pub struct Near<'a> {
    /// the feature
    pub feature: &'a IndexedFeature,
    /// metres
    pub distance_m: f64,
}

/// The k features nearest to a WGS84 point (at most `max_m` metres away), nearest first.
pub fn nearest<'a>(
    index: &'a LayerIndex,
    lonlat: (f64, f64),
    k: usize,
    max_m: Option<f64>,
    sel: &Selection,
    limits: &Limits,
) -> Result<Vec<Near<'a>>> {
    check_point(lonlat)?;
    let (x, y) = lonlat_to_mercator(lonlat.0, lonlat.1);
    let scale = lonlat.1.to_radians().cos().max(0.01);
    let mut deadline = Deadline::after(limits.timeout);
    let time_field = sel.time_field(index)?;
    let mut best: Vec<Near<'a>> = Vec::with_capacity(k + 1);
    for (f, env_d2) in index.nearest_by_envelope([x, y]) {
        deadline.check()?;
        // a box distance in Mercator metres, on the ground: no closer feature can follow
        let bound_m = env_d2.sqrt() * scale * 0.999;
        if best.len() == k && best.last().is_some_and(|n| bound_m > n.distance_m) {
            break;
        }
        if max_m.is_some_and(|m| bound_m > m) {
            break;
        }
        if !sel.matches_with(f, false, time_field) {
            continue;
        }
        let d = distance_m(lonlat, &f.geometry);
        if max_m.is_some_and(|m| d > m) {
            continue;
        }
        let at = best.partition_point(|n| (n.distance_m, n.feature.id) <= (d, f.id));
        if at < k {
            best.insert(
                at,
                Near {
                    feature: f,
                    distance_m: d,
                },
            );
            best.truncate(k);
        }
    }
    Ok(best)
}

/// Features within `radius_m` metres of a WGS84 point, nearest first, at most `limit`.
pub fn within<'a>(
    index: &'a LayerIndex,
    lonlat: (f64, f64),
    radius_m: f64,
    limit: usize,
    sel: &Selection,
    limits: &Limits,
) -> Result<(Vec<Near<'a>>, bool)> {
    check_point(lonlat)?;
    if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= 100_000.0) {
        return Err(Error::Invalid(
            "radius must be more than 0 and at most 100000 metres".into(),
        ));
    }
    let (x, y) = lonlat_to_mercator(lonlat.0, lonlat.1);
    // Mercator stretches by 1/cos(lat); a little more covers the latitude change over the box
    let r = radius_m / lonlat.1.to_radians().cos().max(0.01) * 1.02;
    let area = Rect::new(Coord { x: x - r, y: y - r }, Coord { x: x + r, y: y + r });
    let mut deadline = Deadline::after(limits.timeout);
    let time_field = sel.time_field(index)?;
    let mut found = Vec::new();
    for f in index.query(area) {
        deadline.check()?;
        if !sel.matches_with(f, false, time_field) {
            continue;
        }
        let d = distance_m(lonlat, &f.geometry);
        if d <= radius_m {
            found.push(Near {
                feature: f,
                distance_m: d,
            });
        }
    }
    found.sort_by(|a, b| {
        a.distance_m
            .total_cmp(&b.distance_m)
            .then(a.feature.id.cmp(&b.feature.id))
    });
    let more = found.len() > limit;
    found.truncate(limit);
    Ok((found, more))
}

/// Features intersecting a WGS84 geometry, in id order, at most `limit`; also whether more match.
pub fn intersecting<'a>(
    index: &'a LayerIndex,
    geometry: &Geometry<f64>,
    limit: usize,
    sel: &Selection,
    limits: &Limits,
) -> Result<(Vec<&'a IndexedFeature>, bool)> {
    let g = to_mercator(geometry)?;
    let Some(r) = g.bounding_rect() else {
        return Ok((Vec::new(), false));
    };
    let mut deadline = Deadline::after(limits.timeout);
    let mut hits: Vec<&IndexedFeature> = index.query(r).collect();
    hits.sort_unstable_by_key(|f| f.id);
    let time_field = sel.time_field(index)?;
    let mut found = Vec::new();
    let mut more = false;
    for f in hits {
        deadline.check()?;
        if g.intersects(&f.geometry) && sel.matches_with(f, false, time_field) {
            if found.len() == limit {
                more = true;
                break;
            }
            found.push(f);
        }
    }
    Ok((found, more))
}
