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

/// Makes a geometry valid the way PostGIS's `ST_MakeValid` does, keeping its kind: a polygon
/// is rebuilt from its rings by a boolean union under the even-odd rule (self-intersections
/// resolved, rings touching along a line split, holes outside their shell dropped), then its
/// parts are unioned; collapsed rings and parts (fewer than three distinct points, no area)
/// are dropped. A line keeps its finite points without repeats, when two or more remain; a
/// point its finite coordinates. `None` when nothing valid is left.
#[must_use]
pub fn repair(g: &Geometry<f64>) -> Option<Geometry<f64>> {
    let out = match g {
        Geometry::Polygon(p) => polygons(std::slice::from_ref(p)),
        Geometry::MultiPolygon(mp) => polygons(&mp.0),
        Geometry::Rect(r) => polygons(&[r.to_polygon()]),
        Geometry::Triangle(t) => polygons(&[t.to_polygon()]),
        Geometry::LineString(l) => line(l).map(Geometry::LineString),
        Geometry::Line(l) => line(&LineString::new(vec![l.start, l.end])).map(Geometry::LineString),
        Geometry::MultiLineString(ml) => {
            let parts: Vec<LineString<f64>> = ml.0.iter().filter_map(line).collect();
            (!parts.is_empty()).then(|| Geometry::MultiLineString(geo::MultiLineString::new(parts)))
        }
        Geometry::Point(p) => finite(&p.0).then(|| g.clone()),
        Geometry::MultiPoint(mp) => {
            let pts: Vec<geo::Point<f64>> = mp.0.iter().filter(|p| finite(&p.0)).copied().collect();
            (!pts.is_empty()).then(|| Geometry::MultiPoint(geo::MultiPoint::new(pts)))
        }
        Geometry::GeometryCollection(_) => None,
    }?;
    check(&out).is_ok().then_some(out)
}

/// A line's finite points without consecutive repeats, when at least two remain.
fn line(l: &LineString<f64>) -> Option<LineString<f64>> {
    let mut pts: Vec<Coord<f64>> = Vec::with_capacity(l.0.len());
    for c in l.0.iter().filter(|c| finite(c)) {
        if pts.last() != Some(c) {
            pts.push(*c);
        }
    }
    (pts.len() >= 2).then(|| LineString::new(pts))
}

/// Polygons rebuilt valid: each from its rings under the even-odd rule, then all unioned.
fn polygons(ps: &[Polygon<f64>]) -> Option<Geometry<f64>> {
    use geo::algorithm::bool_ops::{BooleanOps, FillRule};
    use geo::{Area, MultiPolygon};
    let empty = MultiPolygon::<f64>::new(Vec::new());
    let mut pieces: Vec<MultiPolygon<f64>> = Vec::new();
    for p in ps {
        let rings: Vec<Polygon<f64>> = std::iter::once(p.exterior())
            .chain(p.interiors())
            .filter_map(line)
            .filter(|r| {
                let mut distinct = r.0.clone();
                distinct.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
                distinct.dedup();
                distinct.len() >= 3
            })
            .map(|r| Polygon::new(r, Vec::new()))
            .collect();
        if rings.is_empty() {
            continue;
        }
        let piece = MultiPolygon::new(rings).union_with_fill_rule(&empty, FillRule::EvenOdd);
        if !piece.0.is_empty() {
            pieces.push(piece);
        }
    }
    let whole = match pieces.len() {
        0 => return None,
        1 => pieces.pop()?,
        _ => geo::unary_union(pieces.iter()),
    };
    let kept: Vec<Polygon<f64>> = whole
        .0
        .into_iter()
        .filter(|p| p.unsigned_area() > 0.0)
        .collect();
    match kept.len() {
        0 => None,
        1 => kept.into_iter().next().map(Geometry::Polygon),
        _ => Some(Geometry::MultiPolygon(MultiPolygon::new(kept))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn repair_resolves_what_real_data_gets_wrong() {
        use geo::Area;
        // a bow-tie: two triangles, as ST_MakeValid makes it
        let bowtie = polygon![(x: 0., y: 0.), (x: 2., y: 2.), (x: 2., y: 0.), (x: 0., y: 2.)];
        let fixed = repair(&Geometry::Polygon(bowtie)).expect("repaired");
        let Geometry::MultiPolygon(mp) = &fixed else {
            panic!("{fixed:?}")
        };
        assert_eq!(mp.0.len(), 2);
        assert!((fixed.unsigned_area() - 2.0).abs() < 1e-9);
        assert!(check(&fixed).is_ok() && fixed.is_valid());
        // a spike back along an edge: the spike is dropped, the square kept
        let spike = Polygon::new(
            LineString::from(vec![
                (0., 0.),
                (2., 0.),
                (3., 0.),
                (2., 0.),
                (2., 2.),
                (0., 2.),
                (0., 0.),
            ]),
            vec![],
        );
        let fixed = repair(&Geometry::Polygon(spike)).expect("repaired");
        assert!((fixed.unsigned_area() - 4.0).abs() < 1e-9, "{fixed:?}");
        assert!(check(&fixed).is_ok() && fixed.is_valid());
        // a two-point hole collapses and goes; a hole outside its shell goes too
        let p = Polygon::new(
            LineString::from(vec![(0., 0.), (4., 0.), (4., 4.), (0., 4.), (0., 0.)]),
            vec![LineString::from(vec![(1., 1.), (2., 2.), (1., 1.)])],
        );
        let fixed = repair(&Geometry::Polygon(p)).expect("repaired");
        assert!((fixed.unsigned_area() - 16.0).abs() < 1e-9);
        assert!(check(&fixed).is_ok() && fixed.is_valid());
        // a hole sharing an edge with its shell: the shell minus the hole
        let p = Polygon::new(
            LineString::from(vec![(0., 0.), (4., 0.), (4., 4.), (0., 4.), (0., 0.)]),
            vec![LineString::from(vec![
                (0., 0.),
                (2., 0.),
                (2., 2.),
                (0., 2.),
                (0., 0.),
            ])],
        );
        let fixed = repair(&Geometry::Polygon(p)).expect("repaired");
        assert!((fixed.unsigned_area() - 12.0).abs() < 1e-9, "{fixed:?}");
        assert!(check(&fixed).is_ok() && fixed.is_valid());
        // a ring of two points: nothing is left
        let flat = Polygon::new(LineString::from(vec![(0., 0.), (1., 1.), (0., 0.)]), vec![]);
        assert!(repair(&Geometry::Polygon(flat)).is_none());
        // lines: repeats and non-finite points go, one point is not a line
        let l = LineString::from(vec![(0., 0.), (0., 0.), (f64::NAN, 1.), (1., 1.)]);
        assert_eq!(
            repair(&Geometry::LineString(l)),
            Some(Geometry::LineString(LineString::from(vec![
                (0., 0.),
                (1., 1.)
            ])))
        );
        let l = LineString::from(vec![(0., 0.), (0., 0.)]);
        assert!(repair(&Geometry::LineString(l)).is_none());
    }

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
