//! Deterministic generator of Nanjing's fixture data.
//!
//! Under the real city outline and 11 districts (Tianditu, CGCS2000) it builds the rest of the
//! five-level territory tree — streets/towns, communities and management grids, each level an
//! exact partition of its parent with codes extending the division codes — plus the Jiangbei New
//! Area overlay, buildings (dense in the urban centres), classed roads, water, points of interest
//! and city components. The same seed always gives the same data.

pub mod base;
pub mod hotline;
pub mod territory;

use crate::import::Progress;
use crate::layer::{Feature, Field, FieldKind, GeometryKind, LayerMeta};
use crate::{Error, Result};
use citytwin_tiles::Value;
use geo::{Area, BooleanOps, Centroid, Geometry, MultiPolygon};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use territory::{Territory, apportion, community_name, partition, street_names};

/// The generator's random source: fast, portable and seedable.
pub type Rng = rand_chacha::ChaCha8Rng;

/// How much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// the committed demo set: ~50k buildings
    Small,
    /// the benchmark set: ≥ 1M buildings
    City,
}

impl Scale {
    /// Parses `small` or `city`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "small" => Ok(Self::Small),
            "city" => Ok(Self::City),
            _ => Err(Error::Invalid(format!(
                "unknown scale {s:?}: use small or city"
            ))),
        }
    }

    fn buildings(self) -> usize {
        match self {
            Self::Small => 50_000,
            Self::City => 1_050_000,
        }
    }

    fn pois(self) -> usize {
        match self {
            Self::Small => 3_000,
            Self::City => 40_000,
        }
    }

    fn hotline(self) -> usize {
        match self {
            Self::Small => 4_000,
            Self::City => 60_000,
        }
    }

    fn components(self) -> usize {
        match self {
            Self::Small => 12_000,
            Self::City => 200_000,
        }
    }
}

/// Urban centres of Nanjing: (lon, lat, weight, sigma in km).
pub const CENTRES: &[(f64, f64, f64, f64)] = &[
    (118.784, 32.041, 1.00, 4.0), // 新街口
    (118.775, 32.066, 0.60, 3.0), // 鼓楼
    (118.728, 32.005, 0.60, 3.5), // 河西
    (118.785, 31.990, 0.40, 3.0), // 雨花
    (118.915, 32.105, 0.35, 4.0), // 仙林
    (118.805, 32.105, 0.30, 3.0), // 迈皋桥
    (118.845, 31.950, 0.45, 4.5), // 东山
    (118.820, 31.895, 0.25, 3.5), // 九龙湖
    (118.635, 32.060, 0.35, 4.5), // 江北
    (118.750, 32.220, 0.20, 3.0), // 大厂
    (118.835, 32.340, 0.15, 3.0), // 雄州
    (119.025, 31.655, 0.12, 3.0), // 溧水
    (118.880, 31.330, 0.10, 3.0), // 高淳
    (118.870, 31.740, 0.08, 2.5), // 禄口
    (119.050, 32.060, 0.06, 2.5), // 汤山
];

/// How built-up a place is: 0 in the countryside, about 1 at Xinjiekou.
#[must_use]
pub fn urban_intensity(lon: f64, lat: f64) -> f64 {
    CENTRES
        .iter()
        .map(|&(cx, cy, w, s)| {
            let dx = (lon - cx) * 111.32 * 0.848;
            let dy = (lat - cy) * 110.57;
            w * (-(dx * dx + dy * dy) / (2.0 * s * s)).exp()
        })
        .sum::<f64>()
        .min(1.2)
}

/// The real data the generator starts from.
#[derive(Debug, Clone)]
pub struct Reference {
    /// the city outline
    pub city: MultiPolygon<f64>,
    /// the 11 districts with their codes and names
    pub districts: Vec<Territory>,
}

/// Properties and shape of each feature of a polygon file.
type PolygonFeatures = Vec<(
    serde_json::Map<String, serde_json::Value>,
    MultiPolygon<f64>,
)>;

fn read_polygons(path: &Path) -> Result<PolygonFeatures> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let fc: geojson::FeatureCollection = text
        .parse()
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    fc.features
        .into_iter()
        .map(|f| {
            let g = f.geometry.ok_or_else(|| {
                Error::Invalid(format!("{}: feature without geometry", path.display()))
            })?;
            let g = Geometry::<f64>::try_from(g)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            let mp = match g {
                Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
                Geometry::MultiPolygon(mp) => mp,
                _ => return Err(Error::Invalid(format!("{}: not a polygon", path.display()))),
            };
            Ok((f.properties.unwrap_or_default(), mp))
        })
        .collect()
}

