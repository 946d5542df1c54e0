//! The five-level territory tree under the real districts: streets, communities and grids,
//! each level an exact partition of its parent (Voronoi cells clipped to the parent).

use super::{Rng, urban_intensity};
use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Contains, Coord, LineString, MultiPolygon, Point,
    Polygon,
};
use rand::Rng as _;

/// Longitude scale at Nanjing's latitude, so Voronoi cells are built in near-metric space.
const KX: f64 = 0.848;

/// One unit of territory.
#[derive(Debug, Clone)]
pub struct Territory {
    /// division code (6 digits district, +3 street, +3 community, +3 grid)
    pub code: String,
    /// name
    pub name: String,
    /// parent's code
    pub parent: String,
    /// WGS84 shape
    pub shape: MultiPolygon<f64>,
}

/// Real street/town counts of Nanjing's districts, with names.
pub fn street_names(district: &str) -> &'static [&'static str] {
    match district {
        "320102" => &[
            "玄武门",
            "新街口",
            "梅园新村",
            "锁金村",
            "孝陵卫",
            "红山",
            "玄武湖",
        ],
        "320104" => &[
            "秋湖",
            "夫子庙",
            "双塘",
            "中华门",
            "五老村",
            "洪武路",
            "大光路",
            "瑞金路",
            "月牙湖",
            "光华路",
            "朝天宫",
            "红花",
        ],
        "320105" => &["南苑", "兴隆", "沙洲", "双闸", "江心洲", "莫愁湖"],
        "320106" => &[
            "宁海路",
            "华侨路",
            "湖南路",
            "中央门",
            "挹江门",
            "江东",
            "凤凰",
            "阅江楼",
            "热河南路",
            "幕府山",
            "建宁路",
            "宝塔桥",
            "小市",
        ],
        "320111" => &[
            "泰山", "顶山", "沿江", "江浦", "桥林", "汤泉", "盘城", "星甸", "永宁",
        ],
        "320113" => &[
            "尧化",
            "马群",
            "迈皋桥",
            "燕子矶",
            "栖霞",
            "龙潭",
            "仙林",
            "八卦洲",
            "西岗",
        ],
        "320114" => &["雨花", "赛虹桥", "西善桥", "板桥", "铁心桥", "梅山"],
        "320115" => &[
            "东山", "秣陵", "汤山", "淳化", "禄口", "江宁", "谷里", "湖熟", "横溪", "麒麟",
        ],
        "320116" => &[
            "雄州",
            "龙池",
            "程桥",
            "金牛湖",
            "横梁",
            "龙袍",
            "马鞍",
            "冶山",
            "竹镇",
        ],
        "320117" => &[
            "永阳", "柘塘", "白马", "东屏", "石湫", "洪蓝", "晶桥", "和凤",
        ],
        "320118" => &[
            "淳溪", "古柏", "阳江", "砖墙", "东坝", "固城", "桠溪", "漆桥",
        ],
        _ => &["新城", "东城", "西城"],
    }
}

const NAME_A: &[&str] = &[
    "新", "东", "西", "南", "北", "中", "翠", "金", "银", "华", "兴", "和", "安", "康", "丰", "瑞",
    "云", "星", "明", "清", "春", "秀", "宁", "长", "福",
];
const NAME_B: &[&str] = &[
    "苑", "园", "村", "湾", "桥", "坊", "里", "城", "岗", "塘", "庄", "街", "门", "山", "湖", "河",
    "林", "花", "港", "井",
];

/// A community name from its index.
#[must_use]
pub fn community_name(i: usize) -> String {
    format!(
        "{}{}社区",
        NAME_A[i % NAME_A.len()],
        NAME_B[(i / NAME_A.len()) % NAME_B.len()]
    )
}

/// Points inside `parent`, spread by best-candidate sampling, denser where the city is.
fn seeds(parent: &MultiPolygon<f64>, n: usize, rng: &mut Rng) -> Vec<Point<f64>> {
    let Some(bb) = parent.bounding_rect() else {
        return Vec::new();
    };
    let mut out: Vec<Point<f64>> = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < n * 400 {
        let mut best: Option<(f64, Point<f64>)> = None;
        for _ in 0..10 {
            tries += 1;
            let p = Point::new(
                rng.random_range(bb.min().x..bb.max().x),
                rng.random_range(bb.min().y..bb.max().y),
            );
            if !parent.contains(&p) {
                continue;
            }
            let d = out
                .iter()
                .map(|q| ((p.x() - q.x()) * KX).hypot(p.y() - q.y()))
                .fold(f64::INFINITY, f64::min);
            // denser where the city is: distances count less in built-up areas
            let score = d * (1.0 + 2.0 * urban_intensity(p.x(), p.y()));
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, p));
            }
        }
        if let Some((_, p)) = best {
            out.push(p);
        }
    }
    out
}

