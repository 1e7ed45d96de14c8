//! Synthetic investigations: a dataset whose rows are about an
//! investigation, not a person (it has a `case_ref` concept and no `x-match`
//! field), one row per crime an investigation covers.
//!
//! The crimes are the world's own: the crime extract of the same seed and
//! row count is generated first (the dataset whose `person_role` records
//! share the same `x-link` kind as the investigation's reference field), and
//! investigations are drawn over its valid rows, so every crime reference an
//! investigation names is one the crime extract holds. Planted networks get,
//! in turn: an open investigation covering about half their crimes
//! (covered), none (uncovered), an open one, then a suspended or closed one
//! only (uncovered: only an open investigation covers a network). Some
//! background crimes get an investigation of their own. Highest-threat
//! (category 1) investigations rotate through a peer review within 3–20
//! days of opening, one 40–80 days after, and none.
//!
//! Ground truth: one NDJSON line per row, then a summary naming the planted
//! networks covered and uncovered (format in `crates/synth/README.md`).

use std::collections::BTreeMap;
use std::io::Write;

use agencylink_core::geography::BOROUGHS;
use agencylink_core::pseudo::Kind;
use agencylink_core::schema::{Catalog, Dataset};

use crate::calendar::{Day, EVENT_END, days_from_civil, iso};
use crate::rng::Rng;
use crate::{SynthError, SynthOptions, SynthStats, World};

/// Whether `dataset` is about cases (investigations) rather than people:
/// a `case_ref` concept, a crime-style reference link, and no linkage field.
pub(crate) fn is_case_dataset(dataset: &Dataset) -> bool {
    dataset.field_for("case_ref").is_some()
        && link_field(dataset).is_some()
        && dataset.fields().iter().all(|f| f.match_role.is_none())
}

/// The `x-link` field holding an agency reference (a crime reference).
fn link_field(dataset: &Dataset) -> Option<&agencylink_core::schema::Field> {
    dataset
        .fields()
        .iter()
        .find(|f| f.link.is_some() && f.identifier == Some(Kind::LocalRef))
}

/// One crime of the crime extract: its reference, first date, network.
struct Crime {
    reference: String,
    day: Day,
    network: Option<String>,
}

/// One investigation to write.
struct Case {
    reference: String,
    crimes: Vec<usize>,
    opened: Day,
    closed: Option<Day>,
    status: &'static str,
    threat: &'static str,
    peer: &'static str,
    peer_date: Option<Day>,
    team: String,
}

