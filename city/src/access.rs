//! Who may see and do what: the one access decision every channel asks.
//!
//! A [`Principal`] is whoever is asking — the public, a person signed in through the city's
//! identity provider, or a machine with an API key citytwin issued. For a layer, [`read`]
//! answers with a [`ReadPlan`] (which features the principal sees) or a [`Denial`]; for a
//! change, [`may`] says whether the principal's roles and territory allow it. Tiles, items,
//! statistics, the live feed, renders and the catalogue all ask these two functions and
//! decide nothing on their own. The policy's only inputs are the principal and the layer's
//! entry in the classified catalogue ([`crate::catalog`]).

use crate::catalog::{OpenClass, ShareClass};
use crate::layer::LayerMeta;
use crate::live::{Action, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// What a principal may do besides reading what its department may read. Roles come from the
/// identity provider's roles claim, or from the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// reports events (hotline operators, grid inspectors, departments)
    Reporter,
    /// accepts, dispatches, rejects and returns events; assigns and manages units
    Dispatcher,
    /// starts handling an event and reports back (street and community staff)
    Handler,
    /// verifies handled events, closes them, or returns them
    Verifier,
    /// puts a major event under unified command
    Commander,
    /// registers sensors and their thresholds
    SensorAdmin,
    /// sends sensor readings (sensor gateways; keys are limited to their sensors)
    Gateway,
    /// sends unit positions (vehicle trackers)
    Tracker,
    /// reads the audit log, and nothing else by this role
    Auditor,
    /// issues and revokes keys, revokes users, classifies layers
    SecurityAdmin,
    /// operates the server: metrics
    SystemAdmin,
    /// keeps its department's data: approves or refuses requests to use it, decides
    /// objections to it, and reads its level-3 layers as they are
    DataSteward,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 12] = [
        Self::Reporter,
        Self::Dispatcher,
        Self::Handler,
        Self::Verifier,
        Self::Commander,
        Self::SensorAdmin,
        Self::Gateway,
        Self::Tracker,
        Self::Auditor,
        Self::SecurityAdmin,
        Self::SystemAdmin,
        Self::DataSteward,
    ];

    /// The role's name in claims, keys and the CLI.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Reporter => "reporter",
            Self::Dispatcher => "dispatcher",
            Self::Handler => "handler",
            Self::Verifier => "verifier",
            Self::Commander => "commander",
            Self::SensorAdmin => "sensor-admin",
            Self::Gateway => "gateway",
            Self::Tracker => "tracker",
            Self::Auditor => "auditor",
            Self::SecurityAdmin => "security-admin",
            Self::SystemAdmin => "system-admin",
            Self::DataSteward => "data-steward",
        }
    }

    /// Reads [`Role::name`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }

    /// Whether the role administers the platform itself.
    #[must_use]
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Self::Auditor | Self::SecurityAdmin | Self::SystemAdmin
        )
    }

    /// Whether the role works with its department's data as it is: a level-3 layer's raw
    /// features go only to its owner department's staff in such a role.
    #[must_use]
    pub fn works_raw_data(self) -> bool {
        matches!(
            self,
            Self::DataSteward
                | Self::Reporter
                | Self::Dispatcher
                | Self::Handler
                | Self::Verifier
                | Self::Commander
                | Self::SensorAdmin
        )
    }

    /// Whether only a person signed in with the identity provider may hold the role (never a
    /// machine's key): managing access and reading the audit log.
    #[must_use]
    pub fn is_personal(self) -> bool {
        matches!(self, Self::Auditor | Self::SecurityAdmin)
    }
}

/// Checks that a set of roles keeps duties apart: whoever changes keys, users and the
/// catalogue (security admin) is not who reads the audit log (auditor) nor who runs the
/// server (system admin), so no one can both act and erase or hide the trace.
pub fn check_separation(roles: &BTreeSet<Role>) -> Result<(), String> {
    let sa = roles.contains(&Role::SecurityAdmin);
    for other in [Role::Auditor, Role::SystemAdmin] {
        if sa && roles.contains(&other) {
            return Err(format!(
                "roles security-admin and {} cannot be held together",
                other.name()
            ));
        }
    }
    if roles.contains(&Role::Auditor) && roles.contains(&Role::SystemAdmin) {
        return Err("roles auditor and system-admin cannot be held together".into());
    }
    Ok(())
}

