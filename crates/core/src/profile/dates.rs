//! Calendar arithmetic on `YYYY-MM-DD` dates as day numbers, so that period
//! tests, 90-day windows and "days before" are integer comparisons in the
//! hot loop instead of string or struct work.

/// Days since 1970-01-01 for a proleptic Gregorian date (Hinnant's
/// days-from-civil), or `None` when `s` is not a real `YYYY-MM-DD` date.
pub(crate) fn parse_day(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        let mut v = 0i32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i32::from(c - b'0');
        }
        Some(v)
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: i32) -> i32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i32, m: i32, d: i32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day number.
pub(crate) fn civil(days: i32) -> (i32, i32, i32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i32::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn format_day(days: i32) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM` of a day number: the month bucket of trend tables.
pub(crate) fn month_of(days: i32) -> (i32, i32) {
    let (y, m, _) = civil(days);
    (y, m)
}

/// `12 Mar 2026`, for sentences in the report.
pub(crate) fn human_day(days: i32) -> String {
    let (y, m, d) = civil(days);
    format!("{d} {} {y}", MONTHS[(m - 1) as usize])
}

/// `Mar 2026`, for chart axes.
pub(crate) fn human_month((y, m): (i32, i32)) -> String {
    format!("{} {y}", MONTHS[(m - 1) as usize])
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The day `months` calendar months after `days` (negative goes back), with
/// the day of month clamped (31 Mar minus one month is 28 or 29 Feb).
pub(crate) fn add_months(days: i32, months: i32) -> i32 {
    let (y, m, d) = civil(days);
    let total = y * 12 + (m - 1) + months;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    days_from_civil(ny, nm, d.min(days_in_month(ny, nm)))
}

/// Every month touching `[from, to]`, in order.
pub(crate) fn months_between(from: i32, to: i32) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    if from > to {
        return out;
    }
    let (mut y, mut m) = month_of(from);
    let last = month_of(to);
    while (y, m) <= last {
        out.push((y, m));
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        for s in ["1970-01-01", "2024-02-29", "2026-09-30", "2000-12-31"] {
            let d = parse_day(s).expect(s);
            assert_eq!(format_day(d), s);
        }
        assert_eq!(parse_day("1970-01-02"), Some(1));
        for bad in ["2025-02-29", "2025-13-01", "2025-1-01", "", "abcd-ef-gh"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn months_clamp_and_span() {
        let d = |s| parse_day(s).expect("date");
        assert_eq!(format_day(add_months(d("2026-03-31"), -1)), "2026-02-28");
        assert_eq!(format_day(add_months(d("2026-09-30"), -12)), "2025-09-30");
        assert_eq!(format_day(add_months(d("2024-02-29"), 12)), "2025-02-28");
        let m = months_between(d("2025-10-01"), d("2026-09-30"));
        assert_eq!(m.len(), 12);
        assert_eq!((m[0], m[11]), ((2025, 10), (2026, 9)));
        assert_eq!(human_month((2026, 3)), "Mar 2026");
        assert_eq!(human_day(d("2026-03-07")), "7 Mar 2026");
    }
}
