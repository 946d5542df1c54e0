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
use crate::commands::CommandWriter;
use crate::tile::TileCoord;
use crate::value::Value;
use crate::{Error, Result};
use geo::{
    Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon,
    Simplify,
};
use geozero::mvt::{Message, TileValue, tile};

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
    /// A point of the feature (Web Mercator), where a merged pixel stands for it.
    pub anchor: Coord<f64>,
}

/// The extent citytwin writes every tile with, in integer units (the MVT default).
pub const EXTENT: u32 = 4096;
/// The buffer around every tile citytwin writes, in extent units.
pub const BUFFER: u32 = 64;

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
    /// At the layer's maximum zoom, where every feature must be in the tile: attributes left
    /// out (the last of the layer's tile fields first) to fit the byte budget.
    pub fields_dropped: usize,
    /// At the layer's maximum zoom: over the byte budget even without attributes, served
    /// whole all the same.
    pub over_budget: bool,
}

/// One encoded layer and its statistics.
#[derive(Debug, Clone)]
pub struct EncodedLayer {
    /// The serialised MVT `Layer` message, encoded once and measured against the budget.
    pub bytes: Vec<u8>,
    /// What happened on the way.
    pub stats: LayerStats,
}

impl EncodedLayer {
    /// Decodes the layer back (for tests and tools; the server never needs to).
    pub fn decode(&self) -> Result<tile::Layer> {
        tile::Layer::decode(self.bytes.as_slice()).map_err(|e| Error::Mvt(e.to_string()))
    }
}

/// Joins serialised layers into one MVT tile. A `Tile` message is nothing but its repeated
/// `layers` field (number 3), so each layer is framed, not encoded again.
#[must_use]
pub fn encode_tile(layers: &[EncodedLayer]) -> Vec<u8> {
    let mut out = Vec::with_capacity(layers.iter().map(|l| l.bytes.len() + 6).sum());
    for l in layers {
        out.push(0x1a); // field 3, length-delimited
        let mut n = l.bytes.len() as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(&l.bytes);
    }
    out
}

const ATTEMPTS: u32 = 4;

/// Tile space of one tile: the affine map from Web Mercator and the clip box.
struct Frame {
    left: f64,
    top: f64,
    scale: f64,
    clip: ClipBox,
}

impl Frame {
    fn px(&self, c: Coord<f64>) -> Coord<f64> {
        Coord {
            x: (c.x - self.left) * self.scale,
            y: (self.top - c.y) * self.scale,
        }
    }
}

/// The key and value tables of one layer; values are looked up without allocating.
#[derive(Default)]
struct Tags<'a> {
    values: Vec<tile::Value>,
    index: rustc_hash::FxHashMap<TagValue<'a>, u32>,
}

#[derive(Hash, PartialEq, Eq)]
enum TagValue<'a> {
    Bool(bool),
    Int(i64),
    Float(u64),
    Text(&'a str),
}

impl<'a> Tags<'a> {
    fn value(&mut self, v: &'a Value) -> Option<u32> {
        let key = match v {
            Value::Null => return None,
            Value::Bool(b) => TagValue::Bool(*b),
            Value::Int(i) => TagValue::Int(*i),
            Value::Float(f) => TagValue::Float(f.to_bits()),
            Value::Text(s) => TagValue::Text(s),
        };
        if let Some(&i) = self.index.get(&key) {
            return Some(i);
        }
        let tv = match v {
            Value::Null => return None,
            Value::Bool(b) => TileValue::Bool(*b),
            Value::Int(i) => TileValue::Sint(*i),
            Value::Float(f) => TileValue::Double(*f),
            Value::Text(s) => TileValue::Str(s.to_string()),
        };
        let i = self.values.len() as u32;
        self.values.push(tv.into());
        self.index.insert(key, i);
        Some(i)
    }
}

