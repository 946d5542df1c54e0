//! Several instances, one writer: the NATS adapter of the cluster (see `citytwin_city::cluster`).
//!
//! - Every instance tries for the store's writer lock every second; the holder writes. When
//!   it dies, PostgreSQL lets go of the lock and another instance takes it within a second or
//!   two, reads the change log to its end and numbers on from there.
//! - Instances that do not write forward their operations to the writer (a NATS request on
//!   `citytwin.ops`, answered once the operations are durable) and answer their client once
//!   they themselves show the change.
//! - The writer publishes every committed change to the JetStream stream `CITYTWIN`, the
//!   change's sequence number as message id, each publish expecting the one before it as the
//!   stream's last message: a stale writer's publish is refused, and a new writer first
//!   republishes what the stream lacks from the change log.
//! - Every instance follows the stream (filling any gap from the change log, and reading the
//!   log every second while the bus is down), which keeps its live state, indexes, caches and
//!   feed current.
//! - Base layers, grants, objections, keys and revocations changed through any instance or
//!   command line (with `CITYTWIN_NATS` set) are announced on `citytwin.notices`; every
//!   instance takes them up at once.

use async_nats::jetstream::{self, consumer::push, stream};
use citytwin_city::cluster::{Answer, Bus, Forward, Notice, WireChange};
use citytwin_city::live::{Op, Outcome};
use citytwin_city::store::Store;
use citytwin_city::store::cluster::Announce;
use citytwin_city::twin::City;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// The stream of committed changes.
pub const STREAM: &str = "CITYTWIN";
/// Its subject.
pub const CHANGES: &str = "citytwin.changes";
/// Where operations go to the writer.
pub const OPS: &str = "citytwin.ops";
/// Where notices go.
pub const NOTICES: &str = "citytwin.notices";

/// How long a forwarded operation waits for the writer's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
/// How long a forwarded operation waits for a writer to be elected.
const ELECTION_WAIT: Duration = Duration::from_secs(15);
/// Changes read (from the feed or the change log) before their messages' acknowledgements
/// are awaited.
const PUBLISH_WINDOW: usize = 4096;
/// Most bytes of changes in one message (NATS takes 1 MiB by default).
const MESSAGE_BYTES: usize = 256 << 10;

/// Connects to NATS (failing at once when it cannot be reached; after that the client
/// reconnects by itself for as long as it runs).
pub async fn connect(url: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .name("citytwin")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| format!("cannot reach NATS at {url}: {e}"))
}

/// The stream of changes, created when missing: kept a day on disk, a change published
/// twice within two minutes stored once.
pub async fn changes_stream(js: &jetstream::Context) -> Result<stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec![CHANGES.into()],
        storage: stream::StorageType::File,
        max_age: Duration::from_hours(24),
        duplicate_window: Duration::from_mins(2),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot open the JetStream stream {STREAM}: {e}"))
}

/// The store of a command run beside a cluster (`CITYTWIN_NATS` set): it tells the
/// instances what it changed, so they take it up at once.
pub async fn announcing(store: Arc<dyn Store>) -> Result<Arc<dyn Store>, String> {
    match std::env::var("CITYTWIN_NATS") {
        Ok(url) if !url.is_empty() => {
            let client = connect(&url).await?;
            Ok(Arc::new(citytwin_city::store::cluster::ClusterStore::new(
                store,
                None,
                Some(Arc::new(Notices(client))),
            )))
        }
        _ => Ok(store),
    }
}

/// Sends notices to every instance.
pub struct Notices(pub async_nats::Client);

#[async_trait::async_trait]
impl Announce for Notices {
    async fn announce(&self, notice: Notice) {
        let sent = self.0.publish(NOTICES, notice.name().into()).await;
        // a command line exits right after: the notice must have left
        let flushed = self.0.flush().await;
        if let Err(e) = sent
            .map_err(|e| e.to_string())
            .and(flushed.map_err(|e| e.to_string()))
        {
            tracing::warn!(error = %e, notice = notice.name(), "could not announce a change; the other instances see it at their next refresh");
        }
    }
}

