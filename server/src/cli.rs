//! The access-control commands: `catalog`, `keys`, `users`, `audit`. Each opens the store,
//! does one thing, and records it in the audit log (as `cli`, by the operating-system user
//! who ran it); a running server sees keys at once and revocations within a second.

use crate::routes::access::{audit_json, key_json, revocation_json};
use citytwin_city::Store;
use citytwin_city::access::{Context, Principal, PrincipalKind, Role};
use citytwin_city::audit::{AuditKey, AuditLog, AuditQuery, verify};
use citytwin_city::catalog::{CatalogUpdate, Classification, OpenClass, ShareClass};
use citytwin_city::keys::{Credentials, NewKey};
use citytwin_city::live::ts;
use citytwin_city::store::StoreSpec;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a command finds the store and the audit key.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// the store: a GeoPackage path or a PostGIS URL
    #[arg(long, env = "CITYTWIN_STORE", default_value = "data/citytwin.gpkg")]
    pub store: String,
    /// the audit key file (default: as `serve` finds it)
    #[arg(long, env = "CITYTWIN_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
}

/// A layer's entry in the classified catalogue, given on the command line.
#[derive(Debug, Clone, Args)]
pub struct ClassArgs {
    /// the owner department, for the classified catalogue (with --share, --open, --level)
    #[arg(long)]
    pub owner: Option<String>,
    /// sharing between departments: unconditional, conditional or not-shared
    #[arg(long)]
    pub share: Option<String>,
    /// opening to the public: unconditional, conditional or not-open
    #[arg(long)]
    pub open: Option<String>,
    /// security level 1–4
    #[arg(long)]
    pub level: Option<u8>,
    /// how often the layer is updated
    #[arg(long)]
    pub update_frequency: Option<String>,
    /// personal fields and how those without the right see them: `reporter=name,phone=phone`
    /// (masks: remove, phone, name, plate, partial; a field alone is removed)
    #[arg(long)]
    pub personal: Option<String>,
    /// snap coordinates to this many metres for those without the right to the raw data
    /// (0: none)
    #[arg(long)]
    pub precision: Option<u32>,
    /// numeric fields whose sums and means aggregates of a level-3 layer may show
    #[arg(long, value_delimiter = ',')]
    pub aggregable: Option<Vec<String>>,
    /// k: the smallest non-zero count aggregates of a level-3 layer show (default 5)
    #[arg(long)]
    pub min_count: Option<u32>,
}

