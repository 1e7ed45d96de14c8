//! Greater Manchester geography: the ten boroughs and a fallback from
//! postcode district to borough, plus the postcode sector kept in clear.
//!
//! Every dataset carries the borough an agency supplies, and that column
//! wins. The district table (`design/DATASETS.md`) is only a fallback for
//! rows without one, and it is approximate: some districts straddle
//! boroughs (M3, M15, M16, M35, BL7, BL0), and for those this module
//! answers with the first borough the table lists them under.

/// A Greater Manchester metropolitan borough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Borough {
    /// Name as used in reports (`Rochdale`).
    pub name: &'static str,
    /// ONS local authority district code (`E08000005`).
    pub ons_code: &'static str,
    /// DfE local authority code (`354`); also digits 2–4 of a UPN.
    pub la_code: u16,
}

const fn borough(name: &'static str, ons_code: &'static str, la_code: u16) -> Borough {
    Borough {
        name,
        ons_code,
        la_code,
    }
}

/// The ten boroughs, in ONS code order.
pub static BOROUGHS: [Borough; 10] = [
    borough("Bolton", "E08000001", 350),
    borough("Bury", "E08000002", 351),
    borough("Manchester", "E08000003", 352),
    borough("Oldham", "E08000004", 353),
    borough("Rochdale", "E08000005", 354),
    borough("Salford", "E08000006", 355),
    borough("Stockport", "E08000007", 356),
    borough("Tameside", "E08000008", 357),
    borough("Trafford", "E08000009", 358),
    borough("Wigan", "E08000010", 359),
];

const BOLTON: usize = 0;
const BURY: usize = 1;
const MANCHESTER: usize = 2;
const OLDHAM: usize = 3;
const ROCHDALE: usize = 4;
const SALFORD: usize = 5;
const STOCKPORT: usize = 6;
const TAMESIDE: usize = 7;
const TRAFFORD: usize = 8;
const WIGAN: usize = 9;

/// `(area, first, last, borough)`, in the order of the DATASETS.md table so
/// that a district listed under two boroughs (M3) resolves to the first.
const DISTRICTS: &[(&str, u8, u8, usize)] = &[
    ("BL", 1, 6, BOLTON),
    ("BL", 7, 7, BOLTON),
    ("BL", 0, 0, BURY),
    ("BL", 8, 9, BURY),
    ("M", 25, 26, BURY),
    ("M", 45, 45, BURY),
    ("M", 1, 4, MANCHESTER),
    ("M", 8, 15, MANCHESTER),
    ("M", 18, 23, MANCHESTER),
    ("M", 40, 40, MANCHESTER),
    ("OL", 1, 4, OLDHAM),
    ("OL", 8, 9, OLDHAM),
    ("M", 35, 35, OLDHAM),
    ("OL", 10, 12, ROCHDALE),
    ("OL", 15, 16, ROCHDALE),
    ("M", 24, 24, ROCHDALE),
    ("M", 3, 3, SALFORD),
    ("M", 5, 7, SALFORD),
    ("M", 27, 28, SALFORD),
    ("M", 30, 30, SALFORD),
    ("M", 38, 38, SALFORD),
    ("M", 44, 44, SALFORD),
    ("M", 50, 50, SALFORD),
    ("SK", 1, 8, STOCKPORT),
    ("M", 34, 34, TAMESIDE),
    ("M", 43, 43, TAMESIDE),
    ("OL", 5, 7, TAMESIDE),
    ("SK", 14, 16, TAMESIDE),
    ("M", 16, 17, TRAFFORD),
    ("M", 31, 33, TRAFFORD),
    ("M", 41, 41, TRAFFORD),
    ("WA", 14, 15, TRAFFORD),
    ("WN", 1, 7, WIGAN),
    ("M", 29, 29, WIGAN),
    ("M", 46, 46, WIGAN),
];

/// The borough a postcode district (outward code, `OL11`) falls in, from
/// the DATASETS.md table; `None` outside the table. Case and surrounding
/// whitespace are ignored.
///
/// This is a fallback: when a row carries the borough the agency supplied,
/// use that. Districts that straddle boroughs resolve to the first borough
/// the table lists (M3 → Manchester, M15 → Manchester, M16 → Trafford,
/// M35 → Oldham, BL7 → Bolton, BL0 → Bury).
pub fn borough_for_district(outward: &str) -> Option<&'static Borough> {
    let outward = outward.trim();
    let split = outward.find(|c: char| c.is_ascii_digit())?;
    let (area, number) = outward.split_at(split);
    if number.is_empty() || number.len() > 2 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = number.parse().ok()?;
    DISTRICTS
        .iter()
        .find(|(a, lo, hi, _)| a.eq_ignore_ascii_case(area) && (*lo..=*hi).contains(&n))
        .and_then(|&(_, _, _, i)| BOROUGHS.get(i))
}

