//! MVT encoding of one layer of one tile, under a byte and feature budget.
//!
//! The path for each feature is: Web Mercator → tile pixel space → clip to the tile plus a
//! buffer → simplify for the zoom → snap to the integer grid → fix ring winding → MVT commands.
//! Below a layer's maximum zoom, polygons smaller than a pixel are not dropped one by one but
//! merged the way tippecanoe does: their areas accumulate, and each time a pixel's worth has
//! gathered one pixel-sized square is emitted, so dense areas keep their visual weight. When a
//! tile still exceeds its budget the tolerance and tiny-area threshold are raised and the tile is
//! encoded again; as a last resort the smallest features are dropped.

use crate::clip::ClipBox;
use crate::tile::TileCoord;
use crate::value::Value;
use crate::{Error, Result};
use geo::{
    Area, Centroid, Coord, Geometry, LineString, MapCoords, MultiLineString, MultiPoint,
    MultiPolygon, Point, Polygon, Simplify,
};
use geozero::mvt::{Message, TagsBuilder, Tile, TileValue, tile};

/// Limits on one layer of one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileBudget {
    /// Encoded (uncompressed) bytes a layer may use.
    pub max_bytes: usize,
    /// Features a layer may carry.
    pub max_features: usize,
}

impl Default for TileBudget {
    fn default() -> Self {
        Self {
            max_bytes: 500 * 1024,
            max_features: 20_000,
        }
    }
}

impl TileBudget {
    /// The budget for each of `n` layers sharing one composite tile.
    #[must_use]
    pub fn split(self, n: usize) -> Self {
        let n = n.max(1);
        Self {
            max_bytes: self.max_bytes / n,
            max_features: self.max_features / n,
        }
    }
}

/// One feature offered to the encoder.
#[derive(Debug, Clone, Copy)]
pub struct SourceFeature<'a> {
    /// Stable feature id, written as the MVT feature id.
    pub id: u64,
    /// Geometry in Web Mercator metres.
    pub geometry: &'a Geometry<f64>,
    /// Attribute values, indexed as the layer's fields.
    pub values: &'a [Value],
    /// Area (m²) or length (m) in Web Mercator, used to rank features when the budget bites.
    pub size: f64,
}

/// How a layer is written into tiles.
#[derive(Debug, Clone)]
pub struct LayerEncoder<'a> {
    /// Layer name inside the tile.
    pub name: &'a str,
    /// The attributes to write: index into [`SourceFeature::values`] and key name.
    pub fields: Vec<(usize, &'a str)>,
    /// Tile extent in integer units.
    pub extent: u32,
    /// Buffer around the tile, in extent units.
    pub buffer: u32,
    /// Whether this zoom is below the layer's maximum zoom, so detail may be generalised.
    pub generalise: bool,
}

/// What the encoder did with one layer of one tile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerStats {
    /// Features the index offered.
    pub candidates: usize,
    /// Features written.
    pub written: usize,
    /// Tiny polygons folded into merged pixels.
    pub merged_tiny: usize,
    /// Features with nothing left after clipping and snapping to the grid.
    pub dropped_tiny: usize,
    /// Features dropped to stay inside the budget.
    pub dropped_budget: usize,
    /// Encoded bytes of the layer.
    pub bytes: usize,
    /// Simplification tolerance used, in extent units.
    pub tolerance: f64,
}

/// One encoded layer and its statistics.
#[derive(Debug, Clone)]
pub struct EncodedLayer {
    /// The MVT layer.
    pub layer: tile::Layer,
    /// What happened on the way.
    pub stats: LayerStats,
}

/// Serialises layers into one MVT tile.
#[must_use]
pub fn encode_tile(layers: Vec<tile::Layer>) -> Vec<u8> {
    Tile { layers }.encode_to_vec()
}

const ATTEMPTS: u32 = 4;