/// How the principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// no credentials at all
    Public,
    /// a person signed in with the identity provider
    User,
    /// a machine with an API key
    Key,
}

/// Whoever is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// a stable id: `public`, `user:<subject>` or `key:<key id>`; what the audit log and
    /// revocations name
    pub id: String,
    /// a human name for histories and logs
    pub name: String,
    /// how it signed in
    pub kind: PrincipalKind,
    /// its department (a code), which decides the layers it may read
    pub department: Option<String>,
    /// what it may do
    pub roles: BTreeSet<Role>,
    /// the territorial code it acts in (a district, street, community or grid code; codes
    /// nest), or the whole city when absent
    pub territory: Option<String>,
    /// the sensors it may send readings for (`*` wildcards), all when absent
    pub sensors: Option<Vec<String>>,
    /// when its credentials end
    pub expires: Option<Millis>,
}

impl Principal {
    /// The public: no credentials.
    #[must_use]
    pub fn public() -> Self {
        Self {
            id: "public".into(),
            name: "public".into(),
            kind: PrincipalKind::Public,
            department: None,
            roles: BTreeSet::new(),
            territory: None,
            sensors: None,
            expires: None,
        }
    }

    /// Whether this is the public.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.kind == PrincipalKind::Public
    }

    /// Whether it is the operator at the command line (`cli:` and the operating-system
    /// user): whoever can open the store acts for the data bureau.
    #[must_use]
    pub fn is_cli(&self) -> bool {
        self.id.starts_with("cli:")
    }

    /// Whether it holds a role.
    #[must_use]
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether a territorial code lies inside the principal's territory (always, for one
    /// acting for the whole city; never, for a place outside every grid when it has one).
    #[must_use]
    pub fn covers(&self, code: Option<&str>) -> bool {
        within(self.territory.as_deref(), code)
    }

    /// Whether it may send readings of this sensor.
    #[must_use]
    pub fn covers_sensor(&self, sensor: &str) -> bool {
        self.sensors
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| glob(p, sensor)))
    }

    /// How histories name it: `name (id)`.
    #[must_use]
    pub fn actor(&self) -> String {
        if self.name == self.id {
            self.id.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
#[must_use]
pub fn glob(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut tail) = text.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    let (last, middle) = parts.split_last().unwrap_or((&"", &[]));
    for part in middle {
        match tail.find(part) {
            Some(i) => tail = &tail[i + part.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last)
}

/// Why a principal may read a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// the layer is open to the public unconditionally
    Open,
    /// the layer is shared unconditionally between departments
    Shared,
    /// the principal's department owns the layer
    Owner,
    /// an approved request (a grant) for a layer shared or opened on conditions
    Granted,
    /// the principal handles the records of its territory (street and community staff with
    /// the handler role): it sees them as they are, its territory's only
    Handling,
}

/// In what form a principal gets a layer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// the features as they are
    Raw,
    /// personal fields masked and coordinates snapped as the catalogue says (脱敏)
    Desensitised,
    /// only counts (and sums) on fixed units, small ones suppressed: usable but invisible
    /// (可用不可见, Auth art. 14, 16); a level-3 layer for all but its owner's staff
    Aggregate,
}

impl Form {
    /// The form's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Desensitised => "desensitised",
            Self::Aggregate => "aggregate",
        }
    }
}

/// What a principal sees of a layer it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// the layer
    pub layer: String,
    /// why it may read it
    pub basis: Basis,
    /// what it gets of it
    pub form: Form,
    /// only features whose territorial code (in this field) starts with this code; every
    /// feature when absent
    pub territory: Option<(usize, String)>,
    /// whether reads are recorded in the audit log (layers not open unconditionally)
    pub audited: bool,
    /// the grant the plan rests on, when it does
    pub grant: Option<String>,
}

