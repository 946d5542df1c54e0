//! The audit log: who read or changed what, through which channel, and what was decided
//! (Auth art. 21; Data art. 30–36).
//!
//! Entries are appended to the store (both backends), numbered without gaps and chained: each
//! entry's hash is an HMAC-SHA256, under a key kept outside the store, of the previous
//! entry's hash and the entry itself. An entry edited, deleted or moved breaks the chain from
//! there on, and whoever holds only the database cannot forge a new chain — [`verify`] finds
//! the first entry that does not fit. The stores refuse updates, and deletes of entries
//! younger than the retention period (at least 180 days), with triggers.
//!
//! One writer task numbers, chains and appends entries in batches. Writes wait until their
//! entry is durable ([`AuditLog::record_durable`]); reads and denials are queued
//! ([`AuditLog::record`]); tile reads are counted per principal, layer and minute and written
//! as one entry each minute ([`AuditLog::tile_read`]).

use crate::live::{Millis, ts};
use crate::store::Store;
use crate::{Error, Result};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The shortest time entries are kept, in days (Auth art. 21 and level-3 protection).
pub const MIN_RETENTION_DAYS: u32 = 180;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// position in the log, from 1, without gaps
    pub seq: u64,
    /// when (milliseconds since the epoch)
    pub at: Millis,
    /// who: `public`, `user:<subject>`, `key:<id>`, `system`
    pub principal: String,
    /// what: `read`, a write such as `event.accept`, `key.create`, `login`
    pub action: String,
    /// what it was about: a layer, `events/12`, `keys/k…`
    pub target: String,
    /// how: `tiles`, `items`, `feed`, `render`, `http`, `mqtt`, `cli`…
    pub channel: String,
    /// `allow` or `deny`
    pub decision: String,
    /// features, cells or tiles returned, when counted
    pub count: Option<u64>,
    /// the client's address
    pub client: String,
    /// the request id (also in the `x-request-id` response header)
    pub request_id: String,
    /// anything else: a denial's reason, a rolled-up minute
    pub detail: String,
    /// HMAC-SHA256 of the previous entry's hash and this entry, hex
    pub hash: String,
}

/// An entry before the log numbers and chains it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// see [`AuditEntry::principal`]
    pub principal: String,
    /// see [`AuditEntry::action`]
    pub action: String,
    /// see [`AuditEntry::target`]
    pub target: String,
    /// see [`AuditEntry::channel`]
    pub channel: String,
    /// true: allowed; false: denied
    pub allowed: bool,
    /// see [`AuditEntry::count`]
    pub count: Option<u64>,
    /// see [`AuditEntry::client`]
    pub client: String,
    /// see [`AuditEntry::request_id`]
    pub request_id: String,
    /// see [`AuditEntry::detail`]
    pub detail: String,
}

