//! The live state and the rules that change it: every operation checks the state first, then
//! changes it and says what changed. Pure logic; persisting and publishing is the runtime's.

use super::model::{
    Action, Alarm, Command, Event, EventState, LiveLayer, Millis, Named, Place, Report, Rule,
    Sample, Sensor, Severity, Source, Step, Thresholds, Unit, UnitStatus, ts,
};
use crate::{Error, Result};
use citytwin_tiles::proj::haversine_m;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// How events are handled: deadlines per category and the duplicate-merge window.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// a report within this distance of an open event of its category joins it (metres)
    pub merge_distance_m: f64,
    /// … when that event was reported at most this long before (milliseconds)
    pub merge_window_ms: Millis,
    /// hours to close an event, per category
    pub deadlines: BTreeMap<String, u32>,
    /// hours to close an event of any other category
    pub default_deadline_hours: u32,
    /// readings timed further than this ahead of the server clock are refused (milliseconds)
    pub max_clock_skew_ms: Millis,
    /// the catalogue entries of the live layers (`events`, `sensors`, `units`), from the
    /// configuration; a live layer without one is not shared and not open
    pub catalog: BTreeMap<String, crate::catalog::Classification>,
    /// how much raw history is kept, and how often the twin is checkpointed
    pub history: super::history::HistoryPolicy,
    /// most sensors one key or user may register
    pub max_sensors_per_key: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        let deadlines = [
            ("gas-leak", 1),
            ("fire-hazard", 1),
            ("waterlogging", 2),
            ("illegal-parking", 2),
            ("pipe-burst", 4),
            ("manhole-cover", 4),
            ("fallen-tree", 6),
            ("noise", 24),
            ("garbage", 24),
            ("road-damage", 48),
            ("street-light", 72),
            ("illegal-construction", 120),
        ]
        .into_iter()
        .map(|(c, h)| (c.to_owned(), h))
        .collect();
        Self {
            merge_distance_m: 100.0,
            merge_window_ms: 2 * 3_600_000,
            deadlines,
            default_deadline_hours: 72,
            max_clock_skew_ms: 5 * 60_000,
            catalog: BTreeMap::new(),
            history: super::history::HistoryPolicy::default(),
            max_sensors_per_key: 100_000,
        }
    }
}

impl LiveOptions {
    /// Hours to close an event of a category: its own deadline, 2 hours for sensor alarms
    /// (`…-alarm`), else the default.
    #[must_use]
    pub fn deadline_hours(&self, category: &str) -> u32 {
        self.deadlines
            .get(category)
            .copied()
            .unwrap_or(if category.ends_with("-alarm") {
                2
            } else {
                self.default_deadline_hours
            })
    }
}

pub use crate::change::{Change, KINDS};

/// Events, sensors and units as they stand.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// events by id
    pub events: BTreeMap<i64, Event>,
    /// sensors by id
    pub sensors: BTreeMap<String, Sensor>,
    /// units by id
    pub units: BTreeMap<String, Unit>,
    /// the id the next event gets
    pub next_event: i64,
    /// the last change's sequence number
    pub seq: u64,
}

impl LiveState {
    /// The state recorded by the latest snapshot of each thing and each sensor's latest
    /// reading, as [`crate::store::Store::live_at`] reads them (snapshots in sequence order).
    pub fn fold(changes: &[Change], seq: u64) -> Result<Self> {
        let mut s = Self {
            next_event: 1,
            seq,
            ..Self::default()
        };
        for c in changes {
            if let Some(body) = &c.body {
                s.take_snapshot(c, body, "in the store")?;
            }
        }
        for c in changes.iter().filter(|c| c.kind == "reading") {
            if let (Some(x), Some(value)) = (s.sensors.get_mut(&c.entity), c.value) {
                // a rollup's last reading may sit beside a later raw one: the latest wins
                if x.latest.is_none_or(|l| l.at <= c.at) {
                    x.latest = Some(Sample { at: c.at, value });
                }
            }
        }
        Ok(s)
    }

    /// Puts the thing a change's snapshot holds in place of what the state had of it.
    fn take_snapshot(&mut self, c: &Change, body: &str, from: &str) -> Result<()> {
        let bad = |e: serde_json::Error| {
            Error::Invalid(format!("change {} {from} is unreadable: {e}", c.seq))
        };
        match c.layer {
            LiveLayer::Events => {
                let e: Event = serde_json::from_str(body).map_err(bad)?;
                self.next_event = self.next_event.max(e.id + 1);
                self.events.insert(e.id, e);
            }
            LiveLayer::Sensors => {
                let x: Sensor = serde_json::from_str(body).map_err(bad)?;
                self.sensors.insert(x.id.clone(), x);
            }
            LiveLayer::Units => {
                let u: Unit = serde_json::from_str(body).map_err(bad)?;
                self.units.insert(u.id.clone(), u);
            }
        }
        Ok(())
    }