impl LayerEncoder<'_> {
    /// Encodes the features that touch `tile` into one layer within `budget`.
    pub fn encode(
        &self,
        tile: TileCoord,
        features: &[SourceFeature<'_>],
        budget: &TileBudget,
    ) -> Result<EncodedLayer> {
        let mut order: Vec<usize> = (0..features.len()).collect();
        // largest first: when something must go, the smallest goes
        order.sort_by(|&a, &b| features[b].size.total_cmp(&features[a].size));
        let mut dropped_budget = 0;
        if order.len() > budget.max_features {
            dropped_budget = order.len() - budget.max_features;
            order.truncate(budget.max_features);
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            let mut out = self.encode_once(tile, features, &order, attempt)?;
            out.stats.dropped_budget += dropped_budget;
            if out.stats.bytes <= budget.max_bytes {
                return Ok(out);
            }
            last = Some(out);
        }
        // still too large: keep the largest features that fit, re-encoding so the
        // key and value tables shrink with them
        let mut out = last.ok_or_else(|| Error::Mvt("no encoding attempt".into()))?;
        let mut keep = order.len();
        while out.stats.bytes > budget.max_bytes && keep > 0 {
            let ratio = budget.max_bytes as f64 / out.stats.bytes.max(1) as f64;
            keep = ((keep as f64 * ratio * 0.9) as usize).min(keep - 1);
            out = self.encode_once(tile, features, &order[..keep], ATTEMPTS - 1)?;
            out.stats.candidates = features.len();
        }
        out.stats.dropped_budget = dropped_budget + (order.len() - keep);
        Ok(out)
    }

    fn encode_once(
        &self,
        tile: TileCoord,
        features: &[SourceFeature<'_>],
        order: &[usize],
        attempt: u32,
    ) -> Result<EncodedLayer> {
        let extent = f64::from(self.extent);
        let bounds = tile.bounds();
        let scale = extent / tile.span();
        let (left, top) = (bounds.min().x, bounds.max().y);
        let clip = ClipBox::tile(extent, f64::from(self.buffer));
        let factor = f64::from(1u32 << (2 * attempt));
        let (tolerance, tiny_area) = if self.generalise {
            // a "pixel" is 1/256 of the tile, as on a 256 px raster
            let pixel = extent / 256.0;
            (0.5 * f64::from(1u32 << attempt), pixel * pixel * factor)
        } else {
            (0.0, 0.0)
        };
        let mut stats = LayerStats {
            candidates: features.len(),
            tolerance,
            ..LayerStats::default()
        };
        let mut tags = TagsBuilder::new();
        let mut out = Vec::with_capacity(order.len());
        let mut tiny_acc = 0.0;
        for &i in order {
            let f = &features[i];
            let px = f.geometry.map_coords(|c| Coord {
                x: (c.x - left) * scale,
                y: (top - c.y) * scale,
            });
            let Some(shape) = prepare(&px, &clip, tolerance) else {
                stats.dropped_tiny += 1;
                continue;
            };
            let shape = match shape {
                Shape::Polygons(p) if tiny_area > 0.0 && p.unsigned_area() < tiny_area => {
                    tiny_acc += p.unsigned_area();
                    stats.merged_tiny += 1;
                    if tiny_acc < tiny_area {
                        continue;
                    }
                    tiny_acc -= tiny_area;
                    let Some(c) = p.centroid() else { continue };
                    Shape::Polygons(MultiPolygon::new(vec![pixel_square(c, tiny_area.sqrt())]))
                }
                s => s,
            };
            let Some(mut feature) = shape.into_mvt()? else {
                stats.dropped_tiny += 1;
                continue;
            };
            feature.id = Some(f.id);
            for &(idx, key) in &self.fields {
                let value = match f.values.get(idx) {
                    None | Some(Value::Null) => continue,
                    Some(Value::Bool(b)) => TileValue::Bool(*b),
                    Some(Value::Int(v)) => TileValue::Sint(*v),
                    Some(Value::Float(v)) => TileValue::Double(*v),
                    Some(Value::Text(s)) => TileValue::Str(s.to_string()),
                };
                let (k, v) = tags.insert_ref(key, value);
                feature.tags.push(k);
                feature.tags.push(v);
            }
            out.push(feature);
        }
        let (keys, values) = tags.into_tags();
        let layer = tile::Layer {
            version: 2,
            name: self.name.to_owned(),
            features: out,
            keys,
            values: values.into_iter().map(Into::into).collect(),
            extent: Some(self.extent),
        };
        stats.written = layer.features.len();
        stats.bytes = layer.encoded_len();
        Ok(EncodedLayer { layer, stats })
    }
}

/// A geometry in integer tile space, grouped by MVT geometry type.
enum Shape {
    Points(MultiPoint<f64>),
    Lines(MultiLineString<f64>),
    Polygons(MultiPolygon<f64>),
}

impl Shape {
    fn into_mvt(self) -> Result<Option<tile::Feature>> {
        use geozero::ToMvt;
        let geometry: Geometry<f64> = match self {
            Shape::Points(mut p) if p.0.len() == 1 => Geometry::Point(p.0.remove(0)),
            Shape::Points(p) if !p.0.is_empty() => Geometry::MultiPoint(p),
            Shape::Lines(mut l) if l.0.len() == 1 => Geometry::LineString(l.0.remove(0)),
            Shape::Lines(l) if !l.0.is_empty() => Geometry::MultiLineString(l),
            Shape::Polygons(mut p) if p.0.len() == 1 => Geometry::Polygon(p.0.remove(0)),
            Shape::Polygons(p) if !p.0.is_empty() => Geometry::MultiPolygon(p),
            _ => return Ok(None),
        };
        geometry
            .to_mvt_unscaled()
            .map(Some)
            .map_err(|e| Error::Mvt(e.to_string()))
    }
}

fn pixel_square(c: Point<f64>, side: f64) -> Polygon<f64> {
    let h = (side / 2.0).max(0.5);
    let (x0, y0) = ((c.x() - h).round(), (c.y() - h).round());
    let (x1, y1) = (
        (c.x() + h).round().max(x0 + 1.0),
        (c.y() + h).round().max(y0 + 1.0),
    );
    // clockwise on screen (y down): positive shoelace area, as MVT wants for exteriors
    Polygon::new(
        LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]),
        vec![],
    )
}

