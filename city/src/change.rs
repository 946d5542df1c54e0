//! A change of the live twin — what the store appends and reads back, the writer publishes
//! and subscribers receive — with the types it is made of (times, the live layers). Its own
//! module, below both the live twin and the stores, so neither depends on the other for it.

use serde::Serialize;
use std::sync::{Arc, OnceLock};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Times as RFC 3339 text with milliseconds (`2026-11-22T08:00:00.000Z`) on the wire and in
/// the store.
pub mod ts {
    use super::Millis;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a time.
    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*ms))
    }

    /// Reads a time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// RFC 3339 with milliseconds, UTC.
    #[must_use]
    pub fn format(ms: Millis) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let f = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.format(&f).unwrap_or_default()
    }

    /// Reads an RFC 3339 time (any offset) into UTC milliseconds; a date alone
    /// (`YYYY-MM-DD`) is the start of that day in Beijing time (UTC+8), the city's calendar.
    pub fn parse(text: &str) -> Result<Millis, String> {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .or_else(|e| {
                let date = time::Date::parse(
                    text,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map_err(|_| e)?;
                Ok::<_, time::error::Parse>(date.midnight().assume_offset(crate::clock::OFFSET))
            })
            .map_err(|e| format!("{text:?} is not an RFC 3339 time (or a date YYYY-MM-DD): {e}"))?;
        Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis)
    }

    /// The current time.
    #[must_use]
    pub fn now() -> Millis {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
    }
}

/// The three live layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LiveLayer {
    /// events
    Events,
    /// sensors
    Sensors,
    /// units
    Units,
}

impl LiveLayer {
    /// All three.
    pub const ALL: [LiveLayer; 3] = [Self::Events, Self::Sensors, Self::Units];

    /// The layer name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Sensors => "sensors",
            Self::Units => "units",
        }
    }

    /// The layer of a name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// One change of the live twin, as stored, replayed and pushed to subscribers.
#[derive(Debug, Clone)]
pub struct Change {
    /// position in the change log, from 1, without gaps
    pub seq: u64,
    /// when: the reading's time for readings, else when the twin recorded it
    pub at: Millis,
    /// what happened (`event.reported`, `reading`, `alarm.raised`, `unit.moved`, …)
    pub kind: &'static str,
    /// the layer of the thing that changed
    pub layer: LiveLayer,
    /// its id
    pub entity: String,
    /// where it is
    pub lon: f64,
    /// where it is
    pub lat: f64,
    /// the finest territorial code of where it is
    pub grid: Option<String>,
    /// the value, for readings
    pub value: Option<f64>,
    /// the thing as JSON after the change (not for readings)
    pub body: Option<String>,
    pub(crate) json: OnceLock<Arc<str>>,
}

/// Every kind of change.
pub const KINDS: &[&str] = &[
    "event.reported",
    "event.merged",
    "event.transitioned",
    "event.assigned",
    "event.commanded",
    "event.updated",
    "sensor.registered",
    "reading",
    "alarm.raised",
    "alarm.cleared",
    "unit.registered",
    "unit.moved",
    "unit.status",
];

impl Change {
    /// A change as read back from the store.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn stored(
        seq: u64,
        at: Millis,
        kind: &str,
        layer: &str,
        entity: String,
        lon: f64,
        lat: f64,
        grid: Option<String>,
        value: Option<f64>,
        body: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            seq,
            at,
            kind: KINDS.iter().find(|k| **k == kind)?,
            layer: LiveLayer::parse(layer)?,
            entity,
            lon,
            lat,
            grid,
            value,
            body,
            json: OnceLock::new(),
        })
    }

    /// The change as one JSON object, written once however many subscribers get it.
    pub fn json(&self) -> Arc<str> {
        /// The members serde writes (escaped, non-finite numbers as null); `data` is JSON
        /// already and goes in as it is.
        #[derive(Serialize)]
        struct Wire<'a> {
            seq: u64,
            at: String,
            kind: &'a str,
            layer: &'a str,
            id: &'a str,
            lon: f64,
            lat: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            grid: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            value: Option<f64>,
        }
        Arc::clone(self.json.get_or_init(|| {
            let wire = Wire {
                seq: self.seq,
                at: ts::format(self.at),
                kind: self.kind,
                layer: self.layer.name(),
                id: &self.entity,
                lon: self.lon,
                lat: self.lat,
                grid: self.grid.as_deref(),
                value: self.value,
            };
            let mut s = serde_json::to_string(&wire).unwrap_or_else(|_| "{}".into());
            if let Some(b) = &self.body {
                s.pop();
                s.push_str(r#","data":"#);
                s.push_str(b);
                s.push('}');
            }
            Arc::from(s)
        }))
    }
}
