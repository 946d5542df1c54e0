#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]
//! The `citytwin` binary as an operator runs it: import errors, configuration layering, and
//! `serve --demo` from nothing to serving to a graceful stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_citytwin"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn import_reports_file_feature_and_reason_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.gpkg");
    let bad = dir.path().join("bad.geojson");
    std::fs::write(
        &bad,
        r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[118.7,32.0]}},
      {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1e400,32.0]}}]}"#,
    )
    .unwrap();
    let out = bin()
        .args(["import"])
        .arg(&bad)
        .args(["--layer", "pts", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.geojson") && err.contains("feature 2"),
        "{err}"
    );

    let out = bin()
        .args(["import"])
        .arg(&bad)
        .args(["--layer", "pts", "--crs", "EPSG:999999", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    // a CRS citytwin does not know goes to GDAL, which knows no EPSG:999999 either
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EPSG:999999"));

    // a bow-tie polygon: left out, and listed in a report
    let bow = dir.path().join("bow.geojson");
    std::fs::write(
        &bow,
        r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[118.7,32.0],[118.8,32.0],[118.8,32.1],[118.7,32.0]]]}},
      {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[118.7,32.0],[118.8,32.1],[118.8,32.0],[118.7,32.1],[118.7,32.0]]]}}]}"#,
    )
    .unwrap();
    let out = bin()
        .args(["import"])
        .arg(&bow)
        .args(["--layer", "pts", "--invalid", "skip", "--store"])
        .arg(&store)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(dir.path().join("pts.import-report.csv")).unwrap();
    assert!(
        report
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("2,,skipped,")),
        "{report}"
    );
    let out = bin()
        .args(["import"])
        .arg(&bow)
        .args(["--layer", "pts", "--invalid", "mend", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fail, skip or repair"));

    // a format read through GDAL, on a machine without GDAL: what to install
    let kml = dir.path().join("p.kml");
    std::fs::write(&kml, "<kml/>").unwrap();
    let out = bin()
        .args(["import"])
        .arg(&kml)
        .args(["--layer", "p", "--store"])
        .arg(&store)
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.kml") && err.contains("gdal-bin"), "{err}");

    let good = repo().join("fixtures/nanjing/districts.geojson");
    let out = bin()
        .args(["import"])
        .arg(&good)
        .args(["--layer", "districts", "--minzoom", "2", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["layers", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("districts") && text.contains("11 features") && text.contains("z2-14"),
        "{text}"
    );
}

#[test]
fn flags_override_env_which_overrides_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:7000\"\ncache_mb = 9\nstore = \"file.gpkg\"\nrefresh_secs = 30\n",
    )
    .unwrap();
    let out = bin()
        .args(["serve", "--print-config", "--config"])
        .arg(&cfg)
        .args(["--store", "flag.gpkg"])
        .env("CITYTWIN_STORE", "env.gpkg")
        .env("CITYTWIN_CACHE_MB", "11")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("store = \"flag.gpkg\""), "{text}");
    assert!(text.contains("cache_mb = 11"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:7000\""), "{text}");
    assert!(text.contains("refresh_secs = 30"), "{text}");
}

/// Stops the server when a failed assertion unwinds the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `citytwin serve --demo` in a folder, on a free port: the running server and its address.
fn serve_demo(dir: &Path, store: &Path) -> (KillOnDrop, String) {
    let mut child = bin()
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--store",
        ])
        .arg(store)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    // keep draining the log so the server never writes into a closed or full pipe
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(a) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(a.to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_mins(5)).ok();
    let addr = addr.expect("no start-up log line with addr");
    (child, addr)
}

