//! The city's clock: Beijing time (UTC+8, no daylight saving), the calendar Nanjing's rules
//! count in — deadlines and terms that end with a day, dates in queries, the days versions
//! and checkpoints are kept by, dashboards' clocks and hour axes. Every conversion between an
//! instant and the city's day or hour goes through here.

use time::{Date, OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch, UTC (the live twin's `Millis`, kept apart so the clock
/// depends on nothing of the twin's).
type Millis = i64;

/// Beijing time's offset from UTC.
pub const OFFSET: UtcOffset = time::macros::offset!(+8);

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;
/// [`OFFSET`] in milliseconds
const OFFSET_MS: Millis = 8 * HOUR;

/// An instant (UTC milliseconds) in Beijing time.
#[must_use]
pub fn local(at: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(OFFSET)
}

/// The day an instant falls on in Beijing.
#[must_use]
pub fn day(at: Millis) -> Date {
    local(at).date()
}

/// The number of the day an instant falls on in Beijing (days since 1970-01-01 there): two
/// instants share a day when they share its number.
#[must_use]
pub fn day_number(at: Millis) -> i64 {
    (at + OFFSET_MS).div_euclid(DAY)
}

/// Today in Beijing.
#[must_use]
pub fn today() -> Date {
    OffsetDateTime::now_utc().to_offset(OFFSET).date()
}

/// The first instant of a day in Beijing (its midnight).
#[must_use]
pub fn start_of(d: Date) -> Millis {
    d.midnight().assume_offset(OFFSET).unix_timestamp() * 1000
}

/// The last instant of a day in Beijing (the millisecond before the next midnight).
#[must_use]
pub fn end_of(d: Date) -> Millis {
    match d.next_day() {
        Some(next) => start_of(next) - 1,
        None => start_of(d) + DAY - 1,
    }
}

/// The end of the hour an instant falls in (Beijing's offset is whole hours, so its hours
/// are UTC's).
#[must_use]
pub fn hour_end(at: Millis) -> Millis {
    at.div_euclid(HOUR) * HOUR + HOUR
}

/// `HH:MM` in Beijing.
#[must_use]
pub fn hh_mm(at: Millis) -> String {
    let t = local(at);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// `MM-DD` in Beijing.
#[must_use]
pub fn mm_dd(at: Millis) -> String {
    let t = local(at);
    format!("{:02}-{:02}", u8::from(t.month()), t.day())
}

/// A dashboard's clock line: `2026-11-22 星期日 20:15` in Beijing.
#[must_use]
pub fn clock_line(at: Millis) -> String {
    let t = local(at);
    let weekday =
        ["一", "二", "三", "四", "五", "六", "日"][t.weekday().number_days_from_monday() as usize];
    format!(
        "{:04}-{:02}-{:02} 星期{weekday} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_city_counts_in_beijing_time() {
        // 2026-11-22 12:15 UTC is 20:15 on Sunday in Nanjing
        let at = 1_795_349_700_000;
        assert_eq!(clock_line(at), "2026-11-22 星期日 20:15");
        assert_eq!((hh_mm(at), mm_dd(at)), ("20:15".into(), "11-22".into()));
        // 16:00 UTC on the 22nd is midnight, the 23rd, in Beijing
        let late = at + 4 * HOUR - 15 * 60_000;
        assert_eq!(day(late), date!(2026 - 11 - 23));
        assert_eq!(day_number(late), day_number(at) + 1);
        assert_eq!(start_of(date!(2026 - 11 - 23)), late);
        assert_eq!(end_of(date!(2026 - 11 - 22)), late - 1);
        assert_eq!(day(end_of(date!(2026 - 11 - 22))), date!(2026 - 11 - 22));
        assert_eq!(hour_end(at), at + 45 * 60_000);
        // before 1970 too
        assert_eq!(hh_mm(-60_000), "07:59");
    }
}
