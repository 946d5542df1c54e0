//! Working days: Monday to Friday, minus the public holidays' days off, plus the weekends
//! worked in their place (调休), as the State Council announces them each year. Deadlines the
//! city's rules give in working days (an objection decided within five, Data art. 35) count
//! with it, in Beijing time.

use crate::clock;
use crate::live::Millis;
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use time::{Date, Weekday};

/// The calendar citytwin ships: 2025 and 2026 (`city/calendars/cn.toml`, with provenance).
pub const CHINA: &str = include_str!("../calendars/cn.toml");

/// A year's days off and adjusted working days.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Year {
    #[serde(default)]
    off: Vec<String>,
    #[serde(default)]
    work: Vec<String>,
}

/// The public-holiday calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    off: BTreeSet<Date>,
    work: BTreeSet<Date>,
    years: BTreeSet<i32>,
}

fn date(s: &str) -> Result<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, fmt).map_err(|_| Error::Invalid(format!("date {s:?}: use YYYY-MM-DD")))
}

impl Calendar {
    /// The calendar citytwin ships.
    #[must_use]
    pub fn china() -> Self {
        Self::parse(CHINA).unwrap_or_default()
    }

    /// Reads a calendar: a table per year with `off` (days off) and `work` (weekend days
    /// worked), each a list of `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Self> {
        let years: BTreeMap<String, Year> =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("calendar: {e}")))?;
        let mut c = Self::default();
        for (name, y) in years {
            let year: i32 = name
                .parse()
                .map_err(|_| Error::Invalid(format!("calendar: [{name}] is not a year")))?;
            for d in &y.off {
                let d = date(d)?;
                if d.year() != year {
                    return Err(Error::Invalid(format!("calendar: {d} is not in [{year}]")));
                }
                c.off.insert(d);
            }
            for d in &y.work {
                let d = date(d)?;
                if d.year() != year {
                    return Err(Error::Invalid(format!("calendar: {d} is not in [{year}]")));
                }
                if c.off.contains(&d) {
                    return Err(Error::Invalid(format!(
                        "calendar: {d} is both a day off and a working day"
                    )));
                }
                c.work.insert(d);
            }
            c.years.insert(year);
        }
        Ok(c)
    }

    /// Reads a calendar file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// The years it knows.
    #[must_use]
    pub fn years(&self) -> Vec<i32> {
        self.years.iter().copied().collect()
    }

    /// Whether a day is worked.
    ///
    /// ```
    /// use citytwin_city::calendar::Calendar;
    /// use time::macros::date;
    /// let c = Calendar::china();
    /// assert!(!c.is_working_day(date!(2026 - 02 - 16))); // Spring Festival, a Monday
    /// assert!(c.is_working_day(date!(2026 - 02 - 14))); // a Saturday worked in its place
    /// assert!(!c.is_working_day(date!(2026 - 03 - 07))); // an ordinary Saturday
    /// ```
    #[must_use]
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.work.contains(&d) {
            return true;
        }
        !self.off.contains(&d) && !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
    }

    /// The day (in Beijing) `n` working days after the day of `at`: the day of `at` itself
    /// does not count.
    #[must_use]
    pub fn working_days_after(&self, at: Millis, n: u32) -> Date {
        let mut d = clock::day(at);
        let mut left = n;
        while left > 0 {
            d = d.next_day().unwrap_or(d);
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// The deadline `n` working days after `at`: the end of that day in Beijing (the last
    /// millisecond before its midnight).
    #[must_use]
    pub fn deadline(&self, at: Millis, n: u32) -> Millis {
        clock::end_of(self.working_days_after(at, n))
    }

    /// Working days from the day of `from` to the day of `to` (0 on the same day; the days
    /// in between and `to`'s own when it is worked).
    #[must_use]
    pub fn working_days_between(&self, from: Millis, to: Millis) -> i64 {
        let (a, b) = (clock::day(from), clock::day(to));
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        let mut n = 0;
        let mut d = lo;
        while d < hi {
            d = d.next_day().unwrap_or(hi);
            if self.is_working_day(d) {
                n += 1;
            }
        }
        n * sign
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use time::macros::datetime;

    fn ms(t: OffsetDateTime) -> Millis {
        t.unix_timestamp() * 1000
    }

    #[test]
    fn five_working_days_skip_the_spring_festival_and_count_its_saturdays() {
        let c = Calendar::china();
        // filed on Friday 13 February 2026, 10:00 in Beijing: Saturday the 14th is worked,
        // the 15th to the 23rd are off, then Tuesday 24th to Friday 27th
        let filed = ms(datetime!(2026-02-13 10:00 +8));
        assert_eq!(
            c.working_days_after(filed, 5),
            time::macros::date!(2026 - 02 - 27)
        );
        // filed on Tuesday the 24th: Wed, Thu, Fri, the adjusted Saturday 28th, Monday 2 March
        let filed = ms(datetime!(2026-02-24 09:00 +8));
        assert_eq!(
            c.working_days_after(filed, 5),
            time::macros::date!(2026 - 03 - 02)
        );
        // the deadline is the end of that day in Beijing
        let deadline = c.deadline(filed, 5);
        assert_eq!(deadline, ms(datetime!(2026-03-03 00:00 +8)) - 1);
        // late on Monday evening in UTC is already Tuesday in Beijing
        let late = ms(datetime!(2026-02-23 17:00 UTC));
        assert_eq!(
            c.working_days_after(late, 1),
            time::macros::date!(2026 - 02 - 25)
        );
        assert_eq!(c.working_days_between(filed, deadline), 5);
        assert_eq!(c.working_days_between(deadline, filed), -5);
    }

    #[test]
    fn national_day_week_and_its_adjusted_days() {
        let c = Calendar::china();
        // Friday 25 September 2026 to Sunday 27th: Mid-Autumn; Sunday 20th was worked
        let filed = ms(datetime!(2026-09-18 12:00 +8));
        // Sat 19 no, Sun 20 worked (1), 21, 22, 23, 24 (5)
        assert_eq!(
            c.working_days_after(filed, 5),
            time::macros::date!(2026 - 09 - 24)
        );
        // from the 30th: 1–7 October off, Thursday 8th, Friday 9th, Saturday 10th worked,
        // Monday 12th, Tuesday 13th
        let filed = ms(datetime!(2026-09-30 12:00 +8));
        assert_eq!(
            c.working_days_after(filed, 5),
            time::macros::date!(2026 - 10 - 13)
        );
    }

    #[test]
    fn bad_calendars_are_refused() {
        assert!(Calendar::parse("[2026]\noff = [\"2026-02-30\"]").is_err());
        assert!(Calendar::parse("[2026]\noff = [\"2025-02-03\"]").is_err());
        assert!(Calendar::parse("[x]\noff = []").is_err());
        assert!(
            Calendar::parse("[2026]\noff = [\"2026-01-01\"]\nwork = [\"2026-01-01\"]").is_err()
        );
        assert_eq!(Calendar::china().years(), [2025, 2026]);
    }
}
