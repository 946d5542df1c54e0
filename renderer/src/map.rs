//! A map panel: style layers over the features a [`MapSource`] hands out, drawn into a scene.

use crate::camera::Camera;
use crate::color::Color;
use crate::expr::{Ctx, Expr, NoProps, Props, Val};
use crate::scene::{Image, Label, Pipe, Scene, Stroke, dash};
use crate::sprites::Icons;
use crate::style::{LayerKind, Style, StyleLayer};
use crate::text::Fonts;
use geo::{Euclidean, Geometry, InteriorPoint, InterpolateLine, Length, Rect};
use lyon::tessellation::{LineCap, LineJoin};

/// Where a map panel's features come from: the twin's layers, by source-layer name, in Web
/// Mercator metres.
pub trait MapSource {
    /// Whether the source has a layer of that name.
    fn has_layer(&self, layer: &str) -> bool;
    /// Calls `each` for every feature of `layer` that may touch `area` and that the vector
    /// tiles of zoom `zoom` carry.
    fn features(
        &self,
        layer: &str,
        area: Rect<f64>,
        zoom: f64,
        each: &mut dyn FnMut(&Geometry<f64>, &dyn Props),
    );
}

/// A source with no features (a style drawn over nothing, e.g. a legend or a test).
#[derive(Debug, Clone, Copy)]
pub struct Empty;

impl MapSource for Empty {
    fn has_layer(&self, _: &str) -> bool {
        false
    }
    fn features(
        &self,
        _: &str,
        _: Rect<f64>,
        _: f64,
        _: &mut dyn FnMut(&Geometry<f64>, &dyn Props),
    ) {
    }
}

const DEFAULT_HEATMAP: [(f32, &str); 6] = [
    (0.0, "rgba(0,0,255,0)"),
    (0.1, "royalblue"),
    (0.3, "cyan"),
    (0.5, "lime"),
    (0.7, "yellow"),
    (1.0, "red"),
];

struct Layer<'a> {
    style: &'a StyleLayer,
    zoom: f64,
    scale: f32,
}

impl Layer<'_> {
    fn cx<'p>(&self, props: &'p dyn Props) -> Ctx<'p> {
        Ctx {
            zoom: self.zoom,
            props,
            density: 0.0,
        }
    }
    fn num(&self, name: &str, props: &dyn Props, default: f64) -> f64 {
        self.style
            .prop(name)
            .map_or(default, |e| e.num(&self.cx(props), default))
    }
    fn color(&self, name: &str, props: &dyn Props, default: Color) -> Color {
        self.style
            .prop(name)
            .map_or(default, |e| e.color(&self.cx(props), default))
    }
    fn text(&self, name: &str, props: &dyn Props) -> Option<String> {
        self.style
            .prop(name)
            .map(|e| e.eval(&self.cx(props)).text())
    }
    fn passes(&self, props: &dyn Props) -> bool {
        self.style
            .filter
            .as_ref()
            .is_none_or(|f| f.eval(&self.cx(props)).truthy())
    }
    fn px(&self, v: f64) -> f32 {
        v as f32 * self.scale
    }
}

