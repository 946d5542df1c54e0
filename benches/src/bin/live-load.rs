//! Load for the live twin (run by `benches/live-load.sh` against a release server):
//!
//! - `http BASE SECS`: sustained durable reading ingest, batches of 5,000 over 4 connections;
//! - `mqtt BASE BROKER SECS`: one reading per QoS 1 message through the broker, counted as
//!   taken by the server's `citytwin_readings_total`;
//! - `feed BASE PID SUBSCRIBERS RATE SECS`: SUBSCRIBERS WebSocket subscribers (10 probes take
//!   every reading, the rest a district's events), RATE readings/s written in batches every
//!   10 ms; latency from the HTTP acknowledgement of a batch to its delivery on the probes, and
//!   the server's resident memory before and after the subscribers connected. With
//!   `CITYTWIN_FEED_URL` set the subscribers listen on that instance instead (write on one
//!   instance of a cluster, read the feed on another).
//! - `soak BASE PID SUBSCRIBERS RATE SECS WINDOW`: `feed` for a long run (benches/soak.sh),
//!   with one line every WINDOW seconds: readings taken, failed batches, delivery p50/p99 and
//!   the server's resident memory.

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SENSORS: usize = 1000;

#[allow(clippy::print_stdout)]
fn say(s: &str) {
    println!("{s}");
}

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_else(|| {
        eprintln!(
            "usage: live-load http BASE SECS | mqtt BASE BROKER SECS | feed BASE PID SUBSCRIBERS RATE SECS | soak BASE PID SUBSCRIBERS RATE SECS WINDOW"
        );
        std::process::exit(2)
    })
}

fn num(i: usize) -> u64 {
    arg(i).parse().unwrap_or_else(|_| {
        eprintln!("argument {i} must be a number");
        std::process::exit(2)
    })
}

async fn register(http: &reqwest::Client, base: &str) {
    for i in 0..SENSORS {
        let lon = 118.74 + (i % 40) as f64 * 0.002;
        let lat = 32.02 + (i / 40) as f64 * 0.002;
        let body = json!({ "id": format!("LOAD-{i:04}"), "type": "water-level", "lon": lon, "lat": lat,
            "unit": "m", "thresholds": { "high": 1e9 } });
        let r = http
            .post(format!("{base}/sensors"))
            .json(&body)
            .send()
            .await;
        if !r.is_ok_and(|r| r.status().is_success()) {
            eprintln!("could not register LOAD-{i:04} (outside the grids?)");
        }
    }
}