impl ClassArgs {
    /// The change these flags make to an entry.
    pub fn update(&self) -> Result<CatalogUpdate, String> {
        Ok(CatalogUpdate {
            owner: self.owner.clone(),
            update_frequency: self.update_frequency.clone(),
            share: self
                .share
                .as_deref()
                .map(ShareClass::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            open: self
                .open
                .as_deref()
                .map(OpenClass::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            level: self.level,
            personal: self
                .personal
                .as_deref()
                .map(citytwin_city::catalog::parse_personal)
                .transpose()
                .map_err(|e| e.to_string())?,
            precision_m: self.precision,
            aggregable: self.aggregable.clone(),
            min_count: self.min_count,
            ..CatalogUpdate::default()
        })
    }

    /// The entry, when one was given whole.
    pub fn classification(self) -> Result<Option<Classification>, String> {
        match (&self.owner, &self.share, &self.open, self.level) {
            (None, None, None, None) => Ok(None),
            (Some(owner), Some(_), Some(_), Some(_)) => {
                let change = self.update()?;
                let mut c = Classification {
                    update_frequency: self.update_frequency.clone().unwrap_or_default(),
                    personal: change.personal.unwrap_or_default(),
                    precision_m: change.precision_m.filter(|m| *m > 0),
                    aggregable: change.aggregable.unwrap_or_default(),
                    min_count: change.min_count,
                    ..Classification::new(
                        owner,
                        change.share.unwrap_or(ShareClass::NotShared),
                        change.open.unwrap_or(OpenClass::NotOpen),
                        change.level.unwrap_or(4),
                    )
                };
                c.update_frequency = self.update_frequency.unwrap_or_default();
                c.check().map_err(|e| e.to_string())?;
                Ok(Some(c))
            }
            _ => Err(
                "classify with all of --owner, --share, --open and --level (or none, and `citytwin catalog set` later)"
                    .into(),
            ),
        }
    }
}

/// `citytwin catalog …`
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum CatalogCommand {
    /// Show every layer's entry (or one layer's).
    Show {
        /// only this layer
        layer: Option<String>,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a layer's entry: only what is given changes (a layer not yet classified needs
    /// --owner, --share, --open and --level).
    Set {
        /// the layer
        layer: String,
        /// owner, share and open class, level, update frequency: only what is given changes
        #[command(flatten)]
        class: ClassArgs,
        /// what the layer holds
        #[arg(long)]
        description: Option<String>,
        /// human title
        #[arg(long)]
        title: Option<String>,
        /// where the data came from
        #[arg(long)]
        source: Option<String>,
        /// when it was acquired (YYYY-MM-DD)
        #[arg(long)]
        acquired: Option<String>,
        /// the text field holding each feature's territorial code (territory-scoped readers
        /// see only their territory's features)
        #[arg(long)]
        territory_field: Option<String>,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `citytwin keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; it is printed once and never again.
    Create {
        /// what it is for (gateway-xuanwu-01)
        #[arg(long)]
        name: String,
        /// its roles, comma-separated: reporter, dispatcher, handler, verifier, commander,
        /// sensor-admin, gateway, tracker, system-admin
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// the department it reads for
        #[arg(long)]
        department: Option<String>,
        /// the territory it acts in (a division, street, community or grid code)
        #[arg(long)]
        territory: Option<String>,
        /// the sensors it may send readings for, comma-separated (`*` wildcards)
        #[arg(long, value_delimiter = ',')]
        sensors: Option<Vec<String>>,
        /// days until it expires
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (never their secrets).
    List {
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key: its next request is refused, its open streams close.
    Revoke {
        /// the key id (k…)
        id: String,
        /// why
        #[arg(long, default_value = "")]
        reason: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `citytwin users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Cut a user off at once (their identity provider's subject, the token's `sub`).
    Revoke {
        /// the subject
        subject: String,
        /// why
        #[arg(long, default_value = "")]
        reason: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Let a revoked user in again.
    Restore {
        /// the subject
        subject: String,
        /// why
        #[arg(long, default_value = "")]
        reason: String,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revocations, oldest first.
    List {
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `citytwin audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exits non-zero naming the first entry that was edited, moved
    /// or removed.
    Verify {
        /// a sequence number and hash noted earlier (`SEQ:HASH`, as verify prints it): the
        /// log must still hold it, so a log cut short shows
        #[arg(long)]
        head: Option<String>,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print entries as JSON lines.
    Show {
        /// only entries after this sequence number
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// most entries
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// only this principal
        #[arg(long)]
        principal: Option<String>,
        /// the store and audit key
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) async fn open(spec: &str) -> Result<Arc<dyn Store>, String> {
    let spec = StoreSpec::parse(spec);
    if let StoreSpec::GeoPackage(p) = &spec
        && !p.exists()
    {
        return Err(format!("store {} does not exist", p.display()));
    }
    let store = spec.open().await.map_err(|e| e.to_string())?;
    crate::cluster::announcing(store).await
}

pub(crate) fn audit_key(a: &StoreArgs, create: bool) -> Result<AuditKey, String> {
    let path = a
        .audit_key
        .clone()
        .unwrap_or_else(|| crate::config::default_audit_key(&a.store));
    AuditKey::load(&path, create).map_err(|e| format!("audit key: {e}"))
}

/// Whoever runs the command, as the audit log names them.
pub(crate) fn operator() -> Context {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Context::of(
        Principal {
            id: format!("cli:{user}"),
            name: user,
            kind: PrincipalKind::Key,
            department: None,
            roles: [Role::SecurityAdmin].into_iter().collect(),
            territory: None,
            sensors: None,
            expires: None,
        },
        "cli",
    )
}

/// Records what a command did, durably.
pub(crate) async fn record(
    store: &Arc<dyn Store>,
    a: &StoreArgs,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), String> {
    let log = AuditLog::writer(Arc::clone(store), audit_key(a, true)?)
        .await
        .map_err(|e| e.to_string())?;
    log.record_durable(operator().record(action, target, true, None, detail))
        .await
        .map_err(|e| e.to_string())
}

#[allow(clippy::print_stdout)]
pub(crate) fn out(line: &str) {
    println!("{line}");
}

/// Runs `citytwin catalog …`.
pub async fn catalog(c: CatalogCommand) -> Result<(), String> {
    match c {
        CatalogCommand::Show { layer, store: a } => {
            let store = open(&a.store).await?;
            let metas = store.layers().await.map_err(|e| e.to_string())?;
            for m in metas
                .iter()
                .filter(|m| layer.as_ref().is_none_or(|l| *l == m.name))
            {
                out(&crate::routes::catalog::classification(m).to_string());
            }
            store.close().await;
            Ok(())
        }
        CatalogCommand::Set {
            layer,
            class,
            description,
            title,
            source,
            acquired,
            territory_field,
            store: a,
        } => {
            let change = CatalogUpdate {
                title,
                description,
                source,
                acquired,
                territory_field,
                ..class.update()?
            };
            let store = open(&a.store).await?;
            let result = citytwin_city::catalog::update(store.as_ref(), &layer, &change).await;
            let meta = match result {
                Ok(m) => m,
                Err(e) => {
                    store.close().await;
                    return Err(e.to_string());
                }
            };
            let entry = crate::routes::catalog::classification(&meta);
            record(&store, &a, "catalog.set", &layer, &entry.to_string()).await?;
            store.close().await;
            out(&entry.to_string());
            Ok(())
        }
    }
}

/// Runs `citytwin keys …`.
pub async fn keys(c: KeysCommand) -> Result<(), String> {
    match c {
        KeysCommand::Create {
            name,
            roles,
            department,
            territory,
            sensors,
            days,
            store: a,
        } => {
            let roles = roles
                .iter()
                .map(|r| {
                    Role::parse(r.trim()).ok_or_else(|| {
                        format!(
                            "unknown role {r:?}; roles are {}",
                            Role::ALL
                                .iter()
                                .map(|r| r.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            let store = open(&a.store).await?;
            let creds = Credentials::open(Arc::clone(&store))
                .await
                .map_err(|e| e.to_string())?;
            let made = creds
                .create(NewKey {
                    name,
                    roles,
                    department,
                    territory,
                    sensors,
                    expires_at: ts::now() + i64::from(days) * 86_400_000,
                    created_by: operator().principal.id.clone(),
                })
                .await;
            let (key, token) = match made {
                Ok(k) => k,
                Err(e) => {
                    store.close().await;
                    return Err(e.to_string());
                }
            };
            record(
                &store,
                &a,
                "key.create",
                &format!("keys/{}", key.id),
                &key.name,
            )
            .await?;
            store.close().await;
            out(&token);
            Ok(())
        }
        KeysCommand::List { store: a } => {
            let store = open(&a.store).await?;
            let creds = Credentials::open(Arc::clone(&store))
                .await
                .map_err(|e| e.to_string())?;
            for k in creds.list().await.map_err(|e| e.to_string())? {
                out(&key_json(&k).to_string());
            }
            store.close().await;
            Ok(())
        }
        KeysCommand::Revoke {
            id,
            reason,
            store: a,
        } => {
            let store = open(&a.store).await?;
            let creds = Credentials::open(Arc::clone(&store))
                .await
                .map_err(|e| e.to_string())?;
            let by = operator().principal.id.clone();
            let done = creds.revoke_key(&id, &reason, &by).await;
            if let Err(e) = done {
                store.close().await;
                return Err(e.to_string());
            }
            record(&store, &a, "key.revoke", &format!("keys/{id}"), &reason).await?;
            store.close().await;
            out(&format!("revoked key {id}"));
            Ok(())
        }
    }
}

/// Runs `citytwin users …`.
pub async fn users(c: UsersCommand) -> Result<(), String> {
    let (subject, revoked, reason, a) = match c {
        UsersCommand::List { store: a } => {
            let store = open(&a.store).await?;
            let list = store.revocations(0).await.map_err(|e| e.to_string())?;
            for r in list {
                out(&revocation_json(&r).to_string());
            }
            store.close().await;
            return Ok(());
        }
        UsersCommand::Revoke {
            subject,
            reason,
            store,
        } => (subject, true, reason, store),
        UsersCommand::Restore {
            subject,
            reason,
            store,
        } => (subject, false, reason, store),
    };
    let subject = if subject.contains(':') {
        subject
    } else {
        format!("user:{subject}")
    };
    if !subject.starts_with("user:") {
        return Err(format!(
            "{subject}: users are user:<subject>; revoke keys with `citytwin keys revoke`"
        ));
    }
    let store = open(&a.store).await?;
    let creds = Credentials::open(Arc::clone(&store))
        .await
        .map_err(|e| e.to_string())?;
    let by = operator().principal.id.clone();
    if let Err(e) = creds.revoke(&subject, revoked, &reason, &by).await {
        store.close().await;
        return Err(e.to_string());
    }
    let action = if revoked {
        "user.revoke"
    } else {
        "user.restore"
    };
    record(&store, &a, action, &subject, &reason).await?;
    store.close().await;
    out(&format!(
        "{} {subject}",
        if revoked { "revoked" } else { "restored" }
    ));
    Ok(())
}

/// Runs `citytwin audit …`.
pub async fn audit(c: AuditCommand) -> Result<(), String> {
    match c {
        AuditCommand::Verify { head, store: a } => {
            let expect = head
                .map(|h| {
                    let (s, hash) = h.split_once(':').ok_or("--head is SEQ:HASH")?;
                    Ok::<_, String>((
                        s.parse::<u64>().map_err(|_| "--head is SEQ:HASH")?,
                        hash.to_owned(),
                    ))
                })
                .transpose()?;
            let key = audit_key(&a, false)?;
            let store = open(&a.store).await?;
            let result = verify(store.as_ref(), &key, expect).await;
            store.close().await;
            match result.map_err(|e| e.to_string())? {
                Ok(v) => {
                    let head = v
                        .head
                        .map_or_else(|| "none".to_owned(), |(s, h)| format!("{s}:{h}"));
                    out(&format!(
                        "audit log intact: {} entries from {} (head {head})",
                        v.entries, v.first
                    ));
                    Ok(())
                }
                Err(broken) => Err(format!("audit log tampered with: {broken}")),
            }
        }
        AuditCommand::Show {
            after,
            limit,
            principal,
            store: a,
        } => {
            let store = open(&a.store).await?;
            let entries = store
                .read_audit(&AuditQuery {
                    after,
                    limit,
                    principal,
                    ..AuditQuery::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            for e in entries {
                out(&audit_json(&e).to_string());
            }
            store.close().await;
            Ok(())
        }
    }
}