    /// The nearest available units (of a type, when given) to a point: (unit, metres),
    /// nearest first.
    #[must_use]
    pub fn nearest_units(
        &self,
        lon: f64,
        lat: f64,
        kind: Option<&str>,
        n: usize,
    ) -> Vec<(&Unit, f64)> {
        let mut found: Vec<(&Unit, f64)> = self
            .units
            .values()
            .filter(|u| u.status == UnitStatus::Available && kind.is_none_or(|k| u.kind == k))
            .map(|u| (u, haversine_m((lon, lat), (u.lon, u.lat))))
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
        found.truncate(n);
        found
    }

    /// Applies one change another instance committed (as the change bus or the change log
    /// carries it): `Ok(false)` for one this state already shows, [`Error::Conflict`] when
    /// changes before it are missing (the caller fills them from the change log first).
    pub fn follow(&mut self, c: &Change) -> Result<bool> {
        if c.seq <= self.seq {
            return Ok(false);
        }
        if c.seq != self.seq + 1 {
            return Err(Error::Conflict {
                detail: format!(
                    "change {} follows {}: changes between are missing",
                    c.seq, self.seq
                ),
                state: self.seq.to_string(),
                allowed: vec![(self.seq + 1).to_string()],
            });
        }
        match &c.body {
            Some(body) => self.take_snapshot(c, body, "from the writer")?,
            None => {
                // a late reading does not replace a newer one (as when it was taken)
                if let (Some(x), Some(value)) = (self.sensors.get_mut(&c.entity), c.value)
                    && x.latest.is_none_or(|p| c.at >= p.at)
                {
                    x.latest = Some(Sample { at: c.at, value });
                }
            }
        }
        self.seq = c.seq;
        Ok(true)
    }

    /// Applies the outcome of a committed batch.
    pub fn commit(&mut self, tx: Overlay) {
        self.events.extend(tx.events);
        self.sensors.extend(tx.sensors);
        self.units.extend(tx.units);
        self.next_event = tx.next_event;
        self.seq = tx.seq;
    }
}

/// A reported event, placed in its grid chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewEvent {
    /// where it came from
    pub source: Source,
    /// category
    pub category: String,
    /// severity
    pub severity: Severity,
    /// what happened
    pub description: String,
    /// longitude
    pub lon: f64,
    /// latitude
    pub lat: f64,
    /// photo and video links
    pub media: Vec<String>,
    /// who reported it (a citizen's name and contact, as given)
    pub reporter: Option<String>,
    /// who filed it, as its history names them (the signed-in principal); the source when
    /// absent (never the reporter: a citizen's name and contact stay in `reporter`, which
    /// the catalogue can mark personal)
    pub actor: Option<String>,
    /// the hash of the receipt the reporter was given, to follow the report with
    pub receipt: Option<String>,
    /// its grid chain
    pub place: Place,
}

/// A sensor to register (or update), placed in its grid chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewSensor {
    /// id
    pub id: String,
    /// type
    pub kind: String,
    /// name
    pub name: Option<String>,
    /// longitude
    pub lon: f64,
    /// latitude
    pub lat: f64,
    /// unit of readings
    pub unit: String,
    /// alarm rules
    pub thresholds: Thresholds,
    /// its grid chain
    pub place: Place,
    /// who registers it (a principal's id; set by the twin, not the caller)
    #[serde(default)]
    pub registered_by: Option<String>,
}

/// A unit to register (or update), placed in its grid chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewUnit {
    /// id
    pub id: String,
    /// name
    pub name: String,
    /// type
    pub kind: String,
    /// status
    pub status: UnitStatus,
    /// longitude
    pub lon: f64,
    /// latitude
    pub lat: f64,
    /// its grid chain
    pub place: Place,
}

/// One reading as it arrives.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReadingIn {
    /// the sensor
    pub sensor: String,
    /// when it was measured
    pub at: Millis,
    /// the value
    pub value: f64,
}