impl LayerEncoder<'_> {
    /// Encodes the features that touch `tile` into one layer within `budget`.
    pub fn encode(
        &self,
        tile: TileCoord,
        features: &[SourceFeature<'_>],
        budget: &TileBudget,
    ) -> Result<EncodedLayer> {
        // Sub-pixel polygons are merged, not ranked: set them aside by their precomputed area
        // before any geometry work, so a z10 tile over half a million buildings stays cheap.
        let tiny_m2 = if self.generalise {
            (tile.span() / 256.0).powi(2)
        } else {
            0.0
        };
        let (tiny, mut big): (Vec<usize>, Vec<usize>) = (0..features.len())
            .partition(|&i| is_polygon(features[i].geometry) && features[i].size < tiny_m2);
        if !self.generalise {
            return self.encode_whole(tile, features, &big, budget);
        }
        let mut dropped_budget = 0;
        if big.len() > budget.max_features {
            // keep the largest: when something must go, the smallest goes
            let keep = budget.max_features;
            big.select_nth_unstable_by(keep, |&a, &b| {
                features[b].size.total_cmp(&features[a].size)
            });
            dropped_budget = big.len() - keep;
            big.truncate(keep);
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            let mut out = self.encode_once(tile, features, &big, &tiny, attempt)?;
            out.stats.dropped_budget += dropped_budget;
            if out.stats.bytes <= budget.max_bytes {
                return Ok(out);
            }
            last = Some(out);
        }
        // still too large: keep the largest features that fit, re-encoding so the
        // key and value tables shrink with them
        let mut out = last.ok_or_else(|| Error::Mvt("no encoding attempt".into()))?;
        big.sort_by(|&a, &b| features[b].size.total_cmp(&features[a].size));
        let mut keep = big.len();
        while out.stats.bytes > budget.max_bytes && keep > 0 {
            let ratio = budget.max_bytes as f64 / out.stats.bytes.max(1) as f64;
            keep = ((keep as f64 * ratio * 0.9) as usize).min(keep - 1);
            out = self.encode_once(tile, features, &big[..keep], &[], ATTEMPTS - 1)?;
            out.stats.candidates = features.len();
        }
        out.stats.dropped_budget = dropped_budget + (big.len() - keep) + tiny.len();
        Ok(out)
    }

    /// At the layer's maximum zoom every feature goes into the tile (a client overzooms this
    /// tile, so what is left out here is never seen): attributes give way first, and a tile
    /// still over the byte budget is served whole and marked so.
    fn encode_whole(
        &self,
        tile: TileCoord,
        features: &[SourceFeature<'_>],
        all: &[usize],
        budget: &TileBudget,
    ) -> Result<EncodedLayer> {
        let mut out = self.encode_once(tile, features, all, &[], 0)?;
        let mut kept = self.fields.len();
        while out.stats.bytes > budget.max_bytes && kept > 0 {
            kept -= 1;
            let fewer = LayerEncoder {
                fields: self.fields[..kept].to_vec(),
                ..self.clone()
            };
            out = fewer.encode_once(tile, features, all, &[], 0)?;
            out.stats.fields_dropped = self.fields.len() - kept;
        }
        out.stats.over_budget = out.stats.bytes > budget.max_bytes;
        Ok(out)
    }

    fn encode_once<'f>(
        &self,
        tile: TileCoord,
        features: &'f [SourceFeature<'f>],
        big: &[usize],
        tiny: &[usize],
        attempt: u32,
    ) -> Result<EncodedLayer> {
        let extent = f64::from(self.extent);
        let bounds = tile.bounds();
        let frame = Frame {
            left: bounds.min().x,
            top: bounds.max().y,
            scale: extent / tile.span(),
            clip: ClipBox::tile(extent, f64::from(self.buffer)),
        };
        let (tolerance, tiny_area) = if self.generalise {
            // a "pixel" is 1/256 of the tile, as on a 256 px raster
            let pixel = extent / 256.0;
            let factor = f64::from(1u32 << (2 * attempt));
            (0.5 * f64::from(1u32 << attempt), pixel * pixel * factor)
        } else {
            (0.0, 0.0)
        };
        let mut stats = LayerStats {
            candidates: features.len(),
            tolerance,
            ..LayerStats::default()
        };
        let mut tags = Tags::default();
        let mut out = Vec::with_capacity(big.len() + tiny.len() / 8);
        let mut tiny_acc = 0.0;
        let area_scale = frame.scale * frame.scale;
        let mut scratch = Vec::with_capacity(64);
        let to_tile = |c: Coord<f64>| {
            let p = frame.px(c);
            frame
                .clip
                .contains(p)
                .then(|| (p.x.round() as i32, p.y.round() as i32))
        };
        for &i in tiny.iter().chain(big) {
            let f = &features[i];
            let shape =
                if tiny_area > 0.0 && is_polygon(f.geometry) && f.size * area_scale < tiny_area {
                    // merge: accumulate area, emit one pixel-sized square per pixel's worth
                    let at = frame.px(f.anchor);
                    if !frame.clip.contains(at) {
                        continue;
                    }
                    stats.merged_tiny += 1;
                    tiny_acc += f.size * area_scale;
                    if tiny_acc < tiny_area {
                        continue;
                    }
                    tiny_acc -= tiny_area;
                    Shape::Polygons(MultiPolygon::new(vec![pixel_square(
                        at.into(),
                        tiny_area.sqrt(),
                    )]))
                } else if let Some((kind, geometry)) = (tolerance == 0.0 || small(f.geometry))
                    .then(|| CommandWriter::new(&mut scratch, &to_tile).geometry(f.geometry))
                    .flatten()
                {
                    let mut feature = tile::Feature {
                        id: Some(f.id),
                        geometry,
                        ..tile::Feature::default()
                    };
                    feature.set_type(kind);
                    self.push_tags(&mut feature, f, &mut tags);
                    out.push(feature);
                    continue;
                } else {
                    match prepare(f.geometry, &frame, tolerance) {
                        Some(shape) => shape,
                        None => {
                            stats.dropped_tiny += 1;
                            continue;
                        }
                    }
                };
            let Some(mut feature) = shape.into_mvt()? else {
                stats.dropped_tiny += 1;
                continue;
            };
            feature.id = Some(f.id);
            self.push_tags(&mut feature, f, &mut tags);
            out.push(feature);
        }
        let layer = tile::Layer {
            version: 2,
            name: self.name.to_owned(),
            features: out,
            keys: self.fields.iter().map(|(_, k)| (*k).to_owned()).collect(),
            values: tags.values,
            extent: Some(self.extent),
        };
        stats.written = layer.features.len();
        let bytes = layer.encode_to_vec();
        stats.bytes = bytes.len();
        Ok(EncodedLayer { bytes, stats })
    }
}

