//! Base layers over the territory: water, roads, buildings, points of interest, components.

use super::territory::Territory;
use super::{CENTRES, GENERATED, GeneratedLayer, Rng, layer_meta, urban_intensity};
use crate::import::Progress;
use crate::layer::{Feature, FieldKind, GeometryKind};
use citytwin_tiles::Value;
use geo::{
    Area, BooleanOps, BoundingRect, Contains, Coord, Geometry, InteriorPoint, LineString,
    MultiLineString, MultiPolygon, Point, Polygon, Rect,
};
use rand::Rng as _;
use std::collections::HashSet;

/// Square kilometres of a WGS84 polygon around Nanjing's latitude.
#[must_use]
pub fn area_km2(shape: &MultiPolygon<f64>) -> f64 {
    shape.unsigned_area() * 111.32 * 0.848 * 110.57
}

/// Metres to degrees of latitude and longitude at Nanjing.
const M_LAT: f64 = 1.0 / 110_570.0;
const M_LON: f64 = 1.0 / (111_320.0 * 0.848);

/// A band of half-width `half_m` metres around a polyline, as a polygon.
fn river_band(line: &[(f64, f64)], half_m: f64) -> Polygon<f64> {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for i in 0..line.len() {
        let a = line[i.saturating_sub(1)];
        let b = line[(i + 1).min(line.len() - 1)];
        let (dx, dy) = ((b.0 - a.0) / M_LON, (b.1 - a.1) / M_LAT);
        let len = dx.hypot(dy).max(1e-9);
        let (nx, ny) = (-dy / len * half_m, dx / len * half_m);
        left.push(Coord {
            x: line[i].0 + nx * M_LON,
            y: line[i].1 + ny * M_LAT,
        });
        right.push(Coord {
            x: line[i].0 - nx * M_LON,
            y: line[i].1 - ny * M_LAT,
        });
    }
    right.reverse();
    left.extend(right);
    left.push(left[0]);
    Polygon::new(LineString::new(left), vec![])
}

fn ellipse(cx: f64, cy: f64, rx_m: f64, ry_m: f64, wobble: f64) -> Polygon<f64> {
    let n = 48;
    let mut pts: Vec<Coord<f64>> = (0..n)
        .map(|i| {
            let t = std::f64::consts::TAU * f64::from(i) / f64::from(n);
            let r = 1.0 + wobble * (3.0 * t).sin() * (2.0 * t).cos();
            Coord {
                x: cx + rx_m * r * t.cos() * M_LON,
                y: cy + ry_m * r * t.sin() * M_LAT,
            }
        })
        .collect();
    pts.push(pts[0]);
    Polygon::new(LineString::new(pts), vec![])
}

/// The Yangtze, the Qinhuai and the main lakes, clipped to the city: (name, kind, shape).
#[must_use]
pub fn water(reference: &super::Reference) -> Vec<(String, String, MultiPolygon<f64>)> {
    let yangtze = [
        (118.40, 31.66),
        (118.46, 31.76),
        (118.52, 31.85),
        (118.59, 31.93),
        (118.65, 31.98),
        (118.690, 32.030),
        (118.725, 32.080),
        (118.745, 32.105),
        (118.780, 32.135),
        (118.830, 32.160),
        (118.900, 32.165),
        (118.980, 32.160),
        (119.060, 32.190),
        (119.140, 32.230),
        (119.260, 32.260),
    ];
    let qinhuai = [
        (118.86, 31.80),
        (118.84, 31.88),
        (118.81, 31.95),
        (118.79, 31.99),
        (118.77, 32.01),
        (118.74, 32.02),
        (118.72, 32.04),
        (118.705, 32.055),
    ];
    let shapes = vec![
        ("长江", "river", river_band(&yangtze, 900.0)),
        ("秦淮河", "river", river_band(&qinhuai, 45.0)),
        (
            "玄武湖",
            "lake",
            ellipse(118.795, 32.074, 1200.0, 1050.0, 0.08),
        ),
        (
            "莫愁湖",
            "lake",
            ellipse(118.760, 32.037, 300.0, 220.0, 0.1),
        ),
        (
            "石臼湖",
            "lake",
            ellipse(118.880, 31.480, 9000.0, 5000.0, 0.12),
        ),
        (
            "固城湖",
            "lake",
            ellipse(118.920, 31.280, 3200.0, 4200.0, 0.1),
        ),
        (
            "金牛湖",
            "lake",
            ellipse(118.945, 32.480, 1300.0, 1000.0, 0.15),
        ),
        (
            "百家湖",
            "lake",
            ellipse(118.828, 31.923, 450.0, 350.0, 0.1),
        ),
    ];
    shapes
        .into_iter()
        .filter_map(|(name, kind, p)| {
            let clipped = reference.city.intersection(&MultiPolygon::new(vec![p]));
            (!clipped.0.is_empty()).then(|| (name.to_owned(), kind.to_owned(), clipped))
        })
        .collect()
}