/// An operation on the live state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// report an event (or a duplicate of an open one)
    Report(NewEvent),
    /// move an event along its closed loop
    Transition {
        /// the event
        id: i64,
        /// the step
        action: Action,
        /// who
        actor: String,
        /// why
        note: String,
    },
    /// assign available units to an event
    Assign {
        /// the event
        id: i64,
        /// the units
        units: Vec<String>,
        /// who
        actor: String,
    },
    /// put events and units under the unified command of a major event
    Unify {
        /// the major event
        id: i64,
        /// who commands
        commander: String,
        /// events it coordinates
        events: Vec<i64>,
        /// units it commands
        units: Vec<String>,
    },
    /// register or update a sensor
    RegisterSensor(NewSensor),
    /// readings, all or none
    Readings(Vec<ReadingIn>),
    /// register or update a unit
    RegisterUnit(NewUnit),
    /// a unit's new position
    Move {
        /// the unit
        id: String,
        /// longitude
        lon: f64,
        /// latitude
        lat: f64,
        /// its grid chain
        place: Place,
    },
    /// a unit's new status
    SetStatus {
        /// the unit
        id: String,
        /// the status
        status: UnitStatus,
    },
}

impl Op {
    /// Rows the operation writes, about (for batching).
    #[must_use]
    pub fn weight(&self) -> usize {
        match self {
            Op::Readings(r) => r.len(),
            _ => 1,
        }
    }
}

/// What an operation did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// the event as it now stands; `merged` when the report joined an open event
    Event {
        /// the event
        event: Box<Event>,
        /// whether the report was merged into it
        merged: bool,
    },
    /// the sensor as it now stands
    Sensor(Box<Sensor>),
    /// the unit as it now stands
    Unit(Box<Unit>),
    /// readings taken
    Readings {
        /// how many
        accepted: usize,
        /// alarms raised
        raised: usize,
        /// alarms cleared
        cleared: usize,
        /// the change-log number of the last reading taken (its SensorThings id)
        #[serde(default)]
        last: u64,
    },
}

/// Things changed by a batch not yet committed, over the state they started from.
#[derive(Debug, Default)]
pub struct Overlay {
    events: HashMap<i64, Event>,
    sensors: HashMap<String, Sensor>,
    units: HashMap<String, Unit>,
    next_event: i64,
    seq: u64,
}

/// A batch of operations being applied: reads see the batch's own changes first.
pub struct Tx<'a> {
    base: &'a LiveState,
    options: &'a LiveOptions,
    now: Millis,
    o: Overlay,
    changes: Vec<Change>,
}

fn not_found(what: &str, id: &str) -> Error {
    Error::NotFound(format!("no {what} {id:?}"))
}

fn event_json(e: &Event) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

impl<'a> Tx<'a> {
    /// A batch over `base`, at time `now`.
    #[must_use]
    pub fn new(base: &'a LiveState, options: &'a LiveOptions, now: Millis) -> Self {
        Self {
            base,
            options,
            now,
            o: Overlay {
                next_event: base.next_event.max(1),
                seq: base.seq,
                ..Overlay::default()
            },
            changes: Vec::new(),
        }
    }

    /// The changes and the overlay to commit once they are durable.
    #[must_use]
    pub fn finish(self) -> (Overlay, Vec<Change>) {
        (self.o, self.changes)
    }

    fn event(&self, id: i64) -> Option<&Event> {
        self.o.events.get(&id).or_else(|| self.base.events.get(&id))
    }

    fn event_mut(&mut self, id: i64) -> Result<&mut Event> {
        if !self.o.events.contains_key(&id) {
            let e = self
                .base
                .events
                .get(&id)
                .ok_or_else(|| not_found("event", &id.to_string()))?;
            self.o.events.insert(id, e.clone());
        }
        self.o
            .events
            .get_mut(&id)
            .ok_or_else(|| not_found("event", &id.to_string()))
    }

    fn sensor(&self, id: &str) -> Option<&Sensor> {
        self.o.sensors.get(id).or_else(|| self.base.sensors.get(id))
    }

    fn sensor_mut(&mut self, id: &str) -> Result<&mut Sensor> {
        if !self.o.sensors.contains_key(id) {
            let s = self
                .base
                .sensors
                .get(id)
                .ok_or_else(|| not_found("sensor", id))?;
            self.o.sensors.insert(id.to_owned(), s.clone());
        }
        self.o
            .sensors
            .get_mut(id)
            .ok_or_else(|| not_found("sensor", id))
    }

    fn unit(&self, id: &str) -> Option<&Unit> {
        self.o.units.get(id).or_else(|| self.base.units.get(id))
    }

    fn unit_mut(&mut self, id: &str) -> Result<&mut Unit> {
        if !self.o.units.contains_key(id) {
            let u = self
                .base
                .units
                .get(id)
                .ok_or_else(|| not_found("unit", id))?;
            self.o.units.insert(id.to_owned(), u.clone());
        }
        self.o
            .units
            .get_mut(id)
            .ok_or_else(|| not_found("unit", id))
    }

