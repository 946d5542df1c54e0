//! The data bureau's procedures over HTTP: requests for conditionally shared or opened layers
//! and their decisions (`/grants`), and objections to data (`/objections`). The rules are in
//! `citytwin_city::grants` and `citytwin_city::objections`; this only reads and answers.

use crate::app::AppState;
use crate::auth::Caller;
use crate::params::Params;
use crate::problem::{ApiResult, Problem};
use crate::routes::live::body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use citytwin_city::grants::{Approval, Grant, GrantRequest};
use citytwin_city::live::ts;
use citytwin_city::objections::{Decision, NewObjection, Objection, ObjectionState};
use serde::Deserialize;
use serde_json::{Value, json};

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/grants", get(list_grants).post(request_grant))
        .route("/grants/{id}", get(one_grant))
        .route("/grants/{id}/approve", post(approve_grant))
        .route("/grants/{id}/refuse", post(refuse_grant))
        .route("/grants/{id}/revoke", post(revoke_grant))
        .route("/objections", get(list_objections).post(object))
        .route("/objections/{id}", get(one_objection))
        .route("/objections/{id}/decision", post(decide))
}

/// A grant as the API and the command line show it: with its status now.
#[must_use]
pub fn grant_json(g: &Grant) -> Value {
    let mut v = serde_json::to_value(g).unwrap_or_default();
    v["status"] = g.status(ts::now()).into();
    v["decided_at"] = g.decided_at.map(ts::format).into();
    v
}

/// An objection as the API and the command line show it: overdue or not, and the working
/// days left to decide it.
#[must_use]
pub fn objection_json(o: &Objection, calendar: &citytwin_city::calendar::Calendar) -> Value {
    let now = ts::now();
    let mut v = serde_json::to_value(o).unwrap_or_default();
    v["decided_at"] = o.decided_at.map(ts::format).into();
    v["overdue"] = o.overdue(now).into();
    if o.disputes() {
        v["working_days_left"] = calendar.working_days_between(now, o.due).into();
    }
    v
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

/// The grants the caller may see: its department's, those it asked for, and its
/// department's layers' when it is their data steward.
#[utoipa::path(get, path = "/grants", tag = "governance",
    params(("status" = Option<String>, Query, description = "requested, approved, expired, refused or revoked")),
    responses((status = 200, description = "`grants`, oldest first")))]
pub(crate) async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.listing();
    p.only(&["status"])?;
    p.check(
        "status",
        |s| super::contract::GRANT_STATUSES.contains(&s),
        "requested, approved, expired, refused or revoked",
    )?;
    let now = ts::now();
    let list: Vec<Value> = state
        .city
        .grants_for(caller.principal())
        .iter()
        .filter(|g| p.text("status").is_none_or(|s| g.status(now) == s))
        .map(grant_json)
        .collect();
    Ok(Json(json!({ "grants": list })))
}

/// One grant the caller may see.
#[utoipa::path(get, path = "/grants/{id}", tag = "governance",
    params(("id" = String, Path, description = "grant id")),
    responses(
        (status = 200, description = "the grant"),
        (status = 404, description = "no such grant", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.listing();
    state
        .city
        .grants_for(caller.principal())
        .iter()
        .find(|g| g.id == id)
        .map(|g| Json(grant_json(g)))
        .ok_or_else(|| Problem::not_found(format!("no grant {id}")))
}

/// Asks for a layer shared (or, with `public`, opened) on conditions, with a purpose and a
/// term.
#[utoipa::path(post, path = "/grants", tag = "governance",
    request_body(content = String, content_type = "application/json",
        description = r#"{"layer": "…", "purpose": "…", "until": "2027-03-31", "fields": ["…"], "territory": "320102", "public": false}"#),
    responses(
        (status = 201, description = "the request, `requested`"),
        (status = 400, description = "a bad request", content_type = "application/problem+json"),
        (status = 404, description = "no layer to ask for", content_type = "application/problem+json"),
    ))]
