//! Credentials citytwin issues and withdraws itself: API keys for machines (sensor gateways,
//! other systems), and revocations that cut off a user of the identity provider or a key at
//! once (Auth art. 23).
//!
//! A key is shown once, when it is made (`ctk_<id>_<secret>`); the store keeps only the
//! SHA-256 of its secret. The secret is 256 random bits, so a fast hash is enough: there is
//! nothing to guess. [`Credentials`] keeps keys and revocations in memory, reads a key it does
//! not know from the store (a key made a moment ago by `citytwin keys create` works at once),
//! and picks up revocations other processes made when [`Credentials::refresh`] runs.

use crate::access::{Principal, PrincipalKind, Role, check_separation};
use crate::live::{Millis, ts};
use crate::store::Store;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// The prefix of every key citytwin issues.
pub const KEY_PREFIX: &str = "ctk_";

/// An API key as the store keeps it (no secret, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// the key's public id (`k` and 12 hex digits)
    pub id: String,
    /// what the key is for (`gateway-xuanwu-01`)
    pub name: String,
    /// SHA-256 of the secret, hex
    pub hash: String,
    /// what it may do
    pub roles: BTreeSet<Role>,
    /// the department it reads for, if any
    #[serde(default)]
    pub department: Option<String>,
    /// the territory it acts in, if narrower than the city
    #[serde(default)]
    pub territory: Option<String>,
    /// the sensors it may send readings for (`*` wildcards); all when absent
    #[serde(default)]
    pub sensors: Option<Vec<String>>,
    /// when it was made
    pub created_at: Millis,
    /// who made it
    pub created_by: String,
    /// when it stops working
    pub expires_at: Millis,
    /// when it was revoked
    #[serde(default)]
    pub revoked_at: Option<Millis>,
}

impl ApiKey {
    /// The principal the key stands for.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal {
            id: format!("key:{}", self.id),
            name: self.name.clone(),
            kind: PrincipalKind::Key,
            department: self.department.clone(),
            roles: self.roles.clone(),
            territory: self.territory.clone(),
            sensors: self.sensors.clone(),
            expires: Some(self.expires_at),
        }
    }

    /// Whether the key works at `now`.
    #[must_use]
    pub fn is_live(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What a new key may do.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// what it is for
    pub name: String,
    /// its roles (not auditor or security admin: those are people's)
    pub roles: BTreeSet<Role>,
    /// the department it reads for
    pub department: Option<String>,
    /// the territory it acts in
    pub territory: Option<String>,
    /// the sensors it may send readings for
    pub sensors: Option<Vec<String>>,
    /// when it stops working
    pub expires_at: Millis,
    /// who makes it
    pub created_by: String,
}

/// A revocation of a user or a key, or its lifting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// position in the revocation log (from 1)
    #[serde(default)]
    pub seq: u64,
    /// `user:<subject>` or `key:<id>`
    pub subject: String,
    /// when
    pub at: Millis,
    /// true: cut off; false: restored
    pub revoked: bool,
    /// why
    pub reason: String,
    /// who did it
    pub by: String,
}

/// Bytes as lowercase hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `bytes` bytes of the system's randomness, as hex: secrets, tickets, receipts, keys.
pub fn random_hex(bytes: usize) -> Result<String> {
    use rand::TryRngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| Error::Invalid(format!("no randomness from the system: {e}")))?;
    Ok(hex(&buf))
}

/// The hash the store keeps of a key's secret (hex SHA-256).
#[must_use]
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks a key's name: 1 to 64 letters, digits, `-`, `_` or `.`.
fn check_key_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "key name {name:?}: use 1 to 64 letters, digits, -, _ or ."
        )))
    }
}

/// Checks a territorial code: digits only.
pub fn check_territory(code: &str) -> Result<()> {
    if code.is_empty() || code.len() > 32 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Invalid(format!(
            "territory {code:?} is not a territorial code (digits, such as 320102)"
        )));
    }
    Ok(())
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// not a key citytwin issued, or a wrong secret
    #[error("unknown API key")]
    Unknown,
    /// past its expiry
    #[error("the API key expired")]
    Expired,
    /// revoked
    #[error("the credentials were revoked")]
    Revoked,
}

