//! Dashboards: a grid of panels (title, clock, map, KPI, bar and line charts, ranked lists)
//! laid out from `styles/dashboards/*.json`, and static maps.

use crate::Error;
use crate::camera::{Camera, MAX_PITCH, Panel, View};
use crate::color::Color;
use crate::gpu::{Frame, Renderer};
use crate::map::{MapSource, draw_map};
use crate::scene::{Label, Scene, Stroke};
use crate::style::Style;
use serde::Deserialize;
use std::collections::HashMap;

/// A grid cell range: column, row, columns wide, rows high.
pub type Cell = [u32; 4];

/// How a map panel looks at the city.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// `[west, south, east, north]` to fit
    pub bbox: Option<[f64; 4]>,
    /// `[lon, lat]`
    pub center: Option<[f64; 2]>,
    /// zoom with `center`
    pub zoom: Option<f64>,
    /// degrees from straight down
    #[serde(default)]
    pub pitch: f64,
    /// degrees clockwise from north
    #[serde(default)]
    pub bearing: f64,
}

/// One panel of a layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PanelSpec {
    /// The board's heading.
    Title {
        /// cells
        at: Cell,
        /// heading text
        text: String,
        /// smaller line under it
        #[serde(default)]
        subtitle: Option<String>,
    },
    /// Date and time (the caller's clock, to the minute).
    Clock {
        /// cells
        at: Cell,
    },
    /// A map drawn with a style.
    Map {
        /// cells
        at: Cell,
        /// caption
        #[serde(default)]
        title: Option<String>,
        /// style id (a file of `styles/`)
        style: String,
        /// where it looks; the style's centre and zoom when absent
        #[serde(default)]
        view: Option<ViewSpec>,
        /// only these style layers
        #[serde(default)]
        layers: Option<Vec<String>>,
    },
    /// One number with its label and trend.
    Kpi {
        /// cells
        at: Cell,
        /// what it counts
        label: String,
        /// query name
        query: String,
        /// unit after the value
        #[serde(default)]
        unit: Option<String>,
        /// compare with the value this long ago (`30m`, `1h`, `24h`)
        #[serde(default)]
        trend: Option<String>,
        /// `down` when a falling value is good (open events), `up` otherwise
        #[serde(default)]
        good: Option<String>,
    },
    /// Horizontal bars, one per category.
    Bar {
        /// cells
        at: Cell,
        /// caption
        title: String,
        /// query name
        query: String,
        /// at most this many bars
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Lines over time.
    Line {
        /// cells
        at: Cell,
        /// caption
        title: String,
        /// query name
        query: String,
        /// hours back from now
        #[serde(default)]
        hours: Option<u32>,
        /// sensor kind (for reading queries)
        #[serde(default)]
        kind: Option<String>,
        /// at most this many series
        #[serde(default)]
        limit: Option<usize>,
    },
    /// A ranked table.
    List {
        /// cells
        at: Cell,
        /// caption
        title: String,
        /// query name
        query: String,
        /// at most this many rows
        #[serde(default)]
        limit: Option<usize>,
    },
}

impl PanelSpec {
    /// The panel's cells.
    #[must_use]
    pub fn at(&self) -> Cell {
        match self {
            PanelSpec::Title { at, .. }
            | PanelSpec::Clock { at }
            | PanelSpec::Map { at, .. }
            | PanelSpec::Kpi { at, .. }
            | PanelSpec::Bar { at, .. }
            | PanelSpec::Line { at, .. }
            | PanelSpec::List { at, .. } => *at,
        }
    }

    /// The panel's query, for panels that show data.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        match self {
            PanelSpec::Kpi { query, .. }
            | PanelSpec::Bar { query, .. }
            | PanelSpec::Line { query, .. }
            | PanelSpec::List { query, .. } => Some(query),
            _ => None,
        }
    }
}

fn default_background() -> String {
    "#04122b".into()
}
fn default_accent() -> String {
    "#4fc3f7".into()
}
fn default_gap() -> f32 {
    12.0
}

