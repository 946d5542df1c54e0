//! A frame before it meets the GPU: triangles in clip space, images and text, in drawing order.

use crate::camera::frame_clip;
use crate::color::Color;
use lyon::math::point;
use lyon::path::Path;
use lyon::tessellation::{
    BuffersBuilder, FillOptions, FillRule, FillTessellator, FillVertex, LineCap, LineJoin,
    StrokeOptions, StrokeTessellator, StrokeVertex, VertexBuffers,
};

/// One vertex: clip-space position and premultiplied colour.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Vertex {
    /// clip-space position (x, y, z, w)
    pub pos: [f32; 4],
    /// premultiplied RGBA
    pub color: [f32; 4],
}

/// How a run of triangles is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// painter's order, no depth test (flat map layers, panels, charts)
    Flat,
    /// depth-tested (3D building extrusions)
    Depth,
}

/// A run of indexed triangles with one pipeline and clip rectangle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// pipeline
    pub pipe: Pipe,
    /// index range
    pub indices: std::ops::Range<u32>,
    /// scissor x, y, w, h
    pub scissor: [u32; 4],
}

/// An RGBA image (premultiplied) stretched over a rectangle of the frame.
#[derive(Debug, Clone)]
pub struct Image {
    /// pixels, premultiplied RGBA8, row after row
    pub rgba: Vec<u8>,
    /// pixel columns
    pub width: u32,
    /// pixel rows
    pub height: u32,
    /// destination x, y, w, h in frame pixels
    pub dest: [f32; 4],
    /// scissor x, y, w, h
    pub scissor: [u32; 4],
}

/// One step of drawing.
#[derive(Debug, Clone)]
pub enum Item {
    /// triangles
    Draw(Draw),
    /// an image (index into [`Scene::images`])
    Image(usize),
}

/// Text laid out and placed, drawn above everything else.
pub struct Label {
    /// shaped text
    pub buffer: glyphon::Buffer,
    /// left edge, frame pixels
    pub left: f32,
    /// top edge, frame pixels
    pub top: f32,
    /// text colour
    pub color: Color,
    /// halo colour and width in pixels
    pub halo: Option<(Color, f32)>,
    /// clip rectangle x, y, w, h
    pub clip: [u32; 4],
}

impl std::fmt::Debug for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Label")
            .field("left", &self.left)
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

/// Stroke settings of a line.
#[derive(Debug, Clone, Copy)]
pub struct Stroke {
    /// width in pixels
    pub width: f32,
    /// join
    pub join: LineJoin,
    /// cap
    pub cap: LineCap,
}

impl Stroke {
    /// A butt-capped, miter-joined stroke.
    #[must_use]
    pub fn plain(width: f32) -> Self {
        Self {
            width,
            join: LineJoin::Miter,
            cap: LineCap::Butt,
        }
    }
}

/// A frame being built.
pub struct Scene {
    /// width in pixels
    pub width: u32,
    /// height in pixels
    pub height: u32,
    /// colour the frame starts from
    pub clear: Color,
    /// all triangles
    pub geometry: VertexBuffers<Vertex, u32>,
    /// drawing order
    pub items: Vec<Item>,
    /// images
    pub images: Vec<Image>,
    /// text, drawn last
    pub labels: Vec<Label>,
    /// what could not be drawn as asked, one sentence each
    pub warnings: Vec<String>,
    /// features skipped because lyon could not tessellate them
    pub skipped: usize,
    fill: FillTessellator,
    stroke: StrokeTessellator,
    pipe: Pipe,
    scissor: [u32; 4],
}

impl std::fmt::Debug for Scene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scene")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("vertices", &self.geometry.vertices.len())
            .field("items", &self.items.len())
            .field("labels", &self.labels.len())
            .finish_non_exhaustive()
    }
}

const TOLERANCE: f32 = 0.2;

impl Scene {
    /// An empty frame.
    #[must_use]
    pub fn new(width: u32, height: u32, clear: Color) -> Self {
        Scene {
            width,
            height,
            clear,
            geometry: VertexBuffers::new(),
            items: Vec::new(),
            images: Vec::new(),
            labels: Vec::new(),
            warnings: Vec::new(),
            skipped: 0,
            fill: FillTessellator::new(),
            stroke: StrokeTessellator::new(),
            pipe: Pipe::Flat,
            scissor: [0, 0, width, height],
        }
    }

    /// Frame size as floats.
    #[must_use]
    pub fn size(&self) -> (f32, f32) {
        (self.width as f32, self.height as f32)
    }

