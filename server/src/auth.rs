//! Authentication and the access decision's footprint on every request.
//!
//! [`Caller`] turns a request into a principal — a person's access token from the city's
//! identity provider (`Authorization: Bearer <JWT>`, checked locally by [`crate::oidc`]), an
//! API key citytwin issued (`Bearer ctk_…` or `X-Api-Key`), a one-use ticket on a stream
//! (`?ticket=`, as browsers cannot send headers there), or the public when there are no
//! credentials — and nothing more: what the principal may see and do is decided in
//! `citytwin_city::access`. Bad credentials are a 401 problem before anything else happens;
//! a revoked principal is refused on its next request.
//!
//! [`guard`] wraps every route: it gives each request an id (`x-request-id`), and fails a
//! response closed — a 500 instead of whatever the handler made — when the handler of a
//! matched route took no access decision (a read plan, a write's check, or a declaration that
//! the route serves no city data). The route-coverage test relies on it. Responses to
//! anyone but the public are `Cache-Control: private`.

use crate::app::AppState;
use crate::problem::{ApiResult, Problem};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use citytwin_city::access::{Context, Duty, Principal, ReadPlan};
use citytwin_city::{LayerIndex, keys::KEY_PREFIX};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a handler decided about access, for [`guard`].
#[derive(Debug, Clone, Default)]
pub struct Decided {
    /// e.g. `public`, `read roads`, `writes`, `duty audit.read`
    pub what: Option<String>,
    /// whether the principal was someone other than the public
    pub private: bool,
}

/// The slot a request's decision is written into.
#[derive(Debug, Clone, Default)]
pub struct DecisionSlot(pub Arc<Mutex<Decided>>);

impl DecisionSlot {
    fn note(&self, what: String, private: bool) {
        if let Ok(mut d) = self.0.lock() {
            d.what = Some(what);
            d.private |= private;
        }
    }
}

/// The request id of a request.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn new_request_id() -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| citytwin_city::live::ts::now() as u64);
    format!("{start:x}-{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Every request passes here: request id, decision slot, and the fail-closed check.
pub async fn guard(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(new_request_id, str::to_owned);
    // writes take JSON only: a form or text/plain POST (what a page of another site can send
    // without asking) is refused before anything reads it. A POST without a body carries
    // nothing to mistype: it goes on (to its handler, or to a 405 where the route takes none)
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if req.method() == axum::http::Method::POST && has_body && !is_json(req.headers()) {
        let mut resp = Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as application/json (or application/geo+json)",
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        return resp;
    }
    let slot = DecisionSlot::default();
    let matched = req.extensions().get::<MatchedPath>().is_some();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut()
        .insert(RequestId(Arc::from(id.as_str())));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut resp = next.run(req).await;
    let decided = slot.0.lock().map(|d| d.clone()).unwrap_or_default();
    // an answer that carries anything (not an error made before the handler ran) must have
    // passed a decision
    if matched && decided.what.is_none() && resp.status().as_u16() < 400 {
        tracing::error!(route = ?route, "a route answered without an access decision; refused");
        resp = Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no-access-decision",
            "this route took no access decision, so nothing it made is served",
        )
        .into_response();
    }
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(resp.headers()) {
        resp = Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!(
                "the body is larger than this route takes ({} MiB)",
                body_limit(route.as_deref().unwrap_or("")) >> 20
            ),
        )
        .into_response();
    }
    resp.extensions_mut().insert(decided.clone());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    if decided.private {
        let cc = h
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "private".to_owned(), |v| format!("private, {v}"));
        if let Ok(v) = HeaderValue::from_str(&cc) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    resp
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

