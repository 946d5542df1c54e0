//! Server-rendered images: static maps from a style, dashboard frames, their MJPEG stream and
//! the full-screen page a video wall opens.

use crate::app::AppState;
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::render::{
    CitySource, check_id, check_layout, load_layout, load_style, panel_data, read_layout,
};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use citytwin_city::access::Principal;
use citytwin_city::live::ts;
use citytwin_renderer::dashboard::{Look, PanelSpec};
use citytwin_renderer::{BoardInput, Frame, Layout, MAX_PITCH, Style};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/render/{file}", get(static_map))
        .route("/dashboards", get(list))
        .route("/dashboards/{file}", get(dashboard))
        .route("/dashboards/{id}/stream", get(stream))
        .route("/screen/{id}", get(screen))
}

/// Frame side the server accepts (the renderer may allow less on small adapters).
const MAX_SIDE: u32 = 8192;

fn side(params: &Params, name: &str, default: u32) -> ApiResult<u32> {
    Ok(params.count(name, default as usize, MAX_SIDE as usize)? as u32)
}

fn png_response(frame: &Frame) -> ApiResult<Response> {
    let png = frame.png().map_err(crate::render::problem)?;
    let mut resp = Bytes::from(png).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if !frame.warnings.is_empty() {
        // header values must be visible ASCII: other characters become '?'
        let text: String = frame
            .warnings
            .join(" | ")
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(2000)
            .collect();
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.insert("x-render-warnings", v);
        }
        tracing::warn!(warnings = ?frame.warnings, "rendered with warnings");
    }
    Ok(resp)
}

