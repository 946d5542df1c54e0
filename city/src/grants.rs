//! Conditional sharing and opening (Data art. 21–24): a department asks for a layer the
//! catalogue shares (or opens) only on conditions, with a purpose and a term; the owner
//! department's data steward approves — narrowing it to fields, a territory and a term — or
//! refuses; an approved grant ends by itself, and revoking it takes effect on the next
//! request. Every step is in the audit log.

use crate::access::{Context, Principal, Role};
use crate::catalog::{OpenClass, ShareClass};
use crate::live::Millis;
use crate::live::ts;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The grantee standing for the public, for a conditionally opened layer.
pub const PUBLIC: &str = "public";

/// The longest term a grant may run: a year, then it is asked for again.
pub const MAX_TERM_MS: Millis = 366 * 86_400_000;

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantState {
    /// asked for, not decided
    Requested,
    /// approved: in force until its term ends
    Approved,
    /// refused by the owner
    Refused,
    /// ended early by the owner (or withdrawn by the grantee)
    Revoked,
}

/// A request for a conditionally shared or opened layer, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `g-` and 12 hex digits
    pub id: String,
    /// the layer
    pub layer: String,
    /// the department it is for, or [`PUBLIC`] to open the layer to everyone
    pub grantee: String,
    /// what the data is for
    pub purpose: String,
    /// who asked
    pub requested_by: String,
    /// when
    #[serde(with = "ts")]
    pub requested_at: Millis,
    /// the end of the term (asked for, then as approved)
    #[serde(with = "ts")]
    pub until: Millis,
    /// only these fields (all when absent); personal fields listed here are shown as they
    /// are, others stay masked
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// only features in this territory (a division code)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub territory: Option<String>,
    /// where it stands
    pub state: GrantState,
    /// who decided (approved, refused or revoked)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// when (milliseconds since the epoch)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Millis>,
    /// the decision's reason or conditions
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Grant {
    /// Whether it lets its grantee read the layer at `now`.
    #[must_use]
    pub fn in_force(&self, now: Millis) -> bool {
        self.state == GrantState::Approved && now < self.until
    }

    /// What it is called in the API: `requested`, `approved`, `expired`, `refused`,
    /// `revoked`.
    #[must_use]
    pub fn status(&self, now: Millis) -> &'static str {
        match self.state {
            GrantState::Requested => "requested",
            GrantState::Approved if now < self.until => "approved",
            GrantState::Approved => "expired",
            GrantState::Refused => "refused",
            GrantState::Revoked => "revoked",
        }
    }

    /// Whether the grant is for this principal: its department, or the public for all.
    #[must_use]
    pub fn covers(&self, p: &Principal) -> bool {
        self.grantee == PUBLIC || p.department.as_deref() == Some(self.grantee.as_str())
    }
}

/// A request as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// the layer
    pub layer: String,
    /// what for
    pub purpose: String,
    /// the term's end (RFC 3339 or YYYY-MM-DD, Beijing time)
    pub until: String,
    /// for the public (conditional opening) rather than the asker's department
    #[serde(default)]
    pub public: bool,
    /// only these fields
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// only this territory
    #[serde(default)]
    pub territory: Option<String>,
}

/// An approval's conditions: each narrows the request (a shorter term, fewer fields, a
/// smaller territory), never widens it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// an earlier end
    #[serde(default)]
    pub until: Option<String>,
    /// fewer fields
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// a territory inside the asked one
    #[serde(default)]
    pub territory: Option<String>,
    /// conditions or remarks
    #[serde(default)]
    pub note: String,
}

