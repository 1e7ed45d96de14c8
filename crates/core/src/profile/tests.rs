//! Tests of the profile over hand-made stores. The schemas here are made up
//! (`police.test_crime`, …): the profile must find everything through the
//! annotations, never through a dataset's name.

use serde_json::{Value, json};

use super::threat::{ThreatInputs, Tier, assess};
use super::*;
use crate::memory::{MemoryChainLog, MemoryRecordStore};
use crate::ports::{Link, RecordBody, RecordStore, StoredRecord, WriteBatch};
use crate::schema::Catalog;

const BOROUGHS: &str = r#"["Bolton","Bury","Manchester","Oldham","Rochdale","Salford","Stockport","Tameside","Trafford","Wigan"]"#;

fn person_fields() -> String {
    r#"
    "family": {"type": "string", "x-identifier": "person_name", "x-match": "family"},
    "given": {"type": "string", "x-identifier": "person_name", "x-match": "given"},
    "dob": {"type": "string", "x-identifier": "date", "x-match": "dob", "x-generalise": "age"},
    "sex": {"type": "string", "enum": ["0","1","2","9"], "x-concept": "sex"},
    "eth": {"type": "string", "enum": ["W1","A2","NS"], "x-concept": "ethnicity",
            "x-group": {"W1": "White", "A2": "Asian", "NS": "Not recorded"}}"#
        .to_owned()
}

fn catalog() -> Catalog {
    let crime = format!(
        r#"{{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "x-agency-type": "police", "title": "Test crimes",
        "required": ["ref", "crime", "date"],
        "properties": {{
          "ref": {{"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"}},
          "crime": {{"type": "string", "x-identifier": "local_ref", "x-link": "crime"}},
          "date": {{"type": "string", "format": "date", "x-concept": "event_date"}},
          "where": {{"type": "string", "enum": {BOROUGHS}, "x-concept": "borough"}},
          "offence": {{"type": "string", "enum": ["19E","88A","71"], "x-concept": "offence",
             "x-codes": {{"19E": "Rape of a female child under 13", "88A": "Sexual grooming", "71": "Abuse of children through sexual exploitation"}}}},
          "flag": {{"type": "boolean", "x-concept": "cse_flag"}},
          "role": {{"type": "string", "enum": ["victim","suspect","witness"], "x-concept": "person_role"}},
          "model": {{"type": "string", "enum": ["organised_network","online"], "x-concept": "cse_model",
             "x-codes": {{"organised_network": "Organised / networked", "online": "Online"}}}},
          "pc": {{"type": "string", "x-identifier": "postcode", "x-generalise": "sector"}},
          "premises": {{"type": "string", "enum": ["hotel","dwelling"], "x-concept": "premises_type",
             "x-codes": {{"hotel": "Hotel", "dwelling": "Private dwelling"}}}},
          "phone": {{"type": "string", "x-identifier": "phone", "x-link": "phone"}},
          "car": {{"type": "string", "x-identifier": "vrm", "x-link": "vehicle"}},
          {}
        }}}}"#,
        person_fields()
    );
    let referral = format!(
        r#"{{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "x-agency-type": "council", "title": "Test referrals",
        "required": ["ref", "date"],
        "properties": {{
          "ref": {{"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"}},
          "date": {{"type": "string", "format": "date", "x-concept": "event_date"}},
          "where": {{"type": "string", "enum": {BOROUGHS}, "x-concept": "borough"}},
          "factors": {{"type": "array", "items": {{"type": "string", "enum": ["10A","11A","21"]}},
             "x-concept": "cin_factors", "x-codes": {{"10A": "Going or being missing", "11A": "Child sexual exploitation", "21": "No factors identified"}}}},
          {}
        }}}}"#,
        person_fields()
    );
    let missing = format!(
        r#"{{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "x-agency-type": "council", "title": "Test missing",
        "required": ["ref", "date"],
        "properties": {{
          "ref": {{"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"}},
          "date": {{"type": "string", "format": "date", "x-concept": "event_date"}},
          "where": {{"type": "string", "enum": {BOROUGHS}, "x-concept": "borough"}},
          "kind": {{"type": "string", "enum": ["M","A"], "x-concept": "missing_type"}},
          "found": {{"type": "string", "x-identifier": "postcode", "x-generalise": "sector"}},
          {}
        }}}}"#,
        person_fields()
    );
    Catalog::from_sources([
        ("police.test_crime.v1.schema.json", crime.as_str()),
        ("council.test_referral.v1.schema.json", referral.as_str()),
        ("council.test_missing.v1.schema.json", missing.as_str()),
    ])
    .expect("test schemas are valid")
}

/// A hand-made store and lineage.
#[derive(Default)]
struct World {
    records: Vec<StoredRecord>,
}

/// A record as a curated body holds it.
struct Raw<'a> {
    person: &'a str,
    agency: &'a str,
    dataset: &'a str,
    date: &'a str,
    borough: &'a str,
    fields: Value,
    derived: Value,
    links: Vec<Link>,
}

/// One involvement in a crime.
struct Inv<'a> {
    person: &'a str,
    role: &'a str,
    crime: &'a str,
    date: &'a str,
    borough: &'a str,
    offence: &'a str,
    age: Option<u64>,
    /// The person's (family, given) name pseudonyms.
    name: (&'a str, &'a str),
    /// Whether a date of birth was given.
    dob: bool,
    links: &'a [(&'a str, &'a str)],
}

impl<'a> Inv<'a> {
    fn new(person: &'a str, role: &'a str, crime: &'a str, date: &'a str) -> Inv<'a> {
        Inv {
            person,
            role,
            crime,
            date,
            borough: "Rochdale",
            offence: "71",
            age: Some(if role == "victim" { 14 } else { 30 }),
            name: (person, person),
            dob: true,
            links: &[],
        }
    }
}

impl World {
    fn push(&mut self, r: Raw<'_>) {
        let id = format!("r_{}", self.records.len());
        self.records.push(StoredRecord {
            record_id: id.clone(),
            person_id: r.person.to_owned(),
            agency: r.agency.to_owned(),
            dataset: r.dataset.to_owned(),
            event_date: r.date.to_owned(),
            upload_id: format!("u_{}", r.agency),
            row: self.records.len() as u64,
            match_keys: Vec::new(),
            links: r.links.clone(),
            body: RecordBody::from_value(&json!({
                "record_id": id, "agency": r.agency, "dataset": r.dataset, "event_date": r.date,
                "borough": r.borough, "fields": r.fields, "derived": r.derived, "links": r.links,
            }))
            .expect("an object"),
            signature: None,
        });
    }

