//! Wiring between the twin and the renderer: the twin's layers as a map source, dashboard
//! panels filled from the twin's board queries, and one renderer shared by all requests.

use crate::problem::Problem;
use axum::http::StatusCode;
use citytwin_city::City;
use citytwin_city::access::{Principal, ReadPlan};
use citytwin_city::index::{IndexedFeature, LayerIndex};
use citytwin_city::layer::LayerMeta;
use citytwin_city::live::Millis;
use citytwin_city::live::board::{BoardQuery, BoardValue, check_query};
use citytwin_renderer::dashboard::PanelSpec;
use citytwin_renderer::expr::Props;
use citytwin_renderer::sprites::Icons;
use citytwin_renderer::{
    Error as RenderError, Layout, MapSource, Options, PanelData, Renderer, Style,
};
use citytwin_tiles::Value;
use geo::{Geometry, Rect};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The twin's layers a principal may see, as they stand when the source is taken.
pub struct CitySource {
    layers: HashMap<String, (Arc<LayerIndex>, ReadPlan)>,
}

impl CitySource {
    /// A consistent snapshot of every layer of the twin the principal may see (live layers
    /// brought up to date), each narrowed to its read plan.
    #[must_use]
    pub fn of(city: &City, who: &Principal) -> Self {
        Self::on(city, who, None)
    }

    /// The same, base layers with versions as they were on a day.
    #[must_use]
    pub fn on(city: &City, who: &Principal, day: Option<citytwin_city::versions::Day>) -> Self {
        Self {
            layers: city
                .visible_layers_on(who, day)
                .into_iter()
                .map(|(l, plan)| (l.meta.name.clone(), (l, plan)))
                .collect(),
        }
    }

    /// Sum of the layers' versions: changes whenever any layer does.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.layers.values().map(|(l, _)| l.version).sum()
    }

    /// What distinguishes this source's frames from another principal's: the layers seen
    /// and their plans.
    #[must_use]
    pub fn plan_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut names: Vec<(&String, u64)> =
            self.layers.iter().map(|(n, (_, p))| (n, p.key())).collect();
        names.sort();
        names.hash(&mut h);
        h.finish()
    }

    /// The provenance line of the layers these styles draw (Data art. 27): the layers this
    /// source holds that a style layer reads, in the order the styles draw them.
    #[must_use]
    pub fn credit<'a>(
        &self,
        styles: impl IntoIterator<Item = &'a citytwin_renderer::Style>,
    ) -> String {
        let mut drawn: Vec<(&LayerMeta, citytwin_city::access::Form)> = Vec::new();
        for style in styles {
            for l in &style.layers {
                if let Some((index, plan)) =
                    l.source_layer.as_ref().and_then(|n| self.layers.get(n))
                    && !drawn.iter().any(|(m, _)| m.name == index.meta.name)
                {
                    drawn.push((&index.meta, plan.form));
                }
            }
        }
        citytwin_city::catalog::provenance(&drawn)
    }

    /// The read plans of the layers drawn, for the audit log.
    pub fn plans(&self) -> impl Iterator<Item = &ReadPlan> {
        self.layers.values().map(|(_, p)| p)
    }
}

struct FeatureProps<'a> {
    meta: &'a LayerMeta,
    feature: &'a IndexedFeature,
}

impl Props for FeatureProps<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.meta
            .field_index(key)
            .and_then(|i| self.feature.values.get(i))
    }
    fn id(&self) -> Option<i64> {
        Some(self.feature.id)
    }
    fn geometry_type(&self) -> &'static str {
        match self.feature.geometry {
            Geometry::Point(_) | Geometry::MultiPoint(_) => "Point",
            Geometry::LineString(_) | Geometry::MultiLineString(_) | Geometry::Line(_) => {
                "LineString"
            }
            _ => "Polygon",
        }
    }
}

impl MapSource for CitySource {
    fn has_layer(&self, layer: &str) -> bool {
        self.layers.get(layer).is_some_and(|(l, _)| l.resident)
    }

    fn features(
        &self,
        layer: &str,
        area: Rect<f64>,
        zoom: f64,
        each: &mut dyn FnMut(&Geometry<f64>, &dyn Props),
    ) {
        // every feature of the index, at full resolution: a frame has no tile byte budget to
        // keep, so the layer's tile minimum zoom does not apply; the style's zoom range and
        // the renderer's sub-pixel culling decide what is drawn
        let _ = zoom;
        let Some((index, plan)) = self.layers.get(layer) else {
            return;
        };
        for f in index.query(area).filter(|f| plan.shows(&f.values)) {
            each(
                &f.geometry,
                &FeatureProps {
                    meta: &index.meta,
                    feature: f,
                },
            );
        }
    }
}

