//! served on its own runtime and port.

#![allow(dead_code)]

use citytwin::app::{AppState, router, spawn_watchers};
use citytwin::config::{ServeArgs, Settings};
use citytwin::demo::{ensure_demo_layers, ensure_demo_store};
use citytwin_city::access::Role;
use citytwin_city::import::NoProgress;
use citytwin_city::keys::{ApiKey, secret_hash};
use citytwin_city::store::gpkg::GeoPackageStore;
pub use citytwin_city::testing::Backend;
use citytwin_city::{City, CityOptions, Store};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The operator's key: every operational role, the operations centre's department, the
/// whole city. `client()` sends it.
pub const OPERATOR: &str =
    "ctk_ktestoperator_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// A system admin's key, for `/metrics`.
pub const METRICS: &str =
    "ctk_ktestmetrics_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The administrators' roles in one key (security admin, auditor, system admin), for the
/// contract test of their endpoints.
pub const ADMIN: &str =
    "ctk_ktestadmin_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Every operational role, for the one test that fills its cap of open streams.
pub const STREAMS: &str =
    "ctk_kteststreams_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Puts the test keys into a store.
pub async fn test_keys(store: &dyn Store) {
    let far = citytwin_city::live::ts::now() + 365 * 86_400_000;
    let key = |id: &str, roles: Vec<Role>, department: Option<&str>| ApiKey {
        id: id.into(),
        name: id.into(),
        hash: secret_hash(SECRET),
        roles: roles.into_iter().collect(),
        department: department.map(str::to_owned),
        territory: None,
        sensors: Some(vec!["*".into()]),
        created_at: 0,
        created_by: "test".into(),
        expires_at: far,
        revoked_at: None,
    };
    let operational: Vec<Role> = Role::ALL.into_iter().filter(|r| !r.is_admin()).collect();
    store
        .put_key(&key("ktestoperator", operational.clone(), Some("ops")))
        .await
        .unwrap();
    store
        .put_key(&key("kteststreams", operational, Some("ops")))
        .await
        .unwrap();
    store
        .put_key(&key("ktestmetrics", vec![Role::SystemAdmin], None))
        .await
        .unwrap();
    store
        .put_key(&key(
            "ktestadmin",
            vec![Role::SecurityAdmin, Role::Auditor, Role::SystemAdmin],
            None,
        ))
        .await
        .unwrap();
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub handle: tokio::runtime::Handle,
    pub dir: PathBuf,
}

static GPKG_SERVER: OnceLock<TestServer> = OnceLock::new();
static POSTGIS_SERVER: OnceLock<TestServer> = OnceLock::new();

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared demo server over the GeoPackage store.
pub fn server() -> &'static TestServer {
    server_on(Backend::GeoPackage)
}

/// The shared demo server over a store of this backend (each started once per process).
pub fn server_on(backend: Backend) -> &'static TestServer {
    let cell = match backend {
        Backend::GeoPackage => &GPKG_SERVER,
        Backend::Postgis => &POSTGIS_SERVER,
    };
    cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let dir = tempfile::tempdir().unwrap().keep();
                let fixtures = repo().join("fixtures/nanjing");
                let (store, spec): (Arc<dyn Store>, String) = match backend {
                    Backend::GeoPackage => {
                        let path = dir.join("demo.gpkg");
                        ensure_demo_store(&path, &fixtures, Arc::new(NoProgress))
                            .await
                            .unwrap();
                        let store = GeoPackageStore::open(&path).await.unwrap();
                        (Arc::new(store), path.display().to_string())
                    }
                    Backend::Postgis => {
                        let (store, url) = citytwin_city::testing::fresh_postgis().await.unwrap();
                        ensure_demo_layers(store.as_ref(), &fixtures, Arc::new(NoProgress))
                            .await
                            .unwrap();
                        (store, url)
                    }
                };
                let catalog =
                    citytwin::demo::demo_catalog(&repo().join("demo/catalog.toml")).unwrap();
                citytwin::demo::classify_demo_layers(store.as_ref(), &catalog)
                    .await
                    .unwrap();
                test_keys(store.as_ref()).await;
                let mut settings = Settings::resolve(&ServeArgs {
                    store: Some(spec),
                    cache_mb: Some(64),
                    refresh_secs: Some(0),
                    web_dir: Some(repo().join("web")),
                    styles_dir: Some(repo().join("styles")),
                    ..ServeArgs::default()
                })
                .unwrap();
                for live in citytwin_city::live::LiveLayer::ALL {
                    settings
                        .catalog
                        .insert(live.name().into(), catalog[live.name()].clone());
                }
                // these tests are about everything but rate limits (tests/access.rs has those)
                settings.rates = citytwin::config::Rates {
                    writes_per_sec: 1_000_000,
                    queries_per_sec: 1_000_000,
                    public_reports_per_min: 1_000_000,
                };
                let key =
                    citytwin_city::audit::AuditKey::load(&dir.join("audit.key"), true).unwrap();
                let city = Arc::new(
                    City::open_with(
                        store,
                        CityOptions {
                            live: settings.live_options(),
                            audit: Some((key, 180)),
                            ..CityOptions::default()
                        },
                    )
                    .await
                    .unwrap(),
                );
                let state = AppState::new(city, settings);
                spawn_watchers(&state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tx.send(TestServer {
                    base: format!("http://{addr}"),
                    state: state.clone(),
                    handle: tokio::runtime::Handle::current(),
                    dir: dir.clone(),
                })
                .unwrap();
                axum::serve(
                    listener,
                    router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .await
                .unwrap();
            });
        });
        rx.recv()
            .unwrap_or_else(|_| panic!("{backend:?} test server failed to start"))
    })
}

/// A client that sends the operator's key.
pub fn client() -> reqwest::Client {
    client_with(OPERATOR)
}

/// A client that sends a key (or token).
pub fn client_with(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .no_gzip()
        .default_headers(h)
        .build()
        .unwrap()
}

/// A client without credentials: the public.
pub fn public_client() -> reqwest::Client {
    reqwest::Client::builder().no_gzip().build().unwrap()
}

/// Makes a key with the CLI in a store (of a server running as its own process); the audit
/// key is the default one for the store, or `CITYTWIN_AUDIT_KEY`.
pub fn cli_key(store: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .args(["keys", "create", "--store", store])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A child process stopped when this is dropped, however the test ends.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How many operations the API description has.
pub fn api_operations() -> usize {
    citytwin::routes::api::openapi()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum()
}
