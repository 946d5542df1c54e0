//! Desensitised views (脱敏): a layer as those without the right to its raw data get it —
//! personal fields masked or left out and coordinates snapped to the precision its catalogue
//! entry gives. Every channel that hands out features reads the same view, so a field masked
//! in items is masked in tiles, renders and exports alike.

use crate::catalog::{Classification, Mask};
use crate::index::{IndexedFeature, LayerIndex};
use citytwin_tiles::Value;
use citytwin_tiles::proj::{lonlat_to_mercator, mercator_to_lonlat};
use geo::{Coord, MapCoords};

/// A personal value as shown through a mask: text masked, anything else left out.
#[must_use]
pub fn mask_value(v: &Value, mask: Mask) -> Value {
    match v {
        Value::Text(t) => mask
            .apply(t)
            .map_or(Value::Null, |m| Value::from(m.as_str())),
        Value::Int(i) => mask
            .apply(&i.to_string())
            .map_or(Value::Null, |m| Value::from(m.as_str())),
        _ => Value::Null,
    }
}

/// Snaps WGS84 coordinates to a grid of `metres` (exact at the grid cell's latitude).
#[must_use]
pub fn snap_lonlat(lon: f64, lat: f64, metres: u32) -> (f64, f64) {
    let (x, y) = lonlat_to_mercator(lon, lat);
    let (sx, sy) = snap_mercator(x, y, metres);
    mercator_to_lonlat(sx, sy)
}

/// Snaps Web Mercator metres to the centres of a grid whose cells are `metres` on the ground
/// at a latitude band's middle (Mercator stretches by 1/cos φ; bands of 1° keep it steady).
fn snap_mercator(x: f64, y: f64, metres: u32) -> (f64, f64) {
    let (_, lat) = mercator_to_lonlat(x, y);
    let band = lat.floor() + 0.5;
    let side = f64::from(metres) / band.to_radians().cos().max(0.01);
    let snap = |v: f64| ((v / side).floor() + 0.5) * side;
    (snap(x), snap(y))
}

/// Desensitises a JSON answer about a layer's things (a live event, sensor or unit, a
/// change of the feed): every member named as a personal field is masked, at any depth, and
/// every object's `lon`/`lat` pair is snapped to the precision.
pub fn mask_json(v: &mut serde_json::Value, c: &Classification) {
    match v {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if let Some(mask) = c.personal.get(key) {
                    *value = match value {
                        serde_json::Value::String(t) => mask
                            .apply(t)
                            .map_or(serde_json::Value::Null, serde_json::Value::String),
                        serde_json::Value::Number(n) => mask
                            .apply(&n.to_string())
                            .map_or(serde_json::Value::Null, serde_json::Value::String),
                        // null stays null; a structure under a personal name goes whole
                        _ => serde_json::Value::Null,
                    };
                } else {
                    mask_json(value, c);
                }
            }
            if let Some(m) = c.precision_m
                && let (Some(lon), Some(lat)) = (
                    map.get("lon").and_then(serde_json::Value::as_f64),
                    map.get("lat").and_then(serde_json::Value::as_f64),
                )
            {
                let (x, y) = snap_lonlat(lon, lat, m);
                let round = |v: f64| (v * 1e6).round() / 1e6;
                map.insert("lon".into(), round(x).into());
                map.insert("lat".into(), round(y).into());
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                mask_json(item, c);
            }
        }
        _ => {}
    }
}

/// The view of `index` for readers without the right to its raw data.
#[must_use]
pub fn view(index: &LayerIndex, c: &Classification) -> LayerIndex {
    view_as(index, &c.personal, c.precision_m, None)
}

