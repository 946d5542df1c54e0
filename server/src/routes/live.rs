//! The live twin over HTTP: events and their closed loop, sensors and readings, units of the
//! response forces, the time machine (`/live/state`, `/live/changes`) and the change feed
//! (WebSocket `/live` and server-sent events `/live/sse`).

use crate::app::AppState;
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use citytwin_city::City;
use citytwin_city::access::{Form, ReadPlan};
use citytwin_city::live::queries::{
    DEFAULT_HISTORY_MS, EventQuery, SensorQuery, StateFilter, UnitQuery,
};
use citytwin_city::live::{
    Action, Event, FeedFilter, LiveLayer, LiveState, Millis, NewEvent, NewSensor, NewUnit, Place,
    ReadingIn, Sensor, Severity, Source, Thresholds, Unit, UnitStatus, ts,
};
use citytwin_city::store::ChangeQuery;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most readings in one batch.
pub const MAX_BATCH: usize = 100_000;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(list_events).post(report))
        .route("/events/{id}", get(one_event))
        .route("/events/{id}/transitions", post(transition))
        .route("/events/{id}/units", post(assign))
        .route("/events/{id}/command", post(command))
        .route("/events/{id}/nearest-units", get(nearest_units))
        .route("/sensors", get(list_sensors).post(register_sensor))
        .route("/sensors/{id}", get(one_sensor))
        .route("/sensors/{id}/readings", get(history).post(read_one))
        .route(
            "/readings",
            post(read_batch).layer(axum::extract::DefaultBodyLimit::max(
                crate::auth::body_limit("/readings"),
            )),
        )
        .route("/live/tickets", post(ticket))
        .route("/reports/{receipt}", get(follow_report))
        .route("/units", get(list_units).post(register_unit))
        .route("/units/{id}", get(one_unit))
        .route("/units/{id}/position", post(move_unit))
        .route("/units/{id}/status", post(unit_status))
        .route("/live", get(websocket))
        .route("/live/sse", get(sse))
        .route("/live/changes", get(changes))
        .route("/live/state", get(state_at))
}

/// The caller's read plan of a live layer; 404 when it may not see the layer, 403 when it
/// may see it only as aggregates (a level-3 live layer: its things are features).
fn live_plan(state: &AppState, caller: &Caller, layer: LiveLayer) -> ApiResult<ReadPlan> {
    let plan = caller
        .layer(state, layer.name())
        .map(|(_, plan)| plan)
        .map_err(|_| Problem::not_found(format!("no resource {}", layer.name())))?;
    plan.features_allowed()?;
    Ok(plan)
}

/// A live layer's things as the caller may see them: desensitised unless its plan is raw.
fn seen(state: &AppState, caller: &Caller, layer: LiveLayer, v: Value) -> Value {
    let plan = caller
        .layer(state, layer.name())
        .ok()
        .map(|(_, plan)| plan)
        .filter(|p| p.form != Form::Aggregate);
    state.city.shown_json(layer.name(), plan.as_ref(), v)
}

/// A refused change as the caller gets it.
fn refused(caller: &Caller) -> impl Fn(citytwin_city::Error) -> Problem + '_ {
    |e| caller.refused(e)
}

/// A one-use ticket for the caller's next stream (WebSocket, server-sent events, MJPEG),
/// which browsers open without headers: `?ticket=…` stands for the caller for 30 seconds.
#[utoipa::path(post, path = "/live/tickets", tag = "live",
    responses(
        (status = 201, description = "`ticket` and `expires_in` (seconds)"),
        (status = 401, description = "bad credentials", content_type = "application/problem+json"),
    ))]
pub(crate) async fn ticket(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.listing();
    let t = crate::auth::issue_ticket(&state, &caller.shared())?;
    Ok(created(
        StatusCode::CREATED,
        &json!({ "ticket": t, "expires_in": 30 }),
    ))
}

/// Reads a JSON body, naming what is wrong with it.
pub fn body<T: DeserializeOwned>(bytes: &[u8], shape: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_parameter("body", format!("expected {shape}: {e}")))
}

fn time(name: &str, text: Option<&str>) -> ApiResult<Option<Millis>> {
    text.map(|t| ts::parse(t).map_err(|e| Problem::bad_parameter(name, e)))
        .transpose()
}

fn created<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    (status, Json(v)).into_response()
}

fn event_id(raw: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| Problem::not_found(format!("no event {raw:?}: event ids are numbers")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    source: Source,
    category: String,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    description: String,
    lon: f64,
    lat: f64,
    #[serde(default)]
    media: Vec<String>,
    #[serde(default)]
    reporter: Option<String>,
}

/// Reports an event; a duplicate of an open event nearby is merged into it.
#[utoipa::path(post, path = "/events", tag = "live",
    request_body(content = String, content_type = "application/json",
        description = r#"{"source": "hotline|citizen|inspector|video|department", "category": "waterlogging", "severity": "general|serious|major|extraordinary", "description": "…", "lon": 118.78, "lat": 32.06, "media": ["https://…/photo.jpg"], "reporter": "…"}"#),
    responses(
        (status = 201, description = "a new event, placed in its grid chain and assigned to its street"),
        (status = 200, description = "merged into an open event of the category nearby (`merged: true`)"),
        (status = 400, description = "a malformed report, or a place outside the city", content_type = "application/problem+json"),
    ))]
pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let b: ReportBody = body(&raw, "an event report")?;
    if b.source == Source::Citizen {
        caller.citizen_report(&state)?;
    }
    // a citizen follows their report with a receipt (the public sees nothing else of it)
    let receipt = if b.source == Source::Citizen {
        Some(crate::auth::random_token()?)
    } else {
        None
    };
    let (event, merged) = state
        .city
        .report_event(
            &caller.cx,
            NewEvent {
                source: b.source,
                category: b.category,
                severity: b.severity,
                description: b.description,
                lon: b.lon,
                lat: b.lat,
                media: b.media,
                reporter: b.reporter,
                actor: None,
                receipt: receipt.as_deref().map(citytwin_city::keys::secret_hash),
                place: Place::default(),
            },
        )
        .await
        .map_err(refused(&caller))?;
    let status = if merged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let sees = live_plan(&state, &caller, LiveLayer::Events)
        .is_ok_and(|plan| plan.shows_code(event.place.code()));
    let mut v = if sees {
        seen(&state, &caller, LiveLayer::Events, event.view(ts::now()))
    } else {
        receipt_view(&event, ts::now())
    };
    v["merged"] = json!(merged);
    if let Some(r) = receipt {
        v["receipt"] = json!(r);
    }
    Ok(created(status, &v))
}

/// What a citizen sees of their report: where it stands and its steps, without who handles
/// it or anyone else's report.
fn receipt_view(e: &Event, now: Millis) -> Value {
    json!({
        "id": e.id,
        "category": e.category,
        "state": e.state.name(),
        "reported_at": ts::format(e.reported_at),
        "updated_at": ts::format(e.updated_at),
        "overdue": e.overdue(now),
        "owner": e.owner.as_ref().map(|o| &o.name),
        "steps": e.history.iter().map(|s| json!({ "action": s.action, "state": s.to.name(), "at": ts::format(s.at) })).collect::<Vec<_>>(),
    })
}

/// A citizen's report followed with its receipt.
#[utoipa::path(get, path = "/reports/{receipt}", tag = "live",
    params(("receipt" = String, Path, description = "the receipt given with the report")),
    responses(
        (status = 200, description = "the report's state and steps"),
        (status = 404, description = "no report has that receipt", content_type = "application/problem+json"),
    ))]
pub(crate) async fn follow_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(receipt): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.public();
    let missing = || Problem::not_found("no report has that receipt");
    if receipt.len() != 48 || !receipt.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(missing());
    }
    let hash = citytwin_city::keys::secret_hash(&receipt);
    state
        .city
        .with_live(|s| {
            s.events
                .values()
                .rev()
                .find(|e| e.receipts.contains(&hash))
                .map(|e| receipt_view(e, ts::now()))
        })
        .map(Json)
        .ok_or_else(missing)
}

