//! What the live twin holds: events with their closed loop, sensors with their alarms, units
//! of the response forces, and the changes between them.

pub use crate::change::{LiveLayer, Millis, ts};
use serde::{Deserialize, Serialize};

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// the 12345 hotline
    Hotline,
    /// a citizen's own report (app, mini-program), usually with photos or video
    Citizen,
    /// a grid inspector on patrol
    Inspector,
    /// an IoT sensor alarm (opened by the twin itself)
    Sensor,
    /// video analytics
    Video,
    /// a department
    Department,
}

impl Source {
    /// The name as written on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Hotline => "hotline",
            Self::Citizen => "citizen",
            Self::Inspector => "inspector",
            Self::Sensor => "sensor",
            Self::Video => "video",
            Self::Department => "department",
        }
    }
}

/// How grave an event is, in the four national emergency levels.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// 一般 (a report's severity when it names none)
    #[default]
    General,
    /// 较大
    Serious,
    /// 重大
    Major,
    /// 特别重大
    Extraordinary,
}

impl Severity {
    /// The name as written on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Serious => "serious",
            Self::Major => "major",
            Self::Extraordinary => "extraordinary",
        }
    }
}

/// Where an event stands in its closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventState {
    /// reported, not yet looked at
    Reported,
    /// accepted as a case (立案)
    Accepted,
    /// dispatched to the owning unit (派单)
    Dispatched,
    /// being handled (处置)
    Handling,
    /// the handler reported back (反馈)
    Feedback,
    /// the result was checked on site (核查)
    Verified,
    /// closed (结案)
    Closed,
    /// not accepted as a case: a false, duplicate or out-of-scope report
    Rejected,
}

impl EventState {
    /// The state's name as written on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Accepted => "accepted",
            Self::Dispatched => "dispatched",
            Self::Handling => "handling",
            Self::Feedback => "feedback",
            Self::Verified => "verified",
            Self::Closed => "closed",
            Self::Rejected => "rejected",
        }
    }

    /// Closed or rejected: nothing more happens to the event.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Rejected)
    }
}

/// A step of the closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// reported → accepted
    Accept,
    /// accepted → dispatched
    Dispatch,
    /// dispatched → handling
    Start,
    /// handling → feedback
    Feedback,
    /// feedback → verified
    Verify,
    /// verified → closed
    Close,
    /// reported → rejected (needs a reason)
    Reject,
    /// one step back: dispatched → accepted, handling → dispatched, feedback → handling,
    /// verified → feedback (needs a reason)
    Return,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 8] = [
        Self::Accept,
        Self::Dispatch,
        Self::Start,
        Self::Feedback,
        Self::Verify,
        Self::Close,
        Self::Reject,
        Self::Return,
    ];

    /// The state the action leads to from `from`; `None` when it is not allowed there.
    #[must_use]
    pub fn next(self, from: EventState) -> Option<EventState> {
        use EventState as S;
        match (self, from) {
            (Self::Accept, S::Reported) | (Self::Return, S::Dispatched) => Some(S::Accepted),
            (Self::Dispatch, S::Accepted) | (Self::Return, S::Handling) => Some(S::Dispatched),
            (Self::Start, S::Dispatched) | (Self::Return, S::Feedback) => Some(S::Handling),
            (Self::Feedback, S::Handling) | (Self::Return, S::Verified) => Some(S::Feedback),
            (Self::Verify, S::Feedback) => Some(S::Verified),
            (Self::Close, S::Verified) => Some(S::Closed),
            (Self::Reject, S::Reported) => Some(S::Rejected),
            _ => None,
        }
    }

    /// Whether the action must say why.
    #[must_use]
    pub fn needs_reason(self) -> bool {
        matches!(self, Self::Reject | Self::Return)
    }

    /// The action's name as written on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Dispatch => "dispatch",
            Self::Start => "start",
            Self::Feedback => "feedback",
            Self::Verify => "verify",
            Self::Close => "close",
            Self::Reject => "reject",
            Self::Return => "return",
        }
    }

    /// The actions allowed in a state.
    #[must_use]
    pub fn allowed(from: EventState) -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|a| a.next(from).is_some())
            .map(|a| a.name())
            .collect()
    }
}

/// A territorial unit by code and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// division code
    pub code: String,
    /// name
    pub name: String,
}

/// The grid chain of a place: which grid, community, street and district own it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// the grid
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Named>,
    /// the community (社区)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community: Option<Named>,
    /// the street (街道)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<Named>,
    /// the district (区)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<Named>,
}

impl Place {
    /// The finest code of the chain (codes nest: a grid's code starts with its community's).
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        [&self.grid, &self.community, &self.street, &self.district]
            .into_iter()
            .find_map(|u| u.as_ref().map(|n| n.code.as_str()))
    }
}