    /// Sets the pipeline and clip rectangle of what is drawn next.
    pub fn set(&mut self, pipe: Pipe, scissor: [u32; 4]) {
        self.pipe = pipe;
        self.scissor = scissor;
    }

    /// The whole frame as a clip rectangle.
    #[must_use]
    pub fn full(&self) -> [u32; 4] {
        [0, 0, self.width, self.height]
    }

    fn mark(&mut self, start: u32) {
        let end = self.geometry.indices.len() as u32;
        if end == start {
            return;
        }
        if let Some(Item::Draw(last)) = self.items.last_mut()
            && last.pipe == self.pipe
            && last.scissor == self.scissor
            && last.indices.end == start
        {
            last.indices.end = end;
            return;
        }
        self.items.push(Item::Draw(Draw {
            pipe: self.pipe,
            indices: start..end,
            scissor: self.scissor,
        }));
    }

    /// Adds an image drawn at this point of the order.
    pub fn image(&mut self, image: Image) {
        self.images.push(image);
        self.items.push(Item::Image(self.images.len() - 1));
    }

    /// Fills rings (outer and holes, even-odd) given in some plane; `to_clip` maps a point of
    /// that plane to clip space.
    pub fn fill_rings<'a>(
        &mut self,
        rings: impl IntoIterator<Item = &'a [[f32; 2]]>,
        color: Color,
        to_clip: impl Fn(f32, f32) -> [f32; 4],
    ) {
        let Some(path) = ring_path(rings, true) else {
            return;
        };
        let color = color.premultiplied();
        let start = self.geometry.indices.len() as u32;
        let mut builder = BuffersBuilder::new(&mut self.geometry, |v: FillVertex| Vertex {
            pos: to_clip(v.position().x, v.position().y),
            color,
        });
        let opts = FillOptions::tolerance(TOLERANCE).with_fill_rule(FillRule::EvenOdd);
        if self
            .fill
            .tessellate_path(&path, &opts, &mut builder)
            .is_err()
        {
            self.skipped += 1;
        }
        self.mark(start);
    }

    /// Strokes polylines (closed when `closed`) given in some plane.
    pub fn stroke_lines<'a>(
        &mut self,
        lines: impl IntoIterator<Item = &'a [[f32; 2]]>,
        closed: bool,
        stroke: Stroke,
        color: Color,
        to_clip: impl Fn(f32, f32) -> [f32; 4],
    ) {
        let Some(path) = ring_path(lines, closed) else {
            return;
        };
        let color = color.premultiplied();
        let start = self.geometry.indices.len() as u32;
        let mut builder = BuffersBuilder::new(&mut self.geometry, |v: StrokeVertex| Vertex {
            pos: to_clip(v.position().x, v.position().y),
            color,
        });
        let opts = StrokeOptions::tolerance(TOLERANCE)
            .with_line_width(stroke.width.max(0.01))
            .with_line_join(stroke.join)
            .with_line_cap(stroke.cap)
            .with_miter_limit(2.0);
        if self
            .stroke
            .tessellate_path(&path, &opts, &mut builder)
            .is_err()
        {
            self.skipped += 1;
        }
        self.mark(start);
    }

    /// A filled circle in frame pixels, optionally with a stroke outside its radius.
    pub fn circle(
        &mut self,
        center: (f32, f32),
        radius: f32,
        color: Color,
        outline: Option<(f32, Color)>,
    ) {
        let frame = self.size();
        let start = self.geometry.indices.len() as u32;
        let c = point(center.0, center.1);
        if radius > 0.0 && color.a > 0.0 {
            let fill = color.premultiplied();
            let mut builder = BuffersBuilder::new(&mut self.geometry, |v: FillVertex| Vertex {
                pos: frame_clip(frame, v.position().x, v.position().y),
                color: fill,
            });
            let _ = self.fill.tessellate_circle(
                c,
                radius,
                &FillOptions::tolerance(TOLERANCE),
                &mut builder,
            );
        }
        if let Some((w, col)) = outline
            && w > 0.0
            && col.a > 0.0
        {
            let col = col.premultiplied();
            let mut builder = BuffersBuilder::new(&mut self.geometry, |v: StrokeVertex| Vertex {
                pos: frame_clip(frame, v.position().x, v.position().y),
                color: col,
            });
            let _ = self.stroke.tessellate_circle(
                c,
                radius + w / 2.0,
                &StrokeOptions::tolerance(TOLERANCE).with_line_width(w),
                &mut builder,
            );
        }
        self.mark(start);
    }

    /// A rectangle in frame pixels.
    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Color) {
        if w <= 0.0 || h <= 0.0 || color.a <= 0.0 {
            return;
        }
        let frame = self.size();
        let color = color.premultiplied();
        let start = self.geometry.indices.len() as u32;
        let base = self.geometry.vertices.len() as u32;
        for (px, py) in [(x, y), (x + w, y), (x + w, y + h), (x, y + h)] {
            self.geometry.vertices.push(Vertex {
                pos: frame_clip(frame, px, py),
                color,
            });
        }
        self.geometry
            .indices
            .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        self.mark(start);
    }

    /// A quad with four corners already in clip space (building walls).
    pub fn quad(&mut self, corners: [[f32; 4]; 4], color: Color) {
        let color = color.premultiplied();
        let start = self.geometry.indices.len() as u32;
        let base = self.geometry.vertices.len() as u32;
        for pos in corners {
            self.geometry.vertices.push(Vertex { pos, color });
        }
        self.geometry
            .indices
            .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        self.mark(start);
    }
}