/// Events, newest first, filtered by state, category, territory and overdue.
#[utoipa::path(get, path = "/events", tag = "live",
    params(
        ("state" = Option<String>, Query, description = "reported, accepted, dispatched, handling, feedback, verified, closed, rejected, or open"),
        ("category" = Option<String>, Query, description = "category"),
        ("grid" = Option<String>, Query, description = "territorial code of any level (codes nest)"),
        ("overdue" = Option<bool>, Query, description = "only overdue (true) or not overdue (false) events"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "most events, 1..=10000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "`events` with their overdue flag and allowed actions"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Events)?;
    p.only(&["state", "category", "grid", "overdue", "limit"])?;
    let limit = p.count("limit", 1000, 10_000)?;
    p.check("category", crate::params::is_slug, crate::params::SLUG)?;
    p.check("grid", crate::params::is_code, crate::params::CODE)?;
    let q = EventQuery {
        state: p
            .text("state")
            .map(StateFilter::parse)
            .transpose()
            .map_err(|e| Problem::bad_parameter("state", e.to_string()))?,
        category: p.text("category").map(str::to_owned),
        grid: p.text("grid").map(str::to_owned),
        overdue: p.flag("overdue")?,
    };
    let now = ts::now();
    let events: Vec<Value> = state.city.with_live(|s| {
        s.events
            .values()
            .rev()
            .filter(|e| plan.shows_code(e.place.code()) && q.matches(e, now))
            .take(limit)
            .map(|e| e.view(now))
            .collect()
    });
    caller.served(&state, &plan, Some(events.len() as u64));
    Ok(Json(seen(
        &state,
        &caller,
        LiveLayer::Events,
        json!({ "count": events.len(), "events": events }),
    )))
}

/// One event with its whole history.
#[utoipa::path(get, path = "/events/{id}", tag = "live",
    params(("id" = i64, Path, description = "event id")),
    responses(
        (status = 200, description = "the event"),
        (status = 404, description = "no such event", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Events)?;
    let id = event_id(&id)?;
    let v = state
        .city
        .with_live(|s| {
            s.events
                .get(&id)
                .filter(|e| plan.shows_code(e.place.code()))
                .map(|e| e.view(ts::now()))
        })
        .ok_or_else(|| Problem::not_found(format!("no event {id}")))?;
    caller.served(&state, &plan, Some(1));
    Ok(Json(seen(&state, &caller, LiveLayer::Events, v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    action: Action,
    #[serde(default)]
    note: String,
}

/// Moves an event along its closed loop.
#[utoipa::path(post, path = "/events/{id}/transitions", tag = "live",
    params(("id" = i64, Path, description = "event id")),
    request_body(content = String, content_type = "application/json",
        description = r#"{"action": "accept|dispatch|start|feedback|verify|close|reject|return", "actor": "who", "note": "why (required for reject and return)"}"#),
    responses(
        (status = 200, description = "the event after the step"),
        (status = 400, description = "a malformed body, or reject/return without a reason", content_type = "application/problem+json"),
        (status = 404, description = "no such event", content_type = "application/problem+json"),
        (status = 409, description = "the action is not allowed in the event's state; `state` and `allowed` say where it stands", content_type = "application/problem+json"),
    ))]
pub(crate) async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    caller.writes(&state)?;
    let id = event_id(&id)?;
    let b: TransitionBody = body(
        &raw,
        r#"{"action": …, "note": …} (the actor is whoever is signed in)"#,
    )?;
    let e = state
        .city
        .transition_event(&caller.cx, id, b.action, &b.note)
        .await
        .map_err(refused(&caller))?;
    Ok(Json(seen(
        &state,
        &caller,
        LiveLayer::Events,
        e.view(ts::now()),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    units: Vec<String>,
}

/// Assigns available units to an open event.
#[utoipa::path(post, path = "/events/{id}/units", tag = "live",
    params(("id" = i64, Path, description = "event id")),
    request_body(content = String, content_type = "application/json", description = r#"{"units": ["P-1"], "actor": "dispatcher"}"#),
    responses(
        (status = 200, description = "the event with its units; the units are busy"),
        (status = 404, description = "no such event or unit", content_type = "application/problem+json"),
        (status = 409, description = "the event is closed, or a unit is not available", content_type = "application/problem+json"),
    ))]
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    caller.writes(&state)?;
    let id = event_id(&id)?;
    let b: AssignBody = body(&raw, r#"{"units": [...]}"#)?;
    let e = state
        .city
        .assign_units(&caller.cx, id, b.units)
        .await
        .map_err(refused(&caller))?;
    Ok(Json(seen(
        &state,
        &caller,
        LiveLayer::Events,
        e.view(ts::now()),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    #[serde(default)]
    events: Vec<i64>,
    #[serde(default)]
    units: Vec<String>,
}

/// Switches an event to unified command over other events and units (a major event).
#[utoipa::path(post, path = "/events/{id}/command", tag = "live",
    params(("id" = i64, Path, description = "the major event")),
    request_body(content = String, content_type = "application/json", description = r#"{"commander": "…", "events": [12, 13], "units": ["P-1", "T-4"]}"#),
    responses(
        (status = 200, description = "the major event with its command"),
        (status = 404, description = "no such event or unit", content_type = "application/problem+json"),
        (status = 409, description = "an event is closed or under another command, or a unit is busy", content_type = "application/problem+json"),
    ))]
pub(crate) async fn command(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    caller.writes(&state)?;
    let id = event_id(&id)?;
    let b: CommandBody = body(
        &raw,
        r#"{"events": [...], "units": [...]} (the commander is whoever is signed in)"#,
    )?;
    let e = state
        .city
        .command_event(&caller.cx, id, b.events, b.units)
        .await
        .map_err(refused(&caller))?;
    Ok(Json(seen(
        &state,
        &caller,
        LiveLayer::Events,
        e.view(ts::now()),
    )))
}

/// The nearest available units of a type to an event, by straight-line distance.
#[utoipa::path(get, path = "/events/{id}/nearest-units", tag = "live",
    params(
        ("id" = i64, Path, description = "event id"),
        ("type" = Option<String>, Query, description = "unit type (pump, vehicle, team…); any when absent"),
        ("n" = Option<usize>, Query, minimum = 1, maximum = 100, description = "how many, 1..=100 (default 5)"),
    ),
    responses(
        (status = 200, description = "`units`, nearest first, with `distance_m`"),
        (status = 404, description = "no such event", content_type = "application/problem+json"),
    ))]
pub(crate) async fn nearest_units(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let events = live_plan(&state, &caller, LiveLayer::Events)?;
    let units_plan = live_plan(&state, &caller, LiveLayer::Units)?;
    p.only(&["type", "n"])?;
    p.check("type", crate::params::is_slug, crate::params::SLUG)?;
    let id = event_id(&id)?;
    let n = p.count("n", 5, 100)?;
    state
        .city
        .with_live(|s| {
            let e = s
                .events
                .get(&id)
                .filter(|e| events.shows_code(e.place.code()))?;
            let units: Vec<Value> = s
                .nearest_units(e.lon, e.lat, p.text("type"), n)
                .into_iter()
                .filter(|(u, _)| units_plan.shows_code(u.place.code()))
                .map(|(u, d)| {
                    let mut v = serde_json::to_value(u).unwrap_or(Value::Null);
                    v["distance_m"] = json!(d.round());
                    v
                })
                .collect();
            Some(json!({ "event": id, "units": units }))
        })
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no event {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorBody {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    lon: f64,
    lat: f64,
    unit: String,
    #[serde(default)]
    thresholds: Thresholds,
}

/// Registers a sensor (or updates a registered one).
#[utoipa::path(post, path = "/sensors", tag = "live",
    request_body(content = String, content_type = "application/json",
        description = r#"{"id": "WL-0001", "type": "water-level", "name": "…", "lon": 118.78, "lat": 32.06, "unit": "m", "thresholds": {"high": 0.5, "low": null, "rate": 0.2}}"#),
    responses(
        (status = 201, description = "the sensor"),
        (status = 400, description = "a malformed sensor or a place outside the city", content_type = "application/problem+json"),
    ))]
pub(crate) async fn register_sensor(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let b: SensorBody = body(&raw, "a sensor")?;
    let s = state
        .city
        .register_sensor(
            &caller.cx,
            NewSensor {
                id: b.id,
                kind: b.kind,
                name: b.name,
                lon: b.lon,
                lat: b.lat,
                unit: b.unit,
                thresholds: b.thresholds,
                place: Place::default(),
                registered_by: None,
            },
        )
        .await
        .map_err(refused(&caller))?;
    Ok(created(StatusCode::CREATED, &s))
}

/// Sensors with their latest reading and alarm.
#[utoipa::path(get, path = "/sensors", tag = "live",
    params(
        ("type" = Option<String>, Query, description = "sensor type"),
        ("grid" = Option<String>, Query, description = "territorial code of any level"),
        ("alarm" = Option<bool>, Query, description = "only sensors in alarm (true) or not (false)"),
    ),
    responses((status = 200, description = "`sensors`")))]
pub(crate) async fn list_sensors(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Sensors)?;
    p.only(&["type", "grid", "alarm"])?;
    p.check("type", crate::params::is_slug, crate::params::SLUG)?;
    p.check("grid", crate::params::is_code, crate::params::CODE)?;
    let q = SensorQuery {
        kind: p.text("type").map(str::to_owned),
        grid: p.text("grid").map(str::to_owned),
        alarm: p.flag("alarm")?,
    };
    let list = state.city.with_live(|s| {
        s.sensors
            .values()
            .filter(|x| plan.shows_code(x.place.code()) && q.matches(x))
            .map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
            .collect::<Vec<_>>()
    });
    caller.served(&state, &plan, Some(list.len() as u64));
    Ok(Json(seen(
        &state,
        &caller,
        LiveLayer::Sensors,
        json!({ "count": list.len(), "sensors": list }),
    )))
}

/// One sensor.
#[utoipa::path(get, path = "/sensors/{id}", tag = "live",
    params(("id" = String, Path, description = "sensor id")),
    responses(
        (status = 200, description = "the sensor with its latest reading and alarm"),
        (status = 404, description = "no such sensor", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one_sensor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Sensors)?;
    let s = visible_sensor(&state, &plan, &id)?;
    caller.served(&state, &plan, Some(1));
    Ok(Json(seen(&state, &caller, LiveLayer::Sensors, json!(s))))
}

fn visible_sensor(state: &AppState, plan: &ReadPlan, id: &str) -> ApiResult<Sensor> {
    state
        .city
        .with_live(|s| s.sensors.get(id).cloned())
        .filter(|s| plan.shows_code(s.place.code()))
        .ok_or_else(|| Problem::not_found(format!("no sensor {id:?}")))
}

/// A reading as sent over HTTP or MQTT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingBody {
    /// the sensor (given by the path or topic instead when absent)
    #[serde(default)]
    pub sensor: Option<String>,
    /// the value
    pub value: f64,
    /// when it was measured (RFC 3339); now when absent
    #[serde(default)]
    pub at: Option<String>,
}

/// Turns readings as sent into readings to take; `sensor` fills in a missing sensor id.
pub fn readings_in(items: Vec<ReadingBody>, sensor: Option<&str>) -> ApiResult<Vec<ReadingIn>> {
    let now = ts::now();
    items
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let id = match (sensor, r.sensor) {
                (Some(path), Some(b)) if b != path => {
                    return Err(Problem::bad_parameter(
                        "sensor",
                        format!("reading {i} names sensor {b:?} on the path of {path:?}"),
                    ));
                }
                (Some(path), _) => path.to_owned(),
                (None, Some(b)) => b,
                (None, None) => {
                    return Err(Problem::bad_parameter(
                        "sensor",
                        format!("reading {i} names no sensor"),
                    ));
                }
            };
            let at = time("at", r.at.as_deref())
                .map_err(|p| Problem::bad_parameter("at", format!("reading {i}: {}", p.detail)))?
                .unwrap_or(now);
            Ok(ReadingIn {
                sensor: id,
                at,
                value: r.value,
            })
        })
        .collect()
}

