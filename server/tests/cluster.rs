#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! Several instances: two `citytwin serve` processes on one PostGIS schema (the second
//! reading from its streaming replica) and one `nats-server` with JetStream, all on loopback. One test, its steps in order (the last
//! kills the writer): writes through either instance reach the other's feed; imports, grants
//! of keys and revocations made through one are taken up by the other at once; the stream
//! survives a NATS restart; and when the writer is killed with -9 in the middle of a burst,
//! the other takes over with every acknowledged write and a feed without gaps or repeats.

mod common;

use common::{Child, OPERATOR, free_port, repo};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A security admin's key (made straight in the store: the command line gives that role
/// only to people signed in through the identity provider).
const ADMIN: &str =
    "ctk_kclustersec_fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

async fn admin_key(store: &dyn citytwin_city::Store) {
    use citytwin_city::access::Role;
    let secret = ADMIN.rsplit('_').next().unwrap();
    store
        .put_key(&citytwin_city::keys::ApiKey {
            id: "kclustersec".into(),
            name: "cluster security admin".into(),
            hash: citytwin_city::keys::secret_hash(secret),
            roles: [Role::SecurityAdmin].into_iter().collect(),
            department: None,
            territory: None,
            sensors: None,
            created_at: 0,
            created_by: "test".into(),
            expires_at: citytwin_city::live::ts::now() + 86_400_000,
            revoked_at: None,
        })
        .await
        .unwrap();
}

fn nats_bin() -> &'static str {
    if Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    }
}