impl<'f> LayerEncoder<'_> {
    fn push_tags(&self, feature: &mut tile::Feature, f: &SourceFeature<'f>, tags: &mut Tags<'f>) {
        feature.tags.reserve(self.fields.len() * 2);
        for (k, &(idx, _)) in self.fields.iter().enumerate() {
            if let Some(v) = f.values.get(idx).and_then(|v| tags.value(v)) {
                feature.tags.push(k as u32);
                feature.tags.push(v);
            }
        }
    }
}

/// Whether simplification would leave a geometry as it is (rings of a rectangle, 2-point lines).
fn small(g: &Geometry<f64>) -> bool {
    match g {
        Geometry::Polygon(p) => p.exterior().0.len() <= 5 && p.interiors().is_empty(),
        Geometry::LineString(l) => l.0.len() <= 2,
        Geometry::Point(_) => true,
        _ => false,
    }
}

fn is_polygon(g: &Geometry<f64>) -> bool {
    matches!(g, Geometry::Polygon(_) | Geometry::MultiPolygon(_))
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

/// Moves a ring into tile space, clips it when it crosses the clip box, and simplifies it.
fn ring_to_tile(ring: &LineString<f64>, frame: &Frame, tolerance: f64) -> Option<LineString<f64>> {
    let px: Vec<Coord<f64>> = ring.0.iter().map(|&c| frame.px(c)).collect();
    let inside = px.iter().all(|&c| frame.clip.contains(c));
    let mut ring = LineString::new(px);
    if !inside {
        ring = frame.clip.ring(&ring)?;
    }
    if tolerance > 0.0 && ring.0.len() > 5 {
        ring = ring.simplify(tolerance);
    }
    Some(ring)
}

fn polygon_to_tile(p: &Polygon<f64>, frame: &Frame, tolerance: f64) -> Option<Polygon<f64>> {
    let exterior = snap_ring(&ring_to_tile(p.exterior(), frame, tolerance)?, true)?;
    let interiors = p
        .interiors()
        .iter()
        .filter_map(|r| snap_ring(&ring_to_tile(r, frame, tolerance)?, false))
        .collect();
    Some(Polygon::new(exterior, interiors))
}

fn line_to_tile(
    l: &LineString<f64>,
    frame: &Frame,
    tolerance: f64,
    out: &mut Vec<LineString<f64>>,
) {
    let px = LineString::new(l.0.iter().map(|&c| frame.px(c)).collect());
    let pieces = if px.0.iter().all(|&c| frame.clip.contains(c)) {
        MultiLineString::new(vec![px])
    } else {
        frame.clip.lines(&MultiLineString::new(vec![px]))
    };
    for piece in pieces {
        let piece = if tolerance > 0.0 {
            piece.simplify(tolerance)
        } else {
            piece
        };
        let pts = snap(&piece.0);
        if pts.len() >= 2 {
            out.push(LineString::new(pts));
        }
    }
}

/// Moves a Web Mercator geometry into the tile, clipped, simplified and snapped to the
/// integer grid; `None` when nothing is left.
fn prepare(g: &Geometry<f64>, frame: &Frame, tolerance: f64) -> Option<Shape> {
    let point = |p: &Point<f64>| {
        let c = frame.px(p.0);
        frame
            .clip
            .contains(c)
            .then(|| Point::new(c.x.round(), c.y.round()))
    };
    let shape = match g {
        Geometry::Point(p) => Shape::Points(MultiPoint::new(point(p).into_iter().collect())),
        Geometry::MultiPoint(mp) => Shape::Points(mp.iter().filter_map(point).collect()),
        Geometry::LineString(l) => {
            let mut out = Vec::new();
            line_to_tile(l, frame, tolerance, &mut out);
            Shape::Lines(MultiLineString::new(out))
        }
        Geometry::MultiLineString(ml) => {
            let mut out = Vec::new();
            for l in ml {
                line_to_tile(l, frame, tolerance, &mut out);
            }
            Shape::Lines(MultiLineString::new(out))
        }
        Geometry::Polygon(p) => Shape::Polygons(MultiPolygon::new(
            polygon_to_tile(p, frame, tolerance).into_iter().collect(),
        )),
        Geometry::MultiPolygon(mp) => Shape::Polygons(MultiPolygon::new(
            mp.iter()
                .filter_map(|p| polygon_to_tile(p, frame, tolerance))
                .collect(),
        )),
        Geometry::Rect(r) => return prepare(&Geometry::Polygon(r.to_polygon()), frame, tolerance),
        Geometry::Triangle(t) => {
            return prepare(&Geometry::Polygon(t.to_polygon()), frame, tolerance);
        }
        Geometry::Line(l) => {
            return prepare(
                &Geometry::LineString(LineString::new(vec![l.start, l.end])),
                frame,
                tolerance,
            );
        }
        Geometry::GeometryCollection(_) => return None,
    };
    let empty = match &shape {
        Shape::Points(p) => p.0.is_empty(),
        Shape::Lines(l) => l.0.is_empty(),
        Shape::Polygons(p) => p.0.is_empty(),
    };
    (!empty).then_some(shape)
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
    let area: f64 = pts
        .windows(2)
        .map(|w| w[0].x * w[1].y - w[1].x * w[0].y)
        .sum();
    let mut ring = LineString::new(pts);
    if (area > 0.0) != exterior {
        ring.0.reverse();
    }
    Some(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proj::lonlat_to_mercator;
    use geo::{Area, polygon};
    use geozero::mvt::{Message, Tile};

    fn square_at(lon: f64, lat: f64, half_m: f64) -> Geometry<f64> {
        let (x, y) = lonlat_to_mercator(lon, lat);
        Geometry::Polygon(polygon![
            (x: x - half_m, y: y - half_m),
            (x: x + half_m, y: y - half_m),
            (x: x + half_m, y: y + half_m),
            (x: x - half_m, y: y + half_m),
        ])
    }

    fn anchor_of(g: &Geometry<f64>) -> Coord<f64> {
        geo::CoordsIter::coords_iter(g).next().unwrap()
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
            anchor: anchor_of(&g),
        };
        let out = encoder(false)
            .encode(t, &[f], &TileBudget::default())
            .unwrap();
        assert_eq!(out.stats.written, 1);
        let bytes = encode_tile(&[out]);
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
            anchor: anchor_of(&g),
        };
        let out = encoder(false)
            .encode(t, &[f], &TileBudget::default())
            .unwrap();
        let mut poly = Vec::new();
        let layer = out.decode().unwrap();
        let geom = &layer.features[0].geometry;
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
                anchor: anchor_of(g),
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
                size: 1000.0 + (i * i) as f64,
                anchor: anchor_of(g),
            })
            .collect();
        let (x, y) = lonlat_to_mercator(118.80, 32.06);
        let t = TileCoord::containing(x, y, 14);
        let budget = TileBudget {
            max_bytes: 1 << 20,
            max_features: 10,
        };
        // below the layer's maximum zoom: when something must go, the smallest goes
        let out = encoder(true).encode(t, &feats, &budget).unwrap();
        assert!(out.stats.written <= 10);
        assert!(
            out.decode()
                .unwrap()
                .features
                .iter()
                .all(|f| f.id.unwrap() >= 40)
        );
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
                size: 100.0,
                anchor: anchor_of(g),
            })
            .collect();
        let (x, y) = lonlat_to_mercator(118.795, 32.065);
        let t = TileCoord::containing(x, y, 16);
        let budget = TileBudget {
            max_bytes: 5_000,
            max_features: 100_000,
        };
        // below the maximum zoom the budget holds, features merged or dropped
        let out = encoder(true).encode(t, &feats, &budget).unwrap();
        assert!(out.stats.bytes <= 5_000, "{:?}", out.stats);
        assert!(
            out.stats.dropped_budget + out.stats.merged_tiny > 0,
            "{:?}",
            out.stats
        );
        assert_eq!(out.decode().unwrap().encoded_len(), out.stats.bytes);
        // at the maximum zoom every feature stays: the attribute goes first, then the tile
        // is served over budget, and says so
        let whole = encoder(false).encode(t, &feats, &budget).unwrap();
        assert_eq!(whole.stats.dropped_budget, 0, "{:?}", whole.stats);
        assert!(whole.stats.written > out.stats.written, "{:?}", whole.stats);
        assert_eq!(whole.stats.fields_dropped, 1, "{:?}", whole.stats);
        assert!(whole.stats.over_budget, "{:?}", whole.stats);
        assert!(whole.decode().unwrap().keys.is_empty());
        let roomy = TileBudget {
            max_bytes: 1 << 20,
            max_features: 10,
        };
        let all = encoder(false).encode(t, &feats, &roomy).unwrap();
        assert_eq!(
            all.stats.written, whole.stats.written,
            "the feature budget gives way too"
        );
        assert_eq!(
            (all.stats.fields_dropped, all.stats.over_budget),
            (0, false)
        );
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
            anchor: anchor_of(&g),
        };
        let out = encoder(false)
            .encode(t, &[f], &TileBudget::default())
            .unwrap();
        assert_eq!(out.stats.written, 0);
    }
}

