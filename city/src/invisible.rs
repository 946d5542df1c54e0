//! Usable but invisible (可用不可见, Auth art. 14 and 16): a level-3 layer as everyone but its
//! owner's staff gets it. Counts — and sums and means of the fields its catalogue entry marks
//! aggregable — on fixed units that no query can move: the units of the territory tree and H3
//! cells of resolutions [`H3_MIN`] to [`H3_MAX`]. Small counts are suppressed with their
//! complements ([`crate::suppress`]) over the whole hierarchy at once, so every level a reader
//! asks for comes out of one consistent table and no two of them subtract to a hidden count.
//! No filter, box or drawn polygon selects what is counted (that would move the units:
//! geographic differencing).

use crate::index::LayerIndex;
use crate::stats::{GridAssignment, centre, number};
use crate::suppress::{Shown, suppress};
use crate::territory::{NONE, TerritoryTree};
use crate::{Field, FieldKind, GeometryKind, LayerMeta};
use citytwin_tiles::Value;
use std::collections::HashMap;

/// The coarsest H3 resolution served (cells of about 250 km²).
pub const H3_MIN: u8 = 5;
/// The finest H3 resolution served (cells of about 0.1 km²): finer cells would come close
/// to single features.
pub const H3_MAX: u8 = 9;

/// What is shown of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// its count, or how it is suppressed
    pub shown: Shown,
    /// per aggregable field: the sum and how many features had a value (hidden with the count)
    sums: Vec<(f64, u64)>,
}

impl Tally {
    /// The sum of aggregable field `i` (in the entry's order), when the count is shown.
    #[must_use]
    pub fn sum(&self, i: usize) -> Option<f64> {
        self.shown.count()?;
        self.sums.get(i).map(|s| s.0)
    }

    /// The mean of aggregable field `i`, when the count is shown and any feature has a value.
    #[must_use]
    pub fn mean(&self, i: usize) -> Option<f64> {
        self.shown.count()?;
        self.sums
            .get(i)
            .filter(|s| s.1 > 0)
            .map(|s| s.0 / s.1 as f64)
    }

    /// The count as JSON: a number, `"< k"`, or null when withheld.
    #[must_use]
    pub fn count_json(&self, k: u32) -> serde_json::Value {
        match self.shown {
            Shown::Count(c) => c.into(),
            Shown::Small => format!("<{k}").into(),
            Shown::Withheld => serde_json::Value::Null,
        }
    }

    /// How the count is suppressed, if it is: `small` (under k) or `complementary`
    /// (withheld to protect a small one).
    #[must_use]
    pub fn suppressed(&self) -> Option<&'static str> {
        match self.shown {
            Shown::Count(_) => None,
            Shown::Small => Some("small"),
            Shown::Withheld => Some("complementary"),
        }
    }
}

/// The aggregable fields of a layer: their indexes, in the catalogue entry's order.
#[must_use]
pub fn aggregable(meta: &LayerMeta) -> Vec<(usize, String)> {
    meta.classification
        .iter()
        .flat_map(|c| c.aggregable.iter())
        .filter_map(|f| meta.field_index(f).map(|i| (i, f.clone())))
        .collect()
}

/// k of a layer's aggregates.
#[must_use]
pub fn k_of(meta: &LayerMeta) -> u32 {
    meta.classification.as_ref().map_or(
        crate::catalog::DEFAULT_MIN_COUNT,
        crate::catalog::Classification::k,
    )
}

#[derive(Clone, Default)]
struct Acc {
    count: u64,
    sums: Vec<(f64, u64)>,
}