/// Draws every layer of `style` that shows at the camera's zoom into `scene`, clipped to the
/// camera's panel.
pub fn draw_map(
    scene: &mut Scene,
    fonts: &mut Fonts,
    style: &Style,
    source: &dyn MapSource,
    cam: &Camera,
) {
    let scissor = cam.panel.scissor(scene.width, scene.height);
    let zoom = cam.view.zoom;
    let area = cam.visible_area(64.0);
    let mut placed: Vec<[f32; 4]> = Vec::new();
    scene.warnings.extend(style.warnings.iter().cloned());
    for sl in &style.layers {
        if !sl.shows_at(zoom) {
            continue;
        }
        let layer = Layer {
            style: sl,
            zoom,
            scale: cam.scale as f32,
        };
        scene.set(Pipe::Flat, scissor);
        if sl.kind == LayerKind::Background {
            let c = layer
                .color("background-color", &NoProps, Color::BLACK)
                .with_opacity(layer.num("background-opacity", &NoProps, 1.0) as f32);
            let p = cam.panel;
            scene.rect(p.x, p.y, p.w, p.h, c);
            continue;
        }
        let Some(name) = sl.source_layer.as_deref() else {
            scene
                .warnings
                .push(format!("layer {:?} has no source-layer; skipped", sl.id));
            continue;
        };
        if !source.has_layer(name) {
            scene.warnings.push(format!(
                "layer {:?}: source layer {name:?} is not in this city; skipped",
                sl.id
            ));
            continue;
        }
        match sl.kind {
            LayerKind::Heatmap => heatmap(scene, &layer, source, name, area, cam),
            LayerKind::FillExtrusion => {
                scene.set(Pipe::Depth, scissor);
                source.features(name, area, zoom, &mut |g, p| {
                    if layer.passes(p) {
                        extrusion(scene, &layer, g, p, cam);
                    }
                });
            }
            LayerKind::Symbol => source.features(name, area, zoom, &mut |g, p| {
                if layer.passes(p) {
                    symbol(
                        scene,
                        fonts,
                        style.icons.as_deref(),
                        &layer,
                        g,
                        p,
                        cam,
                        &mut placed,
                    );
                }
            }),
            _ => source.features(name, area, zoom, &mut |g, p| {
                if layer.passes(p) {
                    match sl.kind {
                        LayerKind::Fill => fill(scene, &layer, g, p, cam),
                        LayerKind::Line => line(scene, &layer, g, p, cam),
                        LayerKind::Circle => circle(scene, &layer, g, p, cam),
                        _ => {}
                    }
                }
            }),
        }
    }
    scene.set(Pipe::Flat, scene.full());
}

type Rings = Vec<Vec<[f32; 2]>>;

/// Polygons as rings on the camera's ground plane, with their pixel bounds.
fn polygons(g: &Geometry<f64>, cam: &Camera) -> Vec<(Rings, [f32; 4])> {
    let one = |p: &geo::Polygon<f64>| {
        let mut b = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        let rings: Rings = std::iter::once(p.exterior())
            .chain(p.interiors())
            .map(|r| {
                r.0.iter()
                    .map(|c| {
                        let (x, y) = cam.ground(c.x, c.y);
                        let (x, y) = (x as f32, y as f32);
                        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
                        [x, y]
                    })
                    .collect()
            })
            .collect();
        (rings, b)
    };
    match g {
        Geometry::Polygon(p) => vec![one(p)],
        Geometry::MultiPolygon(mp) => mp.0.iter().map(one).collect(),
        _ => Vec::new(),
    }
}

/// Lines on the ground plane: line strings, and polygon outlines for line layers over areas.
fn lines(g: &Geometry<f64>, cam: &Camera) -> Rings {
    let conv = |l: &geo::LineString<f64>| -> Vec<[f32; 2]> {
        l.0.iter()
            .map(|c| {
                let (x, y) = cam.ground(c.x, c.y);
                [x as f32, y as f32]
            })
            .collect()
    };
    match g {
        Geometry::LineString(l) => vec![conv(l)],
        Geometry::MultiLineString(ml) => ml.0.iter().map(conv).collect(),
        Geometry::Polygon(p) => std::iter::once(p.exterior())
            .chain(p.interiors())
            .map(conv)
            .collect(),
        Geometry::MultiPolygon(mp) => {
            mp.0.iter()
                .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                .map(conv)
                .collect()
        }
        _ => Vec::new(),
    }
}

fn points(g: &Geometry<f64>) -> Vec<geo::Coord<f64>> {
    match g {
        Geometry::Point(p) => vec![p.0],
        Geometry::MultiPoint(mp) => mp.0.iter().map(|p| p.0).collect(),
        _ => Vec::new(),
    }
}

fn fill(scene: &mut Scene, l: &Layer<'_>, g: &Geometry<f64>, p: &dyn Props, cam: &Camera) {
    let polys = polygons(g, cam);
    if polys.is_empty() {
        return;
    }
    let color = l
        .color("fill-color", p, Color::BLACK)
        .with_opacity(l.num("fill-opacity", p, 1.0) as f32);
    let outline = l.style.prop("fill-outline-color").map(|e| {
        e.color(&l.cx(p), color)
            .with_opacity(l.num("fill-opacity", p, 1.0) as f32)
    });
    let to_clip = |x: f32, y: f32| cam.clip(f64::from(x), f64::from(y), 0.0);
    for (rings, b) in &polys {
        // smaller than a quarter pixel: the tiles drop it too
        if (b[2] - b[0]) * (b[3] - b[1]) < 0.25 {
            continue;
        }
        if color.a > 0.0 {
            scene.fill_rings(rings.iter().map(Vec::as_slice), color, to_clip);
        }
        if let Some(oc) = outline {
            scene.stroke_lines(
                rings.iter().map(Vec::as_slice),
                true,
                Stroke::plain(l.scale),
                oc,
                to_clip,
            );
        }
    }
}

