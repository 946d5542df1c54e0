//! Glyph PBFs for MapLibre's `text-font` stacks: signed-distance-field glyphs of 256 code
//! points at a time, in Mapbox's protobuf (the format Martin and tileserver-gl serve), made
//! from the shipped font and any font a deployment adds. Rasterised with swash (the
//! rasteriser the renderer's own text uses), turned into distance fields by
//! `sdf_glyph_renderer` and written with `pbf_font_tools`' messages — the parameters of
//! node-fontnik: 24 px, a 3 px buffer, radius 8, cutoff 0.25.

use pbf_font_tools::prost::Message;
use pbf_font_tools::{Fontstack, Glyph, Glyphs};
use swash::FontRef;
use swash::scale::{Render, ScaleContext, Source};
use swash::zeno::Format;

/// Glyph size in pixels.
const SIZE: f32 = 24.0;
/// Pixels around each glyph.
const BUFFER: usize = 3;
/// Distance field radius.
const RADIUS: usize = 8;
/// Share of the byte range for the inside of a glyph.
const CUTOFF: f64 = 0.25;

/// A font that glyph ranges are made from.
pub struct GlyphFont {
    /// its name in `text-font` stacks: family and style (`WenQuanYi Micro Hei Regular`)
    pub name: String,
    /// its family alone, also accepted in stacks
    pub family: String,
    data: Vec<u8>,
}

impl std::fmt::Debug for GlyphFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlyphFont")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("bytes", &self.data.len())
            .finish()
    }
}

fn name_of(font: &FontRef<'_>, id: swash::StringId) -> Option<String> {
    font.localized_strings()
        .find_by_id(id, Some("en"))
        .or_else(|| font.localized_strings().find_by_id(id, None))
        .map(|s| s.chars().collect::<String>())
        .filter(|s| !s.trim().is_empty())
}

impl GlyphFont {
    /// Reads a TrueType or OpenType font; `None` when it is not one.
    #[must_use]
    pub fn new(data: Vec<u8>) -> Option<Self> {
        let font = FontRef::from_index(&data, 0)?;
        let family = name_of(&font, swash::StringId::Family)?;
        let style = name_of(&font, swash::StringId::SubFamily).unwrap_or_else(|| "Regular".into());
        Some(Self {
            name: format!("{family} {style}"),
            family,
            data,
        })
    }

    /// The font the renderer draws its text with.
    #[must_use]
    pub fn shipped() -> Self {
        Self::new(crate::text::FONT.to_vec()).unwrap_or(Self {
            name: format!("{} Regular", crate::text::FAMILY),
            family: crate::text::FAMILY.into(),
            data: crate::text::FONT.to_vec(),
        })
    }

    /// Whether a `text-font` entry names this font.
    #[must_use]
    pub fn answers_to(&self, entry: &str) -> bool {
        let e = entry.trim();
        e.eq_ignore_ascii_case(&self.name) || e.eq_ignore_ascii_case(&self.family)
    }

    /// The glyphs of code points `start..=end` this font has.
    fn glyphs(&self, start: u32, end: u32) -> Vec<Glyph> {
        let Some(font) = FontRef::from_index(&self.data, 0) else {
            return Vec::new();
        };
        let mut context = ScaleContext::new();
        let mut scaler = context.builder(font).size(SIZE).hint(false).build();
        let metrics = font.metrics(&[]).scale(SIZE);
        let advances = font.glyph_metrics(&[]).scale(SIZE);
        let ascender = metrics.ascent.round() as i32;
        let charmap = font.charmap();
        let mut out = Vec::new();
        for code in start..=end {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let id = charmap.map(c);
            if id == 0 {
                continue;
            }
            let advance = advances.advance_width(id).round().max(0.0) as u32;
            let image = Render::new(&[Source::Outline])
                .format(Format::Alpha)
                .render(&mut scaler, id);
            let (left, top, width, height, alpha) = match image {
                Some(img) if img.placement.width > 0 && img.placement.height > 0 => (
                    img.placement.left,
                    img.placement.top,
                    img.placement.width as usize,
                    img.placement.height as usize,
                    img.data,
                ),
                // a space: metrics only
                _ => (0, 0, 0, 0, Vec::new()),
            };
            let bitmap = if width == 0 {
                Vec::new()
            } else {
                let Ok(glyph) =
                    sdf_glyph_renderer::BitmapGlyph::from_unbuffered(&alpha, width, height, BUFFER)
                else {
                    continue;
                };
                let Ok(bytes) = sdf_glyph_renderer::clamp_to_u8(&glyph.render_sdf(RADIUS), CUTOFF)
                else {
                    continue;
                };
                bytes
            };
            out.push(Glyph {
                id: code,
                bitmap: Some(bitmap),
                width: width as u32,
                height: height as u32,
                left,
                top: top - ascender,
                advance,
            });
        }
        out
    }
}

