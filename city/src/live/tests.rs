#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_cmp
)]

use super::*;
use crate::store::gpkg::GeoPackageStore;
use std::collections::BTreeMap;

const T0: Millis = 1_795_000_000_000;

fn report(category: &str, lon: f64, lat: f64) -> NewEvent {
    NewEvent {
        source: Source::Hotline,
        category: category.into(),
        severity: Severity::General,
        description: "water over the kerb".into(),
        lon,
        lat,
        media: vec!["https://example.org/p.jpg".into()],
        reporter: Some("caller 1".into()),
        actor: None,
        receipt: None,
        place: Place {
            grid: Some(state::named("320102001001001", "新苑第1网格")),
            street: Some(state::named("320102001", "玄武门街道")),
            ..Place::default()
        },
    }
}

/// Applies operations one batch each, committing as the writer does.
struct Harness {
    s: LiveState,
    o: LiveOptions,
    now: Millis,
    log: Vec<Change>,
}

impl Harness {
    fn new() -> Self {
        Self {
            s: LiveState {
                next_event: 1,
                ..LiveState::default()
            },
            o: LiveOptions::default(),
            now: T0,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, op: Op) -> Result<Outcome> {
        let mut tx = state::Tx::new(&self.s, &self.o, self.now);
        let r = tx.apply(op);
        let (overlay, changes) = tx.finish();
        self.s.commit(overlay);
        self.log.extend(changes);
        r
    }

    fn event(&mut self, e: NewEvent) -> (Event, bool) {
        match self.apply(Op::Report(e)).unwrap() {
            Outcome::Event { event, merged } => (*event, merged),
            o => panic!("{o:?}"),
        }
    }

    fn step(&mut self, id: i64, action: Action, note: &str) -> Result<Outcome> {
        self.apply(Op::Transition {
            id,
            action,
            actor: "dispatcher".into(),
            note: note.into(),
        })
    }

    fn sensor(&mut self, id: &str, high: f64) {
        self.apply(Op::RegisterSensor(NewSensor {
            id: id.into(),
            kind: "water-level".into(),
            name: None,
            lon: 118.78,
            lat: 32.09,
            unit: "m".into(),
            thresholds: Thresholds {
                high: Some(high),
                low: None,
                rate: Some(1.0),
            },
            place: Place::default(),
            registered_by: None,
        }))
        .unwrap();
    }

    fn read(&mut self, sensor: &str, at: Millis, value: f64) -> Result<Outcome> {
        self.apply(Op::Readings(vec![ReadingIn {
            sensor: sensor.into(),
            at,
            value,
        }]))
    }

    fn unit(&mut self, id: &str, kind: &str, lon: f64) {
        self.apply(Op::RegisterUnit(NewUnit {
            id: id.into(),
            name: id.into(),
            kind: kind.into(),
            status: UnitStatus::Available,
            lon,
            lat: 32.09,
            place: Place::default(),
        }))
        .unwrap();
    }
}

#[test]
fn an_event_goes_round_the_closed_loop_and_every_step_is_recorded() {
    let mut h = Harness::new();
    let (e, merged) = h.event(report("waterlogging", 118.78, 32.09));
    assert!(!merged);
    assert_eq!(e.state, EventState::Reported);
    assert_eq!(e.owner.as_ref().unwrap().code, "320102001");
    assert_eq!(
        e.deadline_at,
        T0 + 2 * 3_600_000,
        "waterlogging has 2 hours"
    );
    for a in [
        Action::Accept,
        Action::Dispatch,
        Action::Start,
        Action::Feedback,
    ] {
        h.step(e.id, a, "").unwrap();
    }
    // verification fails: back to handling, with a reason
    assert!(matches!(
        h.step(e.id, Action::Return, " "),
        Err(Error::Invalid(_))
    ));
    h.step(e.id, Action::Return, "still flooded").unwrap();
    for a in [Action::Feedback, Action::Verify, Action::Close] {
        h.step(e.id, a, "").unwrap();
    }
    let done = &h.s.events[&e.id];
    assert_eq!(done.state, EventState::Closed);
    let actions: Vec<&str> = done.history.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "report", "accept", "dispatch", "start", "feedback", "return", "feedback", "verify",
            "close"
        ]
    );
    assert_eq!(done.history[5].note, "still flooded");
    assert_eq!(done.history[5].from, EventState::Feedback);
    assert_eq!(done.history[5].to, EventState::Handling);
    // the log numbers every change without gaps
    let seqs: Vec<u64> = h.log.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn an_illegal_transition_is_a_conflict_naming_the_state_and_changes_nothing() {
    let mut h = Harness::new();
    let (e, _) = h.event(report("garbage", 118.78, 32.09));
    let before = h.log.len();
    match h.step(e.id, Action::Close, "") {
        Err(Error::Conflict { state, allowed, .. }) => {
            assert_eq!(state, "reported");
            assert_eq!(allowed, ["accept", "reject"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.log.len(), before);
    assert_eq!(h.s.events[&e.id].history.len(), 1);
    assert!(matches!(
        h.step(99, Action::Accept, ""),
        Err(Error::NotFound(_))
    ));
    h.step(e.id, Action::Reject, "not in our city").unwrap();
    assert!(matches!(
        h.step(e.id, Action::Accept, ""),
        Err(Error::Conflict { .. })
    ));
}

#[test]
fn duplicates_nearby_and_recent_merge_into_the_open_event() {
    let mut h = Harness::new();
    let (first, _) = h.event(report("waterlogging", 118.78, 32.09));
    // 50 m away, ten minutes later
    h.now += 600_000;
    let (joined, merged) = h.event(report("waterlogging", 118.7805, 32.0902));
    assert!(merged);
    assert_eq!(joined.id, first.id);
    assert_eq!(joined.duplicates.len(), 1);
    // another category, or 1 km away: a new event
    let (other, merged) = h.event(report("garbage", 118.78, 32.09));
    assert!(!merged && other.id != first.id);
    let (far, merged) = h.event(report("waterlogging", 118.79, 32.09));
    assert!(!merged && far.id != first.id);
    // three hours on, outside the window: a new event
    h.now += 3 * 3_600_000;
    let (late, merged) = h.event(report("waterlogging", 118.78, 32.09));
    assert!(!merged && late.id != first.id);
    // a closed event takes no duplicates
    h.step(late.id, Action::Reject, "test").unwrap();
    let (_, merged) = h.event(report("waterlogging", 118.78, 32.09));
    assert!(!merged);
}

#[test]
fn overdue_is_past_the_deadline_and_not_closed() {
    let mut h = Harness::new();
    let (e, _) = h.event(report("waterlogging", 118.78, 32.09));
    assert!(!e.overdue(T0 + 3_600_000));
    assert!(e.overdue(T0 + 3 * 3_600_000));
    let (g, _) = h.event(report("no-such-category", 118.0, 32.0));
    assert_eq!(g.deadline_at, T0 + 72 * 3_600_000);
}

#[test]
fn a_sensor_alarm_opens_one_event_and_clears_when_readings_return_to_normal() {
    let mut h = Harness::new();
    h.now = T0 + 3_600_000;
    h.sensor("WL-1", 3.0);
    h.read("WL-1", T0 - 60_000, 2.0).unwrap();
    // above the threshold three times: one alarm, one event
    for (i, v) in [3.2, 3.4, 3.5].into_iter().enumerate() {
        h.read("WL-1", T0 + i as i64 * 60_000, v).unwrap();
    }
    let alarms: Vec<&Event> = h.s.events.values().collect();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].source, Source::Sensor);
    assert_eq!(alarms[0].category, "water-level-alarm");
    let sensor = &h.s.sensors["WL-1"];
    assert_eq!(sensor.alarm.as_ref().unwrap().rule, Rule::High);
    assert_eq!(sensor.latest.unwrap().value, 3.5);
    // back to normal (slowly): the alarm clears, the event stays open for handling
    h.read("WL-1", T0 + 5 * 60_000, 2.9).unwrap();
    assert!(h.s.sensors["WL-1"].alarm.is_none());
    let kinds: Vec<&str> = h.log.iter().map(|c| c.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "alarm.raised").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "alarm.cleared").count(), 1);
    // raised again while the event is open: it joins that event
    h.read("WL-1", T0 + 6 * 60_000, 3.6).unwrap();
    assert_eq!(h.s.events.len(), 1);
    // once that event is closed, a new alarm opens a new event
    let id = *h.s.events.keys().next().unwrap();
    h.step(id, Action::Reject, "sensor maintenance").unwrap();
    h.read("WL-1", T0 + 7 * 60_000, 2.9).unwrap();
    h.read("WL-1", T0 + 8 * 60_000, 3.7).unwrap();
    assert_eq!(h.s.events.len(), 2);
}

