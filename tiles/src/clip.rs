//! Clipping geometries in tile pixel space to the tile square plus a buffer.
//!
//! Polygon rings are clipped one by one (Sutherland–Hodgman against an axis-aligned box, which
//! keeps rings closed and is exact for rectangles); lines are cut into the pieces inside the box
//! (Liang–Barsky). Points need only [`ClipBox::contains`].

use geo::{Coord, LineString, MultiLineString};

/// An axis-aligned clip box in tile pixel space.
#[derive(Debug, Clone, Copy)]
pub struct ClipBox {
    /// left edge
    pub min_x: f64,
    /// top edge
    pub min_y: f64,
    /// right edge
    pub max_x: f64,
    /// bottom edge
    pub max_y: f64,
}

impl ClipBox {
    /// The tile square `0..extent` grown by `buffer` on each side.
    #[must_use]
    pub fn tile(extent: f64, buffer: f64) -> Self {
        Self {
            min_x: -buffer,
            min_y: -buffer,
            max_x: extent + buffer,
            max_y: extent + buffer,
        }
    }

    /// Whether a point is inside the box (edges included).
    #[must_use]
    pub fn contains(&self, c: Coord<f64>) -> bool {
        c.x >= self.min_x && c.x <= self.max_x && c.y >= self.min_y && c.y <= self.max_y
    }

    /// The pieces of each line inside the box.
    #[must_use]
    pub fn lines(&self, lines: &MultiLineString<f64>) -> MultiLineString<f64> {
        let mut out = Vec::new();
        for line in lines {
            let mut current: Vec<Coord<f64>> = Vec::new();
            for seg in line.0.windows(2) {
                match self.segment(seg[0], seg[1]) {
                    Some((a, b)) => {
                        if current.last() != Some(&a) {
                            if current.len() > 1 {
                                out.push(LineString::new(std::mem::take(&mut current)));
                            }
                            current.clear();
                            current.push(a);
                        }
                        current.push(b);
                        // the segment left the box: close this piece
                        if b != seg[1] {
                            out.push(LineString::new(std::mem::take(&mut current)));
                        }
                    }
                    None => {
                        if current.len() > 1 {
                            out.push(LineString::new(std::mem::take(&mut current)));
                        }
                        current.clear();
                    }
                }
            }
            if current.len() > 1 {
                out.push(LineString::new(current));
            }
        }
        MultiLineString::new(out)
    }

    /// Liang–Barsky: the part of segment a→b inside the box.
    fn segment(&self, a: Coord<f64>, b: Coord<f64>) -> Option<(Coord<f64>, Coord<f64>)> {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
        for (p, q) in [
            (-dx, a.x - self.min_x),
            (dx, self.max_x - a.x),
            (-dy, a.y - self.min_y),
            (dy, self.max_y - a.y),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if t0 > t1 {
            return None;
        }
        let at = |t: f64| Coord {
            x: a.x + t * dx,
            y: a.y + t * dy,
        };
        Some((
            if t0 > 0.0 { at(t0) } else { a },
            if t1 < 1.0 { at(t1) } else { b },
        ))
    }

    /// One ring clipped to the box (Sutherland–Hodgman against the four edges); `None` when
    /// fewer than three points remain.
    #[must_use]
    pub fn ring(&self, ring: &LineString<f64>) -> Option<LineString<f64>> {
        let mut pts: Vec<Coord<f64>> = ring.0.clone();
        if pts.first() == pts.last() {
            pts.pop();
        }
        if pts.iter().all(|c| self.contains(*c)) {
            return (pts.len() >= 3).then(|| LineString::new(ring.0.clone()));
        }
        for edge in 0..4 {
            if pts.is_empty() {
                break;
            }
            let inside = |c: &Coord<f64>| match edge {
                0 => c.x >= self.min_x,
                1 => c.x <= self.max_x,
                2 => c.y >= self.min_y,
                _ => c.y <= self.max_y,
            };
            let cross = |a: Coord<f64>, b: Coord<f64>| {
                let t = match edge {
                    0 => (self.min_x - a.x) / (b.x - a.x),
                    1 => (self.max_x - a.x) / (b.x - a.x),
                    2 => (self.min_y - a.y) / (b.y - a.y),
                    _ => (self.max_y - a.y) / (b.y - a.y),
                };
                Coord {
                    x: a.x + t * (b.x - a.x),
                    y: a.y + t * (b.y - a.y),
                }
            };
            let input = std::mem::take(&mut pts);
            let mut prev = input[input.len() - 1];
            for &cur in &input {
                match (inside(&prev), inside(&cur)) {
                    (true, true) => pts.push(cur),
                    (true, false) => pts.push(cross(prev, cur)),
                    (false, true) => {
                        pts.push(cross(prev, cur));
                        pts.push(cur);
                    }
                    (false, false) => {}
                }
                prev = cur;
            }
        }
        if pts.len() < 3 {
            return None;
        }
        pts.push(pts[0]);
        Some(LineString::new(pts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Area, Polygon, line_string, polygon};

    #[test]
    fn square_half_outside_keeps_the_inside_half() {
        let b = ClipBox::tile(10.0, 0.0);
        let sq = polygon![(x: 5.0, y: 2.0), (x: 15.0, y: 2.0), (x: 15.0, y: 8.0), (x: 5.0, y: 8.0)];
        let out = Polygon::new(b.ring(sq.exterior()).unwrap(), vec![]);
        assert!((out.unsigned_area() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn polygon_fully_outside_vanishes() {
        let b = ClipBox::tile(10.0, 1.0);
        let sq = polygon![(x: 20.0, y: 20.0), (x: 30.0, y: 20.0), (x: 30.0, y: 30.0)];
        assert!(b.ring(sq.exterior()).is_none());
    }

    #[test]
    fn line_through_the_box_is_cut_at_the_edges() {
        let b = ClipBox::tile(10.0, 0.0);
        let l = line_string![(x: -5.0, y: 5.0), (x: 15.0, y: 5.0)];
        let out = b.lines(&MultiLineString::new(vec![l]));
        assert_eq!(out.0.len(), 1);
        assert_eq!(
            out.0[0].0,
            vec![Coord { x: 0.0, y: 5.0 }, Coord { x: 10.0, y: 5.0 }]
        );
    }

    #[test]
    fn line_leaving_and_reentering_gives_two_pieces() {
        let b = ClipBox::tile(10.0, 0.0);
        let l =
            line_string![(x: 2.0, y: 2.0), (x: 2.0, y: 20.0), (x: 8.0, y: 20.0), (x: 8.0, y: 2.0)];
        let out = b.lines(&MultiLineString::new(vec![l]));
        assert_eq!(out.0.len(), 2);
    }
}
