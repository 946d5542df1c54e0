//! GeoJSON out of the index: features back in WGS84, written straight into a string.

use crate::index::IndexedFeature;
use crate::layer::LayerMeta;
use citytwin_tiles::proj::mercator_to_lonlat;
use citytwin_tiles::value::json_string;
use geo::{Coord, Geometry, LineString, MultiPolygon, Polygon};
use std::fmt::Write as _;

/// Decimal places of coordinates written (about 1 cm).
const PRECISION: f64 = 1e7;

fn round(v: f64) -> f64 {
    (v * PRECISION).round() / PRECISION
}

fn coord(out: &mut String, c: Coord<f64>, mercator: bool) {
    let (x, y) = if mercator {
        mercator_to_lonlat(c.x, c.y)
    } else {
        (c.x, c.y)
    };
    let _ = write!(out, "[{},{}]", round(x), round(y));
}

fn line(out: &mut String, l: &LineString<f64>, mercator: bool) {
    out.push('[');
    for (i, c) in l.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        coord(out, *c, mercator);
    }
    out.push(']');
}

fn polygon(out: &mut String, p: &Polygon<f64>, mercator: bool) {
    out.push('[');
    line(out, p.exterior(), mercator);
    for r in p.interiors() {
        out.push(',');
        line(out, r, mercator);
    }
    out.push(']');
}

fn list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

/// Writes a geometry as a GeoJSON geometry object; `mercator` says the coordinates are Web
/// Mercator metres (to be written as longitude/latitude), otherwise they already are.
pub fn write_geometry(out: &mut String, g: &Geometry<f64>, mercator: bool) {
    match g {
        Geometry::Point(p) => {
            out.push_str(r#"{"type":"Point","coordinates":"#);
            coord(out, p.0, mercator);
        }
        Geometry::MultiPoint(mp) => {
            out.push_str(r#"{"type":"MultiPoint","coordinates":"#);
            list(out, &mp.0, |o, p| coord(o, p.0, mercator));
        }
        Geometry::LineString(l) => {
            out.push_str(r#"{"type":"LineString","coordinates":"#);
            line(out, l, mercator);
        }
        Geometry::MultiLineString(ml) => {
            out.push_str(r#"{"type":"MultiLineString","coordinates":"#);
            list(out, &ml.0, |o, l| line(o, l, mercator));
        }
        Geometry::Polygon(p) => {
            out.push_str(r#"{"type":"Polygon","coordinates":"#);
            polygon(out, p, mercator);
        }
        Geometry::MultiPolygon(mp) => write_multipolygon_inner(out, mp, mercator),
        Geometry::Line(l) => {
            return write_geometry(out, &Geometry::LineString((*l).into()), mercator);
        }
        Geometry::Rect(r) => {
            return write_geometry(out, &Geometry::Polygon(r.to_polygon()), mercator);
        }
        Geometry::Triangle(t) => {
            return write_geometry(out, &Geometry::Polygon(t.to_polygon()), mercator);
        }
        Geometry::GeometryCollection(gc) => {
            out.push_str(r#"{"type":"GeometryCollection","geometries":"#);
            list(out, &gc.0, |o, g| write_geometry(o, g, mercator));
        }
    }
    out.push('}');
}

fn write_multipolygon_inner(out: &mut String, mp: &MultiPolygon<f64>, mercator: bool) {
    out.push_str(r#"{"type":"MultiPolygon","coordinates":"#);
    list(out, &mp.0, |o, p| polygon(o, p, mercator));
}

/// Which properties of a feature to write.
#[derive(Debug, Clone, Copy)]
pub enum Properties<'a> {
    /// every field
    All,
    /// these fields (indexes), in this order
    Only(&'a [usize]),
}

/// Writes one indexed feature as a GeoJSON Feature: its id, the chosen properties (nulls
/// included, so every feature of a layer has the same keys) and `extra` members of
/// `properties`, already JSON.
pub fn write_feature(
    out: &mut String,
    meta: &LayerMeta,
    f: &IndexedFeature,
    props: Properties<'_>,
    extra: &[(&str, String)],
    with_geometry: bool,
) {
    let _ = write!(out, r#"{{"type":"Feature","id":{},"properties":{{"#, f.id);
    let mut first = true;
    let mut field = |out: &mut String, i: usize| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&json_string(&meta.fields[i].name));
        out.push(':');
        out.push_str(&f.values[i].to_json());
    };
    match props {
        Properties::All => (0..meta.fields.len()).for_each(|i| field(out, i)),
        Properties::Only(keep) => keep.iter().for_each(|&i| field(out, i)),
    }
    for (k, v) in extra {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(v);
    }
    out.push_str(r#"},"geometry":"#);
    if with_geometry {
        write_geometry(out, &f.geometry, true);
    } else {
        out.push_str("null");
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use citytwin_tiles::proj::lonlat_to_mercator;
    use geo::Point;

    #[test]
    fn mercator_goes_back_to_seven_decimals() {
        let (x, y) = lonlat_to_mercator(118.796_877, 32.060_255);
        let mut s = String::new();
        write_geometry(&mut s, &Point::new(x, y).into(), true);
        assert_eq!(
            s,
            r#"{"type":"Point","coordinates":[118.796877,32.060255]}"#
        );
    }
}
