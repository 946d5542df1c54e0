//! Objections (Data art. 35): anyone signed in may object that a datum is wrong — a feature
//! of a layer, or a whole layer — with a reason. The datum is marked as disputed at once,
//! wherever it is served (`disputed` on the feature in items, tiles and renders; a flag in
//! the catalogue); the owner department's data steward decides within five working days
//! (upheld, saying what was corrected, or rejected, saying why), counted with the public
//! holiday calendar; the objector is told on its feed.

use crate::access::{Context, Principal, Role};
use crate::calendar::Calendar;
use crate::live::Millis;
use crate::live::ts;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Working days the owner has to decide (Data art. 35).
pub const WORKING_DAYS_TO_DECIDE: u32 = 5;

/// Where an objection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectionState {
    /// filed, not decided: the datum shows as disputed
    Open,
    /// the owner agreed and corrected the datum
    Upheld,
    /// the owner disagreed
    Rejected,
}

impl ObjectionState {
    /// The state's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Upheld => "upheld",
            Self::Rejected => "rejected",
        }
    }
}

/// An objection to a datum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objection {
    /// `o-` and 12 hex digits
    pub id: String,
    /// the layer
    pub layer: String,
    /// the feature objected to; the whole layer when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<i64>,
    /// what is wrong
    pub reason: String,
    /// who objected
    pub by: String,
    /// their department, if any
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// when
    #[serde(with = "ts")]
    pub filed_at: Millis,
    /// the end of the fifth working day after (Beijing time)
    #[serde(with = "ts")]
    pub due: Millis,
    /// where it stands
    pub state: ObjectionState,
    /// who decided
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// when (milliseconds since the epoch)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Millis>,
    /// what was corrected (upheld) or why not (rejected)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
}

impl Objection {
    /// Whether it is still open past its deadline.
    #[must_use]
    pub fn overdue(&self, now: Millis) -> bool {
        self.state == ObjectionState::Open && now > self.due
    }

    /// Whether it marks the datum as disputed now.
    #[must_use]
    pub fn disputes(&self) -> bool {
        self.state == ObjectionState::Open
    }
}

/// An objection as filed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewObjection {
    /// the layer
    pub layer: String,
    /// the feature (the whole layer when absent)
    #[serde(default)]
    pub feature: Option<i64>,
    /// what is wrong
    pub reason: String,
}

/// The owner's decision.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `upheld` or `rejected`
    pub outcome: ObjectionState,
    /// what was corrected, or why the datum stands
    pub reason: String,
}

fn text(name: &str, t: &str) -> Result<()> {
    crate::live::check_text(name, t, 2000)?;
    if t.trim().is_empty() {
        return Err(Error::Invalid(format!("{name}: say what")));
    }
    Ok(())
}

/// A new objection, checked: by someone signed in, to a layer it may read (the caller
/// checks) and, when given, a feature of it.
pub fn file(
    p: &Principal,
    o: &NewObjection,
    feature_exists: bool,
    calendar: &Calendar,
    now: Millis,
) -> Result<Objection> {
    if p.is_public() {
        return Err(Error::Forbidden(
            "objecting to a datum needs a signed-in person: sign in".into(),
        ));
    }
    text("reason", &o.reason)?;
    if let Some(f) = o.feature
        && !feature_exists
    {
        return Err(Error::NotFound(format!(
            "layer {} has no feature {f}",
            o.layer
        )));
    }
    Ok(Objection {
        id: format!("o-{}", crate::keys::random_hex(6)?),
        layer: o.layer.clone(),
        feature: o.feature,
        reason: o.reason.clone(),
        by: p.id.clone(),
        department: p.department.clone(),
        filed_at: now,
        due: calendar.deadline(now, WORKING_DAYS_TO_DECIDE),
        state: ObjectionState::Open,
        decided_by: None,
        decided_at: None,
        outcome: String::new(),
    })
}

/// The owner's decision on an open objection: only a data steward of the layer's owner
/// department (or the operator at the command line).
pub fn decide(
    p: &Principal,
    mut o: Objection,
    d: &Decision,
    owner: Option<&str>,
    now: Millis,
) -> Result<Objection> {
    let steward = p.is_cli()
        || (p.has(Role::DataSteward) && owner.is_some() && p.department.as_deref() == owner);
    if !steward {
        return Err(Error::Forbidden(format!(
            "objection {}: only a data steward of the layer's owner department decides it",
            o.id
        )));
    }
    if o.state != ObjectionState::Open {
        return Err(Error::Conflict {
            detail: format!("objection {} is already {}", o.id, o.state.name()),
            state: o.state.name().into(),
            allowed: Vec::new(),
        });
    }
    if d.outcome == ObjectionState::Open {
        return Err(Error::Invalid(
            "outcome: upheld (say what was corrected) or rejected (say why)".into(),
        ));
    }
    text("reason", &d.reason)?;
    o.state = d.outcome;
    o.decided_by = Some(p.id.clone());
    o.decided_at = Some(now);
    o.outcome.clone_from(&d.reason);
    Ok(o)
}

