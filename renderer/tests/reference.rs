//! Reference-image tests: fixtures rendered and compared with committed PNGs under a per-pixel
//! tolerance, so lavapipe, llvmpipe and real GPUs all pass. `CITYTWIN_BLESS=1` rewrites the
//! references; a mismatch writes the frame to `target/render-diff/`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use citytwin_renderer::dashboard::Look;
use citytwin_renderer::expr::Props;
use citytwin_renderer::{
    BoardInput, Frame, Layout, MapSource, Options, PanelData, Renderer, Style,
};
use citytwin_tiles::Value;
use citytwin_tiles::proj::lonlat_to_mercator;
use geo::{BoundingRect, Geometry, Intersects, LineString, MapCoords, Point, Polygon, Rect};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

struct Feature {
    geometry: Geometry<f64>,
    props: Vec<(&'static str, Value)>,
}

impl Props for Feature {
    fn get(&self, key: &str) -> Option<&Value> {
        self.props.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    fn id(&self) -> Option<i64> {
        None
    }
    fn geometry_type(&self) -> &'static str {
        match self.geometry {
            Geometry::Point(_) | Geometry::MultiPoint(_) => "Point",
            Geometry::LineString(_) | Geometry::MultiLineString(_) => "LineString",
            _ => "Polygon",
        }
    }
}

/// A tiny made-up Nanjing, in Web Mercator like the twin's index.
struct Fixture(HashMap<&'static str, Vec<Feature>>);

fn merc(g: &Geometry<f64>) -> Geometry<f64> {
    g.map_coords(|c| {
        let (x, y) = lonlat_to_mercator(c.x, c.y);
        geo::coord! { x: x, y: y }
    })
}

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
    Polygon::new(
        LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]),
        vec![],
    )
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

impl Fixture {
    fn new() -> Self {
        let mut layers: HashMap<&'static str, Vec<Feature>> = HashMap::new();
        let mut add = |layer: &'static str, g: Geometry<f64>, props: Vec<(&'static str, Value)>| {
            layers.entry(layer).or_default().push(Feature {
                geometry: merc(&g),
                props,
            });
        };
        let mut xuanwu = rect(118.74, 32.02, 118.80, 32.07);
        xuanwu.interiors_push(LineString::from(vec![
            (118.75, 32.03),
            (118.76, 32.03),
            (118.76, 32.04),
            (118.75, 32.03),
        ]));
        add(
            "districts",
            xuanwu.into(),
            vec![("code", text("320102")), ("name", text("玄武区"))],
        );
        add(
            "districts",
            rect(118.80, 32.02, 118.86, 32.07).into(),
            vec![("code", text("320106")), ("name", text("鼓楼区"))],
        );
        add(
            "water",
            rect(118.785, 32.055, 118.80, 32.068).into(),
            vec![],
        );
        for (class, coords) in [
            (
                "motorway",
                vec![(118.72, 32.0), (118.78, 32.045), (118.88, 32.085)],
            ),
            ("trunk", vec![(118.72, 32.03), (118.88, 32.03)]),
            ("residential", vec![(118.77, 32.0), (118.77, 32.09)]),
        ] {
            add(
                "roads",
                LineString::from(coords).into(),
                vec![("class", text(class))],
            );
        }
        for (name, cat, lon, lat) in [
            ("鼓楼医院", "hospital", 118.781, 32.058),
            ("南京大学", "school", 118.779, 32.056),
            ("新街口", "metro_station", 118.784, 32.041),
        ] {
            add(
                "pois",
                Point::new(lon, lat).into(),
                vec![("name", text(name)), ("category", text(cat))],
            );
        }
        // a deterministic cluster of events for the heatmap
        let mut s = 7u64;
        let mut next = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 33) as f64) / f64::from(u32::MAX >> 1)
        };
        for i in 0..40 {
            let (dx, dy) = ((next() - 0.5) * 0.03, (next() - 0.5) * 0.02);
            add(
                "events",
                Point::new(118.765 + dx, 32.035 + dy).into(),
                vec![("weight", Value::Float(if i % 5 == 0 { 2.0 } else { 1.0 }))],
            );
        }
        for i in 0..5 {
            for j in 0..4 {
                let x = 118.815 + f64::from(i) * 0.0016;
                let y = 32.045 + f64::from(j) * 0.0014;
                add(
                    "buildings",
                    rect(x, y, x + 0.0011, y + 0.0009).into(),
                    vec![
                        ("height", Value::Int(20 + i64::from(i * 4 + j) * 9)),
                        (
                            "use",
                            text(if (i + j) % 2 == 0 {
                                "office"
                            } else {
                                "residential"
                            }),
                        ),
                    ],
                );
            }
        }
        Fixture(layers)
    }
}

impl MapSource for Fixture {
    fn has_layer(&self, layer: &str) -> bool {
        self.0.contains_key(layer)
    }
    fn features(
        &self,
        layer: &str,
        area: Rect<f64>,
        _zoom: f64,
        each: &mut dyn FnMut(&Geometry<f64>, &dyn Props),
    ) {
        for f in self.0.get(layer).into_iter().flatten() {
            if f.geometry
                .bounding_rect()
                .is_some_and(|b| b.intersects(&area))
            {
                each(&f.geometry, f);
            }
        }
    }
}