/// A static map of a style.
#[utoipa::path(get, path = "/render/{file}", tag = "render",
    params(
        ("file" = String, Path, description = "style id with .png, e.g. nanjing.png"),
        ("bbox" = Option<String>, Query, description = "west,south,east,north to fit (WGS84); or center and zoom"),
        ("center" = Option<String>, Query, description = "lon,lat"),
        ("zoom" = Option<f64>, Query, description = "zoom with center (512-pixel tiles, 0–22)"),
        ("width" = Option<u32>, Query, minimum = 1, maximum = 8192, description = "CSS pixels, default 800"),
        ("height" = Option<u32>, Query, minimum = 1, maximum = 8192, description = "CSS pixels, default 600"),
        ("scale" = Option<f64>, Query, description = "physical pixels per CSS pixel, 1–4, default 1"),
        ("pitch" = Option<f64>, Query, description = "degrees from straight down, 0–60"),
        ("bearing" = Option<f64>, Query, description = "degrees clockwise from north"),
        ("layers" = Option<String>, Query, description = "only these style layers, comma-separated"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) layers with versions are drawn as of (default: their current versions)"),
    ),
    responses(
        (status = 200, description = "PNG; warnings about what the renderer skipped in X-Render-Warnings", content_type = "image/png"),
        (status = 400, description = "bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such style", content_type = "application/problem+json"),
        (status = 422, description = "the style cannot be drawn", content_type = "application/problem+json"),
        (status = 503, description = "no graphics adapter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn static_map(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.listing();
    caller.expensive(&state)?;
    let Some(id) = file.strip_suffix(".png") else {
        return Err(Problem::not_found(format!(
            "no image {file:?}: static maps are /render/{{style}}.png"
        )));
    };
    params.only(&[
        "bbox", "center", "zoom", "width", "height", "scale", "pitch", "bearing", "layers", "at",
    ])?;
    let width = side(&params, "width", 800)?;
    let height = side(&params, "height", 600)?;
    let scale = params.opt_f64("scale")?.unwrap_or(1.0);
    if !(1.0..=4.0).contains(&scale) {
        return Err(Problem::bad_parameter("scale", "scale must be 1 to 4"));
    }
    if f64::from(width.max(height)) * scale > f64::from(MAX_SIDE) {
        return Err(Problem::bad_parameter(
            "scale",
            format!("width × scale and height × scale must stay within {MAX_SIDE} pixels"),
        ));
    }
    let pitch = params.opt_f64("pitch")?.unwrap_or(0.0);
    if !(0.0..=MAX_PITCH).contains(&pitch) {
        return Err(Problem::bad_parameter(
            "pitch",
            format!("pitch must be 0 to {MAX_PITCH}"),
        ));
    }
    let bearing = params.opt_f64("bearing")?.unwrap_or(0.0);
    let look = match (params.bbox("bbox")?, params.text("center")) {
        (Some(_), Some(_)) => {
            return Err(Problem::bad_parameter(
                "bbox",
                "give bbox or center and zoom, not both",
            ));
        }
        (Some(b), None) => {
            let lon_ok = |v: f64| (-180.0..=180.0).contains(&v);
            let lat_ok = |v: f64| (-85.0..=85.0).contains(&v);
            if !(lon_ok(b[0])
                && lon_ok(b[2])
                && lat_ok(b[1])
                && lat_ok(b[3])
                && b[0] < b[2]
                && b[1] < b[3])
            {
                return Err(Problem::bad_parameter(
                    "bbox",
                    "bbox must be west,south,east,north with west < east and south < north, within ±180/±85",
                ));
            }
            Look::Bbox(b)
        }
        (None, Some(c)) => {
            let parts: Vec<f64> = c
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .filter(|v: &f64| v.is_finite())
                .collect();
            let [lon, lat] = parts[..] else {
                return Err(Problem::bad_parameter(
                    "center",
                    format!("center {c:?} is not lon,lat"),
                ));
            };
            if !(-180.0..=180.0).contains(&lon) || !(-85.0..=85.0).contains(&lat) {
                return Err(Problem::bad_parameter(
                    "center",
                    "center is outside ±180/±85",
                ));
            }
            let zoom = params.f64("zoom")?;
            if !(0.0..=22.0).contains(&zoom) {
                return Err(Problem::bad_parameter("zoom", "zoom must be 0 to 22"));
            }
            Look::Center((lon, lat), zoom)
        }
        (None, None) => {
            return Err(Problem::bad_parameter(
                "bbox",
                "give bbox=west,south,east,north or center=lon,lat&zoom=z",
            ));
        }
    };
    let mut style = load_style(&state.settings.styles_dir, id)?;
    if let Some(layers) = params.text("layers") {
        let ids: Vec<String> = layers.split(',').map(|s| s.trim().to_owned()).collect();
        style = style
            .only(&ids)
            .map_err(|e| Problem::bad_parameter("layers", e.to_string()))?;
    }
    let source = CitySource::on(&state.city, caller.principal(), caller.cx.at);
    for plan in source.plans() {
        caller.served(&state, plan, None);
    }
    let credit = source.credit([&style]);
    let frame = state
        .render
        .run(move |r| {
            r.render_map(
                &style,
                &source,
                look,
                bearing,
                pitch,
                (width, height, scale),
                &credit,
            )
        })
        .await?;
    png_response(&frame)
}

/// The dashboards in `styles/dashboards/`.
#[utoipa::path(get, path = "/dashboards", tag = "render",
    responses((status = 200, description = "dashboard ids with their image, stream and screen URLs")))]
pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.public();
    let dir = state.settings.styles_dir.join("dashboards");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let id = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if check_id("dashboard", &id).is_err() {
            continue;
        }
        let name = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| Layout::parse(&t).ok())
            .map_or_else(|| id.clone(), |l| l.name);
        out.push(json!({
            "id": id,
            "name": name,
            "layout": format!("/dashboards/{id}.json"),
            "image": format!("/dashboards/{id}.png"),
            "stream": format!("/dashboards/{id}/stream"),
            "screen": format!("/screen/{id}"),
        }));
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({ "dashboards": out })))
}

/// Renders a dashboard frame for a principal; with `caller`, the layers drawn are recorded as
/// its reads.
async fn render_frame(
    state: &AppState,
    who: &Principal,
    caller: Option<&Caller>,
    layout: Arc<Layout>,
    styles: Arc<HashMap<String, Style>>,
    (width, height): (u32, u32),
) -> ApiResult<Frame> {
    let now = ts::now();
    let data = panel_data(&state.city, who, &layout, now).await;
    let source = CitySource::on(&state.city, who, caller.and_then(|c| c.cx.at));
    if let Some(caller) = caller {
        for plan in source.plans() {
            caller.served(state, plan, None);
        }
    }
    let clock = citytwin_city::clock::clock_line(now);
    // the layers the map panels draw: each panel's style, narrowed to the panel's layers
    let drawn: Vec<Style> = layout
        .panels
        .iter()
        .filter_map(|p| match p {
            PanelSpec::Map { style, layers, .. } => {
                let st = styles.get(style)?.clone();
                match layers {
                    Some(ids) => st.only(ids).ok(),
                    None => Some(st),
                }
            }
            _ => None,
        })
        .collect();
    let credit = source.credit(&drawn);
    state
        .render
        .run(move |r| {
            let input = BoardInput {
                now: clock,
                data,
                styles: &styles,
                source: &source,
                credit,
            };
            r.render_dashboard(&layout, &input, width, height)
        })
        .await
}