fn line(scene: &mut Scene, l: &Layer<'_>, g: &Geometry<f64>, p: &dyn Props, cam: &Camera) {
    let ls = lines(g, cam);
    if ls.is_empty() {
        return;
    }
    let width = l.px(l.num("line-width", p, 1.0));
    let color = l
        .color("line-color", p, Color::BLACK)
        .with_opacity(l.num("line-opacity", p, 1.0) as f32);
    if width <= 0.0 || color.a <= 0.0 {
        return;
    }
    let join = match l.text("line-join", p).as_deref() {
        Some("round") => LineJoin::Round,
        Some("bevel") => LineJoin::Bevel,
        _ => LineJoin::Miter,
    };
    let cap = match l.text("line-cap", p).as_deref() {
        Some("round") => LineCap::Round,
        Some("square") => LineCap::Square,
        _ => LineCap::Butt,
    };
    let stroke = Stroke { width, join, cap };
    let to_clip = |x: f32, y: f32| cam.clip(f64::from(x), f64::from(y), 0.0);
    let dashes: Option<Vec<f32>> =
        l.style
            .prop("line-dasharray")
            .and_then(|e| match e.eval(&l.cx(p)) {
                Val::Array(a) => Some(
                    a.iter()
                        .filter_map(Val::num)
                        .map(|v| v as f32 * width)
                        .collect(),
                ),
                _ => None,
            });
    // a pattern shorter than a few pixels cannot be told from a fainter solid line (and would
    // cost a stroke per dash): draw it solid at the dashes' share of the length
    let (dashes, color) = match dashes {
        Some(p) if p.len() >= 2 && p.iter().sum::<f32>() < 4.0 * l.scale => {
            let on: f32 = p.iter().step_by(2).sum();
            let share = on / p.iter().sum::<f32>().max(1e-3);
            (None, color.with_opacity(share))
        }
        other => (other, color),
    };
    match dashes {
        Some(pattern) => {
            let pieces: Rings = ls.iter().flat_map(|line| dash(line, &pattern)).collect();
            scene.stroke_lines(
                pieces.iter().map(Vec::as_slice),
                false,
                stroke,
                color,
                to_clip,
            );
        }
        None => scene.stroke_lines(ls.iter().map(Vec::as_slice), false, stroke, color, to_clip),
    }
}

fn circle(scene: &mut Scene, l: &Layer<'_>, g: &Geometry<f64>, p: &dyn Props, cam: &Camera) {
    let pts = points(g);
    if pts.is_empty() {
        return;
    }
    let radius = l.px(l.num("circle-radius", p, 5.0));
    let color =
        l.color("circle-color", p, Color::BLACK)
            .with_opacity(l.num("circle-opacity", p, 1.0) as f32);
    let sw = l.px(l.num("circle-stroke-width", p, 0.0));
    let sc = l
        .color("circle-stroke-color", p, Color::BLACK)
        .with_opacity(l.num("circle-stroke-opacity", p, 1.0) as f32);
    for c in pts {
        let (gx, gy) = cam.ground(c.x, c.y);
        let Some(at) = cam.screen(gx, gy, 0.0) else {
            continue;
        };
        if !cam.in_panel(at, radius + sw) {
            continue;
        }
        scene.circle(at, radius, color, (sw > 0.0).then_some((sw, sc)));
    }
}