fn is_problem(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// Largest body of a route, in bytes: a batch of 100,000 readings, a geometry of 100,000
/// vertices, or 1 MiB for everything else.
#[must_use]
pub fn body_limit(route: &str) -> usize {
    match route {
        "/readings" => 24 << 20,
        "/layers/{layer}/intersects" | "/grids/locate" => 8 << 20,
        _ => 1 << 20,
    }
}

/// The principal of a request and its context, extracted before the handler runs.
#[derive(Debug, Clone)]
pub struct Caller {
    /// who, through which channel, from where, which request
    pub cx: Context,
    slot: DecisionSlot,
}

/// The credentials a request carries, if any.
fn credentials(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let text = v
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or_else(|| unauthorized("use Authorization: Bearer <token>"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(unauthorized("use Authorization: Bearer <token>"));
        }
        return Ok(Some(token.trim().to_owned()));
    }
    if let Some(v) = headers.get("x-api-key") {
        let text = v
            .to_str()
            .map_err(|_| unauthorized("the X-Api-Key header is not text"))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(None)
}

/// A 401 problem.
#[must_use]
pub fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// Resolves a token into a principal. A token checked once is remembered for a minute (an
/// `Arc`, no work on the tile path), while revocation and expiry are still checked on every
/// request.
pub async fn principal_of(state: &AppState, token: &str) -> Result<Arc<Principal>, Problem> {
    let now = citytwin_city::live::ts::now();
    let p = match state.tokens.get(token) {
        Some(p) => p,
        None => {
            let p = if token.starts_with(KEY_PREFIX) {
                state
                    .city
                    .credentials()
                    .principal_of_key(token)
                    .await
                    .map_err(|e| unauthorized(&e.to_string()))?
            } else if let Some(oidc) = &state.oidc {
                oidc.principal(token).await.map_err(|e| unauthorized(&e))?
            } else {
                return Err(unauthorized(
                    "not a key citytwin issued (ctk_…), and this server signs no one in",
                ));
            };
            let p = Arc::new(p);
            state.tokens.insert(token.to_owned(), Arc::clone(&p));
            p
        }
    };
    if p.expires.is_some_and(|e| e <= now) {
        state.tokens.invalidate(token);
        return Err(unauthorized("the credentials expired"));
    }
    if state.city.credentials().is_revoked(&p.id) {
        return Err(unauthorized("the credentials were revoked"));
    }
    Ok(p)
}

/// The routes a one-use ticket opens (streams a browser cannot send headers to).
const TICKET_ROUTES: [&str; 3] = ["/live", "/live/sse", "/dashboards/{id}/stream"];

/// The principal of a stream's ticket, used up by this request.
fn principal_of_ticket(state: &AppState, ticket: &str) -> Result<Arc<Principal>, Problem> {
    let p = state
        .tickets
        .remove(ticket)
        .ok_or_else(|| unauthorized("the ticket is unknown, used or expired: get a new one"))?;
    if state.city.credentials().is_revoked(&p.id) {
        return Err(unauthorized("the credentials were revoked"));
    }
    Ok(p)
}

/// 192 random bits as hex, for tickets and receipts.
pub fn random_token() -> Result<String, Problem> {
    citytwin_city::keys::random_hex(24).map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-randomness",
            e.to_string(),
        )
    })
}

/// Issues a one-use ticket for a principal's next stream (valid 30 seconds).
pub fn issue_ticket(state: &AppState, p: &Arc<Principal>) -> Result<String, Problem> {
    let t = random_token()?;
    state.tickets.insert(t.clone(), Arc::clone(p));
    Ok(t)
}

/// Rate limits per principal (per client address for the public's reports).
pub struct RateLimits {
    writes: governor::DefaultKeyedRateLimiter<String>,
    queries: governor::DefaultKeyedRateLimiter<String>,
    reports: governor::DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limits at these rates, each with a burst of twice as many.
    #[must_use]
    pub fn new(r: crate::config::Rates) -> Self {
        use governor::{Quota, RateLimiter};
        use std::num::NonZeroU32;
        let n = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_sec = |v: u32| Quota::per_second(n(v)).allow_burst(n(v.saturating_mul(2)));
        Self {
            writes: RateLimiter::dashmap(per_sec(r.writes_per_sec)),
            queries: RateLimiter::dashmap(per_sec(r.queries_per_sec)),
            reports: RateLimiter::dashmap(
                Quota::per_minute(n(r.public_reports_per_min))
                    .allow_burst(n(r.public_reports_per_min)),
            ),
        }
    }