impl ReadPlan {
    /// What distinguishes this plan's output from another's of the same layer: cached
    /// tiles, counts and frames carry it in their keys and are never served across plans.
    /// Plans that show the same features share a key (0 for the whole layer).
    #[must_use]
    pub fn key(&self) -> u64 {
        match (&self.territory, self.form, &self.grant) {
            (None, Form::Raw, None) => 0,
            (territory, form, grant) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                territory.as_ref().map(|(_, t)| t).hash(&mut h);
                form.hash(&mut h);
                grant.hash(&mut h);
                h.finish() | 1
            }
        }
    }

    /// Refuses a channel that hands out features (items, nearest, within, intersects,
    /// exports) when the plan allows only aggregates, naming the rule.
    pub fn features_allowed(&self) -> crate::Result<()> {
        if self.form == Form::Aggregate {
            return Err(crate::Error::Forbidden(format!(
                "layer {} is usable but invisible (security level 3 and above, Auth art. 14 and 16): its raw features stay with the owner department; use its statistics (/layers/{0}/stats), H3 cells (/layers/{0}/cells?h3=5..9) or its aggregate tiles",
                self.layer
            )));
        }
        Ok(())
    }

    /// Whether a feature with these values is in the plan.
    #[must_use]
    pub fn shows(&self, values: &[citytwin_tiles::Value]) -> bool {
        self.territory
            .as_ref()
            .is_none_or(|rows| in_rows(values, rows))
    }

    /// Whether a thing at this territorial code is in the plan.
    #[must_use]
    pub fn shows_code(&self, code: Option<&str>) -> bool {
        within(self.territory.as_ref().map(|(_, t)| t.as_str()), code)
    }
}

/// Whether a thing at territorial code `code` lies inside `territory` (codes nest: a street's
/// code starts with its district's); everything lies inside no territory at all.
#[must_use]
pub fn within(territory: Option<&str>, code: Option<&str>) -> bool {
    territory.is_none_or(|t| code.is_some_and(|c| c.starts_with(t)))
}

/// Whether a feature's values hold, in the rows' text field, a code inside the rows' territory.
#[must_use]
pub fn in_rows(values: &[citytwin_tiles::Value], (field, territory): &(usize, String)) -> bool {
    match values.get(*field) {
        Some(citytwin_tiles::Value::Text(t)) => within(Some(territory), Some(t)),
        _ => false,
    }
}

/// A refusal, with the reason for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// the thing must look absent: the principal may not know it exists
    Hidden(String),
    /// the principal may see the thing but not do this
    Forbidden(String),
}

impl Denial {
    /// The reason.
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Hidden(r) | Self::Forbidden(r) => r,
        }
    }
}

/// The decision for reading a layer: a read plan, or a denial (always [`Denial::Hidden`]: a
/// layer someone may not see does not exist for them).
pub fn read(p: &Principal, meta: &LayerMeta) -> Result<ReadPlan, Denial> {
    let c = meta.classification.as_ref();
    let open = c.is_some_and(|c| c.open == OpenClass::Unconditional);
    let basis = if open { Some(Basis::Open) } else { None };
    let owner = matches!((c, &p.department), (Some(c), Some(d)) if *d == c.owner);
    let sensitive = c.is_some_and(|c| c.level >= 3);
    // the strongest reason: its owner, then open to all, then shared between departments
    let basis = match (c, &p.department) {
        (Some(_), Some(_)) if owner => Some(Basis::Owner),
        (Some(c), Some(_)) if c.share == ShareClass::Unconditional => basis.or(Some(Basis::Shared)),
        // level-3 data is never shared or opened unconditionally ([`Classification::check`]);
        // shared or opened at all, it goes out as aggregates
        (Some(c), Some(_)) if sensitive && c.share != ShareClass::NotShared => Some(Basis::Shared),
        (Some(c), None) if sensitive && c.open != OpenClass::NotOpen => Some(Basis::Open),
        _ => basis,
    };
    let Some(basis) = basis else {
        let why = match c {
            None => "the layer is not classified: not shared, not open".to_owned(),
            Some(_) if p.is_public() => "the layer is not open to the public".to_owned(),
            Some(c) => format!(
                "the layer is {} between departments and {} is not its owner ({})",
                c.share.name(),
                p.department.as_deref().unwrap_or("no department"),
                c.owner
            ),
        };
        return Err(Denial::Hidden(why));
    };
    // the staff who handle a territory's records (a citizen's report, a hotline call) see
    // them as they are, their territory's only: the layer must carry territorial codes
    let handling = p.has(Role::Handler) && p.territory.is_some() && meta.territory_field.is_some();
    let (basis, form) = match c {
        Some(_) if owner && p.roles.iter().any(|r| r.works_raw_data()) => (basis, Form::Raw),
        Some(_) if handling && !owner => (Basis::Handling, Form::Raw),
        Some(_) if sensitive => (basis, Form::Aggregate),
        Some(c) if !owner && c.desensitises() => (basis, Form::Desensitised),
        _ => (basis, Form::Raw),
    };
    let territory = match (&p.territory, &meta.territory_field) {
        (Some(t), Some(f)) if form != Form::Aggregate => {
            meta.field_index(f).map(|i| (i, t.clone()))
        }
        _ => None,
    };
    Ok(ReadPlan {
        layer: meta.name.clone(),
        basis,
        form,
        territory,
        audited: !open,
        grant: None,
    })
}