    fn crime(&mut self, i: Inv<'_>) {
        let mut fields = json!({
            "ref": format!("local_ref:k1:ref{}", self.records.len()),
            "crime": format!("local_ref:k1:{}", i.crime),
            "date": i.date, "where": i.borough, "offence": i.offence, "flag": true,
            "role": i.role, "model": "organised_network",
            "family": format!("person_name:k1:{}", i.name.0),
            "given": format!("person_name:k1:{}", i.name.1),
            "sex": if i.role == "victim" { "2" } else { "1" }, "eth": "W1",
            "pc": "postcode:k1:x", "premises": "hotel",
        });
        if i.dob {
            fields["dob"] = json!("date:k1:x");
        }
        let mut links = vec![Link {
            kind: "crime".into(),
            token: format!("local_ref:k1:{}", i.crime),
        }];
        for (k, t) in i.links {
            links.push(Link {
                kind: (*k).into(),
                token: format!("{k}:k1:{t}"),
            });
        }
        let derived = match i.age {
            Some(a) => json!({"age": a, "pc_sector": "OL11 1"}),
            None => json!({"pc_sector": "OL11 1"}),
        };
        self.push(Raw {
            person: i.person,
            agency: "gmp-police",
            dataset: "police.test_crime",
            date: i.date,
            borough: i.borough,
            fields,
            derived,
            links,
        });
    }

    fn referral(&mut self, person: &str, date: &str, factors: &[&str]) {
        self.push(Raw {
            person,
            agency: "rochdale-council",
            dataset: "council.test_referral",
            date,
            borough: "Rochdale",
            fields: json!({"ref": "local_ref:k1:x", "date": date, "where": "Rochdale", "factors": factors,
                   "family": "person_name:k1:f", "given": "person_name:k1:g", "dob": "date:k1:d",
                   "sex": "2", "eth": "A2"}),
            derived: json!({"age": 14}),
            links: Vec::new(),
        });
    }

    fn missing(&mut self, person: &str, date: &str) {
        self.push(Raw {
            person,
            agency: "rochdale-council",
            dataset: "council.test_missing",
            date,
            borough: "Rochdale",
            fields: json!({"ref": "local_ref:k1:m", "date": date, "where": "Rochdale", "kind": "M",
                   "found": "postcode:k1:y", "dob": "date:k1:d"}),
            derived: json!({"age": 14, "found_sector": "M1 1"}),
            links: Vec::new(),
        });
    }

    fn store(&self) -> (MemoryRecordStore, MemoryChainLog) {
        let store = MemoryRecordStore::default();
        store
            .apply(&WriteBatch {
                records: self.records.clone(),
                ..WriteBatch::default()
            })
            .expect("apply");
        let log = MemoryChainLog::default();
        for (seq, agency, rows, rejected) in [
            (1u64, "gmp-police", 40u64, 1u64),
            (2, "rochdale-council", 20, 4),
        ] {
            let entry = json!({
                "type": "ingest", "upload_id": format!("u_{agency}"), "agency": agency,
                "dataset": if seq == 1 { "police.test_crime" } else { "council.test_referral" },
                "rows_in": rows, "rows_accepted": rows - rejected, "rows_rejected": rejected,
                "rejections": [{"field": "dob", "code": "identifier", "count": rejected}],
                "time": "2026-07-01T09:00:00Z",
            });
            let Value::Object(fields) = entry else {
                unreachable!("a JSON object")
            };
            crate::lineage::append(&log, fields).expect("append");
        }
        (store, log)
    }
}

fn settings(from: &str, to: &str) -> Settings {
    Settings {
        from: Some(from.into()),
        to: Some(to.into()),
        generated_at: "2026-07-01T10:00:00Z".into(),
        ..Settings::default()
    }
}

/// Given three suspects tied to three victims through two crimes and a
/// shared phone, a lone pair, and one suspect split in two ids by missing
/// dates of birth.
fn network_world() -> World {
    let mut w = World::default();
    // Group A: S1, S2 with V1 (aged 12) in C1; S2 with V2 in C2; S1 and S3
    // share a phone; S3 with V3 in C3 in Bury.
    w.crime(Inv {
        age: Some(12),
        offence: "19E",
        ..Inv::new("p_v1", "victim", "c1", "2026-05-01")
    });
    w.crime(Inv {
        links: &[("phone", "ph1")],
        ..Inv::new("p_s1", "suspect", "c1", "2026-05-01")
    });
    w.crime(Inv::new("p_s2", "suspect", "c1", "2026-05-01"));
    w.crime(Inv::new("p_v2", "victim", "c2", "2026-05-20"));
    w.crime(Inv::new("p_s2", "suspect", "c2", "2026-05-20"));
    w.crime(Inv {
        links: &[("phone", "ph1")],
        ..Inv::new("p_s3", "suspect", "c3", "2026-06-10")
    });
    w.crime(Inv {
        borough: "Bury",
        ..Inv::new("p_v3", "victim", "c3", "2026-06-10")
    });
    // A lone pair: one suspect, one victim.
    w.crime(Inv::new("p_v4", "victim", "c4", "2026-03-01"));
    w.crime(Inv::new("p_s4", "suspect", "c4", "2026-03-01"));
    // One suspect without a date of birth in two crimes: linkage made two
    // ids (p_s5a, p_s5b); his car ties them. Same name pseudonyms: one
    // person inside the network, so not group-based.
    w.crime(Inv::new("p_v5", "victim", "c5", "2026-02-01"));
    w.crime(Inv {
        name: ("khan", "ali"),
        dob: false,
        age: None,
        links: &[("vehicle", "car5")],
        ..Inv::new("p_s5a", "suspect", "c5", "2026-02-01")
    });
    w.crime(Inv::new("p_v6", "victim", "c6", "2026-02-03"));
    w.crime(Inv {
        name: ("khan", "ali"),
        dob: false,
        age: None,
        links: &[("vehicle", "car5")],
        ..Inv::new("p_s5b", "suspect", "c6", "2026-02-03")
    });
    // Two suspects with the same name but different dates of birth (both
    // given, so linkage kept them apart): two people, group-based.
    w.crime(Inv::new("p_v7", "victim", "c7", "2025-12-01"));
    w.crime(Inv {
        name: ("shah", "omar"),
        links: &[("vehicle", "car7")],
        ..Inv::new("p_s7a", "suspect", "c7", "2025-12-01")
    });
    w.crime(Inv {
        name: ("shah", "omar"),
        links: &[("vehicle", "car7")],
        ..Inv::new("p_s7b", "suspect", "c8", "2025-12-05")
    });
    w
}