/// Clips, simplifies and snaps a pixel-space geometry; `None` when nothing is left.
fn prepare(g: &Geometry<f64>, clip: &ClipBox, tolerance: f64) -> Option<Shape> {
    let shape = match g {
        Geometry::Point(p) => Shape::Points(MultiPoint::new(vec![*p])),
        Geometry::MultiPoint(mp) => Shape::Points(mp.clone()),
        Geometry::LineString(l) => Shape::Lines(MultiLineString::new(vec![l.clone()])),
        Geometry::MultiLineString(ml) => Shape::Lines(ml.clone()),
        Geometry::Polygon(p) => Shape::Polygons(MultiPolygon::new(vec![p.clone()])),
        Geometry::MultiPolygon(mp) => Shape::Polygons(mp.clone()),
        Geometry::Rect(r) => Shape::Polygons(MultiPolygon::new(vec![r.to_polygon()])),
        Geometry::Triangle(t) => Shape::Polygons(MultiPolygon::new(vec![t.to_polygon()])),
        Geometry::Line(l) => Shape::Lines(MultiLineString::new(vec![LineString::new(vec![
            l.start, l.end,
        ])])),
        Geometry::GeometryCollection(_) => return None,
    };
    match shape {
        Shape::Points(p) => {
            let p: MultiPoint<f64> = clip
                .points(&p)
                .iter()
                .map(|p| Point::new(p.x().round(), p.y().round()))
                .collect();
            (!p.0.is_empty()).then_some(Shape::Points(p))
        }
        Shape::Lines(l) => {
            let mut l = clip.lines(&l);
            if tolerance > 0.0 {
                l = l.simplify(tolerance);
            }
            let lines: Vec<LineString<f64>> = l
                .into_iter()
                .filter_map(|l| {
                    let pts = snap(&l.0);
                    (pts.len() >= 2).then(|| LineString::new(pts))
                })
                .collect();
            (!lines.is_empty()).then(|| Shape::Lines(MultiLineString::new(lines)))
        }
        Shape::Polygons(p) => {
            let mut p = clip.polygons(&p);
            if tolerance > 0.0 {
                p = p.simplify(tolerance);
            }
            let polys: Vec<Polygon<f64>> = p
                .into_iter()
                .filter_map(|poly| {
                    let exterior = snap_ring(poly.exterior(), true)?;
                    let interiors = poly
                        .interiors()
                        .iter()
                        .filter_map(|r| snap_ring(r, false))
                        .collect();
                    Some(Polygon::new(exterior, interiors))
                })
                .collect();
            (!polys.is_empty()).then(|| Shape::Polygons(MultiPolygon::new(polys)))
        }
    }
}