impl Reference {
    /// Loads the Tianditu city outline and districts from `fixtures/reference/`.
    pub fn load(dir: &Path) -> Result<Self> {
        let city = read_polygons(&dir.join("nanjing_city_tianditu_cgcs2000.geojson"))?
            .into_iter()
            .next()
            .map(|(_, g)| g)
            .ok_or_else(|| Error::Invalid("no city outline".into()))?;
        let mut districts: Vec<Territory> =
            read_polygons(&dir.join("nanjing_districts_tianditu_cgcs2000.geojson"))?
                .into_iter()
                .map(|(props, shape)| {
                    let gb = props.get("gb").and_then(|v| v.as_str()).unwrap_or_default();
                    Territory {
                        code: gb.trim_start_matches("156").to_owned(),
                        name: props
                            .get("name")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        parent: "320100".to_owned(),
                        shape,
                    }
                })
                .collect();
        districts.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(Self { city, districts })
    }
}

/// One generated layer with its catalogue entry.
#[derive(Debug, Clone)]
pub struct GeneratedLayer {
    /// catalogue metadata
    pub meta: LayerMeta,
    /// the features, WGS84
    pub features: Vec<Feature>,
}

fn layer_meta(
    name: &str,
    title: &str,
    description: &str,
    kind: GeometryKind,
    fields: &[(&str, FieldKind)],
    zooms: (u8, u8),
    source: &str,
) -> LayerMeta {
    let mut m = LayerMeta::new(name, kind);
    m.title = title.to_owned();
    m.description = description.to_owned();
    m.fields = fields
        .iter()
        .map(|&(n, k)| Field {
            name: n.to_owned(),
            kind: k,
        })
        .collect();
    m.minzoom = zooms.0;
    m.maxzoom = zooms.1;
    m.source = source.to_owned();
    m
}

const GENERATED: &str = "citytwin synthetic fixtures";
const TIANDITU: &str = "© 天地图 Tianditu";

fn territory_layer(
    name: &str,
    title: &str,
    level: &str,
    units: &[Territory],
    zooms: (u8, u8),
    source: &str,
) -> GeneratedLayer {
    let mut meta = layer_meta(
        name,
        title,
        &format!("Nanjing {level} boundaries"),
        GeometryKind::Polygon,
        &[
            ("code", FieldKind::Text),
            ("name", FieldKind::Text),
            ("parent", FieldKind::Text),
            ("level", FieldKind::Text),
            ("area_km2", FieldKind::Real),
        ],
        zooms,
        source,
    );
    meta.acquired = Some("2025-01-01".into());
    let features = units
        .iter()
        .enumerate()
        .map(|(i, t)| Feature {
            id: i as i64 + 1,
            geometry: Geometry::MultiPolygon(t.shape.clone()),
            values: vec![
                Value::from(t.code.as_str()),
                Value::from(t.name.as_str()),
                Value::from(t.parent.as_str()),
                Value::from(level),
                Value::Float((base::area_km2(&t.shape) * 1000.0).round() / 1000.0),
            ],
        })
        .collect();
    GeneratedLayer { meta, features }
}

/// Splits each parent into children with counts from `counts`, naming and coding them.
fn subdivide(
    parents: &[Territory],
    counts: &[usize],
    rng: &mut Rng,
    name: impl Fn(&Territory, usize, usize) -> String,
) -> Vec<Territory> {
    let mut out = Vec::new();
    let mut serial = 0;
    for (parent, &n) in parents.iter().zip(counts) {
        for (i, shape) in partition(&parent.shape, n, rng).into_iter().enumerate() {
            out.push(Territory {
                code: format!("{}{:03}", parent.code, i + 1),
                name: name(parent, i, serial),
                parent: parent.code.clone(),
                shape,
            });
            serial += 1;
        }
    }
    out
}

