//! Direct MVT command encoding for the common case: a geometry wholly inside the tile's clip
//! box that needs no simplification (every building at its full-detail zooms).
//!
//! It writes the command integers straight from Web Mercator coordinates with one reusable
//! scratch buffer, where the general path (clip, simplify, snap, then geozero's writer) builds
//! several intermediate geometries per feature. Both paths produce the same commands; a test
//! compares them.

use geo::{Coord, Geometry, LineString, Polygon};
use geozero::mvt::tile::GeomType;

const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

fn command(id: u32, count: u32) -> u32 {
    (id & 7) | (count << 3)
}

fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Writes geometries into MVT command integers, tracking the cursor.
pub(crate) struct CommandWriter<'s> {
    /// output commands
    pub out: Vec<u32>,
    cursor: (i32, i32),
    scratch: &'s mut Vec<(i32, i32)>,
    /// the map from Web Mercator to tile space
    to_tile: &'s dyn Fn(Coord<f64>) -> Option<(i32, i32)>,
}

impl<'s> CommandWriter<'s> {
    pub(crate) fn new(
        scratch: &'s mut Vec<(i32, i32)>,
        to_tile: &'s dyn Fn(Coord<f64>) -> Option<(i32, i32)>,
    ) -> Self {
        Self {
            // a building (MoveTo, LineTo, 4 points, ClosePath) fits without growing
            out: Vec::with_capacity(16),
            cursor: (0, 0),
            scratch,
            to_tile,
        }
    }

    fn point_delta(&mut self, p: (i32, i32)) {
        self.out.push(zigzag(p.0 - self.cursor.0));
        self.out.push(zigzag(p.1 - self.cursor.1));
        self.cursor = p;
    }

    /// Snaps a coordinate sequence into the scratch buffer, dropping repeats; `false` when a
    /// coordinate falls outside the clip box.
    fn snap(&mut self, coords: &[Coord<f64>]) -> bool {
        self.scratch.clear();
        for &c in coords {
            let Some(p) = (self.to_tile)(c) else {
                return false;
            };
            if self.scratch.last() != Some(&p) {
                self.scratch.push(p);
            }
        }
        true
    }

    /// One ring; `Ok(false)` when it degenerates, `Err(())` when it leaves the clip box.
    fn ring(&mut self, ring: &LineString<f64>, exterior: bool) -> Result<bool, ()> {
        if !self.snap(&ring.0) {
            return Err(());
        }
        if self.scratch.len() > 1 && self.scratch.first() == self.scratch.last() {
            self.scratch.pop();
        }
        let n = self.scratch.len();
        if n < 3 {
            return Ok(false);
        }
        let area: i64 = (0..n)
            .map(|i| {
                let (a, b) = (self.scratch[i], self.scratch[(i + 1) % n]);
                i64::from(a.0) * i64::from(b.1) - i64::from(b.0) * i64::from(a.1)
            })
            .sum();
        if area == 0 {
            return Ok(false);
        }
        // exteriors clockwise on screen (positive area in y-down space), holes the other way
        if (area > 0) != exterior {
            // reverse around the first point, as reversing the closed ring would
            self.scratch[1..].reverse();
        }
        let pts = std::mem::take(self.scratch);
        self.out.push(command(MOVE_TO, 1));
        self.point_delta(pts[0]);
        self.out.push(command(LINE_TO, (n - 1) as u32));
        for &p in &pts[1..] {
            self.point_delta(p);
        }
        self.out.push(command(CLOSE_PATH, 1));
        *self.scratch = pts;
        Ok(true)
    }

    fn polygon(&mut self, p: &Polygon<f64>) -> Result<bool, ()> {
        if !self.ring(p.exterior(), true)? {
            return Ok(false);
        }
        for r in p.interiors() {
            self.ring(r, false)?;
        }
        Ok(true)
    }

    fn line(&mut self, l: &LineString<f64>) -> Result<bool, ()> {
        if !self.snap(&l.0) {
            return Err(());
        }
        if self.scratch.len() < 2 {
            return Ok(false);
        }
        let pts = std::mem::take(self.scratch);
        self.out.push(command(MOVE_TO, 1));
        self.point_delta(pts[0]);
        self.out.push(command(LINE_TO, (pts.len() - 1) as u32));
        for &p in &pts[1..] {
            self.point_delta(p);
        }
        *self.scratch = pts;
        Ok(true)
    }

    /// Writes every part; `None` when one leaves the clip box or none is left.
    fn parts<'g, T: 'g>(
        &mut self,
        parts: impl IntoIterator<Item = &'g T>,
        write: fn(&mut Self, &T) -> Result<bool, ()>,
        kind: GeomType,
    ) -> Option<GeomType> {
        let mut any = false;
        for part in parts {
            any |= write(self, part).ok()?;
        }
        any.then_some(kind)
    }

    /// Encodes a geometry; `None` when it leaves the clip box or needs the general path.
    pub(crate) fn geometry(mut self, g: &Geometry<f64>) -> Option<(GeomType, Vec<u32>)> {
        let kind = match g {
            Geometry::Polygon(p) => {
                self.parts(std::iter::once(p), Self::polygon, GeomType::Polygon)?
            }
            Geometry::MultiPolygon(mp) => self.parts(mp, Self::polygon, GeomType::Polygon)?,
            Geometry::LineString(l) => {
                self.parts(std::iter::once(l), Self::line, GeomType::Linestring)?
            }
            Geometry::MultiLineString(ml) => self.parts(ml, Self::line, GeomType::Linestring)?,
            Geometry::Point(p) => {
                let q = (self.to_tile)(p.0)?;
                self.out.push(command(MOVE_TO, 1));
                self.point_delta(q);
                GeomType::Point
            }
            _ => return None,
        };
        Some((kind, self.out))
    }
}
