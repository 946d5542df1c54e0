//! The live twin end to end: events round their closed loop, readings and alarms, units and
//! dispatch, the change feed over WebSocket and SSE with resume, live layers fresh on the next
//! request, bad input refused with nothing stored, MQTT through a real Mosquitto broker, and
//! acknowledged writes surviving `kill -9`.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use common::{Child, cli_key, client, client_with, free_port, server};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Inside grid 320102001001001 (玄武区).
const HERE: (f64, f64) = (118.7800, 32.0932);

async fn post(path: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", server().base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(
            ct.as_deref(),
            Some("application/problem+json"),
            "{path}: {v}"
        );
    }
    (status, v)
}

async fn get(path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", server().base))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn step(id: i64, action: &str, note: &str) -> (u16, Value) {
    post(
        &format!("/events/{id}/transitions"),
        &json!({ "action": action, "note": note }),
    )
    .await
}

#[tokio::test]
async fn an_event_goes_round_its_closed_loop_over_http() {
    let (status, e) = post(
        "/events",
        &json!({ "source": "hotline", "category": "pipe-burst", "severity": "serious",
            "description": "water gushing from the pavement", "lon": HERE.0, "lat": HERE.1,
            "media": ["https://media.example.org/1.jpg"], "reporter": "12345 caller" }),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(e["place"]["grid"]["code"], "320102001001001");
    assert_eq!(e["place"]["district"]["code"], "320102");
    assert_eq!(e["owner"]["code"], "320102001");
    assert_eq!(e["state"], "reported");
    assert_eq!(e["allowed"], json!(["accept", "reject"]));
    assert_eq!(e["overdue"], false);
    let id = e["id"].as_i64().unwrap();
    // a second call about the same burst pipe, 30 m away, joins it
    let (status, dup) = post(
        "/events",
        &json!({ "source": "citizen", "category": "pipe-burst", "description": "burst pipe",
            "lon": HERE.0 + 0.0003, "lat": HERE.1 }),
    )
    .await;
    assert_eq!(status, 200, "{dup}");
    assert_eq!(dup["merged"], true);
    assert_eq!(dup["id"], id);
    assert_eq!(dup["duplicates"].as_array().unwrap().len(), 1);
    // an illegal step: 409 naming the state
    let (status, p) = step(id, "close", "").await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["state"], "reported");
    assert_eq!(p["allowed"], json!(["accept", "reject"]));
    // a step back needs a reason
    for a in ["accept", "dispatch"] {
        assert_eq!(step(id, a, "").await.0, 200);
    }
    let (status, p) = step(id, "return", "").await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(step(id, "return", "wrong street").await.0, 200);
    for a in ["dispatch", "start", "feedback", "verify", "close"] {
        let (status, e) = step(id, a, "").await;
        assert_eq!(status, 200, "{a}: {e}");
    }
    let (_, e) = get(&format!("/events/{id}")).await;
    assert_eq!(e["state"], "closed");
    let history: Vec<&str> = e["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [
            "report", "merged", "accept", "dispatch", "return", "dispatch", "start", "feedback",
            "verify", "close"
        ]
    );
    assert_eq!(e["history"][4]["note"], "wrong street");
    // the actor is whoever was signed in, never a field of the body
    assert_eq!(
        e["history"][4]["actor"],
        "ktestoperator (key:ktestoperator)"
    );
    let (status, _) = get("/events/999999").await;
    assert_eq!(status, 404);
    let (_, list) = get("/events?state=closed&grid=320102").await;
    assert!(
        list["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id)
    );
}

#[tokio::test]
async fn dispatch_sends_the_nearest_available_units_and_a_major_event_commands() {
    for (id, kind, dlon) in [
        ("DS-P1", "pump", 0.010),
        ("DS-P2", "pump", 0.001),
        ("DS-T1", "team", 0.0005),
    ] {
        let (status, u) = post(
            "/units",
            &json!({ "id": id, "name": id, "type": kind, "lon": HERE.0 + dlon, "lat": HERE.1 }),
        )
        .await;
        assert_eq!(status, 201, "{u}");
    }
    let (_, e) = post(
        "/events",
        &json!({ "source": "inspector", "category": "waterlogging", "description": "underpass flooded",
            "lon": HERE.0, "lat": HERE.1 + 0.0001 }),
    )
    .await;
    let id = e["id"].as_i64().unwrap();
    let (_, near) = get(&format!("/events/{id}/nearest-units?type=pump&n=5")).await;
    let ids: Vec<&str> = near["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .filter(|u| u.starts_with("DS-"))
        .collect();
    assert_eq!(ids, ["DS-P2", "DS-P1"]);
    assert!(near["units"][0]["distance_m"].as_f64().unwrap() < 150.0);
    let (status, e) = post(
        &format!("/events/{id}/units"),
        &json!({ "units": ["DS-P2"] }),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["units"], json!(["DS-P2"]));
    let (_, u) = get("/units/DS-P2").await;
    assert_eq!(u["status"], "busy");
    // busy now: another event cannot have it
    let (_, other) = post(
        "/events",
        &json!({ "source": "hotline", "category": "fallen-tree", "lon": HERE.0, "lat": HERE.1 }),
    )
    .await;
    let other_id = other["id"].as_i64().unwrap();
    let (status, p) = post(
        &format!("/events/{other_id}/units"),
        &json!({ "units": ["DS-P2"] }),
    )
    .await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["state"], "busy");
    // unified command over both events, with the team
    let (status, major) = post(
        &format!("/events/{id}/command"),
        &json!({ "events": [other_id], "units": ["DS-T1"] }),
    )
    .await;
    assert_eq!(status, 200, "{major}");
    assert_eq!(major["command"]["events"], json!([other_id]));
    assert_eq!(major["severity"], "major");
    let (_, o) = get(&format!("/events/{other_id}")).await;
    assert_eq!(o["major"], id);
    // closing releases the units
    assert_eq!(step(id, "reject", "test over").await.0, 200);
    let (_, u) = get("/units/DS-P2").await;
    assert_eq!(u["status"], "available");
    let (status, u) = post(
        "/units/DS-T1/position",
        &json!({ "lon": HERE.0 + 0.002, "lat": HERE.1 }),
    )
    .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["place"]["district"]["code"], "320102");
}