async fn take(state: &AppState, caller: &Caller, readings: Vec<ReadingIn>) -> ApiResult<Response> {
    let (accepted, raised, cleared) = state
        .city
        .ingest(&caller.cx, readings)
        .await
        .map_err(refused(caller))?;
    state.metrics.readings.inc_by(accepted as u64);
    Ok(created(
        StatusCode::ACCEPTED,
        &json!({ "accepted": accepted, "alarms_raised": raised, "alarms_cleared": cleared, "seq": state.city.live_seq() }),
    ))
}

/// One reading of a sensor; durable when answered.
#[utoipa::path(post, path = "/sensors/{id}/readings", tag = "live",
    params(("id" = String, Path, description = "sensor id")),
    request_body(content = String, content_type = "application/json", description = r#"{"value": 0.42, "at": "2026-11-22T08:00:00Z"} (at defaults to now)"#),
    responses(
        (status = 202, description = "taken and durable; alarms raised or cleared by it"),
        (status = 400, description = "a malformed reading: not a finite number, a time in the future", content_type = "application/problem+json"),
        (status = 404, description = "no such sensor", content_type = "application/problem+json"),
    ))]
pub(crate) async fn read_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    if !state.city.with_live(|s| s.sensors.contains_key(&id)) {
        return Err(Problem::not_found(format!(
            "no sensor {id:?}; register it first"
        )));
    }
    let b: ReadingBody = body(&raw, r#"{"value": number, "at": "RFC 3339 time"}"#)?;
    take(&state, &caller, readings_in(vec![b], Some(&id))?).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    readings: Vec<ReadingBody>,
}