/// The store is read on one thread and reduced on another: a record whose
/// stored body is not a body, in the middle of many batches, is an error
/// naming the store, not a hang or a profile without it; and the facts are
/// reduced in the store's order, so a large store's profile is the same
/// whichever thread is ahead.
#[test]
fn a_corrupt_body_mid_scan_fails_the_build_and_order_is_kept() {
    let mut w = World::default();
    for i in 0..3000 {
        let day = format!("2026-{:02}-{:02}", 1 + i % 6, 1 + i % 28);
        w.crime(Inv::new(
            &format!("p_{}", i % 700),
            "victim",
            &format!("c{i}"),
            &day,
        ));
    }
    let (store, log) = w.store();
    let s = settings("2025-07-01", "2026-06-30");
    let first = build(&catalog(), &store, &log, &s).expect("profile");
    let again = build(&catalog(), &store, &log, &s).expect("profile");
    assert_eq!(
        serde_json::to_value(&first).expect("JSON"),
        serde_json::to_value(&again).expect("JSON")
    );
    let mut bad = w.records[1500].clone();
    // What a store could hand over when bytes were rewritten together with
    // their checksum: braces outside, not JSON inside.
    bad.body = RecordBody::from_checked("{\"fields\": {\"ref\": }".into()).expect("braces");
    store
        .apply(&WriteBatch {
            records: vec![bad],
            ..WriteBatch::default()
        })
        .expect("apply");
    let err = build(&catalog(), &store, &log, &s).expect_err("a corrupt body");
    assert!(matches!(err, ProfileError::Store(_)), "{err}");
}