fn start_nats(port: u16, dir: &Path) -> Child {
    let child = Command::new(nats_bin())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (scripts/setup-test-deps installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Child(child)
}

struct Instance {
    base: String,
    child: Child,
}

fn start_instance(store: &str, read: Option<&str>, nats: u16, dir: &Path, name: &str) -> Instance {
    let port = free_port();
    // the live layers classified as the demo classifies them
    let config = dir.join("citytwin.toml");
    if !config.exists() {
        let catalog = std::fs::read_to_string(repo().join("demo/catalog.toml")).unwrap();
        let live: String = catalog
            .split("\n[")
            .filter(|s| {
                ["events]", "sensors]", "units]"]
                    .iter()
                    .any(|l| s.starts_with(l))
            })
            .map(|s| format!("\n[catalog.{s}\n"))
            .collect();
        std::fs::write(&config, live).unwrap();
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .args(["serve", "--store", store, "--config"])
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--nats")
        .arg(format!("nats://127.0.0.1:{nats}"))
        // only the bus may tell an instance what another changed
        .args(["--refresh-secs", "0", "--audit-key"])
        .arg(dir.join("audit.key"))
        .arg("--web-dir")
        .arg(repo().join("web"))
        .arg("--styles-dir")
        .arg(repo().join("styles"))
        .args(read.map(|r| ["--store-read", r]).into_iter().flatten())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Instance {
        base: format!("http://127.0.0.1:{port}"),
        child: Child(child),
    }
}

fn http() -> reqwest::Client {
    common::client_with(OPERATOR)
}

async fn health(base: &str) -> Option<Value> {
    let r = reqwest::get(format!("{base}/health")).await.ok()?;
    r.json().await.ok()
}

/// Waits until an instance answers, and (when asked) until it writes or forwards.
async fn wait_ready(base: &str, writes: Option<bool>) {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(h) = health(base).await
            && writes.is_none_or(|w| h["writes"] == json!(w))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} never became ready (writes: {writes:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = http()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = http().get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn feed(base: &str, query: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/live?{query}", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {OPERATOR}").parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next change on a feed (hellos skipped); `None` when the feed ends or is silent 20 s.
async fn next_change(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .ok()??
            .ok()?;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v.get("kind").is_some() {
                return Some(v);
            }
        }
    }
}

async fn register_sensor(base: &str, id: &str) {
    let (status, body) = post(
        base,
        "/sensors",
        &json!({"id": id, "type": "water-level", "unit": "m", "lon": 118.78, "lat": 32.04}),
    )
    .await;
    assert!(status < 300, "registering {id} on {base}: {status} {body}");
}

/// Readings of a sensor as an instance has them.
async fn readings(base: &str, id: &str) -> Vec<f64> {
    let (status, body) = get(base, &format!("/sensors/{id}/readings")).await;
    assert_eq!(status, 200, "{body}");
    body["readings"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["value"].as_f64()).collect())
        .unwrap_or_default()
}

/// A command run beside the cluster (with the cluster's audit key, telling it what changed).
fn cli(store: &str, nats: u16, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .args(args)
        .args(["--store", store])
        .env("CITYTWIN_NATS", format!("nats://127.0.0.1:{nats}"))
        .env("CITYTWIN_AUDIT_KEY", dir.join("audit.key"))
        .output()
        .unwrap()
}

fn parks(dir: &Path, n: usize) -> PathBuf {
    let features: Vec<Value> = (0..n)
        .map(|i| {
            let x = 118.70 + i as f64 * 0.01;
            json!({"type": "Feature", "properties": {"name": format!("park {i}")},
                "geometry": {"type": "Polygon", "coordinates": [[[x, 32.0], [x + 0.005, 32.0], [x + 0.005, 32.005], [x, 32.005], [x, 32.0]]]}})
        })
        .collect();
    let path = dir.join(format!("parks-{n}.geojson"));
    std::fs::write(
        &path,
        json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
    .unwrap();
    path
}

fn import_parks(store: &str, nats: u16, dir: &Path, file: &Path) {
    let out = cli(
        store,
        nats,
        dir,
        &[
            "import",
            file.to_str().unwrap(),
            "--layer",
            "cl_parks",
            "--owner",
            "ops",
            "--share",
            "unconditional",
            "--open",
            "unconditional",
            "--level",
            "1",
        ],
    );
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls until `f` holds, for at most `secs` seconds (the assertion names what never came);
/// says how long it took (`--nocapture` shows it).
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{} ms until not \"{what}\"", started.elapsed().as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_one_writer_one_bus() {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = citytwin_city::testing::fresh_postgis().await.unwrap();
    common::test_keys(store.as_ref()).await;
    admin_key(store.as_ref()).await;
    let nats_port = free_port();
    let nats_dir = dir.path().join("nats");
    let mut nats = start_nats(nats_port, &nats_dir);
    let a = start_instance(&url, None, nats_port, dir.path(), "a");
    wait_ready(&a.base, Some(true)).await;
    // B reads from the streaming replica (scripts/setup-postgis-replica)
    let replica = citytwin_city::testing::replica_url(store.schema());
    let b = start_instance(&url, Some(&replica), nats_port, dir.path(), "b");
    wait_ready(&b.base, Some(false)).await;

    // 1. written through A, followed on B: the feed, the state, the history
    let mut on_b = feed(&b.base, "layers=sensors").await;
    register_sensor(&a.base, "CL-A").await;
    for v in 0..20 {
        let (status, body) = post(&a.base, "/sensors/CL-A/readings", &json!({"value": v})).await;
        assert!(status < 300, "{status} {body}");
    }
    let mut seqs = Vec::new();
    let mut values = Vec::new();
    while values.len() < 20 {
        let c = next_change(&mut on_b)
            .await
            .expect("B's feed carries A's writes");
        if c["id"] == "CL-A" {
            seqs.push(c["seq"].as_u64().unwrap());
            if c["kind"] == "reading" {
                values.push(c["value"].as_f64().unwrap());
            }
        }
    }
    assert_eq!(values, (0..20).map(f64::from).collect::<Vec<_>>());
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // written through B (forwarded to A): B shows it the moment it answers
    let (status, body) = post(&b.base, "/sensors/CL-A/readings", &json!({"value": 99})).await;
    assert!(status < 300, "{status} {body}");
    let (_, sensor) = get(&b.base, "/sensors/CL-A").await;
    assert_eq!(sensor["latest"]["value"], json!(99.0), "{sensor}");
    let (status, problem) = post(&b.base, "/sensors/NOPE/readings", &json!({"value": 1})).await;
    assert_eq!(
        status, 404,
        "the writer's refusal reaches B's client: {problem}"
    );
    assert_eq!(readings(&b.base, "CL-A").await.len(), 21);

    // 2. an import beside the cluster: B serves the new layer, then its new version
    import_parks(&url, nats_port, dir.path(), &parks(dir.path(), 3));
    let count = |base: String| async move {
        let (status, body) = get(&base, "/collections/cl_parks/items?limit=100").await;
        if status == 200 {
            body["features"].as_array().map_or(0, Vec::len)
        } else {
            0
        }
    };
    eventually(5, "B never served the imported layer", || async {
        count(b.base.clone()).await == 3
    })
    .await;
    let tile = |base: String| async move {
        let r = http()
            .get(format!("{base}/tiles/cl_parks/12/3398/1663.mvt"))
            .send()
            .await
            .unwrap();
        r.bytes().await.unwrap().len()
    };
    let before = tile(b.base.clone()).await;
    import_parks(&url, nats_port, dir.path(), &parks(dir.path(), 5));
    eventually(5, "B kept serving the old version", || async {
        count(b.base.clone()).await == 5
    })
    .await;
    assert_ne!(
        tile(b.base.clone()).await,
        before,
        "B's tile cache was stale"
    );
    // both instances' caches warmed for the parks
    let seeded = Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .args([
            "seed", "--url", &a.base, "--url", &b.base, "--layers", "cl_parks",
        ])
        .args([
            "--bbox",
            "118.69,31.99,118.75,32.01",
            "--zooms",
            "10-13",
            "--key",
            OPERATOR,
        ])
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let seeded: Value = serde_json::from_slice(&seeded.stdout).unwrap();
    assert!(seeded["ok"].as_u64().unwrap() >= 8, "{seeded}");
    assert_eq!(seeded["failed"], 0, "{seeded}");

    // 3. a key revoked through A is refused by B
    let made = cli(
        &url,
        nats_port,
        dir.path(),
        &["keys", "create", "--name", "cl", "--roles", "reporter"],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    let as_key = common::client_with(&key);
    let me = |base: String| {
        let c = as_key.clone();
        async move {
            c.get(format!("{base}/me"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    eventually(5, "B never knew the new key", || async {
        me(b.base.clone()).await == 200
    })
    .await;
    let r = common::client_with(ADMIN)
        .post(format!("{}/admin/keys/{key_id}/revoke", a.base))
        .json(&json!({"reason": "cluster test"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    eventually(5, "B still let the revoked key in", || async {
        me(b.base.clone()).await == 401
    })
    .await;

    // 4. NATS restarts mid-stream: B's feed goes on with nothing lost
    let mut on_b = feed(&b.base, "layers=sensors").await;
    register_sensor(&a.base, "CL-N").await;
    for v in 0..60 {
        if v == 20 {
            drop(nats);
            tokio::time::sleep(Duration::from_millis(500)).await;
            nats = start_nats(nats_port, &nats_dir);
        }
        let (status, body) = post(&a.base, "/sensors/CL-N/readings", &json!({"value": v})).await;
        assert!(status < 300, "{status} {body}");
    }
    let mut got = Vec::new();
    let mut last = 0;
    while got.len() < 60 {
        let c = next_change(&mut on_b)
            .await
            .expect("B's feed went on after NATS restarted");
        let seq = c["seq"].as_u64().unwrap();
        assert!(seq > last, "repeated or out of order: {seq} after {last}");
        last = seq;
        if c["id"] == "CL-N" && c["kind"] == "reading" {
            got.push(c["value"].as_f64().unwrap());
        }
    }
    assert_eq!(got, (0..60).map(f64::from).collect::<Vec<_>>());
    // forwarding works again once the bus is back
    eventually(15, "B could not forward after NATS restarted", || async {
        post(&b.base, "/sensors/CL-N/readings", &json!({"value": 100}))
            .await
            .0
            < 300
    })
    .await;

    // 5. the writer is killed in the middle of a burst
    let (_, h) = get(&a.base, "/health").await;
    assert_eq!(h["writes"], json!(true));
    let mut on_a = feed(&a.base, "").await;
    let acked: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    for s in ["CL-K1", "CL-K2"] {
        register_sensor(&a.base, s).await;
    }
    let bases = [a.base.clone(), b.base.clone()];
    let mut writers = Vec::new();
    for (w, sensor) in ["CL-K1", "CL-K2"].into_iter().enumerate() {
        let acked = Arc::clone(&acked);
        let bases = bases.clone();
        writers.push(tokio::spawn(async move {
            for v in 0..80 {
                let base = &bases[(v + w) % 2];
                let r = http()
                    .post(format!("{base}/sensors/{sensor}/readings"))
                    .json(&json!({"value": v}))
                    .timeout(Duration::from_secs(40))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    acked.lock().unwrap().push((sensor.to_owned(), v as f64));
                }
            }
        }));
    }
    eventually(60, "the burst never got going", || async {
        acked.lock().unwrap().len() >= 40
    })
    .await;
    let Instance {
        child: mut killed, ..
    } = a;
    Command::new("kill")
        .args(["-9", &killed.0.id().to_string()])
        .status()
        .unwrap();
    let _ = killed.0.wait();
    for w in writers {
        w.await.unwrap();
    }
    wait_ready(&b.base, Some(true)).await;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 40, "{}", acked.len());
    for sensor in ["CL-K1", "CL-K2"] {
        let have = readings(&b.base, sensor).await;
        for (_, v) in acked.iter().filter(|(s, _)| s == sensor) {
            assert!(
                have.contains(v),
                "acknowledged {sensor}={v} is lost: {have:?}"
            );
        }
    }
    // the feed client of the dead writer resumes on the survivor where it stopped
    let mut seen = Vec::new();
    while let Some(c) = next_change(&mut on_a).await {
        seen.push(c["seq"].as_u64().unwrap());
    }
    let resume = *seen.last().expect("the writer's feed carried changes");
    let mut on_b = feed(&b.base, &format!("since={resume}")).await;
    let (status, body) = post(&b.base, "/sensors/CL-K1/readings", &json!({"value": 1000})).await;
    assert!(status < 300, "the survivor writes: {status} {body}");
    loop {
        let c = next_change(&mut on_b)
            .await
            .expect("the survivor's feed carries everything after the resume point");
        seen.push(c["seq"].as_u64().unwrap());
        if c["id"] == "CL-K1" && c["value"].as_f64() == Some(1000.0) {
            break;
        }
    }
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a repeat across the failover: {seen:?}"
    );
    drop(b.child);
    drop(nats);
}
