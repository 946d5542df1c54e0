//! citytwin-renderer: MapLibre styles and big-screen dashboards drawn with wgpu.
//!
//! The same code path runs on a GPU and on Mesa's CPU drivers (lavapipe through Vulkan,
//! llvmpipe through EGL). It draws the style subset citytwin's styles use — background, fill,
//! line, circle, symbol (Chinese text with the shipped WenQuanYi Micro Hei subset), heatmap
//! and fill-extrusion in pitched views — with MSAA, plus dashboard panels (title, clock, map,
//! KPI, bar and line charts, ranked lists). No I/O happens here besides the GPU: features
//! come through [`MapSource`], panel data through [`BoardInput`], and frames leave as bytes.

pub mod camera;
pub mod color;
pub mod dashboard;
pub mod expr;
pub mod glyphs;
mod gpu;
pub mod map;
pub mod scene;
pub mod sprites;
pub mod style;
pub mod text;

pub use camera::{Camera, MAX_PITCH, Panel, View};
pub use color::Color;
pub use dashboard::{BoardInput, Layout, PanelData, PanelSpec};
pub use gpu::{Frame, Options, Renderer};
pub use map::{Empty, MapSource};
pub use style::Style;
pub use wgpu::Backends;

/// Errors of the renderer, each naming what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter (GPU or CPU driver) could be opened.
    #[error("no graphics adapter: {0}")]
    NoAdapter(String),
    /// The style cannot be drawn.
    #[error("style: {0}")]
    Style(String),
    /// The dashboard layout is wrong.
    #[error("dashboard layout: {0}")]
    Layout(String),
    /// A frame size or view outside what the renderer accepts.
    #[error("{0}")]
    Size(String),
    /// The GPU refused the work.
    #[error("GPU: {0}")]
    Gpu(String),
    /// PNG or JPEG encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
}

impl Frame {
    /// The frame as a PNG (RGBA, 8 bits per channel).
    pub fn png(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.rgba.len() / 4);
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            if !self.credit.is_empty() {
                enc.add_itxt_chunk("Source".into(), self.credit.clone())
                    .map_err(|e| Error::Encode(e.to_string()))?;
            }
            let mut w = enc
                .write_header()
                .map_err(|e| Error::Encode(e.to_string()))?;
            w.write_image_data(&self.rgba)
                .map_err(|e| Error::Encode(e.to_string()))?;
        }
        Ok(out)
    }

    /// The frame as a baseline JPEG (for MJPEG streams), transparent pixels over black.
    pub fn jpeg(&self, quality: u8) -> Result<Vec<u8>, Error> {
        let rgb: Vec<u8> = self
            .rgba
            .chunks_exact(4)
            .flat_map(|p| {
                let a = u16::from(p[3]);
                [0, 1, 2].map(|i| ((u16::from(p[i]) * a + 127) / 255) as u8)
            })
            .collect();
        let (w, h) = (
            u16::try_from(self.width)
                .map_err(|_| Error::Encode("JPEG is at most 65535 wide".into()))?,
            u16::try_from(self.height)
                .map_err(|_| Error::Encode("JPEG is at most 65535 high".into()))?,
        );
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
            .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(out)
    }
}