const ROAD_NAMES: &[&str] = &[
    "中山路",
    "汉中路",
    "北京东路",
    "北京西路",
    "龙蟠路",
    "江东路",
    "虎踞路",
    "应天大街",
    "龙蟠中路",
    "卡子门大街",
    "双龙大道",
    "宁溧路",
    "宁六路",
    "浦珠路",
    "江北大道",
    "仙林大道",
    "雨花大道",
    "凤台路",
    "集庆路",
    "建康路",
    "长江路",
    "珠江路",
    "广州路",
    "上海路",
    "汉口路",
    "湖南路",
    "中央路",
    "黑龙江路",
    "草场门大街",
    "清凉门大街",
];

fn road(points: Vec<Coord<f64>>) -> MultiLineString<f64> {
    MultiLineString::new(vec![LineString::new(points)])
}

/// Classed roads: rings, radials, expressways between towns and local street grids.
#[must_use]
pub fn roads(reference: &super::Reference, scale: super::Scale, rng: &mut Rng) -> GeneratedLayer {
    let (cx, cy) = (CENTRES[0].0, CENTRES[0].1);
    let mut lines: Vec<(MultiLineString<f64>, &str, String, i64)> = Vec::new();
    for (rx, ry, class, name, lanes) in [
        (3200.0, 3600.0, "primary", "内环路", 6),
        (6500.0, 7000.0, "trunk", "二环快速路", 6),
        (11000.0, 12000.0, "motorway", "南京绕城公路", 8),
    ] {
        let ring = ellipse(cx, cy, rx, ry, 0.05);
        lines.push((
            road(ring.exterior().0.clone()),
            class,
            name.to_owned(),
            lanes,
        ));
    }
    // radials from the centre and expressways from the centre to every town
    for (i, &(tx, ty, _, _)) in CENTRES.iter().enumerate().skip(1) {
        let mid = Coord {
            x: f64::midpoint(cx, tx) + rng.random_range(-0.01..0.01),
            y: f64::midpoint(cy, ty) + rng.random_range(-0.01..0.01),
        };
        let class = if i < 9 { "trunk" } else { "motorway" };
        let name = ROAD_NAMES[i % ROAD_NAMES.len()].to_owned();
        lines.push((
            road(vec![Coord { x: cx, y: cy }, mid, Coord { x: tx, y: ty }]),
            class,
            name,
            6,
        ));
    }
    // local grids around every centre
    let spacing = match scale {
        super::Scale::Small => 450.0,
        super::Scale::City => 220.0,
    };
    let mut serial = 0usize;
    for &(tx, ty, w, s) in CENTRES {
        let half = s * 1000.0 * (0.8 + w);
        let angle: f64 = rng.random_range(-0.25..0.25);
        let (ca, sa) = (angle.cos(), angle.sin());
        let n = (2.0 * half / spacing) as i32;
        for k in 0..=n {
            let off = -half + f64::from(k) * spacing;
            for dir in 0..2 {
                let (a, b) = if dir == 0 {
                    ((off, -half), (off, half))
                } else {
                    ((-half, off), (half, off))
                };
                let rot = |(x, y): (f64, f64)| Coord {
                    x: tx + (x * ca - y * sa) * M_LON,
                    y: ty + (x * sa + y * ca) * M_LAT,
                };
                let class = if k % 6 == 0 {
                    "secondary"
                } else if k % 2 == 0 {
                    "tertiary"
                } else {
                    "residential"
                };
                let lanes = match class {
                    "secondary" => 4,
                    "tertiary" => 2,
                    _ => 1,
                };
                serial += 1;
                let name = format!(
                    "{}{}",
                    ROAD_NAMES[serial % ROAD_NAMES.len()]
                        .trim_end_matches(['路', '街', '道', '大']),
                    ["一路", "二路", "三路", "街", "巷"][serial % 5]
                );
                lines.push((road(vec![rot(a), rot(b)]), class, name, lanes));
            }
        }
    }
    let meta = layer_meta(
        "roads",
        "道路 Roads",
        "Classed road network: motorway, trunk, primary, secondary, tertiary, residential",
        GeometryKind::LineString,
        &[
            ("class", FieldKind::Text),
            ("name", FieldKind::Text),
            ("lanes", FieldKind::Integer),
            ("oneway", FieldKind::Boolean),
        ],
        (6, 14),
        GENERATED,
    );
    let mut features = Vec::new();
    for (line, class, name, lanes) in lines {
        let clipped = reference.city.clip(&line, false);
        if clipped.0.is_empty() {
            continue;
        }
        features.push(Feature {
            id: features.len() as i64 + 1,
            geometry: Geometry::MultiLineString(clipped),
            values: vec![
                Value::from(class),
                Value::from(name),
                Value::Int(lanes),
                Value::Bool(class == "motorway"),
            ],
        });
    }
    GeneratedLayer { meta, features }
}

