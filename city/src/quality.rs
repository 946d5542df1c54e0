//! Data quality per layer (Gov art. 11; Auth art. 20: accuracy, consistency, completeness,
//! timeliness): how complete its fields are, how many geometries are invalid, how old it is
//! against the update frequency its catalogue entry declares, and how many features lie
//! outside the city or share an id. Assessed when a layer version is first asked about and
//! again on a schedule (timeliness changes with the clock).

use crate::index::LayerIndex;
use crate::live::Millis;
use citytwin_tiles::Value;
use geo::{Contains, MultiPolygon};
use serde::Serialize;

/// How complete one field is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldCompleteness {
    /// the field
    pub field: String,
    /// features with a value
    pub present: u64,
    /// `present` over all features, 0–1
    pub ratio: f64,
}

/// A layer's quality at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    /// the layer
    pub layer: String,
    /// the layer version assessed
    pub version: u64,
    /// when (milliseconds since the epoch)
    pub assessed_at: Millis,
    /// features assessed
    pub features: u64,
    /// per field; the least complete first
    pub completeness: Vec<FieldCompleteness>,
    /// the mean of the fields' ratios (1 for a layer without fields)
    pub completeness_ratio: f64,
    /// features whose geometry is not valid (self-intersecting rings, too few points…)
    pub invalid_geometries: u64,
    /// a few of their ids, to look at
    pub invalid_examples: Vec<i64>,
    /// features whose centre lies outside the city
    pub outside_city: u64,
    /// ids held by more than one feature
    pub duplicate_ids: u64,
    /// the update frequency the catalogue declares
    pub update_frequency: String,
    /// days since the layer last changed
    pub age_days: f64,
    /// the most days its frequency allows (none for an unknown frequency)
    pub max_age_days: Option<f64>,
    /// older than its frequency allows
    pub overdue: bool,
}

/// The most days between updates a declared frequency allows (a day's grace added).
#[must_use]
pub fn max_age_days(frequency: &str) -> Option<f64> {
    let f = frequency.trim().to_lowercase();
    let days = match f.as_str() {
        "realtime" | "real-time" | "hourly" | "daily" => 1.0,
        "weekly" => 7.0,
        "monthly" => 31.0,
        "quarterly" => 92.0,
        "half-yearly" | "semiannual" => 183.0,
        "yearly" | "annual" | "annually" => 366.0,
        _ => return None,
    };
    Some(days + 1.0)
}

/// Assesses a layer held in memory; `city` is the city's outline (WGS84), when known.
#[must_use]
pub fn assess(index: &LayerIndex, city: Option<&MultiPolygon<f64>>, now: Millis) -> Quality {
    let meta = &index.meta;
    let features = index.features();
    let n = features.len() as u64;
    let mut present = vec![0u64; meta.fields.len()];
    let mut invalid = 0u64;
    let mut invalid_examples = Vec::new();
    let mut outside = 0u64;
    let mut ids: Vec<i64> = Vec::with_capacity(features.len());
    for f in features {
        for (i, v) in f.values.iter().enumerate() {
            let has = match v {
                Value::Null => false,
                Value::Text(t) => !t.trim().is_empty(),
                _ => true,
            };
            if has && let Some(p) = present.get_mut(i) {
                *p += 1;
            }
        }
        // the import's checker: geo's own validation is quadratic in a ring's vertices and
        // takes minutes on a river or district outline
        if crate::import::validity::check(&f.geometry).is_err() {
            invalid += 1;
            if invalid_examples.len() < 10 {
                invalid_examples.push(f.id);
            }
        }
        if let Some(outline) = city {
            let (lon, lat) = crate::stats::centre(f);
            if !outline.contains(&geo::Point::new(lon, lat)) {
                outside += 1;
            }
        }
        ids.push(f.id);
    }
    ids.sort_unstable();
    let duplicate_ids = ids.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    let mut completeness: Vec<FieldCompleteness> = meta
        .fields
        .iter()
        .zip(&present)
        .map(|(f, &p)| FieldCompleteness {
            field: f.name.clone(),
            present: p,
            ratio: if n == 0 { 1.0 } else { p as f64 / n as f64 },
        })
        .collect();
    let completeness_ratio = if completeness.is_empty() {
        1.0
    } else {
        completeness.iter().map(|c| c.ratio).sum::<f64>() / completeness.len() as f64
    };
    completeness.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
    let update_frequency = meta
        .classification
        .as_ref()
        .map(|c| c.update_frequency.clone())
        .unwrap_or_default();
    let updated = crate::live::ts::parse(&meta.updated_at).unwrap_or(now);
    let age_days = (now - updated).max(0) as f64 / 86_400_000.0;
    let max_age = max_age_days(&update_frequency);
    Quality {
        layer: meta.name.clone(),
        version: index.version,
        assessed_at: now,
        features: n,
        completeness,
        completeness_ratio: (completeness_ratio * 1000.0).round() / 1000.0,
        invalid_geometries: invalid,
        invalid_examples,
        outside_city: outside,
        duplicate_ids,
        update_frequency,
        age_days: (age_days * 10.0).round() / 10.0,
        max_age_days: max_age,
        overdue: max_age.is_some_and(|m| age_days > m),
    }
}

