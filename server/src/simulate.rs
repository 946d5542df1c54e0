//! `citytwin simulate`: realistic traffic for a running server, through its real HTTP and
//! MQTT paths — hotline and citizen reports (some of them duplicates), sensor readings with
//! occasional threshold crossings, units moving, and a dispatcher walking events round their
//! closed loop — so the demo shows a city that lives.

use geo::{Geometry, InteriorPoint};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What to simulate.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// the server
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// send readings and positions over this MQTT broker instead of HTTP (mqtt://host:port)
    #[arg(long)]
    pub mqtt: Option<String>,
    /// sensors to register
    #[arg(long, default_value_t = 120)]
    pub sensors: usize,
    /// units to register
    #[arg(long, default_value_t = 24)]
    pub units: usize,
    /// sensor readings per second, over all sensors
    #[arg(long, default_value_t = 60.0)]
    pub rate: f64,
    /// event reports per minute
    #[arg(long, default_value_t = 6.0)]
    pub reports_per_min: f64,
    /// stop after this many seconds (run until stopped when absent)
    #[arg(long)]
    pub duration: Option<u64>,
    /// random seed
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// the API key to act with (`citytwin keys create --roles reporter,dispatcher,handler,
    /// verifier,sensor-admin,gateway,tracker --sensors '*'`)
    #[arg(long, env = "CITYTWIN_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// Sensor types: (type, unit, normal level, noise, high threshold, rate threshold per minute).
const SENSOR_TYPES: &[(&str, &str, f64, f64, f64, f64)] = &[
    ("water-level", "m", 0.10, 0.01, 0.50, 0.30),
    ("rainfall", "mm/h", 4.0, 1.5, 50.0, 30.0),
    ("gas", "ppm", 2.0, 0.3, 25.0, 15.0),
    ("noise", "dB", 55.0, 3.0, 85.0, 40.0),
    ("manhole-cover", "mm", 0.0, 0.5, 20.0, 15.0),
];

const CATEGORIES: &[(&str, &str)] = &[
    ("waterlogging", "积水: water over the road after rain"),
    ("road-damage", "路面破损: pothole in the carriageway"),
    ("illegal-parking", "违章停车: car blocking the fire lane"),
    ("garbage", "垃圾堆放: rubbish piled at the roadside"),
    ("noise", "噪声扰民: construction noise late at night"),
    ("street-light", "路灯故障: street light out"),
    ("manhole-cover", "井盖缺失: manhole cover missing"),
    ("fallen-tree", "树木倒伏: tree down across the pavement"),
];

struct SimSensor {
    id: String,
    kind: usize,
    value: f64,
    spike: u32,
}

struct SimUnit {
    id: String,
    lon: f64,
    lat: f64,
    heading: f64,
}

struct Sim {
    http: reqwest::Client,
    url: String,
    mqtt: Option<AsyncClient>,
    rng: StdRng,
    places: Vec<(f64, f64)>,
    recent: Vec<(f64, f64, usize)>,
    sent: u64,
    refused: u64,
    /// the id of the key the simulator acts with: its MQTT topics carry it
    gateway: String,
}

impl Sim {
    async fn post(&mut self, path: &str, body: &Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            self.refused += 1;
            Err(format!("POST {path}: {status} {}", v["detail"]))
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        resp.json().await.map_err(|e| format!("GET {path}: {e}"))
    }

    fn place(&mut self) -> (f64, f64) {
        let (lon, lat) = self.places[self.rng.random_range(0..self.places.len())];
        (lon, lat)
    }

    fn noise(&mut self) -> f64 {
        // sum of uniforms: roughly normal, mean 0, sd 1
        (0..6).map(|_| self.rng.random::<f64>()).sum::<f64>() - 3.0
    }
}