pub(crate) async fn request_grant(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let req: GrantRequest = body(
        &raw,
        r#"{"layer", "purpose", "until"[, "fields", "territory", "public"]}"#,
    )?;
    let g = state
        .city
        .request_grant(&caller.cx, &req)
        .await
        .map_err(|e| match e {
            citytwin_city::Error::UnknownLayer(l) => {
                Problem::not_found(format!("no layer {l:?} shared or opened on conditions"))
            }
            e => caller.refused(e),
        })?;
    Ok(created(grant_json(&g)))
}

/// Approves a request (the owner department's data steward), on conditions that narrow it.
#[utoipa::path(post, path = "/grants/{id}/approve", tag = "governance",
    params(("id" = String, Path, description = "grant id")),
    request_body(content = String, content_type = "application/json",
        description = r#"{"until": "2027-01-31", "fields": ["…"], "territory": "…", "note": "…"} (each optional)"#),
    responses(
        (status = 200, description = "the grant, `approved`"),
        (status = 403, description = "not the owner's data steward", content_type = "application/problem+json"),
        (status = 409, description = "already decided", content_type = "application/problem+json"),
    ))]
pub(crate) async fn approve_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    caller.writes(&state)?;
    let a: Approval = body(&raw, r#"{"until", "fields", "territory", "note"}"#)?;
    let g = state
        .city
        .approve_grant(&caller.cx, &id, &a)
        .await
        .map_err(|e| caller.refused(e))?;
    Ok(Json(grant_json(&g)))
}

/// Refuses a request, with a reason.
#[utoipa::path(post, path = "/grants/{id}/refuse", tag = "governance",
    params(("id" = String, Path, description = "grant id")),
    request_body(content = String, content_type = "application/json", description = r#"{"reason": "…"}"#),
    responses(
        (status = 200, description = "the grant, `refused`"),
        (status = 403, description = "not the owner's data steward", content_type = "application/problem+json"),
    ))]
pub(crate) async fn refuse_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let (city, cx, id) = (&state.city, &caller.cx, &id);
    with_reason(&state, &caller, &raw, |r: String| async move {
        city.refuse_grant(cx, id, &r).await
    })
    .await
}

/// Ends a grant (the owner's steward) or withdraws a request (its grantee); it takes effect
/// on the next request.
#[utoipa::path(post, path = "/grants/{id}/revoke", tag = "governance",
    params(("id" = String, Path, description = "grant id")),
    request_body(content = String, content_type = "application/json", description = r#"{"reason": "…"}"#),
    responses(
        (status = 200, description = "the grant, `revoked`"),
        (status = 403, description = "neither the owner's steward nor the grantee", content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let (city, cx, id) = (&state.city, &caller.cx, &id);
    with_reason(&state, &caller, &raw, |r: String| async move {
        city.revoke_grant(cx, id, &r).await
    })
    .await
}

/// A step on a grant that takes a reason (refusing, revoking): read it, take the step,
/// answer with the grant.
async fn with_reason<F>(
    state: &AppState,
    caller: &Caller,
    raw: &[u8],
    step: impl FnOnce(String) -> F,
) -> ApiResult<Json<Value>>
where
    F: std::future::Future<Output = citytwin_city::Result<Grant>>,
{
    caller.writes(state)?;
    let r: Reason = body(raw, r#"{"reason": "…"}"#)?;
    let g = step(r.reason).await.map_err(|e| caller.refused(e))?;
    Ok(Json(grant_json(&g)))
}

/// The objections the caller may see: its own, and its department's layers' when it is
/// their data steward; overdue ones first.
#[utoipa::path(get, path = "/objections", tag = "governance",
    params(
        ("state" = Option<String>, Query, description = "open, upheld or rejected"),
        ("overdue" = Option<bool>, Query, description = "only open objections past their deadline"),
        ("layer" = Option<String>, Query, description = "only objections to this layer"),
    ),
    responses((status = 200, description = "`objections` (overdue first, then oldest first) and `overdue`, how many")))]
pub(crate) async fn list_objections(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.listing();
    p.only(&["state", "overdue", "layer"])?;
    p.check(
        "state",
        |s| serde_json::from_value::<ObjectionState>(json!(s)).is_ok(),
        "open, upheld or rejected",
    )?;
    p.check("layer", crate::params::is_layer, crate::params::LAYER)?;
    let now = ts::now();
    let overdue_only = p.flag("overdue")?.unwrap_or(false);
    let mut list = state.city.objections_for(caller.principal());
    list.retain(|o| {
        p.text("state").is_none_or(|s| o.state.name() == s)
            && p.text("layer").is_none_or(|l| o.layer == l)
            && (!overdue_only || o.overdue(now))
    });
    // overdue ones stand out: first
    list.sort_by_key(|o| (!o.overdue(now), o.filed_at));
    let overdue = list.iter().filter(|o| o.overdue(now)).count();
    let calendar = state.city.calendar();
    Ok(Json(json!({
        "overdue": overdue,
        "objections": list.iter().map(|o| objection_json(o, calendar)).collect::<Vec<_>>(),
    })))
}

/// One objection the caller may see.
#[utoipa::path(get, path = "/objections/{id}", tag = "governance",
    params(("id" = String, Path, description = "objection id")),
    responses(
        (status = 200, description = "the objection"),
        (status = 404, description = "no such objection", content_type = "application/problem+json"),
    ))]
