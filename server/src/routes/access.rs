//! Access over HTTP: who am I (`/me`), the audit log for auditors (`/audit`), and keys and
//! revocations for security admins (`/admin/keys`, `/admin/revocations`).

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
use citytwin_city::access::{Duty, Role};
use citytwin_city::audit::AuditQuery;
use citytwin_city::keys::NewKey;
use citytwin_city::live::ts;
use serde::Deserialize;
use serde_json::{Value, json};

/// Routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/auth/config", get(auth_config))
        .route("/audit", get(audit))
        .route("/admin/keys", get(list_keys).post(create_key))
        .route("/admin/keys/{id}/revoke", post(revoke_key))
        .route("/admin/revocations", get(revocations).post(revoke))
}

/// How the pages sign in: the identity provider, the client id and scopes, or
/// `enabled: false` when no one signs in.
#[utoipa::path(get, path = "/auth/config", tag = "access",
    responses((status = 200, description = "`enabled`, `issuer`, `client_id`, `scopes`, `audience`")))]
pub(crate) async fn auth_config(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    caller.public();
    Json(match &state.oidc {
        Some(o) => {
            let c = o.config();
            json!({ "enabled": true, "issuer": c.issuer, "client_id": c.client_id, "scopes": c.scopes, "audience": c.audience })
        }
        None => json!({ "enabled": false }),
    })
}

/// Who the request is from: principal id, kind, department, roles, territory, and the
/// layers it may read.
#[utoipa::path(get, path = "/me", tag = "access",
    responses((status = 200, description = "the principal and the layers it may read")))]
pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    caller.listing();
    let p = caller.principal();
    let layers: Vec<Value> = state
        .city
        .visible_layers(p)
        .iter()
        .map(|(l, plan)| {
            json!({
                "layer": l.meta.name,
                "basis": plan.basis,
                "territory": plan.territory.as_ref().map(|(_, t)| t),
            })
        })
        .collect();
    Json(json!({
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        "department": p.department,
        "roles": p.roles,
        "territory": p.territory,
        "expires": p.expires.map(ts::format),
        "layers": layers,
    }))
}

/// An audit entry as `/audit` and `citytwin audit show` print it: its time as RFC 3339.
#[must_use]
pub fn audit_json(e: &citytwin_city::audit::AuditEntry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["at"] = ts::format(e.at).into();
    v
}

/// A key as `/admin/keys` and `citytwin keys list` print it: never its hash, times as RFC 3339.
#[must_use]
pub fn key_json(k: &citytwin_city::keys::ApiKey) -> Value {
    let mut v = serde_json::to_value(k).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("hash");
    }
    v["created_at"] = ts::format(k.created_at).into();
    v["expires_at"] = ts::format(k.expires_at).into();
    v["revoked_at"] = k.revoked_at.map(ts::format).into();
    v
}

/// A revocation as `/admin/revocations` and `citytwin users list` print it.
#[must_use]
pub fn revocation_json(r: &citytwin_city::keys::Revocation) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["at"] = ts::format(r.at).into();
    v
}

fn time(p: &Params, name: &str) -> ApiResult<Option<i64>> {
    p.text(name)
        .map(|t| ts::parse(t).map_err(|e| Problem::bad_parameter(name, e)))
        .transpose()
}

/// The audit log, oldest first: for the auditor role only.
#[utoipa::path(get, path = "/audit", tag = "access",
    params(
        ("after" = Option<u64>, Query, description = "only entries after this sequence number (paging)"),
        ("from" = Option<String>, Query, description = "from this time (RFC 3339)"),
        ("to" = Option<String>, Query, description = "up to this time (RFC 3339)"),
        ("principal" = Option<String>, Query, description = "only this principal (user:…, key:…, public)"),
        ("target" = Option<String>, Query, description = "only this layer or thing (events/12)"),
        ("action" = Option<String>, Query, description = "only this action (read, event.accept, …)"),
        ("decision" = Option<String>, Query, description = "allow or deny"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "most entries, 1..=10000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "`entries`, and `next` when more may follow"),
        (status = 401, description = "no credentials", content_type = "application/problem+json"),
        (status = 403, description = "not an auditor", content_type = "application/problem+json"),
    ))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Json<Value>> {
    caller.duty(&state, Duty::ReadAudit, "audit")?;
    p.only(&[
        "after",
        "from",
        "to",
        "principal",
        "target",
        "action",
        "decision",
        "limit",
    ])?;
    let after = p.seq("after")?.unwrap_or(0);
    if let Some(d) = p.text("decision")
        && d != "allow"
        && d != "deny"
    {
        return Err(Problem::bad_parameter(
            "decision",
            format!("allow or deny, not {d:?}"),
        ));
    }
    let limit = p.count("limit", 1000, 10_000)?;
    let entries = state
        .city
        .store()
        .read_audit(&AuditQuery {
            after,
            from: time(&p, "from")?,
            to: time(&p, "to")?,
            principal: p.text("principal").map(str::to_owned),
            target: p.text("target").map(str::to_owned),
            action: p.text("action").map(str::to_owned),
            decision: p.text("decision").map(str::to_owned),
            limit,
        })
        .await?;
    state.city.audit(
        caller
            .cx
            .record("audit.read", "audit", true, Some(entries.len() as u64), ""),
    );
    let next = (entries.len() == limit).then(|| entries.last().map(|e| e.seq));
    let list: Vec<Value> = entries.iter().map(audit_json).collect();
    Ok(Json(json!({ "entries": list, "next": next.flatten() })))
}