    fn record(&mut self, change: Change) {
        self.o.seq += 1;
        let mut c = change;
        c.seq = self.o.seq;
        self.changes.push(c);
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &'static str,
        layer: LiveLayer,
        entity: String,
        (lon, lat): (f64, f64),
        place: &Place,
        at: Millis,
        value: Option<f64>,
        body: Option<String>,
    ) {
        self.record(Change {
            seq: 0,
            at,
            kind,
            layer,
            entity,
            lon,
            lat,
            grid: place.code().map(str::to_owned),
            value,
            body,
            json: OnceLock::new(),
        });
    }

    fn push_event(&mut self, kind: &'static str, id: i64) {
        let Some(e) = self.event(id) else { return };
        let (pos, place, body) = ((e.lon, e.lat), e.place.clone(), event_json(e));
        self.push(
            kind,
            LiveLayer::Events,
            id.to_string(),
            pos,
            &place,
            self.now,
            None,
            Some(body),
        );
    }

    fn push_sensor(&mut self, kind: &'static str, id: &str, at: Millis) {
        let Some(s) = self.sensor(id) else { return };
        let (pos, place) = ((s.lon, s.lat), s.place.clone());
        let body = serde_json::to_string(s).unwrap_or_default();
        self.push(
            kind,
            LiveLayer::Sensors,
            id.to_owned(),
            pos,
            &place,
            at,
            None,
            Some(body),
        );
    }

    fn push_unit(&mut self, kind: &'static str, id: &str) {
        let Some(u) = self.unit(id) else { return };
        let (pos, place) = ((u.lon, u.lat), u.place.clone());
        let body = serde_json::to_string(u).unwrap_or_default();
        self.push(
            kind,
            LiveLayer::Units,
            id.to_owned(),
            pos,
            &place,
            self.now,
            None,
            Some(body),
        );
    }

    /// Applies one operation: checked against the state first, so a refused one changes
    /// nothing.
    pub fn apply(&mut self, op: Op) -> Result<Outcome> {
        match op {
            Op::Report(e) => self.report(e),
            Op::Transition {
                id,
                action,
                actor,
                note,
            } => self.transition(id, action, &actor, &note),
            Op::Assign { id, units, actor } => self.assign(id, &units, &actor),
            Op::Unify {
                id,
                commander,
                events,
                units,
            } => self.unify(id, &commander, &events, &units),
            Op::RegisterSensor(s) => self.register_sensor(s),
            Op::Readings(r) => self.readings(r),
            Op::RegisterUnit(u) => self.register_unit(u),
            Op::Move {
                id,
                lon,
                lat,
                place,
            } => {
                let now = self.now;
                let u = self.unit_mut(&id)?;
                (u.lon, u.lat, u.place, u.updated_at) = (lon, lat, place, now);
                self.push_unit("unit.moved", &id);
                self.unit_outcome(&id)
            }
            Op::SetStatus { id, status } => {
                let now = self.now;
                let u = self.unit_mut(&id)?;
                let released = if status == UnitStatus::Busy {
                    None
                } else {
                    u.event.take()
                };
                u.status = status;
                u.updated_at = now;
                if let Some(e) = released
                    && let Ok(ev) = self.event_mut(e)
                {
                    ev.units.retain(|x| *x != id);
                    self.push_event("event.updated", e);
                }
                self.push_unit("unit.status", &id);
                self.unit_outcome(&id)
            }
        }
    }

    fn unit_outcome(&self, id: &str) -> Result<Outcome> {
        self.unit(id)
            .map(|u| Outcome::Unit(Box::new(u.clone())))
            .ok_or_else(|| not_found("unit", id))
    }

    fn event_outcome(&self, id: i64, merged: bool) -> Result<Outcome> {
        self.event(id)
            .map(|e| Outcome::Event {
                event: Box::new(e.clone()),
                merged,
            })
            .ok_or_else(|| not_found("event", &id.to_string()))
    }

    /// The open event a new report duplicates: same category, within the merge distance,
    /// reported within the merge window (the nearest such).
    fn duplicate_of(&self, e: &NewEvent) -> Option<i64> {
        let since = self.now - self.options.merge_window_ms;
        let fresh = |ev: &&Event| {
            !ev.state.is_final() && ev.category == e.category && ev.reported_at >= since
        };
        let newer = self.o.events.values().filter(fresh);
        let older = self
            .base
            .events
            .values()
            .rev()
            .take_while(|ev| ev.reported_at >= since)
            .filter(fresh)
            .filter(|ev| !self.o.events.contains_key(&ev.id));
        newer
            .chain(older)
            .map(|ev| (ev.id, haversine_m((e.lon, e.lat), (ev.lon, ev.lat))))
            .filter(|(_, d)| *d <= self.options.merge_distance_m)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }

    fn report(&mut self, e: NewEvent) -> Result<Outcome> {
        if e.source != Source::Sensor
            && let Some(id) = self.duplicate_of(&e)
        {
            let now = self.now;
            let actor = e.actor.clone().unwrap_or_else(|| source_name(e.source));
            let ev = self.event_mut(id)?;
            if let Some(r) = &e.receipt {
                ev.receipts.push(r.clone());
            }
            ev.duplicates.push(Report {
                source: e.source,
                at: now,
                description: e.description,
                reporter: e.reporter,
                media: e.media,
                lon: e.lon,
                lat: e.lat,
            });
            ev.severity = ev.severity.max(e.severity);
            ev.updated_at = now;
            ev.history.push(Step {
                action: "merged".into(),
                from: ev.state,
                to: ev.state,
                actor,
                at: now,
                note: format!("duplicate report #{}", ev.duplicates.len()),
            });
            self.push_event("event.merged", id);
            return self.event_outcome(id, true);
        }
        let id = self.open_event(e, None);
        self.event_outcome(id, false)
    }

    fn open_event(&mut self, e: NewEvent, sensor: Option<String>) -> i64 {
        let id = self.o.next_event;
        self.o.next_event += 1;
        let hours = self.options.deadline_hours(&e.category);
        let actor = e.actor.clone().unwrap_or_else(|| source_name(e.source));
        let owner = e.place.street.clone().or_else(|| e.place.district.clone());
        let event = Event {
            id,
            source: e.source,
            category: e.category,
            severity: e.severity,
            description: e.description,
            lon: e.lon,
            lat: e.lat,
            media: e.media,
            reporter: e.reporter,
            place: e.place,
            history: vec![Step {
                action: "report".into(),
                from: EventState::Reported,
                to: EventState::Reported,
                actor,
                at: self.now,
                note: owner
                    .as_ref()
                    .map(|o| format!("assigned by territory to {} ({})", o.name, o.code))
                    .unwrap_or_default(),
            }],
            owner,
            state: EventState::Reported,
            reported_at: self.now,
            updated_at: self.now,
            deadline_at: self.now + i64::from(hours) * 3_600_000,
            duplicates: Vec::new(),
            units: Vec::new(),
            sensor,
            major: None,
            command: None,
            receipts: e.receipt.into_iter().collect(),
        };
        self.o.events.insert(id, event);
        self.push_event("event.reported", id);
        id
    }

