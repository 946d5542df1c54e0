//! OGC SensorThings API 1.1 over the live twin's sensors: the same sensors and readings as
//! `/sensors`, seen through SensorThings' entities, not a copy of them.
//!
//! | SensorThings | citytwin | id |
//! |---|---|---|
//! | Thing, Location, HistoricalLocation, FeatureOfInterest | a sensor, its place, its registration | the sensor's id (`'WL-0001'`) |
//! | Datastream | the sensor's one series of readings, with its unit | the sensor's id |
//! | Sensor, ObservedProperty | the kind of sensor and what it measures | the kind (`'water-level'`) |
//! | Observation | a raw reading in the change log | its number in the log |
//!
//! Readings folded into rollups past the raw retention (`[history]`) are not Observations;
//! `/sensors/{id}/readings?interval=` serves them. Alarms and threshold events stay
//! citytwin's own (`/sensors`, `/events`). Access is the sensors layer's read plan: a sensor
//! outside the reader's territory is absent from every entity set, and what the plan masks
//! is masked here too.

mod model;
pub mod odata;
mod request;

use model::{EntityScope, Snapshot, TYPES, related_one};
pub use model::{Id, Ty};
pub use request::observation_in;
use request::{Options, invalid, segments};

use crate::access::{Context, ReadPlan};
use crate::change::{Millis, ts};
use crate::live::ReadingIn;
use crate::store::{Cmp, ObsColumn, ObservationQuery, ObservationRow};
use crate::{City, Error, Result};
use odata::{Expr, Lit, Op, Val};
use serde_json::{Map, Value, json};

/// The path of the version served, below the server's root.
pub const VERSION: &str = "v1.1";

/// The conformance classes implemented (listed in the service root's `serverSettings`).
pub const CONFORMANCE: [&str; 5] = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
];

/// Entities in a page when `$top` is not given.
pub const DEFAULT_TOP: u64 = 100;
/// Most entities in a page.
pub const MAX_TOP: u64 = 10_000;
/// Most observations a filter the store cannot take whole is evaluated over.
const WINDOW: u64 = 100_000;
/// Deepest `$expand`.
const MAX_EXPAND: usize = 4;

/// What a GET answers: a document, or a property's raw value (`$value`).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// JSON
    Json(Value),
    /// text
    Text(String),
}

/// An answer and, for an entity set with more after this page, the `$skip` of the next.
#[derive(Debug, Clone, PartialEq)]
pub struct StaAnswer {
    /// the body
    pub body: Answer,
    /// the next page's `$skip`, when there is one
    pub next_skip: Option<u64>,
}

/// Where a path leads.
enum Target {
    /// an entity set: of a type, among these ids (`None`: all), or observations of these
    /// sensors
    Set(Ty, Option<Vec<Id>>),
    /// one entity
    One(Ty, Id),
}

fn not_found(what: &str) -> Error {
    Error::NotFound(format!("no {what}"))
}

/// Observations' columns by property name.
fn obs_column(path: &[String]) -> Option<ObsColumn> {
    match path {
        [p] if p == "phenomenonTime" || p == "resultTime" => Some(ObsColumn::At),
        [p] if p == "result" => Some(ObsColumn::Value),
        [p] if p == "id" || p == "@iot.id" => Some(ObsColumn::Seq),
        _ => None,
    }
}

fn obs_bound(col: ObsColumn, op: Op, lit: &Lit) -> Option<(ObsColumn, Cmp, f64)> {
    let v = match (col, lit) {
        (ObsColumn::At, Lit::Time(t)) => *t as f64,
        (ObsColumn::At, Lit::Str(s)) => ts::parse(s).ok()? as f64,
        (ObsColumn::Value | ObsColumn::Seq, Lit::Num(n)) => *n,
        _ => return None,
    };
    let cmp = match op {
        Op::Eq => Cmp::Eq,
        Op::Ne => Cmp::Ne,
        Op::Gt => Cmp::Gt,
        Op::Ge => Cmp::Ge,
        Op::Lt => Cmp::Lt,
        Op::Le => Cmp::Le,
        _ => return None,
    };
    Some((col, cmp, v))
}

