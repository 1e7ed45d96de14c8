//! Generalised fields kept in clear in place of a date of birth: age in
//! whole years at the event and an age band.
//!
//! Analysts need ages for the profile but the date of birth is an
//! identifier, so it is reduced at ingest and never stored.

use super::canonical::is_real_date;

/// A calendar date as `(year, month, day)`.
pub type Ymd = (u16, u8, u8);

/// Age bands in profile order; [`age_band`] returns one of these.
pub const AGE_BANDS: [&str; 9] = [
    "0-9", "10-12", "13-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55+",
];

/// The band for an age in whole years. The child bands are narrow because
/// exploitation risk changes fast through adolescence and the legal
/// thresholds (13, 16, 18) fall between them.
pub fn age_band(age: u32) -> &'static str {
    let i = match age {
        0..=9 => 0,
        10..=12 => 1,
        13..=15 => 2,
        16..=17 => 3,
        18..=24 => 4,
        25..=34 => 5,
        35..=44 => 6,
        45..=54 => 7,
        _ => 8,
    };
    AGE_BANDS[i]
}

/// Age in whole years on `event` for someone born on `dob`; `None` if
/// `event` is before `dob` or either is not a real date.
///
/// Someone born on 29 February turns a year older on 1 March in common
/// years (the birthday has not happened on 28 February), which is also the
/// rule in UK law.
pub fn age_at(dob: Ymd, event: Ymd) -> Option<u32> {
    if !is_real_date(dob.0, dob.1, dob.2) || !is_real_date(event.0, event.1, event.2) {
        return None;
    }
    if event < dob {
        return None;
    }
    let years = u32::from(event.0 - dob.0);
    if (event.1, event.2) < (dob.1, dob.2) {
        Some(years - 1)
    } else {
        Some(years)
    }
}

/// Parses a canonical `YYYY-MM-DD` date (as produced for [`super::Kind::Date`]);
/// `None` for anything else.
pub fn parse_ymd(canonical_date: &str) -> Option<Ymd> {
    let b = canonical_date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |s: &[u8]| {
        s.iter().try_fold(0u16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
        })
    };
    let y = num(&b[0..4])?;
    let m = u8::try_from(num(&b[5..7])?).ok()?;
    let d = u8::try_from(num(&b[8..10])?).ok()?;
    is_real_date(y, m, d).then_some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_have_the_documented_edges() {
        let cases = [
            (0, "0-9"),
            (9, "0-9"),
            (10, "10-12"),
            (12, "10-12"),
            (13, "13-15"),
            (15, "13-15"),
            (16, "16-17"),
            (17, "16-17"),
            (18, "18-24"),
            (24, "18-24"),
            (25, "25-34"),
            (34, "25-34"),
            (35, "35-44"),
            (44, "35-44"),
            (45, "45-54"),
            (54, "45-54"),
            (55, "55+"),
            (120, "55+"),
        ];
        for (age, band) in cases {
            assert_eq!(age_band(age), band, "age {age}");
        }
    }

    #[test]
    fn age_in_whole_years() {
        assert_eq!(age_at((2009, 3, 7), (2024, 3, 6)), Some(14));
        assert_eq!(age_at((2009, 3, 7), (2024, 3, 7)), Some(15));
        assert_eq!(age_at((2009, 3, 7), (2009, 3, 7)), Some(0));
        assert_eq!(age_at((2009, 3, 7), (2009, 3, 6)), None);
        assert_eq!(age_at((2008, 2, 29), (2009, 2, 28)), Some(0));
        assert_eq!(age_at((2008, 2, 29), (2009, 3, 1)), Some(1));
        assert_eq!(age_at((2008, 2, 30), (2009, 3, 1)), None);
    }

    #[test]
    fn parses_canonical_dates_only() {
        assert_eq!(parse_ymd("2009-03-07"), Some((2009, 3, 7)));
        assert_eq!(parse_ymd("07/03/2009"), None);
        assert_eq!(parse_ymd("2009-02-30"), None);
        assert_eq!(parse_ymd("2009-+3-07"), None);
    }
}
