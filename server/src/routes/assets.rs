//! What MapLibre styles load besides tiles, served the way Martin serves them: glyph PBFs
//! (`/fonts/{fontstack}/{start}-{end}.pbf`) made from the shipped font and any font in the
//! styles folder's `fonts/`, and sprites (`/sprites/{id}.json|.png`, `@2x`) made from the SVG
//! icons in the styles folder's `sprites/{id}/`. Neither carries city data.

use crate::app::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use citytwin_renderer::glyphs::{GlyphFont, glyph_range, parse_range};
use citytwin_renderer::sprites::{IconSet, Sheet, sheet};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

/// Fonts, glyph ranges and sprite sheets, made once and kept.
pub struct Assets {
    fonts: Vec<GlyphFont>,
    styles_dir: PathBuf,
    glyphs: moka::sync::Cache<(String, u32), Bytes>,
    sheets: Mutex<HashMap<(String, u8), Arc<Sheet>>>,
}

impl std::fmt::Debug for Assets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assets")
            .field("fonts", &self.fonts)
            .finish_non_exhaustive()
    }
}

impl Assets {
    /// The shipped font and every TrueType or OpenType font in `{styles_dir}/fonts/`.
    #[must_use]
    pub fn new(styles_dir: &FsPath) -> Self {
        let mut fonts = vec![GlyphFont::shipped()];
        if let Ok(dir) = std::fs::read_dir(styles_dir.join("fonts")) {
            let mut paths: Vec<PathBuf> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let is_font = path
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "ttf" | "otf"));
                if !is_font {
                    continue;
                }
                match std::fs::read(&path).ok().and_then(GlyphFont::new) {
                    Some(f) if !fonts.iter().any(|g| g.name == f.name) => {
                        tracing::info!(font = %f.name, path = %path.display(), "font for glyphs");
                        fonts.push(f);
                    }
                    Some(_) => {}
                    None => tracing::warn!(path = %path.display(), "not a font; skipped"),
                }
            }
        }
        Self {
            fonts,
            styles_dir: styles_dir.to_owned(),
            // 256 glyphs of CJK are about 150 KiB: some hundreds of ranges
            glyphs: moka::sync::Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|k: &(String, u32), v: &Bytes| {
                    u32::try_from(k.0.len() + v.len()).unwrap_or(u32::MAX)
                })
                .build(),
            sheets: Mutex::new(HashMap::new()),
        }
    }

    async fn sheet(&self, id: &str, ratio: u8) -> Result<Arc<Sheet>, Problem> {
        let key = (id.to_owned(), ratio);
        if let Some(s) = self.sheets.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(s);
        }
        let icons = icon_set(&self.styles_dir, id)?.composed().map_err(|e| {
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "bad-sprite",
                e.to_string(),
            )
        })?;
        let made = tokio::task::spawn_blocking(move || sheet(&icons, ratio))
            .await
            .map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "bad-sprite",
                    e.to_string(),
                )
            })?
            .map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "bad-sprite",
                    e.to_string(),
                )
            })?;
        let made = Arc::new(made);
        if let Ok(mut m) = self.sheets.lock() {
            m.insert(key, Arc::clone(&made));
        }
        Ok(made)
    }
}

/// The icon set `{styles_dir}/sprites/{id}/`: its groups' SVG glyphs and variants.
pub fn icon_set(styles_dir: &FsPath, id: &str) -> Result<IconSet, Problem> {
    {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Problem::not_found(format!("no sprite {id:?}")));
        }
        let dir = styles_dir.join("sprites").join(id);
        let groups =
            std::fs::read_dir(&dir).map_err(|_| Problem::not_found(format!("no sprite {id:?}")))?;
        let mut set = IconSet::default();
        if let Ok(text) = std::fs::read_to_string(dir.join("variants.json")) {
            set.variants = serde_json::from_str(&text).map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "bad-sprite",
                    format!("sprites/{id}/variants.json: {e}"),
                )
            })?;
        }
        for g in groups.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
            let group = g.file_name().to_string_lossy().into_owned();
            let mut icons = BTreeMap::new();
            for f in std::fs::read_dir(g.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
            {
                let path = f.path();
                if path.extension().is_some_and(|x| x == "svg")
                    && let (Some(name), Ok(svg)) = (
                        path.file_stem().map(|s| s.to_string_lossy().into_owned()),
                        std::fs::read_to_string(&path),
                    )
                {
                    icons.insert(name, svg);
                }
            }
            set.glyphs.insert(group, icons);
        }
        Ok(set)
    }
}

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fonts", get(fonts))
        .route("/fonts/{fontstack}/{range}", get(glyphs))
        .route("/sprites/{file}", get(sprite))
}