#[test]
fn a_fast_rise_raises_a_rate_alarm_and_late_readings_do_not_move_the_latest() {
    let mut h = Harness::new();
    h.sensor("WL-2", 10.0);
    h.read("WL-2", T0, 1.0).unwrap();
    h.read("WL-2", T0 + 60_000, 2.5).unwrap();
    assert_eq!(h.s.sensors["WL-2"].alarm.as_ref().unwrap().rule, Rule::Rate);
    h.read("WL-2", T0 - 60_000, 9.0).unwrap();
    assert_eq!(h.s.sensors["WL-2"].latest.unwrap().value, 2.5);
    assert_eq!(breach(&Thresholds::default(), None, T0, 1e9), None);
}

#[test]
fn a_batch_of_readings_is_taken_whole_or_not_at_all() {
    let mut h = Harness::new();
    h.sensor("WL-3", 3.0);
    let before = h.log.len();
    let batch = |v: f64, s: &str, at: Millis| {
        Op::Readings(vec![
            ReadingIn {
                sensor: "WL-3".into(),
                at: T0,
                value: 1.0,
            },
            ReadingIn {
                sensor: s.into(),
                at,
                value: v,
            },
        ])
    };
    for (op, says) in [
        (batch(f64::NAN, "WL-3", T0), "reading 1: value NaN"),
        (batch(1.0, "nope", T0), "reading 1: unknown sensor"),
        (batch(1.0, "WL-3", T0 + 3_600_000), "reading 1: time"),
        (batch(1.0, "WL-3", 0), "before 2000"),
    ] {
        let e = h.apply(op).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    assert_eq!(h.log.len(), before);
    assert!(h.s.sensors["WL-3"].latest.is_none());
}

#[test]
fn dispatch_finds_the_nearest_available_units_and_closing_releases_them() {
    let mut h = Harness::new();
    h.unit("P-1", "pump", 118.70);
    h.unit("P-2", "pump", 118.781);
    h.unit("P-3", "pump", 118.80);
    h.unit("T-1", "team", 118.78);
    let (e, _) = h.event(report("waterlogging", 118.78, 32.09));
    let near: Vec<&str> =
        h.s.nearest_units(e.lon, e.lat, Some("pump"), 2)
            .iter()
            .map(|(u, _)| u.id.as_str())
            .collect();
    assert_eq!(near, ["P-2", "P-3"]);
    h.apply(Op::Assign {
        id: e.id,
        units: vec!["P-2".into()],
        actor: "dispatcher".into(),
    })
    .unwrap();
    assert_eq!(h.s.units["P-2"].status, UnitStatus::Busy);
    let near = h.s.nearest_units(e.lon, e.lat, Some("pump"), 1);
    assert_eq!(near[0].0.id, "P-3");
    // a busy unit cannot go to a second event
    let (other, _) = h.event(report("garbage", 118.78, 32.09));
    let err = h.apply(Op::Assign {
        id: other.id,
        units: vec!["P-2".into()],
        actor: "dispatcher".into(),
    });
    assert!(matches!(err, Err(Error::Conflict { state, .. }) if state == "busy"));
    h.step(e.id, Action::Reject, "false alarm").unwrap();
    assert_eq!(h.s.units["P-2"].status, UnitStatus::Available);
    assert_eq!(h.s.units["P-2"].event, None);
}

#[test]
fn a_major_event_commands_events_and_units() {
    let mut h = Harness::new();
    h.unit("P-1", "pump", 118.78);
    let (major, _) = h.event(report("waterlogging", 118.78, 32.09));
    let (a, _) = h.event(report("road-damage", 118.79, 32.09));
    let (b, _) = h.event(report("garbage", 118.80, 32.09));
    let r = h
        .apply(Op::Unify {
            id: major.id,
            commander: "commander Li".into(),
            events: vec![a.id, b.id],
            units: vec!["P-1".into()],
        })
        .unwrap();
    let Outcome::Event { event, .. } = r else {
        panic!()
    };
    assert_eq!(event.command.as_ref().unwrap().events, [a.id, b.id]);
    assert_eq!(event.severity, Severity::Major);
    assert_eq!(h.s.events[&a.id].major, Some(major.id));
    assert_eq!(h.s.units["P-1"].event, Some(major.id));
    // a coordinated event cannot command others, nor be taken by a second major event
    assert!(
        h.apply(Op::Unify {
            id: a.id,
            commander: "x".into(),
            events: vec![],
            units: vec![],
        })
        .is_err()
    );
}

#[test]
fn the_state_folds_back_from_its_snapshots() {
    let mut h = Harness::new();
    h.sensor("WL-1", 3.0);
    h.unit("P-1", "pump", 118.78);
    let (e, _) = h.event(report("waterlogging", 118.78, 32.09));
    h.step(e.id, Action::Accept, "").unwrap();
    h.read("WL-1", T0, 3.5).unwrap();
    let mut latest: BTreeMap<(LiveLayer, String), Change> = BTreeMap::new();
    for c in h.log.iter().filter(|c| c.body.is_some()) {
        latest.insert((c.layer, c.entity.clone()), c.clone());
    }
    let mut rows: Vec<Change> = latest.into_values().collect();
    rows.extend(h.log.iter().filter(|c| c.kind == "reading").cloned());
    let back = LiveState::fold(&rows, h.s.seq).unwrap();
    assert_eq!(back.events, h.s.events);
    assert_eq!(back.sensors, h.s.sensors);
    assert_eq!(back.units, h.s.units);
    assert_eq!(back.next_event, h.s.next_event);
}

#[test]
fn feed_filters_by_layer_box_and_territory() {
    let mut h = Harness::new();
    let (_, _) = h.event(report("waterlogging", 118.78, 32.09));
    let c = &h.log[0];
    let f = |layers: Vec<LiveLayer>, bbox, grid: Option<&str>| FeedFilter {
        layers,
        bbox,
        grid: grid.map(str::to_owned),
        kinds: Vec::new(),
        scope: LiveLayer::ALL.iter().map(|l| (*l, None)).collect(),
        masked: Vec::new(),
    };
    assert!(f(vec![], None, None).matches(c));
    // a subscriber sees only the layers and territory its read plans allow
    let scoped = |scope: Vec<(LiveLayer, Option<String>)>| FeedFilter {
        scope,
        ..FeedFilter::default()
    };
    assert!(!scoped(vec![]).matches(c));
    assert!(!scoped(vec![(LiveLayer::Sensors, None)]).matches(c));
    assert!(scoped(vec![(LiveLayer::Events, Some("320102".into()))]).matches(c));
    assert!(!scoped(vec![(LiveLayer::Events, Some("320104".into()))]).matches(c));
    assert!(!f(vec![LiveLayer::Sensors], None, None).matches(c));
    assert!(f(vec![], Some([118.7, 32.0, 118.8, 32.1]), None).matches(c));
    assert!(!f(vec![], Some([118.0, 32.0, 118.1, 32.1]), None).matches(c));
    assert!(f(vec![], None, Some("320102")).matches(c));
    assert!(!f(vec![], None, Some("320104")).matches(c));
    let json: serde_json::Value = serde_json::from_str(&c.json()).unwrap();
    assert_eq!(json["kind"], "event.reported");
    assert_eq!(json["id"], "1");
    assert_eq!(json["data"]["state"], "reported");
}

#[tokio::test]
async fn live_changes_are_durable_and_the_past_can_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.gpkg");
    let store: Arc<dyn Store> = Arc::new(GeoPackageStore::open(&path).await.unwrap());
    let city = City::open(Arc::clone(&store)).await.unwrap();
    assert!(city.layer("events").is_some_and(|l| l.feature_count() == 0));
    let mut feed = city.feed();
    let (e, _) = city
        .report_event(
            &crate::testing::operator(),
            report("waterlogging", 118.78, 32.09),
        )
        .await
        .unwrap();
    let after_report = ts::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    city.transition_event(&crate::testing::operator(), e.id, Action::Accept, "")
        .await
        .unwrap();
    let conflict = city
        .transition_event(&crate::testing::operator(), e.id, Action::Close, "")
        .await;
    assert!(matches!(conflict, Err(Error::Conflict { .. })));
    assert_eq!(feed.recv().await.unwrap().kind, "event.reported");
    assert_eq!(feed.recv().await.unwrap().kind, "event.transitioned");
    // the next layer lookup sees the change
    assert_eq!(city.layer("events").unwrap().feature_count(), 1);
    // as of just after the report, the event was still reported
    let then = city.live_state_at(after_report).await.unwrap();
    assert_eq!(then.events[&e.id].state, EventState::Reported);
    let all = city.changes_after(0, 100).await.unwrap();
    assert_eq!(all.len(), 2);
    drop(city);
    // reopened, it is all there
    let city = City::open(store).await.unwrap();
    city.with_live(|s| {
        assert_eq!(s.events[&e.id].state, EventState::Accepted);
        assert_eq!(s.seq, 2);
    });
}