/// The bus as a non-writing instance uses it.
struct NatsBus(async_nats::Client);

/// Forwarded batches and their answers are gzipped (`crate::routes::tiles::gzip`: readings
/// compress some tenfold, and a NATS message is at most 1 MiB by default).
fn unpack(packed: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(packed)
        .take(256 << 20)
        .read_to_end(&mut out)
        .map_err(|e| format!("not a gzipped batch: {e}"))?;
    Ok(out)
}

impl NatsBus {
    /// Forwards one batch small enough for one message.
    async fn forward_one(
        &self,
        payload: bytes::Bytes,
        n: usize,
    ) -> citytwin_city::Result<(Vec<citytwin_city::Result<Outcome>>, u64)> {
        use citytwin_city::Error;
        let started = std::time::Instant::now();
        loop {
            let request = async_nats::Request::new()
                .payload(payload.clone())
                .timeout(Some(ANSWER_WAIT));
            match self.0.send_request(OPS, request).await {
                Ok(reply) => {
                    let answer: Answer = unpack(&reply.payload)
                        .and_then(|raw| serde_json::from_slice(&raw).map_err(|e| e.to_string()))
                        .map_err(|e| {
                            Error::Unavailable(format!("the writer's answer is unreadable: {e}"))
                        })?;
                    match answer.into_results(n) {
                        // the instance asked had just stopped writing: ask the next writer
                        Err(Error::Unavailable(why))
                            if why.contains("not the writer")
                                && started.elapsed() < ELECTION_WAIT =>
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        other => return other,
                    }
                }
                Err(e)
                    if matches!(e.kind(), async_nats::RequestErrorKind::NoResponders)
                        && started.elapsed() < ELECTION_WAIT =>
                {
                    // no writer at this moment: one is being elected
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(Error::Unavailable(match e.kind() {
                        async_nats::RequestErrorKind::TimedOut => format!(
                            "the writer did not answer within {} s; the write may or may not have been applied",
                            ANSWER_WAIT.as_secs()
                        ),
                        async_nats::RequestErrorKind::NoResponders => format!(
                            "no instance has been able to write for {} s",
                            ELECTION_WAIT.as_secs()
                        ),
                        _ => format!("the change bus failed: {e}"),
                    }));
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn forward(
        &self,
        ops: Vec<Op>,
    ) -> citytwin_city::Result<(Vec<citytwin_city::Result<Outcome>>, u64)> {
        use citytwin_city::Error;
        // as many operations to a message as fit, in order (the writer applies each message
        // as it comes, and the next is sent only when the last is answered)
        let limit = (self.0.server_info().max_payload / 2).max(64 << 10);
        // `Forward` on the wire, without copying the operations
        let encode = |ops: &[Op]| {
            serde_json::to_vec(&std::collections::BTreeMap::from([("ops", ops)]))
                .map(|raw| crate::routes::tiles::gzip(&raw))
                .map_err(|e| Error::Invalid(format!("cannot encode operations: {e}")))
        };
        let mut todo = std::collections::VecDeque::from([ops]);
        let mut results = Vec::new();
        let mut seq = 0;
        while let Some(mut chunk) = todo.pop_front() {
            let packed = encode(&chunk)?;
            if packed.len() <= limit {
                match self.forward_one(packed, chunk.len()).await {
                    Ok((r, s)) => {
                        results.extend(r);
                        seq = seq.max(s);
                    }
                    // what went before stays answered; this and the rest are not applied
                    // (or not known to be)
                    Err(e) => {
                        let rest = chunk.len() + todo.iter().map(Vec::len).sum::<usize>();
                        let why = e.to_string();
                        results.extend((0..rest).map(|_| Err(Error::Unavailable(why.clone()))));
                        break;
                    }
                }
            } else if chunk.len() > 1 {
                let back = chunk.split_off(chunk.len() / 2);
                todo.push_front(back);
                todo.push_front(chunk);
            } else {
                return Err(Error::Invalid(format!(
                    "one operation of {} bytes (compressed) is more than the change bus carries ({limit} bytes): send fewer readings at once",
                    packed.len()
                )));
            }
        }
        Ok((results, seq))
    }
}

/// Joins the cluster: this instance forwards its operations until it holds the writer lock,
/// follows the stream, and takes up notices. Runs until the process ends.
pub async fn join(
    city: Arc<City>,
    store: Arc<dyn Store>,
    client: async_nats::Client,
) -> Result<(), String> {
    let js = jetstream::new(client.clone());
    let stream = changes_stream(&js).await?;
    city.follow_through(Arc::new(NatsBus(client.clone())));
    // notices first, so none is missed while the rest starts
    let notices = client
        .subscribe(NOTICES)
        .await
        .map_err(|e| format!("cannot subscribe to {NOTICES}: {e}"))?;
    tokio::spawn(take_notices(Arc::clone(&city), notices));
    tokio::spawn(follow(Arc::clone(&city), client.clone(), stream.clone()));
    tokio::spawn(elect(city, store, client, js, stream));
    Ok(())
}

async fn take_notices(city: Arc<City>, mut notices: async_nats::Subscriber) {
    while let Some(m) = notices.next().await {
        let Some(notice) = std::str::from_utf8(&m.payload).ok().and_then(Notice::parse) else {
            continue;
        };
        let done = match notice {
            Notice::Layers => city.refresh().await.map(|changed| {
                if !changed.is_empty() {
                    tracing::info!(?changed, "reloaded layers another instance changed");
                }
            }),
            Notice::Records => city.reload_records().await,
            Notice::Credentials => city.credentials().refresh().await.map(|_| ()),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, notice = notice.name(), "taking up a notice failed");
        }
    }
}

/// Follows the stream of changes for as long as the process runs; the change log fills what
/// the stream did not bring (before the subscription, while the bus is down).
async fn follow(city: Arc<City>, client: async_nats::Client, stream: stream::Stream) {
    // the change log, every second, when nothing came from the bus
    let c = Arc::clone(&city);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if !c.writes()
                && let Err(e) = c.catch_up().await
            {
                tracing::debug!(error = %e, "reading the change log failed");
            }
        }
    });
    loop {
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: CHANGES.into(),
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => {
                if let Err(e) = city.catch_up().await {
                    tracing::debug!(error = %e, "reading the change log failed");
                }
                while let Some(m) = messages.next().await {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "the change stream broke off; following it again");
                            break;
                        }
                    };
                    match WireChange::unpack(&m.payload) {
                        Ok(changes) => {
                            if let Err(e) = city.follow(changes).await {
                                tracing::warn!(error = %e, "a change from the bus could not be applied");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "skipped an unreadable change"),
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot follow the change stream yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Tries for the writer lock every second; while held, this instance writes, answers
/// forwarded operations and publishes what it commits.
async fn elect(
    city: Arc<City>,
    store: Arc<dyn Store>,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
) {
    let bus: Arc<dyn Bus> = Arc::new(NatsBus(client.clone()));
    loop {
        match store.lead().await {
            Ok(Some(mut lease)) => {
                if let Err(e) = city.lead().await {
                    tracing::warn!(error = %e, "could not take over writing");
                    drop(lease);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                let publisher =
                    tokio::spawn(publish(Arc::clone(&city), js.clone(), stream.clone()));
                let answering = match client.queue_subscribe(OPS, "citytwin-writer".into()).await {
                    Ok(sub) => Some(tokio::spawn(answer(Arc::clone(&city), client.clone(), sub))),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take forwarded operations");
                        None
                    }
                };
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Err(e) = lease.check().await {
                        tracing::warn!(error = %e, "lost the writer lock; forwarding again");
                        break;
                    }
                }
                city.follow_through(Arc::clone(&bus));
                publisher.abort();
                if let Some(a) = answering {
                    a.abort();
                }
                drop(lease);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "could not ask for the writer lock"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Answers operations forwarded by the other instances.
async fn answer(city: Arc<City>, client: async_nats::Client, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply.clone() else {
            continue;
        };
        let city = Arc::clone(&city);
        let client = client.clone();
        tokio::spawn(async move {
            let decoded = unpack(&m.payload)
                .and_then(|raw| serde_json::from_slice::<Forward>(&raw).map_err(|e| e.to_string()));
            let result = match decoded {
                Ok(f) => city.apply_forwarded(f.ops).await,
                Err(e) => Err(citytwin_city::Error::Invalid(format!(
                    "forwarded operations are unreadable: {e}"
                ))),
            };
            let body = crate::routes::tiles::gzip(
                &serde_json::to_vec(&Answer::of(&result)).unwrap_or_default(),
            );
            if let Err(e) = client.publish(reply, body).await {
                tracing::warn!(error = %e, "could not answer forwarded operations");
            }
        });
    }
}

/// The sequence number of the last change in the stream; `None` when the stream is empty.
async fn last_published(stream: &stream::Stream) -> Result<Option<u64>, String> {
    match stream.get_last_raw_message_by_subject(CHANGES).await {
        Ok(m) => WireChange::unpack(&m.payload)
            .map(|c| c.last().map(|c| c.seq))
            .map_err(|e| e.to_string()),
        Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Publishes every committed change, in order, for as long as this instance writes.
async fn publish(city: Arc<City>, js: jetstream::Context, stream: stream::Stream) {
    let mut feed = city.feed();
    loop {
        if let Err(e) = publish_run(&city, &js, &stream, &mut feed).await {
            tracing::warn!(error = %e, "publishing changes stopped; starting again after the stream's last");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn publish_run(
    city: &City,
    js: &jetstream::Context,
    stream: &stream::Stream,
    feed: &mut tokio::sync::broadcast::Receiver<Arc<citytwin_city::live::Change>>,
) -> Result<(), String> {
    // an empty stream (new, or aged out) starts at the present: followers read what came
    // before from the change log
    let mut last = last_published(stream).await?;
    let mut published = last.unwrap_or_else(|| city.live_seq());
    loop {
        // what the stream lacks, from the change log (a new writer, a lagging feed)
        while published < city.live_seq() {
            let batch = city
                .changes_after(published, PUBLISH_WINDOW)
                .await
                .map_err(|e| e.to_string())?;
            if batch.is_empty() {
                break;
            }
            let batch: Vec<_> = batch.into_iter().map(Arc::new).collect();
            publish_batch(js, &batch, &mut last, &mut published).await?;
        }
        let first = match feed.recv().await {
            Ok(c) => c,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        };
        let mut batch = vec![first];
        while batch.len() < PUBLISH_WINDOW {
            match feed.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        batch.retain(|c| c.seq > published);
        if batch.first().is_some_and(|c| c.seq == published + 1)
            && batch.windows(2).all(|w| w[1].seq == w[0].seq + 1)
        {
            publish_batch(js, &batch, &mut last, &mut published).await?;
        }
        // otherwise a gap: the change log fills it on the next round
    }
}

/// Publishes changes that follow `published`, several to a message, each message expecting
/// the one before as the stream's last, and waits for the stream to take them all.
async fn publish_batch(
    js: &jetstream::Context,
    batch: &[Arc<citytwin_city::live::Change>],
    last: &mut Option<u64>,
    published: &mut u64,
) -> Result<(), String> {
    let mut acks = Vec::new();
    let mut prev = *last;
    for (seq, payload) in WireChange::pack(batch, MESSAGE_BYTES) {
        let mut message = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(seq.to_string());
        if let Some(p) = prev {
            message = message.expected_last_message_id(p.to_string());
        }
        let ack = js
            .send_publish(CHANGES, message)
            .await
            .map_err(|e| format!("publishing changes up to {seq}: {e}"))?;
        acks.push((seq, ack));
        prev = Some(seq);
    }
    for (seq, ack) in acks {
        ack.await
            .map_err(|e| format!("the stream refused changes up to {seq}: {e}"))?;
        *last = Some(seq);
        *published = seq;
    }
    Ok(())
}