    fn transition(&mut self, id: i64, action: Action, actor: &str, note: &str) -> Result<Outcome> {
        let ev = self
            .event(id)
            .ok_or_else(|| not_found("event", &id.to_string()))?;
        let from = ev.state;
        let Some(to) = action.next(from) else {
            return Err(Error::Conflict {
                detail: format!(
                    "event {id} is {}; {} is not allowed from there",
                    from.name(),
                    action.name()
                ),
                state: from.name().to_owned(),
                allowed: Action::allowed(from)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            });
        };
        if action.needs_reason() && note.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "{} needs a reason in note",
                action.name()
            )));
        }
        let now = self.now;
        let ev = self.event_mut(id)?;
        ev.state = to;
        ev.updated_at = now;
        ev.history.push(Step {
            action: action.name().to_owned(),
            from,
            to,
            actor: actor.to_owned(),
            at: now,
            note: note.to_owned(),
        });
        let released = if to.is_final() {
            std::mem::take(&mut ev.units)
        } else {
            Vec::new()
        };
        self.push_event("event.transitioned", id);
        for u in released {
            if let Ok(unit) = self.unit_mut(&u)
                && unit.event == Some(id)
            {
                unit.event = None;
                unit.status = UnitStatus::Available;
                unit.updated_at = now;
                self.push_unit("unit.status", &u);
            }
        }
        self.event_outcome(id, false)
    }

    fn check_open(&self, id: i64) -> Result<&Event> {
        let ev = self
            .event(id)
            .ok_or_else(|| not_found("event", &id.to_string()))?;
        if ev.state.is_final() {
            return Err(Error::Conflict {
                detail: format!(
                    "event {id} is {}; nothing more can be done",
                    ev.state.name()
                ),
                state: ev.state.name().to_owned(),
                allowed: Vec::new(),
            });
        }
        Ok(ev)
    }

    fn check_units(&self, id: i64, units: &[String]) -> Result<()> {
        for u in units {
            let unit = self.unit(u).ok_or_else(|| not_found("unit", u))?;
            if unit.event != Some(id) && unit.status != UnitStatus::Available {
                return Err(Error::Conflict {
                    detail: format!(
                        "unit {u} is {}{}",
                        unit.status.name(),
                        unit.event
                            .map(|e| format!(" on event {e}"))
                            .unwrap_or_default()
                    ),
                    state: unit.status.name().to_owned(),
                    allowed: Vec::new(),
                });
            }
        }
        Ok(())
    }

    fn take_units(&mut self, id: i64, units: &[String], actor: &str) -> Result<()> {
        let now = self.now;
        let mut added = Vec::new();
        for u in units {
            let unit = self.unit_mut(u)?;
            if unit.event != Some(id) {
                unit.event = Some(id);
                unit.status = UnitStatus::Busy;
                unit.updated_at = now;
                added.push(u.clone());
            }
        }
        if added.is_empty() {
            return Ok(());
        }
        let ev = self.event_mut(id)?;
        ev.units.extend(added.iter().cloned());
        ev.updated_at = now;
        ev.history.push(Step {
            action: "assigned".into(),
            from: ev.state,
            to: ev.state,
            actor: actor.to_owned(),
            at: now,
            note: added.join(", "),
        });
        for u in &added {
            self.push_unit("unit.status", u);
        }
        Ok(())
    }

    fn assign(&mut self, id: i64, units: &[String], actor: &str) -> Result<Outcome> {
        self.check_open(id)?;
        self.check_units(id, units)?;
        self.take_units(id, units, actor)?;
        self.push_event("event.assigned", id);
        self.event_outcome(id, false)
    }

    fn unify(
        &mut self,
        id: i64,
        commander: &str,
        events: &[i64],
        units: &[String],
    ) -> Result<Outcome> {
        self.check_open(id)?;
        for &e in events {
            if e == id {
                return Err(Error::Invalid(format!(
                    "event {id} cannot coordinate itself"
                )));
            }
            let child = self.check_open(e)?;
            if child.command.is_some() {
                return Err(Error::Conflict {
                    detail: format!("event {e} is itself a major event under its own command"),
                    state: child.state.name().to_owned(),
                    allowed: Vec::new(),
                });
            }
            if let Some(m) = child.major.filter(|m| *m != id) {
                return Err(Error::Conflict {
                    detail: format!("event {e} is already coordinated by major event {m}"),
                    state: child.state.name().to_owned(),
                    allowed: Vec::new(),
                });
            }
        }
        if self.event(id).and_then(|e| e.major).is_some() {
            return Err(Error::Conflict {
                detail: format!("event {id} is coordinated by another major event"),
                state: "coordinated".into(),
                allowed: Vec::new(),
            });
        }
        self.check_units(id, units)?;
        let now = self.now;
        for &e in events {
            let child = self.event_mut(e)?;
            if child.major != Some(id) {
                child.major = Some(id);
                child.updated_at = now;
                child.history.push(Step {
                    action: "commanded".into(),
                    from: child.state,
                    to: child.state,
                    actor: commander.to_owned(),
                    at: now,
                    note: format!("under the unified command of major event {id}"),
                });
                self.push_event("event.commanded", e);
            }
        }
        self.take_units(id, units, commander)?;
        let ev = self.event_mut(id)?;
        let command = ev.command.get_or_insert_with(|| Command {
            commander: commander.to_owned(),
            since: now,
            events: Vec::new(),
        });
        command.commander = commander.to_owned();
        for &e in events {
            if !command.events.contains(&e) {
                command.events.push(e);
            }
        }
        ev.severity = ev.severity.max(Severity::Major);
        ev.updated_at = now;
        ev.history.push(Step {
            action: "command".into(),
            from: ev.state,
            to: ev.state,
            actor: commander.to_owned(),
            at: now,
            note: format!("unified command by {commander}"),
        });
        self.push_event("event.commanded", id);
        self.event_outcome(id, false)
    }

    fn register_sensor(&mut self, s: NewSensor) -> Result<Outcome> {
        let id = s.id.clone();
        let now = self.now;
        let existing = self.sensor(&id).cloned();
        if existing.is_none()
            && let Some(by) = &s.registered_by
        {
            let max = self.options.max_sensors_per_key;
            let of_theirs = |x: &Sensor| x.registered_by.as_ref() == Some(by);
            let held = self.base.sensors.values().filter(|x| of_theirs(x)).count()
                + self
                    .o
                    .sensors
                    .values()
                    .filter(|x| of_theirs(x) && !self.base.sensors.contains_key(&x.id))
                    .count();
            if held >= max {
                return Err(Error::Forbidden(format!(
                    "{by} has registered {held} sensors, the most one key or user may (limits.sensors_per_key); register it under another key, or retire one"
                )));
            }
        }
        let sensor = match existing {
            Some(mut old) => {
                (
                    old.kind,
                    old.name,
                    old.lon,
                    old.lat,
                    old.unit,
                    old.thresholds,
                    old.place,
                ) = (s.kind, s.name, s.lon, s.lat, s.unit, s.thresholds, s.place);
                old
            }
            None => Sensor {
                id: s.id,
                kind: s.kind,
                name: s.name,
                lon: s.lon,
                lat: s.lat,
                unit: s.unit,
                thresholds: s.thresholds,
                place: s.place,
                registered_at: now,
                registered_by: s.registered_by,
                latest: None,
                alarm: None,
                event: None,
            },
        };
        self.o.sensors.insert(id.clone(), sensor);
        self.push_sensor("sensor.registered", &id, now);
        Ok(Outcome::Sensor(Box::new(
            self.sensor(&id)
                .cloned()
                .ok_or_else(|| not_found("sensor", &id))?,
        )))
    }

    fn readings(&mut self, readings: Vec<ReadingIn>) -> Result<Outcome> {
        let latest_allowed = self.now + self.options.max_clock_skew_ms;
        for (i, r) in readings.iter().enumerate() {
            let at = |msg: String| {
                Error::Invalid(if readings.len() == 1 {
                    msg
                } else {
                    format!("reading {i}: {msg}")
                })
            };
            if self.sensor(&r.sensor).is_none() {
                return Err(at(format!(
                    "unknown sensor {:?}; register it first",
                    r.sensor
                )));
            }
            if !r.value.is_finite() {
                return Err(at(format!("value {} is not a finite number", r.value)));
            }
            if r.at > latest_allowed {
                return Err(at(format!(
                    "time {} is in the future (the server's clock says {})",
                    ts::format(r.at),
                    ts::format(self.now)
                )));
            }
            if r.at < 946_684_800_000 {
                return Err(at(format!("time {} is before 2000", ts::format(r.at))));
            }
        }
        let (mut raised, mut cleared, mut last) = (0, 0, 0);
        let accepted = readings.len();
        for mut r in readings {
            let sensor = self.sensor_mut(&r.sensor)?;
            // a reading carries only the finest code of its sensor's place
            let (lon, lat, grid) = (
                sensor.lon,
                sensor.lat,
                sensor.place.code().map(str::to_owned),
            );
            let prev = sensor.latest;
            let newest = prev.is_none_or(|p| r.at >= p.at);
            if newest {
                sensor.latest = Some(Sample {
                    at: r.at,
                    value: r.value,
                });
            }
            let rule = if newest {
                breach(&sensor.thresholds, prev, r.at, r.value)
            } else {
                None
            };
            let alarmed = sensor.alarm.is_some();
            let entity = if rule.is_some() || alarmed {
                r.sensor.clone()
            } else {
                std::mem::take(&mut r.sensor)
            };
            last = self.o.seq + 1;
            self.record(Change {
                seq: 0,
                at: r.at,
                kind: "reading",
                layer: LiveLayer::Sensors,
                entity,
                lon,
                lat,
                grid,
                value: Some(r.value),
                body: None,
                json: OnceLock::new(),
            });
            match (rule, alarmed) {
                (Some(rule), false) => {
                    self.raise(&r.sensor, rule, r.at, r.value)?;
                    raised += 1;
                }
                (None, true) if newest => {
                    self.clear(&r.sensor, r.value)?;
                    cleared += 1;
                }
                _ => {}
            }
        }
        Ok(Outcome::Readings {
            accepted,
            raised,
            cleared,
            last,
        })
    }

    /// Raises a sensor's alarm: joins the event of its earlier alarm while that is open,
    /// else opens one.
    fn raise(&mut self, id: &str, rule: Rule, at: Millis, value: f64) -> Result<()> {
        let s = self
            .sensor(id)
            .cloned()
            .ok_or_else(|| not_found("sensor", id))?;
        let what = match rule {
            Rule::High => format!(
                "{} {value} {} above the threshold {}",
                s.kind,
                s.unit,
                s.thresholds.high.unwrap_or_default()
            ),
            Rule::Low => format!(
                "{} {value} {} below the threshold {}",
                s.kind,
                s.unit,
                s.thresholds.low.unwrap_or_default()
            ),
            Rule::Rate => format!(
                "{} changing faster than {} {}/min (now {value} {})",
                s.kind,
                s.thresholds.rate.unwrap_or_default(),
                s.unit,
                s.unit
            ),
        };
        let open = s
            .event
            .filter(|e| self.event(*e).is_some_and(|ev| !ev.state.is_final()));
        let now = self.now;
        let event = if let Some(e) = open {
            let ev = self.event_mut(e)?;
            ev.updated_at = now;
            ev.history.push(Step {
                action: "alarm-raised".into(),
                from: ev.state,
                to: ev.state,
                actor: format!("sensor {id}"),
                at: now,
                note: what,
            });
            self.push_event("event.updated", e);
            e
        } else {
            self.open_event(
                NewEvent {
                    source: Source::Sensor,
                    category: format!("{}-alarm", s.kind),
                    severity: Severity::Serious,
                    description: format!("sensor {id}: {what}"),
                    lon: s.lon,
                    lat: s.lat,
                    media: Vec::new(),
                    reporter: Some(format!("sensor {id}")),
                    actor: None,
                    receipt: None,
                    place: s.place.clone(),
                },
                Some(id.to_owned()),
            )
        };
        let sensor = self.sensor_mut(id)?;
        sensor.alarm = Some(Alarm {
            rule,
            since: at,
            value,
            event,
        });
        sensor.event = Some(event);
        self.push_sensor("alarm.raised", id, self.now);
        Ok(())
    }

    fn clear(&mut self, id: &str, value: f64) -> Result<()> {
        let now = self.now;
        let sensor = self.sensor_mut(id)?;
        let Some(alarm) = sensor.alarm.take() else {
            return Ok(());
        };
        let unit = sensor.unit.clone();
        self.push_sensor("alarm.cleared", id, now);
        if let Ok(ev) = self.event_mut(alarm.event)
            && !ev.state.is_final()
        {
            ev.updated_at = now;
            ev.history.push(Step {
                action: "alarm-cleared".into(),
                from: ev.state,
                to: ev.state,
                actor: format!("sensor {id}"),
                at: now,
                note: format!("back to normal at {value} {unit}"),
            });
            self.push_event("event.updated", alarm.event);
        }
        Ok(())
    }

    fn register_unit(&mut self, n: NewUnit) -> Result<Outcome> {
        let now = self.now;
        let id = n.id.clone();
        let unit = match self.unit(&id).cloned() {
            Some(mut u) => {
                (u.name, u.kind, u.lon, u.lat, u.place, u.updated_at) =
                    (n.name, n.kind, n.lon, n.lat, n.place, now);
                if u.event.is_none() {
                    u.status = n.status;
                }
                u
            }
            None => Unit {
                id: n.id,
                name: n.name,
                kind: n.kind,
                status: if n.status == UnitStatus::Busy {
                    UnitStatus::Available
                } else {
                    n.status
                },
                lon: n.lon,
                lat: n.lat,
                place: n.place,
                updated_at: now,
                event: None,
            },
        };
        self.o.units.insert(id.clone(), unit);
        self.push_unit("unit.registered", &id);
        self.unit_outcome(&id)
    }
}