/// Finds the polygons containing a point, testing bounding boxes first.
struct Lookup<'a> {
    items: Vec<(Rect<f64>, &'a MultiPolygon<f64>)>,
}

impl<'a> Lookup<'a> {
    fn new(shapes: impl Iterator<Item = &'a MultiPolygon<f64>>) -> Self {
        Self {
            items: shapes
                .filter_map(|s| s.bounding_rect().map(|r| (r, s)))
                .collect(),
        }
    }

    fn any(&self, p: &Point<f64>) -> bool {
        self.items
            .iter()
            .any(|(r, s)| r.contains(p) && s.contains(p))
    }
}

const USES: &[(&str, f64)] = &[
    ("residential", 0.58),
    ("commercial", 0.12),
    ("office", 0.08),
    ("industrial", 0.10),
    ("public", 0.07),
    ("education", 0.05),
];

/// Building footprints on a 30 m lattice (so none overlap), dense in the urban centres.
#[must_use]
pub fn buildings(
    reference: &super::Reference,
    water: &[(String, String, MultiPolygon<f64>)],
    n: usize,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> GeneratedLayer {
    const CELL: f64 = 30.0;
    let city = Lookup::new(reference.districts.iter().map(|d| &d.shape));
    let wet = Lookup::new(water.iter().map(|w| &w.2));
    let bb = reference
        .city
        .bounding_rect()
        .unwrap_or(Rect::new((118.3, 31.2), (119.3, 32.7)));
    let total_w: f64 = CENTRES.iter().map(|c| c.2).sum::<f64>() + 0.25;
    let mut taken: HashSet<(i32, i32)> = HashSet::with_capacity(n * 2);
    let mut features = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while features.len() < n && attempts < n * 50 {
        attempts += 1;
        let mut pick = rng.random_range(0.0..total_w);
        let mut centre = None;
        for c in CENTRES {
            if pick < c.2 {
                centre = Some(c);
                break;
            }
            pick -= c.2;
        }
        let (lon, lat) = match centre {
            Some(&(x, y, _, s)) => {
                // buildings cluster tighter than the wider urban area around each centre
                let (gx, gy) = gaussian_pair(rng);
                let s = s * 600.0;
                (x + gx * s * M_LON, y + gy * s * M_LAT)
            }
            // villages scattered over the countryside
            None => (
                rng.random_range(bb.min().x..bb.max().x),
                rng.random_range(bb.min().y..bb.max().y),
            ),
        };
        let key = (
            (lon / (CELL * M_LON)).floor() as i32,
            (lat / (CELL * M_LAT)).floor() as i32,
        );
        if taken.contains(&key) {
            continue;
        }
        let centre_pt = Point::new(
            (f64::from(key.0) + 0.5) * CELL * M_LON,
            (f64::from(key.1) + 0.5) * CELL * M_LAT,
        );
        if !city.any(&centre_pt) || wet.any(&centre_pt) {
            continue;
        }
        taken.insert(key);
        let intensity = urban_intensity(centre_pt.x(), centre_pt.y());
        let w = rng.random_range(8.0..(12.0 + 10.0 * intensity.min(1.0)));
        let h = rng.random_range(8.0..(12.0 + 10.0 * intensity.min(1.0)));
        let angle: f64 = rng.random_range(-0.26..0.26);
        let (ca, sa) = (angle.cos(), angle.sin());
        let jx = rng.random_range(-1.0..1.0);
        let jy = rng.random_range(-1.0..1.0);
        let ring: Vec<Coord<f64>> = [(-w, -h), (w, -h), (w, h), (-w, h), (-w, -h)]
            .iter()
            .map(|&(x, y)| {
                let (x, y) = (x / 2.0, y / 2.0);
                Coord {
                    x: centre_pt.x() + (x * ca - y * sa + jx) * M_LON,
                    y: centre_pt.y() + (x * sa + y * ca + jy) * M_LAT,
                }
            })
            .collect();
        let mut u = rng.random_range(0.0..1.0);
        let mut use_ = "residential";
        for &(name, p) in USES {
            if u < p {
                use_ = name;
                break;
            }
            u -= p;
        }
        let t: f64 = rng.random_range(0.0..1.0);
        let floors = (1.0 + intensity * 30.0 * t.powf(1.6) + rng.random_range(0.0..2.0))
            .round()
            .max(1.0);
        let height = (floors * 3.1 + rng.random_range(0.0..2.5)).round();
        let year = 1950 + (rng.random_range(0.0..1.0f64).powf(0.6) * 75.0) as i64;
        features.push(Feature {
            id: features.len() as i64 + 1,
            geometry: Geometry::Polygon(Polygon::new(LineString::new(ring), vec![])),
            values: vec![
                Value::from(use_),
                Value::Float(height),
                Value::Int(floors as i64),
                Value::Int(year),
            ],
        });
        if features.len() % 10_000 == 0 {
            progress.advance(10_000);
        }
    }
    let mut meta = layer_meta(
        "buildings",
        "建筑 Buildings",
        "Building footprints with height, floors, use and year built",
        GeometryKind::Polygon,
        &[
            ("use", FieldKind::Text),
            ("height", FieldKind::Real),
            ("floors", FieldKind::Integer),
            ("year", FieldKind::Integer),
        ],
        (10, 14),
        GENERATED,
    );
    meta.time_field = Some("year".into());
    GeneratedLayer { meta, features }
}

fn gaussian_pair(rng: &mut Rng) -> (f64, f64) {
    let u1: f64 = rng.random_range(1e-12..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    let r = (-2.0 * u1.ln()).sqrt();
    let t = std::f64::consts::TAU * u2;
    (r * t.cos(), r * t.sin())
}

const POI_KINDS: &[(&str, &str, f64)] = &[
    ("school", "学校", 0.18),
    ("hospital", "医院", 0.06),
    ("metro_station", "地铁站", 0.08),
    ("park", "公园", 0.08),
    ("police", "派出所", 0.05),
    ("fire_station", "消防站", 0.03),
    ("mall", "商场", 0.10),
    ("restaurant", "餐厅", 0.27),
    ("hotel", "酒店", 0.08),
    ("bank", "银行", 0.07),
];

/// Points of interest: a government office in every street and a service centre in every
/// community, plus schools, hospitals, stations and shops spread like the buildings.
#[must_use]
pub fn pois(
    reference: &super::Reference,
    streets: &[Territory],
    communities: &[Territory],
    n: usize,
    rng: &mut Rng,
) -> GeneratedLayer {
    let mut features = Vec::new();
    let mut push = |p: Point<f64>, name: String, category: &str, code: &str| {
        features.push(Feature {
            id: features.len() as i64 + 1,
            geometry: Geometry::Point(p),
            values: vec![Value::from(name), Value::from(category), Value::from(code)],
        });
    };
    for s in streets {
        if let Some(p) = s.shape.interior_point() {
            push(p, format!("{}办事处", s.name), "government", &s.code);
        }
    }
    for c in communities {
        if let Some(p) = c.shape.interior_point() {
            push(
                p,
                format!("{}服务中心", c.name),
                "community_centre",
                &c.code,
            );
        }
    }
    let city = Lookup::new(reference.districts.iter().map(|d| &d.shape));
    let total_w: f64 = CENTRES.iter().map(|c| c.2).sum();
    let mut serial = 0;
    while serial < n {
        let mut pick = rng.random_range(0.0..total_w);
        let mut c = CENTRES[0];
        for cc in CENTRES {
            if pick < cc.2 {
                c = *cc;
                break;
            }
            pick -= cc.2;
        }
        let (gx, gy) = gaussian_pair(rng);
        let p = Point::new(
            c.0 + gx * c.3 * 1200.0 * M_LON,
            c.1 + gy * c.3 * 1200.0 * M_LAT,
        );
        if !city.any(&p) {
            continue;
        }
        serial += 1;
        let mut u = rng.random_range(0.0..1.0);
        let mut kind = POI_KINDS[0];
        for k in POI_KINDS {
            if u < k.2 {
                kind = *k;
                break;
            }
            u -= k.2;
        }
        let stem = ROAD_NAMES[serial % ROAD_NAMES.len()].trim_end_matches(['路', '街', '道', '大']);
        push(p, format!("{stem}{}{}", kind.1, serial), kind.0, "");
    }
    let meta = layer_meta(
        "pois",
        "兴趣点 Points of interest",
        "Government offices, community centres, schools, hospitals, stations, shops",
        GeometryKind::Point,
        &[
            ("name", FieldKind::Text),
            ("category", FieldKind::Text),
            ("territory", FieldKind::Text),
        ],
        (10, 14),
        GENERATED,
    );
    GeneratedLayer { meta, features }
}

/// City components (部件) along the roads: manhole covers, lamp posts, hydrants, bins.
#[must_use]
pub fn components(roads: &GeneratedLayer, n: usize, rng: &mut Rng) -> GeneratedLayer {
    let kinds = [
        ("manhole", "MH"),
        ("lamp_post", "LP"),
        ("hydrant", "HY"),
        ("trash_bin", "TB"),
    ];
    let segments: Vec<(Coord<f64>, Coord<f64>)> = roads
        .features
        .iter()
        .filter_map(|f| match &f.geometry {
            Geometry::MultiLineString(ml) => Some(ml),
            _ => None,
        })
        .flat_map(|ml| ml.0.iter())
        .flat_map(|l| l.0.windows(2).map(|w| (w[0], w[1])))
        .collect();
    let mut features = Vec::with_capacity(n);
    if !segments.is_empty() {
        for i in 0..n {
            let (a, b) = segments[rng.random_range(0..segments.len())];
            let t: f64 = rng.random_range(0.0..1.0);
            let side = if rng.random_bool(0.5) { 8.0 } else { -8.0 };
            let (dx, dy) = ((b.x - a.x) / M_LON, (b.y - a.y) / M_LAT);
            let len = dx.hypot(dy).max(1e-9);
            let p = Point::new(
                a.x + t * (b.x - a.x) - dy / len * side * M_LON,
                a.y + t * (b.y - a.y) + dx / len * side * M_LAT,
            );
            let (kind, prefix) = kinds[i % kinds.len()];
            features.push(Feature {
                id: i as i64 + 1,
                geometry: Geometry::Point(p),
                values: vec![
                    Value::from(kind),
                    Value::from(format!("{prefix}{:07}", i + 1)),
                    Value::from(if rng.random_bool(0.97) {
                        "normal"
                    } else {
                        "damaged"
                    }),
                    Value::Int(rng.random_range(1995..2026)),
                ],
            });
        }
    }
    let mut meta = layer_meta(
        "components",
        "城市部件 City components",
        "Manhole covers, lamp posts, hydrants and bins along the roads",
        GeometryKind::Point,
        &[
            ("kind", FieldKind::Text),
            ("code", FieldKind::Text),
            ("status", FieldKind::Text),
            ("installed", FieldKind::Integer),
        ],
        (14, 14),
        GENERATED,
    );
    meta.time_field = Some("installed".into());
    GeneratedLayer { meta, features }
}