fn cached(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

/// The fonts glyphs are made from: their names for `text-font`.
#[utoipa::path(get, path = "/fonts", tag = "styles",
    responses((status = 200, description = "`fonts`: each font's `name` (family and style) and `family`")))]
pub(crate) async fn fonts(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    caller.public();
    let list: Vec<Value> = state
        .assets
        .fonts
        .iter()
        .map(|f| json!({ "name": f.name, "family": f.family }))
        .collect();
    Json(json!({ "fonts": list }))
}

/// 256 glyphs of a font stack as signed distance fields (Mapbox glyph PBF): each code point
/// from the first font of the stack that has it; fonts not known are passed over.
#[utoipa::path(get, path = "/fonts/{fontstack}/{range}", tag = "styles",
    params(
        ("fontstack" = String, Path, description = "font names, comma-separated (`WenQuanYi Micro Hei Regular`)"),
        ("range" = String, Path, description = "`{start}-{end}.pbf`: 256 code points from a multiple of 256, e.g. 0-255.pbf"),
    ),
    responses(
        (status = 200, description = "the glyphs", content_type = "application/x-protobuf"),
        (status = 400, description = "a bad range", content_type = "application/problem+json"),
        (status = 404, description = "no font of the stack is known", content_type = "application/problem+json"),
    ))]
pub(crate) async fn glyphs(
    State(state): State<AppState>,
    caller: Caller,
    Path((fontstack, range)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.public();
    let (start, end) = range
        .strip_suffix(".pbf")
        .and_then(parse_range)
        .ok_or_else(|| {
            Problem::bad_parameter(
                "range",
                format!("{range:?}: 256 code points from a multiple of 256, as 0-255.pbf"),
            )
        })?;
    let assets = Arc::clone(&state.assets);
    let known: Vec<usize> = fontstack
        .split(',')
        .filter_map(|entry| assets.fonts.iter().position(|f| f.answers_to(entry)))
        .collect();
    if known.is_empty() {
        let names: Vec<&str> = assets.fonts.iter().map(|f| f.name.as_str()).collect();
        return Err(Problem::not_found(format!(
            "no font of {fontstack:?} is known; fonts: {}",
            names.join(", ")
        )));
    }
    let key = (
        known
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        start,
    );
    let body = if let Some(b) = assets.glyphs.get(&key) {
        b
    } else {
        let a = Arc::clone(&assets);
        let idx = known.clone();
        let b = tokio::task::spawn_blocking(move || {
            let stack: Vec<&GlyphFont> = idx.iter().map(|i| &a.fonts[*i]).collect();
            Bytes::from(glyph_range(&stack, start, end))
        })
        .await
        .map_err(|e| {
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "glyphs",
                e.to_string(),
            )
        })?;
        assets.glyphs.insert(key, b.clone());
        b
    };
    Ok(cached(body.into_response(), "application/x-protobuf"))
}

/// A sprite's index (`{id}.json`, `{id}@2x.json`) or sheet (`{id}.png`, `{id}@2x.png`).
#[utoipa::path(get, path = "/sprites/{file}", tag = "styles",
    params(("file" = String, Path, description = "citytwin.json, citytwin.png, citytwin@2x.json or citytwin@2x.png")),
    responses(
        (status = 200, description = "the index (JSON) or the sheet (PNG)"),
        (status = 404, description = "no such sprite", content_type = "application/problem+json"),
    ))]
pub(crate) async fn sprite(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    caller.public();
    let (stem, png) = if let Some(s) = file.strip_suffix(".png") {
        (s, true)
    } else if let Some(s) = file.strip_suffix(".json") {
        (s, false)
    } else {
        return Err(Problem::not_found(format!(
            "no sprite file {file:?}: {{id}}.json, {{id}}.png, {{id}}@2x.json or {{id}}@2x.png"
        )));
    };
    let (id, ratio) = stem.strip_suffix("@2x").map_or((stem, 1), |s| (s, 2));
    let sheet = state.assets.sheet(id, ratio).await?;
    Ok(if png {
        cached(Bytes::from(sheet.png.clone()).into_response(), "image/png")
    } else {
        cached(
            Bytes::from(sheet.index.clone()).into_response(),
            "application/json",
        )
    })
}