impl crate::City {
    /// A layer's quality: assessed once per layer version, again after ten minutes (its age
    /// grows). `None` for a layer the store tiles itself.
    pub async fn quality(
        &self,
        layer: &std::sync::Arc<LayerIndex>,
    ) -> crate::Result<Option<std::sync::Arc<Quality>>> {
        if !layer.resident {
            return Ok(None);
        }
        let now = crate::live::ts::now();
        let fresh = |q: &std::sync::Arc<Quality>| {
            q.version == layer.version && now - q.assessed_at < 600_000
        };
        if let Some(q) = self
            .qualities
            .read()
            .ok()
            .and_then(|m| m.get(&layer.meta.name).cloned())
            .filter(fresh)
        {
            return Ok(Some(q));
        }
        let city = self.territory().await.ok().and_then(|t| {
            t.units()
                .iter()
                .find(|u| u.parent.is_none())
                .map(|u| u.shape.clone())
        });
        let l = std::sync::Arc::clone(layer);
        let q = std::sync::Arc::new(
            tokio::task::spawn_blocking(move || assess(&l, city.as_ref(), now))
                .await
                .map_err(|e| crate::Error::Invalid(format!("quality check failed: {e}")))?,
        );
        if q.overdue {
            tracing::warn!(layer = %q.layer, age_days = q.age_days, frequency = %q.update_frequency, "layer overdue for its update");
        }
        if let Ok(mut m) = self.qualities.write() {
            m.insert(layer.meta.name.clone(), std::sync::Arc::clone(&q));
        }
        Ok(Some(q))
    }

