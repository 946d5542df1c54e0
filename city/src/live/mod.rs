//! The live twin: events with their closed loop, sensors with readings and alarms, units of
//! the response forces — kept in memory, written to the store before they are acknowledged,
//! and published as a stream of numbered changes.
//!
//! One writer task applies every operation. It takes whatever operations are waiting (up to
//! a batch), checks each against the state, appends all their changes to the store in one
//! transaction (group commit: one `fsync` for the batch), and only then makes them visible,
//! publishes them on the feed and answers the callers. A refused operation changes nothing;
//! a batch the store cannot take is answered with an error and changes nothing either.

pub mod board;
pub mod history;
pub mod model;
pub mod queries;
pub mod state;

pub use model::{
    Action, Alarm, Event, EventState, LiveLayer, Millis, Named, Place, Rule, Sample, Sensor,
    Severity, Source, Thresholds, Unit, UnitStatus, ts,
};
pub use state::{
    Change, LiveOptions, LiveState, NewEvent, NewSensor, NewUnit, Op, Outcome, ReadingIn, breach,
};

use crate::access::{Context, Duty};
use crate::index::LayerIndex;
use crate::layer::{Feature, Field, FieldKind, GeometryKind, LayerMeta};
use crate::store::{Bucket, ChangeQuery, Store};
use crate::territory::Level;
use crate::twin::City;
use crate::{Error, Result};
use citytwin_tiles::Value;
use geo::{Geometry, Point};
use state::Tx;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Most rows one group commit writes.
const MAX_BATCH_ROWS: usize = 200_000;
/// Most operations one group commit answers.
const MAX_BATCH_OPS: usize = 4096;
/// Changes a slow subscriber may fall behind before it must catch up from the store.
const FEED_CAPACITY: usize = 1 << 16;

type Job = (Op, oneshot::Sender<Result<Outcome>>);

struct Shared {
    state: RwLock<LiveState>,
    options: LiveOptions,
    feed: broadcast::Sender<Arc<Change>>,
    /// per live layer: how many committed batches touched it
    dirty: [AtomicU64; 3],
    store: Arc<dyn Store>,
    /// who applies operations: this process, or the writer of the cluster through the bus
    role: RwLock<Role>,
    /// the sequence number the state shows, for those waiting to read their own writes
    shown: tokio::sync::watch::Sender<u64>,
    /// one follower at a time, so the feed carries followed changes in order
    following: tokio::sync::Mutex<()>,
}

/// Who applies the operations of this process.
#[derive(Clone)]
enum Role {
    /// this process alone, or the elected writer of a cluster
    Writer,
    /// another instance, reached through the bus
    Follower(Arc<dyn crate::cluster::Bus>),
}

/// The live part of the twin.
pub struct Live {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    /// per live layer: the `dirty` count its installed index shows
    built: [AtomicU64; 3],
    /// the first deadline the installed events layer does not yet show as overdue
    due: AtomicI64,
    build: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

fn read_state(lock: &RwLock<LiveState>) -> std::sync::RwLockReadGuard<'_, LiveState> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    /// Loads the live state from the store's change log and starts the writer.
    pub(crate) async fn open(store: Arc<dyn Store>, options: LiveOptions) -> Result<Self> {
        let started = std::time::Instant::now();
        let seq = store.last_change().await?;
        let mut state = history::state_at(store.as_ref(), Millis::MAX).await?;
        state.seq = seq;
        tracing::info!(
            events = state.events.len(),
            sensors = state.sensors.len(),
            units = state.units.len(),
            seq,
            ms = started.elapsed().as_millis() as u64,
            "live state loaded"
        );
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let shared = Arc::new(Shared {
            shown: tokio::sync::watch::Sender::new(state.seq),
            state: RwLock::new(state),
            options,
            feed,
            dirty: Default::default(),
            store,
            role: RwLock::new(Role::Writer),
            following: tokio::sync::Mutex::new(()),
        });
        let (jobs, rx) = mpsc::channel(MAX_BATCH_OPS);
        tokio::spawn(write_loop(Arc::clone(&shared), rx));
        Ok(Self {
            shared,
            jobs,
            built: [u64::MAX, u64::MAX, u64::MAX].map(AtomicU64::new),
            due: AtomicI64::new(Millis::MAX),
            build: std::sync::Mutex::new(()),
        })
    }

    async fn submit(&self, op: Op) -> Result<Outcome> {
        self.enqueue(op).await?.outcome().await
    }

