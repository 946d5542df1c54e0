//! People sign in through the city's OpenID Connect provider (Keycloak, or any other): the
//! browser gets a JWT access token with authorization code + PKCE, and citytwin checks it
//! locally against the provider's keys — issuer, audience, expiry, an allow-list of
//! algorithms — fetching the keys again when a token names one it does not know (the provider
//! rotated them). The token's claims become a [`Principal`]: department, roles and territory
//! by configurable claim names (dotted paths such as `realm_access.roles` for Keycloak).

use citytwin_city::access::{Principal, PrincipalKind, Role, check_separation};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How citytwin trusts the city's identity provider (`[oidc]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// the provider's issuer URL, as its tokens' `iss` says; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`
    pub issuer: String,
    /// the audience citytwin's tokens carry (`aud`)
    pub audience: String,
    /// the client id the viewer and the big screen sign in with (a public client with PKCE)
    pub client_id: String,
    /// the scopes they ask for
    pub scopes: String,
    /// the signing algorithms accepted
    pub algorithms: Vec<String>,
    /// seconds of clock difference tolerated on `exp` and `nbf`
    pub leeway_secs: u64,
    /// the claim holding the department code
    pub department_claim: String,
    /// the claim holding the roles (an array of role names; others are ignored)
    pub roles_claim: String,
    /// the claim holding the territorial code the user acts in
    pub territory_claim: String,
    /// the claim holding the user's name
    pub name_claim: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: "urn:citytwin".into(),
            client_id: "citytwin-viewer".into(),
            scopes: "openid profile".into(),
            algorithms: vec!["RS256".into(), "PS256".into(), "ES256".into()],
            leeway_secs: 30,
            department_claim: "department".into(),
            roles_claim: "roles".into(),
            territory_claim: "territory".into(),
            name_claim: "name".into(),
        }
    }
}

/// The keys the provider signs with, and when they were fetched.
struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
}