/// A batch of readings of many sensors, taken whole or not at all; durable when answered.
#[utoipa::path(post, path = "/readings", tag = "live",
    request_body(content = String, content_type = "application/json",
        description = r#"{"readings": [{"sensor": "WL-0001", "value": 0.42, "at": "…"}, …]}, at most 100,000"#),
    responses(
        (status = 202, description = "all taken and durable"),
        (status = 400, description = "a malformed reading or an unknown sensor (named by index); nothing taken", content_type = "application/problem+json"),
    ))]
pub(crate) async fn read_batch(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let b: BatchBody = body(&raw, r#"{"readings": [{"sensor", "value", "at"}, …]}"#)?;
    if b.readings.len() > MAX_BATCH {
        return Err(Problem::bad_parameter(
            "readings",
            format!(
                "{} readings is more than the cap of {MAX_BATCH}",
                b.readings.len()
            ),
        ));
    }
    take(&state, &caller, readings_in(b.readings, None)?).await
}

/// A sensor's readings over a time window, raw or downsampled.
#[utoipa::path(get, path = "/sensors/{id}/readings", tag = "live",
    params(
        ("id" = String, Path, description = "sensor id"),
        ("from" = Option<String>, Query, description = "start (RFC 3339, inclusive); default 24 hours ago"),
        ("to" = Option<String>, Query, description = "end (RFC 3339, exclusive); default now"),
        ("interval" = Option<String>, Query, description = "downsample to min/max/avg per interval: 30s, 5m, 1h, 1d"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 100000, description = "most rows, 1..=100000 (default 10000)"),
    ),
    responses(
        (status = 200, description = "`readings` (at, value), or `buckets` (start, count, min, max, avg)"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
        (status = 404, description = "no such sensor", content_type = "application/problem+json"),
    ))]
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Sensors)?;
    visible_sensor(&state, &plan, &id)?;
    p.only(&["from", "to", "interval", "limit"])?;
    let now = ts::now();
    let to = time("to", p.text("to"))?.unwrap_or(now + 1);
    let from = time("from", p.text("from"))?.unwrap_or(to - DEFAULT_HISTORY_MS);
    if from >= to {
        return Err(Problem::bad_parameter("from", "from must be before to"));
    }
    let interval = p.text("interval").map(interval_ms).transpose()?;
    let limit = p.count("limit", 10_000, 100_000)?;
    let rows = state.city.readings(&id, from, to, interval, limit).await?;
    caller.served(&state, &plan, Some(rows.len() as u64));
    Ok(Json(match interval {
        None => json!({
            "sensor": id,
            "from": ts::format(from),
            "to": ts::format(to),
            "readings": rows.iter().map(|b| json!({ "at": ts::format(b.start), "value": b.avg })).collect::<Vec<_>>(),
        }),
        Some(ms) => json!({
            "sensor": id,
            "from": ts::format(from),
            "to": ts::format(to),
            "interval_s": ms / 1000,
            "buckets": rows.iter().map(|b| json!({
                "start": ts::format(b.start), "count": b.count, "min": b.min, "max": b.max, "avg": b.avg,
            })).collect::<Vec<_>>(),
        }),
    }))
}

fn interval_ms(text: &str) -> ApiResult<Millis> {
    let bad = || {
        Problem::bad_parameter(
            "interval",
            format!("{text:?} is not an interval such as 30s, 5m, 1h or 1d"),
        )
    };
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    if n <= 0 || n > 366 * 86_400 {
        return Err(bad());
    }
    Ok(n * scale)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitBody {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: UnitStatus,
    lon: f64,
    lat: f64,
}

/// Registers a unit of the response forces (or updates a registered one).
#[utoipa::path(post, path = "/units", tag = "live",
    request_body(content = String, content_type = "application/json",
        description = r#"{"id": "P-01", "name": "…", "type": "pump|vehicle|team|…", "status": "available|busy|off-duty", "lon": 118.78, "lat": 32.06}"#),
    responses(
        (status = 201, description = "the unit"),
        (status = 400, description = "a malformed unit or a place outside the city", content_type = "application/problem+json"),
    ))]