/// Keys and revocations, cached in memory and kept in step with the store.
pub struct Credentials {
    store: Arc<dyn Store>,
    keys: RwLock<HashMap<String, ApiKey>>,
    /// subjects revoked now
    revoked: RwLock<BTreeSet<String>>,
    /// the last revocation read
    seq: std::sync::atomic::AtomicU64,
    /// subjects as they are revoked, so open streams can close
    cut: broadcast::Sender<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// Loads keys and revocations from the store.
    pub async fn open(store: Arc<dyn Store>) -> Result<Self> {
        let (cut, _) = broadcast::channel(1024);
        let me = Self {
            keys: RwLock::new(
                store
                    .keys()
                    .await?
                    .into_iter()
                    .map(|k| (k.id.clone(), k))
                    .collect(),
            ),
            store,
            revoked: RwLock::new(BTreeSet::new()),
            seq: std::sync::atomic::AtomicU64::new(0),
            cut,
        };
        me.refresh().await?;
        Ok(me)
    }

    /// Makes a key; returns it with its secret, which is never shown again.
    pub async fn create(&self, k: NewKey) -> Result<(ApiKey, String)> {
        let key = new_key(k)?;
        let (key, token) = key;
        self.store.put_key(&key).await?;
        self.remember(key.clone());
        Ok((key, token))
    }