/// One dashboard frame (`{id}.png`) or its layout (`{id}.json`).
#[utoipa::path(get, path = "/dashboards/{file}", tag = "render",
    params(
        ("file" = String, Path, description = "dashboard id with .png (a frame) or .json (the layout)"),
        ("width" = Option<u32>, Query, minimum = 1, maximum = 8192, description = "pixels, default 1920"),
        ("height" = Option<u32>, Query, minimum = 1, maximum = 8192, description = "pixels, default 1080"),
        ("at" = Option<String>, Query, format = Date, description = "the date (YYYY-MM-DD) the map panels draw layers with versions as of (default: their current versions)"),
    ),
    responses(
        (status = 200, description = "PNG frame or layout JSON", content_type = "image/png"),
        (status = 400, description = "bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such dashboard", content_type = "application/problem+json"),
        (status = 422, description = "the layout or one of its styles is wrong", content_type = "application/problem+json"),
        (status = 503, description = "no graphics adapter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.listing();
    if let Some(id) = file.strip_suffix(".json") {
        // one layout at every size and date: the frame's parameters are taken and change nothing
        params.only(&["width", "height", "at"])?;
        let text = read_layout(&state.settings.styles_dir, id)?;
        check_layout(&state.settings.styles_dir, id, &text)?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "dashboard-invalid",
                e.to_string(),
            )
        })?;
        return Ok(Json(v).into_response());
    }
    let Some(id) = file.strip_suffix(".png") else {
        return Err(Problem::not_found(format!(
            "no dashboard resource {file:?}: use {{id}}.png, {{id}}.json or {{id}}/stream"
        )));
    };
    params.only(&["width", "height", "at"])?;
    let size = (
        side(&params, "width", 1920)?,
        side(&params, "height", 1080)?,
    );
    let (layout, styles) = load_layout(&state.settings.styles_dir, id)?;
    let frame = render_frame(
        &state,
        caller.principal(),
        Some(&caller),
        Arc::new(layout),
        Arc::new(styles),
        size,
    )
    .await?;
    png_response(&frame)
}

/// What a stream's last frame showed: the live sequence, the layers' versions and the
/// viewer's plans, the minute.
fn stream_key(state: &AppState, who: &Principal) -> (u64, u64, i64) {
    let source = CitySource::of(&state.city, who);
    (
        state.city.live_seq(),
        source.version() ^ source.plan_key().rotate_left(17),
        ts::now() / 60_000,
    )
}

