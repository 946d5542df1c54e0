#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! Who may see and do what, end to end, against a real OpenID Provider (npm `oidc-provider`,
//! started here, signed into through its login page): the access matrix of principals ×
//! canary layers × channels, every output decoded and searched for the canaries' sentinels;
//! the route-coverage test; writes by role and territory; the live feed narrowed by plan;
//! tiles never served across plans; revocation closing a stream mid-way; bad tokens; CSRF;
//! the audit log, for auditors only, and a tampered copy caught by `citytwin audit verify`;
//! the public's citizen report followed with its receipt, and its rate limit.

mod common;

use citytwin::app::{AppState, router, spawn_watchers};
use citytwin::auth::Decided;
use citytwin::config::{ServeArgs, Settings};
use citytwin_city::catalog::{Classification, OpenClass, ShareClass};
use citytwin_city::import::{ImportRequest, NoProgress, import};
use citytwin_city::{City, CityOptions, Store};
use common::{Child, client_with, free_port, public_client, repo};
use futures_util::StreamExt;
use geozero::mvt::{Message, Tile};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Inside grid 320102001001001 (玄武区, street 320102001).
const HERE: (f64, f64) = (118.7800, 32.0932);
/// The z14 tile holding HERE and every canary.
const TILE: (u32, u32, u32) = (14, 13597, 6648);

/// The canary layers: one per share/open class and level, each owned by a department.
const CANARIES: [(&str, &str, ShareClass, OpenClass, u8); 7] = [
    (
        "canary_open",
        "planning",
        ShareClass::Unconditional,
        OpenClass::Unconditional,
        1,
    ),
    (
        "canary_shared",
        "planning",
        ShareClass::Unconditional,
        OpenClass::Conditional,
        2,
    ),
    (
        "canary_conditional",
        "planning",
        ShareClass::Conditional,
        OpenClass::NotOpen,
        2,
    ),
    (
        "canary_private",
        "urban-management",
        ShareClass::NotShared,
        OpenClass::NotOpen,
        2,
    ),
    (
        "canary_secret",
        "urban-management",
        ShareClass::Conditional,
        OpenClass::NotOpen,
        3,
    ),
    (
        "canary_unclassified",
        "",
        ShareClass::NotShared,
        OpenClass::NotOpen,
        0,
    ),
    // open to all, but its `secret` field is personal and its points snapped to 500 m for
    // all but its owner
    (
        "canary_personal",
        "planning",
        ShareClass::Unconditional,
        OpenClass::Unconditional,
        2,
    ),
];

/// The canary whose catalogue entry desensitises it.
const PERSONAL: usize = 6;

/// Colours the canary style draws each layer in, for the static-map check.
const COLOURS: [[u8; 3]; 7] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [255, 0, 255],
    [0, 255, 255],
    [255, 128, 0],
];

/// The expected outcome, written down once: what each principal gets of each canary layer
/// (in [`CANARIES`] order) on every channel — `R` the features as they are, `D` desensitised
/// (personal fields masked, points snapped), `A` only suppressed aggregates (level 3), `-`
/// nothing, as if the layer did not exist.
const MATRIX: [(&str, &str); 8] = [
    ("public", "R-----D"),
    ("planner", "RRR-A-R"),
    ("urban", "RR-RR-D"),
    ("dispatcher", "RR--A-D"),
    ("street", "RR--A-D"),
    ("gateway", "R-----D"),
    ("auditor", "RR--A-D"),
    ("security", "RR--A-D"),
];

const USERS: &str = r#"{
  "planner": { "sub": "u-planner", "password": "p-planner", "name": "planner", "department": "planning", "roles": [] },
  "urban": { "sub": "u-urban", "password": "p-urban", "name": "urban", "department": "urban-management", "roles": ["sensor-admin"] },
  "dispatcher": { "sub": "u-dispatcher", "password": "p-dispatcher", "name": "dispatcher", "department": "ops", "roles": ["reporter", "dispatcher", "verifier", "commander", "sensor-admin"] },
  "street": { "sub": "u-street", "password": "p-street", "name": "street", "department": "xuanwu-street", "roles": ["reporter", "handler"], "territory": "320102001" },
  "revokee": { "sub": "u-revokee", "password": "p-revokee", "name": "revokee", "department": "xuanwu-street", "roles": ["handler"], "territory": "320102001" },
  "auditor": { "sub": "u-auditor", "password": "p-auditor", "name": "auditor", "department": "audit", "roles": ["auditor"] },
  "security": { "sub": "u-security", "password": "p-security", "name": "security", "department": "big-data", "roles": ["security-admin"] },
  "steward": { "sub": "u-steward", "password": "p-steward", "name": "steward", "department": "planning", "roles": ["data-steward"] }
}"#;

/// Layers of the governance tests, apart from the matrix's canaries: one planning shares and
/// opens on conditions (its `secret` personal), one open to all that is objected to.
const GOVERNED: [&str; 2] = ["granted_canary", "objected_canary"];

/// Starts `web/idp/provider.mjs` (npm oidc-provider) and waits until it listens.
fn provider(port: u16, dir: &Path, redirect: &str, extra: &[&str]) -> Child {
    let mut child = Command::new("node")
        .arg(repo().join("web/idp/provider.mjs"))
        .args([
            "--port",
            &port.to_string(),
            "--redirect",
            redirect,
            "--exit-with-stdin",
        ])
        .arg("--keys")
        .arg(dir.join("idp-keys.json"))
        .arg("--users")
        .arg(dir.join("users.json"))
        .args(extra)
        // its standard input closes with this test process, which stops the provider even
        // when the test binary is killed
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node must be installed (scripts/setup-test-deps)");
    let out = child.stdout.take().unwrap();
    let line = BufReader::new(out).lines().next();
    assert!(
        line.is_some_and(|l| l.is_ok_and(|l| l.contains("issuer"))),
        "the identity provider did not start"
    );
    Child(child)
}