fn renderer() -> std::sync::MutexGuard<'static, Renderer> {
    static R: OnceLock<Mutex<Renderer>> = OnceLock::new();
    R.get_or_init(|| {
        let r = Renderer::new(Options::default()).expect(
            "a wgpu adapter: a GPU or Mesa's lavapipe (scripts/setup-test-deps installs it)",
        );
        eprintln!("rendering on {}", r.describe());
        Mutex::new(r)
    })
    .lock()
    .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn style() -> Style {
    let json: serde_json::Value = serde_json::from_str(include_str!("style.json")).unwrap();
    Style::parse(&json).unwrap()
}

/// Compares with `tests/reference/{name}.png`: a pixel differs when a channel is off by more
/// than 40; at most 0.5 % of pixels may differ (antialiasing and rasterisation rules vary by
/// driver; a wrong colour, a missing layer or a shifted label does not hide in that).
fn check(name: &str, frame: &Frame) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let path = dir.join(format!("{name}.png"));
    if std::env::var_os("CITYTWIN_BLESS").is_some() {
        std::fs::write(&path, frame.png().unwrap()).unwrap();
        return;
    }
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with CITYTWIN_BLESS=1 to create it",
            path.display()
        )
    });
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut want = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut want).unwrap();
    assert_eq!(
        (info.width, info.height),
        (frame.width, frame.height),
        "{name}: size"
    );
    assert_eq!(info.color_type, png::ColorType::Rgba, "{name}: colour type");
    let differing = want
        .chunks_exact(4)
        .zip(frame.rgba.chunks_exact(4))
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 40))
        .count();
    let share = differing as f64 / f64::from(frame.width * frame.height);
    if share > 0.005 {
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/render-diff");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(format!("{name}.png")), frame.png().unwrap()).unwrap();
        panic!(
            "{name}: {differing} pixels ({:.2} %) differ from {}; the frame is in target/render-diff",
            share * 100.0,
            path.display()
        );
    }
}

/// Distinct colours in a frame: a blank or single-layer frame has few.
fn colours(frame: &Frame) -> usize {
    let mut set: Vec<[u8; 4]> = frame
        .rgba
        .chunks_exact(4)
        .step_by(7)
        .map(|p| [p[0], p[1], p[2], p[3]])
        .collect();
    set.sort_unstable();
    set.dedup();
    set.len()
}

fn pixel(frame: &Frame, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * frame.width + x) * 4) as usize;
    frame.rgba[i..i + 4].try_into().unwrap()
}

#[test]
fn flat_map_at_an_odd_width_with_chinese_labels_and_a_heatmap() {
    let frame = renderer()
        .render_map(
            &style(),
            &Fixture::new(),
            Look::Bbox([118.72, 32.0, 118.88, 32.09]),
            0.0,
            0.0,
            (1366, 768, 1.0),
            "",
        )
        .unwrap();
    assert_eq!((frame.width, frame.height), (1366, 768));
    assert_eq!(frame.rgba.len(), 1366 * 768 * 4, "rows carry no padding");
    assert!(frame.warnings.is_empty(), "{:?}", frame.warnings);
    assert!(
        colours(&frame) > 200,
        "antialiased edges and labels make many colours"
    );
    // the corner is background, opaque
    assert_eq!(pixel(&frame, 2, 2), [0xee, 0xf0, 0xeb, 255]);
    check("map-1366x768", &frame);
}

#[test]
fn pitched_and_turned_view_extrudes_buildings() {
    let mut r = renderer();
    let style = style();
    let fixture = Fixture::new();
    let look = Look::Center((118.819, 32.047), 15.0);
    let pitched = r
        .render_map(&style, &fixture, look, 30.0, 55.0, (800, 600, 1.0), "")
        .unwrap();
    let flat = r
        .render_map(&style, &fixture, look, 30.0, 0.0, (800, 600, 1.0), "")
        .unwrap();
    assert_ne!(pitched.rgba, flat.rgba);
    check("map-pitched-800x600", &pitched);
    // retina: the same map at scale 2 is twice as large
    let hi = r
        .render_map(&style, &fixture, look, 0.0, 0.0, (400, 300, 2.0), "")
        .unwrap();
    assert_eq!((hi.width, hi.height), (800, 600));
}