/// [`read`], and where it refuses, the grants in force for the layer: one for the
/// principal's department (or for the public) lets it read the layer desensitised, narrowed
/// to the grant's fields and territory (and its own territory).
pub fn read_with(
    p: &Principal,
    meta: &LayerMeta,
    grants: &[crate::grants::Grant],
) -> Result<ReadPlan, Denial> {
    let refused = match read(p, meta) {
        Ok(plan) => return Ok(plan),
        Err(d) => d,
    };
    let field = meta
        .territory_field
        .as_deref()
        .and_then(|f| meta.field_index(f));
    for g in grants
        .iter()
        .filter(|g| g.layer == meta.name && g.covers(p))
    {
        // the narrower of the grant's territory and the principal's; none if they do not meet
        let territory = match (g.territory.as_deref(), p.territory.as_deref()) {
            (None, None) => None,
            (Some(t), None) | (None, Some(t)) => Some(t),
            (Some(a), Some(b)) if within(Some(a), Some(b)) => Some(b),
            (Some(a), Some(b)) if within(Some(b), Some(a)) => Some(a),
            _ => continue,
        };
        let territory = match (territory, field) {
            (None, _) => None,
            (Some(t), Some(i)) => Some((i, t.to_owned())),
            // a territory the layer cannot be narrowed to: nothing of it
            (Some(_), None) => continue,
        };
        return Ok(ReadPlan {
            layer: meta.name.clone(),
            basis: Basis::Granted,
            form: Form::Desensitised,
            territory,
            audited: true,
            grant: Some(g.id.clone()),
        });
    }
    Err(refused)
}

/// A change someone asks to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// report an event; citizens' reports need no role
    Report {
        /// whether the report is a citizen's own
        citizen: bool,
    },
    /// move an event along its closed loop
    Transition(Action),
    /// assign units to an event
    AssignUnits,
    /// put events under unified command
    Command,
    /// register or update a sensor
    RegisterSensor,
    /// send readings
    Readings,
    /// register or update a unit
    RegisterUnit,
    /// move a unit
    MoveUnit,
    /// change a unit's status
    UnitStatus,
    /// read the audit log
    ReadAudit,
    /// issue and revoke keys, revoke users, classify layers
    ManageAccess,
    /// read the server's metrics
    Metrics,
}