    /// Assesses every layer again (the server's schedule; a fresh import is assessed on the
    /// first request for it).
    pub async fn assess_all(&self) {
        for l in self.layers() {
            if let Err(e) = self.quality(&l).await {
                tracing::warn!(layer = %l.meta.name, error = %e, "quality check failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Feature, Field, FieldKind, GeometryKind, LayerMeta};
    use geo::{Geometry, LineString, Point, Polygon, polygon};

    #[test]
    fn a_small_layer_is_assessed_by_hand() {
        let mut meta = LayerMeta::new("wells", GeometryKind::Point);
        meta.fields = vec![
            Field {
                name: "name".into(),
                kind: FieldKind::Text,
            },
            Field {
                name: "depth".into(),
                kind: FieldKind::Real,
            },
        ];
        meta.updated_at = "2026-01-01T00:00:00Z".into();
        let mut c = crate::catalog::Classification::new(
            "water",
            crate::catalog::ShareClass::NotShared,
            crate::catalog::OpenClass::NotOpen,
            1,
        );
        c.update_frequency = "monthly".into();
        meta.classification = Some(c);
        // a bow tie: its ring crosses itself
        let bow: Polygon<f64> = Polygon::new(
            LineString::from(vec![
                (118.70, 32.00),
                (118.71, 32.01),
                (118.71, 32.00),
                (118.70, 32.01),
                (118.70, 32.00),
            ]),
            vec![],
        );
        let features = vec![
            Feature {
                id: 1,
                geometry: Geometry::Point(Point::new(118.78, 32.04)),
                values: vec!["a".into(), Value::Float(3.0)],
            },
            Feature {
                id: 2,
                geometry: Geometry::Point(Point::new(118.79, 32.05)),
                values: vec!["".into(), Value::Null],
            },
            Feature {
                id: 3,
                geometry: Geometry::Point(Point::new(121.47, 31.23)),
                values: vec!["c".into(), Value::Float(1.0)],
            },
            Feature {
                id: 4,
                geometry: Geometry::Polygon(bow),
                values: vec!["d".into(), Value::Null],
            },
        ];
        let index = LayerIndex::build(meta, features, 1);
        let city: MultiPolygon<f64> = MultiPolygon(vec![polygon![
            (x: 118.3, y: 31.2), (x: 119.3, y: 31.2), (x: 119.3, y: 32.7), (x: 118.3, y: 32.7), (x: 118.3, y: 31.2)
        ]]);
        let now = crate::live::ts::parse("2026-03-01T00:00:00Z").unwrap();
        let q = assess(&index, Some(&city), now);
        assert_eq!(q.features, 4);
        // name: 3 of 4 (an empty text is missing), depth: 2 of 4
        assert_eq!(q.completeness[0].field, "depth");
        assert!((q.completeness[0].ratio - 0.5).abs() < 1e-9);
        assert!((q.completeness_ratio - 0.625).abs() < 1e-9);
        assert_eq!(
            (q.invalid_geometries, q.invalid_examples.clone()),
            (1, vec![4])
        );
        assert_eq!(q.outside_city, 1, "Shanghai is not in Nanjing");
        assert_eq!(q.duplicate_ids, 0);
        // 59 days old against a monthly frequency (31 days and one of grace)
        assert!(q.overdue && (q.age_days - 59.0).abs() < 0.1, "{q:?}");
        assert_eq!(max_age_days("yearly"), Some(367.0));
        assert_eq!(max_age_days("on change"), None);
    }
}

/// What gave way in a layer's full-detail tiles (at its `maxzoom`, where every feature is
/// kept): the tiles encoded since the layer last changed whose attributes were shortened or
/// that stayed over the byte budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FullDetail {
    /// tiles served whole though over the byte budget
    pub tiles_over_budget: u64,
    /// tiles whose attributes were left out (some or all)
    pub tiles_attributes_dropped: u64,
    /// a few of them: `z/x/y`, with what gave way
    pub examples: Vec<String>,
    #[serde(skip)]
    version: u64,
    #[serde(skip)]
    seen: std::collections::BTreeSet<(u8, u32, u32)>,
}

/// Tiles remembered per layer, so one tile encoded again is counted once.
const DETAIL_TILES: usize = 100_000;

/// The full-detail tallies of every layer.
#[derive(Debug, Default)]
pub(crate) struct FullDetails(std::sync::Mutex<std::collections::HashMap<String, FullDetail>>);

impl FullDetails {
    /// Notes a tile of a layer (of this version) where something gave way.
    pub(crate) fn note(
        &self,
        layer: &str,
        version: u64,
        coord: citytwin_tiles::TileCoord,
        stats: &citytwin_tiles::LayerStats,
    ) {
        if stats.fields_dropped == 0 && !stats.over_budget {
            return;
        }
        let Ok(mut map) = self.0.lock() else { return };
        let d = map.entry(layer.to_owned()).or_default();
        if d.version != version {
            *d = FullDetail {
                version,
                ..FullDetail::default()
            };
        }
        if d.seen.len() >= DETAIL_TILES || !d.seen.insert((coord.z, coord.x, coord.y)) {
            return;
        }
        if stats.over_budget {
            d.tiles_over_budget += 1;
        }
        if stats.fields_dropped > 0 {
            d.tiles_attributes_dropped += 1;
        }
        if d.examples.len() < 10 {
            d.examples.push(format!(
                "{coord}: {} bytes{}, {} attributes left out",
                stats.bytes,
                if stats.over_budget {
                    " (over budget)"
                } else {
                    ""
                },
                stats.fields_dropped
            ));
        }
    }

    /// A layer's tally for its current version.
    pub(crate) fn of(&self, layer: &str, version: u64) -> FullDetail {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(layer).filter(|d| d.version == version).cloned())
            .unwrap_or_default()
    }
}

impl crate::City {
    /// What gave way in a layer's full-detail tiles since it last changed.
    #[must_use]
    pub fn full_detail(&self, layer: &LayerIndex) -> FullDetail {
        self.details.of(&layer.meta.name, layer.version)
    }
}