#[test]
fn group_networks_and_their_tiers_follow_the_formula() {
    let w = network_world();
    let (store, log) = w.store();
    let p = build(
        &catalog(),
        &store,
        &log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    let nets = p.networks.as_ref().expect("analyst edition has networks");
    let ids: Vec<&str> = nets.iter().map(|n| n.id.as_str()).collect();
    // Group A and the two Omar Shahs; not the lone pair, not the one Ali Khan.
    assert_eq!(ids, vec!["n_s1", "n_s7a"], "{nets:#?}");
    let a = &nets[0];
    assert_eq!(a.suspects, vec!["p_s1", "p_s2", "p_s3"]);
    assert_eq!(a.victims, vec!["p_v1", "p_v2", "p_v3"]);
    assert_eq!(a.boroughs, vec!["Bury", "Rochdale"]);
    assert_eq!(
        (a.first_event.as_str(), a.last_event.as_str()),
        ("2026-05-01", "2026-06-10")
    );
    assert_eq!(a.events, 3);
    assert_eq!(a.shared.get("phone").map(Vec::len), Some(1));
    // By hand: 3 victims (9) + 3 suspects (6) + 1 under 13 (5) + last
    // event 20 days before the end (15) + rape of a child under 13 (15) +
    // two boroughs (5) = 55: high.
    let points: Vec<u32> = a.threat.factors.iter().map(|f| f.points).collect();
    assert_eq!(points, vec![9, 6, 5, 15, 15, 5]);
    assert_eq!((a.threat.score, a.tier), (55, Tier::High));
    let expected = assess(
        &ThreatInputs {
            victims: 3,
            suspects: 3,
            victims_under_13: 1,
            days_since_last: 20,
            offences: vec!["19E".into(), "71".into()],
            boroughs: 2,
        },
        &p.threat.settings,
    );
    assert_eq!(a.threat, expected);
    // The Shahs: 1 victim (3) + 2 suspects (4) + 212 days (5) + band 10
    // (abuse through sexual exploitation) + one borough = 22: low.
    let b = &nets[1];
    assert_eq!((b.threat.score, b.tier), (22, Tier::Low));
    assert!(b.same_person.is_empty());
    let tiers = p.table("network_tiers").expect("tiers");
    assert_eq!(tiers.get("high", "networks"), Some(&Cell::Count(1)));
    assert_eq!(tiers.get("low", "networks"), Some(&Cell::Count(1)));
    assert_eq!(tiers.get("total", "suspects"), Some(&Cell::Count(5)));
}

#[test]
fn without_name_resolution_the_core_network_rule_agrees() {
    // The profile's components are the core network module's components:
    // the same people, the same ids. (The profile then resolves same-named
    // suspects, which only ever removes a network from the group list.)
    let w = network_world();
    let (store, log) = w.store();
    let cat = catalog();
    let p = build(&cat, &store, &log, &settings("2025-07-01", "2026-06-30")).expect("profile");
    let role = |ds: &str| {
        cat.get(ds)
            .and_then(|d| d.field_for("person_role"))
            .map(|f| f.name.clone())
    };
    let core: Vec<crate::network::Network> = crate::network::networks(w.records.iter(), role)
        .expect("bodies parse")
        .into_iter()
        .filter(|n| crate::network::is_group(n, 2, 1))
        .collect();
    let core_ids: Vec<&str> = core.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(core_ids, vec!["n_s1", "n_s5a", "n_s7a"]);
    for n in p.networks.as_ref().expect("networks") {
        let c = core
            .iter()
            .find(|c| c.id == n.id)
            .expect("same id in the core rule");
        let mut people: Vec<&String> = n
            .suspects
            .iter()
            .chain(&n.victims)
            .chain(&n.others)
            .collect();
        people.sort();
        assert_eq!(people, c.people.iter().collect::<Vec<_>>());
    }
}

#[test]
fn the_group_thresholds_are_settings() {
    let w = network_world();
    let (store, log) = w.store();
    let s = Settings {
        min_suspects: 1,
        ..settings("2025-07-01", "2026-06-30")
    };
    let p = build(&catalog(), &store, &log, &s).expect("profile");
    let n = p.networks.expect("networks");
    // Now the lone pair and the resolved Ali Khan count too.
    assert_eq!(n.len(), 4);
    let khan = n.iter().find(|n| n.id == "n_s5a").expect("khan network");
    assert_eq!(khan.suspects, vec!["p_s5a"]);
    assert_eq!(
        khan.same_person.get("p_s5a"),
        Some(&vec!["p_s5b".to_owned()])
    );
}

#[test]
fn volumes_count_crimes_once_and_compare_periods() {
    let mut w = network_world();
    // Two crimes in the previous period (one with two victims).
    w.crime(Inv::new("p_v8", "victim", "c9", "2025-01-10"));
    w.crime(Inv::new("p_v9", "victim", "c9", "2025-01-10"));
    w.crime(Inv::new("p_v8", "victim", "c10", "2025-03-10"));
    w.referral("p_v8", "2026-01-05", &["11A", "10A"]);
    w.referral("p_v10", "2026-02-05", &["21"]);
    let (store, log) = w.store();
    let p = build(
        &catalog(),
        &store,
        &log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    let v = p.table("volumes").expect("volumes");
    // c1, c2, c3, c4, c5, c6, c7, c8 in the period; c9, c10 before.
    assert_eq!(v.get("cse_crimes", "current"), Some(&Cell::Count(8)));
    assert_eq!(v.get("cse_crimes", "previous"), Some(&Cell::Count(2)));
    assert_eq!(v.get("cse_crimes", "change"), Some(&Cell::Number(6.0)));
    assert_eq!(
        v.get("cse_crimes", "change_pct"),
        Some(&Cell::Number(300.0))
    );
    assert_eq!(v.get("cin_11a", "current"), Some(&Cell::Count(1)));
    assert_eq!(v.get("cin_10a", "current"), Some(&Cell::Count(1)));
    assert!(
        v.get("cse_intelligence", "current").is_none(),
        "no intelligence dataset"
    );
    let m = p.table("volumes_by_month").expect("months");
    assert_eq!(m.rows.len(), 13, "12 months and a total");
    assert_eq!(m.get("2026-05", "cse_crimes"), Some(&Cell::Count(2)));
    assert_eq!(m.get("total", "cse_crimes"), Some(&Cell::Count(8)));
    let b = p.table("volumes_by_borough").expect("boroughs");
    assert_eq!(
        b.get("cse_crimes", "bury"),
        Some(&Cell::Count(0)),
        "c3's first record says Rochdale"
    );
    assert_eq!(b.get("cse_crimes", "rochdale"), Some(&Cell::Count(8)));
    let t = p.table("tracker").expect("tracker");
    assert_eq!(t.rows.len(), 8);
}

#[test]
fn prior_knowledge_and_missing_before_cse() {
    let mut w = World::default();
    // V1: a referral 100 days before the first police record, a missing
    // episode 30 days before the crime.
    w.referral("p_v1", "2026-01-21", &["21"]);
    w.missing("p_v1", "2026-04-01");
    w.crime(Inv::new("p_v1", "victim", "c1", "2026-05-01"));
    // V2: a missing episode (a council record) 200 days before the crime.
    w.missing("p_v2", "2025-10-13");
    w.crime(Inv::new("p_v2", "victim", "c2", "2026-05-01"));
    // V3: a child known only to the council, with CSE factor 11A.
    w.referral("p_v3", "2026-02-01", &["11A"]);
    // V4: police first, the council two weeks later.
    w.crime(Inv::new("p_v4", "victim", "c4", "2026-04-01"));
    w.referral("p_v4", "2026-04-15", &["21"]);
    let (store, log) = w.store();
    let p = build(
        &catalog(),
        &store,
        &log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    let k = p.table("prior_knowledge").expect("prior");
    assert_eq!(k.get("any", "victims"), Some(&Cell::Count(3)));
    assert_eq!(k.get("any", "known"), Some(&Cell::Count(2)));
    assert_eq!(k.get("any", "median_days"), Some(&Cell::Number(150.0)));
    assert_eq!(k.get("council", "known"), Some(&Cell::Count(2)));
    match k.get("any", "share") {
        Some(Cell::Number(x)) => assert!((x - 200.0 / 3.0).abs() < 1e-9),
        other => panic!("share: {other:?}"),
    }
    let m = p.table("missing_before_cse").expect("missing");
    assert_eq!(m.get("window", "victims"), Some(&Cell::Count(4)));
    assert_eq!(
        m.get("window", "missing"),
        Some(&Cell::Count(1)),
        "only v1 within 90 days"
    );
    assert_eq!(m.get("ever", "missing"), Some(&Cell::Count(2)));
    let vs = p.table("victims_suspects").expect("victims");
    assert_eq!(vs.get("victims", "people"), Some(&Cell::Count(4)));
    let fp = p.table("footprint").expect("footprint");
    assert_eq!(
        fp.get("2", "victims"),
        Some(&Cell::Count(3)),
        "police and council"
    );
    assert_eq!(
        fp.get("1", "victims"),
        Some(&Cell::Count(1)),
        "v3: council only"
    );
    let ov = p.table("agency_overlap").expect("overlap");
    assert_eq!(
        ov.get("gmp-police", "rochdale-council"),
        Some(&Cell::Count(3))
    );
    assert_eq!(
        ov.get("rochdale-council", "rochdale-council"),
        Some(&Cell::Count(4))
    );
    let q = p.table("data_quality").expect("quality");
    assert_eq!(
        q.get("rochdale-council", "rows_rejected"),
        Some(&Cell::Count(4))
    );
    assert_eq!(
        q.get("rochdale-council", "rejected_pct"),
        Some(&Cell::Number(20.0))
    );
    assert!(
        p.caveats
            .iter()
            .any(|c| c.contains("More than 5% of rows were rejected")
                && c.contains("rochdale-council")),
        "{:?}",
        p.caveats
    );
}

#[test]
fn the_default_period_is_twelve_months_to_the_latest_event() {
    let w = network_world();
    let (store, log) = w.store();
    let s = Settings {
        generated_at: "now".into(),
        ..Settings::default()
    };
    let p = build(&catalog(), &store, &log, &s).expect("profile");
    assert_eq!(p.period.to, "2026-06-10");
    assert_eq!(p.period.from, "2025-06-11");
    assert_eq!(p.period.days, 365);
    assert_eq!(p.period.previous_to, "2025-06-10");
    assert_eq!(p.period.previous_from, "2024-06-11");
    assert!(p.period.default);
    let empty = MemoryRecordStore::default();
    assert!(matches!(
        build(&catalog(), &empty, &log, &s),
        Err(ProfileError::NoRecords)
    ));
    assert!(matches!(
        build(
            &catalog(),
            &store,
            &log,
            &settings("2026-02-30", "2026-06-30")
        ),
        Err(ProfileError::BadDate(_))
    ));
}

/// A record dated in the future (stored before dates were bounded, or under
/// a custom schema) does not carry the default period past today.
#[test]
fn the_default_period_ends_no_later_than_today() {
    let mut w = network_world();
    w.missing("far_future", "9999-12-31");
    let (store, log) = w.store();
    let on = |generated_at: &str| {
        let s = Settings {
            generated_at: generated_at.into(),
            ..Settings::default()
        };
        build(&catalog(), &store, &log, &s).expect("profile").period
    };
    let p = on("2026-07-01T10:00:00Z");
    assert_eq!(
        (p.from.as_str(), p.to.as_str()),
        ("2025-07-02", "2026-07-01")
    );
    assert!(p.default);
    // Before the latest real event, today is the end; an analyst's --to
    // is taken as given.
    assert_eq!(on("2026-06-01T00:00:00Z").to, "2026-06-01");
    let chosen = build(
        &catalog(),
        &store,
        &log,
        &settings("2026-01-01", "2026-06-30"),
    )
    .expect("profile");
    assert_eq!(chosen.period.to, "2026-06-30");
}

#[test]
fn both_editions_validate_and_the_partner_edition_carries_no_ids() {
    let w = network_world();
    let (store, log) = w.store();
    let cat = catalog();
    let analyst =
        build(&cat, &store, &log, &settings("2025-07-01", "2026-06-30")).expect("analyst");
    let json = serde_json::to_value(&analyst).expect("json");
    validate_json(&json).unwrap_or_else(|e| panic!("analyst profile.json invalid: {e:#?}"));
    let partner = build(
        &cat,
        &store,
        &log,
        &Settings {
            edition: Edition::Partner,
            ..settings("2025-07-01", "2026-06-30")
        },
    )
    .expect("partner");
    let json = serde_json::to_value(&partner).expect("json");
    validate_json(&json).unwrap_or_else(|e| panic!("partner profile.json invalid: {e:#?}"));
    let text = serde_json::to_string(&partner).expect("json");
    for needle in ["p_s1", "p_v1", "n_s1", "local_ref:", "phone:k1"] {
        assert!(!text.contains(needle), "partner edition leaks {needle}");
    }
    assert!(partner.networks.is_none());
    assert!(partner.table("tracker").is_none());
    assert!(partner.table("group_networks").is_none());
    // Small counts are withheld: 8 crimes by month are all 1 to 5.
    let m = partner.table("volumes_by_month").expect("months");
    assert_eq!(m.get("2026-05", "cse_crimes"), Some(&Cell::Suppressed));
    assert!(partner.tables.iter().map(|t| t.suppressed).sum::<usize>() > 0);
    let html = render_html(&partner);
    assert!(!html.contains("p_s1") && !html.contains("local_ref:"));
    // Every published table passes the audit a reader could run on it, and
    // the same tables unsuppressed (the analyst's) would not.
    for t in &partner.tables {
        let problems = disclosure::audit(t, partner.suppression.unwrap_or_default());
        assert!(problems.is_empty(), "{problems:#?}");
    }
    let failing = analyst
        .tables
        .iter()
        .filter(|t| !disclosure::audit(t, disclosure::Rule::default()).is_empty())
        .count();
    assert!(failing > 0, "the analyst edition has small counts to catch");
    // A partner edition that still held an id would fail its schema.
    let mut leaky = serde_json::to_value(&partner).expect("json");
    leaky["tables"][0]["rows"][0][0] = json!("p_abcdef");
    assert!(validate_json(&leaky).is_err());
}

#[test]
fn the_html_is_self_contained() {
    let w = network_world();
    let (store, log) = w.store();
    let p = build(
        &catalog(),
        &store,
        &log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    let html = render_html(&p);
    let lower = html.to_lowercase();
    for banned in [
        "http:",
        "https:",
        "<script",
        "<link",
        "@import",
        "url(",
        "src=",
        "@font-face",
    ] {
        assert!(
            !lower.contains(banned),
            "the page must not contain {banned}"
        );
    }
    assert!(html.starts_with("<!doctype html>"));
    // Summary first, then charts, tables, method, caveats.
    let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(at("id=\"summary\"") < at("id=\"charts\""));
    assert!(at("id=\"charts\"") < at("id=\"tables\""));
    assert!(at("id=\"tables\"") < at("id=\"method\""));
    assert!(at("id=\"method\"") < at("id=\"caveats\""));
    assert!(
        html.contains("aria-label=\"network n_s1\""),
        "the high-tier network is drawn"
    );
    assert!(
        html.contains("High tier: 50 or more"),
        "the formula is stated"
    );
}

#[test]
fn csv_has_one_row_per_table_row() {
    let w = network_world();
    let (store, log) = w.store();
    let p = build(
        &catalog(),
        &store,
        &log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    for t in &p.tables {
        let csv = t.to_csv();
        let mut r = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
        let rows = r.records().count();
        assert_eq!(rows, t.rows.len(), "{}", t.id);
    }
}

/// The profile's own words must not be the victim-blaming language the
/// inspection asked forces to eradicate: its summary, method notes,
/// caveats, table titles and the whole HTML page, in both editions, pass
/// `agencylink language check`'s lexicon.
#[test]
fn the_profile_text_passes_the_language_check() {
    let lex = crate::language::Lexicon::embedded().expect("lexicon");
    let w = network_world();
    let (store, log) = w.store();
    let cat = catalog();
    for edition in [Edition::Analyst, Edition::Partner] {
        let p = build(
            &cat,
            &store,
            &log,
            &Settings {
                edition,
                ..settings("2025-07-01", "2026-06-30")
            },
        )
        .expect("profile");
        let html = render_html(&p);
        let found = lex.check_html(&html);
        assert!(found.is_empty(), "{edition:?} HTML: {found:#?}");
        let mut prose: Vec<String> = Vec::new();
        prose.extend(p.method.iter().map(|n| format!("{}. {}", n.topic, n.text)));
        prose.extend(p.summary.iter().cloned());
        prose.extend(p.caveats.iter().cloned());
        prose.extend(
            p.headlines
                .iter()
                .map(|h| serde_json::to_string(h).expect("json")),
        );
        prose.extend(
            p.tables
                .iter()
                .map(|t| serde_json::to_string(t).expect("json")),
        );
        prose.push(serde_json::to_string(&p.threat).expect("json"));
        for text in &prose {
            let found = lex.check_text(text);
            assert!(found.is_empty(), "{edition:?}: {found:#?}");
        }
    }
}

/// The real schemas name a grooming model `'Boyfriend' model`: the profile
/// keeps the quotation marks that make it a name, so it passes the check.
#[test]
fn a_quoted_model_name_keeps_its_quotes_and_passes_the_language_check() {
    let lex = crate::language::Lexicon::embedded().expect("lexicon");
    let label = sections::quoted_short(
        "'Boyfriend' model: the perpetrator grooms the young person as a partner",
    );
    assert_eq!(label, "\u{2018}Boyfriend\u{2019} model");
    assert!(lex.check_text(&label).is_empty());
    assert!(!lex.check_text("Boyfriend model").is_empty());
    assert_eq!(
        sections::quoted_short("Children's services: x"),
        "Children\u{2019}s services"
    );
}

/// [`catalog`] and an investigation dataset, found by its concepts.
fn catalog_with_investigations() -> Catalog {
    let base = catalog();
    let cases = r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "x-agency-type": "police", "title": "Test operations",
        "required": ["ref", "op", "crime", "opened", "state", "threat", "review"],
        "properties": {
          "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
          "op": {"type": "string", "x-identifier": "local_ref", "x-concept": "case_ref"},
          "crime": {"type": "string", "x-identifier": "local_ref", "x-link": "crime"},
          "opened": {"type": "string", "format": "date", "x-concept": "event_date"},
          "closed": {"type": "string", "format": "date", "x-concept": "closed_date"},
          "state": {"type": "string", "enum": ["open","suspended","closed"], "x-concept": "case_status"},
          "threat": {"type": "string", "enum": ["1","2","3","4"], "x-concept": "threat_category",
             "x-codes": {"1": "Category 1: highest threat (organised)", "2": "Category 2: high threat", "3": "Category 3: moderate threat", "4": "Category 4: lower threat"}},
          "review": {"type": "string", "enum": ["not_reviewed","completed"], "x-concept": "peer_review_status",
             "x-codes": {"not_reviewed": "Not yet reviewed", "completed": "Review completed"}},
          "reviewed": {"type": "string", "format": "date", "x-concept": "peer_review_date"},
          "team": {"type": "string", "x-concept": "lead_team"}
        }}"#;
    let mut sources: Vec<(String, String)> = base
        .latest()
        .map(|d| (d.file.clone(), d.source.clone()))
        .collect();
    sources.push(("police.test_operation.v1.schema.json".into(), cases.into()));
    Catalog::from_sources(sources.iter().map(|(f, t)| (f.as_str(), t.as_str())))
        .expect("test schemas are valid")
}

/// One investigation row: operation `op` covers `crime`.
struct Op<'a> {
    op: &'a str,
    crime: &'a str,
    opened: &'a str,
    state: &'a str,
    threat: &'a str,
    reviewed: Option<&'a str>,
}

impl World {
    fn operation(&mut self, o: Op<'_>) {
        let mut fields = json!({
            "ref": format!("local_ref:k1:row{}", self.records.len()),
            "op": format!("local_ref:k1:{}", o.op),
            "crime": format!("local_ref:k1:{}", o.crime),
            "opened": o.opened, "state": o.state, "threat": o.threat,
            "review": if o.reviewed.is_some() { "completed" } else { "not_reviewed" },
            "team": "CSE-ROCH",
        });
        if let Some(d) = o.reviewed {
            fields["reviewed"] = json!(d);
        }
        // As ingest makes it: a record without match keys is a "person" of
        // its own, which the profile must never count as one.
        let person = format!("p_row{}", self.records.len());
        self.push(Raw {
            person: &person,
            agency: "gmp-police",
            dataset: "police.test_operation",
            date: o.opened,
            borough: "",
            fields,
            derived: json!({}),
            links: vec![Link {
                kind: "crime".into(),
                token: format!("local_ref:k1:{}", o.crime),
            }],
        });
    }
}

/// [`network_world`] with four operations: op1 (open, category 1) covers
/// c1 and c2 of network n_s1; op2 (closed) covers c7 of network n_s7a;
/// op3 (open) covers the lone pair's c4; op4 (suspended) covers c5 and c6.
fn investigation_world() -> World {
    let mut w = network_world();
    let op = |op, crime, opened, state, threat, reviewed| Op {
        op,
        crime,
        opened,
        state,
        threat,
        reviewed,
    };
    for o in [
        op("op1", "c1", "2026-05-01", "open", "1", None),
        op("op1", "c2", "2026-05-01", "open", "1", None),
        op("op2", "c7", "2025-12-10", "closed", "2", None),
        op("op3", "c4", "2026-03-01", "open", "1", Some("2026-03-10")),
        op(
            "op4",
            "c5",
            "2026-02-01",
            "suspended",
            "1",
            Some("2026-04-01"),
        ),
        op(
            "op4",
            "c6",
            "2026-02-01",
            "suspended",
            "1",
            Some("2026-04-01"),
        ),
    ] {
        w.operation(o);
    }
    w
}

#[test]
fn networks_no_open_investigation_covers_are_found_exactly() {
    let cat = catalog_with_investigations();
    let w = investigation_world();
    let (store, log) = w.store();
    let p = build(&cat, &store, &log, &settings("2025-07-01", "2026-06-30")).expect("profile");
    // Investigations are not people: the networks are exactly those of the
    // world without them.
    let ids: Vec<&str> = p
        .networks
        .as_ref()
        .expect("analyst")
        .iter()
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(ids, vec!["n_s1", "n_s7a"]);
    let vs = p.table("victims_suspects").expect("victims");
    let (plain_store, plain_log) = network_world().store();
    let plain = build(
        &catalog(),
        &plain_store,
        &plain_log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    assert_eq!(
        vs.rows,
        plain.table("victims_suspects").expect("victims").rows
    );
    // n_s1 has op1 (open); n_s7a only op2 (closed): uncovered, op2 named.
    let un = p.table("uncovered_networks").expect("uncovered");
    let listed: Vec<String> = un.rows.iter().map(|r| r[0].display()).collect();
    assert_eq!(listed, vec!["n_s7a"]);
    let other = un.col("other_investigations").expect("column");
    assert_eq!(un.rows[0][other].display(), "local_ref:k1:op2 (closed)");
    let cov = p.table("network_coverage").expect("coverage");
    assert_eq!(cov.get("total", "covered"), Some(&Cell::Count(1)));
    assert_eq!(cov.get("total", "uncovered"), Some(&Cell::Count(1)));
    let head = p
        .headlines
        .iter()
        .find(|h| h.id == "uncovered_networks")
        .expect("headline");
    assert_eq!(head.value, Cell::Count(1));
}

#[test]
fn investigations_by_threat_and_the_victim_suspect_map() {
    let cat = catalog_with_investigations();
    let (store, log) = investigation_world().store();
    let p = build(&cat, &store, &log, &settings("2025-07-01", "2026-06-30")).expect("profile");
    let t = p.table("investigations_by_threat").expect("by threat");
    assert_eq!(t.get("1", "open"), Some(&Cell::Count(2)));
    assert_eq!(t.get("1", "suspended"), Some(&Cell::Count(1)));
    assert_eq!(t.get("2", "closed"), Some(&Cell::Count(1)));
    assert_eq!(t.get("total", "total"), Some(&Cell::Count(4)));
    let map = p.table("investigation_people").expect("map");
    let row = |op: &str| {
        map.rows
            .iter()
            .find(|r| r[0].display() == format!("local_ref:k1:{op}"))
            .expect("listed")
            .clone()
    };
    let (v, s, n) = (
        map.col("victims").expect("v"),
        map.col("suspects").expect("s"),
        map.col("networks").expect("n"),
    );
    // op1: V1, V2 and S1, S2 (c1, c2), in network n_s1.
    let op1 = row("op1");
    assert_eq!((&op1[v], &op1[s]), (&Cell::Count(2), &Cell::Count(2)));
    assert_eq!(op1[n].display(), "n_s1");
    // op4: V5, V6 and one suspect named alike in both crimes.
    let op4 = row("op4");
    assert_eq!((&op4[v], &op4[s]), (&Cell::Count(2), &Cell::Count(1)));
    let kinds = p.table("investigation_kinds").expect("kinds");
    assert_eq!(
        kinds.get("multi_victim_multi_offender", "total"),
        Some(&Cell::Count(1))
    );
    assert_eq!(kinds.get("multi_victim", "total"), Some(&Cell::Count(1)));
    assert_eq!(kinds.get("single", "total"), Some(&Cell::Count(2)));
    assert!(
        p.sources
            .iter()
            .any(|s| s.read_as == "investigation" && s.records == 6)
    );
}

#[test]
fn peer_review_overdue_list_on_hand_made_cases() {
    let cat = catalog_with_investigations();
    let (store, log) = investigation_world().store();
    let p = build(&cat, &store, &log, &settings("2025-07-01", "2026-06-30")).expect("profile");
    assert_eq!(p.thresholds.peer_review_days, 28);
    // Category 1: op1 opened 1 May, never reviewed: due 29 May, 32 days
    // overdue on 30 June. op4 opened 1 February, reviewed 1 April: due
    // 1 March, 31 days late. op3 reviewed after 9 days: in time. op2 is
    // category 2: no review expected.
    let list = p.table("peer_review_overdue").expect("overdue");
    let got: Vec<(String, String, String)> = list
        .rows
        .iter()
        .map(|r| (r[0].display(), r[4].display(), r[7].display()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("local_ref:k1:op1".into(), "2026-05-29".into(), "32".into()),
            ("local_ref:k1:op4".into(), "2026-03-01".into(), "31".into()),
        ]
    );
    let sum = p.table("peer_review").expect("summary");
    assert_eq!(sum.get("overdue", "investigations"), Some(&Cell::Count(1)));
    assert_eq!(sum.get("late", "investigations"), Some(&Cell::Count(1)));
    assert_eq!(sum.get("in_time", "investigations"), Some(&Cell::Count(1)));
    // A longer window: op1 is not yet due at 70 days, op4 (59 days) in time.
    let mut s = settings("2025-07-01", "2026-06-30");
    s.peer_review_days = 70;
    let p = build(&cat, &store, &log, &s).expect("profile");
    assert!(
        p.table("peer_review_overdue")
            .expect("overdue")
            .rows
            .is_empty()
    );
    let sum = p.table("peer_review").expect("summary");
    assert_eq!(
        sum.get("not_yet_due", "investigations"),
        Some(&Cell::Count(1))
    );
    assert_eq!(sum.get("in_time", "investigations"), Some(&Cell::Count(2)));
}

#[test]
fn the_partner_edition_keeps_investigation_counts_only() {
    let cat = catalog_with_investigations();
    let (store, log) = investigation_world().store();
    let mut s = settings("2025-07-01", "2026-06-30");
    s.edition = Edition::Partner;
    let p = build(&cat, &store, &log, &s).expect("profile");
    for id in [
        "investigation_people",
        "uncovered_networks",
        "peer_review_overdue",
    ] {
        assert!(p.table(id).is_none(), "{id} in the partner edition");
    }
    // Every count here is 1 to 5: withheld.
    let t = p.table("investigations_by_threat").expect("by threat");
    assert_eq!(t.get("1", "open"), Some(&Cell::Suppressed));
    let json = serde_json::to_value(&p).expect("json");
    validate_json(&json).expect("valid profile.json");
    let text = serde_json::to_string(&p).expect("json");
    assert!(
        !text.contains("local_ref:"),
        "a pseudonym in the partner edition"
    );
    let html = render_html(&p);
    assert!(!html.contains("local_ref:"));
}

#[test]
fn a_withdrawn_upload_leaves_the_data_quality_table() {
    let mut w = World::default();
    w.referral("p_v1", "2026-01-21", &["21"]);
    w.crime(Inv::new("p_v1", "victim", "c1", "2026-05-01"));
    let (store, log) = w.store();
    let s = settings("2025-07-01", "2026-06-30");
    let before = build(&catalog(), &store, &log, &s).expect("profile");
    let q = before.table("data_quality").expect("quality");
    assert_eq!(q.get("rochdale-council", "uploads"), Some(&Cell::Count(1)));
    assert_eq!(
        q.get("rochdale-council", "rows_rejected"),
        Some(&Cell::Count(4))
    );
    let entry = json!({
        "type": "withdrawn", "upload_id": "u_rochdale-council", "agency": "rochdale-council",
        "dataset": "council.test_referral", "reason": "sent in error", "records_removed": 16,
        "time": "2026-07-02T09:00:00Z",
    });
    let Value::Object(fields) = entry else {
        unreachable!("a JSON object")
    };
    crate::lineage::append(&log, fields).expect("append");
    let after = build(&catalog(), &store, &log, &s).expect("profile");
    let q = after.table("data_quality").expect("quality");
    assert_eq!(q.get("rochdale-council", "uploads"), Some(&Cell::Count(0)));
    assert_eq!(
        q.get("rochdale-council", "rows_rejected"),
        Some(&Cell::Count(0)),
        "the withdrawn upload's rejections are gone with it"
    );
    assert_eq!(
        q.get("gmp-police", "rows_rejected"),
        Some(&Cell::Count(1)),
        "other uploads stay"
    );
}

/// [`catalog`] and a disruption-activity dataset, found by its concepts.
fn catalog_with_disruption() -> Catalog {
    let base = catalog();
    let disruption = format!(
        r#"{{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "x-agency-type": "police", "title": "Test disruption",
        "required": ["ref", "date", "activity"],
        "properties": {{
          "ref": {{"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"}},
          "date": {{"type": "string", "format": "date", "x-concept": "event_date"}},
          "where": {{"type": "string", "enum": {BOROUGHS}, "x-concept": "borough"}},
          "pc": {{"type": "string", "x-identifier": "postcode", "x-generalise": "sector"}},
          "premises": {{"type": "string", "enum": ["hotel","dwelling"], "x-concept": "premises_type",
             "x-codes": {{"hotel": "Hotel", "dwelling": "Private dwelling"}}}},
          "activity": {{"type": "string", "enum": ["premises_visit","cawn","school_session"], "x-concept": "disruption_activity",
             "x-codes": {{"premises_visit": "Visit to premises", "cawn": "Child abduction warning notice issued", "school_session": "Awareness session in a school"}}}}
        }}}}"#
    );
    let mut sources: Vec<(String, String)> = base
        .latest()
        .map(|d| (d.file.clone(), d.source.clone()))
        .collect();
    sources.push(("police.test_disruption.v1.schema.json".into(), disruption));
    Catalog::from_sources(sources.iter().map(|(f, t)| (f.as_str(), t.as_str())))
        .expect("test schemas are valid")
}

impl World {
    /// A CSE crime with one victim at another place: postcode sector
    /// `sector`, premises `premises`.
    fn crime_at(&mut self, crime: &str, date: &str, sector: &str, premises: &str) {
        let person = format!("p_{crime}");
        self.push(Raw {
            person: &person,
            agency: "gmp-police",
            dataset: "police.test_crime",
            date,
            borough: "Manchester",
            fields: json!({
                "ref": format!("local_ref:k1:ref{}", self.records.len()),
                "crime": format!("local_ref:k1:{crime}"), "date": date, "where": "Manchester",
                "offence": "71", "flag": true, "role": "victim", "pc": "postcode:k1:z",
                "premises": premises,
            }),
            derived: json!({"pc_sector": sector}),
            links: vec![Link {
                kind: "crime".into(),
                token: format!("local_ref:k1:{crime}"),
            }],
        });
    }

    /// A disruption activity; `sector` None for a borough-wide one.
    fn disruption(
        &mut self,
        date: &str,
        sector: Option<&str>,
        premises: Option<&str>,
        activity: &str,
    ) {
        let mut fields = json!({
            "ref": format!("local_ref:k1:d{}", self.records.len()),
            "date": date, "where": "Rochdale", "activity": activity,
        });
        let mut derived = json!({});
        if let Some(s) = sector {
            fields["pc"] = json!("postcode:k1:d");
            derived["pc_sector"] = json!(s);
        }
        if let Some(p) = premises {
            fields["premises"] = json!(p);
        }
        // As ingest makes it: a record of its own "person", which the
        // profile must never count as one.
        let person = format!("p_d{}", self.records.len());
        self.push(Raw {
            person: &person,
            agency: "gmp-police",
            dataset: "police.test_disruption",
            date,
            borough: "Rochdale",
            fields,
            derived,
            links: Vec::new(),
        });
    }
}

/// [`network_world`]'s eight crimes (all at hotels in OL11 1), three more
/// at private dwellings in M1 1, and four disruption activities: a visit
/// to a hotel in OL11 1 (in the period), a warning notice there before the
/// period, a borough-wide school session, and a visit in SK1 1 (no CSE).
fn disruption_world() -> World {
    let mut w = network_world();
    for (crime, date) in [
        ("m1", "2026-01-10"),
        ("m2", "2026-02-10"),
        ("m3", "2026-03-10"),
    ] {
        w.crime_at(crime, date, "M1 1", "dwelling");
    }
    w.disruption(
        "2026-04-01",
        Some("OL11 1"),
        Some("hotel"),
        "premises_visit",
    );
    w.disruption("2025-01-15", Some("OL11 1"), None, "cawn");
    w.disruption("2026-05-05", None, None, "school_session");
    w.disruption("2026-05-06", Some("SK1 1"), None, "premises_visit");
    w
}

#[test]
fn hotspots_are_set_against_disruption_on_hand_made_cases() {
    let cat = catalog_with_disruption();
    let w = disruption_world();
    let (store, log) = w.store();
    let p = build(&cat, &store, &log, &settings("2025-07-01", "2026-06-30")).expect("profile");
    let rows = |id: &str| -> Vec<Vec<String>> {
        p.table(id)
            .unwrap_or_else(|| panic!("no {id}"))
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::display).collect())
            .collect()
    };
    assert_eq!(
        rows("places_hotspots_disruption"),
        [
            ["OL11 1", "Rochdale", "8", "1"],
            ["M1 1", "Manchester", "3", "0"],
        ],
        "the visit counts; the notice before the period, the borough-wide session and the visit elsewhere do not"
    );
    assert_eq!(
        rows("places_premises_disruption"),
        [["Hotel", "8", "1"], ["Private dwelling", "3", "0"]]
    );
    assert_eq!(
        rows("places_hotspots_undisrupted"),
        [
            ["M1 1", "Postcode sector", "Manchester", "3"],
            ["Private dwelling", "Premises type", "", "3"],
        ]
    );
    let kinds = p.table("disruption_activities").expect("by kind");
    assert_eq!(kinds.get("premises_visit", "total"), Some(&Cell::Count(2)));
    assert_eq!(kinds.get("school_session", "total"), Some(&Cell::Count(1)));
    assert_eq!(kinds.get("cawn", "total"), None, "before the period");
    // Activities are about places: no person comes from them.
    let without: World = World {
        records: w
            .records
            .iter()
            .filter(|r| r.dataset != "police.test_disruption")
            .cloned()
            .collect(),
    };
    let (plain_store, plain_log) = without.store();
    let plain = build(
        &cat,
        &plain_store,
        &plain_log,
        &settings("2025-07-01", "2026-06-30"),
    )
    .expect("profile");
    for id in ["volumes", "footprint", "victims_suspects", "agency_overlap"] {
        let (a, b) = (p.table(id).expect(id), plain.table(id).expect(id));
        assert_eq!(a.rows, b.rows, "{id} changed by activities");
    }
    assert!(
        plain.table("places_hotspots_disruption").is_none(),
        "only with the dataset"
    );
    let source = p
        .sources
        .iter()
        .find(|s| s.dataset == "police.test_disruption")
        .expect("listed");
    assert_eq!(
        (source.read_as.as_str(), source.records),
        ("disruption activity", 3)
    );

    // The partner edition keeps the tables, counts of 1 to 5 withheld, and
    // its text passes the language check like the rest.
    let lex = crate::language::Lexicon::embedded().expect("lexicon");
    let mut s = settings("2025-07-01", "2026-06-30");
    s.edition = Edition::Partner;
    let partner = build(&cat, &store, &log, &s).expect("partner");
    let t = partner.table("places_hotspots_disruption").expect("kept");
    assert_eq!(t.get("M1 1", "cse_events"), Some(&Cell::Suppressed));
    validate_json(&serde_json::to_value(&partner).expect("json")).expect("valid profile.json");
    for edition in [&p, &partner] {
        let html = render_html(edition);
        assert!(html.contains("Hotspots and disruption"));
        assert!(lex.check_html(&html).is_empty());
        for n in &edition.method {
            assert!(lex.check_text(&n.text).is_empty(), "{}", n.text);
        }
    }
}
