//! The MapLibre style subset the renderer draws, parsed and checked once.

use crate::Error;
use crate::expr::Expr;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The kinds of layer the renderer draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `background`
    Background,
    /// `fill`
    Fill,
    /// `line`
    Line,
    /// `circle`
    Circle,
    /// `symbol` (text labels)
    Symbol,
    /// `heatmap`
    Heatmap,
    /// `fill-extrusion`
    FillExtrusion,
}

impl LayerKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "background" => Self::Background,
            "fill" => Self::Fill,
            "line" => Self::Line,
            "circle" => Self::Circle,
            "symbol" => Self::Symbol,
            "heatmap" => Self::Heatmap,
            "fill-extrusion" => Self::FillExtrusion,
            _ => return None,
        })
    }

    /// The paint and layout properties the renderer honours for this kind.
    fn supported(self) -> &'static [&'static str] {
        match self {
            Self::Background => &["background-color", "background-opacity"],
            Self::Fill => &[
                "fill-color",
                "fill-opacity",
                "fill-outline-color",
                "fill-antialias",
            ],
            Self::Line => &[
                "line-color",
                "line-width",
                "line-opacity",
                "line-dasharray",
                "line-join",
                "line-cap",
                "line-miter-limit",
                "line-round-limit",
            ],
            Self::Circle => &[
                "circle-radius",
                "circle-color",
                "circle-opacity",
                "circle-stroke-width",
                "circle-stroke-color",
                "circle-stroke-opacity",
            ],
            Self::Symbol => &[
                "text-field",
                "text-size",
                "text-color",
                "text-opacity",
                "text-halo-color",
                "text-halo-width",
                "text-font",
                "text-anchor",
                "text-offset",
                "text-allow-overlap",
                "text-max-width",
                "text-optional",
                "icon-image",
                "icon-size",
                "icon-opacity",
                "icon-allow-overlap",
                "symbol-placement",
                "symbol-sort-key",
            ],
            Self::Heatmap => &[
                "heatmap-radius",
                "heatmap-weight",
                "heatmap-intensity",
                "heatmap-color",
                "heatmap-opacity",
            ],
            Self::FillExtrusion => &[
                "fill-extrusion-color",
                "fill-extrusion-height",
                "fill-extrusion-base",
                "fill-extrusion-opacity",
            ],
        }
    }
}

/// One style layer, its properties compiled.
#[derive(Debug, Clone)]
pub struct StyleLayer {
    /// layer id
    pub id: String,
    /// what it draws
    pub kind: LayerKind,
    /// the source's id
    pub source: Option<String>,
    /// the layer of the source (a citytwin layer name)
    pub source_layer: Option<String>,
    /// drawn from this zoom
    pub minzoom: f64,
    /// drawn below this zoom
    pub maxzoom: f64,
    /// which features are drawn
    pub filter: Option<Expr>,
    /// `layout.visibility` is not `none`
    pub visible: bool,
    props: BTreeMap<String, Expr>,
}

impl StyleLayer {
    /// A paint or layout property, when the style sets it.
    #[must_use]
    pub fn prop(&self, name: &str) -> Option<&Expr> {
        self.props.get(name)
    }

    /// Whether the layer draws at `zoom`.
    #[must_use]
    pub fn shows_at(&self, zoom: f64) -> bool {
        self.visible && zoom >= self.minzoom && zoom < self.maxzoom
    }
}

/// A parsed style: its layers in drawing order and what it could not honour.
#[derive(Debug, Clone)]
pub struct Style {
    /// `name`
    pub name: String,
    /// default centre (lon, lat)
    pub center: Option<(f64, f64)>,
    /// default zoom
    pub zoom: Option<f64>,
    /// layers in drawing order
    pub layers: Vec<StyleLayer>,
    /// layer types and properties the renderer skips, one sentence each
    pub warnings: Vec<String>,
    /// the icons of the style's sprite, for `icon-image`
    pub icons: Option<std::sync::Arc<crate::sprites::Icons>>,
}