fn extrusion(scene: &mut Scene, l: &Layer<'_>, g: &Geometry<f64>, p: &dyn Props, cam: &Camera) {
    let polys = polygons(g, cam);
    if polys.is_empty() {
        return;
    }
    let top = cam.height_px(l.num("fill-extrusion-height", p, 0.0).max(0.0));
    let base = cam
        .height_px(l.num("fill-extrusion-base", p, 0.0).max(0.0))
        .min(top);
    let color = l
        .color("fill-extrusion-color", p, Color::BLACK)
        .with_opacity(l.num("fill-extrusion-opacity", p, 1.0) as f32);
    if color.a <= 0.0 {
        return;
    }
    // light from the upper left of the screen, as MapLibre's default light
    let light = (-0.6f32, -0.8f32);
    for (rings, b) in &polys {
        if (b[2] - b[0]) * (b[3] - b[1]) < 0.25 && top < 0.5 {
            continue;
        }
        if top - base > 0.05 {
            for ring in rings {
                for e in ring.windows(2) {
                    let (a, c) = (e[0], e[1]);
                    let (dx, dy) = (c[0] - a[0], c[1] - a[1]);
                    let len = (dx * dx + dy * dy).sqrt();
                    if len < 1e-3 {
                        continue;
                    }
                    let facing = ((dy * light.0 - dx * light.1) / len).abs();
                    let shade = color.shade(0.62 + 0.3 * facing);
                    let (ax, ay, cx, cy) = (
                        f64::from(a[0]),
                        f64::from(a[1]),
                        f64::from(c[0]),
                        f64::from(c[1]),
                    );
                    scene.quad(
                        [
                            cam.clip(ax, ay, base),
                            cam.clip(cx, cy, base),
                            cam.clip(cx, cy, top),
                            cam.clip(ax, ay, top),
                        ],
                        shade,
                    );
                }
            }
        }
        scene.fill_rings(rings.iter().map(Vec::as_slice), color, |x, y| {
            cam.clip(f64::from(x), f64::from(y), top)
        });
    }
}

/// Where a label stands: the point, the middle of a line, inside a polygon.
fn anchor(g: &Geometry<f64>) -> Option<geo::Coord<f64>> {
    match g {
        Geometry::Point(p) => Some(p.0),
        Geometry::MultiPoint(mp) => mp.0.first().map(|p| p.0),
        Geometry::LineString(l) => Euclidean.point_at_ratio_from_start(l, 0.5).map(|p| p.0),
        Geometry::MultiLineString(ml) => {
            ml.0.iter()
                .max_by(|a, b| Euclidean.length(*a).total_cmp(&Euclidean.length(*b)))
                .and_then(|l| Euclidean.point_at_ratio_from_start(l, 0.5))
                .map(|p| p.0)
        }
        Geometry::Polygon(p) => p.interior_point().map(|p| p.0),
        Geometry::MultiPolygon(mp) => {
            let largest = mp.0.iter().max_by(|a, b| {
                geo::Area::unsigned_area(*a).total_cmp(&geo::Area::unsigned_area(*b))
            })?;
            largest.interior_point().map(|p| p.0)
        }
        _ => None,
    }
}

/// `"{name}"` tokens in a constant text-field become attribute values.
fn field_text(e: &Expr, cx: &Ctx<'_>) -> String {
    match e {
        Expr::Lit(Val::Str(s)) if s.contains('{') => {
            let mut out = String::new();
            let mut rest = s.as_ref();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let Some(close) = rest[open..].find('}') else {
                    out.push_str(&rest[open..]);
                    return out;
                };
                let key = &rest[open + 1..open + close];
                if let Some(v) = cx.props.get(key) {
                    out.push_str(&Val::from_value(v).text());
                }
                rest = &rest[open + close + 1..];
            }
            out.push_str(rest);
            out
        }
        _ => e.eval(cx).text(),
    }
}

/// The name `icon-image` gives a feature: the first of a `coalesce` of `image`s that is on
/// the sprite, or the expression's value.
fn icon_name(e: &Expr, cx: &Ctx<'_>, icons: &Icons) -> Option<String> {
    match e {
        Expr::Coalesce(options) => options.iter().find_map(|o| {
            let name = o.eval(cx).text();
            icons.has(&name).then_some(name)
        }),
        e => Some(e.eval(cx).text()).filter(|n| icons.has(n)),
    }
}