pub(crate) async fn one_objection(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.listing();
    state
        .city
        .objections_for(caller.principal())
        .iter()
        .find(|o| o.id == id)
        .map(|o| Json(objection_json(o, state.city.calendar())))
        .ok_or_else(|| Problem::not_found(format!("no objection {id}")))
}

/// Objects to a datum — a feature of a layer the caller may see, or the whole layer — with a
/// reason; it shows as disputed at once, and the owner decides within five working days.
#[utoipa::path(post, path = "/objections", tag = "governance",
    request_body(content = String, content_type = "application/json", description = r#"{"layer": "…", "feature": 12, "reason": "…"}"#),
    responses(
        (status = 201, description = "the objection, with its deadline `due`"),
        (status = 401, description = "the public must sign in", content_type = "application/problem+json"),
        (status = 404, description = "no such layer or feature", content_type = "application/problem+json"),
    ))]
pub(crate) async fn object(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.writes(&state)?;
    let o: NewObjection = body(&raw, r#"{"layer", "reason"[, "feature"]}"#)?;
    let made = state
        .city
        .object(&caller.cx, &o)
        .await
        .map_err(|e| match e {
            citytwin_city::Error::UnknownLayer(l) => Problem::not_found(format!("no layer {l:?}")),
            e => caller.refused(e),
        })?;
    Ok(created(objection_json(&made, state.city.calendar())))
}

/// The owner's decision: `upheld` (saying what was corrected) or `rejected` (saying why);
/// the objector is told on its feed.
#[utoipa::path(post, path = "/objections/{id}/decision", tag = "governance",
    params(("id" = String, Path, description = "objection id")),
    request_body(content = String, content_type = "application/json", description = r#"{"outcome": "upheld|rejected", "reason": "…"}"#),
    responses(
        (status = 200, description = "the objection, decided"),
        (status = 403, description = "not the owner's data steward", content_type = "application/problem+json"),
        (status = 409, description = "already decided", content_type = "application/problem+json"),
    ))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    caller.writes(&state)?;
    let d: Decision = body(&raw, r#"{"outcome": "upheld|rejected", "reason": "…"}"#)?;
    let o = state
        .city
        .decide_objection(&caller.cx, &id, &d)
        .await
        .map_err(|e| caller.refused(e))?;
    Ok(Json(objection_json(&o, state.city.calendar())))
}