#[test]
fn a_key_registers_at_most_its_cap_of_sensors() {
    let mut h = Harness::new();
    h.o.max_sensors_per_key = 2;
    let by = |id: &str, key: &str| {
        Op::RegisterSensor(NewSensor {
            id: id.into(),
            kind: "rainfall".into(),
            name: None,
            lon: 118.78,
            lat: 32.09,
            unit: "mm/h".into(),
            thresholds: Thresholds::default(),
            place: Place::default(),
            registered_by: Some(key.into()),
        })
    };
    h.apply(by("R-1", "key:a")).unwrap();
    h.apply(by("R-2", "key:a")).unwrap();
    let refused = h.apply(by("R-3", "key:a")).unwrap_err();
    assert!(
        matches!(&refused, Error::Forbidden(m) if m.contains("sensors_per_key")),
        "{refused}"
    );
    // updating one of its own is no new registration; another key has its own cap
    h.apply(by("R-2", "key:a")).unwrap();
    h.apply(by("R-3", "key:b")).unwrap();
    assert_eq!(h.s.sensors["R-1"].registered_by.as_deref(), Some("key:a"));
    // two in one batch count together
    let mut tx = state::Tx::new(&h.s, &h.o, h.now);
    tx.apply(by("R-4", "key:c")).unwrap();
    tx.apply(by("R-5", "key:c")).unwrap();
    assert!(tx.apply(by("R-6", "key:c")).is_err());
}