fn ring_path<'a>(rings: impl IntoIterator<Item = &'a [[f32; 2]]>, close: bool) -> Option<Path> {
    let mut b = Path::builder();
    let mut any = false;
    for ring in rings {
        let mut pts = ring.iter().filter(|p| p[0].is_finite() && p[1].is_finite());
        let Some(first) = pts.next() else { continue };
        let mut n = 1;
        b.begin(point(first[0], first[1]));
        for p in pts {
            b.line_to(point(p[0], p[1]));
            n += 1;
        }
        b.end(close && n > 2);
        any |= n > 1;
    }
    any.then(|| b.build())
}

/// Cuts a polyline into dashes: `pattern` alternates dash and gap lengths in pixels.
#[must_use]
pub fn dash(line: &[[f32; 2]], pattern: &[f32]) -> Vec<Vec<[f32; 2]>> {
    let total: f32 = pattern.iter().sum();
    if pattern.len() < 2 || total <= 0.01 || pattern.iter().any(|p| *p < 0.0) {
        return vec![line.to_vec()];
    }
    let mut out = Vec::new();
    let mut current: Vec<[f32; 2]> = Vec::new();
    let (mut i, mut left) = (0usize, pattern[0]);
    for seg in line.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        let mut t = 0.0;
        while t < len {
            let step = left.min(len - t);
            let at = |s: f32| {
                [
                    a[0] + (b[0] - a[0]) * s / len,
                    a[1] + (b[1] - a[1]) * s / len,
                ]
            };
            if i % 2 == 0 {
                if current.is_empty() {
                    current.push(at(t));
                }
                current.push(at(t + step));
            }
            t += step;
            left -= step;
            if left <= 1e-4 {
                if i % 2 == 0 && current.len() > 1 {
                    out.push(std::mem::take(&mut current));
                }
                current.clear();
                i = (i + 1) % pattern.len();
                left = pattern[i];
                if left <= 0.0 {
                    i = (i + 1) % pattern.len();
                    left = pattern[i].max(0.01);
                }
            }
        }
    }
    if current.len() > 1 {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_alternate_along_the_line() {
        let dashes = dash(&[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]], &[4.0, 2.0]);
        // 20 px of line in a 6 px pattern: dashes start at 0, 6, 12, 18
        assert_eq!(dashes.len(), 4, "{dashes:?}");
        assert_eq!(dashes[0], vec![[0.0, 0.0], [4.0, 0.0]]);
        // the third dash turns the corner
        assert_eq!(dashes[2], vec![[10.0, 2.0], [10.0, 6.0]]);
        assert_eq!(dashes[1], vec![[6.0, 0.0], [10.0, 0.0]]);
        assert_eq!(dash(&[[0.0, 0.0], [5.0, 0.0]], &[1.0]).len(), 1);
    }

    #[test]
    fn consecutive_shapes_with_one_pipe_share_a_draw() {
        let mut s = Scene::new(100, 50, Color::WHITE);
        s.rect(0.0, 0.0, 10.0, 10.0, Color::BLACK);
        s.circle((50.0, 25.0), 5.0, Color::BLACK, Some((1.0, Color::WHITE)));
        assert_eq!(s.items.len(), 1);
        s.set(Pipe::Depth, [0, 0, 50, 50]);
        s.quad([[0.0; 4]; 4], Color::BLACK);
        assert_eq!(s.items.len(), 2);
        s.rect(0.0, 0.0, 0.0, 10.0, Color::BLACK);
        assert_eq!(s.items.len(), 2, "empty shapes add nothing");
    }
}
