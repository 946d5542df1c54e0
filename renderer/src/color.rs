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

    /// Parses `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`, `rgb()`, `rgba()`, `hsl()`, `hsla()` and
    /// the CSS colour names.
    pub fn parse(text: &str) -> Result<Color, String> {
        let s = text.trim().to_ascii_lowercase();
        if let Some(hex) = s.strip_prefix('#') {
            return parse_hex(hex).ok_or_else(|| format!("{text:?} is not a hex colour"));
        }
        if let Some((func, rest)) = s.split_once('(') {
            let args = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("{text:?}: missing ')'"))?;
            let parts: Vec<&str> = args
                .split([',', ' ', '/'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            return parse_function(func.trim(), &parts)
                .ok_or_else(|| format!("{text:?} is not a valid {func}() colour"));
        }
        named(&s).ok_or_else(|| format!("{text:?} is not a colour this renderer knows"))
    }
}

fn parse_hex(hex: &str) -> Option<Color> {
    let digit = |i: usize, len: usize| -> Option<f32> {
        let v = u8::from_str_radix(hex.get(i * len..(i + 1) * len)?, 16).ok()?;
        Some(if len == 1 {
            f32::from(v * 17) / 255.0
        } else {
            f32::from(v) / 255.0
        })
    };
    match hex.len() {
        3 | 4 => {
            let a = if hex.len() == 4 { digit(3, 1)? } else { 1.0 };
            Some(Color::rgba(digit(0, 1)?, digit(1, 1)?, digit(2, 1)?, a))
        }
        6 | 8 => {
            let a = if hex.len() == 8 { digit(3, 2)? } else { 1.0 };
            Some(Color::rgba(digit(0, 2)?, digit(1, 2)?, digit(2, 2)?, a))
        }
        _ => None,
    }
}

fn parse_function(func: &str, parts: &[&str]) -> Option<Color> {
    let num = |p: &str, scale: f32| -> Option<f32> {
        if let Some(pc) = p.strip_suffix('%') {
            pc.parse::<f32>().ok().map(|v| v / 100.0)
        } else {
            p.parse::<f32>().ok().map(|v| v / scale)
        }
    };
    let alpha = |i: usize| parts.get(i).map_or(Some(1.0), |p| num(p, 1.0));
    match (func, parts.len()) {
        ("rgb" | "rgba", 3 | 4) => Some(Color::rgba(
            num(parts[0], 255.0)?.clamp(0.0, 1.0),
            num(parts[1], 255.0)?.clamp(0.0, 1.0),
            num(parts[2], 255.0)?.clamp(0.0, 1.0),
            alpha(3)?.clamp(0.0, 1.0),
        )),
        ("hsl" | "hsla", 3 | 4) => {
            let h = parts[0].trim_end_matches("deg").parse::<f32>().ok()?;
            let s = num(parts[1], 100.0)?.clamp(0.0, 1.0);
            let l = num(parts[2], 100.0)?.clamp(0.0, 1.0);
            let (r, g, b) = hsl_to_rgb(h.rem_euclid(360.0) / 360.0, s, l);
            Some(Color::rgba(r, g, b, alpha(3)?.clamp(0.0, 1.0)))
        }
        _ => None,
    }
}

fn hsl_to_rgb(h: f32, s: f32, l: f32) -> (f32, f32, f32) {
    if s == 0.0 {
        return (l, l, l);
    }
    let q = if l < 0.5 {
        l * (1.0 + s)
    } else {
        l + s - l * s
    };
    let p = 2.0 * l - q;
    let hue = |mut t: f32| {
        t = t.rem_euclid(1.0);
        if t < 1.0 / 6.0 {
            p + (q - p) * 6.0 * t
        } else if t < 0.5 {
            q
        } else if t < 2.0 / 3.0 {
            p + (q - p) * (2.0 / 3.0 - t) * 6.0
        } else {
            p
        }
    };
    (hue(h + 1.0 / 3.0), hue(h), hue(h - 1.0 / 3.0))
}

fn named(s: &str) -> Option<Color> {
    let hex = match s {
        "transparent" => return Some(Color::TRANSPARENT),
        "black" => "000000",
        "white" => "ffffff",
        "red" => "ff0000",
        "lime" => "00ff00",
        "green" => "008000",
        "blue" => "0000ff",
        "yellow" => "ffff00",
        "cyan" | "aqua" => "00ffff",
        "magenta" | "fuchsia" => "ff00ff",
        "gray" | "grey" => "808080",
        "silver" => "c0c0c0",
        "maroon" => "800000",
        "olive" => "808000",
        "purple" => "800080",
        "teal" => "008080",
        "navy" => "000080",
        "orange" => "ffa500",
        "royalblue" => "4169e1",
        "steelblue" => "4682b4",
        "skyblue" => "87ceeb",
        "gold" => "ffd700",
        "pink" => "ffc0cb",
        "brown" => "a52a2a",
        "darkgray" | "darkgrey" => "a9a9a9",
        "lightgray" | "lightgrey" => "d3d3d3",
        "whitesmoke" => "f5f5f5",
        "crimson" => "dc143c",
        "tomato" => "ff6347",
        "orangered" => "ff4500",
        _ => return None,
    };
    parse_hex(hex)
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
    }
}