fn batch(n: usize, offset: usize, value: f64) -> Value {
    let readings: Vec<Value> = (0..n)
        .map(|j| json!({ "sensor": format!("LOAD-{:04}", (offset + j) % SENSORS), "value": value }))
        .collect();
    json!({ "readings": readings })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn http_ingest(base: String, secs: u64) {
    let http = client();
    register(&http, &base).await;
    let taken = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (http, base, taken) = (http.clone(), base.clone(), Arc::clone(&taken));
        tasks.push(tokio::spawn(async move {
            let body = serde_json::to_vec(&batch(5000, c * 5000, 0.5)).unwrap_or_default();
            let mut lat = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let ok = http
                    .post(format!("{base}/readings"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if ok {
                    taken.fetch_add(5000, Ordering::Relaxed);
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    say(&format!(
        "http ingest: {:.0} readings/s durable ({} in {elapsed:.1} s, batches of 5000 over 4 connections; batch p50 {:.1} ms, p99 {:.1} ms)",
        taken.load(Ordering::Relaxed) as f64 / elapsed,
        taken.load(Ordering::Relaxed),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    ));
}

async fn readings_total(http: &reqwest::Client, base: &str) -> u64 {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("citytwin_readings_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn mqtt_ingest(base: String, broker: String, secs: u64) {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let http = client();
    register(&http, &base).await;
    let rest = broker.trim_start_matches("mqtt://");
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    let port: u16 = port.parse().unwrap_or(1883);
    let before = readings_total(&http, &base).await;
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..2 {
        let mut o = MqttOptions::new(format!("live-load-{c}"), host, port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_inflight(1000);
        let (client, mut events) = AsyncClient::new(o, 10_000);
        tokio::spawn(async move { while events.poll().await.is_ok() {} });
        let sent = Arc::clone(&sent);
        tasks.push(tokio::spawn(async move {
            let mut i = c * 500;
            while Instant::now() < until {
                let topic = format!(
                    "citytwin/gateways/{}/sensors/LOAD-{:04}/readings",
                    gateway(),
                    i % SENSORS
                );
                if client
                    .publish(topic, QoS::AtLeastOnce, false, r#"{"value":0.5}"#)
                    .await
                    .is_err()
                {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let sent = sent.load(Ordering::Relaxed);
    // wait until the server has taken everything sent (or stops making progress)
    let mut last = (0, Instant::now());
    loop {
        let taken = readings_total(&http, &base).await - before;
        if taken >= sent {
            break;
        }
        if taken != last.0 {
            last = (taken, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken = readings_total(&http, &base).await - before;
    let elapsed = started.elapsed().as_secs_f64();
    say(&format!(
        "mqtt ingest: {:.0} messages/s durable and acknowledged ({taken} of {sent} sent in {elapsed:.1} s, QoS 1, one reading per message, 2 publishers)",
        taken as f64 / elapsed
    ));
}

fn rss_kib(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Ack → delivery latencies (ms) of the batches in `batches`, sorted.
fn latencies(
    acks: &[Option<Instant>],
    delivered: &[(usize, Instant)],
    batches: std::ops::Range<usize>,
) -> Vec<f64> {
    let mut l: Vec<f64> = delivered
        .iter()
        .filter(|(b, _)| batches.contains(b))
        .filter_map(|(b, at)| {
            let ack = acks.get(*b).copied().flatten()?;
            Some(at.saturating_duration_since(ack).as_secs_f64() * 1000.0)
        })
        .collect();
    l.sort_by(f64::total_cmp);
    l
}

/// `feed`, or with `window` a soak: one line per window (readings taken, failed batches,
/// delivery p99, the server's resident memory) for the whole run.
async fn feed(
    base: String,
    pid: u64,
    subscribers: usize,
    rate: u64,
    secs: u64,
    window: Option<Duration>,
) {
    let http = client();
    register(&http, &base).await;
    // the subscribers may listen on another instance of a cluster than the one written to
    let ws = std::env::var("CITYTWIN_FEED_URL")
        .unwrap_or_else(|_| base.clone())
        .replace("http://", "ws://");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);
    let acked: Arc<std::sync::Mutex<Vec<Option<Instant>>>> = Arc::default();
    let lat: Arc<std::sync::Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let mut conns = Vec::new();
    for s in 0..subscribers {
        let probe = s < 10;
        let url = if probe {
            format!("{ws}/live?layers=sensors&kinds=reading")
        } else {
            format!("{ws}/live?layers=events&grid=320104")
        };
        let Ok((mut stream, _)) = tokio_tungstenite::connect_async(request(&url)).await else {
            eprintln!("subscriber {s} could not connect");
            continue;
        };
        let _ = stream.next().await; // hello
        let lat = Arc::clone(&lat);
        conns.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if !probe {
                    continue;
                }
                let tokio_tungstenite::tungstenite::Message::Text(t) = msg else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                let Some(b) = v["value"].as_f64() else {
                    continue;
                };
                // matched with the batch's acknowledgement after the run: a write through a
                // follower of a cluster is answered only once that instance shows it, so its
                // deliveries often come before the reply
                if let Ok(mut l) = lat.lock() {
                    l.push((b as usize, Instant::now()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(pid);
    say(&format!(
        "feed: {} subscribers connected; server RSS {} MiB → {} MiB ({:.1} MiB per 1,000 subscribers)",
        conns.len(),
        rss_before / 1024,
        rss_after / 1024,
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 * 1000.0 / conns.len().max(1) as f64
    ));
    let per_tick = (rate / 100).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut b = 0usize;
    let mut late = 0u64;
    let (mut window_start, mut window_first, mut window_late) = (Instant::now(), 0usize, 0u64);
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        if let Some(w) = window
            && window_start.elapsed() >= w
        {
            // the window's last batches (100 ms) are still on their way: counted in the next
            let delivered = lat.lock().map(|l| l.clone()).unwrap_or_default();
            let acks = acked.lock().map(|a| a.clone()).unwrap_or_default();
            let until = b.saturating_sub(10).max(window_first);
            let l = latencies(&acks, &delivered, window_first..until);
            say(&format!(
                "soak {:>5.1} min: {} readings taken, {} batches failed; delivery p50 {:.2} ms, p99 {:.2} ms over {} probe deliveries; server RSS {} MiB",
                started.elapsed().as_secs_f64() / 60.0,
                (until - window_first) * per_tick,
                late - window_late,
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                l.len(),
                rss_kib(pid) / 1024
            ));
            (window_start, window_first, window_late) = (Instant::now(), until, late);
        }
        // the batch number is the value: the probes find the batch's acknowledgement time
        let body = batch(per_tick, b * per_tick, b as f64);
        let t = http
            .post(format!("{base}/readings"))
            .json(&body)
            .send()
            .await;
        if t.is_ok_and(|r| r.status().as_u16() == 202) {
            if let Ok(mut a) = acked.lock() {
                a.resize(b + 1, None);
                a[b] = Some(Instant::now());
            }
        } else {
            late += 1;
        }
        b += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = lat.lock().map(|l| l.clone()).unwrap_or_default();
    let acks = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let l = latencies(&acks, &delivered, 0..b);
    say(&format!(
        "feed: {} readings/s offered for {secs} s ({} batches, {late} failed); ack → WebSocket delivery over {} probe deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (0 when delivered before the HTTP reply arrived)",
        per_tick * 100,
        b,
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(f64::NAN)
    ));
    for c in conns {
        c.abort();
    }
}

/// A WebSocket request that sends the key in `CITYTWIN_KEY` (the live layers are not open to
/// the public).
fn request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = url.into_client_request().expect("a WebSocket URL");
    if let Ok(key) = std::env::var("CITYTWIN_KEY")
        && let Ok(v) = format!("Bearer {key}").parse()
    {
        req.headers_mut().insert("authorization", v);
    }
    req
}

/// A client that sends the key in `CITYTWIN_KEY` (every operational role; live-load.sh makes
/// it with `citytwin keys create`).
fn client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    if let Ok(key) = std::env::var("CITYTWIN_KEY")
        && let Ok(v) = format!("Bearer {key}").parse()
    {
        h.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("an HTTP client")
}

/// The id of the key in `CITYTWIN_KEY`: a gateway's MQTT topics carry it.
fn gateway() -> String {
    std::env::var("CITYTWIN_KEY")
        .ok()
        .and_then(|k| {
            k.strip_prefix("ctk_")
                .and_then(|r| r.split_once('_'))
                .map(|(id, _)| id.to_owned())
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    match arg(1).as_str() {
        "http" => http_ingest(arg(2), num(3)).await,
        "mqtt" => mqtt_ingest(arg(2), arg(3), num(4)).await,
        "feed" => feed(arg(2), num(3), num(4) as usize, num(5), num(6), None).await,
        "soak" => {
            let window = Some(Duration::from_secs(num(7)));
            feed(arg(2), num(3), num(4) as usize, num(5), num(6), window).await;
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
