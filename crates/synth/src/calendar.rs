//! Calendar arithmetic on day numbers (days since 1970-01-01), so dates can
//! be drawn, compared and printed without a date crate and without ever
//! reading the clock.

use std::fmt::Write as _;

/// Days since 1970-01-01.
pub(crate) type Day = i32;

/// Day number of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
pub(crate) const fn days_from_civil(y: i32, m: u32, d: u32) -> Day {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// Civil date `(year, month, day)` of a day number.
pub(crate) const fn civil_from_days(z: Day) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether `y` is a Gregorian leap year.
pub(crate) const fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// First event date any synthetic row carries. Fixed anchors rather than
/// "today" so that output never depends on when it was generated.
pub(crate) const EVENT_START: Day = days_from_civil(2024, 10, 1);
/// Last event date any synthetic row carries.
pub(crate) const EVENT_END: Day = days_from_civil(2026, 9, 30);

/// Age in whole years on `on` of someone born on `dob`.
pub(crate) fn age_on(dob: Day, on: Day) -> i32 {
    let (by, bm, bd) = civil_from_days(dob);
    let (y, m, d) = civil_from_days(on);
    let mut age = y - by;
    if (m, d) < (bm, bd) {
        age -= 1;
    }
    age
}

/// How a date is written in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateStyle {
    /// `2009-03-07`
    Iso,
    /// `07/03/2009`
    Slash,
    /// `7/3/2009` (UK form without leading zeros)
    SlashShort,
    /// `07-03-2009`
    Dash,
    /// `07.03.2009`
    Dot,
    /// `2009-03-07T00:00:00` (an export that kept a time part)
    IsoDateTime,
}

/// Append `day` in `style`.
pub(crate) fn push_date(out: &mut String, day: Day, style: DateStyle) {
    let (y, m, d) = civil_from_days(day);
    // Writing to a String cannot fail.
    let _ = match style {
        DateStyle::Iso => write!(out, "{y:04}-{m:02}-{d:02}"),
        DateStyle::Slash => write!(out, "{d:02}/{m:02}/{y:04}"),
        DateStyle::SlashShort => write!(out, "{d}/{m}/{y:04}"),
        DateStyle::Dash => write!(out, "{d:02}-{m:02}-{y:04}"),
        DateStyle::Dot => write!(out, "{d:02}.{m:02}.{y:04}"),
        DateStyle::IsoDateTime => write!(out, "{y:04}-{m:02}-{d:02}T00:00:00"),
    };
}

/// `day` as `YYYY-MM-DD`.
pub(crate) fn iso(day: Day) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, day, DateStyle::Iso);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ages() {
        for z in [-1000, 0, 1, 59, 60, 365, 11_016, 20_000, 20_727] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(iso(EVENT_START), "2024-10-01");
        assert_eq!(iso(EVENT_END), "2026-09-30");
        let dob = days_from_civil(2010, 3, 7);
        assert_eq!(age_on(dob, days_from_civil(2025, 3, 6)), 14);
        assert_eq!(age_on(dob, days_from_civil(2025, 3, 7)), 15);
        assert!(is_leap(2024) && !is_leap(2025) && is_leap(2000) && !is_leap(1900));
    }
}