/// Reads a term's end: RFC 3339, or a date meaning the end of that day in Beijing.
pub fn parse_until(s: &str) -> Result<Millis> {
    if let Ok(t) = ts::parse(s) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, fmt).map_err(|_| {
        Error::Invalid(format!(
            "until {s:?}: use a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })?;
    Ok(crate::clock::end_of(d))
}

fn check_term(until: Millis, now: Millis) -> Result<()> {
    if until <= now {
        return Err(Error::Invalid(
            "until: the term must end in the future".into(),
        ));
    }
    if until - now > MAX_TERM_MS {
        return Err(Error::Invalid(
            "until: a grant runs a year at most; ask again when it ends".into(),
        ));
    }
    Ok(())
}

/// Who decides: a data steward of the owner department, or the operator at the command line.
fn steward_of(p: &Principal, meta: &crate::LayerMeta) -> bool {
    p.is_cli()
        || (p.has(Role::DataSteward)
            && meta
                .classification
                .as_ref()
                .is_some_and(|c| p.department.as_deref() == Some(c.owner.as_str())))
}

/// A new request, checked: the asker's department (or the public) asks for a layer its
/// catalogue entry shares (or opens) on conditions, below level 3. A layer that is not so
/// is answered as unknown, exactly as one that does not exist.
pub fn request(
    p: &Principal,
    req: &GrantRequest,
    meta: Option<&crate::LayerMeta>,
    now: Millis,
) -> Result<Grant> {
    let Some(department) = p.department.clone() else {
        return Err(Error::Forbidden(
            "asking for data needs a department: sign in as its staff".into(),
        ));
    };
    crate::live::check_text("purpose", &req.purpose, 2000)?;
    if req.purpose.trim().is_empty() {
        return Err(Error::Invalid("purpose: say what the data is for".into()));
    }
    let unknown = || Error::UnknownLayer(req.layer.clone());
    let meta = meta.ok_or_else(unknown)?;
    let c = meta.classification.as_ref().ok_or_else(unknown)?;
    let conditional = if req.public {
        c.open == OpenClass::Conditional
    } else {
        c.share == ShareClass::Conditional
    };
    if !conditional || c.owner == department || c.level >= 3 {
        // level-3 data goes to others only as aggregates, which need no grant
        return Err(unknown());
    }
    let until = parse_until(&req.until)?;
    check_term(until, now)?;
    if let Some(fields) = &req.fields {
        check_fields(meta, fields)?;
    }
    if let Some(t) = &req.territory {
        crate::keys::check_territory(t)?;
    }
    Ok(Grant {
        id: format!("g-{}", crate::keys::random_hex(6)?),
        layer: req.layer.clone(),
        grantee: if req.public {
            PUBLIC.to_owned()
        } else {
            department
        },
        purpose: req.purpose.clone(),
        requested_by: p.id.clone(),
        requested_at: now,
        until,
        fields: req.fields.clone(),
        territory: req.territory.clone(),
        state: GrantState::Requested,
        decided_by: None,
        decided_at: None,
        note: String::new(),
    })
}

/// Approves a request on its conditions: only the owner's steward, only a request.
pub fn approve(
    p: &Principal,
    mut g: Grant,
    a: &Approval,
    meta: &crate::LayerMeta,
    now: Millis,
) -> Result<Grant> {
    decidable(p, &g, meta, now)?;
    if let Some(u) = &a.until {
        let u = parse_until(u)?;
        if u > g.until {
            return Err(Error::Invalid(
                "until: an approval may shorten the term asked for, not lengthen it".into(),
            ));
        }
        g.until = u;
    }
    check_term(g.until, now)?;
    if let Some(f) = &a.fields {
        if let Some(asked) = &g.fields
            && let Some(extra) = f.iter().find(|x| !asked.contains(x))
        {
            return Err(Error::Invalid(format!(
                "fields: {extra:?} was not asked for"
            )));
        }
        check_fields(meta, f)?;
        g.fields = Some(f.clone());
    }
    if let Some(t) = &a.territory {
        crate::keys::check_territory(t)?;
        if !crate::access::within(g.territory.as_deref(), Some(t)) {
            return Err(Error::Invalid(format!(
                "territory {t:?} is not inside the territory asked for"
            )));
        }
        g.territory = Some(t.clone());
    }
    crate::live::check_text("note", &a.note, 2000)?;
    Ok(decided(p, g, GrantState::Approved, &a.note, now))
}

/// Refuses a request, with a reason.
pub fn refuse(
    p: &Principal,
    g: Grant,
    reason: &str,
    meta: &crate::LayerMeta,
    now: Millis,
) -> Result<Grant> {
    decidable(p, &g, meta, now)?;
    check_reason(reason)?;
    Ok(decided(p, g, GrantState::Refused, reason, now))
}

/// Ends a grant early (or withdraws a request): the owner's steward, or whoever asked for
/// it, or its grantee department.
pub fn revoke(
    p: &Principal,
    g: Grant,
    reason: &str,
    meta: &crate::LayerMeta,
    now: Millis,
) -> Result<Grant> {
    let grantee = p.id == g.requested_by || (g.grantee != PUBLIC && g.covers(p));
    if !steward_of(p, meta) && !grantee {
        return Err(Error::Forbidden(format!(
            "grant {}: only the owner's data steward or the grantee may revoke it",
            g.id
        )));
    }
    if !matches!(g.state, GrantState::Requested | GrantState::Approved)
        || g.status(now) == "expired"
    {
        return Err(Error::Conflict {
            detail: format!("grant {} is {}", g.id, g.status(now)),
            state: g.status(now).into(),
            allowed: Vec::new(),
        });
    }
    check_reason(reason)?;
    Ok(decided(p, g, GrantState::Revoked, reason, now))
}

fn decidable(p: &Principal, g: &Grant, meta: &crate::LayerMeta, now: Millis) -> Result<()> {
    if !steward_of(p, meta) {
        return Err(Error::Forbidden(format!(
            "grant {}: only a data steward of the layer's owner department decides it",
            g.id
        )));
    }
    if g.state != GrantState::Requested {
        return Err(Error::Conflict {
            detail: format!(
                "grant {} is {} and cannot be decided again",
                g.id,
                g.status(now)
            ),
            state: g.status(now).into(),
            allowed: Vec::new(),
        });
    }
    Ok(())
}

fn decided(p: &Principal, mut g: Grant, to: GrantState, note: &str, now: Millis) -> Grant {
    g.state = to;
    g.decided_by = Some(p.id.clone());
    g.decided_at = Some(now);
    note.clone_into(&mut g.note);
    g
}

/// The grants a principal may see: those for its department, those it asked for, and — for
/// a data steward — those for its department's layers; security admins and auditors see all.
#[must_use]
pub fn visible_to(
    p: &Principal,
    grants: &[Grant],
    owner_of: impl Fn(&str) -> Option<String>,
) -> Vec<Grant> {
    let all = p.has(Role::SecurityAdmin) || p.has(Role::Auditor) || p.is_cli();
    grants
        .iter()
        .filter(|g| {
            all || p.id == g.requested_by
                || (g.grantee != PUBLIC && g.covers(p))
                || (p.has(Role::DataSteward)
                    && p.department.is_some()
                    && owner_of(&g.layer) == p.department)
        })
        .cloned()
        .collect()
}

/// The grants kept in a store, oldest first.
pub async fn load(store: &dyn crate::Store) -> Result<Vec<Grant>> {
    store
        .records("grant")
        .await?
        .iter()
        .map(|b| {
            serde_json::from_str(b).map_err(|e| Error::Invalid(format!("a stored grant: {e}")))
        })
        .collect()
}

/// Keeps a grant in a store.
pub async fn save(store: &dyn crate::Store, g: &Grant) -> Result<()> {
    let body = serde_json::to_string(g).map_err(|e| Error::Invalid(e.to_string()))?;
    store
        .put_record("grant", &g.id, g.requested_at, &body)
        .await
}

impl crate::City {
    /// Every grant, oldest first.
    #[must_use]
    pub fn grants(&self) -> Vec<Grant> {
        self.governance.grants()
    }

    /// The grants a principal may see.
    #[must_use]
    pub fn grants_for(&self, p: &Principal) -> Vec<Grant> {
        visible_to(p, &self.grants(), |layer| {
            self.layer(layer)
                .and_then(|l| l.meta.classification.as_ref().map(|c| c.owner.clone()))
        })
    }

    /// Asks for a conditionally shared (or opened) layer.
    pub async fn request_grant(&self, cx: &Context, req: &GrantRequest) -> Result<Grant> {
        let meta = self.layer(&req.layer).map(|l| l.meta.clone());
        let g = request(&cx.principal, req, meta.as_ref(), ts::now())?;
        self.keep_grant(cx, &g, "grant.request", &g.purpose).await?;
        Ok(g)
    }

    /// Approves a request.
    pub async fn approve_grant(&self, cx: &Context, id: &str, a: &Approval) -> Result<Grant> {
        let (g, meta) = self.grant_and_layer(id)?;
        let g = approve(&cx.principal, g, a, &meta, ts::now())?;
        self.keep_grant(cx, &g, "grant.approve", &a.note).await?;
        Ok(g)
    }

    /// Refuses a request.
    pub async fn refuse_grant(&self, cx: &Context, id: &str, reason: &str) -> Result<Grant> {
        let (g, meta) = self.grant_and_layer(id)?;
        let g = refuse(&cx.principal, g, reason, &meta, ts::now())?;
        self.keep_grant(cx, &g, "grant.refuse", reason).await?;
        Ok(g)
    }

    /// Ends a grant; the next request of its grantee is answered without it.
    pub async fn revoke_grant(&self, cx: &Context, id: &str, reason: &str) -> Result<Grant> {
        let (g, meta) = self.grant_and_layer(id)?;
        let g = revoke(&cx.principal, g, reason, &meta, ts::now())?;
        self.keep_grant(cx, &g, "grant.revoke", reason).await?;
        Ok(g)
    }

    fn grant_and_layer(&self, id: &str) -> Result<(Grant, crate::LayerMeta)> {
        let g = self
            .grants()
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| Error::NotFound(format!("no grant {id}")))?;
        let meta = self
            .layer(&g.layer)
            .map(|l| l.meta.clone())
            .ok_or_else(|| Error::NotFound(format!("grant {id}: layer {} is gone", g.layer)))?;
        Ok((g, meta))
    }

    async fn keep_grant(&self, cx: &Context, g: &Grant, action: &str, detail: &str) -> Result<()> {
        save(self.store().as_ref(), g).await?;
        self.governance.remember_grant(g.clone());
        self.audit_durable(cx.record(action, &format!("{} {}", g.id, g.layer), true, None, detail))
            .await;
        Ok(())
    }
}

fn check_reason(reason: &str) -> Result<()> {
    crate::live::check_text("reason", reason, 2000)?;
    if reason.trim().is_empty() {
        return Err(Error::Invalid("reason: say why".into()));
    }
    Ok(())
}

fn check_fields(meta: &crate::LayerMeta, fields: &[String]) -> Result<()> {
    if fields.is_empty() {
        return Err(Error::Invalid(
            "fields: name at least one, or leave fields out".into(),
        ));
    }
    for f in fields {
        if meta.field_index(f).is_none() {
            return Err(Error::Invalid(format!(
                "fields: layer {} has no field {f:?}",
                meta.name
            )));
        }
    }
    Ok(())
}