impl Style {
    /// Parses a MapLibre style (version 8). Structural faults and expressions the renderer
    /// cannot evaluate are errors naming the layer and property; layer types and properties it
    /// does not draw become [`Style::warnings`] and are skipped.
    pub fn parse(json: &Json) -> Result<Style, Error> {
        let bad = |m: String| Error::Style(m);
        let obj = json
            .as_object()
            .ok_or_else(|| bad("a style must be a JSON object".into()))?;
        if obj.get("version").and_then(Json::as_u64) != Some(8) {
            return Err(bad("style \"version\" must be 8".into()));
        }
        let sources = obj.get("sources").and_then(Json::as_object);
        let layers = obj
            .get("layers")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("style has no \"layers\" array".into()))?;
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let id = l
                .get("id")
                .and_then(Json::as_str)
                .ok_or_else(|| bad(format!("layer {i} has no \"id\"")))?
                .to_owned();
            let ty = l
                .get("type")
                .and_then(Json::as_str)
                .ok_or_else(|| bad(format!("layer {id:?} has no \"type\"")))?;
            let Some(kind) = LayerKind::parse(ty) else {
                warnings.push(format!(
                    "layer {id:?}: type {ty:?} is not drawn by the renderer"
                ));
                continue;
            };
            let source = l.get("source").and_then(Json::as_str).map(str::to_owned);
            if kind != LayerKind::Background {
                let Some(src) = &source else {
                    return Err(bad(format!("layer {id:?} has no \"source\"")));
                };
                let src_type = sources
                    .and_then(|s| s.get(src))
                    .ok_or_else(|| bad(format!("layer {id:?} uses unknown source {src:?}")))?
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("");
                if src_type != "vector" {
                    warnings.push(format!(
                        "layer {id:?}: source {src:?} of type {src_type:?} is not drawn by the renderer"
                    ));
                    continue;
                }
            }
            let mut props = BTreeMap::new();
            let mut visible = true;
            for section in ["paint", "layout"] {
                let Some(map) = l.get(section) else { continue };
                let map = map
                    .as_object()
                    .ok_or_else(|| bad(format!("layer {id:?}: {section:?} must be an object")))?;
                for (name, value) in map {
                    if name == "visibility" {
                        visible = value.as_str() != Some("none");
                        continue;
                    }
                    // a font stack (a plain array, not an expression): the renderer draws
                    // every label with the shipped font, the stacks' last resort
                    if name == "text-font" {
                        continue;
                    }
                    if !kind.supported().contains(&name.as_str()) {
                        warnings.push(format!(
                            "layer {id:?}: property {name:?} is not supported by the renderer; ignored"
                        ));
                        continue;
                    }
                    let expr = Expr::compile(value)
                        .map_err(|e| bad(format!("layer {id:?}, {name:?}: {e}")))?;
                    props.insert(name.clone(), expr);
                }
            }
            let filter = l
                .get("filter")
                .map(|f| Expr::compile(f).map_err(|e| bad(format!("layer {id:?}, filter: {e}"))))
                .transpose()?;
            out.push(StyleLayer {
                source_layer: l
                    .get("source-layer")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
                source,
                minzoom: l.get("minzoom").and_then(Json::as_f64).unwrap_or(0.0),
                maxzoom: l
                    .get("maxzoom")
                    .and_then(Json::as_f64)
                    .unwrap_or(f64::INFINITY),
                filter,
                visible,
                props,
                kind,
                id,
            });
        }
        let center = obj
            .get("center")
            .and_then(Json::as_array)
            .and_then(|c| Some((c.first()?.as_f64()?, c.get(1)?.as_f64()?)));
        Ok(Style {
            name: obj
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            center,
            zoom: obj.get("zoom").and_then(Json::as_f64),
            layers: out,
            warnings,
            icons: None,
        })
    }

    /// The style keeping only the layers named (in style order); unknown names are errors.
    pub fn only(mut self, ids: &[String]) -> Result<Style, Error> {
        if let Some(missing) = ids
            .iter()
            .find(|id| !self.layers.iter().any(|l| &l.id == *id))
        {
            return Err(Error::Style(format!(
                "style {:?} has no layer {missing:?}",
                self.name
            )));
        }
        self.layers.retain(|l| ids.contains(&l.id));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unsupported_types_and_properties_are_warnings_and_bad_styles_errors() {
        let s = Style::parse(&json!({
            "version": 8,
            "sources": {"v": {"type": "vector"}, "r": {"type": "raster"}},
            "layers": [
                {"id": "bg", "type": "background", "paint": {"background-color": "#fff"}},
                {"id": "hill", "type": "hillshade", "source": "r"},
                {"id": "sat", "type": "fill", "source": "r", "source-layer": "x"},
                {"id": "f", "type": "fill", "source": "v", "source-layer": "districts",
                 "paint": {"fill-color": "#f00", "fill-pattern": "dots"},
                 "layout": {"visibility": "none"}}
            ]
        }))
        .unwrap();
        assert_eq!(s.layers.len(), 2);
        assert!(!s.layers[1].visible);
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
        assert!(s.warnings.iter().any(|w| w.contains("hillshade")));
        assert!(s.warnings.iter().any(|w| w.contains("fill-pattern")));

        for (style, needle) in [
            (json!({"version": 7, "layers": []}), "version"),
            (json!({"version": 8}), "layers"),
            (json!({"version": 8, "layers": [{"type": "fill"}]}), "id"),
            (
                json!({"version": 8, "sources": {}, "layers": [{"id": "a", "type": "fill", "source": "nope"}]}),
                "unknown source",
            ),
            (
                json!({"version": 8, "sources": {"v": {"type": "vector"}}, "layers": [
                    {"id": "a", "type": "line", "source": "v", "paint": {"line-width": ["sqrt", 2]}}]}),
                "sqrt",
            ),
        ] {
            let err = Style::parse(&style).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
    }
}