/// Clips a convex polygon (local coords) to the half-plane closer to `a` than to `b`.
fn clip_half_plane(poly: &[Coord<f64>], a: Coord<f64>, b: Coord<f64>) -> Vec<Coord<f64>> {
    let m = Coord {
        x: f64::midpoint(a.x, b.x),
        y: f64::midpoint(a.y, b.y),
    };
    let n = Coord {
        x: b.x - a.x,
        y: b.y - a.y,
    };
    let side = |p: Coord<f64>| (p.x - m.x) * n.x + (p.y - m.y) * n.y;
    let mut out = Vec::with_capacity(poly.len() + 1);
    for i in 0..poly.len() {
        let p = poly[i];
        let q = poly[(i + 1) % poly.len()];
        let (sp, sq) = (side(p), side(q));
        if sp <= 0.0 {
            out.push(p);
        }
        if (sp <= 0.0) != (sq <= 0.0) {
            let t = sp / (sp - sq);
            out.push(Coord {
                x: p.x + t * (q.x - p.x),
                y: p.y + t * (q.y - p.y),
            });
        }
    }
    out
}

/// Splits `parent` into `n` pieces (Voronoi cells of `n` seeds, clipped to the parent).
/// Pieces that come out empty are dropped, so fewer than `n` may return.
pub fn partition(parent: &MultiPolygon<f64>, n: usize, rng: &mut Rng) -> Vec<MultiPolygon<f64>> {
    let Some(bb) = parent.bounding_rect() else {
        return Vec::new();
    };
    let pts = seeds(parent, n.max(1), rng);
    if pts.len() <= 1 {
        return vec![parent.clone()];
    }
    let local: Vec<Coord<f64>> = pts
        .iter()
        .map(|p| Coord {
            x: p.x() * KX,
            y: p.y(),
        })
        .collect();
    let pad = 0.01;
    let frame = vec![
        Coord {
            x: (bb.min().x - pad) * KX,
            y: bb.min().y - pad,
        },
        Coord {
            x: (bb.max().x + pad) * KX,
            y: bb.min().y - pad,
        },
        Coord {
            x: (bb.max().x + pad) * KX,
            y: bb.max().y + pad,
        },
        Coord {
            x: (bb.min().x - pad) * KX,
            y: bb.max().y + pad,
        },
    ];
    let mut out = Vec::with_capacity(pts.len());
    for (i, &a) in local.iter().enumerate() {
        let mut cell = frame.clone();
        for (j, &b) in local.iter().enumerate() {
            if i != j {
                cell = clip_half_plane(&cell, a, b);
            }
        }
        if cell.len() < 3 {
            continue;
        }
        let mut ring: Vec<Coord<f64>> = cell
            .iter()
            .map(|c| Coord {
                x: c.x / KX,
                y: c.y,
            })
            .collect();
        ring.push(ring[0]);
        let cell = Polygon::new(LineString::new(ring), vec![]);
        let piece = parent.intersection(&MultiPolygon::new(vec![cell]));
        // drop slivers the clipping may leave (under ~1 m²)
        let piece: MultiPolygon<f64> = piece
            .into_iter()
            .filter(|p| p.unsigned_area() > 1e-10)
            .collect();
        if !piece.0.is_empty() {
            out.push(piece);
        }
    }
    // largest first, then west to east, so codes read in a stable order
    out.sort_by(|a, b| {
        let ca = a.centroid().map_or(0.0, |c| c.x() - c.y());
        let cb = b.centroid().map_or(0.0, |c| c.x() - c.y());
        ca.total_cmp(&cb)
    });
    out
}

/// Children counts proportional to weights, summing to about `total`, at least `min` each.
#[must_use]
pub fn apportion(weights: &[f64], total: usize, min: usize) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| ((w / sum) * total as f64).round().max(min as f64) as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;
    use rand::SeedableRng;

    #[test]
    fn partition_of_a_square_covers_it_exactly() {
        let sq = MultiPolygon::new(vec![polygon![
            (x: 118.0, y: 32.0), (x: 118.1, y: 32.0), (x: 118.1, y: 32.1), (x: 118.0, y: 32.1)
        ]]);
        let mut rng = Rng::seed_from_u64(7);
        let parts = partition(&sq, 9, &mut rng);
        assert_eq!(parts.len(), 9);
        let total: f64 = parts.iter().map(Area::unsigned_area).sum();
        assert!(
            (total - sq.unsigned_area()).abs() < 1e-8 * sq.unsigned_area(),
            "{total}"
        );
        for (i, a) in parts.iter().enumerate() {
            for b in &parts[i + 1..] {
                assert!(a.intersection(b).unsigned_area() < 1e-14);
            }
        }
    }

    #[test]
    fn apportion_keeps_minimum() {
        assert_eq!(apportion(&[1.0, 1.0, 8.0], 10, 2), vec![2, 2, 8]);
    }
}