/// A view of `index` with these masks and precision, keeping only the fields named in
/// `keep` (all when absent; the others are left out).
#[must_use]
pub fn view_as(
    index: &LayerIndex,
    personal: &std::collections::BTreeMap<String, Mask>,
    precision: Option<u32>,
    keep: Option<&[String]>,
) -> LayerIndex {
    let mut masks: Vec<(usize, Mask)> = personal
        .iter()
        .filter_map(|(f, m)| index.meta.field_index(f).map(|i| (i, *m)))
        .collect();
    if let Some(keep) = keep {
        for (i, f) in index.meta.fields.iter().enumerate() {
            if !keep.contains(&f.name) && !masks.iter().any(|(m, _)| *m == i) {
                masks.push((i, Mask::Remove));
            }
        }
    }
    let features: Vec<IndexedFeature> = index
        .features()
        .iter()
        .map(|f| {
            let mut values = f.values.clone();
            for &(i, m) in &masks {
                if let Some(v) = values.get_mut(i) {
                    *v = mask_value(v, m);
                }
            }
            let (geometry, anchor) = match precision {
                Some(m) => {
                    let g = f.geometry.map_coords(|c| {
                        let (x, y) = snap_mercator(c.x, c.y, m);
                        Coord { x, y }
                    });
                    let (ax, ay) = snap_mercator(f.anchor.x, f.anchor.y, m);
                    (g, Coord { x: ax, y: ay })
                }
                None => (f.geometry.clone(), f.anchor),
            };
            IndexedFeature {
                id: f.id,
                geometry,
                values,
                size: f.size,
                anchor,
            }
        })
        .collect();
    let mut meta = index.meta.clone();
    if let Some(b) = meta.bounds.as_mut()
        && let Some(m) = precision
    {
        // widened by a cell so every snapped point stays inside
        let pad = f64::from(m) / 111_000.0;
        *b = [b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad];
    }
    LayerIndex::from_indexed(
        meta,
        features,
        index.version,
        crate::access::Form::Desensitised,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{OpenClass, ShareClass};
    use crate::{Feature, Field, FieldKind, GeometryKind, LayerMeta};

    #[test]
    fn personal_fields_are_masked_and_points_snapped() {
        let mut meta = LayerMeta::new("reports", GeometryKind::Point);
        meta.fields = vec![
            Field {
                name: "phone".into(),
                kind: FieldKind::Text,
            },
            Field {
                name: "reporter".into(),
                kind: FieldKind::Text,
            },
            Field {
                name: "category".into(),
                kind: FieldKind::Text,
            },
        ];
        let index = LayerIndex::build(
            meta,
            vec![Feature {
                id: 1,
                geometry: geo::Geometry::Point(geo::Point::new(118.796_123, 32.058_765)),
                values: vec!["13812345678".into(), "张三".into(), "noise".into()],
            }],
            1,
        );
        let mut c = Classification::new("ops", ShareClass::Conditional, OpenClass::NotOpen, 2);
        c.personal.insert("phone".into(), Mask::Phone);
        c.personal.insert("reporter".into(), Mask::Remove);
        c.precision_m = Some(500);
        let v = view(&index, &c);
        let f = &v.features()[0];
        assert_eq!(f.values[0], Value::from("138****5678"));
        assert_eq!(f.values[1], Value::Null);
        assert_eq!(f.values[2], Value::from("noise"));
        let geo::Geometry::Point(p) = f.geometry else {
            panic!("a point stays a point")
        };
        let (lon, lat) = mercator_to_lonlat(p.x(), p.y());
        // within half a cell of where it was, and no longer where it was
        let (x0, y0) = lonlat_to_mercator(118.796_123, 32.058_765);
        let ground = (p.x() - x0).hypot(p.y() - y0) * 32.06_f64.to_radians().cos();
        assert!(
            ground <= 500.0 * std::f64::consts::SQRT_2 / 2.0 + 1.0,
            "{ground}"
        );
        assert!((lon, lat) != (118.796_123, 32.058_765));
        // every point of a cell lands on the same spot
        let near = snap_lonlat(118.796_2, 32.058_8, 500);
        assert_eq!(snap_lonlat(118.796_123, 32.058_765, 500), near);
        assert_eq!(v.form, crate::access::Form::Desensitised);
    }
}
