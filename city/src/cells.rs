//! Aggregation onto a regular cell grid for heat maps: H3 hexagons (via h3o) or square cells of
//! a size in metres. A feature counts in the cell holding its centre (see [`crate::stats::centre`]).

use crate::index::LayerIndex;
use crate::query::{Deadline, Limits, Selection};
use crate::stats::{centre, number};
use crate::{Error, Result};
use citytwin_tiles::proj::{lonlat_to_mercator, mercator_to_lonlat};
use geo::{Coord, LineString, Polygon};
use std::collections::HashMap;

/// The cells to aggregate onto.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellSpec {
    /// H3 cells of a resolution 0–15
    H3(u8),
    /// squares of about this many metres a side (exact at the layer's central latitude)
    Square(f64),
}

/// One cell with what fell into it.
#[derive(Debug, Clone)]
pub struct Cell {
    /// the H3 index in hex, or `col_row` of the square grid
    pub key: String,
    /// the cell's outline in WGS84
    pub outline: Polygon<f64>,
    /// matching features
    pub count: u64,
    /// features with a value of the field
    pub values: u64,
    /// sum of the field
    pub sum: f64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    count: u64,
    values: u64,
    sum: f64,
}

/// An H3 cell's outline in WGS84.
#[must_use]
pub fn h3_outline(cell: h3o::CellIndex) -> Polygon<f64> {
    let mut ring: Vec<Coord<f64>> = cell
        .boundary()
        .iter()
        .map(|ll| Coord {
            x: ll.lng(),
            y: ll.lat(),
        })
        .collect();
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    Polygon::new(LineString::from(ring), vec![])
}

/// Counts (and sums `field` of) the selected features per cell; cells with none are left out.
/// Cells come ordered by key.
pub fn aggregate(
    index: &LayerIndex,
    sel: &Selection,
    spec: CellSpec,
    field: Option<usize>,
    limits: &Limits,
) -> Result<Vec<Cell>> {
    let resolution = match spec {
        CellSpec::H3(r) => Some(
            h3o::Resolution::try_from(r)
                .map_err(|_| Error::Invalid(format!("H3 resolution {r} is not within 0..=15")))?,
        ),
        CellSpec::Square(m) if m.is_finite() && (10.0..=100_000.0).contains(&m) => None,
        CellSpec::Square(m) => {
            return Err(Error::Invalid(format!(
                "cell size {m} m is not within 10..=100000"
            )));
        }
    };
    // square cells are laid out in Web Mercator, scaled to be `size` metres at this latitude
    let lat0 = index.meta.bounds.map_or(0.0, |b| f64::midpoint(b[1], b[3]));
    let side = match spec {
        CellSpec::Square(m) => m / lat0.to_radians().cos().max(0.01),
        CellSpec::H3(_) => 0.0,
    };
    let mut h3: HashMap<h3o::CellIndex, Acc> = HashMap::new();
    let mut squares: HashMap<(i64, i64), Acc> = HashMap::new();
    let mut deadline = Deadline::after(limits.timeout);
    let mut too_many = false;
    sel.scan(index, &mut deadline, |f| {
        let (lon, lat) = centre(f);
        let acc = if let Some(res) = resolution {
            let Ok(ll) = h3o::LatLng::new(lat, lon) else {
                return true;
            };
            h3.entry(ll.to_cell(res)).or_default()
        } else {
            let (x, y) = lonlat_to_mercator(lon, lat);
            squares
                .entry(((x / side).floor() as i64, (y / side).floor() as i64))
                .or_default()
        };
        acc.count += 1;
        if let Some(v) = field.and_then(|i| number(&f.values[i])) {
            acc.values += 1;
            acc.sum += v;
        }
        if h3.len() + squares.len() > limits.max_cells {
            too_many = true;
            return false;
        }
        true
    })?;
    if too_many {
        return Err(Error::TooExpensive(format!(
            "more than {} cells; use larger cells or a bbox",
            limits.max_cells
        )));
    }
    let mut cells: Vec<Cell> = h3
        .into_iter()
        .map(|(cell, a)| Cell {
            key: cell.to_string(),
            outline: h3_outline(cell),
            count: a.count,
            values: a.values,
            sum: a.sum,
        })
        .chain(squares.into_iter().map(|((i, j), a)| {
            let corner = |di: i64, dj: i64| {
                let (x, y) = mercator_to_lonlat((i + di) as f64 * side, (j + dj) as f64 * side);
                Coord { x, y }
            };
            Cell {
                key: format!("{i}_{j}"),
                outline: Polygon::new(
                    LineString::from(vec![
                        corner(0, 0),
                        corner(1, 0),
                        corner(1, 1),
                        corner(0, 1),
                        corner(0, 0),
                    ]),
                    vec![],
                ),
                count: a.count,
                values: a.values,
                sum: a.sum,
            }
        }))
        .collect();
    cells.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(cells)
}
