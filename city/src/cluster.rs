//! Several instances on one store. One of them writes: the holder of the store's writer lock
//! (a PostgreSQL advisory lock) numbers and commits every operation, as a single process
//! does. The others forward their operations to it through the bus and follow what it
//! commits. The bus itself (NATS JetStream) is the server's adapter; this module holds what
//! every adapter must carry and how it is written on the wire.

use crate::live::{Change, LiveLayer, Millis, Op, Outcome};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// What carries operations to the writer of the cluster.
#[async_trait::async_trait]
pub trait Bus: Send + Sync {
    /// Hands operations to the writer and waits until they are durable (or refused): their
    /// outcomes, in order, and the sequence number the writer's state showed after them.
    async fn forward(&self, ops: Vec<Op>) -> Result<(Vec<Result<Outcome>>, u64)>;
}

/// The writer lock, while held. Dropping it lets it go.
#[async_trait::async_trait]
pub trait Lease: Send {
    /// Whether the lock is still held (the connection that holds it still answers).
    async fn check(&mut self) -> Result<()>;
}

/// A committed change as the bus carries it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireChange {
    /// position in the change log
    pub seq: u64,
    /// when
    pub at: Millis,
    /// what happened
    pub kind: String,
    /// the live layer
    pub layer: String,
    /// the thing's id
    pub entity: String,
    /// where
    pub lon: f64,
    /// where
    pub lat: f64,
    /// the finest territorial code
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    /// the value of a reading
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// the thing after the change, as JSON text
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl WireChange {
    /// The wire form of a change.
    #[must_use]
    pub fn of(c: &Change) -> Self {
        Self {
            seq: c.seq,
            at: c.at,
            kind: c.kind.to_owned(),
            layer: c.layer.name().to_owned(),
            entity: c.entity.clone(),
            lon: c.lon,
            lat: c.lat,
            grid: c.grid.clone(),
            value: c.value,
            body: c.body.clone(),
        }
    }

    /// The change it carries; refused when its kind or layer is unknown.
    pub fn change(self) -> Result<Change> {
        if LiveLayer::parse(&self.layer).is_none() {
            return Err(Error::Invalid(format!(
                "change {} names an unknown live layer {:?}",
                self.seq, self.layer
            )));
        }
        Change::stored(
            self.seq,
            self.at,
            &self.kind,
            &self.layer,
            self.entity,
            self.lon,
            self.lat,
            self.grid,
            self.value,
            self.body,
        )
        .ok_or_else(|| Error::Invalid(format!("change {} is of an unknown kind", self.seq)))
    }

    /// Encodes one change as a JSON object.
    pub fn encode(c: &Change) -> Vec<u8> {
        serde_json::to_vec(&Self::of(c)).unwrap_or_default()
    }

    /// Packs consecutive changes into messages of at most `limit` bytes each (a change larger
    /// than that goes alone): `{"changes":[…]}` with the last change's sequence number, which
    /// is the message's id on the bus.
    #[must_use]
    pub fn pack<C: std::ops::Deref<Target = Change>>(
        changes: &[C],
        limit: usize,
    ) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut body: Vec<u8> = Vec::new();
        let mut last = 0;
        for c in changes {
            let one = Self::encode(c);
            if !body.is_empty() && body.len() + one.len() + 2 > limit {
                body.extend_from_slice(b"]}");
                out.push((last, std::mem::take(&mut body)));
            }
            body.extend_from_slice(if body.is_empty() {
                b"{\"changes\":[".as_slice()
            } else {
                b",".as_slice()
            });
            body.extend_from_slice(&one);
            last = c.seq;
        }
        if !body.is_empty() {
            body.extend_from_slice(b"]}");
            out.push((last, body));
        }
        out
    }

    /// Decodes one message of changes, in order.
    pub fn unpack(bytes: &[u8]) -> Result<Vec<Change>> {
        #[derive(Deserialize)]
        struct Message {
            changes: Vec<WireChange>,
        }
        serde_json::from_slice::<Message>(bytes)
            .map_err(|e| Error::Invalid(format!("changes on the bus are unreadable: {e}")))?
            .changes
            .into_iter()
            .map(WireChange::change)
            .collect()
    }
}

/// A refusal as it crosses the bus: the kind of error and its words, so the forwarding
/// instance answers its client exactly as the writer would have.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireError {
    /// `invalid`, `not-found`, `conflict`, `forbidden`, `too-expensive` or `unavailable`
    pub kind: String,
    /// what is wrong
    pub detail: String,
    /// for a conflict: where the thing stands
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// for a conflict: what is allowed from there
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

impl WireError {
    /// The wire form of an error.
    #[must_use]
    pub fn of(e: &Error) -> Self {
        let (kind, state, allowed) = match e {
            Error::Invalid(_) => ("invalid", None, Vec::new()),
            Error::NotFound(_) => ("not-found", None, Vec::new()),
            Error::Conflict { state, allowed, .. } => {
                ("conflict", Some(state.clone()), allowed.clone())
            }
            Error::Forbidden(_) => ("forbidden", None, Vec::new()),
            Error::TooExpensive(_) => ("too-expensive", None, Vec::new()),
            _ => ("unavailable", None, Vec::new()),
        };
        let detail = match e {
            Error::Unavailable(d) => d.clone(),
            other => other.to_string(),
        };
        Self {
            kind: kind.into(),
            detail,
            state,
            allowed,
        }
    }

