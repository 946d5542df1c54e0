//! The five-level territory tree (city → district → street → community → grid) built from the
//! territory layers, and point location in it.
//!
//! Every point of the city belongs to exactly one grid: an R-tree over the grids' bounding boxes
//! finds the candidates, an exact point-in-polygon test decides. A point on an edge shared by
//! two grids belongs to the one with the smaller code, so the answer never depends on the order
//! of the index.

use crate::index::LayerIndex;
use crate::{Error, Result};
use citytwin_tiles::proj::mercator_to_lonlat;
use geo::coordinate_position::{CoordPos, CoordinatePosition};
use geo::{
    BoundingRect, ChamberlainDuquetteArea, Coord, Distance, Euclidean, Geometry, Intersects,
    MapCoords, MultiPolygon, Point, Rect,
};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use std::collections::HashMap;
use std::sync::Arc;

/// A level of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 市
    City,
    /// 区
    District,
    /// 街道/镇
    Street,
    /// 社区
    Community,
    /// 网格
    Grid,
}

impl Level {
    /// Every level, from the top.
    pub const ALL: [Level; 5] = [
        Level::City,
        Level::District,
        Level::Street,
        Level::Community,
        Level::Grid,
    ];

    /// The layer holding the level's units.
    #[must_use]
    pub fn layer(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::District => "districts",
            Level::Street => "streets",
            Level::Community => "communities",
            Level::Grid => "grids",
        }
    }

    /// The name used in URLs and responses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::District => "district",
            Level::Street => "street",
            Level::Community => "community",
            Level::Grid => "grid",
        }
    }

    /// Parses [`Level::name`] (or the layer name).
    pub fn parse(s: &str) -> Result<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s || l.layer() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown level {s:?}; use city, district, street, community or grid"
                ))
            })
    }

    /// Whether the layer is one of the tree's.
    #[must_use]
    pub fn is_territory_layer(layer: &str) -> bool {
        Level::ALL.iter().any(|l| l.layer() == layer)
    }
}

/// One unit of territory.
#[derive(Debug, Clone)]
pub struct Territory {
    /// division code
    pub code: String,
    /// name
    pub name: String,
    /// level
    pub level: Level,
    /// the parent unit (index into the tree)
    pub parent: Option<usize>,
    /// child units (indexes into the tree), ordered by code
    pub children: Vec<usize>,
    /// area in km² on the ellipsoid
    pub area_km2: f64,
    /// WGS84 shape
    pub shape: MultiPolygon<f64>,
    /// the feature id in the level's layer
    pub feature_id: i64,
}

type GridEntry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// No unit at that level.
pub const NONE: u32 = u32::MAX;

/// Tolerance for points that fall into the slivers left by rounding shared edges (~1 cm).
const SLIVER: f64 = 1e-7;

/// The tree of territory units, immutable once built.
#[derive(Debug)]
pub struct TerritoryTree {
    units: Vec<Territory>,
    by_code: HashMap<String, usize>,
    /// unit index of each grid, ordered by code
    grids: Vec<usize>,
    /// per grid: the unit at each level above and including it (`NONE` where missing)
    chains: Vec<[u32; 5]>,
    tree: RTree<GridEntry>,
    /// versions of the layers it was built from, to know when it is stale
    pub versions: Vec<(String, u64)>,
    raster: Option<Raster>,
}

/// A raster over the grids (about 16 million cells) answering most point lookups with one
/// memory read: a cell no grid edge touches lies wholly in one grid (or in none), found once
/// when the raster is built; only points in cells an edge crosses take the exact path.
#[derive(Debug)]
struct Raster {
    x0: f64,
    y0: f64,
    /// cells per degree
    scale_x: f64,
    scale_y: f64,
    nx: usize,
    ny: usize,
    /// grid rank, [`Raster::OUTSIDE`] or [`Raster::EDGE`]; 16 bits keep the table at 32 MB
    cells: Vec<u16>,
}

impl Raster {
    const OUTSIDE: u16 = u16::MAX;
    const EDGE: u16 = u16::MAX - 1;
    const UNSET: u16 = u16::MAX - 2;
    const MAX_CELLS: f64 = 16_000_000.0;

