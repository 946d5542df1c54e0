//! Sprites from SVG icons, the way Martin serves them (spreet): a sheet PNG and its JSON
//! index at pixel ratio 1 and 2. Icons come as glyphs (white shapes on a 24 × 24 view box)
//! in groups, and each group's variants put the glyph on a disc of the variant's colour:
//! `event/waterlogging.svg` with variants `open`, `working` and `closed` gives
//! `event-waterlogging-open`, …; a variant named `""` gives `poi-hospital` itself. The map
//! renderer draws the same composed icons ([`icon_tree`]), so a static map and the browser
//! show the same pictures.

use spreet::resvg::{self, tiny_skia, usvg};
use spreet::{Sprite, Spritesheet};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Size of an icon at pixel ratio 1, in pixels.
pub const ICON_PX: u32 = 24;

/// An icon set's glyphs by group and name, and each group's variants (name → colour).
#[derive(Debug, Clone, Default)]
pub struct IconSet {
    /// group → icon name → the glyph's SVG text
    pub glyphs: BTreeMap<String, BTreeMap<String, String>>,
    /// group → variant name (`""` for none) → disc colour
    pub variants: BTreeMap<String, BTreeMap<String, String>>,
}

/// A sprite sheet: the PNG and its index (`{"name": {"x", "y", "width", "height",
/// "pixelRatio"}}`).
#[derive(Debug, Clone)]
pub struct Sheet {
    /// the index, JSON
    pub index: Vec<u8>,
    /// the sheet, PNG
    pub png: Vec<u8>,
}

/// What went wrong building a sprite.
#[derive(Debug, thiserror::Error)]
pub enum SpriteError {
    /// an icon is not SVG that can be drawn
    #[error("icon {0}: {1}")]
    Icon(String, String),
    /// the sheet could not be made
    #[error("sprite sheet: {0}")]
    Sheet(String),
}

/// The inside of an `<svg>` element.
fn inner(svg: &str) -> Option<&str> {
    let start = svg.find("<svg")?;
    let open_end = start + svg[start..].find('>')? + 1;
    let close = svg.rfind("</svg>")?;
    (close >= open_end).then(|| &svg[open_end..close])
}

impl IconSet {
    /// Every icon's name and composed SVG: the glyph, white, on a disc of its variant's colour
    /// with a white rim.
    pub fn composed(&self) -> Result<BTreeMap<String, String>, SpriteError> {
        let mut out = BTreeMap::new();
        for (group, icons) in &self.glyphs {
            let none = BTreeMap::from([(String::new(), "#455a64".to_owned())]);
            let variants = self.variants.get(group).unwrap_or(&none);
            for (name, svg) in icons {
                let body = inner(svg).ok_or_else(|| {
                    SpriteError::Icon(format!("{group}/{name}"), "not an <svg> element".into())
                })?;
                for (variant, colour) in variants {
                    let id = if variant.is_empty() {
                        format!("{group}-{name}")
                    } else {
                        format!("{group}-{name}-{variant}")
                    };
                    let colour: String = colour
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '#')
                        .collect();
                    out.insert(
                        id,
                        format!(
                            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{ICON_PX}" height="{ICON_PX}" viewBox="0 0 24 24"><circle cx="12" cy="12" r="11" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/><g transform="translate(5 5) scale(0.5833)">{body}</g></svg>"##
                        ),
                    );
                }
            }
        }
        Ok(out)
    }
}

/// An icon rasterised: premultiplied RGBA of a square of this many pixels a side.
pub type Raster = Arc<(Vec<u8>, u32)>;

/// The composed icons of a sprite, for the map renderer: rasterised at the size drawn, once.
#[derive(Debug, Default)]
pub struct Icons {
    svgs: BTreeMap<String, String>,
    raster: Mutex<HashMap<(String, u32), Option<Raster>>>,
}

