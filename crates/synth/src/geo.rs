//! Greater Manchester geography for synthetic people and places
//! (`design/DATASETS.md`, "Greater Manchester geography").

use std::fmt;

use crate::rng::Rng;

/// One of the ten GM boroughs.
#[derive(Debug)]
pub(crate) struct Borough {
    /// The name datasets write in a borough column.
    pub(crate) name: &'static str,
    /// DfE local authority code: digits 2-4 of a UPN issued there.
    pub(crate) dfe: u16,
    /// Postcode districts wholly in the borough. Districts that straddle two
    /// boroughs (M3, M15, M16, M35, BL0, BL7) are left out, so a synthetic
    /// postcode always derives the borough the row states.
    pub(crate) districts: &'static [&'static str],
    /// Relative population (thousands, rounded), to weight where people live.
    pub(crate) weight: u32,
}

/// The ten boroughs, in ONS code order (E08000001 … E08000010).
pub(crate) const BOROUGHS: [Borough; 10] = [
    Borough {
        name: "Bolton",
        dfe: 350,
        districts: &["BL1", "BL2", "BL3", "BL4", "BL5", "BL6"],
        weight: 296,
    },
    Borough {
        name: "Bury",
        dfe: 351,
        districts: &["BL8", "BL9", "M25", "M26", "M45"],
        weight: 193,
    },
    Borough {
        name: "Manchester",
        dfe: 352,
        districts: &[
            "M1", "M2", "M4", "M8", "M9", "M11", "M12", "M13", "M14", "M18", "M19", "M20", "M21",
            "M22", "M23", "M40",
        ],
        weight: 552,
    },
    Borough {
        name: "Oldham",
        dfe: 353,
        districts: &["OL1", "OL2", "OL3", "OL4", "OL8", "OL9"],
        weight: 242,
    },
    Borough {
        name: "Rochdale",
        dfe: 354,
        districts: &["OL10", "OL11", "OL12", "OL15", "OL16", "M24"],
        weight: 223,
    },
    Borough {
        name: "Salford",
        dfe: 355,
        districts: &["M5", "M6", "M7", "M27", "M28", "M30", "M38", "M44", "M50"],
        weight: 270,
    },
    Borough {
        name: "Stockport",
        dfe: 356,
        districts: &["SK1", "SK2", "SK3", "SK4", "SK5", "SK6", "SK7", "SK8"],
        weight: 295,
    },
    Borough {
        name: "Tameside",
        dfe: 357,
        districts: &["M34", "M43", "OL5", "OL6", "OL7", "SK14", "SK15", "SK16"],
        weight: 231,
    },
    Borough {
        name: "Trafford",
        dfe: 358,
        districts: &["M17", "M31", "M32", "M33", "M41", "WA14", "WA15"],
        weight: 235,
    },
    Borough {
        name: "Wigan",
        dfe: 359,
        districts: &[
            "WN1", "WN2", "WN3", "WN4", "WN5", "WN6", "WN7", "M29", "M46",
        ],
        weight: 330,
    },
];

/// Letters used in the last two characters of a real postcode (never C, I,
/// K, M, O or V), so synthetic postcodes look like the real thing.
const UNIT_LETTERS: &[u8; 20] = b"ABDEFGHJLNPQRSTUWXYZ";

/// Running totals of the borough weights, for drawing where people live.
const BOROUGH_CUMULATIVE: [u32; 10] = {
    let mut out = [0u32; 10];
    let mut total = 0;
    let mut i = 0;
    while i < 10 {
        total += BOROUGHS[i].weight;
        out[i] = total;
        i += 1;
    }
    out
};

/// A borough (index into [`BOROUGHS`]) drawn by population.
pub(crate) fn draw_borough(rng: &mut Rng) -> u8 {
    rng.weighted(&BOROUGH_CUMULATIVE).unwrap_or(0) as u8
}

/// A full postcode, e.g. `OL11 1AB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Postcode {
    /// The outward code (postcode district).
    pub(crate) district: &'static str,
    /// The sector digit.
    pub(crate) sector: u8,
    /// The two unit letters.
    pub(crate) unit: [u8; 2],
}

impl Postcode {
    /// A random postcode in `borough`.
    pub(crate) fn draw(rng: &mut Rng, borough: u8) -> Postcode {
        let b = &BOROUGHS[usize::from(borough) % BOROUGHS.len()];
        let district = rng.pick(b.districts).copied().unwrap_or("M1");
        Postcode {
            district,
            sector: 1 + rng.below(9) as u8,
            unit: [
                UNIT_LETTERS[rng.index(UNIT_LETTERS.len())],
                UNIT_LETTERS[rng.index(UNIT_LETTERS.len())],
            ],
        }
    }

    /// Append in one of the ways agencies write postcodes; all of them
    /// canonicalise to `OUTWARD INWARD`.
    pub(crate) fn push_styled(&self, out: &mut String, rng: &mut Rng) {
        let [a, b] = self.unit;
        let (a, b) = (char::from(a), char::from(b));
        let roll = rng.below(100);
        let s = self.sector;
        let d = self.district;
        use std::fmt::Write as _;
        let _ = match roll {
            0..=69 => write!(out, "{d} {s}{a}{b}"),
            70..=84 => write!(out, "{d}{s}{a}{b}"),
            85..=94 => write!(
                out,
                "{} {s}{}{}",
                d.to_ascii_lowercase(),
                a.to_ascii_lowercase(),
                b.to_ascii_lowercase()
            ),
            _ => write!(out, "{d}  {s}{a}{b}"),
        };
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}{}",
            self.district,
            self.sector,
            char::from(self.unit[0]),
            char::from(self.unit[1])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn districts_are_unique_across_boroughs() {
        let mut seen = std::collections::HashSet::new();
        for b in &BOROUGHS {
            for d in b.districts {
                assert!(seen.insert(*d), "{d} is listed twice");
            }
        }
    }

    #[test]
    fn districts_agree_with_the_pipeline_fallback() {
        // A synthetic postcode must derive the borough its row states.
        for b in &BOROUGHS {
            for d in b.districts {
                let derived = agencylink_core::geography::borough_for_district(d).map(|x| x.name);
                assert_eq!(derived, Some(b.name), "{d}");
                let la = agencylink_core::geography::borough_by_name(b.name).map(|x| x.la_code);
                assert_eq!(la, Some(b.dfe), "{}", b.name);
            }
        }
    }
}