    /// The raster, or `None` when there are no grids or too many for 16-bit ranks (lookups then
    /// all take the exact path).
    fn build(tree: &TerritoryTree) -> Option<Self> {
        if tree.grids.len() >= usize::from(Self::UNSET) {
            return None;
        }
        let r = tree
            .grids
            .iter()
            .filter_map(|&u| tree.units[u].shape.bounding_rect())
            .reduce(|a, b| {
                Rect::new(
                    Coord {
                        x: a.min().x.min(b.min().x),
                        y: a.min().y.min(b.min().y),
                    },
                    Coord {
                        x: a.max().x.max(b.max().x),
                        y: a.max().y.max(b.max().y),
                    },
                )
            })?;
        let (w, h) = (r.width() + 4.0 * SLIVER, r.height() + 4.0 * SLIVER);
        let side = (w * h / Self::MAX_CELLS).sqrt();
        if !(side.is_finite() && side > 0.0) {
            return None;
        }
        let nx = ((w / side).ceil() as usize).max(1);
        let ny = ((h / side).ceil() as usize).max(1);
        let mut raster = Self {
            x0: r.min().x - 2.0 * SLIVER,
            y0: r.min().y - 2.0 * SLIVER,
            scale_x: nx as f64 / w,
            scale_y: ny as f64 / h,
            nx,
            ny,
            cells: vec![Self::UNSET; nx * ny],
        };
        // every cell an edge touches (cells grown by the sliver tolerance)
        for &u in &tree.grids {
            for p in &tree.units[u].shape.0 {
                for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                    for seg in ring.lines() {
                        raster.mark_edge(seg);
                    }
                }
            }
        }
        // the rest in connected regions, each located once
        let mut stack = Vec::new();
        for start in 0..raster.cells.len() {
            if raster.cells[start] != Self::UNSET {
                continue;
            }
            let (ix, iy) = (start % nx, start / nx);
            let cx = raster.x0 + (ix as f64 + 0.5) / raster.scale_x;
            let cy = raster.y0 + (iy as f64 + 0.5) / raster.scale_y;
            let label = tree
                .locate_exact(cx, cy)
                .map_or(Self::OUTSIDE, |rank| rank as u16);
            raster.cells[start] = label;
            stack.push(start);
            while let Some(c) = stack.pop() {
                let (ix, iy) = (c % nx, c / nx);
                let mut visit = |n: usize| {
                    if raster.cells[n] == Self::UNSET {
                        raster.cells[n] = label;
                        stack.push(n);
                    }
                };
                if ix > 0 {
                    visit(c - 1);
                }
                if ix + 1 < nx {
                    visit(c + 1);
                }
                if iy > 0 {
                    visit(c - nx);
                }
                if iy + 1 < ny {
                    visit(c + nx);
                }
            }
        }
        Some(raster)
    }

    fn mark_edge(&mut self, seg: geo::Line<f64>) {
        let cell_x = |x: f64| {
            ((x - self.x0) * self.scale_x)
                .floor()
                .clamp(0.0, (self.nx - 1) as f64) as usize
        };
        let cell_y = |y: f64| {
            ((y - self.y0) * self.scale_y)
                .floor()
                .clamp(0.0, (self.ny - 1) as f64) as usize
        };
        let (ax, bx) = (seg.start.x.min(seg.end.x), seg.start.x.max(seg.end.x));
        let (ay, by) = (seg.start.y.min(seg.end.y), seg.start.y.max(seg.end.y));
        for iy in cell_y(ay - SLIVER)..=cell_y(by + SLIVER) {
            for ix in cell_x(ax - SLIVER)..=cell_x(bx + SLIVER) {
                let cell = Rect::new(
                    Coord {
                        x: self.x0 + ix as f64 / self.scale_x - SLIVER,
                        y: self.y0 + iy as f64 / self.scale_y - SLIVER,
                    },
                    Coord {
                        x: self.x0 + (ix + 1) as f64 / self.scale_x + SLIVER,
                        y: self.y0 + (iy + 1) as f64 / self.scale_y + SLIVER,
                    },
                );
                if cell.intersects(&seg) {
                    self.cells[iy * self.nx + ix] = Self::EDGE;
                }
            }
        }
    }

    /// The cell's answer: `Some(rank or NONE)`, or `None` when the exact test must decide.
    #[inline]
    fn get(&self, lon: f64, lat: f64) -> Option<u32> {
        let fx = (lon - self.x0) * self.scale_x;
        let fy = (lat - self.y0) * self.scale_y;
        if !(fx >= 0.0 && fy >= 0.0 && fx < self.nx as f64 && fy < self.ny as f64) {
            // outside every grid's box (NaN included)
            return Some(NONE);
        }
        match self.cells[fy as usize * self.nx + fx as usize] {
            Self::EDGE => None,
            Self::OUTSIDE => Some(NONE),
            v => Some(u32::from(v)),
        }
    }
}