/// API keys (never their secrets): for the security-admin role.
#[utoipa::path(get, path = "/admin/keys", tag = "access",
    responses(
        (status = 200, description = "`keys`"),
        (status = 403, description = "not a security admin", content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.duty(&state, Duty::ManageAccess, "keys")?;
    let keys: Vec<Value> = state
        .city
        .credentials()
        .list()
        .await?
        .iter()
        .map(key_json)
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    roles: Vec<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    territory: Option<String>,
    #[serde(default)]
    sensors: Option<Vec<String>>,
    #[serde(default = "year")]
    days: u32,
}

fn year() -> u32 {
    365
}

/// Makes an API key: the answer holds its token, shown this once.
#[utoipa::path(post, path = "/admin/keys", tag = "access",
    request_body(content = String, content_type = "application/json",
        description = r#"{"name": "gateway-01", "roles": ["gateway"], "sensors": ["WL-*"], "department": null, "territory": null, "days": 365}"#),
    responses(
        (status = 201, description = "the key and its `token`"),
        (status = 400, description = "a bad key", content_type = "application/problem+json"),
        (status = 403, description = "not a security admin", content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.duty(&state, Duty::ManageAccess, "keys")?;
    let b: KeyBody = body(&raw, "a key")?;
    let roles = b
        .roles
        .iter()
        .map(|r| {
            Role::parse(r)
                .ok_or_else(|| Problem::bad_parameter("roles", format!("unknown role {r:?}")))
        })
        .collect::<ApiResult<_>>()?;
    if !(1..=3650).contains(&b.days) {
        return Err(Problem::bad_parameter("days", "days must be 1 to 3650"));
    }
    let (key, token) = state
        .city
        .credentials()
        .create(NewKey {
            name: b.name,
            roles,
            department: b.department,
            territory: b.territory,
            sensors: b.sensors,
            expires_at: ts::now() + i64::from(b.days) * 86_400_000,
            created_by: caller.principal().id.clone(),
        })
        .await?;
    state
        .city
        .audit_durable(caller.cx.record(
            "key.create",
            &format!("keys/{}", key.id),
            true,
            None,
            &key.name,
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": key.id, "name": key.name, "token": token, "expires_at": ts::format(key.expires_at) })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: String,
}

/// Revokes a key: refused from its next request on, its open streams closed.
#[utoipa::path(post, path = "/admin/keys/{id}/revoke", tag = "access",
    params(("id" = String, Path, description = "key id")),
    request_body(content = String, content_type = "application/json", description = r#"{"reason": "…"}"#),
    responses(
        (status = 200, description = "the key, revoked"),
        (status = 403, description = "not a security admin", content_type = "application/problem+json"),
        (status = 404, description = "no such key", content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    caller.duty(&state, Duty::ManageAccess, "keys")?;
    let b: ReasonBody = if raw.is_empty() {
        ReasonBody {
            reason: String::new(),
        }
    } else {
        body(&raw, r#"{"reason": …}"#)?
    };
    let key = state
        .city
        .credentials()
        .revoke_key(&id, &b.reason, &caller.principal().id)
        .await?;
    state
        .city
        .audit_durable(
            caller
                .cx
                .record("key.revoke", &format!("keys/{id}"), true, None, &b.reason),
        )
        .await;
    Ok(Json(
        json!({ "id": key.id, "revoked_at": key.revoked_at.map(ts::format) }),
    ))
}

/// Revocations of users and keys, oldest first: for the security-admin role.
#[utoipa::path(get, path = "/admin/revocations", tag = "access",
    responses(
        (status = 200, description = "`revocations`"),
        (status = 403, description = "not a security admin", content_type = "application/problem+json"),
    ))]
pub(crate) async fn revocations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.duty(&state, Duty::ManageAccess, "revocations")?;
    let list: Vec<Value> = state
        .city
        .credentials()
        .revocations()
        .await?
        .iter()
        .map(revocation_json)
        .collect();
    Ok(Json(json!({ "revocations": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    subject: String,
    #[serde(default = "yes")]
    revoked: bool,
    #[serde(default)]
    reason: String,
}

fn yes() -> bool {
    true
}

/// Cuts a user (`user:<subject>`) or key (`key:<id>`) off at once, or restores a user
/// (`revoked: false`).
#[utoipa::path(post, path = "/admin/revocations", tag = "access",
    request_body(content = String, content_type = "application/json", description = r#"{"subject": "user:…", "revoked": true, "reason": "…"}"#),
    responses(
        (status = 201, description = "recorded; the subject's next request is refused and its streams close"),
        (status = 400, description = "a bad subject", content_type = "application/problem+json"),
        (status = 403, description = "not a security admin", content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    raw: Bytes,
) -> ApiResult<Response> {
    caller.duty(&state, Duty::ManageAccess, "revocations")?;
    let b: RevokeBody = body(
        &raw,
        r#"{"subject": "user:…|key:…", "revoked": true, "reason": …}"#,
    )?;
    if b.revoked
        && let Some(id) = b.subject.strip_prefix("key:")
    {
        state
            .city
            .credentials()
            .revoke_key(id, &b.reason, &caller.principal().id)
            .await?;
    } else {
        state
            .city
            .credentials()
            .revoke(&b.subject, b.revoked, &b.reason, &caller.principal().id)
            .await
            .map_err(|e| match e {
                citytwin_city::Error::Invalid(d) => Problem::bad_parameter("subject", d),
                e => Problem::from(e),
            })?;
    }
    let action = if b.revoked { "revoke" } else { "restore" };
    state
        .city
        .audit_durable(caller.cx.record(action, &b.subject, true, None, &b.reason))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "subject": b.subject, "revoked": b.revoked })),
    )
        .into_response())
}
