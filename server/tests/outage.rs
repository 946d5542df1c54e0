#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! PostgreSQL goes away and comes back under a running `citytwin serve`: tiles held in memory
//! and tiles in the cache keep being served, `/health` reports the database down, tiles only
//! the database can make are 503 problems (never a hang), and once PostgreSQL is back the
//! server reconnects by itself.
//!
//! This stops the local PostgreSQL cluster (Debian's `pg_ctlcluster 15 main`), so it is the
//! only test in its binary: cargo runs test binaries one after another, so no other test is
//! using the database meanwhile. The cluster is restarted whatever happens.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pg_ctlcluster(action: &str) {
    let out = Command::new("pg_ctlcluster")
        .args(["15", "main", action])
        .output()
        .expect("pg_ctlcluster (Debian postgresql-common) must be installed: run scripts/setup-test-deps");
    assert!(
        out.status.success(),
        "pg_ctlcluster 15 main {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the cluster again when dropped, even after a failed assertion.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("pg_ctlcluster")
            .args(["15", "main", "start"])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn serving_survives_a_database_outage_and_reconnects() {
    let (_store, url) = citytwin_city::testing::fresh_postgis().await.unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let keys = tempfile::tempdir().unwrap();
    let audit_key = keys.path().join("audit.key");
    let _server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_citytwin"))
            .env("CITYTWIN_AUDIT_KEY", &audit_key)
            .args(["serve", "--demo", "--store", &url, "--listen", &addr])
            .args(["--store-tiled", "buildings", "--refresh-secs", "1"])
            .arg("--fixtures")
            .arg(repo.join("fixtures/nanjing"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{addr}");
    let public = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let health = |http: reqwest::Client, base: String| async move {
        let r = http.get(format!("{base}/health")).send().await.ok()?;
        r.json::<Value>().await.ok()
    };
    wait_until("the server to start", Duration::from_mins(2), || {
        let (h, b) = (public.clone(), base.clone());
        async move { health(h, b).await.is_some() }
    })
    .await;
    // buildings are shared between departments: a planning department's key reads them
    let made = Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .env("CITYTWIN_AUDIT_KEY", &audit_key)
        .args([
            "keys", "create", "--store", &url, "--name", "outage", "--roles", "reporter",
        ])
        .args(["--department", "planning"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .default_headers(headers)
        .build()
        .unwrap();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    let h = health(http.clone(), base.clone()).await.unwrap();
    assert_eq!(h["store"]["status"], "up", "{h}");
    // the kind of store, never its address
    assert_eq!(h["store"]["backend"], "postgis", "{h}");

    // z15 over Xinjiekou: buildings come from ST_AsMVT, roads from memory
    let cached_db = format!("{base}/tiles/buildings/15/27196/13303.mvt");
    let uncached_db = format!("{base}/tiles/buildings/15/27197/13302.mvt");
    assert_eq!(status(cached_db.clone()).await, 200);

    let _restart = RestartOnDrop;
    pg_ctlcluster("stop");
    wait_until(
        "/health to report the store down",
        Duration::from_secs(30),
        || {
            let (h, b) = (http.clone(), base.clone());
            async move {
                health(h, b)
                    .await
                    .is_some_and(|h| h["store"]["status"] == "down" && h["status"] == "degraded")
            }
        },
    )
    .await;
    // memory layers answer, cached or not
    for (z, x, y) in [(14, 13598, 6650), (14, 13597, 6651), (12, 3399, 1662)] {
        assert_eq!(
            status(format!("{base}/tiles/roads,districts/{z}/{x}/{y}.mvt")).await,
            200
        );
    }
    assert_eq!(status(format!("{base}/catalog")).await, 200);
    // the cache answers what it holds
    assert_eq!(status(cached_db.clone()).await, 200);
    // what only the database can make is a 503 problem, quickly
    let resp = http.get(&uncached_db).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    pg_ctlcluster("start");
    wait_until(
        "/health to report the store up again",
        Duration::from_mins(1),
        || {
            let (h, b) = (http.clone(), base.clone());
            async move {
                health(h, b)
                    .await
                    .is_some_and(|h| h["store"]["status"] == "up")
            }
        },
    )
    .await;
    assert_eq!(status(uncached_db).await, 200);
}