impl Icons {
    /// Icons by name (their composed SVG).
    #[must_use]
    pub fn new(svgs: BTreeMap<String, String>) -> Self {
        Self {
            svgs,
            raster: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the sprite has an icon.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.svgs.contains_key(name)
    }

    /// An icon as premultiplied RGBA of `px` × `px` pixels.
    pub fn raster(&self, name: &str, px: u32) -> Option<Raster> {
        let px = px.clamp(1, 512);
        let key = (name.to_owned(), px);
        if let Some(hit) = self.raster.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return hit;
        }
        let made = self.svgs.get(name).and_then(|svg| {
            let tree = icon_tree(svg).ok()?;
            let mut pixmap = tiny_skia::Pixmap::new(px, px)?;
            let scale = px as f32 / tree.size().width().max(1.0);
            resvg::render(
                &tree,
                tiny_skia::Transform::from_scale(scale, scale),
                &mut pixmap.as_mut(),
            );
            Some(Arc::new((pixmap.take(), px)))
        });
        if let Ok(mut m) = self.raster.lock() {
            m.insert(key, made.clone());
        }
        made
    }
}

/// An icon's SVG parsed, for drawing.
pub fn icon_tree(svg: &str) -> Result<usvg::Tree, String> {
    usvg::Tree::from_str(svg, &usvg::Options::default()).map_err(|e| e.to_string())
}

/// The sprite sheet of composed icons at a pixel ratio (1 or 2).
pub fn sheet(icons: &BTreeMap<String, String>, pixel_ratio: u8) -> Result<Sheet, SpriteError> {
    let mut sprites = BTreeMap::new();
    for (name, svg) in icons {
        let tree = icon_tree(svg).map_err(|e| SpriteError::Icon(name.clone(), e))?;
        let sprite = Sprite::new(tree, pixel_ratio)
            .ok_or_else(|| SpriteError::Icon(name.clone(), "has no size".into()))?;
        sprites.insert(name.clone(), sprite);
    }
    let sheet: Spritesheet = Spritesheet::build()
        .sprites(sprites)
        .spacing(1)
        .generate()
        .ok_or_else(|| SpriteError::Sheet("no icons to pack".into()))?;
    let png = sheet
        .encode_png()
        .map_err(|e| SpriteError::Sheet(e.to_string()))?;
    let index =
        serde_json::to_vec(sheet.get_index()).map_err(|e| SpriteError::Sheet(e.to_string()))?;
    Ok(Sheet { index, png })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> IconSet {
        let glyph = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><rect x="4" y="4" width="16" height="16" fill="#fff"/></svg>"##;
        IconSet {
            glyphs: BTreeMap::from([
                (
                    "sensor".into(),
                    BTreeMap::from([("gas".into(), glyph.into())]),
                ),
                (
                    "poi".into(),
                    BTreeMap::from([("park".into(), glyph.into())]),
                ),
            ]),
            variants: BTreeMap::from([(
                "sensor".into(),
                BTreeMap::from([
                    (String::new(), "#2e7d32".into()),
                    ("alarm".into(), "#c62828".into()),
                ]),
            )]),
        }
    }

    #[test]
    fn variants_become_icons_and_the_sheet_indexes_them() {
        let icons = set().composed().unwrap();
        let names: Vec<&str> = icons.keys().map(String::as_str).collect();
        assert_eq!(names, ["poi-park", "sensor-gas", "sensor-gas-alarm"]);
        assert!(icons["sensor-gas-alarm"].contains("#c62828"));
        for ratio in [1u8, 2] {
            let s = sheet(&icons, ratio).unwrap();
            let index: serde_json::Value = serde_json::from_slice(&s.index).unwrap();
            assert_eq!(index["sensor-gas"]["width"], u32::from(ratio) * ICON_PX);
            assert_eq!(index["sensor-gas"]["pixelRatio"], ratio);
            assert_eq!(&s.png[1..4], b"PNG");
        }
    }

    #[test]
    fn a_broken_icon_is_named() {
        let mut s = set();
        s.glyphs
            .get_mut("poi")
            .unwrap()
            .insert("bad".into(), "not svg".into());
        assert!(s.composed().unwrap_err().to_string().contains("poi/bad"));
    }
}