#[cfg(test)]
mod direct_path_tests {
    use super::*;
    use crate::proj::lonlat_to_mercator;

    /// The direct command writer and the general clip/snap/geozero path agree.
    #[test]
    fn direct_and_general_paths_write_the_same_commands() {
        let (x, y) = lonlat_to_mercator(118.7969, 32.0603);
        let tile = TileCoord::containing(x, y, 16);
        let b = tile.bounds();
        let frame = Frame {
            left: b.min().x,
            top: b.max().y,
            scale: 4096.0 / tile.span(),
            clip: ClipBox::tile(4096.0, 64.0),
        };
        let ring = |h: f64, cw: bool| {
            let mut pts = vec![
                (x - h, y - h),
                (x + h, y - h),
                (x + h, y + h),
                (x - h, y + h),
                (x - h, y - h),
            ];
            if cw {
                pts.reverse();
            }
            LineString::from(pts)
        };
        let shapes = [
            Geometry::Polygon(Polygon::new(ring(60.0, false), vec![ring(20.0, false)])),
            Geometry::Polygon(Polygon::new(ring(30.0, true), vec![])),
            Geometry::LineString(LineString::from(vec![
                (x, y),
                (x + 50.0, y + 20.0),
                (x + 80.0, y - 10.0),
            ])),
            Geometry::Point(Point::new(x + 5.0, y - 5.0)),
        ];
        let to_tile = |c: Coord<f64>| {
            let p = frame.px(c);
            frame
                .clip
                .contains(p)
                .then(|| (p.x.round() as i32, p.y.round() as i32))
        };
        for g in &shapes {
            let mut scratch = Vec::new();
            let (_, direct) = CommandWriter::new(&mut scratch, &to_tile)
                .geometry(g)
                .unwrap();
            let general = prepare(g, &frame, 0.0)
                .unwrap()
                .into_mvt()
                .unwrap()
                .unwrap()
                .geometry;
            assert_eq!(direct, general, "{g:?}");
        }
        // outside the clip box the direct path declines
        let far = Geometry::Point(Point::new(x + 1e6, y));
        let mut scratch = Vec::new();
        assert!(
            CommandWriter::new(&mut scratch, &to_tile)
                .geometry(&far)
                .is_none()
        );
    }
}