pub(crate) async fn register_unit(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let b: UnitBody = body(&raw, "a unit")?;
    let u = state
        .city
        .register_unit(
            &caller.cx,
            NewUnit {
                id: b.id,
                name: b.name,
                kind: b.kind,
                status: b.status,
                lon: b.lon,
                lat: b.lat,
                place: Place::default(),
            },
        )
        .await
        .map_err(refused(&caller))?;
    Ok(created(StatusCode::CREATED, &u))
}

/// Units with their positions and status.
#[utoipa::path(get, path = "/units", tag = "live",
    params(
        ("type" = Option<String>, Query, description = "unit type"),
        ("status" = Option<String>, Query, description = "available, busy or off-duty"),
    ),
    responses((status = 200, description = "`units`")))]
pub(crate) async fn list_units(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Units)?;
    p.only(&["type", "status"])?;
    p.check("type", crate::params::is_slug, crate::params::SLUG)?;
    let q = UnitQuery {
        kind: p.text("type").map(str::to_owned),
        status: p
            .text("status")
            .map(|s| serde_json::from_value::<UnitStatus>(json!(s)))
            .transpose()
            .map_err(|_| Problem::bad_parameter("status", "available, busy or off-duty"))?,
    };
    let list = state.city.with_live(|s| {
        s.units
            .values()
            .filter(|u| plan.shows_code(u.place.code()) && q.matches(u))
            .map(|u| serde_json::to_value(u).unwrap_or(Value::Null))
            .collect::<Vec<_>>()
    });
    caller.served(&state, &plan, Some(list.len() as u64));
    Ok(Json(seen(
        &state,
        &caller,
        LiveLayer::Units,
        json!({ "count": list.len(), "units": list }),
    )))
}