impl Acc {
    fn add_feature(&mut self, values: &[Value], fields: &[(usize, String)]) {
        self.count += 1;
        self.sums.resize(fields.len(), (0.0, 0));
        for (s, (i, _)) in self.sums.iter_mut().zip(fields) {
            if let Some(v) = values.get(*i).and_then(number) {
                s.0 += v;
                s.1 += 1;
            }
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        if self.sums.len() < other.sums.len() {
            self.sums.resize(other.sums.len(), (0.0, 0));
        }
        for (s, o) in self.sums.iter_mut().zip(&other.sums) {
            s.0 += o.0;
            s.1 += o.1;
        }
    }
}

fn tallies(accs: Vec<Acc>, parent: &[Option<usize>], k: u32, fields: usize) -> Vec<Tally> {
    let counts: Vec<u64> = accs.iter().map(|a| a.count).collect();
    let shown = suppress(&counts, parent, u64::from(k));
    accs.into_iter()
        .zip(shown)
        .map(|(mut a, shown)| {
            a.sums.resize(fields, (0.0, 0));
            Tally {
                shown,
                sums: a.sums,
            }
        })
        .collect()
}

/// A layer's suppressed counts on every unit of the territory tree.
#[derive(Debug)]
pub struct TerritoryAggregates {
    /// the layer version it was computed for
    pub layer_version: u64,
    /// the tree versions it was computed under
    pub tree_versions: Vec<(String, u64)>,
    /// k
    pub k: u32,
    /// the aggregable fields summed
    pub fields: Vec<String>,
    /// per unit of the tree (aligned with its units)
    pub units: Vec<Tally>,
}

impl TerritoryAggregates {
    /// Counts every feature in its grid and every grid in each unit above it (by the tree's
    /// parent links, so a unit's count is exactly the sum of its children's), then suppresses.
    #[must_use]
    pub fn compute(tree: &TerritoryTree, index: &LayerIndex, assignment: &GridAssignment) -> Self {
        let fields = aggregable(&index.meta);
        let k = k_of(&index.meta);
        let n = tree.units().len();
        let mut per_grid: Vec<Acc> = vec![Acc::default(); tree.grid_count()];
        if fields.is_empty() {
            for (g, &c) in assignment.per_grid.iter().enumerate() {
                per_grid[g].count = u64::from(c);
            }
        } else {
            for (f, &g) in index.features().iter().zip(&assignment.grid_of) {
                if g != NONE {
                    per_grid[g as usize].add_feature(&f.values, &fields);
                }
            }
        }
        let mut accs = vec![Acc::default(); n];
        let grid_level = crate::territory::Level::Grid as usize;
        for (rank, acc) in per_grid.iter().enumerate() {
            if acc.count == 0 {
                continue;
            }
            let mut u = tree.chain(rank as u32)[grid_level];
            while u != NONE {
                accs[u as usize].merge(acc);
                u = tree.unit(u as usize).parent.map_or(NONE, |p| p as u32);
            }
        }
        let parent: Vec<Option<usize>> = tree.units().iter().map(|t| t.parent).collect();
        Self {
            layer_version: index.version,
            tree_versions: tree.versions.clone(),
            k,
            fields: fields.iter().map(|(_, f)| f.clone()).collect(),
            units: tallies(accs, &parent, k, fields.len()),
        }
    }

