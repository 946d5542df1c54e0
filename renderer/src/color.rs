//! CSS colours as MapLibre styles write them.

/// An sRGB colour with straight (not premultiplied) alpha, each channel in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Color {
    /// red
    pub r: f32,
    /// green
    pub g: f32,
    /// blue
    pub b: f32,
    /// alpha
    pub a: f32,
}

impl Color {
    /// Opaque black.
    pub const BLACK: Color = Color::rgba(0.0, 0.0, 0.0, 1.0);
    /// Opaque white.
    pub const WHITE: Color = Color::rgba(1.0, 1.0, 1.0, 1.0);
    /// Fully transparent.
    pub const TRANSPARENT: Color = Color::rgba(0.0, 0.0, 0.0, 0.0);

    /// A colour from its channels.
    #[must_use]
    pub const fn rgba(r: f32, g: f32, b: f32, a: f32) -> Self {
        Self { r, g, b, a }
    }

    /// The colour with its alpha multiplied by `opacity`.
    #[must_use]
    pub fn with_opacity(self, opacity: f32) -> Self {
        Self {
            a: self.a * opacity.clamp(0.0, 1.0),
            ..self
        }
    }

    /// The colour with each channel scaled by `f` (shading), alpha kept.
    #[must_use]
    pub fn shade(self, f: f32) -> Self {
        Self {
            r: (self.r * f).clamp(0.0, 1.0),
            g: (self.g * f).clamp(0.0, 1.0),
            b: (self.b * f).clamp(0.0, 1.0),
            a: self.a,
        }
    }

    /// Premultiplied RGBA, what the GPU blends.
    #[must_use]
    pub fn premultiplied(self) -> [f32; 4] {
        [self.r * self.a, self.g * self.a, self.b * self.a, self.a]
    }

    /// Linear interpolation in RGB space, as MapLibre interpolates colours by default.
    #[must_use]
    pub fn lerp(self, other: Color, t: f32) -> Color {
        let m = |a: f32, b: f32| a + (b - a) * t;
        Color::rgba(
            m(self.r, other.r),
            m(self.g, other.g),
            m(self.b, other.b),
            m(self.a, other.a),
        )
    }

    /// 8-bit channels.
    #[must_use]
    pub fn to_rgba8(self) -> [u8; 4] {
        let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        [q(self.r), q(self.g), q(self.b), q(self.a)]
    }

    /// Parses any CSS colour (Color Module Level 4): hex forms, `rgb()`, `hsl()`, `hwb()`,
    /// `lab()`, `lch()`, `oklab()`, `oklch()` and the 148 named colours, with `csscolorparser`.
    pub fn parse(text: &str) -> Result<Color, String> {
        let c = csscolorparser::parse(text.trim())
            .map_err(|e| format!("{text:?} is not a CSS colour: {e}"))?;
        Ok(Color::rgba(
            c.r.clamp(0.0, 1.0),
            c.g.clamp(0.0, 1.0),
            c.b.clamp(0.0, 1.0),
            c.a.clamp(0.0, 1.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_forms_parse() {
        assert_eq!(
            Color::parse("#ff0000").unwrap(),
            Color::rgba(1.0, 0.0, 0.0, 1.0)
        );
        assert_eq!(Color::parse("#0f08").unwrap().to_rgba8(), [0, 255, 0, 136]);
        assert_eq!(
            Color::parse("rgba(255, 128, 0, 0.5)").unwrap().to_rgba8(),
            [255, 128, 0, 128]
        );
        assert_eq!(
            Color::parse("hsl(120, 100%, 50%)").unwrap().to_rgba8(),
            [0, 255, 0, 255]
        );
        assert_eq!(
            Color::parse("White").unwrap().to_rgba8(),
            [255, 255, 255, 255]
        );
        assert!(Color::parse("#12345").is_err());
        assert!(Color::parse("rgb(1,2)").is_err());
        assert!(Color::parse("chartreuse-ish").is_err());
        // every named colour of CSS, not a hand-picked few
        assert_eq!(
            Color::parse("rebeccapurple").unwrap().to_rgba8(),
            [102, 51, 153, 255]
        );
        assert_eq!(
            Color::parse("LightGoldenRodYellow").unwrap().to_rgba8(),
            [250, 250, 210, 255]
        );
        assert_eq!(Color::parse("transparent").unwrap().to_rgba8()[3], 0);
    }
}