    fn check(
        limiter: &governor::DefaultKeyedRateLimiter<String>,
        key: &str,
        what: &str,
    ) -> ApiResult<()> {
        use governor::clock::{Clock, DefaultClock};
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Problem::too_many(
                    format!("too many {what}: try again in {} s", wait.as_secs() + 1),
                    wait.as_secs() + 1,
                ))
            }
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<DecisionSlot>()
            .cloned()
            .unwrap_or_default();
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map_or_else(|| Arc::from(new_request_id()), |r| Arc::clone(&r.0));
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        let channel = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("http", |m| channel_of(m.as_str()));
        let ticket = parts
            .extensions
            .get::<MatchedPath>()
            .filter(|m| TICKET_ROUTES.contains(&m.as_str()))
            .and_then(|_| parts.uri.query())
            .and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("ticket="))
                    .map(str::to_owned)
            });
        let principal = match (credentials(&parts.headers), ticket) {
            (Err(p), _) => Err(p),
            (Ok(None), Some(t)) => principal_of_ticket(state, &t),
            (Ok(None), None) => Ok(Arc::new(Principal::public())),
            (Ok(Some(token)), _) => principal_of(state, &token).await,
        };
        let principal = match principal {
            Ok(p) => p,
            Err(problem) => {
                state.city.audit(citytwin_city::audit::AuditRecord {
                    principal: "unknown".into(),
                    action: "authenticate".into(),
                    target: parts.uri.path().to_owned(),
                    channel: channel.to_owned(),
                    allowed: false,
                    count: None,
                    client,
                    request_id: request_id.to_string(),
                    detail: problem.detail.clone(),
                });
                let mut resp = problem.into_response();
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return Err(resp);
            }
        };
        // `?at=`: the day base layers with versions are read as of, on every route
        let at = match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.into_iter().find(|(k, _)| k == "at"))
        {
            Some((_, v)) if !v.is_empty() => Some(
                citytwin_city::versions::Day::parse(&v)
                    .map_err(|e| Problem::bad_parameter("at", e.to_string()).into_response())?,
            ),
            _ => None,
        };
        Ok(Self {
            cx: Context {
                principal,
                channel: channel.to_owned(),
                client,
                request_id: request_id.to_string(),
                at,
            },
            slot,
        })
    }
}

/// The audit channel of a route.
fn channel_of(route: &str) -> &'static str {
    let first = route
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    match first {
        "tiles" => "tiles",
        "catalog" => "catalog",
        "styles" => "styles",
        "collections" => "items",
        "layers" => {
            if route.ends_with("/stats") || route.ends_with("/cells") {
                "statistics"
            } else {
                "spatial"
            }
        }
        "live" => {
            if route == "/live" || route == "/live/sse" {
                "feed"
            } else {
                "live"
            }
        }
        "render" | "dashboards" | "screen" => "render",
        "audit" => "audit",
        "admin" => "admin",
        _ => "http",
    }
}

