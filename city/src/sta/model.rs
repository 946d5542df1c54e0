//! SensorThings' entities over the sensors: their types and relations, their ids, and the
//! snapshot of the sensors a reader may see that they are built from.

use super::odata::{Scope, Val};
use crate::change::ts;
use crate::store::ObservationRow;
use crate::{Error, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// An entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    /// a sensor, as a thing
    Thing,
    /// a sensor's place
    Location,
    /// a sensor's registration at its place
    HistoricalLocation,
    /// a sensor's series of readings
    Datastream,
    /// a kind of sensor
    Sensor,
    /// what a kind of sensor measures
    ObservedProperty,
    /// a reading
    Observation,
    /// where a sensor's readings are of
    FeatureOfInterest,
}

pub(super) const TYPES: [Ty; 8] = [
    Ty::Thing,
    Ty::Location,
    Ty::HistoricalLocation,
    Ty::Datastream,
    Ty::Sensor,
    Ty::ObservedProperty,
    Ty::Observation,
    Ty::FeatureOfInterest,
];

impl Ty {
    /// The entity set's name.
    #[must_use]
    pub fn plural(self) -> &'static str {
        match self {
            Self::Thing => "Things",
            Self::Location => "Locations",
            Self::HistoricalLocation => "HistoricalLocations",
            Self::Datastream => "Datastreams",
            Self::Sensor => "Sensors",
            Self::ObservedProperty => "ObservedProperties",
            Self::Observation => "Observations",
            Self::FeatureOfInterest => "FeaturesOfInterest",
        }
    }

    pub(super) fn singular(self) -> &'static str {
        match self {
            Self::Thing => "Thing",
            Self::Location => "Location",
            Self::HistoricalLocation => "HistoricalLocation",
            Self::Datastream => "Datastream",
            Self::Sensor => "Sensor",
            Self::ObservedProperty => "ObservedProperty",
            Self::Observation => "Observation",
            Self::FeatureOfInterest => "FeatureOfInterest",
        }
    }

    pub(super) fn from_plural(s: &str) -> Option<Self> {
        TYPES.into_iter().find(|t| t.plural() == s)
    }

    /// The relations of an entity of this type: (name, type, to-many).
    pub(super) fn relations(self) -> &'static [(&'static str, Ty, bool)] {
        match self {
            Self::Thing => &[
                ("Locations", Ty::Location, true),
                ("HistoricalLocations", Ty::HistoricalLocation, true),
                ("Datastreams", Ty::Datastream, true),
            ],
            Self::Location => &[
                ("Things", Ty::Thing, true),
                ("HistoricalLocations", Ty::HistoricalLocation, true),
            ],
            Self::HistoricalLocation => &[
                ("Thing", Ty::Thing, false),
                ("Locations", Ty::Location, true),
            ],
            Self::Datastream => &[
                ("Thing", Ty::Thing, false),
                ("Sensor", Ty::Sensor, false),
                ("ObservedProperty", Ty::ObservedProperty, false),
                ("Observations", Ty::Observation, true),
            ],
            Self::Sensor | Self::ObservedProperty => &[("Datastreams", Ty::Datastream, true)],
            Self::Observation => &[
                ("Datastream", Ty::Datastream, false),
                ("FeatureOfInterest", Ty::FeatureOfInterest, false),
            ],
            Self::FeatureOfInterest => &[("Observations", Ty::Observation, true)],
        }
    }

    pub(super) fn relation(self, name: &str) -> Option<(Ty, bool)> {
        self.relations()
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, t, many)| (*t, *many))
    }
}

/// An entity's id: text for every type but Observations, whose ids are numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Id {
    /// a sensor's id or a kind
    Text(String),
    /// an observation's number in the change log
    Num(u64),
}

impl Id {
    pub(super) fn json(&self) -> Value {
        match self {
            Self::Text(s) => json!(s),
            Self::Num(n) => json!(n),
        }
    }

