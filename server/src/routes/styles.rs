//! MapLibre styles from `styles/`, served with absolute URLs for the host that asked.

use crate::app::{AppState, base_url};
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

/// The MapLibre styles served.
#[utoipa::path(get, path = "/styles", tag = "styles",
    responses((status = 200, description = "style ids with their URLs")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
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
    Path(file): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(absolutize(style, &base_url(&headers))))
}

#[cfg(test)]
mod tests {
    use super::*;

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