    fn remember(&self, key: ApiKey) {
        if let Ok(mut m) = self.keys.write() {
            m.insert(key.id.clone(), key);
        }
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<ApiKey>> {
        let mut keys = self.store.keys().await?;
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(keys)
    }

    /// Revokes a key: its next request is refused and its open streams close.
    pub async fn revoke_key(&self, id: &str, reason: &str, by: &str) -> Result<ApiKey> {
        let Some(mut key) = self.store.key(id).await? else {
            return Err(Error::NotFound(format!("no key {id:?}")));
        };
        let now = ts::now();
        if key.revoked_at.is_none() {
            key.revoked_at = Some(now);
            self.store.put_key(&key).await?;
        }
        self.revoke(&format!("key:{id}"), true, reason, by).await?;
        self.remember(key.clone());
        Ok(key)
    }

    /// Revokes (or restores) a subject: `user:<sub>` or `key:<id>`.
    pub async fn revoke(&self, subject: &str, revoked: bool, reason: &str, by: &str) -> Result<()> {
        check_subject(subject)?;
        crate::live::check_text("reason", reason, 400)?;
        if !revoked && subject.starts_with("key:") {
            return Err(Error::Invalid(
                "a revoked key stays revoked: make a new one".into(),
            ));
        }
        self.store
            .add_revocation(&Revocation {
                seq: 0,
                subject: subject.to_owned(),
                at: ts::now(),
                revoked,
                reason: reason.to_owned(),
                by: by.to_owned(),
            })
            .await?;
        self.refresh().await?;
        Ok(())
    }

    /// Every revocation, oldest first.
    pub async fn revocations(&self) -> Result<Vec<Revocation>> {
        self.store.revocations(0).await
    }

    /// Reads revocations made since the last look (by this process or another); returns the
    /// subjects newly cut off, after telling open streams.
    pub async fn refresh(&self) -> Result<Vec<String>> {
        use std::sync::atomic::Ordering;
        let after = self.seq.load(Ordering::Acquire);
        let new = self.store.revocations(after).await?;
        let mut cut = Vec::new();
        if let Ok(mut set) = self.revoked.write() {
            for r in &new {
                if r.revoked {
                    if set.insert(r.subject.clone()) {
                        cut.push(r.subject.clone());
                    }
                } else {
                    set.remove(&r.subject);
                }
            }
        }
        if let Some(last) = new.last() {
            self.seq.fetch_max(last.seq, Ordering::AcqRel);
        }
        for s in &cut {
            if let Some(id) = s.strip_prefix("key:")
                && let Ok(mut m) = self.keys.write()
                && let Some(k) = m.get_mut(id)
            {
                k.revoked_at.get_or_insert(ts::now());
            }
            let _ = self.cut.send(s.clone());
        }
        Ok(cut)
    }

    /// Whether a subject is cut off now.
    #[must_use]
    pub fn is_revoked(&self, subject: &str) -> bool {
        self.revoked
            .read()
            .map_or(true, |set| set.contains(subject))
    }

    /// Subjects as they are revoked.
    #[must_use]
    pub fn revocation_feed(&self) -> broadcast::Receiver<String> {
        self.cut.subscribe()
    }

    /// The principal of a key named by its id alone, for a channel that authenticated the
    /// key's holder itself (the MQTT broker, whose ACL ties a topic level to the login).
    pub async fn principal_of_key_id(&self, id: &str) -> std::result::Result<Principal, Refusal> {
        let key = self.key_by_id(id).await?;
        self.still_good(&key)?;
        Ok(key.principal())
    }

    /// A key by id: remembered, or read from the store (made since we last looked, by
    /// `citytwin keys create` in another process).
    async fn key_by_id(&self, id: &str) -> std::result::Result<ApiKey, Refusal> {
        if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Refusal::Unknown);
        }
        if let Some(k) = self.keys.read().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(k);
        }
        // a store busy under load is asked again before the key counts as unknown
        let mut tries = 0;
        let found = loop {
            match self.store.key(id).await {
                Ok(k) => break k,
                Err(e) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(key = id, error = %e, "reading a key from the store failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * tries)).await;
                }
                Err(e) => {
                    tracing::error!(key = id, error = %e, "reading a key from the store failed");
                    break None;
                }
            }
        };
        let k = found.ok_or(Refusal::Unknown)?;
        self.remember(k.clone());
        Ok(k)
    }

    /// Refuses a revoked or expired key.
    fn still_good(&self, key: &ApiKey) -> std::result::Result<(), Refusal> {
        if key.revoked_at.is_some() || self.is_revoked(&format!("key:{}", key.id)) {
            return Err(Refusal::Revoked);
        }
        if !key.is_live(ts::now()) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    /// The principal a key token (`ctk_<id>_<secret>`) stands for.
    pub async fn principal_of_key(&self, token: &str) -> std::result::Result<Principal, Refusal> {
        let rest = token.strip_prefix(KEY_PREFIX).ok_or(Refusal::Unknown)?;
        let (id, secret) = rest.split_once('_').ok_or(Refusal::Unknown)?;
        let key = self.key_by_id(id).await?;
        if !same(&secret_hash(secret), &key.hash) {
            return Err(Refusal::Unknown);
        }
        self.still_good(&key)?;
        Ok(key.principal())
    }
}

/// Checks a revocation subject: `user:<subject>` or `key:<id>`.
pub fn check_subject(subject: &str) -> Result<()> {
    let ok = match subject.split_once(':') {
        Some(("user" | "key", rest)) => {
            !rest.is_empty() && rest.len() <= 255 && !rest.chars().any(char::is_control)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "subject {subject:?}: use user:<subject of the identity provider> or key:<key id>"
        )))
    }
}