/// Draws a symbol's icon at `at`: `None` when the layer has none, `Some(false)` when it has
/// one that would overlap another symbol (the symbol is not drawn).
fn icon(
    scene: &mut Scene,
    icons: Option<&Icons>,
    l: &Layer<'_>,
    p: &dyn Props,
    at: (f32, f32),
    cam: &Camera,
    placed: &mut Vec<[f32; 4]>,
) -> Option<bool> {
    let e = l.style.prop("icon-image")?;
    let icons = icons?;
    let name = icon_name(e, &l.cx(p), icons)?;
    let px = (crate::sprites::ICON_PX as f32 * l.num("icon-size", p, 1.0) as f32 * l.scale).round();
    if px < 1.0 {
        return None;
    }
    let rect = [
        at.0 - px / 2.0,
        at.1 - px / 2.0,
        at.0 + px / 2.0,
        at.1 + px / 2.0,
    ];
    let overlap = l
        .style
        .prop("icon-allow-overlap")
        .is_some_and(|e| e.eval(&l.cx(p)).truthy());
    if !overlap
        && placed
            .iter()
            .any(|r| r[0] < rect[2] && rect[0] < r[2] && r[1] < rect[3] && rect[1] < r[3])
    {
        return Some(false);
    }
    let raster = icons.raster(&name, px as u32)?;
    let opacity = l.num("icon-opacity", p, 1.0).clamp(0.0, 1.0) as f32;
    let rgba = if opacity < 1.0 {
        raster
            .0
            .iter()
            .map(|b| (f32::from(*b) * opacity) as u8)
            .collect()
    } else {
        raster.0.clone()
    };
    placed.push(rect);
    scene.image(Image {
        rgba,
        width: raster.1,
        height: raster.1,
        dest: [rect[0], rect[1], px, px],
        scissor: cam.panel.scissor(scene.width, scene.height),
    });
    Some(true)
}

#[allow(clippy::too_many_arguments)]
fn symbol(
    scene: &mut Scene,
    fonts: &mut Fonts,
    icons: Option<&Icons>,
    l: &Layer<'_>,
    g: &Geometry<f64>,
    p: &dyn Props,
    cam: &Camera,
    placed: &mut Vec<[f32; 4]>,
) {
    let Some(c) = anchor(g) else { return };
    let (gx, gy) = cam.ground(c.x, c.y);
    let Some((x, y)) = cam.screen(gx, gy, 0.0) else {
        return;
    };
    if !cam.in_panel((x, y), 0.0) {
        return;
    }
    let icon = icon(scene, icons, l, p, (x, y), cam, placed);
    if icon == Some(false) {
        return;
    }
    let Some(field) = l.style.prop("text-field") else {
        return;
    };
    let text = field_text(field, &l.cx(p));
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let size = l.px(l.num("text-size", p, 16.0));
    let max_width = l.num("text-max-width", p, 10.0) as f32 * size;
    let (buffer, w, h) = fonts.shape(text, size, Some(max_width));
    let offset = match l.style.prop("text-offset").map(|e| e.eval(&l.cx(p))) {
        Some(Val::Array(a)) if a.len() == 2 => (
            a[0].num().unwrap_or(0.0) as f32 * size,
            a[1].num().unwrap_or(0.0) as f32 * size,
        ),
        _ => (0.0, 0.0),
    };
    let (mut left, mut top) = (x - w / 2.0 + offset.0, y - h / 2.0 + offset.1);
    match l.text("text-anchor", p).as_deref() {
        Some("top") => top = y + offset.1,
        Some("bottom") => top = y - h + offset.1,
        Some("left") => left = x + offset.0,
        Some("right") => left = x - w + offset.0,
        _ => {}
    }
    let pad = 2.0 * l.scale;
    let rect = [left - pad, top - pad, left + w + pad, top + h + pad];
    let panel = cam.panel;
    if rect[0] < panel.x
        || rect[1] < panel.y
        || rect[2] > panel.x + panel.w
        || rect[3] > panel.y + panel.h
    {
        return;
    }
    let overlap = l
        .style
        .prop("text-allow-overlap")
        .is_some_and(|e| e.eval(&l.cx(p)).truthy());
    if !overlap
        && placed
            .iter()
            .any(|r| r[0] < rect[2] && rect[0] < r[2] && r[1] < rect[3] && rect[1] < r[3])
    {
        return;
    }
    placed.push(rect);
    let color = l
        .color("text-color", p, Color::BLACK)
        .with_opacity(l.num("text-opacity", p, 1.0) as f32);
    let halo_w = l.px(l.num("text-halo-width", p, 0.0));
    let halo = (halo_w > 0.0).then(|| (l.color("text-halo-color", p, Color::TRANSPARENT), halo_w));
    scene.labels.push(Label {
        buffer,
        left,
        top,
        color,
        halo,
        clip: panel.scissor(scene.width, scene.height),
    });
}