    /// Whether it still describes this layer under this tree.
    #[must_use]
    pub fn is_current(&self, tree: &TerritoryTree, index: &LayerIndex) -> bool {
        self.layer_version == index.version && self.tree_versions == tree.versions
    }
}

/// A layer's suppressed counts on H3 cells of resolutions [`H3_MIN`] to [`H3_MAX`] (a
/// feature counts in the cell of its centre; a coarser cell's count is its children's sum by
/// the H3 index hierarchy), and in total.
#[derive(Debug)]
pub struct H3Aggregates {
    /// the layer version it was computed for
    pub layer_version: u64,
    /// k
    pub k: u32,
    /// the aggregable fields summed
    pub fields: Vec<String>,
    /// every feature with a centre
    pub total: Tally,
    /// cells with features, per resolution from [`H3_MIN`], ordered by cell
    levels: Vec<Vec<(h3o::CellIndex, Tally)>>,
}

impl H3Aggregates {
    /// Counts and suppresses.
    #[must_use]
    pub fn compute(index: &LayerIndex) -> Self {
        let fields = aggregable(&index.meta);
        let k = k_of(&index.meta);
        let finest = h3o::Resolution::try_from(H3_MAX).unwrap_or(h3o::Resolution::Nine);
        let mut cells: HashMap<h3o::CellIndex, Acc> = HashMap::new();
        for f in index.features() {
            let (lon, lat) = centre(f);
            if let Ok(ll) = h3o::LatLng::new(lat, lon) {
                cells
                    .entry(ll.to_cell(finest))
                    .or_default()
                    .add_feature(&f.values, &fields);
            }
        }
        // levels[0] is H3_MIN; nodes: 0 the total, then every cell, coarse to fine
        let mut levels: Vec<Vec<(h3o::CellIndex, Acc)>> = Vec::new();
        let mut finer: Vec<(h3o::CellIndex, Acc)> = cells.into_iter().collect();
        finer.sort_by_key(|(c, _)| *c);
        for r in (H3_MIN..H3_MAX).rev() {
            let res = h3o::Resolution::try_from(r).unwrap_or(h3o::Resolution::Five);
            let mut coarse: HashMap<h3o::CellIndex, Acc> = HashMap::new();
            for (c, a) in &finer {
                if let Some(p) = c.parent(res) {
                    coarse.entry(p).or_default().merge(a);
                }
            }
            levels.push(finer);
            finer = coarse.into_iter().collect();
            finer.sort_by_key(|(c, _)| *c);
        }
        levels.push(finer);
        levels.reverse();
        let mut total = Acc::default();
        for (_, a) in &levels[0] {
            total.merge(a);
        }
        let mut accs = vec![total];
        let mut parent = vec![None];
        let mut offsets = Vec::new();
        for (depth, level) in levels.iter().enumerate() {
            offsets.push(accs.len());
            for (c, a) in level {
                let p = if depth == 0 {
                    Some(0)
                } else {
                    let res = h3o::Resolution::try_from(H3_MIN + depth as u8 - 1)
                        .unwrap_or(h3o::Resolution::Five);
                    c.parent(res).and_then(|pc| {
                        levels[depth - 1]
                            .binary_search_by_key(&pc, |(x, _)| *x)
                            .ok()
                            .map(|i| offsets[depth - 1] + i)
                    })
                };
                accs.push(a.clone());
                parent.push(p);
            }
        }
        let mut tallies = tallies(accs, &parent, k, fields.len()).into_iter();
        let total = tallies.next().unwrap_or(Tally {
            shown: Shown::Count(0),
            sums: Vec::new(),
        });
        let levels = levels
            .into_iter()
            .map(|level| {
                level
                    .into_iter()
                    .map(|(c, _)| (c, tallies.next().unwrap_or(total.clone())))
                    .collect()
            })
            .collect();
        Self {
            layer_version: index.version,
            k,
            fields: fields.into_iter().map(|(_, f)| f).collect(),
            total,
            levels,
        }
    }

    /// The cells of a resolution within [`H3_MIN`]..=[`H3_MAX`] that hold features.
    #[must_use]
    pub fn cells(&self, resolution: u8) -> &[(h3o::CellIndex, Tally)] {
        resolution
            .checked_sub(H3_MIN)
            .and_then(|i| self.levels.get(usize::from(i)))
            .map_or(&[], Vec::as_slice)
    }
}

/// Why a level-3 layer's aggregates take no filter, box, time window or drawn area.
pub const FIXED_UNITS: &str = "a level-3 layer is counted only on fixed units (territories, H3 cells) and as a whole: a filter, box, time window or drawn area could single out a feature by difference (usable but invisible, Auth art. 14)";

/// The position of an aggregable field among a layer's aggregates, or what may be asked.
pub fn field_position(fields: &[String], name: &str) -> crate::Result<usize> {
    fields.iter().position(|f| f == name).ok_or_else(|| {
        crate::Error::Invalid(if fields.is_empty() {
            format!(
                "field {name:?}: this level-3 layer has no aggregable field; only counts are served"
            )
        } else {
            format!(
                "field {name:?} is not aggregable; the catalogue allows sums and means of {}",
                fields.join(", ")
            )
        })
    })
}

/// Checks an H3 resolution asked of a level-3 layer.
pub fn check_resolution(r: u8) -> crate::Result<()> {
    if (H3_MIN..=H3_MAX).contains(&r) {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "H3 resolution {r}: a level-3 layer is counted on H3 resolutions {H3_MIN} to {H3_MAX} only (finer cells would come close to single features)"
        )))
    }
}