/// A new key and its token, checked.
fn new_key(k: NewKey) -> Result<(ApiKey, String)> {
    check_key_name(&k.name)?;
    if k.roles.is_empty() {
        return Err(Error::Invalid(
            "a key needs at least one role (reporter, dispatcher, gateway, …)".into(),
        ));
    }
    if let Some(r) = k.roles.iter().find(|r| r.is_personal()) {
        return Err(Error::Invalid(format!(
            "role {} belongs to people signed in with the identity provider, not to keys",
            r.name()
        )));
    }
    check_separation(&k.roles).map_err(Error::Invalid)?;
    if let Some(d) = &k.department {
        crate::catalog::check_department(d)?;
    }
    if let Some(t) = &k.territory {
        check_territory(t)?;
    }
    match &k.sensors {
        Some(list) => {
            if list.is_empty() || list.len() > 10_000 {
                return Err(Error::Invalid(
                    "sensors: name 1 to 10000 sensors or patterns".into(),
                ));
            }
            for s in list {
                crate::live::check_id("sensor pattern", &s.replace('*', "x"))?;
            }
        }
        None if k.roles.contains(&Role::Gateway) => {
            return Err(Error::Invalid(
                "a gateway key names the sensors it sends for (--sensors 'WL-*', or '*' for all)"
                    .into(),
            ));
        }
        None => {}
    }
    let now = ts::now();
    if k.expires_at <= now {
        return Err(Error::Invalid("the expiry is in the past".into()));
    }
    let id = format!("k{}", random_hex(6)?);
    let secret = random_hex(32)?;
    let key = ApiKey {
        id: id.clone(),
        name: k.name,
        hash: secret_hash(&secret),
        roles: k.roles,
        department: k.department,
        territory: k.territory,
        sensors: k.sensors,
        created_at: now,
        created_by: k.created_by,
        expires_at: k.expires_at,
        revoked_at: None,
    };
    Ok((key, format!("{KEY_PREFIX}{id}_{secret}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> NewKey {
        NewKey {
            name: "gw-1".into(),
            roles: [Role::Gateway].into_iter().collect(),
            sensors: Some(vec!["WL-*".into()]),
            expires_at: ts::now() + 86_400_000,
            created_by: "test".into(),
            ..NewKey::default()
        }
    }

    #[tokio::test]
    async fn keys_work_until_revoked_and_only_with_their_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::gpkg::GeoPackageStore::open(&dir.path().join("k.gpkg"))
                .await
                .unwrap(),
        );
        let creds = Credentials::open(Arc::clone(&store)).await.unwrap();
        let (key, token) = creds.create(gateway()).await.unwrap();
        assert!(token.starts_with("ctk_k"));
        assert!(!serde_json::to_string(&key).unwrap().contains(&token[17..]));
        let p = creds.principal_of_key(&token).await.unwrap();
        assert_eq!(p.id, format!("key:{}", key.id));
        assert!(p.covers_sensor("WL-1") && !p.covers_sensor("RF-1"));
        let wrong = format!("{}0", &token[..token.len() - 1]);
        let wrong = if wrong == token {
            format!("{}1", &token[..token.len() - 1])
        } else {
            wrong
        };
        assert_eq!(creds.principal_of_key(&wrong).await, Err(Refusal::Unknown));
        assert_eq!(
            creds.principal_of_key("ctk_nope_x").await,
            Err(Refusal::Unknown)
        );
        // another process sees the key at once, and the revocation on its next refresh
        let other = Credentials::open(Arc::clone(&store)).await.unwrap();
        let mut feed = other.revocation_feed();
        assert!(other.principal_of_key(&token).await.is_ok());
        creds.revoke_key(&key.id, "lost", "test").await.unwrap();
        assert_eq!(creds.principal_of_key(&token).await, Err(Refusal::Revoked));
        assert_eq!(
            other.refresh().await.unwrap(),
            vec![format!("key:{}", key.id)]
        );
        assert_eq!(feed.recv().await.unwrap(), format!("key:{}", key.id));
        assert_eq!(other.principal_of_key(&token).await, Err(Refusal::Revoked));
    }

    #[test]
    fn keys_are_checked_when_made() {
        let mut k = gateway();
        k.sensors = None;
        assert!(new_key(k).is_err(), "a gateway names its sensors");
        let mut k = gateway();
        k.roles.insert(Role::Auditor);
        assert!(new_key(k).is_err(), "no admin roles on keys");
        let mut k = gateway();
        k.expires_at = 0;
        assert!(new_key(k).is_err());
        let mut k = gateway();
        k.name = "bad name".into();
        assert!(new_key(k).is_err());
        assert!(check_subject("user:abc").is_ok());
        assert!(check_subject("key:k1").is_ok());
        assert!(check_subject("abc").is_err());
    }
}