/// Rounds to the integer grid and removes repeated points.
fn snap(pts: &[Coord<f64>]) -> Vec<Coord<f64>> {
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(pts.len());
    for c in pts {
        let c = Coord {
            x: c.x.round(),
            y: c.y.round(),
        };
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    out
}

/// Snaps a ring and orients it: exteriors clockwise on screen (positive area), holes the other way.
fn snap_ring(ring: &LineString<f64>, exterior: bool) -> Option<LineString<f64>> {
    let mut pts = snap(&ring.0);
    if pts.first() != pts.last() {
        let first = *pts.first()?;
        pts.push(first);
    }
    if pts.len() < 4 {
        return None;
    }
    let mut ring = LineString::new(pts);
    let area = geo::Polygon::new(ring.clone(), vec![]).signed_area();
    if area == 0.0 {
        return None;
    }
    if (area > 0.0) != exterior {
        ring.0.reverse();
    }
    Some(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proj::lonlat_to_mercator;
    use geo::polygon;
    use geozero::mvt::Message;

    fn square_at(lon: f64, lat: f64, half_m: f64) -> Geometry<f64> {
        let (x, y) = lonlat_to_mercator(lon, lat);
        Geometry::Polygon(polygon![
            (x: x - half_m, y: y - half_m),
            (x: x + half_m, y: y - half_m),
            (x: x + half_m, y: y + half_m),
            (x: x - half_m, y: y + half_m),
        ])
    }

    fn encoder(generalise: bool) -> LayerEncoder<'static> {
        LayerEncoder {
            name: "buildings",
            fields: vec![(0, "height")],
            extent: 4096,
            buffer: 64,
            generalise,
        }
    }

    #[test]
    fn one_building_round_trips_through_protobuf() {
        let g = square_at(118.7969, 32.0603, 20.0);
        let (x, y) = lonlat_to_mercator(118.7969, 32.0603);
        let t = TileCoord::containing(x, y, 16);
        let values = [Value::Int(42)];
        let f = SourceFeature {
            id: 7,
            geometry: &g,
            values: &values,
            size: 1600.0,
        };
        let out = encoder(false)
            .encode(t, &[f], &TileBudget::default())
            .unwrap();
        assert_eq!(out.stats.written, 1);
        let bytes = encode_tile(vec![out.layer]);
        let back = Tile::decode(bytes.as_slice()).unwrap();
        let layer = &back.layers[0];
        assert_eq!(layer.name, "buildings");
        assert_eq!(layer.features[0].id, Some(7));
        assert_eq!(layer.keys, vec!["height".to_owned()]);
        assert_eq!(layer.values[0].sint_value, Some(42));
        // MoveTo(1), 2 params, LineTo(3), 6 params, ClosePath
        assert_eq!(layer.features[0].geometry.len(), 11);
    }

    #[test]
    fn exterior_rings_are_clockwise_on_screen() {
        let g = square_at(118.7969, 32.0603, 20.0);
        let (x, y) = lonlat_to_mercator(118.7969, 32.0603);
        let t = TileCoord::containing(x, y, 16);
        let f = SourceFeature {
            id: 1,
            geometry: &g,
            values: &[],
            size: 1.0,
        };
        let out = encoder(false)
            .encode(t, &[f], &TileBudget::default())
            .unwrap();
        let mut poly = Vec::new();
        let geom = &out.layer.features[0].geometry;
        let (mut cx, mut cy) = (0i32, 0i32);
        let unzig = |v: u32| ((v >> 1) as i32) ^ -((v & 1) as i32);
        for pair in [1usize, 4, 6, 8] {
            cx += unzig(geom[pair]);
            cy += unzig(geom[pair + 1]);
            poly.push((f64::from(cx), f64::from(cy)));
        }
        poly.push(poly[0]);
        let area = Polygon::new(LineString::from(poly), vec![]).signed_area();
        assert!(
            area > 0.0,
            "exterior area {area} must be positive in y-down space"
        );
    }

    #[test]
    fn tiny_buildings_merge_into_pixels_at_low_zoom() {
        // 400 buildings of 10 m at z10, where a pixel is ~150 m: each alone is invisible
        let shapes: Vec<Geometry<f64>> = (0..400)
            .map(|i| {
                square_at(
                    118.70 + f64::from(i % 20) * 0.002,
                    32.00 + f64::from(i / 20) * 0.002,
                    5.0,
                )
            })
            .collect();
        let feats: Vec<SourceFeature<'_>> = shapes
            .iter()
            .enumerate()
            .map(|(i, g)| SourceFeature {
                id: i as u64,
                geometry: g,
                values: &[],
                size: 100.0,
            })
            .collect();
        let (x, y) = lonlat_to_mercator(118.72, 32.02);
        let t = TileCoord::containing(x, y, 10);
        let out = encoder(true)
            .encode(t, &feats, &TileBudget::default())
            .unwrap();
        assert_eq!(out.stats.merged_tiny, 400);
        assert!(
            out.stats.written > 0 && out.stats.written < 400,
            "{:?}",
            out.stats
        );
    }

    #[test]
    fn feature_budget_keeps_the_largest() {
        let shapes: Vec<Geometry<f64>> = (0..50)
            .map(|i| square_at(118.79 + f64::from(i) * 0.0005, 32.06, 1.0 + f64::from(i)))
            .collect();
        let feats: Vec<SourceFeature<'_>> = shapes
            .iter()
            .enumerate()
            .map(|(i, g)| SourceFeature {
                id: i as u64,
                geometry: g,
                values: &[],
                size: (i * i) as f64,
            })
            .collect();
        let (x, y) = lonlat_to_mercator(118.80, 32.06);
        let t = TileCoord::containing(x, y, 14);
        let budget = TileBudget {
            max_bytes: 1 << 20,
            max_features: 10,
        };
        let out = encoder(false).encode(t, &feats, &budget).unwrap();
        assert!(out.stats.written <= 10);
        assert!(out.layer.features.iter().all(|f| f.id.unwrap() >= 40));
    }

    #[test]
    fn byte_budget_is_respected() {
        let shapes: Vec<Geometry<f64>> = (0..2000)
            .map(|i| {
                square_at(
                    118.79 + f64::from(i % 50) * 0.0003,
                    32.06 + f64::from(i / 50) * 0.0003,
                    10.0,
                )
            })
            .collect();
        let vals: Vec<[Value; 1]> = (0..2000)
            .map(|i| [Value::from(format!("building number {i}"))])
            .collect();
        let feats: Vec<SourceFeature<'_>> = shapes
            .iter()
            .zip(&vals)
            .enumerate()
            .map(|(i, (g, v))| SourceFeature {
                id: i as u64,
                geometry: g,
                values: v,
                size: 1.0,
            })
            .collect();
        let (x, y) = lonlat_to_mercator(118.80, 32.065);
        let t = TileCoord::containing(x, y, 13);
        let budget = TileBudget {
            max_bytes: 20_000,
            max_features: 100_000,
        };
        let out = encoder(false).encode(t, &feats, &budget).unwrap();
        assert!(out.stats.bytes <= 20_000, "{:?}", out.stats);
        assert!(out.stats.dropped_budget > 0);
        assert_eq!(out.layer.encoded_len(), out.stats.bytes);
    }

    #[test]
    fn features_outside_the_tile_are_dropped() {
        let g = square_at(10.0, 10.0, 20.0);
        let (x, y) = lonlat_to_mercator(118.7969, 32.0603);
        let t = TileCoord::containing(x, y, 14);
        let f = SourceFeature {
            id: 1,
            geometry: &g,
            values: &[],
            size: 1.0,
        };
        let out = encoder(false)
            .encode(t, &[f], &TileBudget::default())
            .unwrap();
        assert_eq!(out.stats.written, 0);
    }
}
