//! MapLibre styles from `styles/`, served with absolute URLs for the host that asked.

use crate::app::{AppState, base_url};
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/styles", get(list))
        .route("/styles/{file}", get(one))
}

/// Makes every root-relative URL in a style (sources, tiles, glyphs, sprite) absolute.
#[must_use]
pub fn absolutize(mut style: Value, base: &str) -> Value {
    let fix = |v: &mut Value| {
        if let Some(s) = v.as_str()
            && s.starts_with('/')
        {
            *v = Value::String(format!("{base}{s}"));
        }
    };
    if let Some(sources) = style.get_mut("sources").and_then(Value::as_object_mut) {
        for source in sources.values_mut() {
            if let Some(url) = source.get_mut("url") {
                fix(url);
            }
            if let Some(tiles) = source.get_mut("tiles").and_then(Value::as_array_mut) {
                tiles.iter_mut().for_each(fix);
            }
        }
    }
    for key in ["glyphs", "sprite"] {
        if let Some(v) = style.get_mut(key) {
            fix(v);
        }
    }
    style
}

/// Drops from a style what the caller may not see: layers of a tile source's list it may
/// not read, sources left with none, and style layers drawing from those.
#[must_use]
pub fn narrow(mut style: Value, visible: &dyn Fn(&str) -> bool) -> Value {
    // `/tiles/a,b,c` (TileJSON) or `/tiles/a,b,c/{z}/{x}/{y}.mvt`
    let narrow_url = |url: &str| -> Option<String> {
        let rest = url.strip_prefix("/tiles/")?;
        let (list, tail) = rest.split_once('/').map_or((rest, ""), |(l, t)| (l, t));
        let kept: Vec<&str> = list.split(',').filter(|l| visible(l.trim())).collect();
        if kept.is_empty() {
            return Some(String::new());
        }
        let sep = if tail.is_empty() { "" } else { "/" };
        Some(format!("/tiles/{}{sep}{tail}", kept.join(",")))
    };
    let mut gone: Vec<String> = Vec::new();
    if let Some(sources) = style.get_mut("sources").and_then(Value::as_object_mut) {
        for (id, source) in sources.iter_mut() {
            let mut empty = false;
            if let Some(url) = source.get_mut("url")
                && let Some(n) = url.as_str().and_then(narrow_url)
            {
                empty |= n.is_empty();
                *url = Value::String(n);
            }
            if let Some(tiles) = source.get_mut("tiles").and_then(Value::as_array_mut) {
                for t in tiles.iter_mut() {
                    if let Some(n) = t.as_str().and_then(narrow_url) {
                        empty |= n.is_empty();
                        *t = Value::String(n);
                    }
                }
            }
            if empty {
                gone.push(id.clone());
            }
        }
        for id in &gone {
            sources.remove(id);
        }
    }
    if let Some(layers) = style.get_mut("layers").and_then(Value::as_array_mut) {
        layers.retain(|l| {
            let source_gone = l
                .get("source")
                .and_then(Value::as_str)
                .is_some_and(|s| gone.iter().any(|g| g == s));
            let hidden = l
                .get("source-layer")
                .and_then(Value::as_str)
                .is_some_and(|sl| !visible(sl));
            !source_gone && !hidden
        });
    }
    style
}

/// The MapLibre styles served.
#[utoipa::path(get, path = "/styles", tag = "styles",
    responses((status = 200, description = "style ids with their URLs")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    caller.listing();
    let base = base_url(&headers);
    let dir = &state.settings.styles_dir;
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "styles-missing",
            format!("styles folder {}: {e}", dir.display()),
        )
    })?;
    let mut styles = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "json") {
            let id = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let name = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| id.clone());
            styles
                .push(json!({ "id": id, "name": name, "url": format!("{base}/styles/{id}.json") }));
        }
    }
    styles.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({ "styles": styles })))
}

/// One MapLibre style, with tile URLs pointing at this server.
#[utoipa::path(get, path = "/styles/{file}", tag = "styles",
    params(("file" = String, Path, description = "style id, optionally with .json")),
    responses(
        (status = 200, description = "MapLibre style JSON"),
        (status = 404, description = "no such style", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    caller.listing();
    let id = file.strip_suffix(".json").unwrap_or(&file);
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Problem::bad_parameter(
            "style",
            format!("invalid style name {id:?}"),
        ));
    }
    let path = state.settings.styles_dir.join(format!("{id}.json"));
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Problem::not_found(format!("no style {id:?}")))?;
    let style: Value = serde_json::from_str(&text).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "style-broken",
            format!("style {id} is not valid JSON: {e}"),
        )
    })?;
    let visible: std::collections::HashSet<String> = state
        .city
        .visible_layers(caller.principal())
        .into_iter()
        .map(|(l, _)| l.meta.name.clone())
        .collect();
    let style = narrow(style, &|l| visible.contains(l));
    Ok(Json(absolutize(style, &base_url(&headers))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowed_style_keeps_only_what_may_be_seen() {
        let style = json!({
            "sources": {
                "base": {"type": "vector", "url": "/tiles/roads,buildings"},
                "secret": {"type": "vector", "tiles": ["/tiles/components/{z}/{x}/{y}.mvt"]},
            },
            "layers": [
                {"id": "bg", "type": "background"},
                {"id": "roads", "source": "base", "source-layer": "roads"},
                {"id": "buildings", "source": "base", "source-layer": "buildings"},
                {"id": "components", "source": "secret", "source-layer": "components"},
            ]
        });
        let out = narrow(style, &|l| l == "roads");
        assert_eq!(out["sources"]["base"]["url"], "/tiles/roads");
        assert!(out["sources"].get("secret").is_none());
        let ids: Vec<&str> = out["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["bg", "roads"]);
    }

    #[test]
    fn relative_urls_become_absolute_and_others_stay() {
        let style = json!({
            "sources": {
                "a": {"type": "vector", "url": "/tiles/districts"},
                "b": {"type": "vector", "tiles": ["/tiles/x/{z}/{x}/{y}.mvt", "https://other/{z}"]}
            }
        });
        let out = absolutize(style, "http://h:1");
        assert_eq!(out["sources"]["a"]["url"], "http://h:1/tiles/districts");
        assert_eq!(
            out["sources"]["b"]["tiles"][0],
            "http://h:1/tiles/x/{z}/{x}/{y}.mvt"
        );
        assert_eq!(out["sources"]["b"]["tiles"][1], "https://other/{z}");
    }
}