impl Caller {
    /// The principal.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.cx.principal
    }

    fn note(&self, what: String) {
        self.slot.note(what, !self.cx.principal.is_public());
    }

    /// Declares that the route serves no city data (API description, conformance, static
    /// files, the public health check).
    pub fn public(&self) {
        self.note("public".into());
    }

    /// Declares that the route lists only what the principal may see, each item through
    /// the access decision (the catalogue, collections, styles).
    pub fn listing(&self) {
        self.note("listing".into());
    }

    /// Declares that the city checks the change this route asks for (roles, territory), and
    /// holds the caller to its rate of writes (the public, who may only file citizen
    /// reports, is held to [`Caller::citizen_report`]'s).
    pub fn writes(&self, state: &AppState) -> ApiResult<()> {
        self.note("writes".into());
        let p = &self.cx.principal;
        if p.is_public() {
            return Ok(());
        }
        RateLimits::check(&state.rates.writes, &p.id, "writes")
    }

    /// Holds the public to its rate of citizen reports, per client address.
    pub fn citizen_report(&self, state: &AppState) -> ApiResult<()> {
        if !self.cx.principal.is_public() {
            return Ok(());
        }
        RateLimits::check(
            &state.rates.reports,
            &self.cx.client,
            "reports from this address",
        )
    }

    /// Holds the caller to its rate of expensive queries (statistics, cells, spatial queries,
    /// items, renders).
    pub fn expensive(&self, state: &AppState) -> ApiResult<()> {
        let key = if self.cx.principal.is_public() {
            format!("public:{}", self.cx.client)
        } else {
            self.cx.principal.id.clone()
        };
        RateLimits::check(&state.rates.queries, &key, "queries")
    }

    /// The principal, shared.
    #[must_use]
    pub fn shared(&self) -> Arc<Principal> {
        Arc::clone(&self.cx.principal)
    }

    /// A layer and what the principal sees of it; a layer it may not see is as unknown as
    /// one that does not exist.
    pub fn layer(
        &self,
        state: &AppState,
        name: &str,
    ) -> Result<(Arc<LayerIndex>, ReadPlan), citytwin_city::Error> {
        self.note(format!("read {name}"));
        state.city.read_plan(&self.cx, name)
    }

    /// Records what a read returned (audited for layers not open to all).
    pub fn served(&self, state: &AppState, plan: &ReadPlan, count: Option<u64>) {
        state.city.served(&self.cx, plan, count);
    }

    /// Checks a duty that needs only a role (reading the audit log, managing access,
    /// metrics).
    pub fn duty(&self, state: &AppState, duty: Duty, target: &str) -> ApiResult<()> {
        self.note(format!("duty {}", duty.name()));
        state
            .city
            .check_duty(&self.cx, duty, None, target, "")
            .map_err(|e| self.refused(e))
    }

    /// The problem a refusal gives this principal: the public is asked to sign in.
    #[must_use]
    pub fn refused(&self, e: citytwin_city::Error) -> Problem {
        match e {
            citytwin_city::Error::Forbidden(d) if self.cx.principal.is_public() => {
                unauthorized(&format!("{d}: sign in, or send an API key"))
            }
            e => Problem::from(e),
        }
    }
}

/// When a stream must end: its principal is revoked, or its credentials run out. Streams
/// (the live feed, server-sent events, dashboard MJPEG) wait on it beside their data, so a
/// revocation closes them within the half second the server takes to see it.
pub struct Stop {
    id: String,
    expires: Option<i64>,
    cut: tokio::sync::broadcast::Receiver<String>,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Stop {
    /// The stop of a principal's stream (the public's never stops).
    #[must_use]
    pub fn of(state: &AppState, p: &Principal) -> Self {
        Self {
            id: if p.is_public() {
                String::new()
            } else {
                p.id.clone()
            },
            expires: p.expires,
            cut: state.city.credentials().revocation_feed(),
            closing: state.closing.subscribe(),
        }
    }

    /// Resolves when the stream must end (the server stopping ends every stream).
    pub async fn wait(&mut self) {
        let mut closing = self.closing.clone();
        let stopping = async move {
            if closing.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        if self.id.is_empty() {
            return stopping.await;
        }
        let expiry = async {
            match self.expires {
                Some(e) => {
                    let left = e - citytwin_city::live::ts::now();
                    tokio::time::sleep(std::time::Duration::from_millis(left.max(0) as u64)).await;
                }
                None => std::future::pending().await,
            }
        };
        let revoked = async {
            loop {
                match self.cut.recv().await {
                    Ok(s) if s == self.id => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return std::future::pending().await;
                    }
                }
            }
        };
        tokio::select! {
            () = expiry => tracing::info!(principal = %self.id, "credentials expired; stream closed"),
            () = revoked => tracing::info!(principal = %self.id, "revoked; stream closed"),
            () = stopping => tracing::debug!(principal = %self.id, "the server is stopping; stream closed"),
        }
    }
}