/// One recorded step of an event: a transition, or a note on the way (merged report, alarm
/// raised again or cleared, units assigned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// the action (`accept`, …) or the note's kind (`merged`, `alarm-cleared`, `assigned`, …)
    pub action: String,
    /// the state before
    pub from: EventState,
    /// the state after
    pub to: EventState,
    /// who did it
    pub actor: String,
    /// when
    #[serde(with = "ts")]
    pub at: Millis,
    /// why, or what
    #[serde(default)]
    pub note: String,
}

/// A report attached to an open event as a duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// where it came from
    pub source: Source,
    /// when
    #[serde(with = "ts")]
    pub at: Millis,
    /// what the reporter said
    pub description: String,
    /// who reported it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    /// photo and video links
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
    /// longitude
    pub lon: f64,
    /// latitude
    pub lat: f64,
}

/// Unified command over a major event: one commander, many events and units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// who commands
    pub commander: String,
    /// since when
    #[serde(with = "ts")]
    pub since: Millis,
    /// the events coordinated under this one
    pub events: Vec<i64>,
}

/// An event (事件): anything that needs handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// id, increasing
    pub id: i64,
    /// where it came from
    pub source: Source,
    /// category (`waterlogging`, `road-damage`, …); sets the deadline
    pub category: String,
    /// severity
    pub severity: Severity,
    /// what happened
    pub description: String,
    /// longitude, WGS84
    pub lon: f64,
    /// latitude, WGS84
    pub lat: f64,
    /// photo and video links
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
    /// who reported it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    /// the grid chain of the place
    pub place: Place,
    /// the unit that owns the event by territory: its street, else its district
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Named>,
    /// where it stands
    pub state: EventState,
    /// when it was reported
    #[serde(with = "ts")]
    pub reported_at: Millis,
    /// when it last changed
    #[serde(with = "ts")]
    pub updated_at: Millis,
    /// when it must be closed by
    #[serde(with = "ts")]
    pub deadline_at: Millis,
    /// every step so far, oldest first
    #[serde(default)]
    pub history: Vec<Step>,
    /// reports merged into this event as duplicates
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<Report>,
    /// units assigned to it
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
    /// the sensor whose alarm opened it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// the major event commanding this one
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// unified command, when this is a major event
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// SHA-256 (hex) of the receipts citizens were given for their reports of it: a citizen
    /// follows their report with the receipt, and nothing else
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<String>,
}

impl Event {
    /// Past its deadline and not yet closed or rejected.
    #[must_use]
    pub fn overdue(&self, now: Millis) -> bool {
        !self.state.is_final() && now > self.deadline_at
    }
}

/// Alarm thresholds of a sensor; any may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// alarm above this value
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// alarm below this value
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// alarm when the value changes faster than this, in units per minute
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// Which rule raised an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// above the high threshold
    High,
    /// below the low threshold
    Low,
    /// changing faster than the rate threshold
    Rate,
}

impl Rule {
    /// The name as written on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Low => "low",
            Self::Rate => "rate",
        }
    }
}

/// A sensor's raised alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// the rule that raised it
    pub rule: Rule,
    /// when it was raised (the reading's time)
    #[serde(with = "ts")]
    pub since: Millis,
    /// the reading that raised it
    pub value: f64,
    /// the event it opened (or joined)
    pub event: i64,
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// when it was measured
    #[serde(with = "ts")]
    pub at: Millis,
    /// the value
    pub value: f64,
}

/// An IoT sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// id, as the sensor network names it
    pub id: String,
    /// what it measures (`water-level`, `rainfall`, `gas`, …)
    #[serde(rename = "type")]
    pub kind: String,
    /// a human name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// longitude, WGS84
    pub lon: f64,
    /// latitude, WGS84
    pub lat: f64,
    /// unit of its readings (`m`, `mm/h`, `ppm`, …)
    pub unit: String,
    /// alarm rules
    #[serde(default)]
    pub thresholds: Thresholds,
    /// the grid chain of its place
    pub place: Place,
    /// when it was registered
    #[serde(with = "ts")]
    pub registered_at: Millis,
    /// who registered it (a key's or user's principal id), counted against their cap
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
    /// its latest reading
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Sample>,
    /// its alarm, while raised
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Alarm>,
    /// the event its alarms opened, while that event is open
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
}

/// Whether a unit can be dispatched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitStatus {
    /// ready (a unit's status when registered without one)
    #[default]
    Available,
    /// on an event
    Busy,
    /// off duty
    OffDuty,
}

impl UnitStatus {
    /// The status as written on the wire.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Busy => "busy",
            Self::OffDuty => "off-duty",
        }
    }
}

/// A unit of the response forces: a team, a vehicle, a pump…
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// id
    pub id: String,
    /// name
    pub name: String,
    /// type (`team`, `vehicle`, `pump`, …)
    #[serde(rename = "type")]
    pub kind: String,
    /// status
    pub status: UnitStatus,
    /// longitude, WGS84
    pub lon: f64,
    /// latitude, WGS84
    pub lat: f64,
    /// the grid chain of where it is
    pub place: Place,
    /// when its position or status last changed
    #[serde(with = "ts")]
    pub updated_at: Millis,
    /// the event it is assigned to
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
}