    /// The error it carries.
    #[must_use]
    pub fn error(self) -> Error {
        match self.kind.as_str() {
            "invalid" => Error::Invalid(self.detail),
            "not-found" => Error::NotFound(self.detail),
            "conflict" => Error::Conflict {
                detail: self.detail,
                state: self.state.unwrap_or_default(),
                allowed: self.allowed,
            },
            "forbidden" => Error::Forbidden(self.detail),
            "too-expensive" => Error::TooExpensive(self.detail),
            _ => Error::Unavailable(self.detail),
        }
    }
}

/// Operations forwarded to the writer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forward {
    /// in the order they were queued
    pub ops: Vec<Op>,
}

/// The writer's answer to forwarded operations.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    /// per operation: its outcome or why it was refused; absent when the batch as a whole
    /// was refused (see `refused`)
    #[serde(default)]
    pub results: Vec<std::result::Result<Outcome, WireError>>,
    /// the sequence number the writer's state showed after them
    pub seq: u64,
    /// why none was applied (the instance asked is not the writer, the store failed)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<WireError>,
}

impl Answer {
    /// The answer to what [`crate::twin::City::apply_forwarded`] did.
    #[must_use]
    pub fn of(r: &Result<(Vec<Result<Outcome>>, u64)>) -> Self {
        match r {
            Ok((results, seq)) => Self {
                results: results
                    .iter()
                    .map(|r| match r {
                        Ok(o) => Ok(o.clone()),
                        Err(e) => Err(WireError::of(e)),
                    })
                    .collect(),
                seq: *seq,
                refused: None,
            },
            Err(e) => Self {
                results: Vec::new(),
                seq: 0,
                refused: Some(WireError::of(e)),
            },
        }
    }

    /// What it says, for the forwarding instance; `n` operations were forwarded.
    pub fn into_results(self, n: usize) -> Result<(Vec<Result<Outcome>>, u64)> {
        if let Some(e) = self.refused {
            return Err(e.error());
        }
        if self.results.len() != n {
            return Err(Error::Unavailable(format!(
                "the writer answered {} of {n} operations",
                self.results.len()
            )));
        }
        Ok((
            self.results
                .into_iter()
                .map(|r| r.map_err(WireError::error))
                .collect(),
            self.seq,
        ))
    }
}

/// Something changed in the store that every instance must take up at once (not a live
/// change: those are numbered and follow the change log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Notice {
    /// a base layer imported, dropped or reclassified: reload what changed
    Layers,
    /// grants, objections or disputes changed
    Records,
    /// an API key or a user was revoked, or a key issued
    Credentials,
}

impl Notice {
    /// Its name on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Notice::Layers => "layers",
            Notice::Records => "records",
            Notice::Credentials => "credentials",
        }
    }

    /// The notice of a name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Notice::Layers, Notice::Records, Notice::Credentials]
            .into_iter()
            .find(|n| n.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_crosses_the_bus_whole() {
        let c = Change::stored(
            7,
            1_700_000_000_123,
            "reading",
            "sensors",
            "s-1".into(),
            118.8,
            32.05,
            Some("320102".into()),
            Some(3.5),
            None,
        )
        .expect("a known kind");
        let next = Change::stored(
            8,
            1_700_000_000_124,
            "reading",
            "sensors",
            "s-1".into(),
            118.8,
            32.05,
            None,
            Some(4.0),
            None,
        )
        .expect("a known kind");
        let one = WireChange::pack(&[&c, &next], 1 << 20);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, 8, "a message is named by its last change");
        let back = WireChange::unpack(&one[0].1).expect("decodes");
        assert_eq!(back[0].json(), c.json());
        assert_eq!(back[1].json(), next.json());
        // a small limit: one change to a message
        let two = WireChange::pack(&[&c, &next], 10);
        assert_eq!(two.iter().map(|m| m.0).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(WireChange::unpack(&two[1].1).expect("decodes")[0].seq, 8);
        assert!(WireChange::unpack(b"{\"changes\":[{\"seq\":1}]}").is_err());
        let mut bad = WireChange::of(&c);
        bad.kind = "reading.forged".into();
        assert!(bad.change().is_err());
    }

    #[test]
    fn a_refusal_crosses_the_bus_as_the_same_error() {
        let conflict = Error::Conflict {
            detail: "event 3 is closed".into(),
            state: "closed".into(),
            allowed: vec![],
        };
        let answer = Answer::of(&Ok((
            vec![
                Err(conflict),
                Ok(Outcome::Readings {
                    accepted: 2,
                    raised: 1,
                    cleared: 0,
                    last: 7,
                }),
            ],
            42,
        )));
        let wire = serde_json::to_vec(&answer).expect("encodes");
        let back: Answer = serde_json::from_slice(&wire).expect("decodes");
        let (results, seq) = back.into_results(2).expect("an answer");
        assert_eq!(seq, 42);
        assert!(
            matches!(&results[0], Err(Error::Conflict { state, .. }) if state == "closed"),
            "{results:?}"
        );
        assert!(matches!(
            results[1],
            Ok(Outcome::Readings { accepted: 2, .. })
        ));
        let refused = Answer::of(&Err(Error::Unavailable("not the writer".into())));
        assert!(matches!(
            refused.into_results(2),
            Err(Error::Unavailable(d)) if d == "not the writer"
        ));
        assert!(Answer::of(&Ok((vec![], 1))).into_results(1).is_err());
    }
}