fn parse_iso(s: &str) -> Option<Day> {
    let s = s.get(..10)?;
    let y: i32 = s.get(..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    Some(days_from_civil(y, m, d))
}

/// The crimes of the crime extract that share `dataset`'s link kind, from
/// valid rows only (a rejected row's reference never reaches the store).
fn crimes(world: &World, dataset: &Dataset, opts: &SynthOptions) -> Result<Vec<Crime>, SynthError> {
    let unsupported = |reason: &str| SynthError::Unsupported {
        dataset: dataset.id.clone(),
        field: link_field(dataset).map_or_else(String::new, |f| f.name.clone()),
        reason: reason.to_owned(),
    };
    let kind = link_field(dataset)
        .and_then(|f| f.link.clone())
        .ok_or_else(|| unsupported("no reference link"))?;
    let catalog = Catalog::embedded().map_err(|e| unsupported(&e.to_string()))?;
    let source = catalog
        .latest()
        .find(|d| {
            d.field_for("person_role").is_some()
                && link_field(d).and_then(|f| f.link.as_deref()) == Some(kind.as_str())
        })
        .ok_or_else(|| unsupported("no dataset of people carries this link kind"))?;
    let ref_col = link_field(source).map(|f| f.name.clone());
    let date_col = source.field_for("event_date").map(|f| f.name.clone());
    let (mut csv_bytes, mut truth_bytes) = (Vec::new(), Vec::new());
    crate::write_csv_with_world(world, source, opts, &mut csv_bytes, Some(&mut truth_bytes))?;
    let mut rdr = csv::Reader::from_reader(csv_bytes.as_slice());
    let headers = rdr
        .headers()
        .map_err(|e| unsupported(&e.to_string()))?
        .clone();
    let col = |name: &Option<String>| {
        name.as_deref()
            .and_then(|n| headers.iter().position(|h| h == n))
    };
    let (rc, dc) = (col(&ref_col), col(&date_col));
    let truth: Vec<serde_json::Value> = truth_bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    let mut out: Vec<Crime> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| unsupported(&e.to_string()))?;
        let t = truth.get(row);
        if t.and_then(|t| t.get("invalid"))
            .and_then(serde_json::Value::as_bool)
            != Some(false)
        {
            continue;
        }
        let (Some(reference), Some(day)) = (
            rc.and_then(|c| rec.get(c)).filter(|s| !s.is_empty()),
            dc.and_then(|c| rec.get(c)).and_then(parse_iso),
        ) else {
            continue;
        };
        let network = t
            .and_then(|t| t.get("network"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        match index.get(reference) {
            Some(&i) => out[i].day = out[i].day.min(day),
            None => {
                index.insert(reference.to_owned(), out.len());
                out.push(Crime {
                    reference: reference.to_owned(),
                    day,
                    network,
                });
            }
        }
    }
    Ok(out)
}

/// Write the investigation extract of `dataset` and its ground truth.
pub(crate) fn write(
    world: &World,
    dataset: &Dataset,
    opts: &SynthOptions,
    out: &mut dyn Write,
    truth: Option<&mut dyn Write>,
) -> Result<SynthStats, SynthError> {
    let crimes = crimes(world, dataset, opts)?;
    let mut rng = Rng::derive(opts.seed, &format!("cases|{}", dataset.id));
    let mut by_net: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut background = Vec::new();
    for (i, c) in crimes.iter().enumerate() {
        match &c.network {
            Some(n) => by_net.entry(n.clone()).or_default().push(i),
            None => background.push(i),
        }
    }
    let team_of = |crime: &Crime| -> String {
        // The network's borough, from the world's plan; the force-wide team
        // for background crimes.
        let borough = crime
            .network
            .as_deref()
            .and_then(|id| world.networks().iter().find(|n| n.id() == id))
            .and_then(|n| BOROUGHS.get(n.borough as usize))
            .map(|b| b.name);
        match borough {
            Some(b) => format!("CSE-{}", b[..4.min(b.len())].to_ascii_uppercase()),
            None => "PVP-FORCE".to_owned(),
        }
    };
    let mut cases: Vec<Case> = Vec::new();
    // The planted network each open investigation was made to cover.
    let mut covers: Vec<Option<String>> = Vec::new();
    let mut top = 0u32;
    let cap = |d: Day| d.min(EVENT_END);
    let new_case = |rng: &mut Rng,
                    cases: &[Case],
                    list: Vec<usize>,
                    status: &'static str,
                    threat: &'static str,
                    top: &mut u32|
     -> Case {
        let first = list
            .iter()
            .map(|&i| crimes[i].day)
            .min()
            .unwrap_or(EVENT_END);
        let opened = cap(first + rng.between(3, 30) as Day);
        let closed =
            (status == "closed").then(|| cap(opened + rng.between(60, 180) as Day).max(opened));
        let (peer, peer_date) = if threat == "1" {
            *top += 1;
            match *top % 3 {
                0 => ("completed", Some(rng.between(3, 20))),
                1 => ("completed", Some(rng.between(40, 80))),
                _ => (
                    if rng.chance(0.5) {
                        "requested"
                    } else {
                        "not_reviewed"
                    },
                    None,
                ),
            }
        } else if threat == "2" {
            ("not_reviewed", None)
        } else {
            ("not_required", None)
        };
        // A review cannot postdate the extract: one that would is not done yet.
        let peer_date = peer_date
            .map(|d| opened + d as Day)
            .filter(|&d| d <= EVENT_END);
        let peer = if peer == "completed" && peer_date.is_none() {
            "requested"
        } else {
            peer
        };
        let (y, _, _) = crate::calendar::civil_from_days(opened);
        Case {
            reference: format!("OP/{y}/{:04}", cases.len() + 1),
            team: team_of(&crimes[list[0]]),
            crimes: list,
            opened,
            closed,
            status,
            threat,
            peer,
            peer_date,
        }
    };
    for (n, (net, list)) in by_net.iter().enumerate() {
        let half = list[..list.len().div_ceil(2)].to_vec();
        let threat = if n % 8 < 4 { "1" } else { "2" };
        match n % 4 {
            1 => {}
            3 => {
                let status = if n % 8 == 7 { "suspended" } else { "closed" };
                let c = new_case(&mut rng, &cases, list.clone(), status, threat, &mut top);
                cases.push(c);
                covers.push(None);
            }
            _ => {
                let c = new_case(&mut rng, &cases, half, "open", threat, &mut top);
                cases.push(c);
                covers.push(Some(net.clone()));
            }
        }
    }
    for (k, &i) in background.iter().enumerate().filter(|(k, _)| k % 6 == 0) {
        let (status, threat) = match k / 6 % 4 {
            0 => ("open", "3"),
            1 => ("closed", "4"),
            2 => ("open", "4"),
            _ => ("closed", "3"),
        };
        let c = new_case(&mut rng, &cases, vec![i], status, threat, &mut top);
        cases.push(c);
        covers.push(None);
    }

    // Rows, in schema column order; a column this generator does not know
    // is left blank (it must then be optional).
    let fields = dataset.fields();
    let header: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    writeln!(out, "{}", header.join(","))?;
    let link = link_field(dataset).map(|f| f.name.as_str());
    let mut truth = truth;
    let mut rows = 0u64;
    // Mistakes come from a stream of their own, so the investigations are
    // the same whatever the rate.
    let mut mistakes = Rng::derive(opts.seed, &format!("case-mistakes|{}", dataset.id));
    let required: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].required).collect();
    let coded: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].codes.is_some())
        .collect();
    let dated: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].required && fields[i].format.as_deref() == Some("date"))
        .collect();
    let (mut invalid_rows, mut covered) = (0u64, std::collections::BTreeSet::new());
    for (case, net) in cases.iter().zip(&covers) {
        for &ci in &case.crimes {
            rows += 1;
            let crime = &crimes[ci];
            let mut cells = Vec::with_capacity(fields.len());
            for f in fields {
                let cell = match f.concept.as_deref() {
                    Some("record_ref") => format!("INV/{rows:06}"),
                    Some("case_ref") => case.reference.clone(),
                    Some("event_date") => iso(case.opened),
                    Some("closed_date") => case.closed.map(iso).unwrap_or_default(),
                    Some("case_status") => case.status.into(),
                    Some("threat_category") => case.threat.into(),
                    Some("peer_review_status") => case.peer.into(),
                    Some("peer_review_date") => case.peer_date.map(iso).unwrap_or_default(),
                    Some("lead_team") => case.team.clone(),
                    _ if Some(f.name.as_str()) == link => crime.reference.clone(),
                    _ if f.required => {
                        return Err(SynthError::Unsupported {
                            dataset: dataset.id.clone(),
                            field: f.name.clone(),
                            reason: "an investigation field with no known concept".into(),
                        });
                    }
                    _ => String::new(),
                };
                cells.push(cell);
            }
            let mistake = if mistakes.chance(opts.invalid_rate) {
                // One realistic mistake that rejects the row: a required
                // cell left blank, a code not in the list, an impossible date.
                let kinds: [(&str, &[usize]); 3] = [
                    ("blank_required", &required),
                    ("unknown_code", &coded),
                    ("impossible_date", &dated),
                ];
                let usable: Vec<&(&str, &[usize])> =
                    kinds.iter().filter(|(_, cols)| !cols.is_empty()).collect();
                mistakes.pick(&usable).map(|(kind, cols)| {
                    let col = cols[mistakes.index(cols.len())];
                    cells[col] = match *kind {
                        "blank_required" => String::new(),
                        "unknown_code" => "XX".into(),
                        _ => "2025-02-30".into(),
                    };
                    (*kind, fields[col].name.as_str())
                })
            } else {
                None
            };
            if mistake.is_some() {
                invalid_rows += 1;
            } else if let Some(n) = net {
                covered.insert(n.clone());
            }
            writeln!(out, "{}", cells.join(","))?;
            if let Some(t) = truth.as_deref_mut() {
                let line = serde_json::json!({
                    "row": rows,
                    "invalid": mistake.is_some(),
                    "mistake": mistake.map(|m| m.0),
                    "field": mistake.map(|m| m.1),
                    "operation": case.reference,
                    "crime": crime.reference,
                    "network": crime.network,
                    "status": case.status,
                    "threat_category": case.threat,
                    "opened": iso(case.opened),
                    "closed": case.closed.map(iso),
                    "peer_review_status": case.peer,
                    "peer_review_date": case.peer_date.map(iso),
                });
                writeln!(t, "{line}")?;
            }
        }
    }
    // Covered: an open investigation with an accepted row of the network's
    // crimes; every other planted network with crimes is uncovered.
    let uncovered: Vec<&String> = by_net.keys().filter(|n| !covered.contains(*n)).collect();
    if let Some(t) = truth {
        let line = serde_json::json!({"summary": {
            "rows": rows,
            "invalid_rows": invalid_rows,
            "error_rows": 0,
            "operations": cases.len(),
            "networks_covered": covered,
            "networks_uncovered": uncovered,
        }});
        writeln!(t, "{line}")?;
    }
    Ok(SynthStats {
        rows,
        invalid_rows,
        error_rows: 0,
        networks: by_net.len() as u32,
    })
}
