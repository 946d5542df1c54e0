//! Statistics per territory: every feature of a layer is assigned once to the grid containing
//! its centre (the point itself, or the centre of a line's or polygon's bounding box), and
//! counts, sums and averages roll up from grids to communities, streets, districts and the city.

use crate::index::{IndexedFeature, LayerIndex};
use crate::query::{Deadline, Limits, Selection};
use crate::territory::{Level, NONE, TerritoryTree};
use crate::{Error, Result};
use citytwin_tiles::Value;
use citytwin_tiles::proj::mercator_to_lonlat;
use geo::{BoundingRect, Geometry};

/// The WGS84 point a feature is counted at.
#[must_use]
pub fn centre(f: &IndexedFeature) -> (f64, f64) {
    let c = match &f.geometry {
        Geometry::Point(p) => p.0,
        g => g.bounding_rect().map_or(f.anchor, geo::Rect::center),
    };
    mercator_to_lonlat(c.x, c.y)
}

/// The grid of every feature of one version of a layer, under one version of the tree.
#[derive(Debug)]
pub struct GridAssignment {
    /// the layer version it was computed for
    pub layer_version: u64,
    /// the tree versions it was computed under
    pub tree_versions: Vec<(String, u64)>,
    /// grid rank per feature (in the index's order), [`NONE`] outside every grid
    pub grid_of: Vec<u32>,
    /// features per grid rank
    pub per_grid: Vec<u32>,
}

impl GridAssignment {
    /// Locates every feature's centre, on all cores.
    #[must_use]
    pub fn compute(tree: &TerritoryTree, index: &LayerIndex) -> Self {
        let features = index.features();
        let grid_of: Vec<u32> = crate::on_all_cores(features, 20_000, |_, part| {
            part.iter()
                .map(|f| {
                    let (lon, lat) = centre(f);
                    tree.locate(lon, lat).unwrap_or(NONE)
                })
                .collect::<Vec<u32>>()
        })
        .concat();
        let mut per_grid = vec![0u32; tree.grid_count()];
        for &g in &grid_of {
            if g != NONE {
                per_grid[g as usize] += 1;
            }
        }
        Self {
            layer_version: index.version,
            tree_versions: tree.versions.clone(),
            grid_of,
            per_grid,
        }
    }

    /// Whether it still describes this layer under this tree.
    #[must_use]
    pub fn is_current(&self, tree: &TerritoryTree, index: &LayerIndex) -> bool {
        self.layer_version == index.version && self.tree_versions == tree.versions
    }
}

/// What to count.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    /// the level whose units are reported
    pub level: Level,
    /// only units inside this one (a tree index)
    pub within: Option<usize>,
    /// a numeric field to sum and average
    pub field: Option<usize>,
    /// the features counted
    pub selection: Selection,
}

/// Counts of one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitStats {
    /// the unit (tree index)
    pub unit: usize,
    /// matching features
    pub count: u64,
    /// features with a value of the field
    pub values: u64,
    /// sum of the field
    pub sum: f64,
    /// smallest value of the field
    pub min: f64,
    /// largest value of the field
    pub max: f64,
}

impl UnitStats {
    fn new(unit: usize) -> Self {
        Self {
            unit,
            count: 0,
            values: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// The average of the field, when any feature has a value.
    #[must_use]
    pub fn mean(&self) -> Option<f64> {
        (self.values > 0).then(|| self.sum / self.values as f64)
    }

    fn merge(&mut self, other: &UnitStats) {
        self.count += other.count;
        self.values += other.values;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn add(&mut self, v: Option<f64>) {
        self.count += 1;
        if let Some(v) = v {
            self.values += 1;
            self.sum += v;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }
}

/// A number out of a value, for sums.
#[must_use]
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

/// Statistics of every unit at the requested level (those with no feature too, so a
/// choropleth shows them), in code order.
pub fn statistics(
    tree: &TerritoryTree,
    index: &LayerIndex,
    assignment: &GridAssignment,
    req: &StatsRequest,
    limits: &Limits,
) -> Result<Vec<UnitStats>> {
    if let Some(i) = req.field
        && !matches!(
            index.meta.fields.get(i).map(|f| f.kind),
            Some(crate::FieldKind::Integer | crate::FieldKind::Real)
        )
    {
        return Err(Error::Invalid(format!(
            "field {:?} is not numeric",
            index.meta.fields.get(i).map_or("?", |f| f.name.as_str())
        )));
    }
    let level = req.level as usize;
    let units: Vec<usize> = (0..tree.units().len())
        .filter(|&u| {
            let t = tree.unit(u);
            t.level == req.level && req.within.is_none_or(|w| tree.is_under(u, w))
        })
        .collect();
    let mut slot = vec![u32::MAX; tree.units().len()];
    for (s, &u) in units.iter().enumerate() {
        slot[u] = s as u32;
    }
    let mut out: Vec<UnitStats> = units.iter().map(|&u| UnitStats::new(u)).collect();
    let unit_of_grid = |g: u32| -> Option<usize> {
        if g == NONE {
            return None;
        }
        let u = tree.chain(g)[level];
        (u != NONE && slot[u as usize] != u32::MAX).then(|| slot[u as usize] as usize)
    };
    if req.selection.is_everything() && req.field.is_none() {
        for (g, &n) in assignment.per_grid.iter().enumerate() {
            if let Some(s) = unit_of_grid(g as u32) {
                out[s].count += u64::from(n);
            }
        }
        return Ok(out);
    }
    if index.features().len() != assignment.grid_of.len() {
        return Err(Error::Invalid(
            "the layer changed during the query; retry".into(),
        ));
    }
    if req.selection.area() == crate::query::Area::Everywhere {
        // no area to narrow by: every feature is tested, on all cores
        let time_field = req.selection.time_field(index)?;
        let features = index.features();
        let parts = crate::on_all_cores(features, 50_000, |start, part| {
            let mut local = out.clone();
            let mut deadline = Deadline::after(limits.timeout);
            for (i, f) in part.iter().enumerate() {
                deadline.check()?;
                if !req.selection.matches_with(f, false, time_field) {
                    continue;
                }
                if let Some(s) = unit_of_grid(assignment.grid_of[start + i]) {
                    local[s].add(req.field.and_then(|i| number(&f.values[i])));
                }
            }
            Ok::<_, Error>(local)
        });
        for part in parts {
            for (total, p) in out.iter_mut().zip(part?) {
                total.merge(&p);
            }
        }
        return Ok(out);
    }
    let mut deadline = Deadline::after(limits.timeout);
    let mut failed = false;
    req.selection.scan(index, &mut deadline, |f| {
        let Some(pos) = index.position_of(f) else {
            failed = true;
            return false;
        };
        if let Some(s) = unit_of_grid(assignment.grid_of[pos]) {
            out[s].add(req.field.and_then(|i| number(&f.values[i])));
        }
        true
    })?;
    if failed {
        return Err(Error::Invalid(
            "the layer changed during the query; retry".into(),
        ));
    }
    Ok(out)
}