/// A glyph range `start-end` as URLs write it (`0-255`): 256 code points from a multiple of
/// 256, within Unicode's planes.
pub fn parse_range(range: &str) -> Option<(u32, u32)> {
    let (a, b) = range.split_once('-')?;
    let (start, end): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    (start % 256 == 0 && end == start + 255 && end <= 0x10_FFFF).then_some((start, end))
}

/// The glyph PBF of a stack of fonts for code points `start..=end`: each code point from the
/// first font of the stack that has it.
#[must_use]
pub fn glyph_range(stack: &[&GlyphFont], start: u32, end: u32) -> Vec<u8> {
    let mut glyphs: Vec<Glyph> = Vec::new();
    for font in stack {
        for g in font.glyphs(start, end) {
            if !glyphs.iter().any(|have| have.id == g.id) {
                glyphs.push(g);
            }
        }
    }
    glyphs.sort_by_key(|g| g.id);
    let name = stack
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Glyphs {
        stacks: vec![Fontstack {
            name,
            range: format!("{start}-{end}"),
            glyphs,
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_font_gives_latin_and_chinese_glyphs() {
        let font = GlyphFont::shipped();
        assert!(font.answers_to("WenQuanYi Micro Hei"));
        let latin = Glyphs::decode(glyph_range(&[&font], 0, 255).as_slice()).unwrap();
        let stack = &latin.stacks[0];
        assert_eq!(stack.range, "0-255");
        let a = stack
            .glyphs
            .iter()
            .find(|g| g.id == u32::from('A'))
            .unwrap();
        assert!(a.width > 5 && a.height > 10 && a.advance > 8, "{a:?}");
        let bytes = a.bitmap.as_ref().unwrap();
        assert_eq!(
            bytes.len(),
            (a.width as usize + 6) * (a.height as usize + 6)
        );
        let space = stack.glyphs.iter().find(|g| g.id == 32).unwrap();
        assert_eq!(
            (space.width, space.bitmap.as_ref().map(Vec::len)),
            (0, Some(0))
        );
        // 南 is U+5357: its range is 21248-21503
        let cjk = Glyphs::decode(glyph_range(&[&font], 21_248, 21_503).as_slice()).unwrap();
        let nan = cjk.stacks[0]
            .glyphs
            .iter()
            .find(|g| g.id == 0x5357)
            .unwrap();
        assert!(nan.advance >= 20, "{nan:?}");
        // a range the font has nothing of is an empty stack, not an error
        let none = Glyphs::decode(glyph_range(&[&font], 0x1_F600, 0x1_F6FF).as_slice()).unwrap();
        assert!(none.stacks[0].glyphs.is_empty());
    }

    #[test]
    fn ranges_are_256_code_points_from_a_multiple_of_256() {
        assert_eq!(parse_range("0-255"), Some((0, 255)));
        assert_eq!(parse_range("21248-21503"), Some((21_248, 21_503)));
        for bad in ["0-256", "1-256", "a-b", "0", "-1-254", "1114112-1114367"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