/// Points inside the city's grids (one per grid), to put sensors, units and reports at.
async fn city_points(sim: &Sim) -> Result<Vec<(f64, f64)>, String> {
    let fc = sim.get("/collections/grids/items?limit=2000").await?;
    let features = fc["features"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for f in features {
        let Ok(g) = serde_json::from_value::<geojson::Geometry>(f["geometry"].clone()) else {
            continue;
        };
        let Ok(g) = Geometry::<f64>::try_from(g) else {
            continue;
        };
        if let Some(p) = g.interior_point() {
            out.push((p.x(), p.y()));
        }
    }
    if out.is_empty() {
        return Err(format!("{} has no grids to place things in", sim.url));
    }
    Ok(out)
}

/// Runs the simulator until the duration is up (or forever).
pub async fn run(args: SimulateArgs) -> Result<(), String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = &args.key {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "the key is not a valid header value".to_owned())?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    // the gateway's topics carry its key's id
    let gateway = args
        .key
        .as_deref()
        .and_then(|k| k.strip_prefix("ctk_"))
        .and_then(|k| k.split_once('_'))
        .map_or_else(|| "anonymous".to_owned(), |(id, _)| id.to_owned());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())?;
    let mqtt = match &args.mqtt {
        Some(url) => {
            let (host, port, login) = crate::mqtt::parse_url_login(url)?;
            let mut o =
                MqttOptions::new(format!("citytwin-sim-{}", std::process::id()), host, port);
            if let Some((user, password)) = login {
                o.set_credentials(user, password);
            }
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut events) = AsyncClient::new(o, 10_000);
            tokio::spawn(async move {
                loop {
                    if events.poll().await.is_err() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
            Some(client)
        }
        None => None,
    };
    let mut sim = Sim {
        http,
        url: args.url.trim_end_matches('/').to_owned(),
        mqtt,
        rng: StdRng::seed_from_u64(args.seed),
        places: Vec::new(),
        recent: Vec::new(),
        sent: 0,
        refused: 0,
        gateway,
    };
    sim.places = city_points(&sim).await?;
    let mut sensors = Vec::new();
    for i in 0..args.sensors {
        let kind = i % SENSOR_TYPES.len();
        let (name, unit, level, _, high, rate) = SENSOR_TYPES[kind];
        let (lon, lat) = sim.place();
        let id = format!("SIM-{}-{i:04}", name.to_uppercase().replace('-', ""));
        let body = json!({ "id": id, "type": name, "lon": lon, "lat": lat, "unit": unit,
            "thresholds": { "high": high, "rate": rate } });
        if sim.post("/sensors", &body).await.is_ok() {
            sensors.push(SimSensor {
                id,
                kind,
                value: level,
                spike: 0,
            });
        }
    }
    let mut units = Vec::new();
    for i in 0..args.units {
        let kind = ["pump", "vehicle", "team"][i % 3];
        let (lon, lat) = sim.place();
        let id = format!("SIM-{}-{i:03}", kind.to_uppercase());
        let body = json!({ "id": id, "name": format!("{kind} {i}"), "type": kind, "lon": lon, "lat": lat });
        if sim.post("/units", &body).await.is_ok() {
            let heading = sim.rng.random::<f64>() * std::f64::consts::TAU;
            units.push(SimUnit {
                id,
                lon,
                lat,
                heading,
            });
        }
    }
    tracing::info!(
        sensors = sensors.len(),
        units = units.len(),
        places = sim.places.len(),
        "simulator registered its sensors and units"
    );
    let started = Instant::now();
    let tick = Duration::from_millis(250);
    let mut ticker = tokio::time::interval(tick);
    let mut n: u64 = 0;
    let mut owed = 0.0;
    let mut cursor = 0;
    loop {
        ticker.tick().await;
        n += 1;
        if args
            .duration
            .is_some_and(|d| started.elapsed() >= Duration::from_secs(d))
        {
            break;
        }
        if !sensors.is_empty() {
            owed += args.rate * tick.as_secs_f64();
            let count = owed.floor() as usize;
            owed -= count as f64;
            let mut batch = Vec::with_capacity(count);
            for _ in 0..count {
                cursor = (cursor + 1) % sensors.len();
                let kind = sensors[cursor].kind;
                let (_, _, level, noise, high, _) = SENSOR_TYPES[kind];
                if sensors[cursor].spike == 0 && sim.rng.random::<f64>() < 0.004 {
                    sensors[cursor].spike = 12;
                }
                let target = if sensors[cursor].spike > 0 {
                    sensors[cursor].spike -= 1;
                    high * 1.3
                } else {
                    level
                };
                let jitter = sim.noise() * noise;
                let s = &mut sensors[cursor];
                s.value = (s.value + (target - s.value) * 0.5 + jitter * 0.3).max(0.0);
                batch.push((s.id.clone(), (s.value * 1000.0).round() / 1000.0));
            }
            send_readings(&mut sim, batch).await;
        }
        if sim.rng.random::<f64>() < args.reports_per_min / 240.0 {
            report(&mut sim).await;
        }
        if n.is_multiple_of(8) {
            move_units(&mut sim, &mut units).await;
            dispatch(&mut sim).await;
        }
        if n.is_multiple_of(40) {
            tracing::info!(
                sent = sim.sent,
                refused = sim.refused,
                secs = started.elapsed().as_secs(),
                "simulating"
            );
        }
    }
    tracing::info!(sent = sim.sent, refused = sim.refused, "simulation done");
    Ok(())
}

async fn send_readings(sim: &mut Sim, batch: Vec<(String, f64)>) {
    if batch.is_empty() {
        return;
    }
    let at = citytwin_city::live::ts::format(citytwin_city::live::ts::now());
    if let Some(client) = sim.mqtt.clone() {
        for (id, value) in batch {
            let payload = json!({ "value": value, "at": at }).to_string();
            if client
                .publish(
                    format!("citytwin/gateways/{}/sensors/{id}/readings", sim.gateway),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .is_ok()
            {
                sim.sent += 1;
            }
        }
        return;
    }
    let n = batch.len() as u64;
    let readings: Vec<Value> = batch
        .into_iter()
        .map(|(id, value)| json!({ "sensor": id, "value": value, "at": at }))
        .collect();
    match sim
        .post("/readings", &json!({ "readings": readings }))
        .await
    {
        Ok(_) => sim.sent += n,
        Err(e) => tracing::warn!(error = %e, "readings refused"),
    }
}

async fn report(sim: &mut Sim) {
    // a quarter of reports are about something already reported: they should merge
    let (lon, lat, c) = if !sim.recent.is_empty() && sim.rng.random::<f64>() < 0.25 {
        let (lon, lat, c) = sim.recent[sim.rng.random_range(0..sim.recent.len())];
        (
            lon + (sim.rng.random::<f64>() - 0.5) * 0.0004,
            lat + (sim.rng.random::<f64>() - 0.5) * 0.0004,
            c,
        )
    } else {
        let (lon, lat) = sim.place();
        (lon, lat, sim.rng.random_range(0..CATEGORIES.len()))
    };
    let (category, description) = CATEGORIES[c];
    let source = ["hotline", "citizen", "inspector"][sim.rng.random_range(0..3)];
    let body = json!({
        "source": source, "category": category, "description": description,
        "lon": lon, "lat": lat, "reporter": format!("{source} #{}", sim.rng.random_range(1000..9999)),
        "media": if source == "citizen" { json!(["https://media.example.org/report.jpg"]) } else { json!([]) },
    });
    if sim.post("/events", &body).await.is_ok() {
        sim.sent += 1;
        sim.recent.push((lon, lat, c));
        if sim.recent.len() > 20 {
            sim.recent.remove(0);
        }
    }
}

async fn move_units(sim: &mut Sim, units: &mut [SimUnit]) {
    for u in units.iter_mut() {
        u.heading += (sim.rng.random::<f64>() - 0.5) * 0.8;
        let (lon, lat) = (
            u.lon + u.heading.cos() * 0.0008,
            u.lat + u.heading.sin() * 0.0006,
        );
        let body = json!({ "lon": lon, "lat": lat });
        let ok = if let Some(client) = sim.mqtt.clone() {
            client
                .publish(
                    format!("citytwin/gateways/{}/units/{}/position", sim.gateway, u.id),
                    QoS::AtLeastOnce,
                    false,
                    body.to_string(),
                )
                .await
                .is_ok()
        } else {
            sim.post(&format!("/units/{}/position", u.id), &body)
                .await
                .is_ok()
        };
        if ok {
            (u.lon, u.lat) = (lon, lat);
            sim.sent += 1;
        }
        // the edge of the city (or a refused move): turn round
        if !ok || sim.rng.random::<f64>() < 0.02 {
            u.heading += std::f64::consts::PI;
        }
    }
}

/// A dispatcher moving one open event a step round the closed loop.
async fn dispatch(sim: &mut Sim) {
    let Ok(list) = sim.get("/events?state=open&limit=100").await else {
        return;
    };
    let events = list["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        return;
    }
    let e = &events[sim.rng.random_range(0..events.len())];
    let id = e["id"].as_i64().unwrap_or_default();
    let (action, note) = match e["state"].as_str() {
        Some("reported") if sim.rng.random::<f64>() < 0.1 => {
            ("reject", "duplicate of a closed case")
        }
        Some("reported") => ("accept", ""),
        Some("accepted") => ("dispatch", ""),
        Some("dispatched") => ("start", ""),
        Some("handling") => ("feedback", "handled on site"),
        Some("feedback") if sim.rng.random::<f64>() < 0.15 => ("return", "not fixed yet"),
        Some("feedback") => ("verify", "checked by the grid inspector"),
        Some("verified") => ("close", ""),
        _ => return,
    };
    if action == "dispatch" {
        let kind = if e["category"] == "waterlogging" {
            "pump"
        } else {
            "team"
        };
        if let Ok(near) = sim
            .get(&format!("/events/{id}/nearest-units?type={kind}&n=1"))
            .await
            && let Some(unit) = near["units"][0]["id"].as_str()
        {
            let body = json!({ "units": [unit] });
            let _ = sim.post(&format!("/events/{id}/units"), &body).await;
        }
    }
    let body = json!({ "action": action, "note": note });
    if sim
        .post(&format!("/events/{id}/transitions"), &body)
        .await
        .is_ok()
    {
        sim.sent += 1;
    }
}
