//! Helpers for tests that run against a real PostGIS (installed and started by
//! `scripts/setup-postgis`), shared by this crate's tests and the server's.
//!
//! Each test store lives in a schema of its own, `ct_test_<pid>_<n>`, so tests run in
//! parallel without seeing each other; schemas left by finished test processes are dropped
//! the first time a process asks for one.

use crate::store::postgis::PostgisStore;
use crate::{Result, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The test database: `CITYTWIN_TEST_DATABASE_URL`, by default `citytwin_test` over the local
/// socket as the current user.
#[must_use]
pub fn database_url() -> String {
    std::env::var("CITYTWIN_TEST_DATABASE_URL").unwrap_or_else(|_| {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("postgres://{user}@localhost/citytwin_test?host=/var/run/postgresql")
    })
}

/// The store URL for one schema of the test database.
#[must_use]
pub fn schema_url(schema: &str) -> String {
    let base = database_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}

/// The URL of one schema on the test database's streaming replica
/// (`scripts/setup-postgis-replica`): `CITYTWIN_TEST_REPLICA_URL`, by default `citytwin_test`
/// on port 5433 over the local socket.
#[must_use]
pub fn replica_url(schema: &str) -> String {
    let base = std::env::var("CITYTWIN_TEST_REPLICA_URL").unwrap_or_else(|_| {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("postgres://{user}@localhost/citytwin_test?host=/var/run/postgresql&port=5433")
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}

static NEXT: AtomicU32 = AtomicU32::new(0);
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// A fresh, empty PostGIS store in a schema no other test uses; returns it with its URL.
pub async fn fresh_postgis() -> Result<(Arc<PostgisStore>, String)> {
    let schema = format!(
        "ct_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = schema_url(&schema);
    let store = PostgisStore::connect(&url).await?;
    SWEPT
        .get_or_init(|| async {
            let _ = sweep(&store).await;
        })
        .await;
    Ok((Arc::new(store), url))
}

/// Drops the schemas of test processes that are gone.
async fn sweep(store: &PostgisStore) -> Result<()> {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ct\\_test\\_%'")
            .fetch_all(store.pool())
            .await?;
    for (name,) in names {
        let pid = name.split('_').nth(2).unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .execute(store.pool())
                .await?;
        }
    }
    Ok(())
}

/// The two backends every store test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// the embedded GeoPackage
    GeoPackage,
    /// PostgreSQL with PostGIS
    Postgis,
}

impl Backend {
    /// A fresh, empty store of this backend (a GeoPackage file inside `dir`).
    pub async fn fresh_store(self, dir: &std::path::Path) -> Result<Arc<dyn Store>> {
        Ok(match self {
            Self::GeoPackage => {
                Arc::new(crate::store::gpkg::GeoPackageStore::open(&dir.join("t.gpkg")).await?)
            }
            Self::Postgis => fresh_postgis().await?.0,
        })
    }
}

/// A context with every operational role (reporting, dispatching, handling, verifying,
/// commanding, sensors, units) for the city as a whole, in the operations centre's
/// department, for tests that exercise the twin rather than its access rules.
#[must_use]
pub fn operator() -> crate::access::Context {
    use crate::access::{Principal, PrincipalKind, Role};
    crate::access::Context::of(
        Principal {
            id: "key:operator".into(),
            name: "operator".into(),
            kind: PrincipalKind::Key,
            department: Some("ops".into()),
            roles: Role::ALL.into_iter().filter(|r| !r.is_admin()).collect(),
            territory: None,
            sensors: None,
            expires: None,
        },
        "test",
    )
}