    /// As a path segment writes it: `('WL-0001')` or `(42)`.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Text(s) => format!("('{}')", s.replace('\'', "''")),
            Self::Num(n) => format!("({n})"),
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Num(n) => n.to_string(),
        }
    }

    /// Reads `'text'` or a number, as in a path or a body's `@iot.id`.
    pub(super) fn parse(raw: &str) -> Result<Self> {
        if let Some(q) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            return Ok(Self::Text(q.replace("''", "'")));
        }
        raw.parse().map(Self::Num).map_err(|_| {
            Error::Invalid(format!("{raw:?} is not an id: quote text ids ('WL-0001')"))
        })
    }
}

/// The sensors a reader may see, as the plan shows them, by id.
pub(super) struct Snapshot {
    pub(super) sensors: BTreeMap<String, Value>,
    /// every sensor visible (no territory narrows the plan)
    pub(super) all: bool,
    pub(super) base: String,
    /// entities already built, by type and id: a filter through a relation asks for the
    /// same Datastream once per Observation
    pub(super) built: std::sync::Mutex<std::collections::HashMap<(Ty, String), Option<Value>>>,
}

impl Snapshot {
    pub(super) fn kinds(&self) -> BTreeMap<String, &Value> {
        self.sensors
            .values()
            .filter_map(|s| s["type"].as_str().map(|k| (k.to_owned(), s)))
            .collect()
    }

    pub(super) fn sensor(&self, id: &Id) -> Option<&Value> {
        self.sensors.get(&id.text())
    }

    pub(super) fn link(&self, ty: Ty, id: &Id) -> String {
        format!("{}/{}{}", self.base, ty.plural(), id.key())
    }

    /// An entity (not an observation) by type and id, as JSON, when the reader may see it.
    pub(super) fn entity(&self, ty: Ty, id: &Id) -> Option<Value> {
        let key = (ty, id.text());
        if let Some(hit) = self.built.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return hit;
        }
        let made = self.make(ty, id);
        if let Ok(mut m) = self.built.lock() {
            m.insert(key, made.clone());
        }
        made
    }

    pub(super) fn make(&self, ty: Ty, id: &Id) -> Option<Value> {
        let mut v = match ty {
            Ty::Sensor | Ty::ObservedProperty => {
                let kinds = self.kinds();
                let kind = id.text();
                kinds.get(&kind)?;
                kind_entity(ty, &kind)
            }
            Ty::Observation => return None,
            _ => sensor_entity(ty, self.sensor(id)?),
        };
        let obj = v.as_object_mut()?;
        obj.insert("@iot.id".into(), id.json());
        obj.insert("@iot.selfLink".into(), json!(self.link(ty, id)));
        for (name, _, _) in ty.relations() {
            obj.insert(
                format!("{name}@iot.navigationLink"),
                json!(format!("{}/{name}", self.link(ty, id))),
            );
        }
        Some(v)
    }

    pub(super) fn observation(&self, r: &ObservationRow) -> Value {
        let id = Id::Num(r.seq);
        let mut v = json!({
            "@iot.id": r.seq,
            "@iot.selfLink": self.link(Ty::Observation, &id),
            "phenomenonTime": ts::format(r.at),
            "resultTime": ts::format(r.at),
            "result": r.value,
        });
        if let Some(o) = v.as_object_mut() {
            for (name, _, _) in Ty::Observation.relations() {
                o.insert(
                    format!("{name}@iot.navigationLink"),
                    json!(format!("{}/{name}", self.link(Ty::Observation, &id))),
                );
            }
            // the sensor, for navigation (taken out before the entity is shown)
            o.insert("\u{0}sensor".into(), json!(r.sensor));
        }
        v
    }

    /// The ids of every visible entity of a type (not observations), in order.
    pub(super) fn ids(&self, ty: Ty) -> Vec<Id> {
        match ty {
            Ty::Sensor | Ty::ObservedProperty => self.kinds().into_keys().map(Id::Text).collect(),
            _ => self.sensors.keys().cloned().map(Id::Text).collect(),
        }
    }
}