#[test]
fn dashboard_with_every_panel_kind() {
    let layout = Layout::parse(include_str!("dashboard.json")).unwrap();
    let mut data = vec![PanelData::Missing(String::new()); layout.panels.len()];
    for (i, p) in layout.panels.iter().enumerate() {
        data[i] = match p.query() {
            Some("open_events") => PanelData::Kpi {
                value: 128.0,
                previous: Some(120.0),
            },
            Some("overdue_events") => PanelData::Kpi {
                value: 7.0,
                previous: Some(9.0),
            },
            Some("sensors_in_alarm") => PanelData::Missing("实时数据未开启".into()),
            Some("events_by_district") => PanelData::Bars(vec![
                ("玄武区".into(), 31.0),
                ("鼓楼区".into(), 27.0),
                ("秦淮区".into(), 19.0),
                ("建邺区".into(), 12.0),
                ("栖霞区".into(), 4.0),
            ]),
            Some("events_per_hour") => PanelData::Lines {
                x: (0..12).map(|h| format!("{:02}:00", h + 8)).collect(),
                series: vec![(
                    "上报".into(),
                    vec![
                        3.0, 5.0, 9.0, 14.0, 11.0, 8.0, 12.0, 16.0, 10.0, 7.0, 6.0, 4.0,
                    ]
                    .into_iter()
                    .map(Some)
                    .collect(),
                )],
            },
            Some("readings") => PanelData::Lines {
                x: (0..8).map(|h| format!("{h}时")).collect(),
                series: vec![
                    (
                        "WL-001".into(),
                        vec![
                            Some(2.1),
                            Some(2.3),
                            Some(2.8),
                            None,
                            Some(3.4),
                            Some(3.1),
                            Some(2.9),
                            Some(2.7),
                        ],
                    ),
                    (
                        "WL-002".into(),
                        vec![
                            Some(1.2),
                            Some(1.1),
                            Some(1.4),
                            Some(1.9),
                            Some(2.2),
                            Some(2.0),
                            Some(1.8),
                            Some(1.5),
                        ],
                    ),
                ],
            },
            Some("latest_alarms") => PanelData::Rows {
                columns: vec!["时间".into(), "设备".into(), "读数".into(), "位置".into()],
                rows: vec![
                    vec![
                        "20:14".into(),
                        "积水监测 WL-001".into(),
                        "3.4 m".into(),
                        "玄武区 新街口".into(),
                    ],
                    vec![
                        "20:02".into(),
                        "烟感 SM-017".into(),
                        "0.92".into(),
                        "鼓楼区 宁海路".into(),
                    ],
                    vec![
                        "19:47".into(),
                        "井盖位移 MC-203".into(),
                        "12°".into(),
                        "秦淮区 夫子庙".into(),
                    ],
                ],
            },
            _ => PanelData::Missing(String::new()),
        };
    }
    let fixture = Fixture::new();
    let styles = HashMap::from([("fixture".to_owned(), style())]);
    let input = BoardInput {
        now: "2026-11-22 星期日 20:15".into(),
        data,
        styles: &styles,
        source: &fixture,
        credit: String::new(),
    };
    let frame = renderer()
        .render_dashboard(&layout, &input, 1366, 768)
        .unwrap();
    assert!(frame.warnings.is_empty(), "{:?}", frame.warnings);
    check("dashboard-1366x768", &frame);
    let jpeg = frame.jpeg(80).unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG for the MJPEG stream");
}

#[test]
fn unsupported_layers_and_properties_are_reported_not_silently_blank() {
    let json = serde_json::json!({
        "version": 8,
        "sources": {"city": {"type": "vector"}, "dem": {"type": "raster-dem"}},
        "layers": [
            {"id": "bg", "type": "background", "paint": {"background-color": "#102030"}},
            {"id": "hills", "type": "hillshade", "source": "dem"},
            {"id": "d", "type": "fill", "source": "city", "source-layer": "districts",
             "paint": {"fill-color": "#ff0000", "fill-pattern": "stripes"}},
            {"id": "ghost", "type": "line", "source": "city", "source-layer": "no_such_layer"}
        ]
    });
    let style = Style::parse(&json).unwrap();
    let frame = renderer()
        .render_map(
            &style,
            &Fixture::new(),
            Look::Bbox([118.72, 32.0, 118.88, 32.09]),
            0.0,
            0.0,
            (300, 200, 1.0),
            "",
        )
        .unwrap();
    let w = frame.warnings.join("\n");
    assert!(
        w.contains("hillshade") && w.contains("fill-pattern") && w.contains("no_such_layer"),
        "{w}"
    );
    // the red districts are still drawn
    assert!(frame.rgba.chunks_exact(4).any(|p| p[0] > 200 && p[1] < 60));
}

#[test]
fn bad_sizes_and_views_are_errors() {
    let mut r = renderer();
    let style = style();
    let f = Fixture::new();
    let look = Look::Bbox([118.72, 32.0, 118.88, 32.09]);
    for (size, pitch) in [
        ((0, 10, 1.0), 0.0),
        ((100_000, 10, 1.0), 0.0),
        ((8000, 8000, 1.0), 0.0),
        ((100, 100, 1.0), 75.0),
    ] {
        let err = r
            .render_map(&style, &f, look, 0.0, pitch, size, "")
            .unwrap_err();
        assert!(matches!(err, citytwin_renderer::Error::Size(_)), "{err}");
    }
}

#[test]
fn no_adapter_is_a_clear_error() {
    let err = Renderer::with_backends(citytwin_renderer::Backends::empty(), Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no graphics adapter") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
}