/// The rule a reading breaks, if any: thresholds first, then the rate of change since the
/// previous reading.
#[must_use]
pub fn breach(t: &Thresholds, prev: Option<Sample>, at: Millis, value: f64) -> Option<Rule> {
    if t.high.is_some_and(|h| value > h) {
        return Some(Rule::High);
    }
    if t.low.is_some_and(|l| value < l) {
        return Some(Rule::Low);
    }
    let (rate, prev) = (t.rate?, prev?);
    let minutes = (at - prev.at) as f64 / 60_000.0;
    (minutes > 0.0 && (value - prev.value).abs() / minutes > rate).then_some(Rule::Rate)
}

fn source_name(s: Source) -> String {
    s.name().to_owned()
}

/// A territorial unit from its code and name.
#[must_use]
pub fn named(code: &str, name: &str) -> Named {
    Named {
        code: code.to_owned(),
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod wire_tests {
    use super::Change;

    #[test]
    fn a_change_is_valid_json_whatever_its_fields_hold() {
        let c = Change::stored(
            7,
            0,
            "reading",
            "sensors",
            "WL-\"1\"\\".into(),
            f64::NAN,
            32.0,
            Some("32\"01\n".into()),
            Some(f64::INFINITY),
            Some(r#"{"a":[1,"x"]}"#.into()),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&c.json()).unwrap();
        assert_eq!(v["id"], "WL-\"1\"\\");
        assert_eq!(v["grid"], "32\"01\n");
        assert!(v["lon"].is_null() && v["value"].is_null());
        assert_eq!(v["lat"], 32.0);
        assert_eq!(v["data"]["a"][1], "x");
        assert_eq!(v["seq"], 7);
    }
}