struct World {
    base: String,
    state: AppState,
    handle: tokio::runtime::Handle,
    dir: PathBuf,
    idp: String,
    /// access tokens (or the gateway's key) by principal name
    tokens: HashMap<&'static str, String>,
    /// tokens that must be refused: expired, other audience, other issuer
    bad: Vec<(&'static str, String)>,
    _providers: Vec<Child>,
}

static WORLD: OnceLock<World> = OnceLock::new();

fn canary_geojson(k: usize, name: &str) -> String {
    let features: Vec<Value> = raw_coordinates(k)
        .into_iter()
        .enumerate()
        .map(|(i, (lon, lat))| {
            json!({ "type": "Feature", "id": i + 1,
                "properties": { "secret": format!("SENTINEL-{name}-{i}"), "n": i },
                "geometry": { "type": "Point", "coordinates": [lon, lat] } })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features }).to_string()
}

/// The canary style: each canary layer as fat circles of its own colour on black.
fn canary_style() -> Value {
    let layers: Vec<Value> = std::iter::once(json!({ "id": "background", "type": "background", "paint": { "background-color": "#000000" } }))
        .chain(CANARIES.iter().zip(COLOURS).map(|((name, ..), [r, g, b])| {
            json!({ "id": name.replace('_', "-"), "type": "circle", "source": "canaries", "source-layer": name,
                "paint": { "circle-radius": 14, "circle-color": format!("rgb({r},{g},{b})") } })
        }))
        .collect();
    json!({
        "version": 8, "name": "canaries",
        "sources": { "canaries": { "type": "vector", "url": format!("/tiles/{}", CANARIES.map(|c| c.0).join(",")) } },
        "layers": layers,
    })
}

/// Signs in through the provider's login page (authorization code + PKCE) and returns the
/// access token.
async fn sign_in(idp: &str, redirect: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let verifier = format!(
        "{}{}",
        citytwin::auth::random_token().unwrap(),
        "pkce-verifier"
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let absolute = |loc: &str| {
        if loc.starts_with("http") {
            loc.to_owned()
        } else {
            format!("{idp}{loc}")
        }
    };
    let resp = http
        .get(format!("{idp}/auth"))
        .query(&[
            ("client_id", "citytwin-viewer"),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "test"),
        ])
        .send()
        .await
        .unwrap();
    let login = absolute(resp.headers()["location"].to_str().unwrap());
    let page = http.get(&login).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("password"), "{page}");
    let resp = http
        .post(format!("{login}/login"))
        .form(&[("login", user), ("password", password)])
        .send()
        .await
        .unwrap();
    let mut next = absolute(resp.headers()["location"].to_str().unwrap());
    let code = loop {
        if next.starts_with(redirect) {
            let url = reqwest::Url::parse(&next).unwrap();
            break url
                .query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .into_owned();
        }
        let resp = http.get(&next).send().await.unwrap();
        next = absolute(resp.headers()["location"].to_str().unwrap());
    };
    let token: Value = http
        .post(format!("{idp}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", "citytwin-viewer"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {token}"))
        .to_owned()
}

fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let dir = tempfile::tempdir().unwrap().keep();
                std::fs::write(dir.join("users.json"), USERS).unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let base = format!("http://{}", listener.local_addr().unwrap());
                let redirect = format!("{base}/");
                let port = free_port();
                let idp = format!("http://127.0.0.1:{port}");
                // the city's provider, and three that must not be trusted in their ways: the
                // same keys under another issuer, for another audience, and with 1 s tokens
                let mut providers = vec![provider(port, &dir, &redirect, &[])];
                let mut others = Vec::new();
                for extra in [
                    vec![],
                    vec!["--issuer", idp.as_str(), "--audience", "urn:other"],
                    vec!["--issuer", idp.as_str(), "--ttl", "1"],
                ] {
                    let p = free_port();
                    providers.push(provider(p, &dir, &redirect, &extra));
                    others.push(format!("http://127.0.0.1:{p}"));
                }
                // the store: the real territory tree, and the canaries
                let path = dir.join("access.gpkg");
                let store: Arc<dyn Store> = Arc::new(
                    citytwin_city::store::gpkg::GeoPackageStore::open(&path)
                        .await
                        .unwrap(),
                );
                let open = |owner: &str| {
                    Classification::new(
                        owner,
                        ShareClass::Unconditional,
                        OpenClass::Unconditional,
                        1,
                    )
                };
                for layer in ["city", "districts", "streets", "communities", "grids"] {
                    let mut req = ImportRequest::new(
                        repo().join(format!("fixtures/nanjing/{layer}.geojson")),
                        layer,
                    );
                    req.classification = Some(open("civil-affairs"));
                    import(store.as_ref(), req, Arc::new(NoProgress))
                        .await
                        .unwrap();
                }
                for (k, (name, owner, share, open_class, level)) in CANARIES.iter().enumerate() {
                    let file = dir.join(format!("{name}.geojson"));
                    std::fs::write(&file, canary_geojson(k, name)).unwrap();
                    let mut req = ImportRequest::new(file, name);
                    req.minzoom = Some(0);
                    req.classification = (*level > 0).then(|| {
                        let mut c = Classification::new(owner, *share, *open_class, *level);
                        c.update_frequency = "daily".into();
                        if k == PERSONAL {
                            c.personal
                                .insert("secret".into(), citytwin_city::catalog::Mask::Partial);
                            c.precision_m = Some(500);
                        }
                        c
                    });
                    import(store.as_ref(), req, Arc::new(NoProgress))
                        .await
                        .unwrap();
                }
                for (k, name) in GOVERNED.iter().enumerate() {
                    let file = dir.join(format!("{name}.geojson"));
                    std::fs::write(&file, canary_geojson(k, name)).unwrap();
                    let mut req = ImportRequest::new(file, name);
                    req.minzoom = Some(0);
                    let mut c = if k == 0 {
                        Classification::new(
                            "planning",
                            ShareClass::Conditional,
                            OpenClass::Conditional,
                            2,
                        )
                    } else {
                        Classification::new(
                            "planning",
                            ShareClass::Unconditional,
                            OpenClass::Unconditional,
                            1,
                        )
                    };
                    c.personal
                        .insert("secret".into(), citytwin_city::catalog::Mask::Partial);
                    req.classification = Some(c);
                    import(store.as_ref(), req, Arc::new(NoProgress))
                        .await
                        .unwrap();
                }
                // styles: the repository's, and the canaries'
                let styles = dir.join("styles");
                std::fs::create_dir_all(styles.join("dashboards")).unwrap();
                for f in [
                    "nanjing.json",
                    "nanjing-screen.json",
                    "dashboards/nanjing.json",
                    "dashboards/governance.json",
                ] {
                    std::fs::copy(repo().join("styles").join(f), styles.join(f)).unwrap();
                }
                std::fs::write(styles.join("canary.json"), canary_style().to_string()).unwrap();
                let mut settings = Settings::resolve(&ServeArgs {
                    store: Some(path.display().to_string()),
                    cache_mb: Some(64),
                    refresh_secs: Some(0),
                    web_dir: Some(repo().join("web")),
                    styles_dir: Some(styles),
                    oidc_issuer: Some(idp.clone()),
                    ..ServeArgs::default()
                })
                .unwrap();
                if let Some(o) = settings.oidc.as_mut() {
                    o.leeway_secs = 0;
                }
                settings.rates.public_reports_per_min = 3;
                let catalog =
                    citytwin::demo::demo_catalog(&repo().join("demo/catalog.toml")).unwrap();
                for live in citytwin_city::live::LiveLayer::ALL {
                    settings
                        .catalog
                        .insert(live.name().into(), catalog[live.name()].clone());
                }
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
                let (_, gateway) = city
                    .credentials()
                    .create(citytwin_city::keys::NewKey {
                        name: "gateway".into(),
                        roles: [citytwin_city::access::Role::Gateway].into_iter().collect(),
                        sensors: Some(vec!["GW-*".into()]),
                        expires_at: citytwin_city::live::ts::now() + 86_400_000,
                        created_by: "test".into(),
                        ..citytwin_city::keys::NewKey::default()
                    })
                    .await
                    .unwrap();
                let state = AppState::new(city, settings);
                spawn_watchers(&state);
                let app = router(state.clone())
                    .into_make_service_with_connect_info::<std::net::SocketAddr>();
                tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
                let mut tokens = HashMap::new();
                tokens.insert("gateway", gateway);
                for (user, password) in [
                    ("planner", "p-planner"),
                    ("urban", "p-urban"),
                    ("dispatcher", "p-dispatcher"),
                    ("street", "p-street"),
                    ("revokee", "p-revokee"),
                    ("auditor", "p-auditor"),
                    ("security", "p-security"),
                    ("steward", "p-steward"),
                ] {
                    tokens.insert(user, sign_in(&idp, &redirect, user, password).await);
                }
                let bad = vec![
                    (
                        "another issuer",
                        sign_in(&others[0], &redirect, "planner", "p-planner").await,
                    ),
                    (
                        "another audience",
                        sign_in(&others[1], &redirect, "planner", "p-planner").await,
                    ),
                    (
                        "expired",
                        sign_in(&others[2], &redirect, "planner", "p-planner").await,
                    ),
                ];
                tx.send(World {
                    base,
                    state,
                    handle: tokio::runtime::Handle::current(),
                    dir,
                    idp,
                    tokens,
                    bad,
                    _providers: providers,
                })
                .unwrap_or_else(|_| panic!("the test world did not start"));
                std::future::pending::<()>().await;
            });
        });
        rx.recv_timeout(Duration::from_mins(5))
            .expect("the access test world did not start")
    })
}

/// A client for a principal of the matrix.
fn as_(who: &str) -> reqwest::Client {
    if who == "public" {
        public_client()
    } else {
        client_with(&world().tokens[who])
    }
}

async fn get(who: &str, path: &str) -> (StatusCode, bytes::Bytes) {
    let resp = as_(who)
        .get(format!("{}{path}", world().base))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    if !status.is_success() && status != StatusCode::NOT_MODIFIED {
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{who} {path}: {status}"
        );
    }
    (status, resp.bytes().await.unwrap())
}