/// A selection of the audit log.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// only entries after this sequence number
    pub after: u64,
    /// only entries at or after this time
    pub from: Option<Millis>,
    /// only entries at or before this time
    pub to: Option<Millis>,
    /// only this principal
    pub principal: Option<String>,
    /// only this target
    pub target: Option<String>,
    /// only this action
    pub action: Option<String>,
    /// only `allow` or `deny`
    pub decision: Option<String>,
    /// most entries returned
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            after: 0,
            from: None,
            to: None,
            principal: None,
            target: None,
            action: None,
            decision: None,
            limit: 1000,
        }
    }
}

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key the chain is made with.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    /// A key from bytes (at least 32).
    pub fn new(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() < 32 {
            return Err(Error::Invalid(
                "the audit key must be at least 32 bytes".into(),
            ));
        }
        Ok(Self(bytes))
    }

    /// Reads the key file, or makes one (64 hex digits of randomness, readable by its owner
    /// only) when `create` and it is missing.
    pub fn load(path: &Path, create: bool) -> Result<Self> {
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::new(text.trim().as_bytes().to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let text = crate::keys::random_hex(32)?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(io)?;
                std::io::Write::write_all(&mut f, format!("{text}\n").as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                tracing::info!(path = %path.display(), "made a new audit key; keep it safe and apart from the store");
                Self::new(text.into_bytes())
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The hash of an entry after `prev`.
    #[must_use]
    pub fn chain(&self, prev: &str, e: &AuditEntry) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        let body = serde_json::to_vec(&(
            prev,
            e.seq,
            e.at,
            &e.principal,
            &e.action,
            &e.target,
            &e.channel,
            &e.decision,
            e.count,
            &e.client,
            &e.request_id,
            &e.detail,
        ))
        .unwrap_or_default();
        mac.update(&body);
        crate::keys::hex(&mac.finalize().into_bytes())
    }
}

type Job = (AuditRecord, Millis, Option<oneshot::Sender<Result<()>>>);

/// Tile reads of one principal and layer in the current minute.
#[derive(Debug, Clone, Default)]
struct Rollup {
    count: u64,
    client: String,
    request_id: String,
}

/// Tile reads per (principal, layer, plan) in the current minute.
type Rollups = Arc<Mutex<HashMap<(String, String, String), Rollup>>>;

/// The audit log of a twin: one writer, many callers.
pub struct AuditLog {
    jobs: mpsc::Sender<Job>,
    tiles: Rollups,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer over a store, continuing its chain, with the minute roll-up of tile
    /// reads; entries older than `retention_days` (at least [`MIN_RETENTION_DAYS`]) are
    /// pruned once a day.
    pub async fn open(store: Arc<dyn Store>, key: AuditKey, retention_days: u32) -> Result<Self> {
        if retention_days < MIN_RETENTION_DAYS {
            return Err(Error::Invalid(format!(
                "audit entries are kept at least {MIN_RETENTION_DAYS} days, not {retention_days}"
            )));
        }
        let log = Self::writer(Arc::clone(&store), key).await?;
        let (jobs, rolled) = (log.jobs.clone(), Arc::clone(&log.tiles));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_mins(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let taken: Vec<_> = rolled
                    .lock()
                    .map(|mut m| m.drain().collect())
                    .unwrap_or_default();
                for ((principal, layer, detail), r) in taken {
                    let rec = AuditRecord {
                        principal,
                        action: "read".into(),
                        target: layer,
                        channel: "tiles".into(),
                        allowed: true,
                        count: Some(r.count),
                        client: r.client,
                        request_id: r.request_id,
                        detail,
                    };
                    if jobs.send((rec, ts::now(), None)).await.is_err() {
                        return;
                    }
                }
            }
        });
        let pruner = Arc::clone(&store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_hours(24));
            loop {
                tick.tick().await;
                let before = ts::now() - i64::from(retention_days) * 86_400_000;
                match pruner.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(entries = n, "pruned audit entries past retention"),
                    Err(e) => tracing::warn!(error = %e, "audit pruning failed"),
                }
            }
        });
        Ok(log)
    }

    /// Only the writer, continuing the store's chain: for a short-lived process (the CLI)
    /// that records what it did, without the server's minute roll-ups and daily pruning.
    pub async fn writer(store: Arc<dyn Store>, key: AuditKey) -> Result<Self> {
        let head = store.audit_head().await?;
        let (jobs, rx) = mpsc::channel(65_536);
        tokio::spawn(write_loop(store, key, head, rx));
        Ok(Self {
            jobs,
            tiles: Rollups::default(),
        })
    }

    /// Queues an entry; it is written within moments.
    pub fn record(&self, r: AuditRecord) {
        let job = (r, ts::now(), None);
        if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
            // never dropped: wait for room off the caller's path
            let jobs = self.jobs.clone();
            tokio::spawn(async move {
                let _ = jobs.send(job).await;
            });
        }
    }

    /// Writes an entry and returns once it is durable.
    pub async fn record_durable(&self, r: AuditRecord) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((r, ts::now(), Some(tx)))
            .await
            .map_err(|_| Error::Unavailable("the audit writer stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the audit writer stopped".into()))?
    }

    /// Counts a tile read of a layer not open to all; one entry per principal, layer and
    /// minute carries the count.
    pub fn tile_read(&self, principal: &str, layer: &str, plan: &str, client: &str, request: &str) {
        if let Ok(mut m) = self.tiles.lock() {
            let r = m
                .entry((principal.to_owned(), layer.to_owned(), plan.to_owned()))
                .or_default();
            if r.count == 0 {
                r.client = client.to_owned();
                r.request_id = request.to_owned();
            }
            r.count += 1;
        }
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    key: AuditKey,
    head: Option<(u64, String)>,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut head = head.unwrap_or((0, GENESIS.to_owned()));
    let mut jobs: Vec<Job> = Vec::new();
    loop {
        if rx.recv_many(&mut jobs, 4096).await == 0 {
            return;
        }
        // a batch that cannot go on after the head we know (another process — the CLI —
        // appended meanwhile, or the store is down) is chained again after the store's own
        // head and tried again, whole: the chain continues only over what is on disk
        let mut wait = Duration::from_millis(50);
        let result = loop {
            let entries = chained(&key, &head, &jobs);
            match store.append_audit(&entries).await {
                Ok(()) => {
                    if let Some(last) = entries.last() {
                        head = (last.seq, last.hash.clone());
                    }
                    break Ok(());
                }
                Err(e) if wait < Duration::from_secs(5) => {
                    tracing::debug!(error = %e, "audit append failed; chaining again after the store's head");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    if let Ok(h) = store.audit_head().await {
                        head = h.unwrap_or((0, GENESIS.to_owned()));
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, entries = jobs.len(), "audit entries could not be written; their callers are told");
        }
        for (_, _, reply) in jobs.drain(..) {
            if let Some(r) = reply {
                let _ = r.send(
                    result
                        .as_ref()
                        .copied()
                        .map_err(|e| Error::Unavailable(format!("audit log: {e}"))),
                );
            }
        }
    }
}

/// Numbers and chains a batch after `head`.
fn chained(key: &AuditKey, head: &(u64, String), jobs: &[Job]) -> Vec<AuditEntry> {
    let mut last = head.1.clone();
    jobs.iter()
        .enumerate()
        .map(|(i, (r, at, _))| {
            let mut e = AuditEntry {
                seq: head.0 + 1 + i as u64,
                at: *at,
                principal: r.principal.clone(),
                action: r.action.clone(),
                target: r.target.clone(),
                channel: r.channel.clone(),
                decision: if r.allowed { "allow" } else { "deny" }.into(),
                count: r.count,
                client: r.client.clone(),
                request_id: r.request_id.clone(),
                detail: r.detail.clone(),
                hash: String::new(),
            };
            e.hash = key.chain(&last, &e);
            last.clone_from(&e.hash);
            e
        })
        .collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// entries checked
    pub entries: u64,
    /// the first sequence number (above 1 when older entries were pruned)
    pub first: u64,
    /// the last sequence number and its hash: note them, and a later check can tell that
    /// nothing before them was cut off
    pub head: Option<(u64, String)>,
}

/// A break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {problem}")]
pub struct Broken {
    /// the first entry that does not fit
    pub seq: u64,
    /// how
    pub problem: String,
}

/// Checks the whole log in the store: numbering without gaps, and every hash. `expect_head`
/// (a sequence number and hash noted earlier) must still be in the chain.
pub async fn verify(
    store: &dyn Store,
    key: &AuditKey,
    expect_head: Option<(u64, String)>,
) -> Result<std::result::Result<Verified, Broken>> {
    let mut after = 0;
    let mut prev: Option<String> = None;
    let mut expected_seq: Option<u64> = None;
    let mut first = 0;
    let mut count = 0u64;
    let mut head = None;
    let mut found_head = expect_head.is_none();
    loop {
        let page = store
            .read_audit(&AuditQuery {
                after,
                limit: 10_000,
                ..AuditQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            if let Some(want) = expected_seq
                && e.seq != want
            {
                return Ok(Err(Broken {
                    seq: want,
                    problem: format!("missing: the next entry is {}", e.seq),
                }));
            }
            if first == 0 {
                first = e.seq;
            }
            let chained = match &prev {
                Some(p) => Some(key.chain(p, &e)),
                // the very first entry chains from the genesis hash; after pruning, the
                // first one left is taken as it is
                None if e.seq == 1 => Some(key.chain(GENESIS, &e)),
                None => None,
            };
            if let Some(h) = chained
                && h != e.hash
            {
                return Ok(Err(Broken {
                    seq: e.seq,
                    problem: "its hash does not match its content and the entry before it: it was edited, or entries were moved or removed before it".into(),
                }));
            }
            if let Some((s, h)) = &expect_head
                && *s == e.seq
            {
                if *h != e.hash {
                    return Ok(Err(Broken {
                        seq: e.seq,
                        problem:
                            "it is not the entry noted earlier: the log was rewritten from here"
                                .into(),
                    }));
                }
                found_head = true;
            }
            expected_seq = Some(e.seq + 1);
            head = Some((e.seq, e.hash.clone()));
            prev = Some(e.hash);
            count += 1;
        }
    }
    if !found_head {
        let seq = expect_head.map_or(0, |(s, _)| s);
        return Ok(Err(Broken {
            seq,
            problem: "the entry noted earlier is gone: the log was cut short".into(),
        }));
    }
    if first > 1 {
        // entries before `first` were removed: only retention may do that
        let oldest = store
            .read_audit(&AuditQuery {
                limit: 1,
                ..AuditQuery::default()
            })
            .await?;
        if let Some(e) = oldest.first()
            && e.at > ts::now() - i64::from(MIN_RETENTION_DAYS) * 86_400_000
        {
            return Ok(Err(Broken {
                seq: first - 1,
                problem: format!(
                    "entries before {first} were removed before the {MIN_RETENTION_DAYS}-day retention ended"
                ),
            }));
        }
    }
    Ok(Ok(Verified {
        entries: count,
        first,
        head,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> AuditRecord {
        AuditRecord {
            principal: format!("user:{i}"),
            action: "read".into(),
            target: "roads".into(),
            channel: "items".into(),
            allowed: i.is_multiple_of(2),
            count: Some(i),
            client: "127.0.0.1".into(),
            request_id: format!("r{i}"),
            detail: String::new(),
        }
    }

    #[tokio::test]
    async fn the_chain_holds_across_restarts_and_breaks_when_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gpkg");
        let store: Arc<dyn Store> = Arc::new(
            crate::store::gpkg::GeoPackageStore::open(&path)
                .await
                .unwrap(),
        );
        let key = AuditKey::load(&dir.path().join("audit.key"), true).unwrap();
        let log = AuditLog::open(Arc::clone(&store), key.clone(), 180)
            .await
            .unwrap();
        for i in 0..10 {
            log.record(rec(i));
        }
        log.record_durable(rec(10)).await.unwrap();
        // a second writer (a restart) continues the same chain
        let again = AuditLog::open(Arc::clone(&store), key.clone(), 180)
            .await
            .unwrap();
        again.record_durable(rec(11)).await.unwrap();
        // the first writer's idea of the head is stale now: it chains after the store's
        log.record_durable(rec(12)).await.unwrap();
        let ok = verify(store.as_ref(), &key, None).await.unwrap().unwrap();
        assert_eq!((ok.entries, ok.first), (13, 1));
        let head = ok.head.clone().unwrap();
        assert_eq!(head.0, 13);
        assert!(
            verify(store.as_ref(), &key, Some(head.clone()))
                .await
                .unwrap()
                .is_ok()
        );
        // another key cannot make the chain
        let other = AuditKey::new(vec![7; 32]).unwrap();
        assert_eq!(
            verify(store.as_ref(), &other, None)
                .await
                .unwrap()
                .unwrap_err()
                .seq,
            1
        );
        let entries = store.read_audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(entries[3].principal, "user:3");
        assert_eq!(entries[3].decision, "deny");
        // the store itself refuses edits and early deletes
        let sqlite = rusqlite::Connection::open(&path).unwrap();
        assert!(
            sqlite
                .execute(
                    "UPDATE citytwin_audit SET principal = 'x' WHERE seq = 4",
                    []
                )
                .is_err()
        );
        assert!(
            sqlite
                .execute("DELETE FROM citytwin_audit WHERE seq = 4", [])
                .is_err()
        );
        // someone with the database drops the guard and edits an entry
        sqlite
            .execute_batch(
                "DROP TRIGGER citytwin_audit_append_only; UPDATE citytwin_audit SET principal = 'user:nobody' WHERE seq = 4",
            )
            .unwrap();
        let broken = verify(store.as_ref(), &key, None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.seq, 4, "{broken}");
        sqlite
            .execute_batch(
                "UPDATE citytwin_audit SET principal = 'user:3' WHERE seq = 4; DROP TRIGGER citytwin_audit_retention; DELETE FROM citytwin_audit WHERE seq = 7",
            )
            .unwrap();
        let broken = verify(store.as_ref(), &key, None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.seq, 7, "{broken}");
        // cutting the tail shows against a head noted before
        sqlite
            .execute("DELETE FROM citytwin_audit WHERE seq >= 7", [])
            .unwrap();
        assert!(verify(store.as_ref(), &key, None).await.unwrap().is_ok());
        let cut = verify(store.as_ref(), &key, Some(head))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(cut.seq, 13);
    }

    #[tokio::test]
    async fn retention_below_180_days_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::gpkg::GeoPackageStore::open(&dir.path().join("a.gpkg"))
                .await
                .unwrap(),
        );
        let key = AuditKey::new(vec![1; 32]).unwrap();
        assert!(AuditLog::open(store, key, 30).await.is_err());
    }
}