fn part(jpeg: &Bytes) -> Bytes {
    let head = format!(
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// A stream frame: which board, at what size and quality, showing which data.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct FrameKey {
    /// dashboard id
    pub id: Arc<str>,
    /// width, height
    pub size: (u32, u32),
    /// JPEG quality
    pub quality: u8,
    /// live sequence, layer versions and the viewer's plans, minute
    pub data: (u64, u64, i64),
    /// the viewer's principal kind and department: frames are shared only between viewers
    /// who see the same
    pub viewer: (String, Option<String>, Option<String>),
}

struct Streaming {
    id: Arc<str>,
    who: Arc<Principal>,
    state: AppState,
    layout: Arc<Layout>,
    styles: Arc<HashMap<String, Style>>,
    size: (u32, u32),
    quality: u8,
    min_gap: Duration,
    feed: tokio::sync::broadcast::Receiver<Arc<citytwin_city::live::Change>>,
    layers: tokio::sync::broadcast::Receiver<String>,
    stop: crate::auth::Stop,
    /// its place among the open streams, freed when the stream ends
    _permit: crate::streams::StreamPermit,
    key: (u64, u64, i64),
    last: Bytes,
    rendered: Instant,
    first: bool,
}

/// Who sees the same frames: the principal, as far as what it may see goes.
fn viewer(who: &Principal) -> (String, Option<String>, Option<String>) {
    (
        if who.is_public() {
            "public".into()
        } else {
            who.id.clone()
        },
        who.department.clone(),
        who.territory.clone(),
    )
}

/// Keep-alive: the last frame again after this long without a change, for players that give
/// up on a silent stream.
const KEEPALIVE: Duration = Duration::from_secs(10);

impl Streaming {
    /// The next part: a new frame once the data changed (at most `fps` a second), or the last
    /// frame again as a keep-alive. `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        if self.first {
            self.first = false;
            return Some(part(&self.last));
        }
        loop {
            let to_minute =
                Duration::from_millis((60_000 - ts::now().rem_euclid(60_000)) as u64 + 5);
            let woke_by_keepalive = tokio::select! {
                r = self.feed.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) { return None; }
                    false
                }
                r = self.layers.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) { return None; }
                    false
                }
                () = tokio::time::sleep(to_minute) => false,
                () = tokio::time::sleep(KEEPALIVE) => true,
                () = self.stop.wait() => return None,
            };
            let since = self.rendered.elapsed();
            if since < self.min_gap {
                tokio::time::sleep(self.min_gap.checked_sub(since).unwrap_or_default()).await;
            }
            let key = stream_key(&self.state, &self.who);
            if key == self.key {
                if woke_by_keepalive {
                    return Some(part(&self.last));
                }
                continue;
            }
            // streams of the same board, size and quality share frames: one render per change
            let cache_key = FrameKey {
                id: Arc::clone(&self.id),
                size: self.size,
                quality: self.quality,
                data: key,
                viewer: viewer(&self.who),
            };
            if let Some(jpeg) = self.state.frames.get(&cache_key) {
                self.key = key;
                self.last = jpeg;
                return Some(part(&self.last));
            }
            let frame = render_frame(
                &self.state,
                &self.who,
                None,
                Arc::clone(&self.layout),
                Arc::clone(&self.styles),
                self.size,
            )
            .await;
            self.rendered = Instant::now();
            match frame.and_then(|f| f.jpeg(self.quality).map_err(crate::render::problem)) {
                Ok(jpeg) => {
                    self.key = key;
                    self.last = Bytes::from(jpeg);
                    self.state.frames.insert(cache_key, self.last.clone());
                    self.state.metrics.frames.inc();
                    return Some(part(&self.last));
                }
                // a full render queue passes: the screen keeps its frame and tries again
                Err(p) if p.kind.ends_with("/render-queue-full") => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(p) => {
                    tracing::warn!(detail = %p.detail, "dashboard stream frame failed; stream ends");
                    return None;
                }
            }
        }
    }
}