/// The objections a principal may see: its own, those to its department's layers when it
/// is their data steward, and all for security admins and auditors.
#[must_use]
pub fn visible_to(
    p: &Principal,
    all: &[Objection],
    owner_of: impl Fn(&str) -> Option<String>,
) -> Vec<Objection> {
    let everything = p.has(Role::SecurityAdmin) || p.has(Role::Auditor) || p.is_cli();
    all.iter()
        .filter(|o| {
            everything
                || o.by == p.id
                || (p.has(Role::DataSteward)
                    && p.department.is_some()
                    && owner_of(&o.layer) == p.department)
        })
        .cloned()
        .collect()
}

/// The objections kept in a store, oldest first.
pub async fn load(store: &dyn crate::Store) -> Result<Vec<Objection>> {
    store
        .records("objection")
        .await?
        .iter()
        .map(|b| {
            serde_json::from_str(b).map_err(|e| Error::Invalid(format!("a stored objection: {e}")))
        })
        .collect()
}

/// Keeps an objection in a store.
pub async fn save(store: &dyn crate::Store, o: &Objection) -> Result<()> {
    let body = serde_json::to_string(o).map_err(|e| Error::Invalid(e.to_string()))?;
    store
        .put_record("objection", &o.id, o.filed_at, &body)
        .await
}

/// What an objector is told when its objection is decided, on its feed.
#[must_use]
pub fn notice(o: &Objection) -> String {
    serde_json::json!({
        "type": "notice",
        "kind": "objection.decided",
        "objection": o.id,
        "layer": o.layer,
        "feature": o.feature,
        "outcome": o.state.name(),
        "reason": o.outcome,
        "at": o.decided_at.map(ts::format),
    })
    .to_string()
}

impl crate::City {
    /// The objections a principal may see, oldest first.
    #[must_use]
    pub fn objections_for(&self, p: &Principal) -> Vec<Objection> {
        visible_to(p, &self.governance.objections(), |layer| {
            self.layer(layer)
                .and_then(|l| l.meta.classification.as_ref().map(|c| c.owner.clone()))
        })
    }

    /// Files an objection; the datum shows as disputed from the next request on.
    pub async fn object(&self, cx: &Context, o: &NewObjection) -> Result<Objection> {
        let (layer, _) = self.read_plan(cx, &o.layer)?;
        let exists = o
            .feature
            .is_some_and(|f| self.layer(&o.layer).is_some_and(|l| l.by_id(f).is_some()));
        // a feature of a layer seen only as aggregates cannot be named
        if o.feature.is_some() && layer.form == crate::access::Form::Aggregate {
            return Err(Error::Forbidden(format!(
                "layer {} is usable but invisible: object to the layer as a whole",
                o.layer
            )));
        }
        let made = file(&cx.principal, o, exists, &self.calendar, ts::now())?;
        self.keep_objection(cx, &made, "objection.file", &made.reason)
            .await?;
        Ok(made)
    }

    /// Decides an objection; the objector is told on its feed.
    pub async fn decide_objection(
        &self,
        cx: &Context,
        id: &str,
        d: &Decision,
    ) -> Result<Objection> {
        let o = self
            .governance
            .objections()
            .into_iter()
            .find(|o| o.id == id)
            .ok_or_else(|| Error::NotFound(format!("no objection {id}")))?;
        let owner = self
            .layer(&o.layer)
            .and_then(|l| l.meta.classification.as_ref().map(|c| c.owner.clone()));
        let decided = decide(&cx.principal, o, d, owner.as_deref(), ts::now())?;
        self.keep_objection(cx, &decided, "objection.decide", &decided.outcome)
            .await?;
        self.governance.notify(&decided.by, notice(&decided));
        Ok(decided)
    }

    /// The public-holiday calendar deadlines count with.
    #[must_use]
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    async fn keep_objection(
        &self,
        cx: &Context,
        o: &Objection,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        save(self.store().as_ref(), o).await?;
        self.governance.remember_objection(o.clone());
        let target = match o.feature {
            Some(f) => format!("{} {}/{f}", o.id, o.layer),
            None => format!("{} {}", o.id, o.layer),
        };
        self.audit_durable(cx.record(action, &target, true, None, detail))
            .await;
        Ok(())
    }
}