/// A dashboard layout as written in `styles/dashboards/{id}.json`. Sizes are in pixels of a
/// 1920×1080 frame and scale with the frame's height.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// heading for lists of dashboards
    pub name: String,
    /// frame colour
    #[serde(default = "default_background")]
    pub background: String,
    /// panel captions, trends and chart highlights
    #[serde(default = "default_accent")]
    pub accent: String,
    /// grid columns
    pub columns: u32,
    /// grid rows
    pub rows: u32,
    /// space between and around panels
    #[serde(default = "default_gap")]
    pub gap: f32,
    /// panels in drawing order
    pub panels: Vec<PanelSpec>,
}

impl Layout {
    /// Parses and checks a layout: every panel inside the grid, colours valid, map views sane.
    pub fn parse(json: &str) -> Result<Layout, Error> {
        let layout: Layout =
            serde_json::from_str(json).map_err(|e| Error::Layout(e.to_string()))?;
        if layout.columns == 0 || layout.rows == 0 || layout.columns > 96 || layout.rows > 96 {
            return Err(Error::Layout("columns and rows must be 1 to 96".into()));
        }
        for (name, c) in [
            ("background", &layout.background),
            ("accent", &layout.accent),
        ] {
            Color::parse(c).map_err(|e| Error::Layout(format!("{name}: {e}")))?;
        }
        for (i, p) in layout.panels.iter().enumerate() {
            let [c, r, w, h] = p.at();
            if w == 0
                || h == 0
                || c.saturating_add(w) > layout.columns
                || r.saturating_add(h) > layout.rows
            {
                return Err(Error::Layout(format!(
                    "panel {i} at {:?} does not fit the {}×{} grid",
                    p.at(),
                    layout.columns,
                    layout.rows
                )));
            }
            if let PanelSpec::Map { view: Some(v), .. } = p
                && (v.pitch < 0.0
                    || v.pitch > MAX_PITCH
                    || (v.bbox.is_none() && v.center.is_none()))
            {
                return Err(Error::Layout(format!(
                    "panel {i}: a map view needs a bbox or a center, and pitch 0 to {MAX_PITCH}"
                )));
            }
        }
        Ok(layout)
    }

