//! The threat a group-based network poses, as a transparent points score.
//!
//! Every factor the inspection names adds points, each capped so that no
//! single factor can carry a network to the top tier alone, and the report
//! prints the formula with its numbers ([`Method`]) and each network's
//! points per factor, so an analyst can check any tier by hand:
//!
//! ```text
//! score = min(3 × victims, 30)
//!       + min(2 × suspects, 20)
//!       + min(5 × victims under 13, 20)
//!       + recency: 15 if the last event is ≤ 90 days before the period end,
//!                  10 if ≤ 180, 5 if ≤ 365, else 0
//!       + severity: the highest band among the network's offences
//!                  (15 rape of a child, trafficking, modern slavery;
//!                   10 sexual assault or activity with a child under 13,
//!                      abuse through sexual exploitation, familial, abduction;
//!                    6 any other recorded offence; 0 intelligence only)
//!       + min(5 × (boroughs − 1), 15)
//! tier  = high if score ≥ 50, medium if score ≥ 30, else low
//! ```
//!
//! The numbers are [`ThreatSettings`] defaults; a deployment may change
//! them, and the report always states the ones used. Offence bands are keyed
//! by Home Office offence code (a national code list, not a dataset).

use serde::Serialize;

/// One severity band: the points and the offence codes in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeverityBand {
    /// What the band holds, in words.
    pub label: String,
    /// Points for a network whose worst offence is in the band.
    pub points: u32,
    /// Home Office offence codes.
    pub codes: Vec<String>,
}

/// The weights, caps and thresholds of the threat score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreatSettings {
    /// Points per victim.
    pub per_victim: u32,
    /// Cap on victim points.
    pub victim_cap: u32,
    /// Points per suspect.
    pub per_suspect: u32,
    /// Cap on suspect points.
    pub suspect_cap: u32,
    /// Points per victim under 13 (on top of the victim points).
    pub per_victim_under_13: u32,
    /// Cap on under-13 points.
    pub under_13_cap: u32,
    /// `(within days of the period end, points)`, checked in order.
    pub recency: Vec<(u32, u32)>,
    /// Severity bands, checked in order (the highest points band that
    /// holds any of the network's offences wins).
    pub severity: Vec<SeverityBand>,
    /// Points for a recorded offence whose code is in no band.
    pub other_offence_points: u32,
    /// Points per borough beyond the first.
    pub per_extra_borough: u32,
    /// Cap on borough points.
    pub borough_cap: u32,
    /// Score from which a network is high tier.
    pub high: u32,
    /// Score from which a network is medium tier.
    pub medium: u32,
}

impl Default for ThreatSettings {
    fn default() -> Self {
        let band = |label: &str, points, codes: &[&str]| SeverityBand {
            label: label.to_owned(),
            points,
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        };
        ThreatSettings {
            per_victim: 3,
            victim_cap: 30,
            per_suspect: 2,
            suspect_cap: 20,
            per_victim_under_13: 5,
            under_13_cap: 20,
            recency: vec![(90, 15), (180, 10), (365, 5)],
            severity: vec![
                band(
                    "rape of a child, trafficking for sexual exploitation, modern slavery",
                    15,
                    &["19E", "19H", "19D", "19G", "72", "106"],
                ),
                band(
                    "sexual assault or activity with a child under 13, abuse through sexual exploitation, familial offences, child abduction",
                    10,
                    &["20B", "17B", "21", "71", "23", "13"],
                ),
            ],
            other_offence_points: 6,
            per_extra_borough: 5,
            borough_cap: 15,
            high: 50,
            medium: 30,
        }
    }
}

/// Threat tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Score at or above the high threshold.
    High,
    /// Score at or above the medium threshold.
    Medium,
    /// Anything less.
    Low,
}

impl Tier {
    /// `high`, `medium`, `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::High => "high",
            Tier::Medium => "medium",
            Tier::Low => "low",
        }
    }
}

/// What the score is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreatInputs {
    /// Distinct victims.
    pub victims: u32,
    /// Distinct suspects.
    pub suspects: u32,
    /// Victims under 13 at any of their events in the period.
    pub victims_under_13: u32,
    /// Days from the network's last event to the end of the period.
    pub days_since_last: u32,
    /// Offence codes of the network's crimes (empty: intelligence only).
    pub offences: Vec<String>,
    /// Distinct boroughs of the network's events.
    pub boroughs: u32,
}