#[tokio::test]
async fn readings_raise_one_alarm_event_and_history_downsamples() {
    let (status, s) = post(
        "/sensors",
        &json!({ "id": "RA-WL-1", "type": "water-level", "lon": HERE.0, "lat": HERE.1, "unit": "m",
            "thresholds": { "high": 0.5 } }),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let t0 = (citytwin_city::live::ts::now() / 60_000 - 20) * 60_000;
    let at = |i: i64| citytwin_city::live::ts::format(t0 + i * 20_000);
    let readings: Vec<Value> = (0..30)
        .map(|i| json!({ "sensor": "RA-WL-1", "value": if (10..15).contains(&i) { 0.8 } else { 0.2 }, "at": at(i) }))
        .collect();
    let (status, r) = post("/readings", &json!({ "readings": readings })).await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["accepted"], 30);
    assert_eq!(r["alarms_raised"], 1);
    assert_eq!(r["alarms_cleared"], 1);
    let (_, events) = get("/events?category=water-level-alarm&limit=10000").await;
    let mine: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sensor"] == "RA-WL-1")
        .collect();
    assert_eq!(mine.len(), 1, "one event per alarm, not one per reading");
    let history: Vec<&str> = mine[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["report", "alarm-cleared"]);
    let (status, one) = post("/sensors/RA-WL-1/readings", &json!({ "value": 0.3 })).await;
    assert_eq!(status, 202, "{one}");
    let (_, s) = get("/sensors/RA-WL-1").await;
    assert_eq!(s["latest"]["value"], 0.3);
    let (status, h) = get(&format!(
        "/sensors/RA-WL-1/readings?from={}&to={}&interval=1m",
        at(0),
        at(30)
    ))
    .await;
    assert_eq!(status, 200, "{h}");
    let buckets = h["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 10);
    assert_eq!(buckets[0]["count"], 3);
    assert_eq!(buckets[3]["max"], 0.8);
    assert_eq!(buckets[3]["min"], 0.2);
    let (_, raw) = get(&format!(
        "/sensors/RA-WL-1/readings?from={}&to={}",
        at(0),
        at(3)
    ))
    .await;
    assert_eq!(raw["readings"].as_array().unwrap().len(), 3);
    let (status, _) = get("/sensors/RA-WL-1/readings?interval=5x").await;
    assert_eq!(status, 400);
    let (status, _) = get("/sensors/NOPE/readings").await;
    assert_eq!(status, 404);
}

/// The batch the README promises: 100,000 readings taken whole; one more is a 400 naming the
/// cap; a body past the route's limit is a 413 problem (not axum's plain text), nothing taken.
#[tokio::test]
async fn a_batch_of_100000_readings_is_taken_and_past_it_refused() {
    let (status, s) = post(
        "/sensors",
        &json!({ "id": "BIG-1", "type": "flow", "lon": HERE.0, "lat": HERE.1, "unit": "m3/s" }),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    let t0 = citytwin_city::live::ts::now() - 200_000_000;
    let batch = |n: i64| {
        let readings: Vec<Value> = (0..n)
            .map(|i| json!({ "sensor": "BIG-1", "value": i, "at": citytwin_city::live::ts::format(t0 + i * 1000) }))
            .collect();
        json!({ "readings": readings })
    };
    let (status, r) = post("/readings", &batch(100_000)).await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["accepted"], 100_000);
    let (status, r) = post("/readings", &batch(100_001)).await;
    assert_eq!(status, 400, "{r}");
    assert!(r["detail"].as_str().unwrap().contains("100000"), "{r}");
    // 25 MiB of JSON: past the route's 24 MiB
    let pad = "x".repeat(25 << 20);
    let resp = client()
        .post(format!("{}/readings", server().base))
        .header("content-type", "application/json")
        .body(format!(r#"{{"readings": [], "pad": "{pad}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let (_, history) = get("/sensors/BIG-1/readings?from=2000-01-01T00:00:00Z&limit=100000").await;
    assert_eq!(
        history["readings"].as_array().map(Vec::len),
        Some(100_000),
        "only the first batch was taken"
    );
}

#[tokio::test]
async fn bad_live_input_is_refused_and_nothing_is_stored() {
    post(
        "/sensors",
        &json!({ "id": "BAD-1", "type": "gas", "lon": HERE.0, "lat": HERE.1, "unit": "ppm" }),
    )
    .await;
    let seq = server().state.city.live_seq();
    let future = citytwin_city::live::ts::format(citytwin_city::live::ts::now() + 3_600_000);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/sensors/NOPE/readings",
            json!({ "value": 1.0 }),
            404,
            "NOPE",
        ),
        (
            "/readings",
            json!({ "readings": [{ "sensor": "BAD-1", "value": 1.0 }, { "sensor": "NOPE", "value": 1.0 }] }),
            400,
            "reading 1: unknown sensor",
        ),
        (
            "/readings",
            json!({ "readings": [{ "sensor": "BAD-1", "value": "NaN" }] }),
            400,
            "expected f64",
        ),
        (
            "/readings",
            json!({ "readings": [{ "sensor": "BAD-1", "value": 1.0, "at": future }] }),
            400,
            "future",
        ),
        (
            "/readings",
            json!({ "readings": [{ "sensor": "BAD-1", "value": 1.0, "at": "yesterday" }] }),
            400,
            "RFC 3339",
        ),
        (
            "/readings",
            json!({ "readings": [{ "sensor": "BAD-1", "valu": 1.0 }] }),
            400,
            "valu",
        ),
        (
            "/events",
            json!({ "source": "hotline", "category": "noise", "lon": 116.4, "lat": 39.9 }),
            400,
            "outside the city",
        ),
        (
            "/events",
            json!({ "source": "hotline", "category": "noise", "lon": f64::MAX, "lat": 32.0 }),
            400,
            "longitude",
        ),
        (
            "/events",
            json!({ "source": "pigeon", "category": "noise", "lon": HERE.0, "lat": HERE.1 }),
            400,
            "pigeon",
        ),
        (
            "/events",
            json!({ "source": "sensor", "category": "noise", "lon": HERE.0, "lat": HERE.1 }),
            400,
            "sensor alarms",
        ),
        (
            "/events",
            json!({ "source": "hotline", "category": "Noise!", "lon": HERE.0, "lat": HERE.1 }),
            400,
            "category",
        ),
        (
            "/events",
            json!({ "source": "citizen", "category": "noise", "lon": HERE.0, "lat": HERE.1, "media": ["javascript:alert(1)"] }),
            400,
            "media",
        ),
        (
            "/sensors",
            json!({ "id": "x/y", "type": "gas", "lon": HERE.0, "lat": HERE.1, "unit": "ppm" }),
            400,
            "sensor id",
        ),
        (
            "/sensors",
            json!({ "id": "BAD-2", "type": "gas", "lon": HERE.0, "lat": HERE.1, "unit": "ppm", "thresholds": { "low": 5, "high": 1 } }),
            400,
            "low",
        ),
        (
            "/sensors",
            json!({ "id": "BAD-3", "type": "gas", "lon": 0.0, "lat": 0.0, "unit": "ppm" }),
            400,
            "outside the city",
        ),
        (
            "/units",
            json!({ "id": "BAD-U", "name": "u", "type": "pump", "lon": 121.5, "lat": 31.2 }),
            400,
            "outside the city",
        ),
        (
            "/units/NOPE/position",
            json!({ "lon": HERE.0, "lat": HERE.1 }),
            404,
            "NOPE",
        ),
        (
            "/events/1/transitions",
            json!({ "action": "teleport", "actor": "x" }),
            400,
            "teleport",
        ),
        (
            "/events/1/transitions",
            json!({ "action": "accept", "actor": "" }),
            400,
            "actor",
        ),
    ];
    for (path, body, want, says) in cases {
        let (status, p) = post(path, &body).await;
        assert_eq!(status, want, "{path} {body}: {p}");
        assert!(
            p["detail"].as_str().unwrap().contains(says),
            "{path} {body}: {p}"
        );
    }
    for (path, raw) in [
        ("/readings", "{\"readings\": ["),
        ("/sensors/BAD-1/readings", "{\"value\": 1e400}"),
        ("/sensors/BAD-1/readings", "{\"value\": NaN}"),
    ] {
        let resp = client()
            .post(format!("{}{path}", server().base))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{raw}");
    }
    // other tests write beside this one: none of what was written since may come from a
    // refused request
    for c in server()
        .state
        .city
        .changes_after(seq, 100_000)
        .await
        .unwrap()
    {
        let j = c.json();
        for marker in [
            "BAD-",
            "NOPE",
            "Noise!",
            "pigeon",
            "javascript:",
            "teleport",
        ] {
            assert!(!j.contains(marker), "a refused write changed the log: {j}");
        }
        assert!(
            !(c.entity == "BAD-1" && c.kind == "reading"),
            "a refused reading was stored: {j}"
        );
    }
    let (_, s) = get("/sensors/BAD-1").await;
    assert!(s.get("latest").is_none(), "{s}");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(query: &str) -> Ws {
    connect_as(common::OPERATOR, query).await.unwrap()
}

async fn connect_as(key: &str, query: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/live?{query}", server().base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

/// Open streams are capped per caller (100 by default, `[limits] streams_per_caller`): past
/// it a WebSocket, an SSE stream or a dashboard's MJPEG stream of the same key is a 429
/// problem naming the cap, with Retry-After; a stream that closes frees its place.
#[tokio::test]
async fn a_caller_holds_at_most_its_cap_of_streams() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let key = common::STREAMS;
    let base = &server().base;
    let mut open = Vec::new();
    for _ in 0..100 {
        open.push(connect_as(key, "layers=events").await.unwrap());
    }
    match connect_as(key, "layers=events").await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 429),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a 101st WebSocket was taken"),
    }
    let http = common::client_with(key);
    for path in ["/live/sse", "/dashboards/nanjing/stream?width=64&height=36"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 429, "{path}");
        assert!(r.headers().contains_key("retry-after"), "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let p: Value = r.json().await.unwrap();
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("limits.streams_per_caller")),
            "{p}"
        );
    }
    // another caller is not held back by this one's streams
    let other = connect("layers=events").await;
    drop(other);
    let mut one = open.pop().unwrap();
    one.close(None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = http.get(format!("{base}/live/sse")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            std::time::Instant::now() < deadline,
            "the closed WebSocket's place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("no message within 30 s")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn readings(sensor: &str, values: std::ops::Range<i32>) {
    let batch: Vec<Value> = values
        .map(|v| json!({ "sensor": sensor, "value": f64::from(v) }))
        .collect();
    let (status, r) = post("/readings", &json!({ "readings": batch })).await;
    assert_eq!(status, 202, "{r}");
}

#[tokio::test]
async fn the_feed_filters_and_resumes_after_a_reconnect_without_a_gap() {
    post(
        "/sensors",
        &json!({ "id": "FD-1", "type": "noise", "lon": HERE.0, "lat": HERE.1, "unit": "dB" }),
    )
    .await;
    // far away, in another district: filtered out by grid and bbox
    post(
        "/sensors",
        &json!({ "id": "FD-2", "type": "noise", "lon": 118.7845, "lat": 32.0415, "unit": "dB" }),
    )
    .await;
    let (_, s2) = get("/sensors/FD-2").await;
    assert_ne!(s2["place"]["street"]["code"], "320102001", "{s2}");
    let filter = "layers=sensors&kinds=reading&grid=320102001001001";
    let mut ws = connect(filter).await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    readings("FD-2", 0..3).await;
    readings("FD-1", 0..5).await;
    let mut last = 0;
    for v in 0..5 {
        let c = next(&mut ws).await;
        assert_eq!(
            (c["id"].as_str(), c["value"].as_f64()),
            (Some("FD-1"), Some(f64::from(v))),
            "{c}"
        );
        assert_eq!(c["grid"], "320102001001001");
        last = c["seq"].as_u64().unwrap();
    }
    ws.close(None).await.unwrap();
    // while disconnected
    readings("FD-1", 5..12).await;
    readings("FD-2", 0..3).await;
    let mut ws = connect(&format!("{filter}&since={last}")).await;
    assert_eq!(next(&mut ws).await["type"], "hello");
    readings("FD-1", 12..15).await;
    let mut seqs = Vec::new();
    for v in 5..15 {
        let c = next(&mut ws).await;
        assert_eq!(
            c["value"].as_f64(),
            Some(f64::from(v)),
            "gap or repeat at {v}: {c}"
        );
        seqs.push(c["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // the same over SSE, resumed with Last-Event-ID
    let resp = client()
        .get(format!(
            "{}/live/sse?layers=sensors&kinds=reading&bbox=118.77,32.08,118.79,32.10",
            server().base
        ))
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while text.matches("\"kind\":\"reading\"").count() < 10 && Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert!(ids.len() >= 11, "{text}");
    assert_eq!(
        ids[1],
        seqs[0].to_string(),
        "SSE resumed at the first missed change"
    );
    assert!(!text.contains("FD-2"));
    for (q, bad) in [
        ("layers=roads", "layers"),
        ("since=x", "since"),
        ("kinds=nope", "kinds"),
        ("grid=abc", "grid"),
    ] {
        let (status, p) = get(&format!("/live/sse?{q}")).await;
        assert_eq!(
            (status, p["parameter"].as_str()),
            (400, Some(bad)),
            "{q}: {p}"
        );
    }
}

#[tokio::test]
async fn live_layers_are_fresh_on_the_next_request_and_the_past_replays() {
    let (_, before) = get("/collections/events/items?limit=10000").await;
    let n = before["features"].as_array().unwrap().len();
    let tile = || async {
        let resp = client()
            .get(format!("{}/tiles/events/14/13597/6648.mvt", server().base))
            .send()
            .await
            .unwrap();
        resp.headers()
            .get("etag")
            .map(|e| e.to_str().unwrap().to_owned())
    };
    let etag_before = tile().await;
    let t = citytwin_city::live::ts::now();
    // times have millisecond resolution: the report must fall after `t`, not on it
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, e) = post(
        "/events",
        &json!({ "source": "department", "category": "illegal-construction", "lon": HERE.0 - 0.001, "lat": HERE.1 }),
    )
    .await;
    let id = e["id"].as_i64().unwrap();
    // other tests report beside this one: the new event is there, and nothing went
    let (_, after) = get("/collections/events/items?limit=10000").await;
    let features = after["features"].as_array().unwrap();
    assert!(features.len() > n, "{} after {n}", features.len());
    assert!(
        features.iter().any(|f| f["id"] == id),
        "event {id} is not served"
    );
    let (_, f) = get(&format!("/collections/events/items/{id}")).await;
    assert_eq!(f["properties"]["state"], "reported");
    assert_eq!(f["properties"]["category"], "illegal-construction");
    assert_ne!(tile().await, etag_before, "the tile changed with the layer");
    step(id, "accept", "").await;
    let (_, f) = get(&format!("/collections/events/items/{id}")).await;
    assert_eq!(f["properties"]["state"], "accepted");
    // the state as of before the report does not have it; the changes since do
    let at = citytwin_city::live::ts::format(t);
    let (_, then) = get(&format!("/live/state?at={at}")).await;
    assert!(
        !then["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id)
    );
    let (_, changes) = get(&format!("/live/changes?from={at}&limit=10000")).await;
    let mine: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["layer"] == "events" && c["id"].as_str().and_then(|s| s.parse().ok()) == Some(id)
        })
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(mine, ["event.reported", "event.transitioned"]);
    let (status, _) = get("/live/state?at=nonsense").await;
    assert_eq!(status, 400);
    let (_, tj) = get("/tiles/events,sensors,units").await;
    let names: Vec<&str> = tj["vector_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["events", "sensors", "units"]);
}

/// The roles of the key child servers are driven with.
const ALL_ROLES: &str =
    "reporter,dispatcher,handler,verifier,commander,sensor-admin,gateway,tracker,system-admin";

/// Starts `citytwin serve` on a store; returns the process, its address, and a key for it
/// made with `citytwin keys create` while it runs (every operational role, all sensors).
fn serve(store: &std::path::Path, extra: &[&str]) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--refresh-secs",
            "0",
            "--store",
        ])
        .arg(store)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Child(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(a) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(a.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_mins(3))
        .expect("server did not start");
    let token = cli_key(
        &store.display().to_string(),
        &[
            "--name",
            "test",
            "--roles",
            ALL_ROLES,
            "--department",
            "ops",
            "--sensors",
            "*",
        ],
    );
    (child, format!("http://{addr}"), token)
}

async fn wait_for(mut done: impl AsyncFnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_to(
    (base, token): (&str, &str),
    path: &str,
    body: &Value,
) -> reqwest::Result<(u16, Value)> {
    let resp = client_with(token)
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn get_from((base, token): (&str, &str), path: &str) -> Value {
    client_with(token)
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Mosquitto on a free port, from Debian's package (scripts/setup-test-deps installs it),
/// with logins from a password file and an ACL: citytwin reads every gateway's topics and
/// writes rejections; a gateway (its login is its key id) writes only under its own id and
/// reads only its own rejections; citytwin and the `sta-client` login read and write
/// SensorThings' `v1.1/#`.
struct Broker {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

const BROKER_PASSWORD: &str = "citytwin-secret";

impl Broker {
    fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap().keep();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\nmax_inflight_messages 0\nmax_queued_messages 100000\npersistence false\n",
                dir.join("passwd").display(),
                dir.join("acl").display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("acl"),
            "user citytwin\ntopic read citytwin/gateways/#\ntopic read citytwin/sensors/#\ntopic read citytwin/units/#\ntopic write citytwin/rejected/#\ntopic readwrite v1.1/#\n\nuser sta-client\ntopic readwrite v1.1/#\ntopic read citytwin/rejected/v1.1/#\n\npattern write citytwin/gateways/%u/#\npattern read citytwin/rejected/citytwin/gateways/%u/#\n",
        )
        .unwrap();
        std::fs::write(dir.join("passwd"), "").unwrap();
        let broker = |b: &str| {
            [format!("/usr/sbin/{b}"), format!("/usr/bin/{b}")]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or_else(|| panic!("{b} must be installed: run scripts/setup-test-deps"))
        };
        let me = Self {
            child: Child(
                Command::new(broker("mosquitto"))
                    .arg("-c")
                    .arg(&conf)
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            ),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        // only once it listens: before, a SIGHUP would end it
        me.add_login("citytwin", BROKER_PASSWORD);
        me
    }

    /// Adds a login to the password file and has the broker read it again.
    fn add_login(&self, user: &str, password: &str) {
        let bin = ["/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("mosquitto_passwd must be installed");
        let ok = Command::new(bin)
            .args(["-b"])
            .arg(self.dir.join("passwd"))
            .args([user, password])
            .status()
            .unwrap();
        assert!(ok.success());
        Command::new("kill")
            .args(["-HUP", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// SensorThings API 1.1 through real clients: `frost-sta-client` (PyPI) lists Things page by
/// page, reads a Datastream's Observations with a filter and creates one, which shows up on
/// citytwin's own feed; over MQTT an Observation published on the standard topic is taken
/// (as the sensor's registering gateway's) and every new one is published on its
/// Datastream's topic.
#[tokio::test]
async fn sensorthings_clients_read_and_write_the_sensors_over_http_and_mqtt() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = Broker::start();
    let port = broker.port;
    broker.add_login("sta-client", "sta-secret");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://citytwin:{BROKER_PASSWORD}@127.0.0.1:{port}");
    let store = dir.path().join("sta.gpkg");
    let (_server, base, token) = serve(&store, &["--demo", "--mqtt", &url]);
    // a gateway key registers its sensors and sends their readings
    let gateway = cli_key(
        &store.display().to_string(),
        &[
            "--name",
            "gw-sta",
            "--roles",
            "gateway,sensor-admin",
            "--sensors",
            "ST-*",
            "--department",
            "ops",
        ],
    );
    let gw = (base.as_str(), gateway.as_str());
    for (i, id) in ["ST-1", "ST-2", "ST-3"].iter().enumerate() {
        let (status, s) = post_to(gw, "/sensors", &json!({ "id": id, "type": "water-level", "name": format!("站 {id}"), "lon": HERE.0 + i as f64 * 0.001, "lat": HERE.1, "unit": "m" })).await.unwrap();
        assert_eq!(status, 201, "{s}");
    }
    let t0 = citytwin_city::live::ts::now() - 3_600_000;
    let readings: Vec<Value> = (1..=4)
        .map(|v| json!({ "sensor": "ST-1", "value": f64::from(v), "at": citytwin_city::live::ts::format(t0 + i64::from(v) * 60_000) }))
        .collect();
    let (status, taken) = post_to(gw, "/readings", &json!({ "readings": readings }))
        .await
        .unwrap();
    assert_eq!(status, 202);
    let seq_before = taken["seq"].as_u64().unwrap();

    // MQTT: watch the Datastream's topic before anything is created
    let mut opts = MqttOptions::new("citytwin-test-sta", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_credentials("sta-client", "sta-secret");
    let (mqtt, mut events) = AsyncClient::new(opts, 1_000);
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
                        let _ = seen_tx.send((p.topic.clone(), v));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    mqtt.subscribe("v1.1/Datastreams('ST-1')/Observations", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), subscribed)
        .await
        .expect("the broker took the subscription")
        .unwrap();

    // the real client: reads with the operator's key, writes with the gateway's
    // (not blocking the runtime: the MQTT client's event loop runs meanwhile)
    let out = tokio::process::Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("server/tests/sta_client.py"))
        .args([&format!("{base}/v1.1"), &token, &gateway, "ST-1"])
        .output()
        .await
        .expect("scripts/setup-python makes .venv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["站 ST-1", "站 ST-2", "站 ST-3"] {
        assert!(
            read["things"].as_array().unwrap().contains(&json!(name)),
            "{name} in {read}"
        );
    }
    assert_eq!(read["datastream"]["unit"], "m");
    let results: Vec<f64> = read["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["result"].as_f64().unwrap())
        .collect();
    assert_eq!(results, vec![3.0, 4.0], "result gt 2, oldest first");
    let created = read["created"].as_u64().unwrap();
    assert_eq!(read["read_back"], 7.5);
    // the created Observation is a reading on citytwin's own feed, under its id
    let changes = get_from(
        (&base, &token),
        &format!("/live/changes?after={seq_before}&limit=1000&readings=true"),
    )
    .await;
    let on_feed = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["seq"].as_u64() == Some(created))
        .cloned();
    let on_feed = on_feed.unwrap_or_else(|| panic!("observation {created} on the feed: {changes}"));
    assert_eq!(
        (
            on_feed["kind"].as_str(),
            on_feed["id"].as_str(),
            on_feed["value"].as_f64()
        ),
        (Some("reading"), Some("ST-1"), Some(7.5))
    );
    // and citytwin published it on the Datastream's topic
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !got
        .iter()
        .any(|(_, v): &(String, Value)| v["@iot.id"].as_u64() == Some(created))
    {
        assert!(
            Instant::now() < deadline,
            "observation {created} over MQTT: {got:?}"
        );
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), seen.recv()).await {
            got.push(m);
        }
    }

    // an Observation published on the standard topic is taken, as the gateway's
    mqtt.publish(
        "v1.1/Datastreams('ST-1')/Observations",
        QoS::AtLeastOnce,
        false,
        json!({ "result": 9.25 }).to_string(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        assert!(
            Instant::now() < deadline,
            "the published observation came back with an id"
        );
        if let Ok(Some((topic, v))) =
            tokio::time::timeout(Duration::from_millis(500), seen.recv()).await
            && v["result"] == 9.25
            && let Some(id) = v["@iot.id"].as_u64()
        {
            assert_eq!(topic, "v1.1/Datastreams('ST-1')/Observations");
            break id;
        }
    };
    let one = get_from(
        (&base, &token),
        &format!("/v1.1/Observations({id})?$expand=Datastream($select=id)"),
    )
    .await;
    assert_eq!(one["result"], 9.25);
    assert_eq!(one["Datastream"]["@iot.id"], "ST-1");
    let s = get_from((&base, &token), "/sensors/ST-1").await;
    assert_eq!(s["latest"]["value"], 9.25);
    // counting without a page, paging, selecting and expanding; a bad filter names itself
    let counted = get_from(
        (&base, &token),
        "/v1.1/Datastreams('ST-1')/Observations?$top=0&$count=true",
    )
    .await;
    assert_eq!(counted["value"], json!([]));
    assert!(counted["@iot.count"].as_u64().unwrap() >= 6, "{counted}");
    assert!(counted.get("@iot.nextLink").is_none(), "{counted}");
    let page = get_from(
        (&base, &token),
        "/v1.1/Things?$filter=startswith(name,'站 ST-')&$orderby=name desc&$top=2&$select=name&$expand=Datastreams($select=unitOfMeasurement)",
    )
    .await;
    assert_eq!(page["value"][0]["name"], "站 ST-3", "{page}");
    assert_eq!(
        page["value"][0]["Datastreams"][0]["unitOfMeasurement"]["symbol"],
        "m"
    );
    assert!(
        page["value"][0].get("description").is_none(),
        "$select keeps only name"
    );
    assert!(
        page["@iot.nextLink"]
            .as_str()
            .unwrap()
            .contains("%24skip=2"),
        "{page}"
    );
    let resp = client_with(&token)
        .get(format!("{base}/v1.1/Things?$filter=name eq"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["parameter"], "$filter", "{p}");
    // an Observation of a datastream there is none of is refused, and nothing is taken
    let (status, p) = post_to(
        gw,
        "/v1.1/Datastreams('ST-9')/Observations",
        &json!({ "result": 1 }),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{p}");
    let (status, p) = post_to(
        gw,
        "/v1.1/Observations",
        &json!({ "result": "high", "Datastream": { "@iot.id": "ST-1" } }),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("result"), "{p}");
}

#[tokio::test]
async fn readings_and_positions_arrive_over_a_real_mosquitto_broker() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = Broker::start();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://citytwin:{BROKER_PASSWORD}@127.0.0.1:{port}");
    let store = dir.path().join("mq.gpkg");
    let (_server, base, token) = serve(&store, &["--demo", "--mqtt", &url]);
    let at = (base.as_str(), token.as_str());
    let (status, s) = post_to(at, "/sensors", &json!({ "id": "MQ-1", "type": "rainfall", "lon": HERE.0, "lat": HERE.1, "unit": "mm/h", "thresholds": { "high": 50 } })).await.unwrap();
    assert_eq!(status, 201, "{s}");
    post_to(
        at,
        "/units",
        &json!({ "id": "MQ-U", "name": "pump 1", "type": "pump", "lon": HERE.0, "lat": HERE.1 }),
    )
    .await
    .unwrap();
    // the gateway's key: readings of MQ-* only, and unit positions
    let gateway = cli_key(
        &store.display().to_string(),
        &[
            "--name",
            "gw",
            "--roles",
            "gateway,tracker",
            "--sensors",
            "MQ-*",
        ],
    );
    let gw_id = gateway
        .strip_prefix("ctk_")
        .and_then(|t| t.split_once('_'))
        .unwrap()
        .0
        .to_owned();
    broker.add_login(&gw_id, "gw-secret");
    broker.add_login("intruder", "intruder-secret");
    let connect = |user: &str, password: &str| {
        let mut opts = MqttOptions::new(format!("citytwin-test-{user}"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_credentials(user, password);
        AsyncClient::new(opts, 10_000)
    };
    let (client, mut events) = connect(&gw_id, "gw-secret");
    let (rejected_tx, mut rejected) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = rejected_tx.send((
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                ));
            }
        }
    });
    client
        .subscribe(
            format!("citytwin/rejected/citytwin/gateways/{gw_id}/#"),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let topic = format!("citytwin/gateways/{gw_id}/sensors/MQ-1/readings");
    // wait until citytwin has subscribed: a probe reading shows up
    let t0 = citytwin_city::live::ts::now() - 600_000;
    let ts = |i: i64| citytwin_city::live::ts::format(t0 + i * 100);
    wait_for(
        async || {
            client
                .publish(
                    topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    json!({ "value": -1.0, "at": ts(0) }).to_string(),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            get_from(at, "/sensors/MQ-1").await["latest"]["value"] == -1.0
        },
        "citytwin to subscribe",
    )
    .await;
    for i in 1..=300 {
        let v = if i == 150 { 80.0 } else { (i % 10) as f64 };
        client
            .publish(
                topic.clone(),
                QoS::AtLeastOnce,
                false,
                json!({ "value": v, "at": ts(i) }).to_string(),
            )
            .await
            .unwrap();
    }
    let batch: Vec<Value> = (301..=400)
        .map(|i| json!({ "value": 1.0, "at": ts(i) }))
        .collect();
    client
        .publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            Value::from(batch).to_string(),
        )
        .await
        .unwrap();
    client
        .publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            "{\"value\": \"high\"}",
        )
        .await
        .unwrap();
    // a sensor the key does not cover is refused by citytwin
    post_to(
        at,
        "/sensors",
        &json!({ "id": "RF-9", "type": "rainfall", "lon": HERE.0, "lat": HERE.1, "unit": "mm/h" }),
    )
    .await
    .unwrap();
    client
        .publish(
            format!("citytwin/gateways/{gw_id}/sensors/RF-9/readings"),
            QoS::AtLeastOnce,
            false,
            "{\"value\": 1}",
        )
        .await
        .unwrap();
    client
        .publish(
            format!("citytwin/gateways/{gw_id}/units/MQ-U/position"),
            QoS::AtLeastOnce,
            false,
            json!({ "lon": HERE.0 + 0.001, "lat": HERE.1 }).to_string(),
        )
        .await
        .unwrap();
    // another login cannot speak for this gateway: the broker's ACL drops it
    let (intruder, mut intruder_events) = connect("intruder", "intruder-secret");
    tokio::spawn(async move { while intruder_events.poll().await.is_ok() {} });
    intruder
        .publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            json!({ "value": 999.0 }).to_string(),
        )
        .await
        .unwrap();
    let window = format!(
        "/sensors/MQ-1/readings?from={}&to={}&limit=100000",
        ts(1),
        ts(401)
    );
    wait_for(
        async || {
            get_from(at, &window).await["readings"]
                .as_array()
                .unwrap()
                .len()
                == 400
        },
        "400 readings over MQTT",
    )
    .await;
    let e = get_from(at, "/events?category=rainfall-alarm").await;
    assert_eq!(e["count"], 1, "the 80 mm/h reading raised one alarm: {e}");
    wait_for(
        async || get_from(at, "/units/MQ-U").await["lon"].as_f64() == Some(HERE.0 + 0.001),
        "the unit to move",
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (topic, body) = tokio::time::timeout(Duration::from_secs(30), rejected.recv())
            .await
            .expect("rejections reported")
            .unwrap();
        let p: Value = serde_json::from_str(&body).unwrap();
        seen.push((topic, p["status"].as_u64().unwrap()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                format!("citytwin/rejected/citytwin/gateways/{gw_id}/sensors/MQ-1/readings"),
                400
            ),
            (
                format!("citytwin/rejected/citytwin/gateways/{gw_id}/sensors/RF-9/readings"),
                403
            ),
        ]
    );
    let latest = get_from(at, "/sensors/MQ-1").await;
    assert_ne!(
        latest["latest"]["value"], 999.0,
        "the intruder's reading was taken"
    );
    let metrics = client_text(at, "/metrics").await;
    assert!(
        metrics.contains("citytwin_mqtt_rejected_total 2"),
        "{metrics}"
    );
    // a gateway revoked by the CLI (another process) is refused once the server has read
    // the revocation, which it does twice a second
    let revoked = Command::new(env!("CARGO_BIN_EXE_citytwin"))
        .args(["keys", "revoke", &gw_id, "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(revoked.status.success());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client
        .publish(
            topic.clone(),
            QoS::AtLeastOnce,
            false,
            json!({ "value": 5.0, "at": ts(500) }).to_string(),
        )
        .await
        .unwrap();
    let (topic, body) = tokio::time::timeout(Duration::from_secs(30), rejected.recv())
        .await
        .expect("the revoked key's message is reported")
        .unwrap();
    assert!(topic.ends_with("/sensors/MQ-1/readings"), "{topic}");
    assert!(body.contains("revoked"), "{body}");
}

async fn client_text((base, token): (&str, &str), path: &str) -> String {
    client_with(token)
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Every write the server acknowledged before `kill -9` is there after a restart.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("k9.gpkg");
    let (mut server, base, token) = serve(&store, &["--demo"]);
    let (status, s) = post_to(
        (&base, &token),
        "/sensors",
        &json!({ "id": "K9-1", "type": "water-level", "lon": HERE.0, "lat": HERE.1, "unit": "m" }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{s}");
    let started = Instant::now();
    // how much the writers have had acknowledged: the server is killed once there is enough
    // to lose, however fast this machine is
    let progress = std::sync::Arc::new([
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    ]);
    let mut writers = Vec::new();
    for w in 0..4 {
        let (base, token, progress) = (base.clone(), token.clone(), progress.clone());
        writers.push(tokio::spawn(async move {
            let at = (base.as_str(), token.as_str());
            let (mut readings, mut events) = (Vec::new(), Vec::new());
            for round in 0.. {
                if w == 0 {
                    let body = json!({ "source": "hotline", "category": "noise", "lon": HERE.0 + f64::from(round) * 0.002, "lat": HERE.1 });
                    match post_to(at, "/events", &body).await {
                        Ok((201 | 200, e)) => {
                            events.push(e["id"].as_i64().unwrap());
                            progress[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => break,
                    }
                    continue;
                }
                let values: Vec<f64> = (0..200).map(|j| f64::from(w * 1_000_000 + round * 200 + j)).collect();
                let body = json!({ "readings": values.iter().map(|v| json!({ "sensor": "K9-1", "value": v })).collect::<Vec<_>>() });
                match post_to(at, "/readings", &body).await {
                    Ok((202, _)) => {
                        readings.extend(values);
                        progress[1].fetch_add(200, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
            (readings, events)
        }));
    }
    let enough = || {
        progress[0].load(std::sync::atomic::Ordering::Relaxed) > 0
            && progress[1].load(std::sync::atomic::Ordering::Relaxed) >= 2000
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while !enough() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill")
        .args(["-KILL", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = server.0.wait();
    let (mut acked, mut acked_events) = (Vec::new(), Vec::new());
    for w in writers {
        let (r, e) = w.await.unwrap();
        acked.extend(r);
        acked_events.extend(e);
    }
    assert!(
        acked.len() >= 200 && !acked_events.is_empty(),
        "the burst wrote too little to test anything ({} readings in {:?})",
        acked.len(),
        started.elapsed()
    );
    let (_server, base, token) = serve(&store, &["--demo"]);
    let at = (base.as_str(), token.as_str());
    let window = "/sensors/K9-1/readings?from=2000-01-01T00:00:00Z&limit=100000";
    let stored: std::collections::HashSet<u64> = get_from(at, window).await["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap() as u64)
        .collect();
    let lost: Vec<&f64> = acked
        .iter()
        .filter(|v| !stored.contains(&(**v as u64)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged readings lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    for id in acked_events {
        let e = get_from(at, &format!("/events/{id}")).await;
        assert_eq!(e["category"], "noise", "event {id} lost: {e}");
    }
}