async fn json_of(who: &str, path: &str) -> (StatusCode, Value) {
    let (s, b) = get(who, path).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn post(who: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let resp = as_(who)
        .post(format!("{}{path}", world().base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn has(body: &[u8], needle: &str) -> bool {
    body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn sentinel(layer: &str) -> String {
    format!("SENTINEL-{layer}")
}

/// The canary's raw coordinates (every feature's), as they must not appear to a reader who
/// gets the layer desensitised or aggregated.
fn raw_coordinates(k: usize) -> Vec<(f64, f64)> {
    // the personal canary west of the others, so its points snapped to 500 m stay in TILE
    let west = if k == PERSONAL {
        -0.004
    } else {
        0.0006 * k as f64
    };
    (0..3u8)
        .map(|i| {
            (
                HERE.0 + west + 0.00005 * f64::from(i),
                HERE.1 + 0.0002 * f64::from(i),
            )
        })
        .collect()
}

/// Every point coordinate in a GeoJSON answer.
fn points_of(v: &Value) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            if m.get("type") == Some(&json!("Point"))
                && let Some(c) = m.get("coordinates").and_then(Value::as_array)
            {
                out.push((c[0].as_f64().unwrap(), c[1].as_f64().unwrap()));
            }
            for x in m.values() {
                out.extend(points_of(x));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| out.extend(points_of(x))),
        _ => {}
    }
    out
}

/// Every principal × canary layer × channel, against the table above.
#[tokio::test]
async fn the_access_matrix_holds_on_every_channel() {
    let w = world();
    let (z, x, y) = TILE;
    let (lon, lat) = HERE;
    for (who, row) in MATRIX {
        let row: Vec<char> = row.chars().collect();
        let (_, cat) = json_of(who, "/catalog").await;
        let listed: Vec<&str> = cat["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        let (_, cols) = json_of(who, "/collections").await;
        let collections: Vec<&str> = cols["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        let (status, style) = json_of(who, "/styles/canary.json").await;
        assert_eq!(status, 200);
        let styled: Vec<&str> = style["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["source-layer"].as_str())
            .collect();
        for (k, (layer, ..)) in CANARIES.iter().enumerate() {
            let form = row[k];
            let sees = form != '-';
            let raw = form == 'R';
            let at = format!("{who} × {layer} ({form})");
            let secret = sentinel(layer);
            assert_eq!(listed.contains(layer), sees, "catalog: {at}");
            assert_eq!(collections.contains(layer), sees, "collections: {at}");
            assert_eq!(styled.contains(layer), sees, "style: {at}");
            // tiles: decoded, the layer there or not, its sentinels only when raw; aggregates
            // are cell polygons
            let (s, body) = get(who, &format!("/tiles/{layer}/{z}/{x}/{y}.mvt")).await;
            if sees {
                assert_eq!(s, 200, "tile: {at}");
                let tile = Tile::decode(body.clone()).unwrap();
                assert_eq!(tile.layers[0].name, *layer, "tile: {at}");
                let kinds: Vec<i32> = tile.layers[0]
                    .features
                    .iter()
                    .map(|f| f.r#type.unwrap_or(0))
                    .collect();
                if form == 'A' {
                    assert!(
                        !kinds.is_empty() && kinds.iter().all(|&t| t == 3),
                        "tile: {at}: {kinds:?}"
                    );
                } else {
                    assert_eq!(kinds, [1, 1, 1], "tile: {at}");
                }
            } else {
                assert_eq!(s, 404, "tile: {at}");
            }
            assert_eq!(has(&body, &secret), raw, "tile sentinel: {at}");
            // every channel answers as if an invisible layer did not exist; one that hands
            // out features refuses a reader of aggregates, naming the rule
            for (path, features) in [
                (format!("/tiles/{layer}"), false),
                (format!("/catalog/{layer}"), false),
                (format!("/collections/{layer}"), false),
                (format!("/collections/{layer}/queryables"), false),
                (format!("/collections/{layer}/items?limit=10"), true),
                (format!("/collections/{layer}/items/1"), true),
                (format!("/layers/{layer}/stats?by=district"), false),
                (format!("/layers/{layer}/cells?h3=8"), false),
                (
                    format!("/layers/{layer}/nearest?lon={lon}&lat={lat}&k=3"),
                    true,
                ),
                (
                    format!("/layers/{layer}/within?lon={lon}&lat={lat}&radius=2000"),
                    true,
                ),
            ] {
                let (s, body) = get(who, &path).await;
                let want = match form {
                    '-' => 404,
                    'A' if features => 403,
                    _ => 200,
                };
                assert_eq!(s.as_u16(), want, "{path}: {at}");
                assert_eq!(
                    has(&body, &secret),
                    raw && features,
                    "{path} sentinel: {at}"
                );
                if form == 'A' && features {
                    let problem: Value = serde_json::from_slice(&body).unwrap();
                    assert!(
                        problem["detail"]
                            .as_str()
                            .unwrap()
                            .contains("usable but invisible"),
                        "{path}: {at}"
                    );
                }
                if matches!(form, 'A' | 'D')
                    && let Ok(v) = serde_json::from_slice::<Value>(&body)
                {
                    for p in points_of(&v) {
                        assert!(
                            raw_coordinates(k)
                                .iter()
                                .all(|r| (r.0 - p.0).abs() > 1e-6 || (r.1 - p.1).abs() > 1e-6),
                            "{path}: raw coordinate {p:?} served to {at}"
                        );
                    }
                }
                if form == 'D' && features {
                    // the personal field is there, masked
                    assert!(has(&body, "S*****"), "{path}: {at}");
                }
            }
            let (s, fc) = post(
                who,
                &format!("/layers/{layer}/intersects"),
                &json!({ "type": "Polygon", "coordinates": [[[118.77, 32.08], [118.80, 32.08], [118.80, 32.10], [118.77, 32.10], [118.77, 32.08]]] }),
            )
            .await;
            let want = match form {
                '-' => 404,
                'A' => 403,
                _ => 200,
            };
            assert_eq!(s.as_u16(), want, "intersects: {at}");
            assert_eq!(fc.to_string().contains(&secret), raw, "intersects: {at}");
            if form == 'A' {
                // aggregates on fixed units, suppressed: three calls are "< 5" wherever
                // they are counted; a box would move the units
                let (s, stats) = json_of(
                    who,
                    &format!("/layers/{layer}/stats?by=grid&within=320102001001"),
                )
                .await;
                assert_eq!(s, 200, "stats: {at}");
                assert_eq!(stats["form"], "aggregate");
                assert!(
                    stats["units"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|u| u["count"] == 0 || u["count"] == "<5" || u["count"].is_null()),
                    "stats: {at}: {stats}"
                );
                let (s, _) = json_of(
                    who,
                    &format!("/layers/{layer}/stats?bbox=118.7,32.0,118.8,32.1"),
                )
                .await;
                assert_eq!(s, 400, "stats with a box: {at}");
                let (s, _) = json_of(who, &format!("/layers/{layer}/cells?h3=12")).await;
                assert_eq!(s, 400, "fine cells: {at}");
                let (s, _) = json_of(who, &format!("/layers/{layer}/cells?size=100")).await;
                assert_eq!(s, 400, "square cells: {at}");
            }
        }
        // one static map with every canary in its own colour: exactly the layers seen as
        // features drawn (aggregates are cells, not the canary's circles)
        let (s, png) = get(
            who,
            "/render/canary.png?bbox=118.770,32.090,118.790,32.097&width=400&height=200",
        )
        .await;
        assert_eq!(s, 200, "render: {who}");
        let drawn = colours_drawn(&png);
        let want: Vec<bool> = row.iter().map(|f| matches!(f, 'R' | 'D')).collect();
        assert_eq!(drawn.to_vec(), want, "render: {who}");
    }
    // the catalogue shows the classification to those allowed
    let (_, one) = json_of("planner", "/catalog/canary_conditional").await;
    assert_eq!(one["owner"], "planning");
    assert_eq!(one["share"], "conditional");
    assert_eq!(one["open"], "not-open");
    assert_eq!(one["level"], 2);
    let (_, tj) = json_of("planner", "/tiles/canary_shared").await;
    assert_eq!(tj["catalog"][0]["level"], 2);
    // every product states its sources and their dates (Data art. 27): TileJSON, OGC API
    // collections, and every rendered image, at its foot and in its PNG `Source` chunk
    let (_, tj) = json_of("planner", "/tiles/canary_shared,canary_secret").await;
    let attribution = tj["attribution"].as_str().unwrap();
    assert!(
        attribution.contains("canary_shared, canary_secret (aggregates)")
            && attribution.contains("Sources: "),
        "{attribution}"
    );
    assert!(tj["provenance"][1]["updated_at"].is_string(), "{tj}");
    let (_, col) = json_of("public", "/collections/canary_personal").await;
    assert!(
        col["attribution"]
            .as_str()
            .unwrap()
            .contains("canary_personal (desensitised)"),
        "{col}"
    );
    assert!(col["provenance"]["source"].is_string(), "{col}");
    for (who, path, names) in [
        (
            "urban",
            "/render/canary.png?bbox=118.770,32.090,118.790,32.097&width=400&height=200",
            "canary_secret",
        ),
        (
            "planner",
            "/render/canary.png?bbox=118.770,32.090,118.790,32.097&width=400&height=200",
            "canary_secret (aggregates)",
        ),
        (
            "dispatcher",
            "/dashboards/nanjing.png?width=960&height=540",
            "districts",
        ),
    ] {
        let (s, png) = get(who, path).await;
        assert_eq!(s, 200, "{path}");
        let credit = png_source(&png);
        assert!(
            credit.contains(names) && credit.contains("Sources: "),
            "{who} {path}: {credit:?}"
        );
    }
    let _ = w;
}

/// The `Source` text a PNG carries.
fn png_source(png_bytes: &[u8]) -> String {
    let reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .unwrap();
    reader
        .info()
        .utf8_text
        .iter()
        .find(|c| c.keyword == "Source")
        .map(|c| c.get_text().unwrap())
        .unwrap_or_default()
}

/// Which canary colours a PNG shows (more than a few exact pixels of each).
fn colours_drawn(png_bytes: &[u8]) -> [bool; 7] {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let mut counts = [0usize; 7];
    for px in buf.chunks_exact(4) {
        if let Some(i) = COLOURS.iter().position(|c| px[..3] == c[..]) {
            counts[i] += 1;
        }
    }
    counts.map(|n| n > 20)
}

/// Every route the router serves takes an access decision: the sources are read for every
/// `.route("…")`, each is asked as the public, and the answer must carry the decision the
/// table below says. A new route that is not in the table, or decides nothing, fails here.
#[tokio::test]
async fn every_route_takes_an_access_decision() {
    use tower::ServiceExt as _;
    let table: &[(&str, &str)] = &[
        ("/", "public"),
        ("/admin/keys", "duty"),
        ("/admin/keys/{id}/revoke", "duty"),
        ("/admin/revocations", "duty"),
        ("/api", "public"),
        ("/api/docs", "public"),
        ("/audit", "duty"),
        ("/auth/config", "public"),
        ("/catalog", "listing"),
        ("/catalog/{layer}", "read"),
        ("/catalog/{layer}/quality", "read"),
        ("/collections", "listing"),
        ("/collections/{collectionId}", "read"),
        ("/collections/{collectionId}/items", "read"),
        ("/collections/{collectionId}/items/{featureId}", "read"),
        ("/collections/{collectionId}/queryables", "read"),
        ("/conformance", "public"),
        ("/dashboards", "public"),
        ("/dashboards/{file}", "listing"),
        ("/dashboards/{id}/stream", "listing"),
        ("/events", "read|writes"),
        ("/events/{id}", "read"),
        ("/events/{id}/command", "writes"),
        ("/events/{id}/nearest-units", "read"),
        ("/events/{id}/transitions", "writes"),
        ("/events/{id}/units", "writes"),
        ("/fonts", "public"),
        ("/fonts/{fontstack}/{range}", "public"),
        ("/grants", "listing|writes"),
        ("/grants/{id}", "listing"),
        ("/grants/{id}/approve", "writes"),
        ("/grants/{id}/refuse", "writes"),
        ("/grants/{id}/revoke", "writes"),
        ("/grids/locate", "read"),
        ("/health", "public"),
        ("/layers/{layer}/cells", "read"),
        ("/layers/{layer}/diff", "read"),
        ("/layers/{layer}/intersects", "read"),
        ("/layers/{layer}/nearest", "read"),
        ("/layers/{layer}/stats", "read"),
        ("/layers/{layer}/versions", "read"),
        ("/layers/{layer}/within", "read"),
        ("/live", "listing"),
        ("/live/changes", "listing"),
        ("/live/sse", "listing"),
        ("/live/state", "listing"),
        ("/live/tickets", "listing"),
        ("/me", "listing"),
        ("/metrics", "duty"),
        ("/objections", "listing|writes"),
        ("/objections/{id}", "listing"),
        ("/objections/{id}/decision", "writes"),
        ("/ogc", "public"),
        ("/readings", "writes"),
        ("/render/{file}", "listing"),
        ("/reports/{receipt}", "public"),
        ("/screen/{id}", "public"),
        ("/sensors", "read|writes"),
        ("/sensors/{id}", "read"),
        ("/sensors/{id}/readings", "read|writes"),
        ("/sprites/{file}", "public"),
        ("/styles", "listing"),
        ("/styles/{file}", "listing"),
        ("/territories", "read"),
        ("/territories/{code}", "read"),
        ("/territories/{code}/children", "read"),
        ("/tiles/{layers}", "read"),
        ("/tiles/{layers}/tilejson.json", "read"),
        ("/tiles/{layers}/{z}/{x}/{y}", "read"),
        ("/units", "read|writes"),
        ("/units/{id}", "read"),
        ("/units/{id}/position", "writes"),
        ("/units/{id}/status", "writes"),
        ("/collections/{collectionId}/tiles", "read"),
        (
            "/collections/{collectionId}/tiles/{tileMatrixSetId}",
            "read",
        ),
        (
            "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
            "read",
        ),
        ("/tileMatrixSets", "public"),
        ("/tileMatrixSets/{tileMatrixSetId}", "public"),
        ("/v1.1", "public"),
        ("/v1.1/{*path}", "read|writes"),
        ("/vendor/maplibre-gl/{file}", "public"),
        ("/vendor/oidc-client-ts/{file}", "public"),
        ("/web/{file}", "public"),
    ];
    // every `.route("…")` in the server's sources
    let mut routes = Vec::new();
    for dir in ["server/src/routes", "server/src"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            while let Some(i) = rest.find(".route(") {
                rest = &rest[i + 7..];
                let open = rest.find('"').unwrap();
                let close = open + 1 + rest[open + 1..].find('"').unwrap();
                routes.push(rest[open + 1..close].to_owned());
            }
        }
    }
    routes.sort();
    routes.dedup();
    let known: Vec<&str> = table.iter().map(|(r, _)| *r).collect();
    for r in &routes {
        assert!(
            known.contains(&r.as_str()),
            "route {r} is served but has no row in the access table: decide what it shows whom"
        );
    }
    let w = world();
    let fill = |r: &str| {
        let file = match r.split('/').nth(1).unwrap_or("") {
            "styles" => "canary.json",
            "render" => "canary.png",
            "sprites" => "citytwin.json",
            "dashboards" => "nanjing.json",
            "web" => "viewer.js",
            "vendor" if r.contains("maplibre") => "maplibre-gl.css",
            _ => "oidc-client-ts.min.js",
        };
        let id = match r.split('/').nth(1).unwrap_or("") {
            "sensors" => "S-1",
            "units" => "U-1",
            "dashboards" | "screen" => "nanjing",
            "admin" => "knope",
            _ => "1",
        };
        r.replace("{layers}", "canary_open")
            .replace("{layer}", "canary_open")
            .replace("{collectionId}", "canary_open")
            .replace("{featureId}", "1")
            .replace("{code}", "320102")
            .replace("{z}/{x}/{y}", "14/13597/6646.mvt")
            .replace("{tileMatrixSetId}", "WebMercatorQuad")
            .replace("{tileMatrix}/{tileRow}/{tileCol}", "14/6646/13597")
            .replace("{*path}", "Things")
            .replace("{fontstack}", "WenQuanYi%20Micro%20Hei")
            .replace("{range}", "0-255.pbf")
            .replace("{file}", file)
            .replace("{receipt}", &"0".repeat(48))
            .replace("{id}", id)
    };
    for (route, kind) in table {
        assert!(
            routes.iter().any(|r| r == route),
            "{route} is in the table but no longer served"
        );
        let mut answered = 0;
        for method in ["GET", "POST"] {
            let uri = fill(route);
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(&uri)
                .header("host", "localhost");
            let body = if method == "POST" {
                req = req.header("content-type", "application/json");
                axum::body::Body::from("{}")
            } else {
                axum::body::Body::empty()
            };
            let resp = router(w.state.clone())
                .oneshot(req.body(body).unwrap())
                .await
                .unwrap();
            if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            answered += 1;
            let decided = resp
                .extensions()
                .get::<Decided>()
                .cloned()
                .unwrap_or_default();
            let what = decided.what.unwrap_or_else(|| {
                panic!(
                    "{method} {uri} answered {} with no access decision",
                    resp.status()
                )
            });
            let first = what.split(' ').next().unwrap();
            assert!(
                kind.split('|').any(|k| k == first),
                "{method} {uri}: decided {what:?}, the table says {kind}"
            );
        }
        assert!(answered > 0, "{route} answers neither GET nor POST");
    }
}

/// Events: street staff act only in their territory and by their role; the history names
/// the signed-in principal; the feed, the lists and the tiles show each only their plan.
#[tokio::test]
async fn writes_follow_role_and_territory_and_the_live_views_follow_the_plan() {
    let w = world();
    // a point of another street
    let (_, far) = json_of("dispatcher", "/grids/locate?lon=118.80&lat=32.02").await;
    let far_street = far["street"]["code"].as_str().unwrap().to_owned();
    assert_ne!(far_street, "320102001");
    let (_, here) = json_of(
        "dispatcher",
        &format!("/grids/locate?lon={}&lat={}", HERE.0, HERE.1),
    )
    .await;
    assert_eq!(here["street"]["code"], "320102001");
    // the street worker and the dispatcher follow the feed; the public tries to
    let ws = |who: &'static str| async move {
        let mut req = format!("{}/live?kinds=event.reported", w.base.replace("http", "ws"))
            .into_client_request()
            .unwrap();
        if who != "public" {
            // the street worker's browser would use a ticket; the dispatcher's tool a header
            if who == "street" {
                let (s, t) = post(who, "/live/tickets", &json!({})).await;
                assert_eq!(s, 201, "{t}");
                req = format!(
                    "{}/live?kinds=event.reported&ticket={}",
                    w.base.replace("http", "ws"),
                    t["ticket"].as_str().unwrap()
                )
                .into_client_request()
                .unwrap();
            } else {
                req.headers_mut().insert(
                    "authorization",
                    format!("Bearer {}", w.tokens[who]).parse().unwrap(),
                );
            }
        }
        let (mut s, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = next_json(&mut s).await.unwrap();
        assert_eq!(hello["type"], "hello");
        s
    };
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut street_ws = ws("street").await;
    let mut dispatcher_ws = ws("dispatcher").await;
    let mut public_ws = ws("public").await;
    let report = |lon: f64, lat: f64, what: &str| json!({ "source": "hotline", "category": "road-damage", "description": what, "lon": lon, "lat": lat });
    let (s, inside) = post(
        "dispatcher",
        "/events",
        &report(HERE.0, HERE.1, "canary inside"),
    )
    .await;
    assert_eq!(s, 201, "{inside}");
    let (s, outside) = post(
        "dispatcher",
        "/events",
        &report(118.80, 32.02, "canary outside"),
    )
    .await;
    assert_eq!(s, 201, "{outside}");
    let (inside, outside) = (
        inside["id"].as_i64().unwrap(),
        outside["id"].as_i64().unwrap(),
    );
    let ids = |frames: Vec<Value>| -> Vec<i64> {
        frames
            .iter()
            .filter_map(|f| f["id"].as_str()?.parse().ok())
            .collect()
    };
    let got = ids(frames_until(&mut dispatcher_ws, outside).await);
    assert!(got.contains(&inside) && got.contains(&outside), "{got:?}");
    let got = ids(frames_for(&mut street_ws, Duration::from_secs(2)).await);
    assert!(
        got.contains(&inside) && !got.contains(&outside),
        "street feed: {got:?}"
    );
    let got = ids(frames_for(&mut public_ws, Duration::from_secs(1)).await);
    assert!(got.is_empty(), "public feed: {got:?}");
    // lists, single events, the time machine and the playback, narrowed the same way
    let (_, list) = json_of("street", "/events?limit=10000").await;
    let listed: Vec<i64> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(listed.contains(&inside) && !listed.contains(&outside));
    assert_eq!(
        json_of("street", &format!("/events/{outside}")).await.0,
        404
    );
    assert_eq!(json_of("public", "/events").await.0, 404);
    assert_eq!(
        json_of("gateway", &format!("/events/{inside}")).await.0,
        404
    );
    let (_, now) = json_of("street", "/live/state").await;
    let stated: Vec<i64> = now["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(stated.contains(&inside) && !stated.contains(&outside));
    let (_, public_state) = json_of("public", "/live/state").await;
    assert!(public_state["events"].as_array().unwrap().is_empty());
    let (_, changes) = json_of("street", "/live/changes?limit=10000").await;
    assert!(!changes.to_string().contains("canary outside"));
    assert!(changes.to_string().contains("canary inside"));
    // tiles of the events layer: never served across plans (the street's first)
    let (z, x, y) = TILE;
    let street_tile = get("street", &format!("/tiles/events/{z}/{x}/{y}.mvt"))
        .await
        .1;
    let dispatcher_tile = get("dispatcher", &format!("/tiles/events/{z}/{x}/{y}.mvt"))
        .await
        .1;
    assert!(!has(&street_tile, "canary outside"));
    let far_tile = |who: &'static str| async move {
        let (zx, zy) = tile_of(118.80, 32.02, 14);
        get(who, &format!("/tiles/events/14/{zx}/{zy}.mvt")).await
    };
    assert_eq!(
        far_tile("street").await.0,
        204,
        "the street sees nothing there"
    );
    assert_eq!(far_tile("dispatcher").await.0, 200);
    let _ = dispatcher_tile;
    // a tile cached for the owner is not served to a department without the right
    let tile = format!("/tiles/canary_conditional/{z}/{x}/{y}.mvt");
    assert_eq!(get("planner", &tile).await.0, 200);
    assert_eq!(get("dispatcher", &tile).await.0, 404);
    // roles: the street worker may not accept; the dispatcher does, and dispatches both
    let step = |who: &'static str, id: i64, action: &'static str| async move {
        post(
            who,
            &format!("/events/{id}/transitions"),
            &json!({ "action": action }),
        )
        .await
    };
    assert_eq!(step("street", inside, "accept").await.0, 403);
    assert_eq!(step("planner", inside, "accept").await.0, 403);
    assert_eq!(step("public", inside, "accept").await.0, 401);
    for id in [inside, outside] {
        assert_eq!(step("dispatcher", id, "accept").await.0, 200);
        assert_eq!(step("dispatcher", id, "dispatch").await.0, 200);
    }
    // territory: the street worker starts handling its own, and the other is not theirs
    let (s, e) = step("street", inside, "start").await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(
        e["history"].as_array().unwrap().last().unwrap()["actor"],
        "street (user:u-street)"
    );
    assert_eq!(step("street", outside, "start").await.0, 404);
    // an actor in the body is refused: the actor is whoever signed in
    let (s, p) = post(
        "dispatcher",
        &format!("/events/{outside}/transitions"),
        &json!({ "action": "start", "actor": "someone else" }),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    // sensors: registration needs the role; a gateway key sends only for its own sensors
    let sensor = |id: &str| json!({ "id": id, "type": "water-level", "lon": HERE.0, "lat": HERE.1, "unit": "m" });
    assert_eq!(post("planner", "/sensors", &sensor("GW-1")).await.0, 403);
    assert_eq!(post("dispatcher", "/sensors", &sensor("GW-1")).await.0, 201);
    assert_eq!(
        post("dispatcher", "/sensors", &sensor("OTHER-1")).await.0,
        201
    );
    assert_eq!(
        post(
            "gateway",
            "/sensors/GW-1/readings",
            &json!({ "value": 0.1 })
        )
        .await
        .0,
        202
    );
    let (s, p) = post(
        "gateway",
        "/sensors/OTHER-1/readings",
        &json!({ "value": 0.1 }),
    )
    .await;
    assert_eq!(s, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("OTHER-1"));
    let (s, _) = post("gateway", "/readings", &json!({ "readings": [{ "sensor": "GW-1", "value": 1 }, { "sensor": "OTHER-1", "value": 1 }] })).await;
    assert_eq!(
        s, 403,
        "a batch with one sensor not its own is refused whole"
    );
    assert_eq!(
        post(
            "dispatcher",
            "/sensors/OTHER-1/readings",
            &json!({ "value": 0.1 })
        )
        .await
        .0,
        202
    );
    // SensorThings shows each reader the sensors of its plan and no others: a sensor of
    // another street is absent from every entity set and its Datastream is not found
    let mut far = sensor("FAR-1");
    far["lon"] = json!(118.80);
    far["lat"] = json!(32.02);
    assert_eq!(post("dispatcher", "/sensors", &far).await.0, 201);
    assert_eq!(
        post(
            "dispatcher",
            "/sensors/FAR-1/readings",
            &json!({ "value": 0.2 })
        )
        .await
        .0,
        202
    );
    let (s, listed) = json_of("street", "/sensors").await;
    assert_eq!(s, 200, "{listed}");
    let rest: Vec<&str> = listed["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(
        rest.contains(&"GW-1") && !rest.contains(&"FAR-1"),
        "{rest:?}"
    );
    let (s, things) = json_of("street", "/v1.1/Things?$top=10000").await;
    assert_eq!(s, 200, "{things}");
    let sta: Vec<&str> = things["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["@iot.id"].as_str())
        .collect();
    assert_eq!(sta, rest, "SensorThings lists what /sensors lists");
    for path in [
        "/v1.1/Datastreams('FAR-1')",
        "/v1.1/Datastreams('FAR-1')/Observations",
        "/v1.1/Things('FAR-1')/Locations",
        "/v1.1/FeaturesOfInterest('FAR-1')",
    ] {
        assert_eq!(json_of("street", path).await.0, 404, "{path}");
    }
    let (_, obs) = json_of(
        "street",
        "/v1.1/Observations?$top=10000&$expand=Datastream($select=id)",
    )
    .await;
    assert!(
        obs["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["Datastream"]["@iot.id"] != "FAR-1"),
        "{obs}"
    );
    let (_, all) = json_of("dispatcher", "/v1.1/Datastreams('FAR-1')/Observations").await;
    assert_eq!(
        all["value"][0]["result"], 0.2,
        "the dispatcher sees it: {all}"
    );
    let (s, _) = json_of("public", "/v1.1/Things").await;
    assert_eq!(s, 404, "the public sees no sensors");
}

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let (x, y) = citytwin_tiles::proj::lonlat_to_mercator(lon, lat);
    let c = citytwin_tiles::TileCoord::containing(x, y, z);
    (c.x, c.y)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                return serde_json::from_str(&t).ok();
            }
            Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn frames_until(ws: &mut Ws, id: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(20), next_json(ws)).await else {
            break;
        };
        let done = f["id"].as_str().and_then(|s| s.parse::<i64>().ok()) == Some(id);
        out.push(f);
        if done {
            break;
        }
    }
    out
}

async fn frames_for(ws: &mut Ws, d: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(f)) = tokio::time::timeout_at(deadline, next_json(ws)).await {
        out.push(f);
    }
    out
}

/// Revoking a user refuses their next request and closes their open streams — WebSocket,
/// server-sent events, the dashboard's MJPEG — at once.
#[tokio::test]
async fn revocation_closes_open_streams_at_once() {
    let w = world();
    let (s, t) = post("revokee", "/live/tickets", &json!({})).await;
    assert_eq!(s, 201);
    let url = format!(
        "{}/live?ticket={}",
        w.base.replace("http", "ws"),
        t["ticket"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "hello");
    // a ticket opens one stream only
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    let mut sse = as_("revokee")
        .get(format!("{}/live/sse", w.base))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    assert!(sse.next().await.is_some());
    let mjpeg = as_("revokee")
        .get(format!(
            "{}/dashboards/nanjing/stream?width=320&height=180",
            w.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(mjpeg.status(), 200);
    let mut mjpeg = mjpeg.bytes_stream();
    assert!(mjpeg.next().await.is_some(), "the first frame");
    let (s, p) = post(
        "security",
        "/admin/revocations",
        &json!({ "subject": "user:u-revokee", "reason": "left the street office" }),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let started = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_secs(3), next_json(&mut ws))
            .await
            .unwrap()
            .is_none(),
        "the WebSocket closed"
    );
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(_)) = sse.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream ended");
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(_)) = mjpeg.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the dashboard stream ended");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (s, body) = json_of("revokee", "/me").await;
    assert_eq!(s, 401, "{body}");
    // only a security admin revokes
    let (s, _) = post(
        "dispatcher",
        "/admin/revocations",
        &json!({ "subject": "user:u-street" }),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(
        "auditor",
        "/admin/revocations",
        &json!({ "subject": "user:u-street" }),
    )
    .await;
    assert_eq!(s, 403);
}

/// Bad tokens are 401 problems, and nothing they ask for is written.
#[tokio::test]
async fn bad_tokens_are_refused_and_write_nothing() {
    use base64::Engine as _;
    let w = world();
    // the short-lived token is past its second by now
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let good = &w.tokens["planner"];
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    header["kid"] = json!("no-such-key");
    let unknown_key = format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        parts[1],
        parts[2]
    );
    let mut header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    header["alg"] = json!("HS256");
    let hs = format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        parts[1],
        parts[2]
    );
    let mut tampered_claims: Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    tampered_claims["department"] = json!("urban-management");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(tampered_claims.to_string()),
        parts[2]
    );
    let mut cases: Vec<(&str, String)> = w.bad.iter().map(|(n, t)| (*n, t.clone())).collect();
    cases.extend([
        ("alg none", none),
        ("unknown key", unknown_key),
        ("shared-secret algorithm", hs),
        ("forged claims", forged),
        ("garbage", "abc.def".to_owned()),
        ("revoked-looking key", "ctk_kdeadbeef_00".to_owned()),
    ]);
    for (what, token) in cases {
        let c = client_with(&token);
        let resp = c.get(format!("{}/me", w.base)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        assert!(resp.headers().contains_key("www-authenticate"), "{what}");
        let resp = c
            .post(format!("{}/events", w.base))
            .json(&json!({ "source": "citizen", "category": "noise", "description": format!("bad token {what}"), "lon": HERE.0, "lat": HERE.1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
    }
    let (_, list) = json_of("dispatcher", "/events?limit=10000").await;
    assert!(
        !list.to_string().contains("bad token"),
        "a refused token wrote"
    );
    // the good token works
    let (s, me) = json_of("planner", "/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["department"], "planning");
    assert_eq!(me["id"], "user:u-planner");
}

/// A page of another site cannot post (CSRF), nor open the feed in its visitor's name.
#[tokio::test]
async fn pages_of_other_sites_cannot_write_or_follow() {
    let w = world();
    let resp = public_client()
        .post(format!("{}/events", w.base))
        .header("content-type", "text/plain")
        .body(r#"{"source":"citizen","category":"noise","lon":118.78,"lat":32.0932}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    // a preflight for a write from an origin not configured is not allowed
    let pre = public_client()
        .request(reqwest::Method::OPTIONS, format!("{}/events", w.base))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    // reads stay open to any origin
    let read = public_client()
        .get(format!("{}/catalog", w.base))
        .header("origin", "https://other.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.headers()["access-control-allow-origin"],
        "https://other.example"
    );
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("{}/live", w.base.replace("http", "ws")),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    // the web folder serves only what the pages load
    for path in [
        "/web/package.json",
        "/web/tests/viewer.mjs",
        "/web/../Cargo.toml",
        "/web/idp/demo-users.json",
    ] {
        let (s, _) = get("public", path).await;
        assert!(s == 404 || s == 400, "{path}: {s}");
    }
    // /health says nothing of where the store is; /metrics is for system admins
    let (_, h) = json_of("public", "/health").await;
    assert!(!h.to_string().contains(".gpkg"), "{h}");
    assert_eq!(json_of("public", "/metrics").await.0, 401);
    assert_eq!(json_of("security", "/metrics").await.0, 403);
    // responses to someone signed in are private
    let resp = as_("planner")
        .get(format!("{}/catalog", w.base))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let resp = public_client()
        .get(format!("{}/catalog", w.base))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()
            .get("cache-control")
            .is_none_or(|v| !v.to_str().unwrap().contains("private"))
    );
}

/// The public files a citizen report, follows it with its receipt, and is held to its rate.
#[tokio::test]
async fn citizens_report_follow_with_a_receipt_and_are_rate_limited() {
    let w = world();
    let (s, r) = post("public", "/events", &json!({ "source": "citizen", "category": "garbage", "description": "rubbish by the gate", "lon": HERE.0, "lat": HERE.1, "reporter": "张三 138****5678" })).await;
    assert_eq!(s, 201, "{r}");
    let receipt = r["receipt"].as_str().unwrap().to_owned();
    assert!(
        r.get("reporter").is_none() && r.get("history").is_none(),
        "the public sees only its receipt view: {r}"
    );
    let (s, view) = json_of("public", &format!("/reports/{receipt}")).await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["state"], "reported");
    assert_eq!(
        json_of("public", &format!("/reports/{}", "f".repeat(48)))
            .await
            .0,
        404
    );
    // staff may not be hotline operators by claiming so
    let (s, _) = post(
        "public",
        "/events",
        &json!({ "source": "hotline", "category": "garbage", "lon": HERE.0, "lat": HERE.1 }),
    )
    .await;
    assert_eq!(s, 401);
    // the dispatcher handles it: the citizen sees it move
    let id = r["id"].as_i64().unwrap();
    let (s, _) = post(
        "dispatcher",
        &format!("/events/{id}/transitions"),
        &json!({ "action": "accept" }),
    )
    .await;
    assert_eq!(s, 200);
    let (_, view) = json_of("public", &format!("/reports/{receipt}")).await;
    assert_eq!(view["state"], "accepted");
    assert!(
        !view.to_string().contains("dispatcher"),
        "no staff names for the public: {view}"
    );
    // three reports a minute per address in this world: the next ones are 429 with Retry-After
    let mut limited = None;
    for i in 0..5 {
        let resp = public_client()
            .post(format!("{}/events", w.base))
            .json(&json!({ "source": "citizen", "category": "garbage", "description": format!("again {i}"), "lon": HERE.0 + 0.01, "lat": HERE.1 }))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("the public's reports are rate-limited");
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

/// The audit log: denials, writes and restricted reads recorded, readable by auditors only;
/// `citytwin audit verify` passes on it and catches a tampered copy.
#[tokio::test]
async fn the_audit_log_records_and_catches_tampering() {
    let w = world();
    // a denial, a restricted read, a write
    assert_eq!(
        get("public", "/collections/canary_shared/items").await.0,
        404
    );
    assert_eq!(
        get("planner", "/collections/canary_conditional/items")
            .await
            .0,
        200
    );
    let (s, _) = post("dispatcher", "/events", &json!({ "source": "hotline", "category": "noise", "description": "for the audit", "lon": HERE.0, "lat": HERE.1 })).await;
    assert_eq!(s, 201);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for who in ["public", "planner", "dispatcher", "security"] {
        let (s, _) = json_of(who, "/audit").await;
        assert_eq!(s.as_u16(), if who == "public" { 401 } else { 403 }, "{who}");
    }
    let find = |q: &'static str| async move {
        let (s, v) = json_of("auditor", &format!("/audit?{q}&limit=10000")).await;
        assert_eq!(s, 200, "{v}");
        v["entries"].as_array().unwrap().clone()
    };
    let denied = find("principal=public&decision=deny&target=canary_shared").await;
    assert!(!denied.is_empty());
    assert!(denied[0]["detail"].as_str().unwrap().contains("not open"));
    let read = find("principal=user:u-planner&target=canary_conditional&action=read").await;
    assert!(
        read.iter()
            .any(|e| e["channel"] == "items" && e["count"] == 3),
        "{read:?}"
    );
    let wrote = find("principal=user:u-dispatcher&action=event.report").await;
    assert!(!wrote.is_empty());
    assert!(
        wrote
            .iter()
            .all(|e| !e["request_id"].as_str().unwrap().is_empty())
    );
    assert!(wrote.iter().all(|e| e["client"] == "127.0.0.1"));
    // open layers' reads are not recorded
    assert_eq!(
        get("planner", "/collections/canary_open/items").await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        find("principal=user:u-planner&target=canary_open&action=read")
            .await
            .is_empty()
    );
    // verify a snapshot of the log, then tamper with it
    let store = w.dir.join("access.gpkg");
    let copy = w
        .dir
        .join(format!("audit-copy-{}.gpkg", std::process::id()));
    let _ = std::fs::remove_file(&copy);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", store.display()))
        .await
        .unwrap();
    sqlx::query(&format!("VACUUM INTO '{}'", copy.display()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_citytwin"))
            .args(["audit", "verify", "--store"])
            .arg(&copy)
            .arg("--audit-key")
            .arg(w.dir.join("audit.key"))
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));
    let copy_pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE citytwin_audit SET principal = 'public' WHERE seq = 3")
        .execute(&copy_pool)
        .await;
    assert!(refused.is_err(), "the store refuses edits of the audit log");
    sqlx::raw_sql("DROP TRIGGER citytwin_audit_append_only; UPDATE citytwin_audit SET principal = 'public' WHERE seq = 3")
        .execute(&copy_pool)
        .await
        .unwrap();
    copy_pool.close().await;
    let caught = verify();
    assert!(!caught.status.success(), "a tampered log passed");
    let err = String::from_utf8_lossy(&caught.stderr);
    assert!(err.contains("audit entry 3"), "{err}");
}

/// Signed out, the viewer shows the public's layers; signed in through the provider's own
/// login page, a layer shared between departments appears.
#[tokio::test]
async fn the_viewer_signs_in_and_a_shared_layer_appears() {
    let w = world();
    let shot = repo().join("target/test-artifacts/signin.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(repo().join("web/tests/signin.mjs"))
        .args([&w.base, "planner", "p-planner"])
        .arg(&shot)
        .output()
        .await
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sign-in test failed:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert!(
        report["before"]["canary-open"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["before"]["canary-shared"], 0, "{report}");
    assert!(
        report["after"]["canary-shared"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["after"]["canary-conditional"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["after"]["canary-private"], 0, "{report}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 5_000);
    let _ = (&w.idp, &w.handle);
}

/// A date `days` from now, as the API reads a term's end.
fn days_from_now(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// A request for a conditionally shared layer, end to end: asked, refused; asked again,
/// approved on narrower conditions (fields, term), read as the grant allows on every
/// channel, revoked and gone on the next request; a grant that runs out by itself; every
/// step in the audit log.
#[tokio::test]
async fn a_grant_is_asked_for_decided_used_and_ended() {
    let w = world();
    let items = "/collections/granted_canary/items?limit=10";
    let (z, x, y) = TILE;
    let tile = format!("/tiles/granted_canary/{z}/{x}/{y}.mvt");
    // shared on conditions: urban management does not see it, and cannot approve for itself
    assert_eq!(get("urban", items).await.0, 404);
    let ask = json!({ "layer": "granted_canary", "purpose": "manhole survey", "until": days_from_now(30), "fields": ["n", "secret"] });
    let (s, first) = post("urban", "/grants", &ask).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["status"], "requested");
    assert_eq!(first["grantee"], "urban-management");
    let id = first["id"].as_str().unwrap().to_owned();
    let (s, _) = post("urban", &format!("/grants/{id}/approve"), &json!({})).await;
    assert_eq!(s, 403, "the asker cannot approve");
    let (s, _) = post("planner", &format!("/grants/{id}/approve"), &json!({})).await;
    assert_eq!(
        s, 403,
        "the owner department without the steward role cannot either"
    );
    // refused, and a refused request cannot be approved after
    let (s, refused) = post(
        "steward",
        &format!("/grants/{id}/refuse"),
        &json!({ "reason": "no survey is planned" }),
    )
    .await;
    assert_eq!(s, 200, "{refused}");
    assert_eq!(refused["status"], "refused");
    let (s, _) = post("steward", &format!("/grants/{id}/approve"), &json!({})).await;
    assert_eq!(s, 409);
    assert_eq!(get("urban", items).await.0, 404);
    // asked again, approved for the `n` field only and a shorter term
    let (_, second) = post("urban", "/grants", &ask).await;
    let id = second["id"].as_str().unwrap().to_owned();
    let (s, _) = post(
        "steward",
        &format!("/grants/{id}/approve"),
        &json!({ "until": days_from_now(60) }),
    )
    .await;
    assert_eq!(s, 400, "an approval cannot lengthen the term");
    let (s, approved) = post(
        "steward",
        &format!("/grants/{id}/approve"),
        &json!({ "until": days_from_now(7), "fields": ["n"], "note": "for the survey only" }),
    )
    .await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    // on the next request urban management reads it: the granted field, not the secret
    let (s, body) = get("urban", items).await;
    assert_eq!(s, 200);
    let fc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(fc["features"].as_array().unwrap().len(), 3);
    assert!(fc["features"][0]["properties"]["n"].is_number(), "{fc}");
    assert!(!has(&body, "SENTINEL"), "a field outside the grant leaked");
    let (s, body) = get("urban", &tile).await;
    assert_eq!(s, 200);
    assert!(!has(&body, "SENTINEL"));
    let (_, me) = json_of("urban", "/me").await;
    assert!(
        me["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["layer"] == "granted_canary" && l["basis"] == "granted"),
        "{me}"
    );
    // others are not helped by it, and see only their own grants
    assert_eq!(get("dispatcher", items).await.0, 404);
    let (_, theirs) = json_of("dispatcher", "/grants").await;
    assert!(!theirs.to_string().contains(&id));
    let (_, mine) = json_of("urban", "/grants?status=approved").await;
    assert!(mine.to_string().contains(&id));
    let (_, stewards) = json_of("steward", "/grants").await;
    assert!(stewards.to_string().contains(&id));
    // revoked: gone on the next request, tiles included
    let (s, revoked) = post(
        "steward",
        &format!("/grants/{id}/revoke"),
        &json!({ "reason": "survey finished" }),
    )
    .await;
    assert_eq!(s, 200, "{revoked}");
    assert_eq!(get("urban", items).await.0, 404);
    assert_eq!(get("urban", &tile).await.0, 404);
    // a grant ends by itself when its term does
    let (_, third) = post("urban", "/grants", &ask).await;
    let id3 = third["id"].as_str().unwrap().to_owned();
    let soon = citytwin_city::live::ts::format(citytwin_city::live::ts::now() + 1500);
    let (s, _) = post(
        "steward",
        &format!("/grants/{id3}/approve"),
        &json!({ "until": soon }),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(get("urban", items).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        get("urban", items).await.0,
        404,
        "an expired grant still let it in"
    );
    let (_, g) = json_of("urban", &format!("/grants/{id3}")).await;
    assert_eq!(g["status"], "expired");
    // a layer shared unconditionally, or not at all, or the asker's own, is not asked for
    for layer in ["canary_shared", "canary_private", "nope"] {
        let (s, _) = post(
            "urban",
            "/grants",
            &json!({ "layer": layer, "purpose": "x", "until": days_from_now(5) }),
        )
        .await;
        assert_eq!(s, 404, "{layer}");
    }
    let (s, _) = post("public", "/grants", &ask).await;
    assert_eq!(s, 401);
    // the public, once the layer is opened to it on conditions
    let open = json!({ "layer": "granted_canary", "purpose": "open data portal", "until": days_from_now(10), "public": true });
    let (s, asked) = post("urban", "/grants", &open).await;
    assert_eq!(s, 201, "{asked}");
    let pid = asked["id"].as_str().unwrap().to_owned();
    assert_eq!(get("public", items).await.0, 404);
    post("steward", &format!("/grants/{pid}/approve"), &json!({})).await;
    let (s, body) = get("public", items).await;
    assert_eq!(s, 200);
    assert!(
        !has(&body, "SENTINEL"),
        "personal fields stay masked for the public"
    );
    post(
        "steward",
        &format!("/grants/{pid}/revoke"),
        &json!({ "reason": "portal closed" }),
    )
    .await;
    assert_eq!(get("public", items).await.0, 404);
    // every step is in the audit log
    let (_, log) = json_of("auditor", "/audit?limit=10000").await;
    let log = log.to_string();
    for action in [
        "grant.request",
        "grant.refuse",
        "grant.approve",
        "grant.revoke",
    ] {
        assert!(
            log.contains(&format!("\"{action}\"")),
            "{action} missing from the audit log"
        );
    }
    let _ = w;
}

/// Objections (Data art. 35): filed by someone signed in, marked at once on the feature on
/// every channel, decided by the owner's steward, the objector told on its feed; overdue
/// ones first.
#[tokio::test]
async fn objections_mark_the_datum_and_the_objector_hears_the_outcome() {
    let w = world();
    let layer = "objected_canary";
    // the public may not object: it signs in first
    let (s, _) = post(
        "public",
        "/objections",
        &json!({ "layer": layer, "feature": 2, "reason": "wrong" }),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = post(
        "urban",
        "/objections",
        &json!({ "layer": layer, "feature": 99, "reason": "wrong" }),
    )
    .await;
    assert_eq!(s, 404, "no such feature");
    // the objector follows its feed
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/live?layers=units", w.base.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", w.tokens["urban"]).parse().unwrap(),
    );
    let (mut feed, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next_json(&mut feed).await.unwrap()["type"], "hello");
    let (s, o) = post(
        "urban",
        "/objections",
        &json!({ "layer": layer, "feature": 2, "reason": "the manhole is 20 m further north" }),
    )
    .await;
    assert_eq!(s, 201, "{o}");
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(o["state"], "open");
    assert!(
        o["due"].is_string() && o["working_days_left"].as_i64().unwrap() >= 4,
        "{o}"
    );
    // marked at once wherever the feature is served
    let (_, f2) = json_of("public", &format!("/collections/{layer}/items/2")).await;
    assert_eq!(f2["properties"]["disputed"], true, "{f2}");
    let (_, f1) = json_of("public", &format!("/collections/{layer}/items/1")).await;
    assert!(f1["properties"]["disputed"].is_null(), "{f1}");
    let (z, x, y) = TILE;
    let (_, mvt) = get("public", &format!("/tiles/{layer}/{z}/{x}/{y}.mvt")).await;
    let tile = Tile::decode(mvt).unwrap();
    assert!(
        tile.layers[0].keys.iter().any(|k| k == "disputed"),
        "the tile carries the mark"
    );
    let (_, cat) = json_of("public", &format!("/catalog/{layer}")).await;
    assert_eq!(cat["disputed_features"], 1);
    // a whole layer objected to is flagged in the catalogue
    let (_, whole) = post(
        "dispatcher",
        "/objections",
        &json!({ "layer": layer, "reason": "the layer is two years old" }),
    )
    .await;
    let (_, cat) = json_of("public", &format!("/catalog/{layer}")).await;
    assert_eq!(cat["disputed"], true);
    // the objector and the owner's steward see it; others do not
    let (_, mine) = json_of("urban", "/objections").await;
    assert!(mine.to_string().contains(&id));
    let (_, theirs) = json_of("dispatcher", "/objections").await;
    assert!(!theirs.to_string().contains(&id));
    let (_, stewards) = json_of("steward", &format!("/objections?layer={layer}&state=open")).await;
    assert!(stewards.to_string().contains(&id));
    // decided by the owner's steward only
    let decision =
        json!({ "outcome": "upheld", "reason": "moved 20 m north in the next survey import" });
    let (s, _) = post("urban", &format!("/objections/{id}/decision"), &decision).await;
    assert_eq!(s, 403);
    let (s, _) = post(
        "steward",
        &format!("/objections/{id}/decision"),
        &json!({ "outcome": "open", "reason": "x" }),
    )
    .await;
    assert_eq!(s, 400);
    let (s, decided) = post("steward", &format!("/objections/{id}/decision"), &decision).await;
    assert_eq!(s, 200, "{decided}");
    assert_eq!(decided["state"], "upheld");
    let (s, _) = post("steward", &format!("/objections/{id}/decision"), &decision).await;
    assert_eq!(s, 409);
    // the mark goes, and the objector is told on its feed
    let (_, f2) = json_of("public", &format!("/collections/{layer}/items/2")).await;
    assert!(f2["properties"]["disputed"].is_null(), "{f2}");
    let notice = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = next_json(&mut feed).await.unwrap();
            if m["type"] == "notice" {
                return m;
            }
        }
    })
    .await
    .expect("the objector was told");
    assert_eq!(notice["objection"], id.as_str());
    assert_eq!(notice["outcome"], "upheld");
    // an objection past its deadline stands out: first, flagged, counted
    let late = citytwin_city::objections::Objection {
        id: "o-000000000001".into(),
        layer: layer.into(),
        feature: Some(3),
        reason: "filed long ago".into(),
        by: "user:u-urban".into(),
        department: Some("urban-management".into()),
        filed_at: citytwin_city::live::ts::now() - 30 * 86_400_000,
        due: citytwin_city::live::ts::now() - 20 * 86_400_000,
        state: citytwin_city::objections::ObjectionState::Open,
        decided_by: None,
        decided_at: None,
        outcome: String::new(),
    };
    let city = Arc::clone(&w.state.city);
    w.handle
        .spawn(async move {
            citytwin_city::objections::save(city.store().as_ref(), &late)
                .await
                .unwrap();
            city.reload_records().await.unwrap();
        })
        .await
        .unwrap();
    let (_, list) = json_of("steward", "/objections").await;
    assert!(list["overdue"].as_u64().unwrap() >= 1, "{list}");
    assert_eq!(list["objections"][0]["overdue"], true, "{list}");
    let (_, overdue) = json_of("steward", "/objections?overdue=true").await;
    assert!(
        overdue["objections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["overdue"] == true)
    );
    let _ = whole;
}

/// A citizen's name and contact on an event (a personal field of the events layer, level 2):
/// the operations centre and the street that handles the event see it; another department
/// gets it masked on every channel — the event, the lists, `/live/state`, `/live/changes`
/// and the feed.
#[tokio::test]
async fn a_citizens_contact_stays_with_those_who_handle_the_report() {
    let w = world();
    let phone = "13900001111";
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/live?layers=events", w.base.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", w.tokens["planner"]).parse().unwrap(),
    );
    let (mut feed, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = next_json(&mut feed).await.unwrap();
    let since = hello["seq"].as_u64().unwrap();
    let (s, e) = post(
        "dispatcher",
        "/events",
        // its own category and place, so no other test's report merges with it
        &json!({ "source": "hotline", "category": "pet-nuisance", "description": "contact canary", "lon": HERE.0 + 0.002, "lat": HERE.1 + 0.001, "reporter": format!("Wu Fang {phone}") }),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let id = e["id"].as_i64().unwrap();
    // the owner and the handling street see the contact
    let (_, mine) = json_of("dispatcher", &format!("/events/{id}")).await;
    assert!(mine.to_string().contains(phone));
    let (_, street) = json_of("street", &format!("/events/{id}")).await;
    assert!(street.to_string().contains(phone), "{street}");
    // another department gets the event with the contact masked, everywhere
    let (s, theirs) = json_of("planner", &format!("/events/{id}")).await;
    assert_eq!(s, 200);
    assert!(!theirs.to_string().contains(phone), "{theirs}");
    assert!(
        theirs["reporter"].as_str().unwrap().starts_with('W'),
        "{theirs}"
    );
    for path in [
        "/events?limit=10000".to_owned(),
        "/live/state".to_owned(),
        format!("/live/changes?after={since}&limit=10000"),
    ] {
        let (s, body) = get("planner", &path).await;
        assert_eq!(s, 200, "{path}");
        assert!(has(&body, "contact canary"), "{path}: the event is there");
        assert!(!has(&body, phone), "{path}: the contact leaked");
    }
    let frames = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = next_json(&mut feed).await.unwrap();
            if m.to_string().contains("contact canary") {
                return m;
            }
        }
    })
    .await
    .expect("the event reaches the planner's feed");
    assert!(!frames.to_string().contains(phone), "{frames}");
}
