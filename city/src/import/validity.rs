//! Geometry validity for import, fast enough for large polygons.
//!
//! `geo`'s `Validation` tests every pair of segments of a ring for intersection, which takes
//! minutes on a 20,000-vertex district boundary. Ring self-intersection is checked here with the
//! Bentley–Ottmann sweep `geo` also provides (O((n + k) log n)); the remaining rules (holes
//! inside shells, parts not overlapping) are left to `geo` where they are cheap.

use geo::algorithm::sweep::Intersections;
use geo::{Coord, Geometry, Line, LineIntersection, LineString, Polygon, Validation};

/// Rings above this many vertices skip `geo`'s quadratic checks.
const QUADRATIC_LIMIT: usize = 2_000;

fn finite(c: &Coord<f64>) -> bool {
    c.x.is_finite() && c.y.is_finite()
}

/// Whether a closed ring crosses or overlaps itself.
#[must_use]
pub fn ring_self_intersects(ring: &LineString<f64>) -> bool {
    let lines: Vec<Line<f64>> = ring.lines().filter(|l| l.start != l.end).collect();
    if lines.len() <= SMALL_RING {
        // a building outline: comparing every pair is cheaper than setting up a sweep
        return lines.iter().enumerate().any(|(i, a)| {
            lines[i + 1..]
                .iter()
                .filter_map(|b| {
                    geo::line_intersection::line_intersection(*a, *b).map(|hit| (b, hit))
                })
                .any(|(b, hit)| crosses(*a, *b, hit))
        });
    }
    Intersections::from_iter(lines).any(|(a, b, hit)| crosses(a, b, hit))
}

/// Rings with at most this many segments are checked pair by pair.
const SMALL_RING: usize = 32;

/// Whether an intersection of two segments of one ring makes the ring invalid.
fn crosses(a: Line<f64>, b: Line<f64>, hit: LineIntersection<f64>) -> bool {
    match hit {
        LineIntersection::SinglePoint {
            intersection,
            is_proper,
        } => {
            if is_proper {
                return true;
            }
            // neighbouring segments meet at their shared vertex; anything else is a crossing
            let shared = (a.start == b.end && intersection == a.start)
                || (a.end == b.start && intersection == a.end);
            !shared
        }
        LineIntersection::Collinear { .. } => true,
    }
}

fn check_ring(ring: &LineString<f64>, what: &str) -> Result<(), String> {
    if ring.0.len() < 4 {
        return Err(format!("{what} has fewer than 4 points"));
    }
    if ring_self_intersects(ring) {
        return Err(format!("{what} has a self-intersection"));
    }
    Ok(())
}

fn check_polygon(p: &Polygon<f64>, part: Option<usize>) -> Result<(), String> {
    let prefix = part.map_or_else(String::new, |i| format!("polygon {i}: "));
    check_ring(p.exterior(), &format!("{prefix}exterior ring"))?;
    for (i, r) in p.interiors().iter().enumerate() {
        check_ring(r, &format!("{prefix}interior ring {i}"))?;
    }
    let vertices: usize =
        p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>();
    if !p.interiors().is_empty() && vertices <= QUADRATIC_LIMIT {
        p.check_validation().map_err(|e| format!("{prefix}{e}"))?;
    }
    Ok(())
}

/// Checks a geometry for what would break tiles and queries: non-finite coordinates, rings too
/// short or crossing themselves, lines with fewer than two points.
pub fn check(g: &Geometry<f64>) -> Result<(), String> {
    let mut bad = false;
    geo::CoordsIter::coords_iter(g).for_each(|c| bad |= !finite(&c));
    if bad {
        return Err("a coordinate is not a finite number".into());
    }
    match g {
        Geometry::Polygon(p) => check_polygon(p, None),
        Geometry::MultiPolygon(mp) => {
            for (i, p) in mp.0.iter().enumerate() {
                check_polygon(p, Some(i))?;
            }
            Ok(())
        }
        Geometry::LineString(l) if l.0.len() < 2 => Err("a line has fewer than 2 points".into()),
        Geometry::MultiLineString(ml) if ml.0.iter().any(|l| l.0.len() < 2) => {
            Err("a line has fewer than 2 points".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn square_is_valid_and_bowtie_is_not() {
        let sq = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
        assert!(check(&Geometry::Polygon(sq)).is_ok());
        let bowtie = polygon![(x: 0., y: 0.), (x: 1., y: 1.), (x: 1., y: 0.), (x: 0., y: 1.)];
        assert!(
            check(&Geometry::Polygon(bowtie))
                .unwrap_err()
                .contains("self-intersection")
        );
    }

    #[test]
    fn spike_back_along_an_edge_is_invalid() {
        let spike = polygon![(x: 0., y: 0.), (x: 2., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.)];
        assert!(check(&Geometry::Polygon(spike)).is_err());
    }

    #[test]
    fn hole_outside_its_shell_is_invalid() {
        let p = Polygon::new(
            LineString::from(vec![(0., 0.), (4., 0.), (4., 4.), (0., 4.), (0., 0.)]),
            vec![LineString::from(vec![
                (5., 5.),
                (6., 5.),
                (6., 6.),
                (5., 5.),
            ])],
        );
        assert!(check(&Geometry::Polygon(p)).is_err());
    }
}