/// One factor's contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactorScore {
    /// `victims`, `suspects`, `victims_under_13`, `recency`, `severity`, `boroughs`.
    pub factor: &'static str,
    /// The input (a count, days since the last event, the worst band's points).
    pub value: u32,
    /// Points added.
    pub points: u32,
}

/// A network's score, tier and the points behind them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// Total points.
    pub score: u32,
    /// Tier from the thresholds.
    pub tier: Tier,
    /// Points per factor, in formula order.
    pub factors: Vec<FactorScore>,
}

/// Score one network.
pub fn assess(x: &ThreatInputs, s: &ThreatSettings) -> Assessment {
    let capped = |n: u32, per: u32, cap: u32| n.saturating_mul(per).min(cap);
    let recency = s
        .recency
        .iter()
        .find(|(days, _)| x.days_since_last <= *days)
        .map_or(0, |(_, p)| *p);
    let severity = x
        .offences
        .iter()
        .map(|code| {
            s.severity
                .iter()
                .filter(|b| b.codes.iter().any(|c| c == code))
                .map(|b| b.points)
                .max()
                .unwrap_or(s.other_offence_points)
        })
        .max()
        .unwrap_or(0);
    let factors = vec![
        FactorScore {
            factor: "victims",
            value: x.victims,
            points: capped(x.victims, s.per_victim, s.victim_cap),
        },
        FactorScore {
            factor: "suspects",
            value: x.suspects,
            points: capped(x.suspects, s.per_suspect, s.suspect_cap),
        },
        FactorScore {
            factor: "victims_under_13",
            value: x.victims_under_13,
            points: capped(x.victims_under_13, s.per_victim_under_13, s.under_13_cap),
        },
        FactorScore {
            factor: "recency",
            value: x.days_since_last,
            points: recency,
        },
        FactorScore {
            factor: "severity",
            value: severity,
            points: severity,
        },
        FactorScore {
            factor: "boroughs",
            value: x.boroughs,
            points: capped(
                x.boroughs.saturating_sub(1),
                s.per_extra_borough,
                s.borough_cap,
            ),
        },
    ];
    let score = factors.iter().map(|f| f.points).sum();
    let tier = if score >= s.high {
        Tier::High
    } else if score >= s.medium {
        Tier::Medium
    } else {
        Tier::Low
    };
    Assessment {
        score,
        tier,
        factors,
    }
}

/// The formula as the report states it, with the numbers in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Method {
    /// The formula, one line per factor.
    pub formula: Vec<String>,
    /// The tier rule.
    pub tiers: String,
    /// The settings behind both.
    pub settings: ThreatSettings,
}

