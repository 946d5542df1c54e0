//! Readings and unit positions from an MQTT broker.
//!
//! Topic scheme (QoS 1):
//!
//! | topic | payload |
//! |---|---|
//! | `citytwin/gateways/{key}/sensors/{sensor}/readings` | `{"value": 0.42, "at": "2026-11-22T08:00:00Z"}` or an array of them (`at` defaults to now) |
//! | `citytwin/gateways/{key}/units/{unit}/position` | `{"lon": 118.78, "lat": 32.06}` |
//! | `citytwin/rejected/…` (published by citytwin) | the problem+json of a refused message, under the topic it came on |
//! | `v1.1/Observations`, `v1.1/Datastreams('WL-0001')/Observations` | a SensorThings Observation (`{"result": 0.42, "phenomenonTime": …, "Datastream": {"@iot.id": …}}`), taken as the sensor's registering gateway key's |
//! | `citytwin/gateways/{key}/v1.1/…` | the same, as the gateway's own key |
//! | `v1.1/Datastreams('WL-0001')/Observations` (published by citytwin) | each new Observation of the sensor, QoS 0 (SensorThings' MQTT extension) |
//!
//! The SensorThings topics carry no gateway: an Observation published on them counts as sent
//! by the key that registered its sensor (refused when that key is revoked or expired, or the
//! sensor was registered by a person); the broker's ACL decides who may publish there and who
//! may subscribe to `v1.1/#` — it should let read only those who may see the sensors layer,
//! as citytwin publishes every sensor's Observations there.
//!
//! `{key}` is the id of the gateway's API key (`citytwin keys create`): the broker
//! authenticates the gateway and its ACL lets it publish only under its own id (Mosquitto:
//! `pattern write citytwin/gateways/%u/#` with the key id as the login), and citytwin then
//! applies the key's roles and sensors, and refuses a revoked or expired key.
//!
//! A message is acknowledged to the broker (PUBACK) only once what it carries is durable in
//! the store, and acknowledgements go out in the order the messages came. A refused message
//! (malformed, unknown sensor or unit, a time in the future, a place outside the city) is
//! acknowledged too — redelivering it would not make it right — and reported on
//! `citytwin/rejected/…`. Messages are queued to the writer in arrival order without waiting
//! for each to be durable, so readings keep their order and the writer commits many in one
//! transaction.

use crate::app::AppState;
use crate::problem::Problem;
use crate::routes::live::{ReadingBody, readings_in};
use citytwin_city::live::Pending;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use std::time::Duration;
use tokio::sync::mpsc;

/// Topic filter of readings.
pub const READINGS: &str = "citytwin/gateways/+/sensors/+/readings";
/// Topic filter of unit positions.
pub const POSITIONS: &str = "citytwin/gateways/+/units/+/position";
/// Topics of before gateways were named, refused with a pointer to the new ones.
const OLD_TOPICS: [&str; 2] = ["citytwin/sensors/+/readings", "citytwin/units/+/position"];
/// Topic filters of SensorThings Observations to create.
const STA_TOPICS: [&str; 4] = [
    "v1.1/Observations",
    "v1.1/+/Observations",
    "citytwin/gateways/+/v1.1/Observations",
    "citytwin/gateways/+/v1.1/+/Observations",
];

/// A broker login.
pub type Login = Option<(String, String)>;

/// `mqtt://[user:password@]host:port` → (host, port, login); the port defaults to 1883.
pub fn parse_url_login(url: &str) -> Result<(String, u16, Login), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| "MQTT URL: use mqtt://[user:password@]host:port".to_owned())?;
    let (login, hostport) = match rest.rsplit_once('@') {
        Some((auth, hp)) => {
            let (u, p) = auth.split_once(':').unwrap_or((auth, ""));
            (Some((u.to_owned(), p.to_owned())), hp)
        }
        None => (None, rest),
    };
    let shown = crate::config::mask_password(url);
    let (host, port) = parse_url(&format!("mqtt://{hostport}"))
        .map_err(|_| format!("MQTT URL {shown:?}: use mqtt://[user:password@]host:port"))?;
    Ok((host, port, login))
}

/// `mqtt://host:port` → (host, port); the port defaults to 1883.
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("MQTT URL {url:?}: use mqtt://host:port"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok((
            host.to_owned(),
            port.parse()
                .map_err(|_| format!("MQTT URL {url:?}: {port:?} is not a port"))?,
        )),
        _ if !rest.is_empty() => Ok((rest.to_owned(), 1883)),
        _ => Err(format!("MQTT URL {url:?} names no host")),
    }
}