fn heatmap(
    scene: &mut Scene,
    l: &Layer<'_>,
    source: &dyn MapSource,
    name: &str,
    area: Rect<f64>,
    cam: &Camera,
) {
    const CELL: f32 = 2.0;
    let panel = cam.panel;
    let (gw, gh) = (
        (panel.w / CELL).ceil() as usize,
        (panel.h / CELL).ceil() as usize,
    );
    if gw == 0 || gh == 0 {
        return;
    }
    let mut density = vec![0f32; gw * gh];
    let intensity = l.num("heatmap-intensity", &NoProps, 1.0) as f32;
    source.features(name, area, l.zoom, &mut |g, p| {
        if !l.passes(p) {
            return;
        }
        let radius = l.px(l.num("heatmap-radius", p, 30.0)).max(1.0);
        let weight = l.num("heatmap-weight", p, 1.0) as f32;
        for c in points(g) {
            let (gx, gy) = cam.ground(c.x, c.y);
            let Some((sx, sy)) = cam.screen(gx, gy, 0.0) else {
                continue;
            };
            if !cam.in_panel((sx, sy), radius) {
                continue;
            }
            let (cx, cy) = ((sx - panel.x) / CELL, (sy - panel.y) / CELL);
            let r = radius / CELL;
            let x0 = (cx - r).floor().max(0.0) as usize;
            let x1 = ((cx + r).ceil() as usize).min(gw - 1);
            let y0 = (cy - r).floor().max(0.0) as usize;
            let y1 = ((cy + r).ceil() as usize).min(gh - 1);
            for yy in y0..=y1 {
                for xx in x0..=x1 {
                    let dx = (xx as f32 + 0.5 - cx) / r;
                    let dy = (yy as f32 + 0.5 - cy) / r;
                    let d2 = dx * dx + dy * dy;
                    if d2 <= 1.0 {
                        // MapLibre's kernel: a Gaussian reaching 3σ at the radius
                        density[yy * gw + xx] +=
                            weight * intensity * 0.398_942_3 * (-4.5 * d2).exp();
                    }
                }
            }
        }
    });
    let ramp: Vec<[u8; 4]> = (0..256)
        .map(|i| {
            let d = f64::from(i) / 255.0;
            let cx = Ctx {
                zoom: l.zoom,
                props: &NoProps,
                density: d,
            };
            let c = match l.style.prop("heatmap-color") {
                Some(e) => e.color(&cx, Color::TRANSPARENT),
                None => default_ramp(d as f32),
            };
            let c = c.with_opacity(l.num("heatmap-opacity", &NoProps, 1.0) as f32);
            let [r, g, b, a] = c.premultiplied();
            let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            [q(r), q(g), q(b), q(a)]
        })
        .collect();
    let mut rgba = Vec::with_capacity(gw * gh * 4);
    for d in density {
        rgba.extend_from_slice(&ramp[(d.clamp(0.0, 1.0) * 255.0).round() as usize]);
    }
    scene.image(Image {
        rgba,
        width: gw as u32,
        height: gh as u32,
        dest: [panel.x, panel.y, gw as f32 * CELL, gh as f32 * CELL],
        scissor: panel.scissor(scene.width, scene.height),
    });
}

fn default_ramp(d: f32) -> Color {
    let stops: Vec<(f32, Color)> = DEFAULT_HEATMAP
        .iter()
        .map(|(s, c)| (*s, Color::parse(c).unwrap_or(Color::TRANSPARENT)))
        .collect();
    for w in stops.windows(2) {
        if d <= w[1].0 {
            return w[0].1.lerp(w[1].1, (d - w[0].0) / (w[1].0 - w[0].0));
        }
    }
    stops.last().map_or(Color::TRANSPARENT, |s| s.1)
}