/// Describe the formula for the report.
pub fn method(s: &ThreatSettings) -> Method {
    let mut recency: Vec<String> = s
        .recency
        .iter()
        .map(|(d, p)| format!("{p} if the last event is within {d} days of the period end"))
        .collect();
    recency.push("else 0".into());
    let mut severity: Vec<String> = s
        .severity
        .iter()
        .map(|b| format!("{} for {} ({})", b.points, b.label, b.codes.join(", ")))
        .collect();
    severity.push(format!(
        "{} for any other recorded offence",
        s.other_offence_points
    ));
    severity.push("0 when the network is known from intelligence only".into());
    Method {
        formula: vec![
            format!(
                "Victims: {} points each, at most {}",
                s.per_victim, s.victim_cap
            ),
            format!(
                "Suspects: {} points each, at most {}",
                s.per_suspect, s.suspect_cap
            ),
            format!(
                "Victims under 13: {} more points each, at most {}",
                s.per_victim_under_13, s.under_13_cap
            ),
            format!("Recency: {}", recency.join("; ")),
            format!(
                "Offence severity (the network's most serious offence): {}",
                severity.join("; ")
            ),
            format!(
                "Links across boroughs: {} points per borough beyond the first, at most {}",
                s.per_extra_borough, s.borough_cap
            ),
        ],
        tiers: format!(
            "Score = the sum of the points. High tier: {} or more; medium: {} to {}; low: below {}.",
            s.high,
            s.medium,
            s.high.saturating_sub(1),
            s.medium
        ),
        settings: s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(v: u32, s: u32, u13: u32, days: u32, offences: &[&str], b: u32) -> ThreatInputs {
        ThreatInputs {
            victims: v,
            suspects: s,
            victims_under_13: u13,
            days_since_last: days,
            offences: offences.iter().map(|o| (*o).to_owned()).collect(),
            boroughs: b,
        }
    }

    fn points(a: &Assessment) -> Vec<u32> {
        a.factors.iter().map(|f| f.points).collect()
    }

    #[test]
    fn a_large_recent_network_with_rape_of_a_child_is_high() {
        // 4 victims (12), 3 suspects (6), 1 under 13 (5), last event 30
        // days before the end (15), rape of a child under 13 (15),
        // two boroughs (5): 58.
        let a = assess(
            &inputs(4, 3, 1, 30, &["88A", "19E"], 2),
            &ThreatSettings::default(),
        );
        assert_eq!(points(&a), vec![12, 6, 5, 15, 15, 5]);
        assert_eq!((a.score, a.tier), (58, Tier::High));
    }

    #[test]
    fn the_tier_boundaries_are_inclusive() {
        let s = ThreatSettings::default();
        // 5 victims (15) + 5 suspects (10) + last event 100 days ago (10)
        // + grooming (6: in no band) + one borough (0) = 41: medium.
        let a = assess(&inputs(5, 5, 0, 100, &["88A"], 1), &s);
        assert_eq!((a.score, a.tier), (41, Tier::Medium));
        // 2 victims (6) + 2 suspects (4) + 200 days (5) + abuse through
        // sexual exploitation (10) + two boroughs (5) = 30: exactly medium.
        let a = assess(&inputs(2, 2, 0, 200, &["71"], 2), &s);
        assert_eq!((a.score, a.tier), (30, Tier::Medium));
        // The same in one borough = 25: low.
        let a = assess(&inputs(2, 2, 0, 200, &["71"], 1), &s);
        assert_eq!((a.score, a.tier), (25, Tier::Low));
        // 5 victims (15) + 5 suspects (10) + last event exactly 90 days
        // before the end (15: the boundary counts) + abduction (10) = 50:
        // exactly high.
        let a = assess(&inputs(5, 5, 0, 90, &["13"], 1), &s);
        assert_eq!(points(&a), vec![15, 10, 0, 15, 10, 0]);
        assert_eq!((a.score, a.tier), (50, Tier::High));
        // A day later recency drops to 10, but rape of a child under 16
        // lifts severity to 15: still 50.
        let a = assess(&inputs(5, 5, 0, 91, &["13", "19D"], 1), &s);
        assert_eq!(points(&a), vec![15, 10, 0, 10, 15, 0]);
        assert_eq!((a.score, a.tier), (50, Tier::High));
        // One suspect fewer: 48, medium.
        let a = assess(&inputs(5, 4, 0, 91, &["19D"], 1), &s);
        assert_eq!((a.score, a.tier), (48, Tier::Medium));
    }

    #[test]
    fn caps_stop_one_factor_carrying_a_network() {
        // 40 victims, capped at 30, + 2 suspects (4), intelligence only and
        // stale = 34: medium, never high on numbers alone.
        let a = assess(&inputs(40, 2, 0, 400, &[], 1), &ThreatSettings::default());
        assert_eq!(points(&a), vec![30, 4, 0, 0, 0, 0]);
        assert_eq!(a.tier, Tier::Medium);
        // Ten boroughs: capped at 15.
        let a = assess(&inputs(1, 2, 0, 400, &[], 10), &ThreatSettings::default());
        assert_eq!(points(&a), vec![3, 4, 0, 0, 0, 15]);
        assert_eq!((a.score, a.tier), (22, Tier::Low));
    }

    #[test]
    fn the_method_states_the_numbers_in_use() {
        let s = ThreatSettings {
            high: 60,
            ..ThreatSettings::default()
        };
        let m = method(&s);
        assert!(m.tiers.contains("60 or more"), "{}", m.tiers);
        assert!(m.formula[0].contains("3 points each, at most 30"));
        assert!(m.formula[4].contains("19E"));
    }
}
