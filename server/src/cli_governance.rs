//! The data bureau's procedures at the command line: `citytwin grants …` and `citytwin
//! objections …`. The operator (whoever can open the store) acts for the bureau; each step is
//! recorded in the audit log, and a running server picks it up within two seconds.

use crate::cli::{StoreArgs, open, operator, out, record};
use crate::routes::governance::{grant_json, objection_json};
use citytwin_city::Store;
use citytwin_city::calendar::Calendar;
use citytwin_city::grants::{self, Approval, Grant, GrantRequest};
use citytwin_city::live::ts;
use citytwin_city::objections::{self, Decision, ObjectionState};
use clap::Subcommand;
use std::sync::Arc;

/// `citytwin grants …`
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// Requests and grants, oldest first.
    List {
        /// only those of this status: requested, approved, expired, refused, revoked
        #[arg(long)]
        status: Option<String>,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Ask, for a department, for a layer shared on conditions (or, with --public, opened on
    /// conditions to everyone).
    Request {
        /// the layer
        #[arg(long)]
        layer: String,
        /// the department asking
        #[arg(long)]
        department: String,
        /// what the data is for
        #[arg(long)]
        purpose: String,
        /// the end of the term (YYYY-MM-DD or RFC 3339)
        #[arg(long)]
        until: String,
        /// only these fields
        #[arg(long, value_delimiter = ',')]
        fields: Option<Vec<String>>,
        /// only this territory (a division code)
        #[arg(long)]
        territory: Option<String>,
        /// open the layer to everyone rather than share it with the department
        #[arg(long)]
        public: bool,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Approve a request, on conditions that narrow it.
    Approve {
        /// the grant
        id: String,
        /// an earlier end
        #[arg(long)]
        until: Option<String>,
        /// fewer fields
        #[arg(long, value_delimiter = ',')]
        fields: Option<Vec<String>>,
        /// a smaller territory
        #[arg(long)]
        territory: Option<String>,
        /// conditions or remarks
        #[arg(long, default_value = "")]
        note: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Refuse a request.
    Refuse {
        /// the grant
        id: String,
        /// why
        #[arg(long)]
        reason: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// End a grant (or withdraw a request) now.
    Revoke {
        /// the grant
        id: String,
        /// why
        #[arg(long)]
        reason: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `citytwin objections …`
#[derive(Debug, Subcommand)]
pub enum ObjectionsCommand {
    /// Objections, overdue first.
    List {
        /// only open objections past their deadline
        #[arg(long)]
        overdue: bool,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Decide an objection: upheld (say what was corrected) or rejected (say why).
    Decide {
        /// the objection
        id: String,
        /// upheld or rejected
        #[arg(long)]
        outcome: String,
        /// what was corrected, or why the datum stands
        #[arg(long)]
        reason: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn meta_of(store: &Arc<dyn Store>, layer: &str) -> Result<citytwin_city::LayerMeta, String> {
    store
        .layers()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|m| m.name == layer)
        .ok_or_else(|| {
            format!("no layer {layer} in the store (live layers' grants go through the API)")
        })
}

async fn find(store: &Arc<dyn Store>, id: &str) -> Result<Grant, String> {
    grants::load(store.as_ref())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| format!("no grant {id}"))
}

/// Runs `citytwin grants …`.
pub async fn grants(c: GrantsCommand) -> Result<(), String> {
    let me = operator();
    let now = ts::now();
    let a = match &c {
        GrantsCommand::List { store, .. }
        | GrantsCommand::Request { store, .. }
        | GrantsCommand::Approve { store, .. }
        | GrantsCommand::Refuse { store, .. }
        | GrantsCommand::Revoke { store, .. } => store.clone(),
    };
    let store = open(&a.store).await?;
    let step = grant_step(&store, &me.principal, c, now).await;
    let done = match step {
        Ok(Some((g, action, detail))) => keep(&store, &a, &g, action, &detail).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    store.close().await;
    done
}

/// Saves a grant, records the step and prints the grant.
async fn keep(
    store: &Arc<dyn Store>,
    a: &StoreArgs,
    g: &Grant,
    action: &str,
    detail: &str,
) -> Result<(), String> {
    grants::save(store.as_ref(), g)
        .await
        .map_err(|e| e.to_string())?;
    record(store, a, action, &format!("{} {}", g.id, g.layer), detail).await?;
    out(&grant_json(g).to_string());
    Ok(())
}

/// Takes one step on the open store: the grant it made or changed, the audit action and
/// its detail; `None` for a listing, printed here.
async fn grant_step(
    store: &Arc<dyn Store>,
    me: &citytwin_city::access::Principal,
    c: GrantsCommand,
    now: i64,
) -> Result<Option<(Grant, &'static str, String)>, String> {
    // the grant a decision is about, and its layer
    let decided = |id: String| async move {
        let g = find(store, &id).await?;
        let meta = meta_of(store, &g.layer).await?;
        Ok::<_, String>((g, meta))
    };
    let step = match c {
        GrantsCommand::List { status, .. } => {
            let list = grants::load(store.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            for g in list
                .iter()
                .filter(|g| status.as_deref().is_none_or(|s| g.status(now) == s))
            {
                out(&grant_json(g).to_string());
            }
            return Ok(None);
        }
        GrantsCommand::Request {
            layer,
            department,
            purpose,
            until,
            fields,
            territory,
            public,
            ..
        } => {
            citytwin_city::catalog::check_department(&department).map_err(|e| e.to_string())?;
            let meta = meta_of(store, &layer).await.ok();
            let mut asker = me.clone();
            asker.department = Some(department);
            let req = GrantRequest {
                layer,
                purpose: purpose.clone(),
                until,
                public,
                fields,
                territory,
            };
            let g = grants::request(&asker, &req, meta.as_ref(), now);
            (g, "grant.request", purpose)
        }
        GrantsCommand::Approve {
            id,
            until,
            fields,
            territory,
            note,
            ..
        } => {
            let (g, meta) = decided(id).await?;
            let approval = Approval {
                until,
                fields,
                territory,
                note: note.clone(),
            };
            (
                grants::approve(me, g, &approval, &meta, now),
                "grant.approve",
                note,
            )
        }
        GrantsCommand::Refuse { id, reason, .. } => {
            let (g, meta) = decided(id).await?;
            (
                grants::refuse(me, g, &reason, &meta, now),
                "grant.refuse",
                reason,
            )
        }
        GrantsCommand::Revoke { id, reason, .. } => {
            let (g, meta) = decided(id).await?;
            (
                grants::revoke(me, g, &reason, &meta, now),
                "grant.revoke",
                reason,
            )
        }
    };
    let (g, action, detail) = step;
    Ok(Some((g.map_err(|e| e.to_string())?, action, detail)))
}

/// Runs `citytwin objections …`.
pub async fn objections(c: ObjectionsCommand) -> Result<(), String> {
    let calendar = Calendar::china();
    let now = ts::now();
    match c {
        ObjectionsCommand::List { overdue, store: a } => {
            let store = open(&a.store).await?;
            let mut list = objections::load(store.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            list.retain(|o| !overdue || o.overdue(now));
            list.sort_by_key(|o| (!o.overdue(now), o.filed_at));
            for o in &list {
                out(&objection_json(o, &calendar).to_string());
            }
            store.close().await;
            Ok(())
        }
        ObjectionsCommand::Decide {
            id,
            outcome,
            reason,
            store: a,
        } => {
            let outcome = match outcome.as_str() {
                "upheld" => ObjectionState::Upheld,
                "rejected" => ObjectionState::Rejected,
                o => return Err(format!("--outcome {o:?}: upheld or rejected")),
            };
            let store = open(&a.store).await?;
            let o = objections::load(store.as_ref())
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|o| o.id == id)
                .ok_or_else(|| format!("no objection {id}"))?;
            let owner = meta_of(&store, &o.layer)
                .await
                .ok()
                .and_then(|m| m.classification.map(|c| c.owner));
            let o = objections::decide(
                &operator().principal,
                o,
                &Decision { outcome, reason },
                owner.as_deref(),
                now,
            )
            .map_err(|e| e.to_string())?;
            objections::save(store.as_ref(), &o)
                .await
                .map_err(|e| e.to_string())?;
            let target = format!("{} {}", o.id, o.layer);
            record(&store, &a, "objection.decide", &target, &o.outcome).await?;
            store.close().await;
            out(&objection_json(&o, &calendar).to_string());
            Ok(())
        }
    }
}