/// The borough for a canonical postcode (`OL11 1AA`), via its district.
pub fn borough_for_postcode(canonical_postcode: &str) -> Option<&'static Borough> {
    borough_for_district(postcode_district(canonical_postcode))
}

/// The borough with this DfE LA code (`354`), e.g. from a UPN.
pub fn borough_for_la_code(la_code: u16) -> Option<&'static Borough> {
    BOROUGHS.iter().find(|b| b.la_code == la_code)
}

/// The borough with this ONS code (`E08000005`).
pub fn borough_for_ons_code(ons_code: &str) -> Option<&'static Borough> {
    BOROUGHS.iter().find(|b| b.ons_code == ons_code.trim())
}

/// The borough with this name, ignoring ASCII case and surrounding spaces.
pub fn borough_by_name(name: &str) -> Option<&'static Borough> {
    let name = name.trim();
    BOROUGHS.iter().find(|b| b.name.eq_ignore_ascii_case(name))
}

/// The outward code (district) of a canonical postcode: `OL11 1AA` →
/// `OL11`.
pub fn postcode_district(canonical_postcode: &str) -> &str {
    canonical_postcode
        .split_once(' ')
        .map_or(canonical_postcode, |(outward, _)| outward)
}

/// The postcode sector kept in clear: outward code, a space and the first
/// inward digit (`OL11 1AA` → `OL11 1`).
///
/// Expects a canonical postcode (from `canonicalise(Kind::Postcode, ..)`),
/// whose inward code is always its last three characters; the sector is
/// then everything but the last two. Anything else gives a meaningless but
/// harmless result (never a panic).
pub fn postcode_sector(canonical_postcode: &str) -> String {
    match canonical_postcode.char_indices().rev().nth(1) {
        Some((i, _)) => canonical_postcode[..i].to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(outward: &str) -> Option<&'static str> {
        borough_for_district(outward).map(|b| b.name)
    }

    #[test]
    fn every_listed_district_resolves() {
        let expected = [
            ("BL1", "Bolton"),
            ("BL6", "Bolton"),
            ("BL7", "Bolton"),
            ("BL0", "Bury"),
            ("BL9", "Bury"),
            ("M26", "Bury"),
            ("M45", "Bury"),
            ("M1", "Manchester"),
            ("M3", "Manchester"),
            ("M4", "Manchester"),
            ("M8", "Manchester"),
            ("M14", "Manchester"),
            ("M15", "Manchester"),
            ("M18", "Manchester"),
            ("M23", "Manchester"),
            ("M40", "Manchester"),
            ("OL1", "Oldham"),
            ("OL9", "Oldham"),
            ("M35", "Oldham"),
            ("OL11", "Rochdale"),
            ("ol16", "Rochdale"),
            ("M24", "Rochdale"),
            ("M5", "Salford"),
            ("M7", "Salford"),
            ("M50", "Salford"),
            ("SK1", "Stockport"),
            ("SK8", "Stockport"),
            ("OL6", "Tameside"),
            ("SK15", "Tameside"),
            ("M43", "Tameside"),
            ("M16", "Trafford"),
            ("M33", "Trafford"),
            ("WA15", "Trafford"),
            ("WN7", "Wigan"),
            ("M46", "Wigan"),
        ];
        for (district, borough) in expected {
            assert_eq!(name(district), Some(borough), "{district}");
        }
    }

    #[test]
    fn districts_outside_the_table() {
        for d in [
            "M60", "M90", "OL13", "OL14", "SK9", "SK13", "WA1", "BL10", "SW1P", "M", "", "M1X",
            "M001", "1",
        ] {
            assert_eq!(name(d), None, "{d:?}");
        }
    }

    #[test]
    fn district_table_points_at_real_boroughs() {
        assert!(
            DISTRICTS
                .iter()
                .all(|&(_, lo, hi, i)| lo <= hi && i < BOROUGHS.len())
        );
        for (i, b) in BOROUGHS.iter().enumerate() {
            assert_eq!(b.la_code, 350 + i as u16);
            assert_eq!(b.ons_code, format!("E080000{:02}", i + 1));
            assert_eq!(borough_for_la_code(b.la_code), Some(b));
            assert_eq!(borough_for_ons_code(b.ons_code), Some(b));
            assert_eq!(borough_by_name(&b.name.to_uppercase()), Some(b));
        }
    }

    #[test]
    fn sectors_and_postcode_boroughs() {
        assert_eq!(postcode_sector("OL11 1AA"), "OL11 1");
        assert_eq!(postcode_sector("M1 6EU"), "M1 6");
        assert_eq!(postcode_sector("SW1P 4DF"), "SW1P 4");
        assert_eq!(postcode_sector("é"), "");
        assert_eq!(postcode_district("OL11 1AA"), "OL11");
        assert_eq!(
            borough_for_postcode("OL11 1AA").map(|b| b.name),
            Some("Rochdale")
        );
        assert_eq!(borough_for_postcode("SW1P 4DF"), None);
    }
}