/// Renders queued or running at once; past that a request is answered 503 with Retry-After.
pub const RENDER_QUEUE: usize = 32;

/// One renderer for the process, opened on first use; requests take turns on it. Waiting
/// requests wait without a thread (only the one rendering holds a blocking thread), and at
/// most [`RENDER_QUEUE`] wait: a burst of dashboard requests cannot take the blocking threads
/// tiles and queries run on.
pub struct RenderService {
    options: Options,
    renderer: Mutex<Option<Renderer>>,
    /// the turn on the renderer
    turn: tokio::sync::Semaphore,
    /// places in the queue
    queue: tokio::sync::Semaphore,
    bound: usize,
}

impl std::fmt::Debug for RenderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderService").finish_non_exhaustive()
    }
}

impl RenderService {
    /// A service that opens its renderer with `options` when first asked.
    #[must_use]
    pub fn new(options: Options) -> Self {
        Self::with_queue(options, RENDER_QUEUE)
    }

    /// A service that takes at most `queue` renders at once, waiting or running.
    #[must_use]
    pub fn with_queue(options: Options, queue: usize) -> Self {
        Self {
            options,
            renderer: Mutex::new(None),
            turn: tokio::sync::Semaphore::new(1),
            queue: tokio::sync::Semaphore::new(queue),
            bound: queue,
        }
    }

    /// Renders waiting or running now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.bound - self.queue.available_permits()
    }

    /// Runs `f` on the renderer on a blocking thread, opening the renderer first if needed.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Renderer) -> Result<T, RenderError> + Send + 'static,
    ) -> Result<T, Problem> {
        let Ok(_place) = self.queue.try_acquire() else {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "render-queue-full",
                format!(
                    "{} renders are queued already; try again shortly",
                    self.bound
                ),
            );
            p.retry_after = std::num::NonZeroU32::new(2);
            return Err(p);
        };
        let _turn = self.turn.acquire().await.map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "render-failed",
                "the renderer is shutting down",
            )
        })?;
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut guard = me
                .renderer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.is_none() {
                *guard = Some(Renderer::new(me.options).map_err(problem)?);
            }
            let r = guard.as_mut().expect("renderer opened above");
            let out = f(r);
            if matches!(out, Err(RenderError::Gpu(_))) {
                // a lost or wedged device: open a fresh one for the next request
                tracing::warn!("renderer failed on the GPU; it reopens on the next request");
                *guard = None;
            }
            out.map_err(problem)
        })
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "render-failed",
                format!("render task: {e}"),
            )
        })?
    }
}

/// A renderer error as the problem a client gets.
#[must_use]
#[allow(clippy::needless_pass_by_value)] // used as `map_err(problem)`
pub fn problem(e: RenderError) -> Problem {
    match e {
        RenderError::NoAdapter(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "renderer-unavailable",
            e.to_string(),
        ),
        RenderError::Style(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "style-unsupported",
            e.to_string(),
        ),
        RenderError::Layout(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "dashboard-invalid",
            e.to_string(),
        ),
        RenderError::Size(_) => Problem::bad_parameter("width", e.to_string()),
        _ => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "render-failed",
            e.to_string(),
        ),
    }
}

/// Checks a style or dashboard id (a file name without extension).
pub fn check_id(what: &str, id: &str) -> Result<(), Problem> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Problem::bad_parameter(
            what,
            format!("invalid {what} name {id:?}"),
        ));
    }
    Ok(())
}

/// Reads and parses `styles/{id}.json` for the renderer.
pub fn load_style(dir: &Path, id: &str) -> Result<Style, Problem> {
    check_id("style", id)?;
    let text = std::fs::read_to_string(dir.join(format!("{id}.json")))
        .map_err(|_| Problem::not_found(format!("no style {id:?}")))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "style-unsupported",
            format!("style {id} is not valid JSON: {e}"),
        )
    })?;
    let mut style = Style::parse(&json).map_err(problem)?;
    style.icons = style_icons(dir, &json);
    Ok(style)
}

