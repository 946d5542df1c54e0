//! served on its own runtime and port.

#![allow(dead_code)]

use citytwin::app::{AppState, router, spawn_watchers};
use citytwin::config::{ServeArgs, Settings};
use citytwin::demo::{ensure_demo_layers, ensure_demo_store};
use citytwin_city::import::NoProgress;
use citytwin_city::store::gpkg::GeoPackageStore;
pub use citytwin_city::testing::Backend;
use citytwin_city::{City, Store};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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
                let city = Arc::new(City::open(store).await.unwrap());
                let settings = Settings::resolve(&ServeArgs {
                    store: Some(spec),
                    cache_mb: Some(64),
                    refresh_secs: Some(0),
                    web_dir: Some(repo().join("web")),
                    styles_dir: Some(repo().join("styles")),
                    ..ServeArgs::default()
                })
                .unwrap();
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
                axum::serve(listener, router(state)).await.unwrap();
            });
        });
        rx.recv()
            .unwrap_or_else(|_| panic!("{backend:?} test server failed to start"))
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_gzip().build().unwrap()
}