    /// Queues an operation behind those queued before it, without waiting for it.
    async fn enqueue(&self, op: Op) -> Result<Pending> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((op, tx)).await.map_err(|_| stopped())?;
        Ok(Pending(rx))
    }

    /// Live layers whose installed index is behind the state.
    fn stale(&self, now: Millis) -> [bool; 3] {
        let mut out = [false; 3];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.built[i].load(Ordering::Acquire)
                != self.shared.dirty[i].load(Ordering::Acquire);
        }
        out[0] |= now >= self.due.load(Ordering::Acquire);
        out
    }
}

fn stopped() -> Error {
    Error::Unavailable("the live writer has stopped".into())
}

/// An operation queued to the writer: operations are applied in the order they were queued,
/// and each is answered once it is durable (or refused).
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<Outcome>>);

impl Pending {
    async fn outcome(self) -> Result<Outcome> {
        self.0.await.map_err(|_| stopped())?
    }

    /// Waits until the operation is durable, or refused.
    pub async fn done(self) -> Result<()> {
        self.outcome().await.map(|_| ())
    }
}

async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut weight = first.0.weight();
        let mut jobs = vec![first];
        while weight < MAX_BATCH_ROWS && jobs.len() < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(job) => {
                    weight += job.0.weight();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        shared.run(jobs).await;
    }
}

impl Shared {
    fn role(&self) -> Role {
        self.role
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn run(&self, jobs: Vec<Job>) {
        let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().unzip();
        if let Role::Follower(bus) = self.role() {
            // the writer of the cluster applies them; they are answered once this instance
            // shows what they changed, so a client reads its own writes here at once
            let results = match bus.forward(ops).await {
                Ok((results, seq)) => {
                    self.wait_shown(seq).await;
                    results
                }
                Err(e) => (0..replies.len())
                    .map(|_| Err(crate::cluster::WireError::of(&e).error()))
                    .collect(),
            };
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            return;
        }
        let (overlay, changes, results) = {
            let base = read_state(&self.state);
            let mut tx = Tx::new(&base, &self.options, ts::now());
            let results: Vec<Result<Outcome>> = ops.into_iter().map(|op| tx.apply(op)).collect();
            let (overlay, changes) = tx.finish();
            (overlay, changes, results)
        };
        let changes: Vec<Arc<Change>> = changes.into_iter().map(Arc::new).collect();
        let results = if changes.is_empty() {
            results
        } else if let Err(e) = self.store.append_changes(&changes).await {
            tracing::error!(error = %e, changes = changes.len(), "live write failed; nothing applied");
            // another writer may have numbered these changes first (a writer that lost its
            // lock without knowing it yet): read what the log holds before the next batch
            if let Err(e) = self.catch_up(u64::MAX).await {
                tracing::debug!(error = %e, "reading the change log failed");
            }
            results
                .into_iter()
                .map(|r| r.and_then(|_| Err(Error::Unavailable(e.to_string()))))
                .collect()
        } else {
            self.state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .commit(overlay);
            self.shown_changes(changes);
            results
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Makes changes the state now shows known: their layers' indexes are rebuilt on the
    /// next lookup, the feed carries them, and those waiting for them go on.
    fn shown_changes(&self, changes: Vec<Arc<Change>>) {
        let Some(last) = changes.last().map(|c| c.seq) else {
            return;
        };
        let mut touched = [false; 3];
        for c in &changes {
            touched[c.layer as usize] = true;
        }
        for (i, t) in touched.iter().enumerate() {
            if *t {
                self.dirty[i].fetch_add(1, Ordering::AcqRel);
            }
        }
        for c in changes {
            let _ = self.feed.send(c);
        }
        self.shown.send_replace(last);
    }

    /// Applies changes another instance committed, in order; those already shown are
    /// skipped. A gap before them is filled from the change log first.
    async fn follow(&self, changes: Vec<Change>) -> Result<()> {
        let Some(first) = changes.first().map(|c| c.seq) else {
            return Ok(());
        };
        let _one = self.following.lock().await;
        self.fill(first.saturating_sub(1)).await?;
        self.show(changes)
    }

    /// Reads the change log until the state shows `until` (or the log's end).
    async fn catch_up(&self, until: u64) -> Result<()> {
        let _one = self.following.lock().await;
        self.fill(until).await
    }

    async fn fill(&self, until: u64) -> Result<()> {
        loop {
            let after = read_state(&self.state).seq;
            if after >= until {
                return Ok(());
            }
            let batch = self
                .store
                .read_changes(&ChangeQuery {
                    after_seq: after,
                    limit: (until - after).min(10_000) as usize,
                    ..ChangeQuery::default()
                })
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            self.show(batch)?;
        }
    }

    fn show(&self, changes: Vec<Change>) -> Result<()> {
        let mut shown = Vec::with_capacity(changes.len());
        let result = {
            let mut state = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            changes.into_iter().try_for_each(|c| {
                if state.follow(&c)? {
                    shown.push(Arc::new(c));
                }
                Ok(())
            })
        };
        self.shown_changes(shown);
        result
    }

    /// Waits until the state shows change `seq`: from the bus, or after a second from the
    /// change log.
    async fn wait_shown(&self, seq: u64) {
        let mut rx = self.shown.subscribe();
        let shown = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            rx.wait_for(|s| *s >= seq).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if !shown && let Err(e) = self.catch_up(seq).await {
            tracing::warn!(error = %e, seq, "catching up with the change log failed");
        }
    }
}

/// Which changes a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    /// only these layers (all when empty)
    pub layers: Vec<LiveLayer>,
    /// only changes within this box (west, south, east, north)
    pub bbox: Option<[f64; 4]>,
    /// only changes in this territorial unit (a code of any level: codes nest)
    pub grid: Option<String>,
    /// only these kinds (all when empty)
    pub kinds: Vec<String>,
    /// what the subscriber may see: the live layers it may read, each with the territory it
    /// is narrowed to (a layer not listed is not sent at all)
    pub scope: Vec<(LiveLayer, Option<String>)>,
    /// the live layers the subscriber sees desensitised, with their catalogue entries
    pub masked: Vec<(LiveLayer, crate::catalog::Classification)>,
}

impl FeedFilter {
    /// Whether a change passes.
    #[must_use]
    pub fn matches(&self, c: &Change) -> bool {
        self.shows(c.layer, c.grid.as_deref())
            && (self.layers.is_empty() || self.layers.contains(&c.layer))
            && self
                .bbox
                .is_none_or(|[w, s, e, n]| c.lon >= w && c.lon <= e && c.lat >= s && c.lat <= n)
            && crate::access::within(self.grid.as_deref(), c.grid.as_deref())
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == c.kind))
    }

