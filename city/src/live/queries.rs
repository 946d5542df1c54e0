//! The rules behind the live lists: which events, sensors and units a query selects, how an
//! event is shown (overdue against its deadline, the actions its state allows), and the
//! defaults of readings and their history. The HTTP layer only reads its parameters into
//! these and answers with what they select.

use super::model::{Action, Event, EventState, Millis, Sensor, Unit, UnitStatus};
use crate::{Error, Result};
use serde_json::{Value, json};

/// A reading's history without `from`: the day before `to`.
pub const DEFAULT_HISTORY_MS: Millis = 86_400_000;

/// Whether a place's finest territorial code lies in a territory (codes nest: a territory's
/// code starts every code inside it).
fn within(code: Option<&str>, territory: Option<&str>) -> bool {
    territory.is_none_or(|t| code.is_some_and(|c| c.starts_with(t)))
}

/// Which states an event list selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// every state but the final ones
    Open,
    /// exactly this one
    Is(EventState),
}

impl StateFilter {
    /// `open`, or a state's name.
    ///
    /// # Errors
    /// An unknown state, named.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "open" {
            return Ok(Self::Open);
        }
        serde_json::from_value::<EventState>(json!(s))
            .map(Self::Is)
            .map_err(|_| Error::Invalid(format!("unknown state {s:?}")))
    }

    fn matches(self, s: EventState) -> bool {
        match self {
            Self::Open => !s.is_final(),
            Self::Is(want) => s == want,
        }
    }
}

/// An event list's selection.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// its state
    pub state: Option<StateFilter>,
    /// its category
    pub category: Option<String>,
    /// a territory (code of any level) it lies in
    pub grid: Option<String>,
    /// whether it is past its deadline
    pub overdue: Option<bool>,
}

impl EventQuery {
    /// Whether the query selects an event at `now`.
    #[must_use]
    pub fn matches(&self, e: &Event, now: Millis) -> bool {
        self.state.is_none_or(|s| s.matches(e.state))
            && self.category.as_deref().is_none_or(|c| e.category == c)
            && within(e.place.code(), self.grid.as_deref())
            && self.overdue.is_none_or(|o| e.overdue(now) == o)
    }
}

/// A sensor list's selection.
#[derive(Debug, Clone, Default)]
pub struct SensorQuery {
    /// what it measures
    pub kind: Option<String>,
    /// a territory it lies in
    pub grid: Option<String>,
    /// whether it is in alarm
    pub alarm: Option<bool>,
}

impl SensorQuery {
    /// Whether the query selects a sensor.
    #[must_use]
    pub fn matches(&self, s: &Sensor) -> bool {
        self.kind.as_deref().is_none_or(|k| s.kind == k)
            && within(s.place.code(), self.grid.as_deref())
            && self.alarm.is_none_or(|a| s.alarm.is_some() == a)
    }
}

/// A unit list's selection.
#[derive(Debug, Clone, Default)]
pub struct UnitQuery {
    /// its type
    pub kind: Option<String>,
    /// its status
    pub status: Option<UnitStatus>,
}

impl UnitQuery {
    /// Whether the query selects a unit.
    #[must_use]
    pub fn matches(&self, u: &Unit) -> bool {
        self.kind.as_deref().is_none_or(|k| u.kind == k)
            && self.status.is_none_or(|s| u.status == s)
    }
}

impl Event {
    /// The event as clients see it at `now`: without its receipts (the reporters'), with
    /// whether it is overdue and the actions its state allows.
    #[must_use]
    pub fn view(&self, now: Millis) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("receipts");
        }
        v["overdue"] = json!(self.overdue(now));
        v["allowed"] = json!(Action::allowed(self.state));
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn states_parse_and_territories_nest() {
        assert_eq!(StateFilter::parse("open").unwrap(), StateFilter::Open);
        assert_eq!(
            StateFilter::parse("closed").unwrap(),
            StateFilter::Is(EventState::Closed)
        );
        assert!(
            StateFilter::parse("gone")
                .unwrap_err()
                .to_string()
                .contains("gone")
        );
        assert!(StateFilter::Open.matches(EventState::Reported));
        assert!(!StateFilter::Open.matches(EventState::Closed));
        assert!(within(Some("320102001001001"), Some("320102")));
        assert!(!within(Some("320104001"), Some("320102")));
        assert!(!within(None, Some("320102")));
        assert!(within(None, None));
    }
}