pub(super) fn sensor_entity(ty: Ty, s: &Value) -> Value {
    let id = s["id"].as_str().unwrap_or_default();
    let kind = s["type"].as_str().unwrap_or_default();
    let name = s["name"].as_str().unwrap_or(id);
    let point = json!({ "type": "Point", "coordinates": [s["lon"], s["lat"]] });
    match ty {
        Ty::Thing => json!({
            "name": name,
            "description": format!("{kind} sensor {id}"),
            "properties": {
                "type": kind,
                "place": s["place"],
                "alarm": s["alarm"],
                "event": s["event"],
            },
        }),
        Ty::Location => json!({
            "name": name,
            "description": format!("where sensor {id} stands"),
            "encodingType": "application/geo+json",
            "location": point,
        }),
        Ty::HistoricalLocation => json!({ "time": s["registered_at"] }),
        Ty::FeatureOfInterest => json!({
            "name": name,
            "description": format!("the place sensor {id} measures"),
            "encodingType": "application/geo+json",
            "feature": point,
        }),
        _ => {
            let unit = s["unit"].as_str().unwrap_or_default();
            let latest = s["latest"]["at"].clone();
            json!({
                "name": format!("{name} {kind}"),
                "description": format!("the {kind} readings of sensor {id}, in {unit}"),
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {
                    "name": unit,
                    "symbol": unit,
                    "definition": format!("urn:citytwin:unit:{unit}"),
                },
                "observedArea": point,
                "phenomenonTime": latest,
                "resultTime": latest,
                "properties": { "thresholds": s["thresholds"] },
            })
        }
    }
}

pub(super) fn kind_entity(ty: Ty, kind: &str) -> Value {
    if ty == Ty::Sensor {
        json!({
            "name": kind,
            "description": format!("{kind} sensors of the city's sensor network"),
            "encodingType": "text/plain",
            "metadata": format!("{kind} sensor; thresholds and units per Datastream"),
        })
    } else {
        json!({
            "name": kind,
            "definition": format!("urn:citytwin:observed-property:{kind}"),
            "description": format!("{kind}, as the city's sensors measure it"),
        })
    }
}

/// An entity being filtered or ordered, with the snapshot to follow its relations.
pub(super) struct EntityScope<'a> {
    pub(super) snap: &'a Snapshot,
    pub(super) ty: Ty,
    pub(super) v: &'a Value,
}

pub(super) fn related_one(snap: &Snapshot, ty: Ty, v: &Value, rel: &str) -> Option<(Ty, Value)> {
    let (to, many) = ty.relation(rel)?;
    if many {
        return None;
    }
    let sensor = match ty {
        Ty::Observation => v["\u{0}sensor"].as_str()?.to_owned(),
        _ => v["@iot.id"].as_str()?.to_owned(),
    };
    let id = match to {
        Ty::Sensor | Ty::ObservedProperty => {
            Id::Text(snap.sensors.get(&sensor)?["type"].as_str()?.to_owned())
        }
        _ => Id::Text(sensor),
    };
    snap.entity(to, &id).map(|e| (to, e))
}

impl Scope for EntityScope<'_> {
    fn get(&self, path: &[String]) -> Val {
        let Some((head, rest)) = path.split_first() else {
            return Val::Null;
        };
        if self.ty.relation(head).is_some() {
            return related_one(self.snap, self.ty, self.v, head).map_or(Val::Null, |(ty, v)| {
                EntityScope {
                    snap: self.snap,
                    ty,
                    v: &v,
                }
                .get(rest)
            });
        }
        let key = if head == "id" {
            "@iot.id"
        } else {
            head.as_str()
        };
        let mut cur = &self.v[key];
        for p in rest {
            cur = &cur[p.as_str()];
        }
        Val::from_json(cur)
    }
}