    /// A change as this subscriber gets it: desensitised for a layer it sees so.
    #[must_use]
    pub fn render(&self, c: &Change) -> std::sync::Arc<str> {
        match self.masked.iter().find(|(l, _)| *l == c.layer) {
            None => c.json(),
            Some((_, class)) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(&c.json()).unwrap_or(serde_json::Value::Null);
                crate::desensitise::mask_json(&mut v, class);
                std::sync::Arc::from(v.to_string())
            }
        }
    }

    /// Whether the subscriber's scope shows a thing of this live layer at this code.
    #[must_use]
    pub fn shows(&self, layer: LiveLayer, code: Option<&str>) -> bool {
        self.scope
            .iter()
            .any(|(l, t)| *l == layer && crate::access::within(t.as_deref(), code))
    }
}

/// Checks an id of a sensor or unit: 1 to 64 letters, digits, `-`, `_`, `.` or `:` (it is
/// also an MQTT topic level).
pub fn check_id(what: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {id:?}: use 1 to 64 letters, digits, -, _, . or :"
        )))
    }
}

/// Checks a category or type: 1 to 64 lowercase letters, digits and `-`.
pub fn check_slug(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {s:?}: use 1 to 64 lowercase letters, digits and -"
        )))
    }
}

/// Checks free text against a length.
pub fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().count() > max {
        return Err(Error::Invalid(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::Invalid(format!("{what} holds control characters")));
    }
    Ok(())
}

/// Checks photo and video links: at most 20 http(s) URLs.
pub fn check_media(media: &[String]) -> Result<()> {
    if media.len() > 20 {
        return Err(Error::Invalid("at most 20 media links".into()));
    }
    for m in media {
        let ok = (m.starts_with("https://") || m.starts_with("http://"))
            && m.len() <= 2048
            && !m.chars().any(char::is_whitespace);
        if !ok {
            return Err(Error::Invalid(format!(
                "media link {m:?} is not an http(s) URL"
            )));
        }
    }
    Ok(())
}

fn text(s: &str) -> Value {
    Value::Text(Arc::from(s))
}

fn opt_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}