impl Duty {
    /// The roles any one of which allows the duty; empty when anyone may.
    #[must_use]
    pub fn roles(self) -> &'static [Role] {
        use Role as R;
        match self {
            Self::Report { citizen: true } => &[],
            Self::Report { citizen: false } => &[R::Reporter],
            Self::Transition(Action::Accept | Action::Dispatch | Action::Reject)
            | Self::AssignUnits
            | Self::RegisterUnit
            | Self::UnitStatus => &[R::Dispatcher],
            Self::Transition(Action::Start | Action::Feedback) => &[R::Handler],
            Self::Transition(Action::Verify | Action::Close) => &[R::Verifier],
            Self::Transition(Action::Return) => &[R::Dispatcher, R::Verifier],
            Self::Command => &[R::Commander],
            Self::RegisterSensor => &[R::SensorAdmin],
            Self::Readings => &[R::Gateway, R::SensorAdmin],
            Self::MoveUnit => &[R::Dispatcher, R::Tracker],
            Self::ReadAudit => &[R::Auditor],
            Self::ManageAccess => &[R::SecurityAdmin],
            Self::Metrics => &[R::SystemAdmin],
        }
    }

    /// A short name for the audit log.
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Self::Report { citizen: true } => "event.report.citizen".into(),
            Self::Report { citizen: false } => "event.report".into(),
            Self::Transition(a) => format!("event.{}", a.name()),
            Self::AssignUnits => "event.assign".into(),
            Self::Command => "event.command".into(),
            Self::RegisterSensor => "sensor.register".into(),
            Self::Readings => "sensor.readings".into(),
            Self::RegisterUnit => "unit.register".into(),
            Self::MoveUnit => "unit.move".into(),
            Self::UnitStatus => "unit.status".into(),
            Self::ReadAudit => "audit.read".into(),
            Self::ManageAccess => "access.manage".into(),
            Self::Metrics => "metrics.read".into(),
        }
    }
}