/// Generates every fixture layer.
pub fn generate(
    reference: &Reference,
    scale: Scale,
    seed: u64,
    progress: &dyn Progress,
) -> Vec<GeneratedLayer> {
    let mut rng = Rng::seed_from_u64(seed);
    let weight = |t: &Territory| {
        let c = t.shape.centroid().map_or((118.8, 32.0), |c| (c.x(), c.y()));
        0.6 + 3.0 * urban_intensity(c.0, c.1)
    };
    progress.phase("streets", None);
    let street_counts: Vec<usize> = reference
        .districts
        .iter()
        .map(|d| street_names(&d.code).len())
        .collect();
    let streets = subdivide(&reference.districts, &street_counts, &mut rng, |p, i, _| {
        let names = street_names(&p.code);
        format!("{}街道", names.get(i).copied().unwrap_or("新城"))
    });
    progress.phase("communities", None);
    let w: Vec<f64> = streets
        .iter()
        .map(|s| weight(s) * base::area_km2(&s.shape).powf(0.35))
        .collect();
    let communities = subdivide(
        &streets,
        &apportion(&w, 1200, 3),
        &mut rng,
        |_, _, serial| community_name(serial),
    );
    progress.phase("grids", None);
    let w: Vec<f64> = communities
        .iter()
        .map(|c| weight(c) * base::area_km2(&c.shape).powf(0.35))
        .collect();
    let grids = subdivide(
        &communities,
        &apportion(&w, 10_000, 2),
        &mut rng,
        |p, i, _| format!("{}第{}网格", p.name.trim_end_matches("社区"), i + 1),
    );
    let city = Territory {
        code: "320100".into(),
        name: "南京市".into(),
        parent: "320000".into(),
        shape: reference.city.clone(),
    };
    let mut layers = vec![
        territory_layer("city", "南京市 City", "city", &[city], (0, 10), TIANDITU),
        territory_layer(
            "districts",
            "区 Districts",
            "district",
            &reference.districts,
            (0, 12),
            TIANDITU,
        ),
        territory_layer(
            "streets",
            "街道 Streets and towns",
            "street",
            &streets,
            (8, 13),
            GENERATED,
        ),
        territory_layer(
            "communities",
            "社区 Communities",
            "community",
            &communities,
            (10, 14),
            GENERATED,
        ),
        territory_layer(
            "grids",
            "网格 Management grids",
            "grid",
            &grids,
            (12, 15),
            GENERATED,
        ),
    ];
    layers.push(jiangbei(reference));
    progress.phase("water", None);
    let water = base::water(reference);
    progress.phase("roads", None);
    let roads = base::roads(reference, scale, &mut rng);
    progress.phase("buildings", Some(scale.buildings() as u64));
    let buildings = base::buildings(reference, &water, scale.buildings(), &mut rng, progress);
    progress.phase("points of interest", None);
    let pois = base::pois(reference, &streets, &communities, scale.pois(), &mut rng);
    let components = base::components(&roads, scale.components(), &mut rng);
    let mut hotline = hotline::hotline(&grids, scale.hotline(), &mut rng);
    hotline.meta.acquired = Some("2026-11-29".into());
    layers.extend([
        water_layer(water),
        roads,
        buildings,
        pois,
        components,
        hotline,
    ]);
    progress.finish();
    layers
}

fn jiangbei(reference: &Reference) -> GeneratedLayer {
    use geo::polygon;
    // the New Area spans the river-side parts of Pukou and Luhe
    let zone = polygon![
        (x: 118.40, y: 31.95), (x: 118.62, y: 31.92), (x: 118.78, y: 32.08),
        (x: 118.95, y: 32.18), (x: 118.98, y: 32.30), (x: 118.72, y: 32.36),
        (x: 118.48, y: 32.22), (x: 118.40, y: 31.95),
    ];
    let north = reference
        .districts
        .iter()
        .filter(|d| d.code == "320111" || d.code == "320116")
        .fold(MultiPolygon::new(vec![]), |acc, d| acc.union(&d.shape));
    let shape = north.intersection(&MultiPolygon::new(vec![zone]));
    let mut meta = layer_meta(
        "jiangbei",
        "江北新区 Jiangbei New Area",
        "National-level new area: a functional zone overlapping Pukou and Luhe",
        GeometryKind::Polygon,
        &[
            ("code", FieldKind::Text),
            ("name", FieldKind::Text),
            ("kind", FieldKind::Text),
            ("overlaps", FieldKind::Text),
            ("area_km2", FieldKind::Real),
        ],
        (0, 12),
        GENERATED,
    );
    meta.acquired = Some("2025-01-01".into());
    let area = base::area_km2(&shape);
    GeneratedLayer {
        meta,
        features: vec![Feature {
            id: 1,
            geometry: Geometry::MultiPolygon(shape),
            values: vec![
                Value::from("320100JB"),
                Value::from("江北新区"),
                Value::from("functional_zone"),
                Value::from("320111,320116"),
                Value::Float(area.round()),
            ],
        }],
    }
}