    /// The style ids the map panels use.
    #[must_use]
    pub fn styles(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .panels
            .iter()
            .filter_map(|p| match p {
                PanelSpec::Map { style, .. } => Some(style.as_str()),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// What a data panel shows, computed by the caller from its query.
#[derive(Debug, Clone, PartialEq)]
pub enum PanelData {
    /// a number and, for the trend, the number at the earlier time
    Kpi {
        /// now
        value: f64,
        /// then
        previous: Option<f64>,
    },
    /// labelled values, largest first
    Bars(Vec<(String, f64)>),
    /// series over shared x labels; `None` where a series has no value
    Lines {
        /// x-axis labels
        x: Vec<String>,
        /// (name, values)
        series: Vec<(String, Vec<Option<f64>>)>,
    },
    /// a table
    Rows {
        /// column headings
        columns: Vec<String>,
        /// rows of cells
        rows: Vec<Vec<String>>,
    },
    /// nothing to show, and why (the live twin is off, the query is unknown …)
    Missing(String),
}

/// Everything a dashboard frame needs besides its layout.
pub struct BoardInput<'a> {
    /// clock text, e.g. `2026-11-22 星期日 20:15`
    pub now: String,
    /// one entry per panel of the layout, in order; non-data panels take `Missing`
    pub data: Vec<PanelData>,
    /// parsed styles by id, for map panels
    pub styles: &'a HashMap<String, Style>,
    /// features for map panels
    pub source: &'a dyn MapSource,
    /// the sources drawn and their acquisition dates, for the line at the foot (none when
    /// empty)
    pub credit: String,
}

const SERIES: [&str; 6] = [
    "#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176",
];

/// What a static map looks at, before it is fitted to the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Look {
    /// `[west, south, east, north]` fitted into the frame
    Bbox([f64; 4]),
    /// centre and zoom
    Center((f64, f64), f64),
}

impl Renderer {
    /// A static map: `width`×`height` CSS pixels at `scale` physical pixels each, with
    /// `credit` (the sources drawn and when they were acquired) at its foot when not empty.
    #[allow(clippy::too_many_arguments)]
    pub fn render_map(
        &mut self,
        style: &Style,
        source: &dyn MapSource,
        look: Look,
        bearing: f64,
        pitch: f64,
        (width, height, scale): (u32, u32, f64),
        credit: &str,
    ) -> Result<Frame, Error> {
        if !(0.0..=MAX_PITCH).contains(&pitch) || !bearing.is_finite() {
            return Err(Error::Size(format!(
                "pitch must be 0 to {MAX_PITCH} and bearing a number"
            )));
        }
        let (fw, fh) = (
            (f64::from(width) * scale).round() as u32,
            (f64::from(height) * scale).round() as u32,
        );
        self.check_size(fw, fh)?;
        let mut view = match look {
            Look::Bbox(b) => View::fit(b, f64::from(width), f64::from(height)),
            Look::Center(center, zoom) => View {
                center,
                zoom,
                bearing: 0.0,
                pitch: 0.0,
            },
        };
        view.bearing = bearing;
        view.pitch = pitch;
        let panel = Panel {
            x: 0.0,
            y: 0.0,
            w: fw as f32,
            h: fh as f32,
        };
        let started = std::time::Instant::now();
        let cam = Camera::new(view, panel, (fw, fh), scale);
        let mut scene = Scene::new(fw, fh, Color::TRANSPARENT);
        draw_map(&mut scene, &mut self.fonts, style, source, &cam);
        let mut b = Board {
            scene,
            u: scale as f32,
            accent: Color::TRANSPARENT,
        };
        b.credit(self, panel, credit, false);
        let prepare = started.elapsed();
        let mut frame = self.draw(b.scene)?;
        frame.prepare = prepare;
        frame.credit = credit.to_owned();
        Ok(frame)
    }

    /// One dashboard frame of `width`×`height` pixels.
    pub fn render_dashboard(
        &mut self,
        layout: &Layout,
        input: &BoardInput<'_>,
        width: u32,
        height: u32,
    ) -> Result<Frame, Error> {
        self.check_size(width, height)?;
        if input.data.len() != layout.panels.len() {
            return Err(Error::Layout(format!(
                "{} panels but data for {}",
                layout.panels.len(),
                input.data.len()
            )));
        }
        let started = std::time::Instant::now();
        let background = Color::parse(&layout.background).map_err(Error::Layout)?;
        let accent = Color::parse(&layout.accent).map_err(Error::Layout)?;
        let u = height as f32 / 1080.0;
        let mut b = Board {
            scene: Scene::new(width, height, background),
            u,
            accent,
        };
        let gap = layout.gap * u;
        let cw = (width as f32 - gap * (layout.columns as f32 + 1.0)) / layout.columns as f32;
        let ch = (height as f32 - gap * (layout.rows as f32 + 1.0)) / layout.rows as f32;
        for (i, (spec, data)) in layout.panels.iter().zip(&input.data).enumerate() {
            let [c, r, w, h] = spec.at();
            let p = Panel {
                x: gap + c as f32 * (cw + gap),
                y: gap + r as f32 * (ch + gap),
                w: w as f32 * cw + (w as f32 - 1.0) * gap,
                h: h as f32 * ch + (h as f32 - 1.0) * gap,
            };
            if p.w < 4.0 || p.h < 4.0 {
                continue;
            }
            match spec {
                PanelSpec::Title { text, subtitle, .. } => {
                    b.title(self, p, text, subtitle.as_deref());
                }
                PanelSpec::Clock { .. } => b.clock(self, p, &input.now),
                PanelSpec::Map {
                    title,
                    style,
                    view,
                    layers,
                    ..
                } => {
                    let Some(st) = input.styles.get(style) else {
                        return Err(Error::Layout(format!("panel {i}: no style {style:?}")));
                    };
                    let st = match layers {
                        Some(ids) => std::borrow::Cow::Owned(st.clone().only(ids)?),
                        None => std::borrow::Cow::Borrowed(st),
                    };
                    b.frame(p);
                    let inner = Panel {
                        x: p.x + 2.0 * u,
                        y: p.y + 2.0 * u,
                        w: p.w - 4.0 * u,
                        h: p.h - 4.0 * u,
                    };
                    let view = map_view(view.as_ref(), &st, inner, u);
                    let cam = Camera::new(view, inner, (width, height), f64::from(u));
                    draw_map(&mut b.scene, &mut self.fonts, &st, input.source, &cam);
                    if let Some(t) = title {
                        b.caption(self, inner, t, true);
                    }
                }
                PanelSpec::Kpi {
                    label,
                    unit,
                    trend,
                    good,
                    ..
                } => b.kpi(
                    self,
                    p,
                    label,
                    unit.as_deref(),
                    trend.as_deref(),
                    good.as_deref(),
                    data,
                ),
                PanelSpec::Bar { title, limit, .. } => b.bars(self, p, title, *limit, data),
                PanelSpec::Line { title, .. } => b.lines(self, p, title, data),
                PanelSpec::List { title, limit, .. } => b.list(self, p, title, *limit, data),
            }
        }
        let whole = Panel {
            x: 0.0,
            y: 0.0,
            w: width as f32,
            h: height as f32,
        };
        b.credit(self, whole, &input.credit, true);
        let prepare = started.elapsed();
        let mut frame = self.draw(b.scene)?;
        frame.prepare = prepare;
        frame.credit.clone_from(&input.credit);
        Ok(frame)
    }
}

fn map_view(spec: Option<&ViewSpec>, style: &Style, panel: Panel, u: f32) -> View {
    let (w, h) = (f64::from(panel.w / u), f64::from(panel.h / u));
    let mut view = match spec {
        Some(ViewSpec { bbox: Some(b), .. }) => View::fit(*b, w, h),
        Some(ViewSpec {
            center: Some(c),
            zoom,
            ..
        }) => View {
            center: (c[0], c[1]),
            zoom: zoom.unwrap_or(11.0),
            bearing: 0.0,
            pitch: 0.0,
        },
        _ => View {
            center: style.center.unwrap_or((118.78, 32.04)),
            zoom: style.zoom.unwrap_or(10.0),
            bearing: 0.0,
            pitch: 0.0,
        },
    };
    if let Some(s) = spec {
        view.pitch = s.pitch;
        view.bearing = s.bearing;
    }
    view
}

struct Board {
    scene: Scene,
    u: f32,
    accent: Color,
}

const PANEL_FILL: Color = Color::rgba(0.05, 0.16, 0.31, 0.82);
const PANEL_EDGE: Color = Color::rgba(0.12, 0.35, 0.59, 1.0);
const TEXT: Color = Color::rgba(0.92, 0.95, 1.0, 1.0);
const MUTED: Color = Color::rgba(0.62, 0.74, 0.88, 1.0);
const UP_BAD: Color = Color::rgba(0.94, 0.33, 0.31, 1.0);
const UP_GOOD: Color = Color::rgba(0.40, 0.73, 0.42, 1.0);

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Center,
    Right,
}

impl Board {
    fn frame(&mut self, p: Panel) {
        let u = self.u;
        self.scene.rect(p.x, p.y, p.w, p.h, PANEL_FILL);
        let edge = [
            [p.x, p.y],
            [p.x + p.w, p.y],
            [p.x + p.w, p.y + p.h],
            [p.x, p.y + p.h],
        ];
        let frame = self.scene.size();
        self.scene.stroke_lines(
            [edge.as_slice()],
            true,
            Stroke::plain(1.5 * u),
            PANEL_EDGE,
            |x, y| crate::camera::frame_clip(frame, x, y),
        );
        // accent corner marks, the look of a command-centre wall
        let m = 14.0 * u;
        for (x, y, dx, dy) in [
            (p.x, p.y, 1.0, 1.0),
            (p.x + p.w, p.y, -1.0, 1.0),
            (p.x, p.y + p.h, 1.0, -1.0),
            (p.x + p.w, p.y + p.h, -1.0, -1.0),
        ] {
            let corner = [[x + dx * m, y], [x, y], [x, y + dy * m]];
            self.scene.stroke_lines(
                [corner.as_slice()],
                false,
                Stroke::plain(3.0 * u),
                self.accent,
                |x, y| crate::camera::frame_clip(frame, x, y),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        r: &mut Renderer,
        text: &str,
        size: f32,
        color: Color,
        (x, y): (f32, f32),
        align: Align,
        clip: Panel,
        max_width: Option<f32>,
    ) -> (f32, f32) {
        let (buffer, w, h) = r.fonts.shape(text, size * self.u, max_width);
        let left = match align {
            Align::Left => x,
            Align::Center => x - w / 2.0,
            Align::Right => x - w,
        };
        self.scene.labels.push(Label {
            buffer,
            left,
            top: y,
            color,
            halo: None,
            clip: clip.scissor(self.scene.width, self.scene.height),
        });
        (w, h)
    }

    /// The line at the foot of an image naming the sources drawn and when they were
    /// acquired (Data art. 27): small text on a band across the bottom, dark on light maps,
    /// light on dark dashboards.
    fn credit(&mut self, r: &mut Renderer, p: Panel, text: &str, dark: bool) {
        if text.is_empty() {
            return;
        }
        let u = self.u;
        let band = 20.0 * u;
        let (fill, ink) = if dark {
            (Color::rgba(0.0, 0.03, 0.1, 0.72), MUTED)
        } else {
            (
                Color::rgba(1.0, 1.0, 1.0, 0.78),
                Color::rgba(0.2, 0.22, 0.26, 1.0),
            )
        };
        self.scene.rect(p.x, p.y + p.h - band, p.w, band, fill);
        self.text(
            r,
            text,
            12.0,
            ink,
            (p.x + 8.0 * u, p.y + p.h - band + 3.0 * u),
            Align::Left,
            p,
            Some(p.w - 12.0 * u),
        );
    }

    /// The caption of a panel; returns the y below it.
    fn caption(&mut self, r: &mut Renderer, p: Panel, title: &str, overlay: bool) -> f32 {
        let u = self.u;
        if overlay {
            self.scene
                .rect(p.x, p.y, p.w, 40.0 * u, Color::rgba(0.02, 0.07, 0.17, 0.7));
        }
        self.scene.rect(
            p.x + 12.0 * u,
            p.y + 12.0 * u,
            4.0 * u,
            20.0 * u,
            self.accent,
        );
        let (_, h) = self.text(
            r,
            title,
            20.0,
            TEXT,
            (p.x + 24.0 * u, p.y + 10.0 * u),
            Align::Left,
            p,
            None,
        );
        p.y + 14.0 * u + h.max(24.0 * u)
    }

    fn title(&mut self, r: &mut Renderer, p: Panel, text: &str, subtitle: Option<&str>) {
        let u = self.u;
        let size = (p.h / u * 0.5).clamp(18.0, 48.0);
        let sub = if subtitle.is_some() {
            16.0 * 1.3 * u
        } else {
            0.0
        };
        let y = p.y + (p.h - size * 1.2 * u - sub) / 2.0;
        self.text(
            r,
            text,
            size,
            TEXT,
            (p.x + p.w / 2.0, y),
            Align::Center,
            p,
            None,
        );
        if let Some(s) = subtitle {
            let at = (p.x + p.w / 2.0, y + size * 1.2 * u);
            self.text(r, s, 16.0, MUTED, at, Align::Center, p, None);
        }
        let line = self.accent.with_opacity(0.7);
        self.scene.rect(
            p.x + p.w * 0.2,
            p.y + p.h - 3.0 * u,
            p.w * 0.6,
            2.0 * u,
            line,
        );
    }

    /// Draws a data panel's frame and caption; returns where its body starts.
    fn open(&mut self, r: &mut Renderer, p: Panel, title: &str) -> f32 {
        self.frame(p);
        self.caption(r, p, title, false)
    }

    /// Says why a data panel has nothing to show: the caller's reason, or what it needs.
    fn cannot_show(&mut self, r: &mut Renderer, p: Panel, top: f32, data: &PanelData, needs: &str) {
        let why = match data {
            PanelData::Missing(w) => w.as_str(),
            _ => needs,
        };
        self.missing(r, p, top, why);
    }

    fn missing(&mut self, r: &mut Renderer, p: Panel, top: f32, why: &str) {
        let u = self.u;
        let mid = (top + p.y + p.h) / 2.0 - 20.0 * u;
        self.text(
            r,
            "暂无数据",
            22.0,
            MUTED,
            (p.x + p.w / 2.0, mid),
            Align::Center,
            p,
            None,
        );
        self.text(
            r,
            why,
            14.0,
            MUTED,
            (p.x + p.w / 2.0, mid + 32.0 * u),
            Align::Center,
            p,
            Some(p.w - 24.0 * u),
        );
    }

    fn clock(&mut self, r: &mut Renderer, p: Panel, now: &str) {
        let u = self.u;
        let size = (p.h / u * 0.42).clamp(14.0, 40.0);
        self.text(
            r,
            now,
            size,
            TEXT,
            (p.x + p.w - 8.0 * u, p.y + (p.h - size * 1.2 * u) / 2.0),
            Align::Right,
            p,
            None,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn kpi(
        &mut self,
        r: &mut Renderer,
        p: Panel,
        label: &str,
        unit: Option<&str>,
        trend: Option<&str>,
        good: Option<&str>,
        data: &PanelData,
    ) {
        let u = self.u;
        let top = self.open(r, p, label);
        let PanelData::Kpi { value, previous } = data else {
            return self.cannot_show(r, p, top, data, "这个面板需要一个数值查询");
        };
        let size = ((p.h - (top - p.y)) / u * 0.55).clamp(20.0, 72.0);
        let y = top + ((p.y + p.h - top) - size * 1.2 * u) / 2.0 - 8.0 * u;
        let (w, _) = self.text(
            r,
            &number(*value),
            size,
            self.accent,
            (p.x + 24.0 * u, y),
            Align::Left,
            p,
            None,
        );
        if let Some(unit) = unit {
            self.text(
                r,
                unit,
                size * 0.4,
                MUTED,
                (p.x + 32.0 * u + w, y + size * 0.62 * u),
                Align::Left,
                p,
                None,
            );
        }
        if let (Some(prev), Some(window)) = (previous, trend) {
            let delta = value - prev;
            let rising_good = good != Some("down");
            let (arrow, color) = if delta > 0.0 {
                ("↑", if rising_good { UP_GOOD } else { UP_BAD })
            } else if delta < 0.0 {
                ("↓", if rising_good { UP_BAD } else { UP_GOOD })
            } else {
                ("—", MUTED)
            };
            self.text(
                r,
                &format!("{arrow} {} 较{window}前", number(delta.abs())),
                16.0,
                color,
                (p.x + p.w - 16.0 * u, p.y + p.h - 30.0 * u),
                Align::Right,
                p,
                None,
            );
        }
    }

    fn bars(
        &mut self,
        r: &mut Renderer,
        p: Panel,
        title: &str,
        limit: Option<usize>,
        data: &PanelData,
    ) {
        let u = self.u;
        let top = self.open(r, p, title);
        let PanelData::Bars(bars) = data else {
            return self.cannot_show(r, p, top, data, "这个面板需要分类计数");
        };
        let bars = &bars[..bars.len().min(limit.unwrap_or(12))];
        if bars.is_empty() {
            return self.missing(r, p, top, "当前没有记录");
        }
        let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9);
        let rows = bars.len() as f32;
        let row_h = ((p.y + p.h - top - 12.0 * u) / rows).min(44.0 * u);
        let text_size = (row_h / u * 0.5).clamp(10.0, 18.0);
        // the label column as wide as the longest label, at most 40 % of the panel
        let widest = bars
            .iter()
            .map(|(name, _)| r.fonts.shape(name, text_size * u, None).1)
            .fold(0.0f32, f32::max);
        let label_w = (widest + 12.0 * u).clamp(40.0 * u, p.w * 0.4);
        let value_w = 56.0 * u;
        let bar_x = p.x + 16.0 * u + label_w;
        let bar_max = (p.w - 32.0 * u - label_w - value_w).max(1.0);
        for (i, (name, v)) in bars.iter().enumerate() {
            let y = top + i as f32 * row_h;
            let ty = y + (row_h - text_size * 1.2 * u) / 2.0;
            self.text(
                r,
                name,
                text_size,
                TEXT,
                (bar_x - 10.0 * u, ty),
                Align::Right,
                Panel {
                    x: p.x,
                    y: p.y,
                    w: label_w + 16.0 * u,
                    h: p.h,
                },
                None,
            );
            let bh = row_h * 0.56;
            let by = y + (row_h - bh) / 2.0;
            self.scene
                .rect(bar_x, by, bar_max, bh, Color::rgba(1.0, 1.0, 1.0, 0.06));
            let bw = (bar_max * (*v / max) as f32).max(if *v > 0.0 { 2.0 * u } else { 0.0 });
            let c0 = self.accent;
            self.scene.rect(
                bar_x,
                by,
                bw,
                bh,
                c0.with_opacity(if i == 0 { 1.0 } else { 0.8 }),
            );
            self.text(
                r,
                &number(*v),
                text_size,
                TEXT,
                (bar_x + bar_max + 8.0 * u, ty),
                Align::Left,
                p,
                None,
            );
        }
    }

    fn lines(&mut self, r: &mut Renderer, p: Panel, title: &str, data: &PanelData) {
        let u = self.u;
        let top = self.open(r, p, title);
        let PanelData::Lines { x, series } = data else {
            return self.cannot_show(r, p, top, data, "这个面板需要时间序列");
        };
        let values: Vec<f64> = series
            .iter()
            .flat_map(|s| s.1.iter().flatten().copied())
            .collect();
        if x.len() < 2 || values.is_empty() {
            return self.missing(r, p, top, "时间窗口内没有数据");
        }
        let lo = values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(0.0);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let hi = if hi - lo < 1e-9 {
            lo + 1.0
        } else {
            hi + (hi - lo) * 0.08
        };
        let legend_h = if series.len() > 1 { 26.0 * u } else { 0.0 };
        let plot = Panel {
            x: p.x + 64.0 * u,
            y: top + 8.0 * u + legend_h,
            w: p.w - 84.0 * u,
            h: p.y + p.h - top - 48.0 * u - legend_h,
        };
        if plot.w < 8.0 || plot.h < 8.0 {
            return;
        }
        let frame = self.scene.size();
        let to_clip = |x: f32, y: f32| crate::camera::frame_clip(frame, x, y);
        for k in 0..=3 {
            let v = lo + (hi - lo) * f64::from(k) / 3.0;
            let y = plot.y + plot.h - plot.h * k as f32 / 3.0;
            self.scene.rect(
                plot.x,
                y - 0.5 * u,
                plot.w,
                1.0 * u,
                Color::rgba(1.0, 1.0, 1.0, 0.12),
            );
            self.text(
                r,
                &number(v),
                12.0,
                MUTED,
                (plot.x - 8.0 * u, y - 8.0 * u),
                Align::Right,
                p,
                None,
            );
        }
        let n = x.len();
        let px = |i: usize| plot.x + plot.w * i as f32 / (n - 1) as f32;
        let py = |v: f64| plot.y + plot.h - plot.h * ((v - lo) / (hi - lo)) as f32;
        for i in [0, n / 2, n - 1] {
            self.text(
                r,
                &x[i],
                12.0,
                MUTED,
                (px(i), plot.y + plot.h + 8.0 * u),
                Align::Center,
                p,
                None,
            );
        }
        let mut legend_x = plot.x;
        for (k, (name, vals)) in series.iter().enumerate() {
            let color = Color::parse(SERIES[k % SERIES.len()]).unwrap_or(self.accent);
            let mut runs: Vec<Vec<[f32; 2]>> = vec![Vec::new()];
            for (i, v) in vals.iter().enumerate().take(n) {
                match v {
                    Some(v) => runs.last_mut().expect("one run").push([px(i), py(*v)]),
                    None => runs.push(Vec::new()),
                }
            }
            if series.len() == 1 {
                // area under a single series
                for run in runs.iter().filter(|r| r.len() > 1) {
                    let mut ring = run.clone();
                    ring.push([run[run.len() - 1][0], plot.y + plot.h]);
                    ring.push([run[0][0], plot.y + plot.h]);
                    self.scene
                        .fill_rings([ring.as_slice()], color.with_opacity(0.18), to_clip);
                }
            }
            let stroke = Stroke {
                width: 2.5 * u,
                join: lyon::tessellation::LineJoin::Round,
                cap: lyon::tessellation::LineCap::Round,
            };
            self.scene.stroke_lines(
                runs.iter().filter(|r| r.len() > 1).map(Vec::as_slice),
                false,
                stroke,
                color,
                to_clip,
            );
            for run in runs.iter().filter(|r| r.len() == 1) {
                self.scene
                    .circle((run[0][0], run[0][1]), 2.5 * u, color, None);
            }
            if series.len() > 1 {
                self.scene
                    .rect(legend_x, top + 6.0 * u, 14.0 * u, 4.0 * u, color);
                let (w, _) = self.text(
                    r,
                    name,
                    13.0,
                    TEXT,
                    (legend_x + 20.0 * u, top - 2.0 * u),
                    Align::Left,
                    p,
                    None,
                );
                legend_x += w + 40.0 * u;
            }
        }
    }

    fn list(
        &mut self,
        r: &mut Renderer,
        p: Panel,
        title: &str,
        limit: Option<usize>,
        data: &PanelData,
    ) {
        let u = self.u;
        let top = self.open(r, p, title);
        let PanelData::Rows { columns, rows } = data else {
            return self.cannot_show(r, p, top, data, "这个面板需要表格数据");
        };
        if rows.is_empty() {
            return self.missing(r, p, top, "当前没有记录");
        }
        let ncol = columns.len().max(1);
        let row_h = 34.0 * u;
        let inner_w = p.w - 32.0 * u;
        // first column narrow (rank/time), the rest share the width
        let col_x = |c: usize| {
            if c == 0 {
                p.x + 16.0 * u
            } else {
                p.x + 16.0 * u + inner_w * (0.22 + 0.78 * (c - 1) as f32 / (ncol - 1).max(1) as f32)
            }
        };
        let col_w = |c: usize| {
            if c + 1 < ncol {
                col_x(c + 1) - col_x(c) - 8.0 * u
            } else {
                p.x + p.w - 16.0 * u - col_x(c)
            }
        };
        for (c, h) in columns.iter().enumerate() {
            self.text(r, h, 13.0, MUTED, (col_x(c), top), Align::Left, p, None);
        }
        let max_rows = ((p.y + p.h - top - row_h - 8.0 * u) / row_h)
            .floor()
            .max(0.0) as usize;
        for (i, row) in rows
            .iter()
            .take(limit.unwrap_or(usize::MAX).min(max_rows))
            .enumerate()
        {
            let y = top + row_h * (i as f32 + 1.0);
            if i % 2 == 0 {
                self.scene.rect(
                    p.x + 8.0 * u,
                    y - 4.0 * u,
                    p.w - 16.0 * u,
                    row_h,
                    Color::rgba(1.0, 1.0, 1.0, 0.05),
                );
            }
            for (c, cell) in row.iter().enumerate().take(ncol) {
                let clip = Panel {
                    x: col_x(c),
                    y: p.y,
                    w: col_w(c).max(1.0),
                    h: p.h,
                };
                let color = if c == 0 { self.accent } else { TEXT };
                self.text(
                    r,
                    cell,
                    15.0,
                    color,
                    (col_x(c), y + 2.0 * u),
                    Align::Left,
                    clip,
                    None,
                );
            }
        }
    }
}

/// A number as a dashboard writes it: integers plainly, others with one decimal, large ones
/// in 万 (ten thousands).
#[must_use]
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 100_000.0 {
        return format!("{:.1}万", v / 10_000.0);
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked_before_drawing() {
        let ok = r#"{"name": "t", "columns": 4, "rows": 2, "panels": [
            {"type": "title", "at": [0, 0, 4, 1], "text": "南京"},
            {"type": "kpi", "at": [0, 1, 1, 1], "label": "在办事件", "query": "open_events", "trend": "1h"}
        ]}"#;
        let l = Layout::parse(ok).unwrap();
        assert_eq!(l.panels.len(), 2);
        assert_eq!(l.panels[1].query(), Some("open_events"));
        for (bad, needle) in [
            (
                r#"{"name": "t", "columns": 4, "rows": 2, "panels": [{"type": "title", "at": [3, 0, 2, 1], "text": "x"}]}"#,
                "does not fit",
            ),
            (
                r#"{"name": "t", "columns": 4, "rows": 2, "panels": [{"type": "pie", "at": [0, 0, 1, 1]}]}"#,
                "pie",
            ),
            (
                r#"{"name": "t", "columns": 4, "rows": 2, "panels": [{"type": "kpi", "at": [0, 0, 1, 1], "label": "a", "query": "q", "colour": 1}]}"#,
                "colour",
            ),
            (
                r##"{"name": "t", "columns": 4, "rows": 2, "background": "#zzz", "panels": []}"##,
                "background",
            ),
            (
                r#"{"name": "t", "columns": 0, "rows": 2, "panels": []}"#,
                "columns",
            ),
            (
                r#"{"name": "t", "columns": 4, "rows": 2, "panels": [{"type": "map", "at": [0, 0, 1, 1], "style": "s", "view": {"pitch": 80, "center": [1, 2]}}]}"#,
                "pitch",
            ),
        ] {
            let err = Layout::parse(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn numbers_read_like_a_dashboard() {
        assert_eq!(number(42.0), "42");
        assert_eq!(number(3.25), "3.2");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(1_250_000.0), "125.0万");
        assert_eq!(number(f64::NAN), "—");
    }
}