/// The icons of a style's sprite (`"sprite": "/sprites/{id}"`), composed once per process.
fn style_icons(dir: &Path, json: &serde_json::Value) -> Option<Arc<Icons>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<Icons>>>> =
        std::sync::OnceLock::new();
    let id = json.get("sprite")?.as_str()?.strip_prefix("/sprites/")?;
    let key = dir.join("sprites").join(id);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().ok()?.get(&key) {
        return Some(Arc::clone(hit));
    }
    let svgs = crate::routes::assets::icon_set(dir, id)
        .ok()?
        .composed()
        .ok()?;
    let icons = Arc::new(Icons::new(svgs));
    cache.lock().ok()?.insert(key, Arc::clone(&icons));
    Some(icons)
}

/// Reads and checks `styles/dashboards/{id}.json`: the layout, its queries and its styles.
pub fn load_layout(styles: &Path, id: &str) -> Result<(Layout, HashMap<String, Style>), Problem> {
    let text = read_layout(styles, id)?;
    check_layout(styles, id, &text)
}

/// The text of `styles/dashboards/{id}.json`.
pub fn read_layout(styles: &Path, id: &str) -> Result<String, Problem> {
    check_id("dashboard", id)?;
    std::fs::read_to_string(styles.join("dashboards").join(format!("{id}.json")))
        .map_err(|_| Problem::not_found(format!("no dashboard {id:?}")))
}

/// Parses and checks a layout's text: its panels, queries, trend windows and styles.
pub fn check_layout(
    styles: &Path,
    id: &str,
    text: &str,
) -> Result<(Layout, HashMap<String, Style>), Problem> {
    let layout = Layout::parse(text).map_err(problem)?;
    for (i, p) in layout.panels.iter().enumerate() {
        if let Some(q) = p.query() {
            check_query(q).map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "dashboard-invalid",
                    format!("dashboard {id}, panel {i}: {e}"),
                )
            })?;
        }
        if let PanelSpec::Kpi { trend: Some(t), .. } = p {
            window_ms(t).ok_or_else(|| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "dashboard-invalid",
                    format!("dashboard {id}, panel {i}: trend {t:?} is not a window like 30分钟, 1小时, 1天, 30m, 1h, 1d"),
                )
            })?;
        }
    }
    let mut styles_by_id = HashMap::new();
    for s in layout.styles() {
        styles_by_id.insert(s.to_owned(), load_style(styles, s)?);
    }
    Ok((layout, styles_by_id))
}

/// A trend window: `30m`, `1h`, `1d` or `30分钟`, `1小时`, `1天`.
#[must_use]
pub fn window_ms(t: &str) -> Option<Millis> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = t[..split].parse().ok().filter(|n| *n > 0 && *n <= 10_000)?;
    let unit = match &t[split..] {
        "m" | "分钟" => 60_000,
        "h" | "小时" => 3_600_000,
        "d" | "天" => 86_400_000,
        _ => return None,
    };
    Some(n * unit)
}