/// Whether a principal may do something, at a place with this territorial code (the event's,
/// the sensor's) when the duty has one. Someone outside the place's territory gets
/// [`Denial::Hidden`] — the thing is not theirs to know of — and someone without the role
/// [`Denial::Forbidden`].
pub fn may(p: &Principal, duty: Duty, place: Option<Option<&str>>) -> Result<(), Denial> {
    let roles = duty.roles();
    if !roles.is_empty() && !roles.iter().any(|r| p.has(*r)) {
        return Err(Denial::Forbidden(format!(
            "{} needs the role {}",
            duty.name(),
            roles
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    if let Some(code) = place
        && !p.covers(code)
    {
        return Err(Denial::Hidden(format!(
            "{} at {} is outside the territory {}",
            duty.name(),
            code.unwrap_or("no territory"),
            p.territory.as_deref().unwrap_or("")
        )));
    }
    Ok(())
}

/// Who asks, and how: what the audit log records about a request besides what it was about.
#[derive(Debug, Clone)]
pub struct Context {
    /// who
    pub principal: std::sync::Arc<Principal>,
    /// through which channel (`tiles`, `items`, `feed`, `http`, `mqtt`, `cli`…)
    pub channel: String,
    /// the client's address
    pub client: String,
    /// the request id
    pub request_id: String,
    /// the day the request reads base layers as of (`?at=`; `None`: their current versions)
    pub at: Option<crate::versions::Day>,
}

impl Context {
    /// A context for a principal on a channel, with no client address or request id.
    #[must_use]
    pub fn of(principal: Principal, channel: &str) -> Self {
        Self {
            principal: std::sync::Arc::new(principal),
            channel: channel.to_owned(),
            client: String::new(),
            request_id: String::new(),
            at: None,
        }
    }

    /// The same request on another channel.
    #[must_use]
    pub fn on(&self, channel: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            ..self.clone()
        }
    }

    /// An audit record of this request.
    #[must_use]
    pub fn record(
        &self,
        action: &str,
        target: &str,
        allowed: bool,
        count: Option<u64>,
        detail: &str,
    ) -> crate::audit::AuditRecord {
        crate::audit::AuditRecord {
            principal: self.principal.id.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            channel: self.channel.clone(),
            allowed,
            count,
            client: self.client.clone(),
            request_id: self.request_id.clone(),
            detail: detail.to_owned(),
        }
    }
}

impl crate::City {
    /// Keys and revocations.
    #[must_use]
    pub fn credentials(&self) -> &crate::keys::Credentials {
        &self.credentials
    }

    /// Queues an audit entry (nothing happens when the twin keeps no audit log).
    pub fn audit(&self, r: crate::audit::AuditRecord) {
        if let Some(log) = &self.audit {
            log.record(r);
        }
    }

    /// Writes an audit entry and waits until it is durable; a failure is logged, not
    /// returned, as the change it records has happened.
    pub async fn audit_durable(&self, r: crate::audit::AuditRecord) {
        if let Some(log) = &self.audit
            && let Err(e) = log.record_durable(r).await
        {
            tracing::error!(error = %e, "an audit entry of a write could not be written");
        }
    }

    /// A layer as the asker may see it (the layer, its desensitised view, or its aggregate
    /// cells) and its plan. A layer it may not see is
    /// [`crate::Error::UnknownLayer`], exactly as a layer that does not exist; the denial is
    /// audited.
    pub fn read_plan(
        &self,
        cx: &Context,
        name: &str,
    ) -> crate::Result<(std::sync::Arc<crate::LayerIndex>, ReadPlan)> {
        let layer = self
            .layer(name)
            .ok_or_else(|| crate::Error::UnknownLayer(name.to_owned()))?;
        let layer = self.layer_on(layer, cx.at);
        match self.plan_for(&cx.principal, &layer.meta) {
            Ok(plan) => Ok((self.view_of(&layer, &plan, None)?, plan)),
            Err(d) => {
                self.audit(cx.record("read", name, false, None, d.reason()));
                Err(crate::Error::UnknownLayer(name.to_owned()))
            }
        }
    }

    /// The one access decision for a layer, with the grants in force now.
    pub fn plan_for(&self, p: &Principal, meta: &LayerMeta) -> Result<ReadPlan, Denial> {
        let grants = self
            .governance
            .grants_in_force(&meta.name, crate::live::ts::now());
        read_with(p, meta, &grants)
    }

    /// Every layer the asker may see, as it may see it (the layer, its desensitised view or
    /// its aggregate cells), with its plan, ordered by name.
    #[must_use]
    pub fn visible_layers(
        &self,
        p: &Principal,
    ) -> Vec<(std::sync::Arc<crate::LayerIndex>, ReadPlan)> {
        self.visible_layers_on(p, None)
    }

    /// Every layer the asker may see as of a day (base layers with versions as they were
    /// then), as it may see it, with its plan, ordered by name.
    #[must_use]
    pub fn visible_layers_on(
        &self,
        p: &Principal,
        day: Option<crate::versions::Day>,
    ) -> Vec<(std::sync::Arc<crate::LayerIndex>, ReadPlan)> {
        self.layers()
            .into_iter()
            .map(|l| self.layer_on(l, day))
            .filter_map(|l| {
                let plan = self.plan_for(p, &l.meta).ok()?;
                let view = self.view_of(&l, &plan, None).ok()?;
                Some((view, plan))
            })
            .collect()
    }

    /// Records a read of a layer not open to all, with what it returned.
    pub fn served(&self, cx: &Context, plan: &ReadPlan, count: Option<u64>) {
        if plan.audited {
            self.audit(cx.record("read", &plan.layer, true, count, ""));
        }
    }

    /// Counts a tile read of a layer not open to all (one audit entry per principal, layer
    /// and minute).
    pub fn tile_served(&self, cx: &Context, plan: &ReadPlan) {
        if plan.audited
            && let Some(log) = &self.audit
        {
            let scope = plan
                .territory
                .as_ref()
                .map(|(_, t)| format!("territory {t}"))
                .unwrap_or_default();
            log.tile_read(
                &cx.principal.id,
                &plan.layer,
                &scope,
                &cx.client,
                &cx.request_id,
            );
        }
    }

    /// Checks a change against the asker's roles and territory; a refusal is audited and
    /// comes back as [`crate::Error::Forbidden`] or [`crate::Error::Hidden`] (shown as
    /// `missing`).
    pub fn check_duty(
        &self,
        cx: &Context,
        duty: Duty,
        place: Option<Option<&str>>,
        target: &str,
        missing: &str,
    ) -> crate::Result<()> {
        match may(&cx.principal, duty, place) {
            Ok(()) => Ok(()),
            Err(d) => {
                self.audit(cx.record(&duty.name(), target, false, None, d.reason()));
                Err(match d {
                    Denial::Forbidden(r) => crate::Error::Forbidden(r),
                    Denial::Hidden(r) => crate::Error::Hidden {
                        shown: missing.to_owned(),
                        reason: r,
                    },
                })
            }
        }
    }

    /// Records a change that was made, durably.
    pub async fn audit_change(&self, cx: &Context, duty: Duty, target: &str, count: Option<u64>) {
        self.audit_durable(cx.record(&duty.name(), target, true, count, ""))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Classification;
    use crate::{Field, FieldKind, GeometryKind};

    fn layer(share: ShareClass, open: OpenClass, level: u8) -> LayerMeta {
        let mut m = LayerMeta::new("roads", GeometryKind::LineString);
        m.classification = Some(Classification::new("planning", share, open, level));
        m
    }

    fn staff(dept: &str) -> Principal {
        Principal {
            id: format!("user:{dept}"),
            name: dept.into(),
            kind: PrincipalKind::User,
            department: Some(dept.into()),
            ..Principal::public()
        }
    }

    #[test]
    fn the_public_sees_only_what_is_open_unconditionally() {
        let public = Principal::public();
        let open = layer(ShareClass::Unconditional, OpenClass::Unconditional, 1);
        let plan = read(&public, &open).unwrap();
        assert_eq!(plan.basis, Basis::Open);
        assert!(!plan.audited);
        for m in [
            layer(ShareClass::Unconditional, OpenClass::Conditional, 2),
            layer(ShareClass::NotShared, OpenClass::NotOpen, 1),
            LayerMeta::new("x", GeometryKind::Point),
        ] {
            assert!(matches!(read(&public, &m), Err(Denial::Hidden(_))));
        }
    }

    #[test]
    fn departments_see_their_own_and_what_is_shared_unconditionally() {
        let shared = layer(ShareClass::Unconditional, OpenClass::NotOpen, 2);
        let conditional = layer(ShareClass::Conditional, OpenClass::NotOpen, 2);
        let secret = layer(ShareClass::Conditional, OpenClass::NotOpen, 3);
        let water = staff("water");
        let planning = staff("planning");
        assert_eq!(read(&water, &shared).unwrap().basis, Basis::Shared);
        assert!(read(&water, &shared).unwrap().audited);
        assert!(read(&water, &conditional).is_err());
        for m in [&shared, &conditional, &secret] {
            assert_eq!(read(&planning, m).unwrap().basis, Basis::Owner);
        }
        // an unclassified layer is not shared, not open: nobody reads it
        assert!(read(&planning, &LayerMeta::new("x", GeometryKind::Point)).is_err());
    }

    #[test]
    fn level_3_data_goes_raw_only_to_its_owners_staff_and_as_aggregates_to_the_rest() {
        let secret = layer(ShareClass::Conditional, OpenClass::Conditional, 3);
        let mut steward = staff("planning");
        steward.roles.insert(Role::DataSteward);
        assert_eq!(read(&steward, &secret).unwrap().form, Form::Raw);
        // the owner department without a role that works the data, another department and
        // the public: aggregates
        for p in [staff("planning"), staff("water"), Principal::public()] {
            let plan = read(&p, &secret).unwrap();
            assert_eq!(plan.form, Form::Aggregate, "{}", p.id);
            assert!(plan.features_allowed().is_err());
            assert!(plan.audited);
        }
        // not shared, not open: the aggregates do not leave the department either
        let closed = layer(ShareClass::NotShared, OpenClass::NotOpen, 3);
        assert!(read(&staff("water"), &closed).is_err());
        assert!(read(&Principal::public(), &closed).is_err());
        // an aggregate plan is its own cache key, and a territory does not narrow it
        let mut scoped = staff("water");
        scoped.territory = Some("320102".into());
        let plan = read(&scoped, &secret).unwrap();
        assert!(plan.territory.is_none());
        assert_ne!(plan.key(), 0);
    }

    #[test]
    fn handling_staff_see_their_territorys_records_as_they_are() {
        let mut m = layer(ShareClass::Conditional, OpenClass::Conditional, 3);
        m.fields = vec![Field {
            name: "grid".into(),
            kind: FieldKind::Text,
        }];
        m.territory_field = Some("grid".into());
        let mut handler = staff("xuanwu-street");
        handler.roles.insert(Role::Handler);
        handler.territory = Some("320102001".into());
        let plan = read(&handler, &m).unwrap();
        assert_eq!((plan.basis, plan.form), (Basis::Handling, Form::Raw));
        assert_eq!(plan.territory, Some((0, "320102001".into())));
        // without a territory, or without the role, or on a layer without codes: aggregates
        let mut roaming = handler.clone();
        roaming.territory = None;
        assert_eq!(read(&roaming, &m).unwrap().form, Form::Aggregate);
        let mut reporter = handler.clone();
        reporter.roles = [Role::Reporter].into_iter().collect();
        assert_eq!(read(&reporter, &m).unwrap().form, Form::Aggregate);
        let plain = layer(ShareClass::Conditional, OpenClass::Conditional, 3);
        assert_eq!(read(&handler, &plain).unwrap().form, Form::Aggregate);
    }

    #[test]
    fn personal_fields_and_precision_desensitise_for_all_but_the_owner() {
        let mut m = layer(ShareClass::Unconditional, OpenClass::Unconditional, 2);
        if let Some(c) = m.classification.as_mut() {
            c.precision_m = Some(100);
        }
        assert_eq!(read(&staff("planning"), &m).unwrap().form, Form::Raw);
        for p in [staff("water"), Principal::public()] {
            let plan = read(&p, &m).unwrap();
            assert_eq!(plan.form, Form::Desensitised);
            assert!(plan.features_allowed().is_ok());
            assert_ne!(plan.key(), 0);
        }
    }

    #[test]
    fn a_territory_scope_narrows_layers_that_carry_codes() {
        let mut m = layer(ShareClass::Unconditional, OpenClass::NotOpen, 2);
        m.fields = vec![Field {
            name: "grid".into(),
            kind: FieldKind::Text,
        }];
        m.territory_field = Some("grid".into());
        let mut street = staff("xuanwu");
        street.territory = Some("320102001".into());
        let plan = read(&street, &m).unwrap();
        assert_eq!(plan.territory, Some((0, "320102001".into())));
        assert!(plan.shows(&[citytwin_tiles::Value::from("320102001004002")]));
        assert!(!plan.shows(&[citytwin_tiles::Value::from("320104001004002")]));
        assert!(!plan.shows(&[citytwin_tiles::Value::Null]));
        assert_ne!(plan.key(), 0);
        assert_eq!(read(&staff("xuanwu"), &m).unwrap().key(), 0);
    }

    #[test]
    fn duties_need_their_role_and_territory() {
        let mut worker = staff("xuanwu");
        worker.roles.insert(Role::Handler);
        worker.territory = Some("320102001".into());
        let start = Duty::Transition(Action::Start);
        assert!(may(&worker, start, Some(Some("320102001002003"))).is_ok());
        assert!(matches!(
            may(&worker, start, Some(Some("320104001002003"))),
            Err(Denial::Hidden(_))
        ));
        assert!(matches!(
            may(
                &worker,
                Duty::Transition(Action::Accept),
                Some(Some("320102001"))
            ),
            Err(Denial::Forbidden(_))
        ));
        assert!(may(&Principal::public(), Duty::Report { citizen: true }, None).is_ok());
        assert!(may(&Principal::public(), Duty::Report { citizen: false }, None).is_err());
    }

    #[test]
    fn security_admin_auditor_and_system_admin_stay_apart() {
        let set = |r: &[Role]| r.iter().copied().collect::<BTreeSet<_>>();
        assert!(check_separation(&set(&[Role::SecurityAdmin, Role::Dispatcher])).is_ok());
        assert!(check_separation(&set(&[Role::SecurityAdmin, Role::Auditor])).is_err());
        assert!(check_separation(&set(&[Role::SecurityAdmin, Role::SystemAdmin])).is_err());
        assert!(check_separation(&set(&[Role::Auditor, Role::SystemAdmin])).is_err());
    }

    #[test]
    fn sensor_patterns_match_with_wildcards() {
        assert!(glob("WL-*", "WL-0001"));
        assert!(!glob("WL-*", "RF-0001"));
        assert!(glob("*", "anything"));
        assert!(glob("A*B*C", "AxxBxxC"));
        assert!(!glob("A*B*C", "AxxCxxB"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        let mut gw = Principal::public();
        gw.sensors = Some(vec!["WL-*".into(), "RF-7".into()]);
        assert!(gw.covers_sensor("RF-7") && gw.covers_sensor("WL-9") && !gw.covers_sensor("RF-8"));
    }
}
