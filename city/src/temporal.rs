//! Time of features and time windows of queries, in whole seconds since the Unix epoch.
//!
//! A feature's time is an interval: a timestamp is an instant, a date the whole day, an integer
//! year the whole year. A query window is an interval whose ends may be open (`..`).

use crate::{Error, Result};
use citytwin_tiles::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

/// A closed interval of seconds; `i64::MIN`/`i64::MAX` stand for open ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeInterval {
    /// first second
    pub start: i64,
    /// last second
    pub end: i64,
}

impl TimeInterval {
    /// Every time.
    pub const ALL: Self = Self {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// Whether the two share at least one second.
    #[must_use]
    pub fn intersects(&self, other: &Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// Parses a query window as OGC API `datetime` writes it: an instant (`2024-05-01`,
    /// `2024-05-01T08:00:00Z`), or `start/end` with `..` or nothing for an open end.
    pub fn parse_window(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('/') {
            let start = match a.trim() {
                "" | ".." => i64::MIN,
                a => parse_instant(a)?.start,
            };
            let end = match b.trim() {
                "" | ".." => i64::MAX,
                b => parse_instant(b)?.end,
            };
            if start > end {
                return Err(Error::Invalid(format!(
                    "time window {s:?} ends before it starts"
                )));
            }
            Ok(Self { start, end })
        } else {
            parse_instant(s)
        }
    }
}

/// Parses an RFC 3339 timestamp (an instant) or a date `YYYY-MM-DD` (the whole day, UTC).
pub fn parse_instant(s: &str) -> Result<TimeInterval> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        let t = t.unix_timestamp();
        return Ok(TimeInterval { start: t, end: t });
    }
    if let Some(day) = parse_date(s) {
        let start = day.midnight().assume_utc().unix_timestamp();
        return Ok(TimeInterval {
            start,
            end: start + 86_399,
        });
    }
    Err(Error::Invalid(format!(
        "{s:?} is neither an RFC 3339 timestamp nor a date YYYY-MM-DD"
    )))
}

fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let d: u8 = parts.next()?.parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

/// The whole of a year.
#[must_use]
pub fn year(y: i64) -> Option<TimeInterval> {
    let y = i32::try_from(y).ok()?;
    let start = Date::from_calendar_date(y, Month::January, 1).ok()?;
    let next = Date::from_calendar_date(y.checked_add(1)?, Month::January, 1).ok()?;
    Some(TimeInterval {
        start: start.midnight().assume_utc().unix_timestamp(),
        end: next.midnight().assume_utc().unix_timestamp() - 1,
    })
}

/// The time a feature's value stands for: text as a timestamp or date, an integer as a year;
/// `None` for a null or unreadable value (such a feature matches no time window).
#[must_use]
pub fn of_value(v: &Value) -> Option<TimeInterval> {
    match v {
        Value::Text(t) => parse_instant(t).ok(),
        Value::Int(y) => year(*y),
        _ => None,
    }
}

/// Formats seconds as RFC 3339 UTC.
#[must_use]
pub fn format(t: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_its_whole_day_and_a_year_its_whole_year() {
        let d = parse_instant("2024-05-01").unwrap();
        assert_eq!(d.end - d.start, 86_399);
        assert_eq!(format(d.start).unwrap(), "2024-05-01T00:00:00Z");
        let y = year(2024).unwrap();
        assert_eq!(format(y.end).unwrap(), "2024-12-31T23:59:59Z");
        assert!(y.intersects(&d));
        assert!(!year(2023).unwrap().intersects(&d));
    }

    #[test]
    fn windows_have_open_ends_and_must_not_run_backwards() {
        let w = TimeInterval::parse_window("2020-01-01/..").unwrap();
        assert_eq!(w.end, i64::MAX);
        assert!(w.intersects(&year(2030).unwrap()));
        assert!(!w.intersects(&year(2019).unwrap()));
        let w = TimeInterval::parse_window("../2020-01-01T00:00:00Z").unwrap();
        assert_eq!(w.start, i64::MIN);
        assert!(TimeInterval::parse_window("2021-01-01/2020-01-01").is_err());
        assert!(TimeInterval::parse_window("yesterday").is_err());
        assert!(parse_instant("2024-02-30").is_err());
    }
}
