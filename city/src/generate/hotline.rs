//! The 12345 citizen hotline's work orders (市民热线工单): who called, from where, about what.
//! Synthetic names and numbers; the layer exists to show level-3 data with personal fields —
//! its callers are visible only to the handling staff, everyone else gets suppressed counts.

use super::territory::Territory;
use super::{GENERATED, GeneratedLayer, Rng, layer_meta, urban_intensity};
use crate::layer::{Feature, FieldKind, GeometryKind};
use citytwin_tiles::Value;
use geo::{BoundingRect, Centroid, Contains, Geometry, Point};
use rand::Rng as _;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超",
];
const CATEGORIES: &[(&str, &str)] = &[
    ("noise", "噪音扰民"),
    ("road-damage", "道路破损"),
    ("garbage", "垃圾堆放"),
    ("street-vending", "占道经营"),
    ("illegal-parking", "违章停车"),
    ("water-supply", "供水问题"),
];

/// `n` work orders in grids chosen by how built-up they are, each with its caller's name and
/// phone number and the grid's code.
pub fn hotline(grids: &[Territory], n: usize, rng: &mut Rng) -> GeneratedLayer {
    let weights: Vec<f64> = grids
        .iter()
        .map(|g| {
            let c = g.shape.centroid().map_or((118.8, 32.0), |c| (c.x(), c.y()));
            0.05 + urban_intensity(c.0, c.1).powi(2)
        })
        .collect();
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut total = 0.0;
    for w in &weights {
        total += w;
        cumulative.push(total);
    }
    let mut features = Vec::with_capacity(n);
    for i in 0..n {
        if grids.is_empty() {
            break;
        }
        let pick = rng.random_range(0.0..total);
        let g = &grids[cumulative
            .partition_point(|&c| c < pick)
            .min(grids.len() - 1)];
        let Some(bbox) = g.shape.bounding_rect() else {
            continue;
        };
        let mut p = g.shape.centroid().unwrap_or_else(|| bbox.center().into());
        for _ in 0..30 {
            let q = Point::new(
                rng.random_range(bbox.min().x..=bbox.max().x),
                rng.random_range(bbox.min().y..=bbox.max().y),
            );
            if g.shape.contains(&q) {
                p = q;
                break;
            }
        }
        let (category, _) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        let name = format!(
            "{}{}{}",
            SURNAMES[rng.random_range(0..SURNAMES.len())],
            GIVEN[rng.random_range(0..GIVEN.len())],
            if rng.random_bool(0.5) {
                GIVEN[rng.random_range(0..GIVEN.len())]
            } else {
                ""
            }
        );
        let phone = format!(
            "1{}{:09}",
            ["3", "5", "7", "8", "9"][rng.random_range(0..5)],
            rng.random_range(0..1_000_000_000u64)
        );
        let day = rng.random_range(0..333);
        let date = time::Date::from_ordinal_date(2026, day + 1)
            .map(|d| d.to_string())
            .unwrap_or_default();
        features.push(Feature {
            id: i as i64 + 1,
            geometry: Geometry::Point(Point::new(
                (p.x() * 1e7).round() / 1e7,
                (p.y() * 1e7).round() / 1e7,
            )),
            values: vec![
                Value::from(format!("RX{:08}", 26_000_000 + i).as_str()),
                Value::from(category),
                Value::from(date.as_str()),
                Value::from(name.as_str()),
                Value::from(phone.as_str()),
                Value::from(g.code.as_str()),
                Value::from(if rng.random_bool(0.8) {
                    "closed"
                } else {
                    "handling"
                }),
            ],
        });
    }
    let mut meta = layer_meta(
        "hotline",
        "12345 热线工单 Citizen hotline work orders",
        "Calls to the 12345 citizen hotline: what was reported, where, and who called",
        GeometryKind::Point,
        &[
            ("ticket", FieldKind::Text),
            ("category", FieldKind::Text),
            ("received", FieldKind::Text),
            ("reporter", FieldKind::Text),
            ("phone", FieldKind::Text),
            ("grid", FieldKind::Text),
            ("status", FieldKind::Text),
        ],
        (10, 15),
        GENERATED,
    );
    meta.time_field = Some("received".into());
    meta.territory_field = Some("grid".into());
    GeneratedLayer { meta, features }
}