/// Fills every panel of a layout from the twin's board queries at `now`. A query that fails
/// leaves its panel showing why rather than failing the frame.
pub async fn panel_data(
    city: &City,
    who: &citytwin_city::access::Principal,
    layout: &Layout,
    now: Millis,
) -> Vec<PanelData> {
    let mut out = Vec::with_capacity(layout.panels.len());
    // the state some time ago, once per distinct trend window
    let mut then: HashMap<Millis, Vec<(String, Option<f64>)>> = HashMap::new();
    for p in &layout.panels {
        if let PanelSpec::Kpi {
            query,
            trend: Some(t),
            ..
        } = p
            && let Some(w) = window_ms(t)
        {
            then.entry(w).or_default().push((query.clone(), None));
        }
    }
    for (w, queries) in &mut then {
        let names: Vec<String> = queries.iter().map(|q| q.0.clone()).collect();
        match city.board_numbers_as(who, &names, now - *w).await {
            Ok(values) => {
                for (q, v) in queries.iter_mut().zip(values) {
                    q.1 = v;
                }
            }
            Err(e) => tracing::warn!(error = %e, "dashboard trend"),
        }
    }
    for p in &layout.panels {
        let Some(name) = p.query() else {
            out.push(PanelData::Missing(String::new()));
            continue;
        };
        let q = match p {
            PanelSpec::Line {
                hours, kind, limit, ..
            } => BoardQuery {
                name: name.to_owned(),
                hours: *hours,
                kind: kind.clone(),
                limit: *limit,
            },
            PanelSpec::Bar { limit, .. } | PanelSpec::List { limit, .. } => BoardQuery {
                name: name.to_owned(),
                limit: *limit,
                ..BoardQuery::default()
            },
            _ => BoardQuery {
                name: name.to_owned(),
                ..BoardQuery::default()
            },
        };
        let data = match city.board_as(who, &q, now).await {
            Ok(BoardValue::Number(value)) => {
                let previous = match p {
                    PanelSpec::Kpi { trend: Some(t), .. } => window_ms(t)
                        .and_then(|w| then.get(&w))
                        .and_then(|qs| qs.iter().find(|(n, _)| n == name))
                        .and_then(|(_, v)| *v),
                    _ => None,
                };
                PanelData::Kpi { value, previous }
            }
            Ok(BoardValue::Counts(c)) => PanelData::Bars(c),
            Ok(BoardValue::Series { x, series }) => PanelData::Lines { x, series },
            Ok(BoardValue::Table { columns, rows }) => PanelData::Rows { columns, rows },
            Err(e) => PanelData::Missing(e.to_string()),
        };
        out.push(data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(window_ms("1小时"), Some(3_600_000));
        assert_eq!(window_ms("30m"), Some(1_800_000));
        assert_eq!(window_ms("2天"), Some(172_800_000));
        assert_eq!(window_ms("soon"), None);
        assert_eq!(window_ms("0h"), None);
    }

    #[test]
    fn broken_layouts_and_styles_are_422_naming_the_panel() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dashboards")).unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ok.json", r#"{"version": 8, "sources": {}, "layers": []}"#);
        write(
            "bad.json",
            r#"{"version": 8, "sources": {}, "layers": [{"id": "x", "type": "background", "paint": {"background-color": ["sqrt", 1]}}]}"#,
        );
        let board = |panel: &str| {
            format!(r#"{{"name": "t", "columns": 2, "rows": 2, "panels": [{panel}]}}"#)
        };
        for (id, panel, status, needle) in [
            (
                "q",
                r#"{"type": "kpi", "at": [0, 0, 1, 1], "label": "x", "query": "pie"}"#,
                422,
                "pie",
            ),
            (
                "t",
                r#"{"type": "kpi", "at": [0, 0, 1, 1], "label": "x", "query": "open_events", "trend": "soon"}"#,
                422,
                "soon",
            ),
            (
                "s",
                r#"{"type": "map", "at": [0, 0, 1, 1], "style": "bad"}"#,
                422,
                "sqrt",
            ),
            (
                "m",
                r#"{"type": "map", "at": [0, 0, 1, 1], "style": "missing"}"#,
                404,
                "missing",
            ),
            (
                "g",
                r#"{"type": "clock", "at": [1, 1, 2, 1]}"#,
                422,
                "does not fit",
            ),
        ] {
            write(&format!("dashboards/{id}.json"), &board(panel));
            let err = load_layout(dir.path(), id).unwrap_err();
            assert_eq!(err.status, status, "{id}: {}", err.detail);
            assert!(err.detail.contains(needle), "{id}: {}", err.detail);
        }
        write(
            "dashboards/fine.json",
            &board(r#"{"type": "map", "at": [0, 0, 2, 2], "style": "ok"}"#),
        );
        let (layout, styles) = load_layout(dir.path(), "fine").unwrap();
        assert_eq!(layout.panels.len(), 1);
        assert!(styles.contains_key("ok"));
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    /// Past its bound the queue refuses at once (503, Retry-After) instead of growing, and the
    /// requests it took all render, one at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_render_queue_is_bounded() {
        let service = Arc::new(RenderService::with_queue(Options::default(), 2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (service, running, most) = (
                    Arc::clone(&service),
                    Arc::clone(&running),
                    Arc::clone(&most),
                );
                tokio::spawn(async move {
                    service
                        .run(move |_| {
                            use std::sync::atomic::Ordering::SeqCst;
                            let now = running.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(now, SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(300));
                            running.fetch_sub(1, SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        let mut refused = 0;
        let mut rendered = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => rendered += 1,
                Err(p) if p.status == 503 && p.kind.ends_with("/render-queue-full") => {
                    assert!(p.retry_after.is_some());
                    refused += 1;
                }
                // no graphics adapter on this machine: nothing to learn here
                Err(p) if p.kind.ends_with("/renderer-unavailable") => return,
                Err(p) => panic!("{p:?}"),
            }
        }
        assert_eq!((rendered, refused), (2, 3));
        assert_eq!(
            most.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one render at a time"
        );
        assert_eq!(service.queued(), 0);
    }
}
