//! Text shaping with the shipped CJK font only, so output never depends on system fonts.

use glyphon::{Attrs, Buffer, Family, FontSystem, Metrics, Shaping, Wrap};

/// WenQuanYi Micro Hei cut to ASCII and GB 2312 (see `fonts/README.md`).
pub(crate) const FONT: &[u8] = include_bytes!("../fonts/wqy-microhei-gb2312.ttf");
/// Its family name.
pub const FAMILY: &str = "WenQuanYi Micro Hei";

/// The font system with exactly one font loaded.
pub struct Fonts {
    pub(crate) system: FontSystem,
}

impl Fonts {
    /// Loads the shipped font into an empty database.
    #[must_use]
    pub fn new() -> Self {
        let mut db = glyphon::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family(FAMILY);
        Fonts {
            system: FontSystem::new_with_locale_and_db("zh-CN".into(), db),
        }
    }

    /// Shapes `text` at `size` pixels, wrapped at `max_width` pixels when given; returns the
    /// buffer with its width and height.
    pub fn shape(&mut self, text: &str, size: f32, max_width: Option<f32>) -> (Buffer, f32, f32) {
        let size = size.max(1.0);
        let mut buffer = Buffer::new(&mut self.system, Metrics::new(size, size * 1.2));
        buffer.set_wrap(if max_width.is_some() {
            Wrap::WordOrGlyph
        } else {
            Wrap::None
        });
        buffer.set_size(max_width, None);
        buffer.set_text(
            text,
            &Attrs::new().family(Family::Name(FAMILY)),
            Shaping::Advanced,
            None,
        );
        buffer.shape_until_scroll(&mut self.system, false);
        let (mut w, mut h) = (0.0f32, 0.0f32);
        for run in buffer.layout_runs() {
            w = w.max(run.line_w);
            h = h.max(run.line_top + run.line_height);
        }
        // the buffer must be at least as large as its text or glyphon clips it
        buffer.set_size(Some(w.ceil() + 2.0), Some(h.ceil() + 2.0));
        (buffer, w, h)
    }
}

impl Default for Fonts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_and_latin_shape_with_the_shipped_font() {
        let mut fonts = Fonts::new();
        let (_, w_cn, h) = fonts.shape("玄武区", 20.0, None);
        assert!(
            w_cn > 50.0 && w_cn < 70.0,
            "three ideographs at 20 px: {w_cn}"
        );
        assert!(h >= 20.0);
        let (_, w_latin, _) = fonts.shape("Nanjing 2026", 20.0, None);
        assert!(w_latin > 60.0, "{w_latin}");
        // every glyph comes from the one font: no .notdef boxes for GB 2312 text
        let (buffer, _, _) = fonts.shape("深圳 鼓楼 栖霞", 20.0, None);
        let missing = buffer
            .layout_runs()
            .flat_map(|r| r.glyphs.iter())
            .filter(|g| g.glyph_id == 0)
            .count();
        assert_eq!(missing, 0);
        let (_, wrapped_w, wrapped_h) =
            fonts.shape("南京市城市运行管理服务中心", 20.0, Some(100.0));
        assert!(
            wrapped_w <= 100.0 && wrapped_h > 40.0,
            "{wrapped_w} {wrapped_h}"
        );
    }
}