/// A continuously refreshed dashboard as MJPEG (`multipart/x-mixed-replace`), shown by a plain
/// `<img>` or a video-wall player; a new frame only when the data changed.
#[utoipa::path(get, path = "/dashboards/{id}/stream", tag = "render",
    params(
        ("id" = String, Path, description = "dashboard id"),
        ("width" = Option<u32>, Query, minimum = 1, maximum = 8192, description = "pixels, default 1920"),
        ("height" = Option<u32>, Query, minimum = 1, maximum = 8192, description = "pixels, default 1080"),
        ("fps" = Option<f64>, Query, description = "most frames per second, 0.1–10, default 2"),
        ("quality" = Option<u32>, Query, description = "JPEG quality 1–100, default 80"),
    ),
    responses(
        (status = 200, description = "an endless multipart/x-mixed-replace stream of JPEG frames", content_type = "multipart/x-mixed-replace"),
        (status = 400, description = "bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such dashboard", content_type = "application/problem+json"),
    ))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.listing();
    let who = Arc::clone(&caller.cx.principal);
    params.only(&["width", "height", "fps", "quality", "ticket"])?;
    let size = (
        side(&params, "width", 1920)?,
        side(&params, "height", 1080)?,
    );
    let fps = params.opt_f64("fps")?.unwrap_or(2.0);
    if !(0.1..=10.0).contains(&fps) {
        return Err(Problem::bad_parameter("fps", "fps must be 0.1 to 10"));
    }
    let quality = params.count("quality", 80, 100)? as u8;
    let (layout, styles) = load_layout(&state.settings.styles_dir, &id)?;
    let permit = state.streams.open(&who.id)?;
    let (layout, styles) = (Arc::new(layout), Arc::new(styles));
    // subscribe before the first frame so no change between them is missed
    let feed = state.city.feed();
    let layers = state.city.subscribe();
    let key = stream_key(&state, &who);
    let id: Arc<str> = Arc::from(id.as_str());
    let first_key = FrameKey {
        id: Arc::clone(&id),
        size,
        quality,
        data: key,
        viewer: viewer(&who),
    };
    let jpeg = match state.frames.get(&first_key) {
        Some(jpeg) => jpeg,
        None => {
            let first = render_frame(
                &state,
                &who,
                None,
                Arc::clone(&layout),
                Arc::clone(&styles),
                size,
            )
            .await?;
            let jpeg = Bytes::from(first.jpeg(quality).map_err(crate::render::problem)?);
            state.metrics.frames.inc();
            state.frames.insert(first_key, jpeg.clone());
            jpeg
        }
    };
    for plan in CitySource::of(&state.city, &who).plans() {
        caller.served(&state, plan, None);
    }
    let stop = crate::auth::Stop::of(&state, &who);
    let s = Streaming {
        id,
        stop,
        _permit: permit,
        who,
        state,
        layout,
        styles,
        size,
        quality,
        min_gap: Duration::from_secs_f64(1.0 / fps),
        feed,
        layers,
        key,
        last: jpeg,
        rendered: Instant::now(),
        first: true,
    };
    let body = futures_util::stream::unfold(s, |mut s| async move {
        s.next()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), s))
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/x-mixed-replace; boundary=frame"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The dashboard full-screen: one `<img>` on the stream, sized to the screen's pixels.
#[utoipa::path(get, path = "/screen/{id}", tag = "render",
    params(("id" = String, Path, description = "dashboard id")),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html"),
        (status = 404, description = "no such dashboard", content_type = "application/problem+json"),
    ))]
pub(crate) async fn screen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.public();
    let (layout, _) = load_layout(&state.settings.styles_dir, &id)?;
    let name: String = layout
        .name
        .chars()
        .map(|c| match c {
            '<' | '>' | '&' | '"' | '\'' => ' ',
            c => c,
        })
        .collect();
    let bg: String = layout
        .background
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "#(),. %".contains(*c))
        .collect();
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{name}</title>
<style>
html, body {{ margin: 0; height: 100%; background: {bg}; overflow: hidden; cursor: none; }}
img {{ display: block; width: 100vw; height: 100vh; object-fit: contain; }}
#account {{ position: fixed; right: 8px; bottom: 8px; opacity: 0.25; font: 12px sans-serif; color: #ccd; cursor: default; }}
#account:hover {{ opacity: 1; }}
#auth {{ display: flex; gap: 6px; align-items: center; }}
</style>
</head>
<body>
<img id="screen" alt="{name}">
<div id="account"></div>
<script src="/vendor/oidc-client-ts/oidc-client-ts.min.js"></script>
<script type="module">
import {{ signInButton, startAuth, ticket }} from '/web/auth.js';
// signed in, the stream shows what the user may see, opened with a one-use ticket (an <img>
// cannot send headers); signed out, the public's view
const auth = await startAuth();
signInButton(auth, document.getElementById('account'));
// the stream at the screen's own pixels, so the wall shows it 1:1
const ratio = window.devicePixelRatio || 1;
let w = Math.max(320, Math.min({MAX_SIDE}, Math.round(innerWidth * ratio)));
let h = Math.max(180, Math.min({MAX_SIDE}, Math.round(innerHeight * ratio)));
// at most 8K worth of pixels per frame: larger walls get a smaller frame, scaled up
const fit = Math.min(1, Math.sqrt(7680 * 4320 / (w * h)));
w = Math.floor(w * fit);
h = Math.floor(h * fit);
const img = document.getElementById('screen');
const url = `/dashboards/{id}/stream?width=${{w}}&height=${{h}}`;
const open = async () => {{
  const t = await ticket(auth);
  img.removeAttribute('src');
  img.src = t ? `${{url}}&ticket=${{encodeURIComponent(t)}}` : url;
}};
// a dropped stream (server restart, network, a revoked sign-in) reopens after a pause
img.addEventListener('error', () => setTimeout(open, 3000));
open();
</script>
</body>
</html>
"#
    ))
    .into_response())
}