/// Connects to the broker and takes messages until the process ends (reconnecting as
/// needed).
pub fn spawn(state: AppState, url: &str) -> Result<(), String> {
    let (host, port, login) = parse_url_login(url)?;
    let mut opts = MqttOptions::new(format!("citytwin-{}", std::process::id()), host, port);
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_manual_acks(true);
    opts.set_clean_session(true);
    opts.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut events) = AsyncClient::new(opts, 65_536);
    let (order, mut acks) = mpsc::channel::<(Publish, Result<(Pending, usize), Problem>)>(65_536);
    let (acker, acker_state) = (client.clone(), state.clone());
    tokio::spawn(async move {
        while let Some((p, queued)) = acks.recv().await {
            let result = match queued {
                Ok((pending, n)) => pending.done().await.map(|()| n).map_err(Problem::from),
                Err(problem) => Err(problem),
            };
            if let Some(p) = settle(&acker_state, &acker, p, result)
                && acker.ack(&p).await.is_err()
            {
                break;
            }
        }
    });
    // SensorThings' MQTT extension: every new Observation on its datastream's topic
    let (publisher, mut feed) = (client.clone(), state.city.feed());
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(c) if c.kind == "reading" => {
                    let Some(value) = c.value else { continue };
                    let body = citytwin_city::sta::observation_message(
                        &format!("/{}", citytwin_city::sta::VERSION),
                        c.seq,
                        &c.entity,
                        c.at,
                        value,
                    );
                    // at most once: a full queue drops the message rather than hold the feed
                    let _ = publisher.try_publish(
                        citytwin_city::sta::observation_topic(&c.entity),
                        QoS::AtMostOnce,
                        false,
                        body.to_string(),
                    );
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    // the URL as logs may show it
    let url = crate::config::mask_password(url);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(broker = %url, "MQTT connected; subscribing to {READINGS} and {POSITIONS}");
                    for topic in [READINGS, POSITIONS]
                        .into_iter()
                        .chain(OLD_TOPICS)
                        .chain(STA_TOPICS)
                    {
                        if let Err(e) = client.subscribe(topic, QoS::AtLeastOnce).await {
                            tracing::warn!(error = %e, "MQTT subscribe failed");
                        }
                    }
                }
                // Observations published on SensorThings topics (citytwin's own among them,
                // at most once: nothing to acknowledge) are not new readings
                Ok(Event::Incoming(Packet::Publish(p)))
                    if p.qos == QoS::AtMostOnce
                        && p.topic.starts_with("v1.1/")
                        && serde_json::from_slice::<serde_json::Value>(&p.payload)
                            .is_ok_and(|v| v.get("@iot.id").is_some()) => {}
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    // queued in arrival order, so readings of a sensor keep theirs; many are
                    // in flight at once, so the writer commits them together
                    let queued = queue(&state, &p).await;
                    if order.send((p, queued)).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(broker = %url, error = %e, "MQTT connection lost; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(())
}

/// Decides what becomes of a message once its fate is known; returns it when it is to be
/// acknowledged.
fn settle(
    state: &AppState,
    client: &AsyncClient,
    p: Publish,
    result: Result<usize, Problem>,
) -> Option<Publish> {
    match result {
        Ok(readings) => {
            state.metrics.readings.inc_by(readings as u64);
            Some(p)
        }
        Err(problem) if problem.status < 500 => {
            state.metrics.mqtt_rejected.inc();
            tracing::debug!(topic = %p.topic, detail = %problem.detail, "MQTT message refused");
            let body = serde_json::to_vec(&problem).unwrap_or_default();
            let _ = client.try_publish(
                format!("citytwin/rejected/{}", p.topic),
                QoS::AtMostOnce,
                false,
                body,
            );
            Some(p)
        }
        Err(problem) => {
            tracing::warn!(topic = %p.topic, detail = %problem.detail, "MQTT message not taken; left unacknowledged");
            None
        }
    }
}

/// A readings message of one sensor: one reading `{"value", "at"}` or an array of them.
pub fn decode_readings(
    payload: &[u8],
    sensor: &str,
) -> Result<Vec<citytwin_city::live::ReadingIn>, Problem> {
    let items: Vec<ReadingBody> = if payload.first() == Some(&b'[') {
        crate::routes::live::body(payload, "an array of readings")?
    } else {
        vec![crate::routes::live::body(
            payload,
            r#"{"value": number, "at": "RFC 3339 time"}"#,
        )?]
    };
    if items.len() > crate::routes::live::MAX_BATCH {
        return Err(Problem::bad_parameter(
            "payload",
            "too many readings in one message",
        ));
    }
    readings_in(items, Some(sensor))
}