fn field(name: &str, kind: FieldKind) -> Field {
    Field {
        name: name.to_owned(),
        kind,
    }
}

/// The live layer's metadata and features as the state stands at `now`; for events also the
/// next deadline not yet passed.
fn layer_features(
    layer: LiveLayer,
    s: &LiveState,
    now: Millis,
) -> (LayerMeta, Vec<Feature>, Millis) {
    use FieldKind::{Boolean, Integer, Real, Text};
    let mut meta = LayerMeta::new(layer.name(), GeometryKind::Point);
    meta.source = "citytwin live state".into();
    let point = |lon, lat| Geometry::Point(Point::new(lon, lat));
    let grid = |p: &Place| opt_text(p.code());
    let mut due = Millis::MAX;
    let features: Vec<Feature> = match layer {
        LiveLayer::Events => {
            meta.title = "Events".into();
            meta.description =
                "Live events (事件) with their closed-loop state, deadline and overdue flag".into();
            meta.time_field = Some("reported".into());
            meta.fields = [
                ("category", Text),
                ("severity", Text),
                ("state", Text),
                ("source", Text),
                ("overdue", Boolean),
                ("reported", Text),
                ("deadline", Text),
                ("grid", Text),
                ("owner", Text),
                ("description", Text),
                ("units", Integer),
                ("duplicates", Integer),
                ("major", Integer),
                ("command", Boolean),
                ("sensor", Text),
            ]
            .into_iter()
            .map(|(n, k)| field(n, k))
            .collect();
            s.events
                .values()
                .map(|e| {
                    if !e.state.is_final() && e.deadline_at >= now {
                        due = due.min(e.deadline_at + 1);
                    }
                    Feature {
                        id: e.id,
                        geometry: point(e.lon, e.lat),
                        values: vec![
                            text(&e.category),
                            text(e.severity.name()),
                            text(e.state.name()),
                            text(e.source.name()),
                            Value::Bool(e.overdue(now)),
                            text(&ts::format(e.reported_at)),
                            text(&ts::format(e.deadline_at)),
                            grid(&e.place),
                            opt_text(e.owner.as_ref().map(|o| o.name.as_str())),
                            text(&e.description),
                            Value::Int(e.units.len() as i64),
                            Value::Int(e.duplicates.len() as i64),
                            e.major.map_or(Value::Null, Value::Int),
                            Value::Bool(e.command.is_some()),
                            opt_text(e.sensor.as_deref()),
                        ],
                    }
                })
                .collect()
        }
        LiveLayer::Sensors => {
            meta.title = "Sensors".into();
            meta.description = "IoT sensors with their latest reading and alarm".into();
            meta.fields = [
                ("sensor", Text),
                ("type", Text),
                ("name", Text),
                ("unit", Text),
                ("value", Real),
                ("observed", Text),
                ("alarm", Text),
                ("grid", Text),
            ]
            .into_iter()
            .map(|(n, k)| field(n, k))
            .collect();
            s.sensors
                .values()
                .enumerate()
                .map(|(i, x)| Feature {
                    id: i as i64 + 1,
                    geometry: point(x.lon, x.lat),
                    values: vec![
                        text(&x.id),
                        text(&x.kind),
                        opt_text(x.name.as_deref()),
                        text(&x.unit),
                        x.latest.map_or(Value::Null, |l| Value::Float(l.value)),
                        x.latest.map_or(Value::Null, |l| text(&ts::format(l.at))),
                        x.alarm
                            .as_ref()
                            .map_or(Value::Null, |a| text(a.rule.name())),
                        grid(&x.place),
                    ],
                })
                .collect()
        }
        LiveLayer::Units => {
            meta.title = "Units".into();
            meta.description =
                "Response forces and equipment with live positions and status".into();
            meta.fields = [
                ("unit", Text),
                ("name", Text),
                ("type", Text),
                ("status", Text),
                ("event", Integer),
                ("updated", Text),
                ("grid", Text),
            ]
            .into_iter()
            .map(|(n, k)| field(n, k))
            .collect();
            s.units
                .values()
                .enumerate()
                .map(|(i, u)| Feature {
                    id: i as i64 + 1,
                    geometry: point(u.lon, u.lat),
                    values: vec![
                        text(&u.id),
                        text(&u.name),
                        text(&u.kind),
                        text(u.status.name()),
                        u.event.map_or(Value::Null, Value::Int),
                        text(&ts::format(u.updated_at)),
                        grid(&u.place),
                    ],
                })
                .collect()
        }
    };
    meta.feature_count = features.len() as u64;
    meta.bounds = features.iter().fold(None, |b: Option<[f64; 4]>, f| {
        let Geometry::Point(p) = &f.geometry else {
            return b;
        };
        Some(b.map_or([p.x(), p.y(), p.x(), p.y()], |[w, s, e, n]| {
            [w.min(p.x()), s.min(p.y()), e.max(p.x()), n.max(p.y())]
        }))
    });
    (meta, features, due)
}