/// The part of a filter the store can take (comparisons of time, result and id with
/// literals, joined by `and`); returns whether that is the whole filter.
fn pushdown(e: &Expr, out: &mut Vec<(ObsColumn, Cmp, f64)>) -> bool {
    match e {
        Expr::Binary(a, Op::And, b) => {
            let x = pushdown(a, out);
            let y = pushdown(b, out);
            x && y
        }
        Expr::Binary(a, op, b) if op.compares() => match (&**a, &**b) {
            (Expr::Path(p), Expr::Lit(l)) => obs_column(p)
                .and_then(|c| obs_bound(c, *op, l))
                .map(|bound| out.push(bound))
                .is_some(),
            (Expr::Lit(l), Expr::Path(p)) => obs_column(p)
                .and_then(|c| obs_bound(c, op.flipped(), l))
                .map(|bound| out.push(bound))
                .is_some(),
            _ => false,
        },
        _ => false,
    }
}

fn order_cmp(a: &Val, b: &Val) -> std::cmp::Ordering {
    use std::cmp::Ordering as O;
    let rank = |v: &Val| u8::from(!matches!(v, Val::Null));
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y).unwrap_or(O::Equal),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl City {
    fn sta_snapshot(&self, plan: &ReadPlan, base: &str) -> Snapshot {
        let sensors = self.with_live(|s| {
            s.sensors
                .values()
                .filter(|x| plan.shows_code(x.place.code()))
                .map(|x| (x.id.clone(), serde_json::to_value(x).unwrap_or(Value::Null)))
                .collect::<Vec<_>>()
        });
        Snapshot {
            sensors: sensors
                .into_iter()
                .map(|(id, v)| (id, self.shown_json("sensors", Some(plan), v)))
                .collect(),
            all: plan.territory.is_none(),
            base: base.to_owned(),
            built: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Answers a SensorThings GET: `path` below `/v1.1` (`Datastreams('WL-0001')/Observations`),
    /// its query options, and the service root's URL (`http://host/v1.1`) for links.
    pub async fn sensorthings(
        &self,
        plan: &ReadPlan,
        path: &str,
        params: &[(String, String)],
        base: &str,
    ) -> Result<StaAnswer> {
        let snap = self.sta_snapshot(plan, base);
        let mut segs = segments(path)?;
        // a trailing $value, $ref or property
        let mut value = false;
        let mut refs = false;
        if segs.last().is_some_and(|(s, _)| s == "$value") {
            value = true;
            segs.pop();
        } else if segs.last().is_some_and(|(s, _)| s == "$ref") {
            refs = true;
            segs.pop();
        }
        let mut property = None;
        let (first, id) = segs.first().cloned().ok_or_else(|| not_found("resource"))?;
        let mut target = match (Ty::from_plural(&first), id) {
            (Some(ty), Some(id)) => Target::One(ty, id),
            (Some(ty), None) => Target::Set(ty, None),
            (None, _) => return Err(not_found(&format!("entity set {first:?}"))),
        };
        for (i, (name, id)) in segs.iter().enumerate().skip(1) {
            let Target::One(ty, cur) = &target else {
                return Err(not_found(&format!(
                    "{name} after an entity set: name one entity first"
                )));
            };
            let (ty, cur) = (*ty, cur.clone());
            if let Some((to, many)) = ty.relation(name) {
                target = self.navigate(&snap, ty, &cur, to, many).await?;
                if let (Some(id), Target::Set(_, within)) = (id, &target) {
                    if within.as_ref().is_some_and(|w| !w.contains(id)) || to == Ty::Observation {
                        target = self.one_related(&snap, to, within.as_deref(), id).await?;
                    } else {
                        target = Target::One(to, id.clone());
                    }
                }
            } else if i == segs.len() - 1 && id.is_none() {
                property = Some(name.clone());
            } else {
                return Err(not_found(&format!("{name} of a {}", ty.singular())));
            }
        }
        let opts = Options::parse(params, 0)?;
        match target {
            Target::One(ty, id) => {
                let mut v = self
                    .one(&snap, ty, &id)
                    .await?
                    .ok_or_else(|| not_found(&format!("{} {}", ty.singular(), id.key())))?;
                if let Some(p) = property {
                    let key = if p == "id" {
                        "@iot.id".to_owned()
                    } else {
                        p.clone()
                    };
                    let pv = v.get(&key).cloned().ok_or_else(|| {
                        not_found(&format!("property {p} of a {}", ty.singular()))
                    })?;
                    return Ok(StaAnswer {
                        body: if value {
                            Answer::Text(match &pv {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                        } else {
                            Answer::Json(json!({ p: pv }))
                        },
                        next_skip: None,
                    });
                }
                if refs {
                    return Ok(StaAnswer {
                        body: Answer::Json(json!({ "@iot.selfLink": v["@iot.selfLink"] })),
                        next_skip: None,
                    });
                }
                self.shape(&snap, ty, &mut v, &opts).await?;
                Ok(StaAnswer {
                    body: Answer::Json(v),
                    next_skip: None,
                })
            }
            Target::Set(ty, within) => {
                if property.is_some() || value {
                    return Err(not_found("property of an entity set"));
                }
                let (mut list, count, more) = self.collect(&snap, ty, within, &opts).await?;
                let top = opts.top.unwrap_or(DEFAULT_TOP);
                let mut out = Map::new();
                if let Some(c) = count {
                    out.insert("@iot.count".into(), json!(c));
                }
                if refs {
                    list = list
                        .into_iter()
                        .map(|v| json!({ "@iot.selfLink": v["@iot.selfLink"] }))
                        .collect();
                } else {
                    for v in &mut list {
                        self.shape(&snap, ty, v, &opts).await?;
                    }
                }
                out.insert("value".into(), Value::Array(list));
                Ok(StaAnswer {
                    body: Answer::Json(Value::Object(out)),
                    next_skip: (more && top > 0).then_some(opts.skip + top),
                })
            }
        }
    }

    /// From one entity along a relation.
    async fn navigate(
        &self,
        snap: &Snapshot,
        ty: Ty,
        id: &Id,
        to: Ty,
        many: bool,
    ) -> Result<Target> {
        let v = self
            .one(snap, ty, id)
            .await?
            .ok_or_else(|| not_found(&format!("{} {}", ty.singular(), id.key())))?;
        if !many {
            let name = ty
                .relations()
                .iter()
                .find(|(_, t, _)| *t == to)
                .map_or("", |r| r.0);
            let (to, e) = related_one(snap, ty, &v, name).ok_or_else(|| not_found(name))?;
            return Ok(Target::One(
                to,
                Id::parse(&match &e["@iot.id"] {
                    Value::String(s) => format!("'{}'", s.replace('\'', "''")),
                    other => other.to_string(),
                })?,
            ));
        }
        Ok(Target::Set(to, Some(Self::related_ids(snap, ty, id, to))))
    }

    /// The ids of the entities related to one (for observations: the sensors whose readings).
    fn related_ids(snap: &Snapshot, ty: Ty, id: &Id, to: Ty) -> Vec<Id> {
        match (ty, to) {
            (Ty::Sensor | Ty::ObservedProperty, Ty::Datastream) => snap
                .sensors
                .iter()
                .filter(|(_, s)| s["type"].as_str() == Some(&id.text()))
                .map(|(k, _)| Id::Text(k.clone()))
                .collect(),
            _ => vec![Id::Text(id.text())],
        }
    }

    async fn one_related(
        &self,
        snap: &Snapshot,
        to: Ty,
        within: Option<&[Id]>,
        id: &Id,
    ) -> Result<Target> {
        if to == Ty::Observation {
            let Id::Num(seq) = id else {
                return Err(not_found("observation"));
            };
            let row = self.observation_row(*seq).await?;
            let sensors: Vec<String> = within.unwrap_or_default().iter().map(Id::text).collect();
            return match row {
                Some(r) if sensors.contains(&r.sensor) && snap.sensors.contains_key(&r.sensor) => {
                    Ok(Target::One(to, id.clone()))
                }
                _ => Err(not_found(&format!("Observation {}", id.key()))),
            };
        }
        Err(not_found(&format!("{} {}", to.singular(), id.key())))
    }

    async fn observation_row(&self, seq: u64) -> Result<Option<ObservationRow>> {
        Ok(self
            .store()
            .observations(&ObservationQuery {
                bounds: vec![(ObsColumn::Seq, Cmp::Eq, seq as f64)],
                limit: 1,
                ..ObservationQuery::default()
            })
            .await?
            .pop())
    }

    /// One entity, as JSON, when it exists and the reader may see it.
    async fn one(&self, snap: &Snapshot, ty: Ty, id: &Id) -> Result<Option<Value>> {
        if ty != Ty::Observation {
            return Ok(snap.entity(ty, id));
        }
        let Id::Num(seq) = id else { return Ok(None) };
        Ok(self
            .observation_row(*seq)
            .await?
            .filter(|r| snap.sensors.contains_key(&r.sensor))
            .map(|r| snap.observation(&r)))
    }

    /// A page of an entity set: the entities, their number when asked, and whether more
    /// follow.
    async fn collect(
        &self,
        snap: &Snapshot,
        ty: Ty,
        within: Option<Vec<Id>>,
        opts: &Options,
    ) -> Result<(Vec<Value>, Option<u64>, bool)> {
        let top = opts.top.unwrap_or(DEFAULT_TOP);
        let now = ts::now();
        if ty == Ty::Observation {
            return self
                .collect_observations(snap, within, opts, top, now)
                .await;
        }
        let ids = within.unwrap_or_else(|| snap.ids(ty));
        let mut list: Vec<Value> = ids
            .iter()
            .filter_map(|id| snap.entity(ty, id))
            .filter(|v| {
                opts.filter
                    .as_ref()
                    .is_none_or(|f| odata::passes(f, &EntityScope { snap, ty, v }, now))
            })
            .collect();
        if !opts.order.is_empty() {
            let key = |v: &Value| -> Vec<Val> {
                opts.order
                    .iter()
                    .map(|(e, _)| odata::eval(e, &EntityScope { snap, ty, v }, now))
                    .collect()
            };
            let mut keyed: Vec<(Vec<Val>, Value)> =
                list.into_iter().map(|v| (key(&v), v)).collect();
            keyed.sort_by(|(a, _), (b, _)| {
                for (i, (_, desc)) in opts.order.iter().enumerate() {
                    let o = order_cmp(&a[i], &b[i]);
                    let o = if *desc { o.reverse() } else { o };
                    if o.is_ne() {
                        return o;
                    }
                }
                std::cmp::Ordering::Equal
            });
            list = keyed.into_iter().map(|(_, v)| v).collect();
        }
        let count = opts.count.then_some(list.len() as u64);
        let skip = usize::try_from(opts.skip).unwrap_or(usize::MAX);
        let more = list.len() > skip.saturating_add(top as usize);
        let page = list.into_iter().skip(skip).take(top as usize).collect();
        Ok((page, count, more))
    }

    async fn collect_observations(
        &self,
        snap: &Snapshot,
        within: Option<Vec<Id>>,
        opts: &Options,
        top: u64,
        now: Millis,
    ) -> Result<(Vec<Value>, Option<u64>, bool)> {
        // which sensors: those the path names, among those the reader may see
        let sensors = match within {
            Some(ids) => Some(
                ids.iter()
                    .map(Id::text)
                    .filter(|s| snap.sensors.contains_key(s))
                    .collect::<Vec<_>>(),
            ),
            None if snap.all => None,
            None => Some(snap.sensors.keys().cloned().collect()),
        };
        if sensors.as_ref().is_some_and(Vec::is_empty) {
            return Ok((Vec::new(), opts.count.then_some(0), false));
        }
        let mut bounds = Vec::new();
        let whole = opts
            .filter
            .as_ref()
            .is_none_or(|f| pushdown(f, &mut bounds));
        let mut order = Vec::new();
        for (e, desc) in &opts.order {
            match e {
                Expr::Path(p) if obs_column(p).is_some() => {
                    order.push((obs_column(p).unwrap_or(ObsColumn::Seq), *desc));
                }
                _ => {
                    return Err(invalid(
                        "$orderby",
                        "Observations are ordered by phenomenonTime, resultTime, result or id",
                    ));
                }
            }
        }
        let mut q = ObservationQuery {
            sensors,
            bounds,
            order,
            offset: opts.skip,
            limit: top + 1,
        };
        if whole {
            let rows = self.store().observations(&q).await?;
            let count = if opts.count {
                Some(self.store().count_observations(&q).await?)
            } else {
                None
            };
            let more = rows.len() as u64 > top;
            let list = rows
                .iter()
                .take(top as usize)
                .map(|r| snap.observation(r))
                .collect();
            return Ok((list, count, more));
        }
        // the rest of the filter, over a bounded window of what the store narrowed
        q.offset = 0;
        q.limit = WINDOW + 1;
        let rows = self.store().observations(&q).await?;
        if rows.len() as u64 > WINDOW {
            return Err(invalid(
                "$filter",
                format!(
                    "this filter is evaluated over at most {WINDOW} observations and more match its bounds; narrow it by phenomenonTime, result or id"
                ),
            ));
        }
        let filter = opts.filter.as_ref();
        let kept: Vec<Value> = rows
            .iter()
            .map(|r| snap.observation(r))
            .filter(|v| {
                filter.is_none_or(|f| {
                    odata::passes(
                        f,
                        &EntityScope {
                            snap,
                            ty: Ty::Observation,
                            v,
                        },
                        now,
                    )
                })
            })
            .collect();
        let count = opts.count.then_some(kept.len() as u64);
        let skip = usize::try_from(opts.skip).unwrap_or(usize::MAX);
        let more = kept.len() > skip.saturating_add(top as usize);
        Ok((
            kept.into_iter().skip(skip).take(top as usize).collect(),
            count,
            more,
        ))
    }

    /// Expands, selects and tidies one entity for its answer.
    async fn shape(&self, snap: &Snapshot, ty: Ty, v: &mut Value, opts: &Options) -> Result<()> {
        for (path, inner) in &opts.expand {
            Box::pin(self.expand(snap, ty, v, path, inner)).await?;
        }
        if let Some(obj) = v.as_object_mut() {
            obj.remove("\u{0}sensor");
            if let Some(select) = &opts.select {
                let keep: Vec<String> = select
                    .iter()
                    .map(|s| {
                        if s == "id" {
                            "@iot.id".to_owned()
                        } else {
                            s.clone()
                        }
                    })
                    .collect();
                for k in &keep {
                    let known = obj.contains_key(k) || ty.relation(k).is_some();
                    if !known {
                        return Err(invalid(
                            "$select",
                            format!("a {} has no property {k}", ty.singular()),
                        ));
                    }
                }
                obj.retain(|k, _| {
                    keep.iter().any(|s| {
                        k == s
                            || k.strip_suffix("@iot.navigationLink") == Some(s)
                            || k == &format!("{s}@iot.nextLink")
                    }) || (ty.relation(k).is_some() && opts.expand.iter().any(|(p, _)| p[0] == *k))
                });
            }
        }
        Ok(())
    }

    async fn expand(
        &self,
        snap: &Snapshot,
        ty: Ty,
        v: &mut Value,
        path: &[String],
        inner: &Options,
    ) -> Result<()> {
        let Some((head, rest)) = path.split_first() else {
            return Ok(());
        };
        let (to, many) = ty.relation(head).ok_or_else(|| {
            invalid(
                "$expand",
                format!("a {} has no relation {head}", ty.singular()),
            )
        })?;
        // deeper paths expand their first step with the rest beneath
        let inner = if rest.is_empty() {
            inner.clone()
        } else {
            Options {
                expand: vec![(rest.to_vec(), inner.clone())],
                ..Options::default()
            }
        };
        let id = match &v["@iot.id"] {
            Value::String(s) => Id::Text(s.clone()),
            Value::Number(n) => Id::Num(n.as_u64().unwrap_or(0)),
            _ => return Ok(()),
        };
        if many {
            let within = Some(Self::related_ids(snap, ty, &id, to));
            let (mut list, count, more) = self.collect(snap, to, within, &inner).await?;
            for e in &mut list {
                Box::pin(self.shape(snap, to, e, &inner)).await?;
            }
            if let Some(o) = v.as_object_mut() {
                if let Some(c) = count {
                    o.insert(format!("{head}@iot.count"), json!(c));
                }
                if more && inner.top != Some(0) {
                    let top = inner.top.unwrap_or(DEFAULT_TOP);
                    o.insert(
                        format!("{head}@iot.nextLink"),
                        json!(format!(
                            "{}/{head}?$top={top}&$skip={}",
                            snap.link(ty, &id),
                            inner.skip + top
                        )),
                    );
                }
                o.insert(head.clone(), Value::Array(list));
            }
        } else if let Some((to, mut e)) = related_one(snap, ty, v, head) {
            Box::pin(self.shape(snap, to, &mut e, &inner)).await?;
            if let Some(o) = v.as_object_mut() {
                o.insert(head.clone(), e);
            }
        }
        Ok(())
    }

    /// Creates an Observation (a reading) from a SensorThings body: `path` is `Observations`
    /// (the body names its `Datastream`) or `Datastreams('WL-0001')/Observations`. Durable
    /// when answered; returns its id and the reading.
    pub async fn sta_create(
        &self,
        cx: &Context,
        path: &str,
        body: &Value,
    ) -> Result<(u64, ReadingIn)> {
        let reading = observation_in(path, body, ts::now())?;
        let seq = self.observe(cx, reading.clone()).await?;
        Ok((seq, reading))
    }
}

/// An Observation as the MQTT extension publishes it.
#[must_use]
pub fn observation_message(base: &str, seq: u64, sensor: &str, at: Millis, value: f64) -> Value {
    let link = format!("{base}/Observations({seq})");
    json!({
        "@iot.id": seq,
        "@iot.selfLink": link,
        "phenomenonTime": ts::format(at),
        "resultTime": ts::format(at),
        "result": value,
        "Datastream@iot.navigationLink": format!("{link}/Datastream"),
        "FeatureOfInterest@iot.navigationLink": format!("{link}/FeatureOfInterest"),
        "Datastream": { "@iot.id": sensor },
    })
}

/// The MQTT topic an Observation of a sensor is published on.
#[must_use]
pub fn observation_topic(sensor: &str) -> String {
    format!(
        "{VERSION}/Datastreams{}/Observations",
        Id::Text(sensor.to_owned()).key()
    )
}

/// The service root document.
#[must_use]
pub fn service_root(base: &str, mqtt: Option<&str>) -> Value {
    let value: Vec<Value> = TYPES
        .iter()
        .map(|t| json!({ "name": t.plural(), "url": format!("{base}/{}", t.plural()) }))
        .collect();
    let mut settings = json!({ "conformance": CONFORMANCE });
    if let Some(m) = mqtt {
        settings["http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation"] =
            json!({ "endpoints": [m] });
    }
    json!({ "value": value, "serverSettings": settings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_bodies_become_readings() {
        let r = observation_in(
            "Observations",
            &json!({"result": 1.5, "phenomenonTime": "2026-11-30T08:00:00Z", "Datastream": {"@iot.id": "WL-1"}}),
            0,
        )
        .unwrap();
        assert_eq!((r.sensor.as_str(), r.value), ("WL-1", 1.5));
        assert_eq!(r.at, ts::parse("2026-11-30T08:00:00Z").unwrap());
        let r = observation_in(
            "Datastreams('WL-1')/Observations",
            &json!({"result": 2}),
            99,
        )
        .unwrap();
        assert_eq!((r.sensor.as_str(), r.at), ("WL-1", 99));
        for (path, body, says) in [
            ("Observations", json!({"result": 1}), "names its Datastream"),
            (
                "Observations",
                json!({"result": "high", "Datastream": {"@iot.id": "x"}}),
                "finite number",
            ),
            (
                "Datastreams('a')/Observations",
                json!({"result": 1, "Datastream": {"@iot.id": "b"}}),
                "on the path",
            ),
            (
                "Observations",
                json!({"result": 1, "parameters": {}, "Datastream": {"@iot.id": "x"}}),
                "not kept",
            ),
            (
                "Observations",
                json!({"result": 1, "phenomenonTime": "2026-11-30T08:00:00Z/2026-11-30T09:00:00Z", "Datastream": {"@iot.id": "x"}}),
                "interval",
            ),
            ("Things", json!({"result": 1}), "are created at"),
        ] {
            let e = observation_in(path, &body, 0).unwrap_err().to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn filters_on_time_result_and_id_go_to_the_store() {
        let mut b = Vec::new();
        let f = odata::parse("phenomenonTime ge 2026-11-30T00:00:00Z and 5 lt result and id ne 3")
            .unwrap();
        assert!(pushdown(&f, &mut b));
        assert_eq!(b.len(), 3);
        assert_eq!(b[1], (ObsColumn::Value, Cmp::Gt, 5.0));
        let mut b = Vec::new();
        let f = odata::parse("result gt 1 and Datastream/name eq 'x'").unwrap();
        assert!(
            !pushdown(&f, &mut b),
            "the datastream's name is evaluated here"
        );
        assert_eq!(b.len(), 1);
        let mut b = Vec::new();
        assert!(!pushdown(
            &odata::parse("result gt 1 or result lt 0").unwrap(),
            &mut b
        ));
    }

    #[test]
    fn paths_and_options_read_as_the_standard_writes_them() {
        let s = segments("Datastreams('WL-0''1')/Observations(42)").unwrap();
        assert_eq!(
            s[0],
            ("Datastreams".into(), Some(Id::Text("WL-0'1".into())))
        );
        assert_eq!(s[1], ("Observations".into(), Some(Id::Num(42))));
        assert!(segments("Things(abc)").is_err());
        let o = Options::parse(
            &[("$expand".into(), "Datastreams($select=name;$expand=Observations($top=1;$orderby=phenomenonTime desc)),Locations".into())],
            0,
        )
        .unwrap();
        assert_eq!(o.expand.len(), 2);
        assert_eq!(
            o.expand[0].1.select.as_deref(),
            Some(&["name".to_owned()][..])
        );
        assert_eq!(o.expand[0].1.expand[0].1.top, Some(1));
        assert!(o.expand[0].1.expand[0].1.order[0].1);
        assert!(Options::parse(&[("$top".into(), "100001".into())], 0).is_err());
        assert_eq!(
            Options::parse(&[("$top".into(), "0".into())], 0)
                .unwrap()
                .top,
            Some(0)
        );
        assert!(Options::parse(&[("$frob".into(), "1".into())], 0).is_err());
        assert_eq!(
            observation_topic("WL-1"),
            "v1.1/Datastreams('WL-1')/Observations"
        );
    }
}