fn water_layer(water: Vec<(String, String, MultiPolygon<f64>)>) -> GeneratedLayer {
    let meta = layer_meta(
        "water",
        "水系 Water",
        "The Yangtze, the Qinhuai and the lakes",
        GeometryKind::Polygon,
        &[
            ("name", FieldKind::Text),
            ("kind", FieldKind::Text),
            ("area_km2", FieldKind::Real),
        ],
        (0, 14),
        GENERATED,
    );
    let features = water
        .into_iter()
        .enumerate()
        .map(|(i, (name, kind, shape))| Feature {
            id: i as i64 + 1,
            values: vec![
                Value::from(name),
                Value::from(kind),
                Value::Float(
                    (shape.unsigned_area() * 111.32 * 0.848 * 110.57 * 100.0).round() / 100.0,
                ),
            ],
            geometry: Geometry::MultiPolygon(shape),
        })
        .collect();
    GeneratedLayer { meta, features }
}

/// One layer's entry in the fixture manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// file name beside the manifest
    pub file: String,
    /// catalogue metadata to import with
    pub meta: LayerMeta,
}

/// Writes every layer as GeoJSON into `dir`, with `manifest.json` listing them.
pub fn write_fixtures(layers: &[GeneratedLayer], dir: &Path) -> Result<()> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| Error::Io {
            path: p.clone(),
            source: e,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut manifest = Vec::new();
    for layer in layers {
        let file = format!("{}.geojson", layer.meta.name);
        let path = dir.join(&file);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
        write_geojson(layer, &mut w).map_err(io(&path))?;
        w.flush().map_err(io(&path))?;
        let mut meta = layer.meta.clone();
        meta.feature_count = layer.features.len() as u64;
        meta.updated_at = String::new();
        manifest.push(ManifestEntry { file, meta });
    }
    let path = dir.join("manifest.json");
    let json =
        serde_json::to_string_pretty(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&path, json + "\n").map_err(io(&path))
}

/// Reads a fixture manifest.
pub fn read_manifest(dir: &Path) -> Result<Vec<ManifestEntry>> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

fn write_coords(w: &mut impl Write, coords: &geo::LineString<f64>) -> std::io::Result<()> {
    w.write_all(b"[")?;
    for (i, c) in coords.0.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write!(w, "[{},{}]", round7(c.x), round7(c.y))?;
    }
    w.write_all(b"]")
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

fn write_polygon(w: &mut impl Write, p: &geo::Polygon<f64>) -> std::io::Result<()> {
    w.write_all(b"[")?;
    write_coords(w, p.exterior())?;
    for r in p.interiors() {
        w.write_all(b",")?;
        write_coords(w, r)?;
    }
    w.write_all(b"]")
}

fn write_geometry(w: &mut impl Write, g: &Geometry<f64>) -> std::io::Result<()> {
    match g {
        Geometry::Point(p) => write!(
            w,
            r#"{{"type":"Point","coordinates":[{},{}]}}"#,
            round7(p.x()),
            round7(p.y())
        ),
        Geometry::LineString(l) => {
            w.write_all(br#"{"type":"LineString","coordinates":"#)?;
            write_coords(w, l)?;
            w.write_all(b"}")
        }
        Geometry::MultiLineString(ml) => {
            w.write_all(br#"{"type":"MultiLineString","coordinates":["#)?;
            for (i, l) in ml.0.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_coords(w, l)?;
            }
            w.write_all(b"]}")
        }
        Geometry::Polygon(p) => {
            w.write_all(br#"{"type":"Polygon","coordinates":"#)?;
            write_polygon(w, p)?;
            w.write_all(b"}")
        }
        Geometry::MultiPolygon(mp) => {
            w.write_all(br#"{"type":"MultiPolygon","coordinates":["#)?;
            for (i, p) in mp.0.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write_polygon(w, p)?;
            }
            w.write_all(b"]}")
        }
        _ => w.write_all(b"null"),
    }
}

/// Writes one layer as a GeoJSON FeatureCollection, one feature per line.
pub fn write_geojson(layer: &GeneratedLayer, w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
    for (i, f) in layer.features.iter().enumerate() {
        if i > 0 {
            w.write_all(b",\n")?;
        }
        write!(w, r#"{{"type":"Feature","id":{},"properties":{{"#, f.id)?;
        let mut first = true;
        for (field, v) in layer.meta.fields.iter().zip(&f.values) {
            if v.is_null() {
                continue;
            }
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            write!(
                w,
                "{}:{}",
                citytwin_tiles::value::json_string(&field.name),
                v.to_json()
            )?;
        }
        w.write_all(b"},\"geometry\":")?;
        write_geometry(w, &f.geometry)?;
        w.write_all(b"}")?;
    }
    w.write_all(b"\n]}\n")
}