impl City {
    pub(crate) fn live(&self) -> &Live {
        &self.live
    }

    /// Rebuilds the live layers that fell behind the state (called on every layer lookup, so
    /// the very next tile or feature request after a change sees it).
    pub(crate) fn sync_live_layers(&self) {
        let live = self.live();
        let now = ts::now();
        if !live.stale(now).contains(&true) {
            return;
        }
        let Ok(_one) = live.build.lock() else { return };
        let stale = live.stale(now);
        for layer in LiveLayer::ALL {
            let i = layer as usize;
            if !stale[i] {
                continue;
            }
            let dirty = live.shared.dirty[i].load(Ordering::Acquire);
            let (meta, features, due) = {
                let s = read_state(&live.shared.state);
                let (mut meta, features, due) = layer_features(layer, &s, now);
                meta.classification = live.shared.options.catalog.get(layer.name()).cloned();
                // every live thing carries the code of its grid: territory-scoped readers
                // see what lies in their territory
                meta.territory_field = Some("grid".into());
                (meta, features, due)
            };
            let index = LayerIndex::build(meta, features, self.next_version());
            if self.install_live(index).is_ok() {
                live.built[i].store(dirty, Ordering::Release);
                if layer == LiveLayer::Events {
                    live.due.store(due, Ordering::Release);
                }
            }
        }
    }

    /// The grid chain of a point; refused outside every grid of the city. A twin without a
    /// grids layer places nothing and refuses nothing inside the WGS84 range.
    pub async fn place(&self, lon: f64, lat: f64) -> Result<Place> {
        crate::query::check_point((lon, lat))?;
        let tree = match self.territory().await {
            Ok(t) => t,
            Err(Error::NotFound(_)) => return Ok(Place::default()),
            Err(e) => return Err(e),
        };
        let grid = tree.locate(lon, lat).ok_or_else(|| {
            Error::Invalid(format!(
                "({lon}, {lat}) is outside the city: no grid of the twin contains it"
            ))
        })?;
        let chain = tree.chain(grid);
        let unit = |level: Level| {
            let u = chain[level as usize];
            (u != crate::territory::NONE).then(|| {
                let t = tree.unit(u as usize);
                state::named(&t.code, &t.name)
            })
        };
        Ok(Place {
            grid: unit(Level::Grid),
            community: unit(Level::Community),
            street: unit(Level::Street),
            district: unit(Level::District),
        })
    }