/// The H3 resolution aggregate tiles of zoom `z` are drawn with: cells a few dozen pixels
/// across.
#[must_use]
pub fn resolution_for_zoom(z: u8) -> u8 {
    match z {
        0..=9 => 5,
        10..=11 => 6,
        12 => 7,
        13 => 8,
        _ => 9,
    }
}

/// A level-3 layer's aggregates on H3 cells of one resolution as a layer of its own, under
/// the layer's name: cell polygons with `cell`, `count` (left out when suppressed), `label`
/// (`12`, `<5`, or `withheld`), `suppressed`, and `{field}_sum`, `{field}_mean` of the
/// aggregable fields. Tiles, static maps and dashboards draw these instead of the features.
#[must_use]
pub fn view(meta: &LayerMeta, aggregates: &H3Aggregates, resolution: u8) -> LayerIndex {
    let mut m = LayerMeta::new(&meta.name, GeometryKind::Polygon);
    m.title.clone_from(&meta.title);
    m.description = format!(
        "{} — counts on H3 cells (resolution {resolution}), counts under {} suppressed",
        meta.description, aggregates.k
    );
    m.source.clone_from(&meta.source);
    m.acquired.clone_from(&meta.acquired);
    m.updated_at.clone_from(&meta.updated_at);
    m.bounds = meta.bounds;
    m.classification.clone_from(&meta.classification);
    m.maxzoom = meta.maxzoom;
    let text = |n: &str| Field {
        name: n.to_owned(),
        kind: FieldKind::Text,
    };
    m.fields = vec![
        text("cell"),
        Field {
            name: "count".into(),
            kind: FieldKind::Integer,
        },
        text("label"),
        text("suppressed"),
    ];
    for f in &aggregates.fields {
        for suffix in ["sum", "mean"] {
            m.fields.push(Field {
                name: format!("{f}_{suffix}"),
                kind: FieldKind::Real,
            });
        }
    }
    let cells = aggregates.cells(resolution);
    m.feature_count = cells.len() as u64;
    let features = cells
        .iter()
        .enumerate()
        .map(|(i, (cell, t))| {
            let mut values = vec![
                Value::from(cell.to_string().as_str()),
                t.shown
                    .count()
                    .map_or(Value::Null, |c| Value::Int(c as i64)),
                Value::from(
                    match t.shown {
                        Shown::Count(c) => c.to_string(),
                        Shown::Small => format!("<{}", aggregates.k),
                        Shown::Withheld => "withheld".to_owned(),
                    }
                    .as_str(),
                ),
                t.suppressed().map_or(Value::Null, Value::from),
            ];
            for f in 0..aggregates.fields.len() {
                values.push(t.sum(f).map_or(Value::Null, Value::Float));
                values.push(t.mean(f).map_or(Value::Null, Value::Float));
            }
            crate::Feature {
                id: i as i64 + 1,
                geometry: geo::Geometry::Polygon(crate::cells::h3_outline(*cell)),
                values,
            }
        })
        .collect();
    let mut index = LayerIndex::build(m, features, aggregates.layer_version);
    index.form = crate::access::Form::Aggregate;
    index
}