/// A position message `{"lon", "lat"}`.
pub fn decode_position(payload: &[u8]) -> Result<(f64, f64), Problem> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Position {
        lon: f64,
        lat: f64,
    }
    let pos: Position = crate::routes::live::body(payload, r#"{"lon": …, "lat": …}"#)?;
    Ok((pos.lon, pos.lat))
}

/// A SensorThings Observation published at `v1.1/{path}`.
fn observation(path: &str, payload: &[u8]) -> Result<citytwin_city::live::ReadingIn, Problem> {
    let body: serde_json::Value = crate::routes::live::body(payload, "a SensorThings Observation")?;
    citytwin_city::sta::observation_in(path, &body, citytwin_city::live::ts::now())
        .map_err(Problem::from)
}

/// Parses a message and queues what it carries to the writer.
async fn queue(state: &AppState, p: &Publish) -> Result<(Pending, usize), Problem> {
    let parts: Vec<&str> = p.topic.split('/').collect();
    let cx = |key: &str| {
        let key = key.to_owned();
        async move {
            let principal = state
                .city
                .credentials()
                .principal_of_key_id(&key)
                .await
                .map_err(|e| crate::auth::unauthorized(&format!("gateway {key}: {e}")))?;
            Ok::<_, Problem>(citytwin_city::access::Context {
                principal: std::sync::Arc::new(principal),
                channel: "mqtt".into(),
                client: String::new(),
                request_id: p.topic.clone(),
                at: None,
            })
        }
    };
    match parts.as_slice() {
        ["citytwin", "gateways", key, "sensors", sensor, "readings"] => {
            let cx = cx(key).await?;
            let readings = decode_readings(&p.payload, sensor)?;
            let n = readings.len();
            Ok((state.city.queue_readings(&cx, readings).await?, n))
        }
        ["citytwin", "gateways", key, "units", unit, "position"] => {
            let cx = cx(key).await?;
            let (lon, lat) = decode_position(&p.payload)?;
            Ok((state.city.queue_move(&cx, unit, lon, lat).await?, 0))
        }
        ["citytwin", "gateways", key, "v1.1", rest @ ..] => {
            let cx = cx(key).await?;
            let reading = observation(&rest.join("/"), &p.payload)?;
            Ok((state.city.queue_readings(&cx, vec![reading]).await?, 1))
        }
        ["v1.1", rest @ ..] => {
            let reading = observation(&rest.join("/"), &p.payload)?;
            // the key that registered the sensor sends for it
            let registrar = state
                .city
                .with_live(|s| {
                    s.sensors
                        .get(&reading.sensor)
                        .map(|x| x.registered_by.clone())
                })
                .ok_or_else(|| {
                    Problem::bad_parameter(
                        "Datastream",
                        format!("no Datastream {:?}", reading.sensor),
                    )
                })?;
            let key = registrar
                .as_deref()
                .and_then(|r| r.strip_prefix("key:"))
                .ok_or_else(|| {
                    Problem::bad_parameter(
                        "topic",
                        format!(
                            "sensor {} was not registered by a gateway key: publish under citytwin/gateways/{{key id}}/v1.1/…",
                            reading.sensor
                        ),
                    )
                })?;
            let cx = cx(key).await?;
            Ok((state.city.queue_readings(&cx, vec![reading]).await?, 1))
        }
        ["citytwin", "sensors" | "units", ..] => Err(Problem::bad_parameter(
            "topic",
            format!(
                "{}: publish under citytwin/gateways/{{key id}}/…, the gateway's own key",
                p.topic
            ),
        )),
        _ => Err(Problem::bad_parameter(
            "topic",
            format!("no such topic {}", p.topic),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_url, parse_url_login};

    #[test]
    fn broker_urls_are_read_with_a_default_port() {
        assert_eq!(
            parse_url("mqtt://localhost:1884").unwrap(),
            ("localhost".into(), 1884)
        );
        assert_eq!(parse_url("mqtt://broker").unwrap(), ("broker".into(), 1883));
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://h:nope").is_err());
        assert!(parse_url("mqtt://").is_err());
        assert_eq!(
            parse_url_login("mqtt://ct:s3cret@broker:1884").unwrap(),
            ("broker".into(), 1884, Some(("ct".into(), "s3cret".into())))
        );
        let err = parse_url_login("mqtt://ct:s3cret@").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