    /// Reports an event: placed in its grid chain and assigned to its owner, or merged into
    /// an open event of its category nearby. Returns the event and whether it was merged.
    pub async fn report_event(&self, cx: &Context, mut e: NewEvent) -> Result<(Event, bool)> {
        let duty = Duty::Report {
            citizen: e.source == Source::Citizen,
        };
        self.check_duty(cx, duty, None, "events", "")?;
        check_slug("category", &e.category)?;
        check_text("description", &e.description, 4000)?;
        if let Some(r) = &e.reporter {
            check_text("reporter", r, 200)?;
        }
        check_media(&e.media)?;
        if e.source == Source::Sensor {
            return Err(Error::Invalid(
                "sensor events are opened by the twin from sensor alarms; report readings instead"
                    .into(),
            ));
        }
        e.place = self.place(e.lon, e.lat).await?;
        e.actor = Some(cx.principal.actor());
        match self.live().submit(Op::Report(e)).await? {
            Outcome::Event { event, merged } => {
                self.audit_change(cx, duty, &format!("events/{}", event.id), None)
                    .await;
                Ok((*event, merged))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The territorial code of an event, or the refusal to show one the asker may not
    /// know of.
    fn event_code(&self, id: i64) -> Result<Option<String>> {
        self.with_live(|s| s.events.get(&id).map(|e| e.place.code().map(str::to_owned)))
            .ok_or_else(|| Error::NotFound(format!("no event {id}")))
    }

    fn check_event(&self, cx: &Context, duty: Duty, id: i64) -> Result<()> {
        let code = self.event_code(id)?;
        let missing = format!("no event {id}");
        self.check_duty(
            cx,
            duty,
            Some(code.as_deref()),
            &format!("events/{id}"),
            &missing,
        )
    }

    /// Moves an event along its closed loop; an action its state does not allow is a
    /// [`Error::Conflict`] naming the state.
    pub async fn transition_event(
        &self,
        cx: &Context,
        id: i64,
        action: Action,
        note: &str,
    ) -> Result<Event> {
        let duty = Duty::Transition(action);
        self.check_event(cx, duty, id)?;
        check_text("note", note, 4000)?;
        let e = self
            .event_op(Op::Transition {
                id,
                action,
                actor: cx.principal.actor(),
                note: note.to_owned(),
            })
            .await?;
        self.audit_change(cx, duty, &format!("events/{id}"), None)
            .await;
        Ok(e)
    }

    /// Assigns available units to an open event (they become busy until it closes).
    pub async fn assign_units(&self, cx: &Context, id: i64, units: Vec<String>) -> Result<Event> {
        self.check_event(cx, Duty::AssignUnits, id)?;
        check_unit_list(&units)?;
        if units.is_empty() {
            return Err(Error::Invalid("units: name at least one unit".into()));
        }
        let n = units.len() as u64;
        let e = self
            .event_op(Op::Assign {
                id,
                units,
                actor: cx.principal.actor(),
            })
            .await?;
        self.audit_change(cx, Duty::AssignUnits, &format!("events/{id}"), Some(n))
            .await;
        Ok(e)
    }

    /// Puts events and units under the unified command of a major event.
    pub async fn command_event(
        &self,
        cx: &Context,
        id: i64,
        events: Vec<i64>,
        units: Vec<String>,
    ) -> Result<Event> {
        check_unit_list(&units)?;
        if events.len() > 1000 {
            return Err(Error::Invalid(
                "at most 1000 events under one command".into(),
            ));
        }
        for e in std::iter::once(&id).chain(&events) {
            self.check_event(cx, Duty::Command, *e)?;
        }
        let e = self
            .event_op(Op::Unify {
                id,
                commander: cx.principal.actor(),
                events,
                units,
            })
            .await?;
        self.audit_change(cx, Duty::Command, &format!("events/{id}"), None)
            .await;
        Ok(e)
    }

    async fn event_op(&self, op: Op) -> Result<Event> {
        match self.live().submit(op).await? {
            Outcome::Event { event, .. } => Ok(*event),
            other => Err(unexpected(&other)),
        }
    }

    /// Registers a sensor, or updates a registered one (its readings and alarm stay).
    pub async fn register_sensor(&self, cx: &Context, mut s: NewSensor) -> Result<Sensor> {
        self.check_duty(cx, Duty::RegisterSensor, None, "sensors", "")?;
        check_id("sensor id", &s.id)?;
        check_slug("sensor type", &s.kind)?;
        check_text("unit", &s.unit, 32)?;
        if let Some(n) = &s.name {
            check_text("name", n, 200)?;
        }
        let t = s.thresholds;
        for (name, v) in [("high", t.high), ("low", t.low), ("rate", t.rate)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!(
                    "threshold {name} is not a finite number"
                )));
            }
        }
        if let (Some(l), Some(h)) = (t.low, t.high)
            && l >= h
        {
            return Err(Error::Invalid(format!(
                "threshold low {l} is not below high {h}"
            )));
        }
        if t.rate.is_some_and(|r| r <= 0.0) {
            return Err(Error::Invalid(
                "threshold rate must be above 0 (units per minute)".into(),
            ));
        }
        s.place = self.place(s.lon, s.lat).await?;
        s.registered_by = Some(cx.principal.id.clone());
        let target = format!("sensors/{}", s.id);
        self.check_duty(
            cx,
            Duty::RegisterSensor,
            Some(s.place.code()),
            &target,
            "the place is outside your territory",
        )?;
        match self.live().submit(Op::RegisterSensor(s)).await? {
            Outcome::Sensor(s) => {
                self.audit_change(cx, Duty::RegisterSensor, &target, None)
                    .await;
                Ok(*s)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Checks that the asker may send readings of these sensors.
    fn check_readings(&self, cx: &Context, readings: &[ReadingIn]) -> Result<()> {
        self.check_duty(cx, Duty::Readings, None, "readings", "")?;
        if let Some((i, r)) = readings
            .iter()
            .enumerate()
            .find(|(_, r)| !cx.principal.covers_sensor(&r.sensor))
        {
            let why = format!(
                "reading {i}: {} may not send readings of sensor {:?}",
                cx.principal.id, r.sensor
            );
            self.audit(cx.record(
                &Duty::Readings.name(),
                &format!("sensors/{}", r.sensor),
                false,
                None,
                &why,
            ));
            return Err(Error::Forbidden(why));
        }
        Ok(())
    }

    /// Takes readings, all or none, once they are durable; returns (taken, alarms raised,
    /// alarms cleared).
    pub async fn ingest(
        &self,
        cx: &Context,
        readings: Vec<ReadingIn>,
    ) -> Result<(usize, usize, usize)> {
        self.check_readings(cx, &readings)?;
        if readings.is_empty() {
            return Ok((0, 0, 0));
        }
        match self.live().submit(Op::Readings(readings)).await? {
            Outcome::Readings {
                accepted,
                raised,
                cleared,
                ..
            } => {
                self.audit_change(cx, Duty::Readings, "readings", Some(accepted as u64))
                    .await;
                Ok((accepted, raised, cleared))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Takes one reading once it is durable; returns its number in the change log (its
    /// SensorThings Observation id).
    pub async fn observe(&self, cx: &Context, reading: ReadingIn) -> Result<u64> {
        let readings = vec![reading];
        self.check_readings(cx, &readings)?;
        match self.live().submit(Op::Readings(readings)).await? {
            Outcome::Readings { last, .. } => {
                self.audit_change(cx, Duty::Readings, "readings", Some(1))
                    .await;
                Ok(last)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Queues readings behind everything queued before (so readings of one source keep their
    /// order) without waiting for them to be durable; see [`Pending::done`].
    pub async fn queue_readings(&self, cx: &Context, readings: Vec<ReadingIn>) -> Result<Pending> {
        self.check_readings(cx, &readings)?;
        let n = readings.len() as u64;
        self.audit(cx.record(&Duty::Readings.name(), "readings", true, Some(n), ""));
        self.live().enqueue(Op::Readings(readings)).await
    }

    /// Queues a unit's new position (placed first) like [`City::queue_readings`].
    pub async fn queue_move(&self, cx: &Context, id: &str, lon: f64, lat: f64) -> Result<Pending> {
        let target = format!("units/{id}");
        self.check_duty(cx, Duty::MoveUnit, None, &target, "")?;
        let place = self.place(lon, lat).await?;
        self.audit(cx.record(&Duty::MoveUnit.name(), &target, true, None, ""));
        self.live()
            .enqueue(Op::Move {
                id: id.to_owned(),
                lon,
                lat,
                place,
            })
            .await
    }

    /// Registers a unit, or updates a registered one.
    pub async fn register_unit(&self, cx: &Context, mut u: NewUnit) -> Result<Unit> {
        let target = format!("units/{}", u.id);
        self.check_duty(cx, Duty::RegisterUnit, None, &target, "")?;
        check_id("unit id", &u.id)?;
        check_slug("unit type", &u.kind)?;
        check_text("name", &u.name, 200)?;
        u.place = self.place(u.lon, u.lat).await?;
        self.unit_op(cx, Duty::RegisterUnit, &target, Op::RegisterUnit(u))
            .await
    }

    /// A unit's new position.
    pub async fn move_unit(&self, cx: &Context, id: &str, lon: f64, lat: f64) -> Result<Unit> {
        let target = format!("units/{id}");
        self.check_duty(cx, Duty::MoveUnit, None, &target, "")?;
        let place = self.place(lon, lat).await?;
        let op = Op::Move {
            id: id.to_owned(),
            lon,
            lat,
            place,
        };
        self.unit_op(cx, Duty::MoveUnit, &target, op).await
    }

    /// A unit's new status; leaving `busy` releases it from its event.
    pub async fn set_unit_status(
        &self,
        cx: &Context,
        id: &str,
        status: UnitStatus,
    ) -> Result<Unit> {
        let target = format!("units/{id}");
        self.check_duty(cx, Duty::UnitStatus, None, &target, "")?;
        let op = Op::SetStatus {
            id: id.to_owned(),
            status,
        };
        self.unit_op(cx, Duty::UnitStatus, &target, op).await
    }

    async fn unit_op(&self, cx: &Context, duty: Duty, target: &str, op: Op) -> Result<Unit> {
        match self.live().submit(op).await? {
            Outcome::Unit(u) => {
                self.audit_change(cx, duty, target, None).await;
                Ok(*u)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Reads the live state as it stands.
    pub fn with_live<R>(&self, f: impl FnOnce(&LiveState) -> R) -> R {
        f(&read_state(&self.live().shared.state))
    }

    /// The live options (deadlines, merge window).
    #[must_use]
    pub fn live_options(&self) -> &LiveOptions {
        &self.live().shared.options
    }

    /// Makes this instance one of a cluster that does not (yet) write: its operations go to
    /// the writer through the bus, and it shows what the writer commits as it follows.
    pub fn follow_through(&self, bus: Arc<dyn crate::cluster::Bus>) {
        *self
            .live()
            .shared
            .role
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Role::Follower(bus);
    }

    /// Makes this instance the writer, once it holds the store's writer lock: it reads the
    /// change log to its end first, so it numbers on from the last committed change.
    pub async fn lead(&self) -> Result<()> {
        let shared = &self.live().shared;
        shared.catch_up(u64::MAX).await?;
        *shared
            .role
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Role::Writer;
        tracing::info!(seq = self.live_seq(), "this instance writes now");
        Ok(())
    }

    /// Whether this instance applies operations itself.
    #[must_use]
    pub fn writes(&self) -> bool {
        matches!(self.live().shared.role(), Role::Writer)
    }

    /// Applies changes the writer committed (from the bus): in order, skipping those shown,
    /// filling a gap before them from the change log.
    pub async fn follow(&self, changes: Vec<Change>) -> Result<()> {
        self.live().shared.follow(changes).await
    }

    /// Reads the change log to its end (what the bus did not bring).
    pub async fn catch_up(&self) -> Result<()> {
        self.live().shared.catch_up(u64::MAX).await
    }

    /// Applies operations another instance forwarded, in order, as one queue with this
    /// instance's own; answers each and the sequence number the state shows after them.
    pub async fn apply_forwarded(&self, ops: Vec<Op>) -> Result<(Vec<Result<Outcome>>, u64)> {
        if !self.writes() {
            return Err(Error::Unavailable(
                "this instance is not the writer (any more)".into(),
            ));
        }
        let mut pending = Vec::with_capacity(ops.len());
        for op in ops {
            pending.push(self.live().enqueue(op).await?);
        }
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            results.push(p.outcome().await);
        }
        Ok((results, self.live_seq()))
    }

    /// The sequence number of the last committed change.
    #[must_use]
    pub fn live_seq(&self) -> u64 {
        read_state(&self.live().shared.state).seq
    }

    /// Changes as they are committed, in sequence order. A receiver that falls more than
    /// 65,536 changes behind is told so and catches up with [`City::changes_after`].
    #[must_use]
    pub fn feed(&self) -> broadcast::Receiver<Arc<Change>> {
        self.live().shared.feed.subscribe()
    }

    /// Committed changes after a sequence number, oldest first, at most `limit`.
    pub async fn changes_after(&self, seq: u64, limit: usize) -> Result<Vec<Change>> {
        self.store()
            .read_changes(&ChangeQuery {
                after_seq: seq,
                limit,
                ..ChangeQuery::default()
            })
            .await
    }

    /// Changes from `from` to `to` (inclusive), oldest first, at most `limit`; readings only
    /// when asked for.
    pub async fn changes_between(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        self.store().read_changes(q).await
    }

    /// A sensor's readings in `[from, to)`: raw, or per `interval` with min/max/avg.
    pub async fn readings(
        &self,
        sensor: &str,
        from: Millis,
        to: Millis,
        interval: Option<Millis>,
        limit: usize,
    ) -> Result<Vec<Bucket>> {
        if !self.with_live(|s| s.sensors.contains_key(sensor)) {
            return Err(Error::NotFound(format!("no sensor {sensor:?}")));
        }
        self.store()
            .reading_history(sensor, from, to, interval, limit)
            .await
    }
}

fn check_unit_list(units: &[String]) -> Result<()> {
    if units.len() > 500 {
        return Err(Error::Invalid("at most 500 units at once".into()));
    }
    units.iter().try_for_each(|u| check_id("unit id", u))
}

fn unexpected(o: &Outcome) -> Error {
    Error::Invalid(format!("unexpected outcome {o:?}"))
}

#[cfg(test)]
mod tests;