/// The README's first command, on an empty folder: the demo store is created, the server
/// answers, and SIGTERM stops it cleanly.
#[test]
fn serve_demo_creates_the_store_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("data/demo.gpkg");
    let (mut child, addr) = serve_demo(dir.path(), &store);
    assert!(store.exists(), "demo store not created");
    let health = get(&addr, "/health");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("\"status\":\"ok\""),
        "{health}"
    );
    let page = get(&addr, "/");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("maplibre-gl"),
        "{page}"
    );
    // another process imports into the same store: the running server picks the layer up
    assert!(get(&addr, "/catalog/extra").starts_with("HTTP/1.1 404"));
    let out = bin()
        .args(["import"])
        .arg(repo().join("fixtures/nanjing/water.geojson"))
        .args(["--layer", "extra", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a layer nobody classified is not shared and not open: the public cannot see it
    std::thread::sleep(Duration::from_secs(6));
    assert!(get(&addr, "/catalog/extra").starts_with("HTTP/1.1 404"));
    let out = bin()
        .args([
            "catalog",
            "set",
            "extra",
            "--owner",
            "planning",
            "--share",
            "unconditional",
        ])
        .args([
            "--open",
            "unconditional",
            "--level",
            "1",
            "--update-frequency",
            "yearly",
        ])
        .args(["--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"open\":\"unconditional\""));
    let deadline = Instant::now() + Duration::from_mins(1);
    while !get(&addr, "/catalog/extra").starts_with("HTTP/1.1 200") {
        assert!(
            Instant::now() < deadline,
            "the server never saw the imported layer"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // streams that never end by themselves: server-sent events and a WebSocket, open
    use std::io::{Read, Write};
    let open = |request: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_mins(1))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        (s, String::from_utf8_lossy(&head).into_owned())
    };
    let (mut sse, head) = open("GET /live/sse HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head, "HTTP/1.1 200", "server-sent events");
    let (mut ws, head) = open(
        "GET /live HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(head, "HTTP/1.1 101", "WebSocket");
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // the server ends its streams and exits instead of waiting on them (a bound, not a
    // timing: a server that waited would never exit)
    let deadline = Instant::now() + Duration::from_mins(2);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running with open streams after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    // both streams were closed (read to their end, not cut by the read timeout)
    for (name, s) in [("sse", &mut sse), ("ws", &mut ws)] {
        let mut rest = Vec::new();
        let read = s.read_to_end(&mut rest);
        assert!(
            read.is_ok()
                || read
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{name}: {read:?}"
        );
    }
}

/// Import, list, publish and drop against PostGIS, exactly as with the GeoPackage.
#[test]
fn import_layers_publish_and_drop_on_postgis() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, url) = rt
        .block_on(citytwin_city::testing::fresh_postgis())
        .unwrap();
    let run = |args: &[&str]| {
        let out = bin().args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let districts = repo().join("fixtures/nanjing/districts.geojson");
    let d = districts.to_str().unwrap();
    let (ok, _, err) = run(&["import", d, "--layer", "districts", "--store", &url]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["layers", "--store", &url]);
    assert!(ok, "{err}");
    assert!(
        out.contains("districts") && out.contains("11 features"),
        "{out}"
    );

    // a bad file names itself and changes nothing
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.geojson");
    std::fs::write(&bad, r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[118,32],[119,33]]]}}]}"#).unwrap();
    let (ok, _, err) = run(&[
        "import",
        bad.to_str().unwrap(),
        "--layer",
        "districts",
        "--store",
        &url,
    ]);
    assert!(!ok && err.contains("bad.geojson"), "{err}");
    let (_, out, _) = run(&["layers", "--store", &url]);
    assert!(out.contains("11 features"), "{out}");

    // a table of the city's own, published under a layer name
    let schema = store.schema().to_owned();
    rt.block_on(async {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.wells (id int8 PRIMARY KEY, depth float8, geom geometry(Point, 4490))"
        ))
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO {schema}.wells VALUES (7, 12.5, ST_SetSRID(ST_MakePoint(118.8, 32.05), 4490))"
        ))
        .execute(store.pool())
        .await
        .unwrap();
    });
    let table = format!("{schema}.wells");
    let (ok, _, err) = run(&["publish", &table, "--layer", "wells", "--store", &url]);
    assert!(ok, "{err}");
    let (_, out, _) = run(&["layers", "--store", &url]);
    assert!(out.contains("wells") && out.contains("1 features"), "{out}");
    let (ok, _, err) = run(&["publish", "nosuch", "--layer", "x", "--store", &url]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    let gpkg = dir.path().join("s.gpkg");
    let (ok, _, err) = run(&[
        "publish",
        &table,
        "--layer",
        "wells",
        "--store",
        gpkg.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("PostGIS"), "{err}");
    let (ok, _, err) = run(&["drop", "--layer", "wells", "--store", &url]);
    assert!(ok, "{err}");
    let (_, out, _) = run(&["layers", "--store", &url]);
    assert!(!out.contains("wells"), "{out}");

    // the printed configuration never shows a password
    let (ok, out, _) = run(&[
        "serve",
        "--store",
        "postgres://ct:s3cret@db/city",
        "--print-config",
    ]);
    assert!(
        ok && out.contains("ct:***@db") && !out.contains("s3cret"),
        "{out}"
    );
}

/// The data bureau at the command line: a layer imported with its catalogue entry (personal
/// fields, shared on conditions), a grant asked for, approved on a shorter term, revoked; a
/// refused request; the objections list; every step in the audit log, whose chain holds.
#[test]
fn grants_are_asked_approved_and_revoked_at_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.gpkg");
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let calls = repo().join("fixtures/nanjing/hotline.geojson");
    let (ok, _, err) = run(&[
        "import",
        calls.to_str().unwrap(),
        "--layer",
        "calls",
        "--owner",
        "ops",
        "--share",
        "conditional",
        "--open",
        "not-open",
        "--level",
        "2",
        "--personal",
        "reporter=name,phone=phone",
        "--precision",
        "50",
    ]);
    assert!(ok, "{err}");
    // a personal field that is not the layer's is refused
    let (ok, _, err) = run(&["catalog", "set", "calls", "--personal", "nope=remove"]);
    assert!(!ok && err.contains("nope"), "{err}");
    let (_, shown, _) = run(&["catalog", "show", "calls"]);
    assert!(
        shown.contains("\"phone\"") && shown.contains("precision"),
        "{shown}"
    );
    let until = |days: i64| {
        let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    };
    let field = |json: &str, key: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        v[key].as_str().unwrap_or_default().to_owned()
    };
    let (ok, asked, err) = run(&[
        "grants",
        "request",
        "--layer",
        "calls",
        "--department",
        "planning",
        "--purpose",
        "noise study",
        "--until",
        &until(30),
        "--fields",
        "category,received",
    ]);
    assert!(ok, "{err}");
    assert_eq!(field(&asked, "status"), "requested");
    let id = field(&asked, "id");
    let (ok, approved, err) = run(&["grants", "approve", &id, "--until", &until(60)]);
    assert!(!ok && err.contains("lengthen"), "{approved} {err}");
    let (ok, approved, err) = run(&[
        "grants",
        "approve",
        &id,
        "--until",
        &until(10),
        "--note",
        "study only",
    ]);
    assert!(ok, "{err}");
    assert_eq!(field(&approved, "status"), "approved");
    let (_, listed, _) = run(&["grants", "list", "--status", "approved"]);
    assert!(listed.contains(&id), "{listed}");
    let (ok, revoked, err) = run(&["grants", "revoke", &id, "--reason", "study done"]);
    assert!(ok, "{err}");
    assert_eq!(field(&revoked, "status"), "revoked");
    let (_, second, _) = run(&[
        "grants",
        "request",
        "--layer",
        "calls",
        "--department",
        "planning",
        "--purpose",
        "again",
        "--until",
        &until(5),
    ]);
    let id2 = field(&second, "id");
    let (ok, refused, _) = run(&["grants", "refuse", &id2, "--reason", "not needed"]);
    assert!(ok);
    assert_eq!(field(&refused, "status"), "refused");
    let (ok, _, err) = run(&["grants", "approve", &id2]);
    assert!(!ok && err.contains("refused"), "{err}");
    // a layer not shared on conditions cannot be asked for
    let (ok, _, _) = run(&[
        "grants",
        "request",
        "--layer",
        "nope",
        "--department",
        "planning",
        "--purpose",
        "x",
        "--until",
        &until(5),
    ]);
    assert!(!ok);
    let (ok, none, err) = run(&["objections", "list", "--overdue"]);
    assert!(ok && none.trim().is_empty(), "{none} {err}");
    // every step recorded, the chain intact
    let (_, log, _) = run(&["audit", "show"]);
    for action in [
        "grant.request",
        "grant.approve",
        "grant.revoke",
        "grant.refuse",
    ] {
        assert!(log.contains(action), "{action} not in the audit log: {log}");
    }
    let (ok, _, err) = run(&["audit", "verify"]);
    assert!(ok, "{err}");
}

