//! OGC SensorThings API 1.1 at `/v1.1`: the service root, every entity set, entity,
//! navigation, property and `$value`/`$ref` path with the query options, and Observations
//! created by POST — answered by `citytwin_city::sta` over the sensors layer's read plan.

use crate::app::{AppState, base_url};
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use citytwin_city::access::ReadPlan;
use citytwin_city::sta::{Answer, VERSION, service_root};
use serde_json::Value;

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1.1", get(root))
        .route("/v1.1/{*path}", get(read).post(create))
}

/// The broker of the MQTT extension, as the service root names it (no login).
fn broker(state: &AppState) -> Option<String> {
    let url = state.settings.mqtt.as_deref()?;
    let (host, port, _) = crate::mqtt::parse_url_login(url).ok()?;
    Some(format!("mqtt://{host}:{port}"))
}

/// The service root: the entity sets, the conformance classes and the MQTT endpoint.
#[utoipa::path(get, path = "/v1.1", tag = "sensorthings",
    responses((status = 200, description = "`value`: the entity sets and their URLs; `serverSettings.conformance`")))]
pub(crate) async fn root(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Json<Value> {
    caller.public();
    let base = format!("{}/{VERSION}", base_url(&headers));
    Json(service_root(&base, broker(&state).as_deref()))
}

fn sensors_plan(state: &AppState, caller: &Caller) -> ApiResult<ReadPlan> {
    let (_, plan) = caller
        .layer(state, "sensors")
        .map_err(|_| Problem::not_found("no resource sensors"))?;
    plan.features_allowed()?;
    Ok(plan)
}

/// A refusal of the query language as a problem naming the option at fault.
fn problem(e: citytwin_city::Error) -> Problem {
    if let citytwin_city::Error::Invalid(d) = &e
        && let Some((option, _)) = d.split_once(':')
        && option.starts_with('$')
    {
        return Problem::bad_parameter(option, d.clone());
    }
    Problem::from(e)
}

/// Query text with `$skip` replaced: the next page of the same request.
fn next_link(base: &str, path: &str, params: &[(String, String)], skip: u64) -> String {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(k, _)| k != "$skip") {
        pairs.append_pair(k, v);
    }
    pairs.append_pair("$skip", &skip.to_string());
    format!("{base}/{path}?{}", pairs.finish())
}

/// An entity set, an entity, a navigation, a property or its `$value`, with `$filter`,
/// `$expand`, `$select`, `$orderby`, `$top` (at most 10,000; default 100), `$skip` and
/// `$count`.
#[utoipa::path(get, path = "/v1.1/{path}", tag = "sensorthings",
    params(
        ("path" = String, Path, description = "a resource path: Things, Datastreams('WL-0001')/Observations, Observations(42)/Datastream/Thing, Things('WL-0001')/name/$value …"),
        ("$filter" = Option<String>, Query, description = "OData filter: eq ne gt ge lt le, and or not, add sub mul div mod, string, date, math and geo functions"),
        ("$expand" = Option<String>, Query, description = "related entities to include, with nested options: Datastreams($select=name;$expand=Observations($top=1))"),
        ("$select" = Option<String>, Query, description = "properties to keep, comma-separated"),
        ("$orderby" = Option<String>, Query, description = "properties with asc or desc, comma-separated"),
        ("$top" = Option<u64>, Query, description = "most entities, 0..=10000 (default 100)"),
        ("$skip" = Option<u64>, Query, description = "entities skipped"),
        ("$count" = Option<bool>, Query, description = "include @iot.count"),
    ),
    responses(
        (status = 200, description = "the entity, or `value` with `@iot.nextLink` when more follow"),
        (status = 400, description = "a bad path or query option", content_type = "application/problem+json"),
        (status = 404, description = "no such entity (or one the caller may not see)", content_type = "application/problem+json"),
    ))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let plan = sensors_plan(&state, &caller)?;
    caller.expensive(&state)?;
    let base = format!("{}/{VERSION}", base_url(&headers));
    let answer = state
        .city
        .sensorthings(&plan, &path, &params, &base)
        .await
        .map_err(problem)?;
    let mut body = answer.body;
    let count = match &body {
        Answer::Json(v) => v["value"].as_array().map_or(1, Vec::len),
        Answer::Text(_) => 1,
    };
    caller.served(&state, &plan, Some(count as u64));
    if let (Some(skip), Answer::Json(Value::Object(o))) = (answer.next_skip, &mut body) {
        o.insert(
            "@iot.nextLink".into(),
            Value::String(next_link(&base, &path, &params, skip)),
        );
    }
    Ok(match body {
        Answer::Json(v) => Json(v).into_response(),
        Answer::Text(t) => {
            let mut r = t.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    })
}

/// Creates an Observation — a reading, durable when answered, on the feed like any other:
/// at `Observations` (the body names its `Datastream`) or `Datastreams('WL-0001')/Observations`.
#[utoipa::path(post, path = "/v1.1/{path}", tag = "sensorthings",
    params(("path" = String, Path, description = "Observations or Datastreams('WL-0001')/Observations")),
    request_body(content = String, content_type = "application/json",
        description = r#"{"result": 0.42, "phenomenonTime": "2026-11-30T08:00:00Z", "Datastream": {"@iot.id": "WL-0001"}}"#),
    responses(
        (status = 201, description = "the Observation; `Location` is its URL"),
        (status = 400, description = "a bad Observation, or one of an unknown Datastream", content_type = "application/problem+json"),
        (status = 403, description = "the caller may not write this sensor's readings", content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let body: Value = crate::routes::live::body(&raw, "a SensorThings Observation")?;
    let (seq, reading) = state
        .city
        .sta_create(&caller.cx, &path, &body)
        .await
        .map_err(|e| caller.refused(e))?;
    state.metrics.readings.inc();
    let base = format!("{}/{VERSION}", base_url(&headers));
    let location = format!("{base}/Observations({seq})");
    let shown = citytwin_city::sta::observation_message(
        &base,
        seq,
        &reading.sensor,
        reading.at,
        reading.value,
    );
    let mut resp = (StatusCode::CREATED, Json(shown)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