impl TerritoryTree {
    /// Whether unit `u` is `ancestor` or lies inside it.
    #[must_use]
    pub fn is_under(&self, mut u: usize, ancestor: usize) -> bool {
        loop {
            if u == ancestor {
                return true;
            }
            match self.units.get(u).and_then(|t| t.parent) {
                Some(p) => u = p,
                None => return false,
            }
        }
    }

    /// Builds the tree from the territory layers present (any may be missing; a unit whose
    /// parent is missing has none).
    #[must_use]
    pub fn build(layers: &[Arc<LayerIndex>]) -> Self {
        let mut units: Vec<Territory> = Vec::new();
        let mut by_code = HashMap::new();
        let mut versions = Vec::new();
        for level in Level::ALL {
            let Some(l) = layers.iter().find(|l| l.meta.name == level.layer()) else {
                continue;
            };
            versions.push((l.meta.name.clone(), l.version));
            let (Some(code_i), Some(name_i)) =
                (l.meta.field_index("code"), l.meta.field_index("name"))
            else {
                continue;
            };
            let parent_i = l.meta.field_index("parent");
            let mut found: Vec<(Territory, Option<String>)> = l
                .features()
                .iter()
                .filter_map(|f| {
                    let code = f.values[code_i].to_string();
                    if code.is_empty() {
                        return None;
                    }
                    let shape = to_lonlat_polygons(&f.geometry)?;
                    let parent = parent_i.map(|i| f.values[i].to_string());
                    Some((
                        Territory {
                            code,
                            name: f.values[name_i].to_string(),
                            level,
                            parent: None,
                            children: Vec::new(),
                            area_km2: shape.chamberlain_duquette_unsigned_area() / 1e6,
                            shape,
                            feature_id: f.id,
                        },
                        parent,
                    ))
                })
                .collect();
            found.sort_by(|a, b| a.0.code.cmp(&b.0.code));
            for (mut t, parent) in found {
                if by_code.contains_key(&t.code) {
                    tracing::warn!(code = %t.code, layer = level.layer(), "duplicate territory code ignored");
                    continue;
                }
                t.parent = parent.and_then(|p| by_code.get(&p).copied());
                let i = units.len();
                if let Some(p) = t.parent {
                    units[p].children.push(i);
                }
                by_code.insert(t.code.clone(), i);
                units.push(t);
            }
        }
        let grids: Vec<usize> = (0..units.len())
            .filter(|&i| units[i].level == Level::Grid)
            .collect();
        let chains = grids
            .iter()
            .map(|&g| {
                let mut chain = [NONE; 5];
                let mut at = Some(g);
                while let Some(u) = at {
                    chain[units[u].level as usize] = u as u32;
                    at = units[u].parent;
                }
                chain
            })
            .collect();
        let entries = grids
            .iter()
            .enumerate()
            .filter_map(|(rank, &u)| {
                let r = units[u].shape.bounding_rect()?;
                Some(GridEntry::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    rank as u32,
                ))
            })
            .collect();
        Self {
            units,
            by_code,
            grids,
            chains,
            tree: RTree::bulk_load(entries),
            versions,
            raster: None,
        }
        .with_raster()
    }

    /// Adds the lookup raster (see [`Raster`]).
    fn with_raster(mut self) -> Self {
        self.raster = Raster::build(&self);
        self
    }

    /// Every unit.
    #[must_use]
    pub fn units(&self) -> &[Territory] {
        &self.units
    }

    /// A unit by code.
    #[must_use]
    pub fn by_code(&self, code: &str) -> Option<usize> {
        self.by_code.get(code).copied()
    }

    /// A unit.
    #[must_use]
    pub fn unit(&self, i: usize) -> &Territory {
        &self.units[i]
    }

    /// Number of grids.
    #[must_use]
    pub fn grid_count(&self) -> usize {
        self.grids.len()
    }

    /// The units of a grid (by rank) from the city down: `chain[level as usize]`.
    #[must_use]
    pub fn chain(&self, grid: u32) -> [u32; 5] {
        self.chains[grid as usize]
    }

    /// The grid (its rank) containing a WGS84 point, or `None` outside every grid.
    #[must_use]
    pub fn locate(&self, lon: f64, lat: f64) -> Option<u32> {
        match self.raster.as_ref().and_then(|r| r.get(lon, lat)) {
            Some(NONE) => None,
            Some(rank) => Some(rank),
            None => self.locate_exact(lon, lat),
        }
    }

    /// [`TerritoryTree::locate`] without the raster: R-tree candidates, exact point-in-polygon.
    #[must_use]
    pub fn locate_exact(&self, lon: f64, lat: f64) -> Option<u32> {
        let c = Coord { x: lon, y: lat };
        // Inside beats on-the-edge; among equals the smaller code (= rank) wins.
        let mut best: Option<(bool, u32)> = None;
        for e in self.tree.locate_all_at_point(&[lon, lat]) {
            let rank = e.data;
            let shape = &self.units[self.grids[rank as usize]].shape;
            let inside = match shape.coordinate_position(&c) {
                CoordPos::Inside => true,
                CoordPos::OnBoundary => false,
                CoordPos::Outside => continue,
            };
            best = match best {
                Some((bi, br))
                    if (bi, std::cmp::Reverse(br)) >= (inside, std::cmp::Reverse(rank)) =>
                {
                    Some((bi, br))
                }
                _ => Some((inside, rank)),
            };
        }
        best.map(|(_, r)| r)
            .or_else(|| self.nearest_within_sliver(c))
    }

    /// A point in a rounding sliver between grids belongs to the nearest grid.
    fn nearest_within_sliver(&self, c: Coord<f64>) -> Option<u32> {
        let env = AABB::from_corners([c.x - SLIVER, c.y - SLIVER], [c.x + SLIVER, c.y + SLIVER]);
        let p = Point::from(c);
        self.tree
            .locate_in_envelope_intersecting(&env)
            .map(|e| {
                let shape = &self.units[self.grids[e.data as usize]].shape;
                (Euclidean.distance(&p, shape), e.data)
            })
            .filter(|(d, _)| *d <= SLIVER)
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            .map(|(_, r)| r)
    }

    /// Units whose name contains `text` or whose code starts with `prefix`, at a level, in code
    /// order, at most `limit`.
    #[must_use]
    pub fn search(
        &self,
        text: Option<&str>,
        prefix: Option<&str>,
        level: Option<Level>,
        limit: usize,
    ) -> Vec<usize> {
        let text = text.map(str::to_lowercase);
        let mut found: Vec<usize> = (0..self.units.len())
            .filter(|&i| {
                let u = &self.units[i];
                level.is_none_or(|l| u.level == l)
                    && prefix.is_none_or(|p| u.code.starts_with(p))
                    && text
                        .as_deref()
                        .is_none_or(|t| u.name.to_lowercase().contains(t) || u.code == t)
            })
            .collect();
        found.sort_by(|&a, &b| self.units[a].code.cmp(&self.units[b].code));
        found.truncate(limit);
        found
    }

    /// Adds per-grid counts up the tree: the count of every unit.
    #[must_use]
    pub fn roll_up(&self, per_grid: &[u32]) -> Vec<u64> {
        let mut out = vec![0u64; self.units.len()];
        for (rank, &n) in per_grid.iter().enumerate() {
            if n == 0 {
                continue;
            }
            for &u in &self.chains[rank] {
                if u != NONE {
                    out[u as usize] += u64::from(n);
                }
            }
        }
        out
    }
}