/// A provider's tokens, checked locally.
pub struct Oidc {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// Keys are fetched again on an unknown key id at most this often.
const REFRESH_GAP: Duration = Duration::from_secs(10);

impl Oidc {
    /// A verifier for a provider; keys are fetched on first use (the provider may start
    /// after citytwin).
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        // the RustCrypto backend verifies; an Err only says one is installed already
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        if config.issuer.is_empty() {
            return Err("[oidc] issuer is required".into());
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| {
                let alg: Algorithm = a
                    .parse()
                    .map_err(|_| format!("[oidc] algorithm {a:?} is unknown"))?;
                if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err(format!(
                        "[oidc] algorithm {a}: shared-secret algorithms are not accepted"
                    ));
                }
                Ok(alg)
            })
            .collect::<Result<Vec<_>, String>>()?;
        if algorithms.is_empty() {
            return Err("[oidc] algorithms: name at least one".into());
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            algorithms,
            http,
            keys: RwLock::new(Keys {
                set: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn fetch_keys(&self) -> Result<(), String> {
        let issuer = self.config.issuer.trim_end_matches('/');
        let discovery: Value = self
            .http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("identity provider discovery: {e}"))?
            .json()
            .await
            .map_err(|e| format!("identity provider discovery: {e}"))?;
        let uri = discovery["jwks_uri"]
            .as_str()
            .ok_or("the identity provider names no jwks_uri")?;
        let set: JwkSet = self
            .http
            .get(uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("identity provider keys: {e}"))?
            .json()
            .await
            .map_err(|e| format!("identity provider keys: {e}"))?;
        tracing::info!(
            issuer,
            keys = set.keys.len(),
            "fetched the identity provider's keys"
        );
        if let Ok(mut k) = self.keys.write() {
            *k = Keys {
                set,
                fetched: Some(Instant::now()),
            };
        }
        Ok(())
    }

    fn key(&self, kid: Option<&str>) -> Option<jsonwebtoken::jwk::Jwk> {
        let keys = self.keys.read().ok()?;
        match kid {
            Some(kid) => keys.set.find(kid).cloned(),
            None if keys.set.keys.len() == 1 => keys.set.keys.first().cloned(),
            None => None,
        }
    }

    /// The signing key a token names, fetching the provider's keys when it names one not
    /// known yet (at most every ten seconds).
    async fn key_for(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, String> {
        if let Some(k) = self.key(kid) {
            return Ok(k);
        }
        let _one = self.refresh.lock().await;
        if let Some(k) = self.key(kid) {
            return Ok(k);
        }
        let recent = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.fetched)
            .is_some_and(|t| t.elapsed() < REFRESH_GAP);
        if !recent {
            self.fetch_keys().await?;
        }
        self.key(kid).ok_or_else(|| {
            "the token is signed with a key the identity provider does not publish".into()
        })
    }

    /// Checks a token and maps its claims to a principal; the error says what is wrong.
    pub async fn principal(&self, token: &str) -> Result<Principal, String> {
        let header = decode_header(token).map_err(|e| format!("not a signed JWT: {e}"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let jwk = self.key_for(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("the provider's key: {e}"))?;
        // the header's algorithm, already checked against the allow-list (jsonwebtoken wants
        // every algorithm it is given to suit the key)
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[self.config.issuer.as_str()]);
        v.set_audience(&[self.config.audience.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = self.config.leeway_secs;
        v.validate_nbf = true;
        let data = decode::<Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => "the token expired".to_owned(),
                K::InvalidIssuer => "the token is from another issuer".to_owned(),
                K::InvalidAudience => "the token is for another audience".to_owned(),
                K::InvalidSignature => "the token's signature does not match".to_owned(),
                K::ImmatureSignature => "the token is not valid yet".to_owned(),
                K::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
                _ => format!("invalid token: {e}"),
            }
        })?;
        self.map_claims(&data.claims)
    }

    fn map_claims(&self, claims: &Value) -> Result<Principal, String> {
        let c = &self.config;
        let sub = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or("the token has no usable sub claim")?;
        let text = |path: &str| {
            claim(claims, path)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let roles: std::collections::BTreeSet<Role> = claim(claims, &c.roles_claim)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .filter_map(Role::parse)
                    .collect()
            })
            .unwrap_or_default();
        check_separation(&roles)?;
        let department = text(&c.department_claim);
        if let Some(d) = &department {
            citytwin_city::catalog::check_department(d).map_err(|e| e.to_string())?;
        }
        let territory = text(&c.territory_claim);
        if let Some(t) = &territory {
            citytwin_city::keys::check_territory(t).map_err(|e| e.to_string())?;
        }
        Ok(Principal {
            id: format!("user:{sub}"),
            name: text(&c.name_claim)
                .or_else(|| text("preferred_username"))
                .unwrap_or_else(|| sub.to_owned()),
            kind: PrincipalKind::User,
            department,
            roles,
            territory,
            sensors: None,
            expires: claims["exp"].as_i64().map(|e| e * 1000),
        })
    }
}

/// A claim by dotted path (`realm_access.roles`).
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, part| v.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_become_a_principal_by_configured_names() {
        let oidc = Oidc::new(OidcConfig {
            issuer: "http://idp".into(),
            roles_claim: "realm_access.roles".into(),
            ..OidcConfig::default()
        })
        .unwrap();
        let p = oidc
            .map_claims(&json!({
                "sub": "abc", "name": "王调度", "department": "ops", "territory": "320102",
                "realm_access": { "roles": ["dispatcher", "offline_access", "handler"] },
                "exp": 2_000_000_000,
            }))
            .unwrap();
        assert_eq!(p.id, "user:abc");
        assert_eq!(p.name, "王调度");
        assert_eq!(p.department.as_deref(), Some("ops"));
        assert_eq!(p.territory.as_deref(), Some("320102"));
        assert!(p.has(Role::Dispatcher) && p.has(Role::Handler));
        assert_eq!(p.roles.len(), 2, "unknown roles are ignored");
        assert_eq!(p.expires, Some(2_000_000_000_000));
        let both = oidc.map_claims(
            &json!({ "sub": "x", "realm_access": { "roles": ["security-admin", "auditor"] } }),
        );
        assert!(
            both.is_err(),
            "one person cannot both change and audit access"
        );
        assert!(oidc.map_claims(&json!({ "name": "no subject" })).is_err());
        assert!(
            oidc.map_claims(&json!({ "sub": "x", "territory": "Xuanwu" }))
                .is_err()
        );
    }

    #[test]
    fn shared_secret_and_unknown_algorithms_are_refused() {
        for algs in [vec!["HS256"], vec!["none"], vec![]] {
            let cfg = OidcConfig {
                issuer: "http://idp".into(),
                algorithms: algs.iter().map(|a| (*a).to_owned()).collect(),
                ..OidcConfig::default()
            };
            assert!(Oidc::new(cfg).is_err(), "{algs:?}");
        }
    }
}