/// The body of a GET (no compression asked for).
fn get_bytes(addr: &str, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, out[split + 4..].to_vec())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn export(store: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .arg("export")
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

/// `citytwin export`: PMTiles and MBTiles archives of the server's own tiles, read back with
/// real readers (the `pmtiles` Python package, MapLibre GL JS with the `pmtiles` protocol in
/// Chromium, GDAL), only of layers the exporting principal may read, with provenance, and
/// resumed after a kill.
#[test]
fn export_writes_archives_that_real_readers_read_as_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("data/demo.gpkg");
    let (server, addr) = serve_demo(dir.path(), &store);
    let layers = "districts,roads,water";
    let bbox = "118.70,31.98,118.90,32.10";
    let pm = dir.path().join("city.pmtiles");
    let out = export(
        &store,
        &[
            "--format",
            "pmtiles",
            "--layers",
            layers,
            "--bbox",
            bbox,
            "--zooms",
            "9-12",
            "--out",
            pm.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["written"].as_u64().unwrap() > 10, "{summary}");
    assert!(!dir.path().join("city.pmtiles.part").exists());
    // the pmtiles package reads every tile, and each is the server's tile, byte for byte
    let read = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("server/tests/read_pmtiles.py"))
        .arg(&pm)
        .output()
        .expect("scripts/setup-python makes .venv");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let archive: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    let tiles = archive["tiles"].as_object().unwrap();
    assert_eq!(tiles.len() as u64, summary["written"].as_u64().unwrap());
    assert_eq!(
        archive["header"]["tile_type"], "MVT",
        "{}",
        archive["header"]
    );
    assert_eq!(archive["header"]["min_zoom"], 9);
    assert_eq!(archive["header"]["max_zoom"], 12);
    let metadata = &archive["metadata"];
    assert!(
        metadata["attribution"]
            .as_str()
            .unwrap()
            .contains("Sources:"),
        "{metadata}"
    );
    let names: Vec<&str> = metadata["vector_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["districts", "roads", "water"]);
    for (zxy, hash) in tiles {
        let (status, body) = get_bytes(&addr, &format!("/tiles/{layers}/{zxy}.mvt"));
        assert_eq!(status, 200, "{zxy}");
        assert_eq!(&sha256(&body), hash, "tile {zxy} differs from the server's");
    }
    // MapLibre GL JS reads it over range requests, as from a CDN
    let shown = Command::new("node")
        .arg(repo().join("web/tests/pmtiles.mjs"))
        .arg(&pm)
        .args(["118.79", "32.05", "11", layers])
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(
        shown["counts"]["districts"].as_u64().unwrap() > 0,
        "{shown}"
    );
    assert!(shown["counts"]["roads"].as_u64().unwrap() > 0, "{shown}");
    assert!(shown["ranges"].as_u64().unwrap() > 1, "{shown}");

    // MBTiles, stopped with kill -9 midway and resumed: GDAL reads the result
    let mb = dir.path().join("city.mbtiles");
    let part = dir.path().join("city.mbtiles.part");
    let mb_args = [
        "--format",
        "mbtiles",
        "--layers",
        layers,
        "--bbox",
        bbox,
        "--zooms",
        "9-16",
        "--jobs",
        "1",
        "--out",
        mb.to_str().unwrap(),
    ];
    let mut child = bin()
        .arg("export")
        .args(mb_args)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(3);
    let mut stopped = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let checkpoint = Command::new("sqlite3")
            .arg(&part)
            .arg("SELECT value FROM metadata WHERE name = 'citytwin.export.done'")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        if checkpoint.is_some() {
            let _ = child.kill();
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    assert!(stopped, "the export was never seen at a checkpoint");
    assert!(!mb.exists(), "the archive appeared before it was whole");
    let out = export(&store, &mb_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(resumed["resumed"].as_u64().unwrap() > 0, "{resumed}");
    assert!(!part.exists());
    let info = Command::new("ogrinfo")
        .args(["-ro", "-so", "-al"])
        .arg(&mb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    for l in ["districts", "roads", "water"] {
        assert!(info.contains(&format!("Layer name: {l}")), "{info}");
    }
    // every tile of the resumed archive is the server's
    let list = Command::new("sqlite3")
        .arg(&mb)
        .arg("SELECT zoom_level, tile_column, tile_row, hex(tile_data) FROM tiles WHERE zoom_level = 14 LIMIT 20")
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.lines().count() > 0);
    for line in list.lines() {
        let parts: Vec<&str> = line.split('|').collect();
        let (z, x, row): (u32, u64, u64) = (
            parts[0].parse().unwrap(),
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
        );
        let y = (1u64 << z) - 1 - row;
        let gz: Vec<u8> = (0..parts[3].len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&parts[3][i..i + 2], 16).unwrap())
            .collect();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        let (_, body) = get_bytes(&addr, &format!("/tiles/{layers}/{z}/{x}/{y}.mvt"));
        assert_eq!(sha256(&raw), sha256(&body), "tile {z}/{x}/{y}");
    }
    // a layer the public may not read is not exported, and nothing is written
    let refused = dir.path().join("buildings.pmtiles");
    let out = export(
        &store,
        &[
            "--format",
            "pmtiles",
            "--layers",
            "buildings",
            "--zooms",
            "14",
            "--out",
            refused.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not export"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!refused.exists());
    drop(server);
}