/// A Web Mercator polygon geometry back in WGS84, as a multipolygon.
fn to_lonlat_polygons(g: &Geometry<f64>) -> Option<MultiPolygon<f64>> {
    let back = |c: Coord<f64>| {
        let (x, y) = mercator_to_lonlat(c.x, c.y);
        Coord { x, y }
    };
    match g {
        Geometry::Polygon(p) => Some(MultiPolygon::new(vec![p.map_coords(back)])),
        Geometry::MultiPolygon(mp) => Some(mp.map_coords(back)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Feature, Field, FieldKind, GeometryKind, LayerMeta};
    use citytwin_tiles::Value;
    use geo::{LineString, Polygon};

    fn square(x0: f64, y0: f64, side: f64) -> Geometry<f64> {
        Polygon::new(
            LineString::from(vec![
                (x0, y0),
                (x0 + side, y0),
                (x0 + side, y0 + side),
                (x0, y0 + side),
                (x0, y0),
            ]),
            vec![],
        )
        .into()
    }

    fn layer(name: &str, units: &[(&str, &str, &str, Geometry<f64>)]) -> Arc<LayerIndex> {
        let mut meta = LayerMeta::new(name, GeometryKind::Polygon);
        meta.fields = ["code", "name", "parent"]
            .iter()
            .map(|n| Field {
                name: (*n).into(),
                kind: FieldKind::Text,
            })
            .collect();
        let features = units
            .iter()
            .enumerate()
            .map(|(i, (code, name, parent, g))| Feature {
                id: i as i64 + 1,
                geometry: g.clone(),
                values: vec![Value::from(*code), Value::from(*name), Value::from(*parent)],
            })
            .collect();
        Arc::new(LayerIndex::build(meta, features, 1))
    }

    /// Two grids side by side under one community; "…002" listed (and indexed) first.
    fn tree() -> TerritoryTree {
        let community = layer(
            "communities",
            &[(
                "320102001001",
                "东社区",
                "320102001",
                square(118.0, 32.0, 0.02),
            )],
        );
        let grids = layer(
            "grids",
            &[
                (
                    "320102001001002",
                    "东第2网格",
                    "320102001001",
                    square(118.01, 32.0, 0.01),
                ),
                (
                    "320102001001001",
                    "东第1网格",
                    "320102001001",
                    square(118.0, 32.0, 0.01),
                ),
            ],
        );
        TerritoryTree::build(&[community, grids])
    }

    #[test]
    fn a_point_belongs_to_the_grid_around_it_and_its_parents() {
        let t = tree();
        let g = t.locate(118.005, 32.005).unwrap();
        let chain = t.chain(g);
        assert_eq!(
            t.unit(chain[Level::Grid as usize] as usize).code,
            "320102001001001"
        );
        assert_eq!(
            t.unit(chain[Level::Community as usize] as usize).name,
            "东社区"
        );
        assert_eq!(
            chain[Level::District as usize],
            NONE,
            "no districts layer here"
        );
        let right = t.chain(t.locate(118.015, 32.005).unwrap())[Level::Grid as usize];
        assert_eq!(t.unit(right as usize).code, "320102001001002");
        assert!(t.locate(118.05, 32.005).is_none());
    }

    #[test]
    fn a_point_on_a_shared_edge_goes_to_the_smaller_code_every_time() {
        let t = tree();
        // the edge as the tree holds it (after the index's round trip through Web Mercator)
        let right = &t.unit(t.by_code("320102001001002").unwrap()).shape;
        let x = right.0[0].exterior().0[0].x;
        let (y0, y1) = (right.0[0].exterior().0[0].y, right.0[0].exterior().0[3].y);
        for y in [y0, f64::midpoint(y0, y1), y1] {
            for _ in 0..3 {
                let g = t.locate(x, y).unwrap();
                assert_eq!(
                    t.unit(t.chain(g)[Level::Grid as usize] as usize).code,
                    "320102001001001"
                );
            }
        }
    }

    #[test]
    fn search_and_roll_up() {
        let t = tree();
        assert_eq!(t.search(Some("第2"), None, None, 10).len(), 1);
        assert_eq!(
            t.search(None, Some("320102001001"), Some(Level::Grid), 10)
                .len(),
            2
        );
        assert_eq!(t.search(None, Some("320102001001"), None, 1).len(), 1);
        let community = t.by_code("320102001001").unwrap();
        let counts = t.roll_up(&[3, 4]);
        assert_eq!(counts[community], 7);
        assert!(Level::parse("planet").is_err());
    }
}