/// One unit.
#[utoipa::path(get, path = "/units/{id}", tag = "live",
    params(("id" = String, Path, description = "unit id")),
    responses(
        (status = 200, description = "the unit"),
        (status = 404, description = "no such unit", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let plan = live_plan(&state, &caller, LiveLayer::Units)?;
    let u = state
        .city
        .with_live(|s| s.units.get(&id).cloned())
        .filter(|u| plan.shows_code(u.place.code()))
        .ok_or_else(|| Problem::not_found(format!("no unit {id:?}")))?;
    caller.served(&state, &plan, Some(1));
    Ok(Json(seen(&state, &caller, LiveLayer::Units, json!(u))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionBody {
    lon: f64,
    lat: f64,
}

/// A unit's new position.
#[utoipa::path(post, path = "/units/{id}/position", tag = "live",
    params(("id" = String, Path, description = "unit id")),
    request_body(content = String, content_type = "application/json", description = r#"{"lon": 118.78, "lat": 32.06}"#),
    responses(
        (status = 200, description = "the unit"),
        (status = 400, description = "a position outside the city", content_type = "application/problem+json"),
        (status = 404, description = "no such unit", content_type = "application/problem+json"),
    ))]
pub(crate) async fn move_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Unit>> {
    caller.writes(&state)?;
    let b: PositionBody = body(&raw, r#"{"lon": …, "lat": …}"#)?;
    Ok(Json(
        state
            .city
            .move_unit(&caller.cx, &id, b.lon, b.lat)
            .await
            .map_err(refused(&caller))?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: UnitStatus,
}

/// A unit's new status (leaving busy releases it from its event).
#[utoipa::path(post, path = "/units/{id}/status", tag = "live",
    params(("id" = String, Path, description = "unit id")),
    request_body(content = String, content_type = "application/json", description = r#"{"status": "available|busy|off-duty"}"#),
    responses(
        (status = 200, description = "the unit"),
        (status = 404, description = "no such unit", content_type = "application/problem+json"),
    ))]
pub(crate) async fn unit_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Unit>> {
    caller.writes(&state)?;
    let b: StatusBody = body(&raw, r#"{"status": "available|busy|off-duty"}"#)?;
    Ok(Json(
        state
            .city
            .set_unit_status(&caller.cx, &id, b.status)
            .await
            .map_err(refused(&caller))?,
    ))
}

/// The subscription a feed request asks for, and where to resume.
/// What a caller may follow of the live layers: each one it may read, with its territory,
/// and those it sees desensitised. A live layer it may see only as aggregates (level 3) is
/// not followed at all: the feed carries positions.
fn feed_scope(state: &AppState, caller: &Caller) -> FeedFilter {
    caller.listing();
    let mut f = FeedFilter::default();
    for l in LiveLayer::ALL {
        let Some(index) = state.city.layer(l.name()) else {
            continue;
        };
        let Ok(plan) = state.city.plan_for(caller.principal(), &index.meta) else {
            continue;
        };
        if plan.form == Form::Aggregate {
            continue;
        }
        caller.served(state, &plan, None);
        if plan.form == Form::Desensitised
            && let Some(c) = index.meta.classification.clone()
        {
            f.masked.push((l, c));
        }
        f.scope.push((l, plan.territory.map(|(_, t)| t)));
    }
    f
}

fn feed_params(p: &Params, headers: &HeaderMap) -> ApiResult<(FeedFilter, Option<u64>)> {
    p.only(&["layers", "bbox", "grid", "kinds", "since", "ticket"])?;
    let layers = p
        .text("layers")
        .map(|t| {
            t.split(',')
                .map(|l| {
                    LiveLayer::parse(l.trim()).ok_or_else(|| {
                        Problem::bad_parameter(
                            "layers",
                            format!("unknown live layer {l:?}; use events, sensors, units"),
                        )
                    })
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let kinds = p
        .text("kinds")
        .map(|t| {
            t.split(',')
                .map(|k| {
                    let k = k.trim();
                    if citytwin_city::live::state::KINDS.contains(&k) {
                        Ok(k.to_owned())
                    } else {
                        Err(Problem::bad_parameter(
                            "kinds",
                            format!(
                                "unknown change kind {k:?}; kinds are {}",
                                citytwin_city::live::state::KINDS.join(", ")
                            ),
                        ))
                    }
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let grid = p.text("grid").map(str::to_owned);
    if let Some(g) = &grid
        && (g.is_empty() || g.len() > 32 || !g.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(Problem::bad_parameter(
            "grid",
            format!("{g:?} is not a territorial code"),
        ));
    }
    let since = p
        .text("since")
        .or_else(|| headers.get("last-event-id").and_then(|v| v.to_str().ok()))
        .map(|s| crate::params::seq_number("since", s))
        .transpose()?;
    Ok((
        FeedFilter {
            layers,
            bbox: p.bbox("bbox")?,
            grid,
            kinds,
            ..FeedFilter::default()
        },
        since,
    ))
}

/// Sends a subscriber its changes: first the ones after `since` from the store, then live
/// ones; a subscriber that falls behind catches up from the store, so nothing is skipped.
async fn follow(
    city: Arc<City>,
    filter: FeedFilter,
    since: Option<u64>,
    tx: mpsc::Sender<(u64, Arc<str>)>,
    mut stop: crate::auth::Stop,
    who: String,
) {
    let mut feed = city.feed();
    // what the city tells this principal (its objection decided), between the changes
    let mut notices = city.notices();
    let now = city.live_seq();
    let hello: Arc<str> = Arc::from(format!(r#"{{"type":"hello","seq":{now}}}"#));
    if tx.send((now, hello)).await.is_err() {
        return;
    }
    let mut last = since.unwrap_or(now);
    if since.is_some() {
        let Some(l) = catch_up(&city, &filter, last, &tx).await else {
            return;
        };
        last = l;
    }
    loop {
        let next = tokio::select! {
            r = feed.recv() => r,
            n = notices.recv() => {
                if let Ok((to, json)) = n
                    && to == who
                    && !citytwin_city::access::Principal::public().id.eq(&who)
                    && tx.send((last, json)).await.is_err()
                {
                    return;
                }
                continue;
            }
            () = stop.wait() => return,
        };
        match next {
            Ok(c) => {
                if c.seq <= last {
                    continue;
                }
                last = c.seq;
                if filter.matches(&c) && tx.send((c.seq, filter.render(&c))).await.is_err() {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                let Some(l) = catch_up(&city, &filter, last, &tx).await else {
                    return;
                };
                last = l;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn catch_up(
    city: &City,
    filter: &FeedFilter,
    mut last: u64,
    tx: &mpsc::Sender<(u64, Arc<str>)>,
) -> Option<u64> {
    loop {
        let page = match city.changes_after(last, 5_000).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "feed catch-up failed");
                return None;
            }
        };
        if page.is_empty() {
            return Some(last);
        }
        for c in page {
            last = c.seq;
            if filter.matches(&c) {
                tx.send((c.seq, filter.render(&c))).await.ok()?;
            }
        }
    }
}

fn start_feed(
    state: &AppState,
    caller: &Caller,
    filter: FeedFilter,
    since: Option<u64>,
) -> mpsc::Receiver<(u64, Arc<str>)> {
    let (tx, rx) = mpsc::channel(1024);
    let stop = crate::auth::Stop::of(state, caller.principal());
    let who = caller.principal().id.clone();
    tokio::spawn(follow(
        Arc::clone(&state.city),
        filter,
        since,
        tx,
        stop,
        who,
    ));
    rx
}

/// The change feed over a WebSocket: a `hello` with the current sequence number, then one
/// JSON text message per change.
#[utoipa::path(get, path = "/live", tag = "live",
    params(
        ("layers" = Option<String>, Query, description = "events, sensors, units (comma-separated; all when absent)"),
        ("bbox" = Option<String>, Query, description = "west,south,east,north"),
        ("grid" = Option<String>, Query, description = "territorial code of any level: only changes there"),
        ("kinds" = Option<String>, Query, description = "change kinds (event.reported, reading, alarm.raised, unit.moved, …)"),
        ("since" = Option<u64>, Query, description = "resume after this sequence number: every change after it is sent, none twice"),
    ),
    responses(
        (status = 101, description = "WebSocket: `{\"type\":\"hello\",\"seq\":N}`, then changes `{seq, at, kind, layer, id, lon, lat, grid, value|data}`"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn websocket(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let scope = feed_scope(&state, &caller);
    let (mut filter, since) = feed_params(&p, &headers)?;
    filter.scope = scope.scope;
    filter.masked = scope.masked;
    let ws = match ws {
        Ok(ws) => ws,
        Err(r) => return Ok(r.into_response()),
    };
    // a page of another site may not open the feed in its visitor's name
    if let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        && !same_origin(origin, &headers)
        && !state.settings.cors_origins.iter().any(|o| o == origin)
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "origin-refused",
            format!("WebSocket from origin {origin} refused: not this server's, nor configured"),
        ));
    }
    let permit = state.streams.open(&caller.principal().id)?;
    let rx = start_feed(&state, &caller, filter, since);
    // small buffers: a subscriber mostly receives, and a thousand of them should not cost
    // tungstenite's default 128 KiB read buffer each
    Ok(ws
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .on_upgrade(move |socket| async move {
            pump_ws(socket, rx).await;
            drop(permit);
        }))
}

/// Whether an `Origin` is the server's own (the host the request named).
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

async fn pump_ws(mut socket: WebSocket, mut rx: mpsc::Receiver<(u64, Arc<str>)>) {
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some((_, json)) = msg else { break };
                if socket.send(Message::Text(json.as_ref().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The change feed as server-sent events: each event's id is its sequence number, so a
/// reconnecting `EventSource` resumes from `Last-Event-ID` without a gap.
#[utoipa::path(get, path = "/live/sse", tag = "live",
    params(
        ("layers" = Option<String>, Query, description = "events, sensors, units (comma-separated)"),
        ("bbox" = Option<String>, Query, description = "west,south,east,north"),
        ("grid" = Option<String>, Query, description = "territorial code of any level"),
        ("kinds" = Option<String>, Query, description = "change kinds"),
        ("since" = Option<u64>, Query, description = "resume after this sequence number (or the Last-Event-ID header)"),
    ),
    responses(
        (status = 200, description = "text/event-stream of changes", content_type = "text/event-stream"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn sse(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = feed_scope(&state, &caller);
    let (mut filter, since) = feed_params(&p, &headers)?;
    filter.scope = scope.scope;
    filter.masked = scope.masked;
    let permit = state.streams.open(&caller.principal().id)?;
    let rx = start_feed(&state, &caller, filter, since);
    // the permit goes with the stream: dropped with it when the client leaves
    let stream = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        let (seq, json) = rx.recv().await?;
        let event = SseEvent::default().id(seq.to_string()).data(json.as_ref());
        Some((Ok::<_, std::convert::Infallible>(event), (rx, permit)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The changes between two times, oldest first: playback for a time slider.
#[utoipa::path(get, path = "/live/changes", tag = "live",
    params(
        ("from" = Option<String>, Query, description = "start (RFC 3339, inclusive)"),
        ("to" = Option<String>, Query, description = "end (RFC 3339, inclusive)"),
        ("after" = Option<u64>, Query, description = "only changes after this sequence number (paging)"),
        ("readings" = Option<bool>, Query, description = "include readings (default false)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "most changes, 1..=10000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "`changes`, and `next` (the `after` of the next page) when more may follow"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    let scope = feed_scope(&state, &caller);
    p.only(&["from", "to", "after", "readings", "limit"])?;
    let from = time("from", p.text("from"))?;
    let to = time("to", p.text("to"))?;
    let after = p.seq("after")?.unwrap_or(0);
    let readings = p.flag("readings")?.unwrap_or(false);
    let limit = p.count("limit", 1000, 10_000)?;
    let list = state
        .city
        .changes_between(&ChangeQuery {
            after_seq: after,
            from,
            to,
            readings,
            limit,
        })
        .await?;
    let mut out = String::from(r#"{"changes":["#);
    for (i, c) in list.iter().filter(|c| scope.matches(c)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&scope.render(c));
    }
    out.push(']');
    if list.len() == limit
        && let Some(c) = list.last()
    {
        let _ = write!(out, r#","next":{}"#, c.seq);
    }
    out.push('}');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

fn state_json(s: &LiveState, at: Millis, scope: &FeedFilter) -> Value {
    let shows = |layer: LiveLayer, code: Option<&str>| scope.shows(layer, code);
    let mut v = json!({
        "at": ts::format(at),
        "seq": s.seq,
        "events": s.events.values().filter(|e| shows(LiveLayer::Events, e.place.code())).map(|e| e.view(at)).collect::<Vec<_>>(),
        "sensors": s.sensors.values().filter(|x| shows(LiveLayer::Sensors, x.place.code())).collect::<Vec<_>>(),
        "units": s.units.values().filter(|u| shows(LiveLayer::Units, u.place.code())).collect::<Vec<_>>(),
    });
    for (layer, class) in &scope.masked {
        if let Some(part) = v.get_mut(layer.name()) {
            citytwin_city::desensitise::mask_json(part, class);
        }
    }
    v
}

/// Events, sensors and units as they stood at a time (now when absent).
#[utoipa::path(get, path = "/live/state", tag = "live",
    params(("at" = Option<String>, Query, description = "the time (RFC 3339); now when absent")),
    responses(
        (status = 200, description = "`events`, `sensors` (with the latest reading then) and `units`"),
        (status = 400, description = "a bad parameter", content_type = "application/problem+json"),
    ))]
pub(crate) async fn state_at(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    let scope = feed_scope(&state, &caller);
    p.only(&["at"])?;
    Ok(Json(match time("at", p.text("at"))? {
        None => state.city.with_live(|s| state_json(s, ts::now(), &scope)),
        Some(at) => state_json(&state.city.live_state_at(at).await?, at, &scope),
    }))
}
