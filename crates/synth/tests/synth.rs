//! The synthetic data generator, read back through the real reader and
//! validator: every dataset's rows are valid, mistakes are counted exactly,
//! output is reproducible, the same people cross datasets, and the planted
//! networks are the only groups with more than one suspect.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use agencylink_core::pseudo::{Kind, canonicalise};
use agencylink_core::read::{self, InputFormat};
use agencylink_core::report::validate_all;
use agencylink_core::schema::{Catalog, Dataset, MatchRole};
use agencylink_core::validate::RowValidator;
use agencylink_synth::{
    Population, SynthOptions, SynthStats, World, write_csv, write_csv_with_world,
};
use serde_json::Value;

/// Canonical (family, given, dob) triples.
type NameDobSet = BTreeSet<(String, String, String)>;

fn catalog() -> Catalog {
    Catalog::embedded().expect("embedded schemas load")
}

/// CSV bytes, truth lines (rows then summary) and stats.
struct Output {
    csv: Vec<u8>,
    truth: Vec<Value>,
    stats: SynthStats,
}

impl Output {
    fn rows(&self) -> &[Value] {
        &self.truth[..self.truth.len() - 1]
    }
    fn summary(&self) -> &Value {
        &self.truth[self.truth.len() - 1]["summary"]
    }
    /// The data rows as `column -> cell` maps.
    fn records(&self) -> Vec<BTreeMap<String, String>> {
        support::csv_rows(&self.csv)
    }
}

fn generate(ds: &Dataset, opts: &SynthOptions) -> Output {
    let mut csv = Vec::new();
    let mut truth = Vec::new();
    let stats = write_csv(ds, opts, &mut csv, Some(&mut truth)).expect("generate");
    parse(csv, truth, stats)
}

fn generate_in(world: &World, ds: &Dataset, opts: &SynthOptions) -> Output {
    let mut csv = Vec::new();
    let mut truth = Vec::new();
    let stats =
        write_csv_with_world(world, ds, opts, &mut csv, Some(&mut truth)).expect("generate");
    parse(csv, truth, stats)
}

fn parse(csv: Vec<u8>, truth: Vec<u8>, stats: SynthStats) -> Output {
    let truth = String::from_utf8(truth)
        .expect("truth is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("truth line is JSON"))
        .collect();
    Output { csv, truth, stats }
}

/// Validate through the real reader and validator; returns the summary and
/// the set of row numbers that had errors (with the first few messages).
fn validate(
    ds: &Dataset,
    csv: &[u8],
) -> (agencylink_core::report::Summary, BTreeSet<u64>, Vec<String>) {
    let validator = RowValidator::new(ds);
    let mut source = read::open(InputFormat::Csv, csv, ds);
    let mut bad_rows = BTreeSet::new();
    let mut messages = Vec::new();
    let summary = validate_all(source.as_mut(), &validator, |e| {
        bad_rows.insert(e.row);
        if messages.len() < 10 {
            messages.push(format!(
                "row {} {} [{}]: {}",
                e.row, e.field, e.code, e.message
            ));
        }
        Ok(())
    })
    .expect("validation runs");
    (summary, bad_rows, messages)
}

fn field_of(ds: &Dataset, role: MatchRole) -> Option<String> {
    ds.fields()
        .iter()
        .find(|f| f.match_role == Some(role))
        .map(|f| f.name.clone())
}

fn canon(kind: Kind, v: &str) -> Option<String> {
    if v.is_empty() {
        return None;
    }
    canonicalise(kind, v, "").ok().map(|c| c.into_owned())
}

#[test]
fn every_dataset_gives_rows_that_pass_validation() {
    let cat = catalog();
    for ds in cat.latest() {
        // Given 2,000 rows at invalid rate 0
        let out = generate(ds, &SynthOptions::new(7, 2000));
        // Then the header is the schema's properties in order
        let header = String::from_utf8_lossy(&out.csv)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let names: Vec<&str> = ds.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(header, names.join(","), "{}", ds.id);
        // and every row passes the schema and the identifier checks
        let (summary, _, messages) = validate(ds, &out.csv);
        assert!(
            summary.file_errors.is_empty(),
            "{}: {:?}",
            ds.id,
            summary.file_errors
        );
        // (a dataset about investigations has a row per crime covered, drawn
        // over a crime extract of 2,000 rows)
        let rows = if ds.is_about_people() {
            2000
        } else {
            out.stats.rows
        };
        assert!(rows > 0, "{}", ds.id);
        assert_eq!(summary.rows, rows, "{}", ds.id);
        assert_eq!(summary.invalid_rows, 0, "{}: {messages:#?}", ds.id);
        assert_eq!(out.stats.rows, rows);
        assert_eq!(out.stats.invalid_rows, 0);
        // and the truth file has one line per row and a summary
        assert_eq!(out.truth.len() as u64, rows + 1, "{}", ds.id);
        assert!(out.rows().iter().all(|t| t["invalid"] == false));
        // and record refs are unique
        let rr = ds.field_for("record_ref").expect("record_ref").name.clone();
        let refs: HashSet<String> = out.records().into_iter().map(|r| r[&rr].clone()).collect();
        assert_eq!(refs.len() as u64, rows, "{}", ds.id);
        assert_consistent_places(ds, &out);
    }
}

/// Where a row has both a borough and a postcode, the postcode's district
/// derives that borough; event dates lie between the anchors.
fn assert_consistent_places(ds: &Dataset, out: &Output) {
    let borough = ds.field_for("borough").map(|f| f.name.clone());
    let postcodes: Vec<String> = ds
        .fields()
        .iter()
        .filter(|f| f.identifier == Some(Kind::Postcode))
        .map(|f| f.name.clone())
        .collect();
    let event_date = ds.field_for("event_date").expect("event_date").name.clone();
    let mut checked = 0;
    for r in out.records() {
        let d = &r[&event_date];
        assert!(
            d.as_str() >= "2024-10-01" && d.as_str() <= "2026-09-30",
            "{}: {d}",
            ds.id
        );
        let Some(b) = borough.as_ref().map(|b| &r[b]).filter(|b| !b.is_empty()) else {
            continue;
        };
        for pc in &postcodes {
            if let Some(c) = canon(Kind::Postcode, &r[pc]) {
                let derived = agencylink_core::geography::borough_for_postcode(&c).map(|x| x.name);
                assert_eq!(derived, Some(b.as_str()), "{}: {c}", ds.id);
                checked += 1;
            }
        }
    }
    assert!(
        postcodes.is_empty() || borough.is_none() || checked > 0,
        "{}",
        ds.id
    );
}

#[test]
fn a_large_world_stays_valid_and_never_reuses_a_phone() {
    // Given more people than drama-range phone numbers
    let cat = catalog();
    let world = World::new(
        77,
        Population {
            children: 20_000,
            adults: 10_000,
        },
    )
    .expect("world");
    assert_eq!(world.networks().len(), 200);
    let phones: Vec<String> = world.people().iter().filter_map(|p| p.phone()).collect();
    let unique: HashSet<&String> = phones.iter().collect();
    assert_eq!(phones.len(), unique.len(), "a phone number is given twice");
    for n in world.networks() {
        if let Some(p) = n.shared_phone() {
            assert!(!unique.contains(&p), "{} shares an owned phone", n.id());
        }
        assert!(n.suspect_ids().len() >= 2 && !n.victim_ids().is_empty());
    }
    // Then every dataset is still valid
    for ds in cat.latest() {
        let out = generate_in(&world, ds, &SynthOptions::new(77, 3000));
        let (summary, _, messages) = validate(ds, &out.csv);
        assert_eq!(summary.invalid_rows, 0, "{}: {messages:#?}", ds.id);
    }
}

#[test]
fn injected_mistakes_are_exactly_the_invalid_rows() {
    let cat = catalog();
    for ds in cat.latest() {
        // Given an invalid rate of 0.1
        let opts = SynthOptions {
            invalid_rate: 0.1,
            ..SynthOptions::new(11, 2000)
        };
        let out = generate(ds, &opts);
        let (summary, bad_rows, _) = validate(ds, &out.csv);
        // Then the validator finds exactly the injected rows
        assert_eq!(summary.invalid_rows, out.stats.invalid_rows, "{}", ds.id);
        let injected: BTreeSet<u64> = out
            .rows()
            .iter()
            .filter(|t| t["invalid"] == true)
            .map(|t| t["row"].as_u64().expect("row"))
            .collect();
        assert_eq!(bad_rows, injected, "{}", ds.id);
        assert_eq!(
            out.summary()["invalid_rows"].as_u64(),
            Some(out.stats.invalid_rows)
        );
        // and the share is close to the rate
        // (within 0.03, or four standard deviations for a short extract)
        let rows = out.stats.rows as f64;
        let share = out.stats.invalid_rows as f64 / rows;
        let tolerance = (4.0 * (0.09 / rows).sqrt()).max(0.03);
        assert!((share - 0.1).abs() <= tolerance, "{}: {share}", ds.id);
        // and every kind of mistake the dataset allows turns up
        let kinds: BTreeSet<&str> = out
            .rows()
            .iter()
            .filter_map(|t| t["mistake"].as_str())
            .collect();
        assert!(
            kinds.contains("blank_required") && kinds.contains("unknown_code"),
            "{}: {kinds:?}",
            ds.id
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let cat = catalog();
    for ds in cat.latest() {
        let opts = SynthOptions {
            invalid_rate: 0.05,
            ..SynthOptions::new(42, 500)
        };
        let a = generate(ds, &opts);
        let b = generate(ds, &opts);
        assert_eq!(a.csv, b.csv, "{}", ds.id);
        assert_eq!(a.truth, b.truth, "{}", ds.id);
        let c = generate(ds, &SynthOptions { seed: 43, ..opts });
        assert_ne!(a.csv, c.csv, "{}", ds.id);
    }
}

#[test]
fn the_valid_rows_do_not_depend_on_the_invalid_rate() {
    let cat = catalog();
    let ds = cat.latest().next().expect("a dataset");
    let clean = generate(ds, &SynthOptions::new(5, 300));
    let dirty = generate(
        ds,
        &SynthOptions {
            invalid_rate: 0.2,
            ..SynthOptions::new(5, 300)
        },
    );
    let (c, d) = (clean.records(), dirty.records());
    for (i, t) in dirty.rows().iter().enumerate() {
        if t["invalid"] == false {
            assert_eq!(c[i], d[i], "row {}", i + 1);
        }
    }
}

#[test]
fn a_child_is_the_same_person_across_datasets() {
    let cat = catalog();
    let world = World::new(3, Population::default()).expect("world");
    // person -> dataset -> canonical (family, given, dob) seen
    let mut seen: HashMap<String, BTreeMap<String, NameDobSet>> = HashMap::new();
    for ds in cat.latest() {
        let (Some(fam), Some(giv), Some(dob)) = (
            field_of(ds, MatchRole::Family),
            field_of(ds, MatchRole::Given),
            field_of(ds, MatchRole::Dob),
        ) else {
            continue;
        };
        let out = generate_in(&world, ds, &SynthOptions::new(3, 3000));
        for (t, r) in out.rows().iter().zip(out.records()) {
            let key = (
                canon(Kind::PersonName, &r[&fam]),
                canon(Kind::PersonName, &r[&giv]),
                canon(Kind::Date, &r[&dob]),
            );
            if let (Some(f), Some(g), Some(d)) = key {
                let person = t["person"].as_str().expect("person").to_owned();
                seen.entry(person)
                    .or_default()
                    .entry(ds.id.clone())
                    .or_default()
                    .insert((f, g, d));
            }
        }
    }
    // Every person has one name and date of birth everywhere
    for (person, by_ds) in &seen {
        let all: BTreeSet<_> = by_ds.values().flatten().collect();
        assert_eq!(all.len(), 1, "{person}: {all:?}");
    }
    // and many children appear in at least three datasets
    let crossing = seen.values().filter(|by_ds| by_ds.len() >= 3).count();
    assert!(crossing >= 20, "only {crossing} people in 3+ datasets");
    // and different people never share a name-and-DOB match key
    let mut keys: HashMap<&(String, String, String), &String> = HashMap::new();
    for (person, by_ds) in &seen {
        for k in by_ds.values().flatten() {
            let other = keys.insert(k, person);
            assert!(
                other.is_none_or(|o| o == person),
                "{k:?} used by {person} and {other:?}"
            );
        }
    }
}

/// Datasets whose role codes include a suspect, with their link fields.
fn police_like(cat: &Catalog) -> Vec<&Dataset> {
    cat.latest()
        .filter(|ds| {
            ds.field_for("person_role")
                .and_then(|f| f.codes.as_ref())
                .is_some_and(|c| c.iter().any(|c| c == "suspect"))
        })
        .map(|ds| ds.as_ref())
        .collect()
}

fn link_kind(ds: &Dataset, field: &str) -> Option<(String, Kind)> {
    let f = ds.field(field)?;
    Some((f.link.clone()?, f.identifier?))
}

#[test]
fn planted_networks_are_the_only_multi_suspect_groups() {
    let cat = catalog();
    let world = World::new(9, Population::default()).expect("world");
    let datasets = police_like(&cat);
    assert!(!datasets.is_empty());
    // Union-find over rows: rows sharing a person or a link value are joined.
    let mut parent: Vec<usize> = Vec::new();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut row_info: Vec<(String, String, Option<String>)> = Vec::new(); // person, role, network
    let mut background_without_dob = 0;
    for ds in &datasets {
        let out = generate_in(&world, ds, &SynthOptions::new(9, 4000));
        let summary_networks = out.summary()["networks"]
            .as_array()
            .expect("networks")
            .clone();
        assert!(!summary_networks.is_empty(), "{}", ds.id);
        for n in &summary_networks {
            let suspects = n["suspects"].as_array().expect("suspects");
            let victims = n["victims"].as_array().expect("victims");
            assert!(suspects.len() >= 2, "{}: {n}", ds.id);
            assert!(!victims.is_empty(), "{}: {n}", ds.id);
        }
        let role_field = ds.field_for("person_role").expect("role").name.clone();
        let dob_field = field_of(ds, MatchRole::Dob);
        let links: Vec<(String, String, Kind)> = ds
            .fields()
            .iter()
            .filter_map(|f| link_kind(ds, &f.name).map(|(l, k)| (f.name.clone(), l, k)))
            .collect();
        // Within a planted network, each crime/report reference is shared by
        // at least two rows, including two suspects.
        let event_ref = links
            .iter()
            .find(|(_, _, k)| *k == Kind::LocalRef)
            .map(|(n, _, _)| n.clone());
        let mut per_ref: HashMap<String, Vec<String>> = HashMap::new();
        for (t, r) in out.rows().iter().zip(out.records()) {
            let i = parent.len();
            parent.push(i);
            let person = t["person"].as_str().expect("person").to_owned();
            let network = t["network"].as_str().map(str::to_owned);
            assert_eq!(t["role"].as_str(), Some(r[&role_field].as_str()));
            if let (Some(er), Some(_)) = (&event_ref, &network) {
                per_ref
                    .entry(r[er].clone())
                    .or_default()
                    .push(r[&role_field].clone());
            }
            let mut keys = vec![format!("person|{person}")];
            for (name, link, kind) in &links {
                // Event references are scoped to one dataset (one agency).
                let scope = if *kind == Kind::LocalRef {
                    ds.id.as_str()
                } else {
                    ""
                };
                if let Some(c) = canon(*kind, &r[name]) {
                    keys.push(format!("{link}|{scope}|{c}"));
                }
            }
            for k in keys {
                match by_key.get(&k) {
                    Some(&j) => {
                        let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                        parent[a] = b;
                    }
                    None => {
                        by_key.insert(k, i);
                    }
                }
            }
            // Planted suspects always carry a date of birth; some
            // background suspects do not (as in real police data).
            if let Some(dob) = &dob_field
                && r[&role_field] == "suspect"
            {
                if network.is_some() {
                    assert!(
                        !r[dob].is_empty(),
                        "{}: planted suspect {person} has no DOB",
                        ds.id
                    );
                } else if r[dob].is_empty() {
                    background_without_dob += 1;
                }
            }
            row_info.push((person, r[&role_field].clone(), network));
        }
        for (reference, roles) in &per_ref {
            assert!(roles.len() >= 2, "{}: {reference} is not shared", ds.id);
            assert!(
                roles.iter().filter(|r| *r == "suspect").count() >= 2,
                "{}: {reference}",
                ds.id
            );
        }
    }
    // Then every component with two or more suspects is one planted network,
    // and the people in it are exactly that network's.
    let mut components: HashMap<usize, (BTreeSet<String>, BTreeSet<Option<String>>)> =
        HashMap::new();
    for (i, (person, role, network)) in row_info.iter().enumerate() {
        let root = find(&mut parent, i);
        let c = components.entry(root).or_default();
        if role == "suspect" {
            c.0.insert(person.clone());
        }
        c.1.insert(network.clone());
    }
    let mut networks_found = 0;
    for (suspects, networks) in components.values() {
        if suspects.len() >= 2 {
            networks_found += 1;
            assert_eq!(
                networks.len(),
                1,
                "a component mixes networks or background: {networks:?}"
            );
            let id = networks
                .iter()
                .next()
                .cloned()
                .flatten()
                .expect("a planted network");
            let planted = world
                .networks()
                .iter()
                .find(|n| n.id() == id)
                .expect("known network");
            let planted_suspects: BTreeSet<String> = planted
                .suspects()
                .iter()
                .map(|&s| world.person(s).expect("person").id())
                .collect();
            assert!(suspects.is_subset(&planted_suspects), "{id}");
        }
    }
    assert_eq!(networks_found, world.networks().len());
    assert!(background_without_dob > 0);
}

#[test]
fn phones_and_plates_are_never_shared_by_accident() {
    let cat = catalog();
    let world = World::new(21, Population::default()).expect("world");
    let mut owners: HashMap<(Kind, String), BTreeSet<String>> = HashMap::new();
    let mut nhs_seen = 0;
    // Investigations carry no phone, plate or NHS number (and no person).
    for ds in cat.latest().filter(|d| d.is_about_people()) {
        let out = generate_in(&world, ds, &SynthOptions::new(21, 3000));
        let fields: Vec<(String, Kind)> = ds
            .fields()
            .iter()
            .filter_map(|f| f.identifier.map(|k| (f.name.clone(), k)))
            .filter(|(_, k)| matches!(k, Kind::Phone | Kind::Vrm | Kind::NhsNumber))
            .collect();
        for (t, r) in out.rows().iter().zip(out.records()) {
            let person = t["person"].as_str().expect("person").to_owned();
            for (name, kind) in &fields {
                let Some(c) = canon(*kind, &r[name]) else {
                    assert!(
                        r[name].is_empty(),
                        "{}: {name} does not canonicalise",
                        ds.id
                    );
                    continue;
                };
                match kind {
                    Kind::NhsNumber => {
                        nhs_seen += 1;
                        assert!(c.starts_with("999"), "{c}");
                    }
                    Kind::Phone => {
                        assert!(c.starts_with("07700900") || c.starts_with("01632"), "{c}")
                    }
                    _ => {}
                }
                owners.entry((*kind, c)).or_default().insert(person.clone());
            }
        }
    }
    assert!(nhs_seen > 1000);
    for ((kind, value), people) in &owners {
        if people.len() < 2 {
            continue;
        }
        assert_ne!(*kind, Kind::NhsNumber, "an NHS number is shared");
        // Shared only as a planted network's vehicle or phone, by its members.
        let network = world
            .networks()
            .iter()
            .find(|n| {
                n.shared_phone().as_ref() == Some(value)
                    || n.shared_vehicle().as_ref() == Some(value)
            })
            .unwrap_or_else(|| panic!("{kind} shared by {people:?} outside any network"));
        let members: BTreeSet<String> = network
            .suspects()
            .iter()
            .chain(network.victims())
            .map(|&p| world.person(p).expect("person").id())
            .collect();
        assert!(
            people.is_subset(&members),
            "{kind} of {} used by {people:?}",
            network.id()
        );
    }
}

#[test]
fn network_victims_have_a_story_in_child_datasets() {
    let cat = catalog();
    let world = World::new(4, Population::default()).expect("world");
    let victims: HashSet<String> = world
        .networks()
        .iter()
        .flat_map(|n| {
            n.victims()
                .iter()
                .map(|&v| world.person(v).expect("victim").id())
        })
        .collect();
    let mut cse_rows = 0;
    let mut victim_rows = 0;
    // Datasets about a child (no role column), not about places.
    for ds in cat
        .latest()
        .filter(|ds| ds.field_for("person_role").is_none() && ds.is_about_people())
    {
        let out = generate_in(&world, ds, &SynthOptions::new(4, 2000));
        let flag = ds.field_for("cse_flag").map(|f| f.name.clone());
        let factors = ds.field_for("cin_factors").map(|f| f.name.clone());
        for (t, r) in out.rows().iter().zip(out.records()) {
            if !victims.contains(t["person"].as_str().unwrap_or_default()) {
                continue;
            }
            assert!(t["network"].is_string());
            victim_rows += 1;
            let flagged = flag
                .as_ref()
                .is_some_and(|f| matches!(r[f].as_str(), "Y" | "true"));
            let factor = factors
                .as_ref()
                .is_some_and(|f| r[f].split(';').any(|c| c == "11A"));
            if flagged || factor {
                cse_rows += 1;
            }
        }
    }
    assert!(victim_rows >= 100, "{victim_rows}");
    assert!(cse_rows * 3 >= victim_rows, "{cse_rows} of {victim_rows}");
}

#[test]
fn a_new_schema_gets_valid_rows_with_no_code_change() {
    // Given a dataset the generator has never seen
    let schema = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "$id": "urn:agencylink:schema:voluntary.outreach_contact:v1",
      "x-agency-type": "voluntary",
      "type": "object", "additionalProperties": false,
      "required": ["contact_id", "contact_date", "surname", "forename", "worker_team"],
      "properties": {
        "contact_id": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
        "contact_date": {"type": "string", "format": "date", "x-concept": "event_date"},
        "follow_up": {"type": "string", "format": "date"},
        "surname": {"type": "string", "x-identifier": "person_name", "x-match": "family"},
        "forename": {"type": "string", "x-identifier": "person_name", "x-match": "given"},
        "birth_date": {"type": "string", "x-identifier": "date", "x-match": "dob", "x-generalise": "age"},
        "email": {"type": "string", "x-identifier": "email"},
        "home_postcode": {"type": "string", "x-identifier": "postcode", "x-generalise": "sector"},
        "worker_team": {"type": "string", "pattern": "^T[0-9]{2}-[A-Z]{3}$"},
        "risk_score": {"type": "integer", "minimum": 1, "maximum": 5},
        "hours": {"type": "number", "minimum": 0.5, "maximum": 8},
        "consented": {"type": "boolean"},
        "topics": {"type": "array", "items": {"type": "string", "enum": ["online", "sexual exploitation", "missing", "drugs"]}, "minItems": 1},
        "note": {"type": "string", "maxLength": 20}
      }
    }"#;
    let ds =
        Dataset::parse("voluntary.outreach_contact.v1.schema.json", schema).expect("valid schema");
    let out = generate(&ds, &SynthOptions::new(1, 1000));
    let (summary, _, messages) = validate(&ds, &out.csv);
    assert_eq!(summary.invalid_rows, 0, "{messages:#?}");
    assert!(out.rows().iter().all(|t| t["role"] == "child"));
    let records = out.records();
    assert!(records.iter().all(|r| r["worker_team"].starts_with('T')));
    assert!(records.iter().any(|r| !r["email"].is_empty()));
    let opts = SynthOptions {
        invalid_rate: 0.1,
        ..SynthOptions::new(1, 1000)
    };
    let out = generate(&ds, &opts);
    assert_eq!(
        validate(&ds, &out.csv).0.invalid_rows,
        out.stats.invalid_rows
    );
}

#[test]
fn a_new_role_schema_gets_victims_and_offenders() {
    // Given a dataset with its own role wording, a case reference that ties
    // people together, and a required phone
    let schema = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "x-agency-type": "council",
      "type": "object", "additionalProperties": false,
      "required": ["entry", "case_ref", "meeting_date", "role", "family", "given", "mobile"],
      "properties": {
        "entry": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
        "case_ref": {"type": "string", "x-identifier": "local_ref", "x-link": "crime"},
        "meeting_date": {"type": "string", "format": "date", "x-concept": "event_date"},
        "role": {"type": "string", "enum": ["young_person", "perpetrator", "professional"],
                 "x-codes": {"young_person": "Young person (victim)", "perpetrator": "Alleged perpetrator", "professional": "Professional"},
                 "x-concept": "person_role"},
        "family": {"type": "string", "x-identifier": "person_name", "x-match": "family"},
        "given": {"type": "string", "x-identifier": "person_name", "x-match": "given"},
        "dob": {"type": "string", "x-identifier": "date", "x-match": "dob"},
        "mobile": {"type": "string", "x-identifier": "phone", "x-link": "phone"},
        "risk": {"type": "string", "enum": ["low", "medium", "high"]}
      }
    }"#;
    let ds =
        Dataset::parse("council.exploitation_panel.v1.schema.json", schema).expect("valid schema");
    let out = generate(&ds, &SynthOptions::new(2, 1500));
    // Then the rows are valid
    let (summary, _, messages) = validate(&ds, &out.csv);
    assert_eq!(summary.invalid_rows, 0, "{messages:#?}");
    // and the planted networks show up with their offenders under this wording
    let roles: BTreeSet<&str> = out
        .rows()
        .iter()
        .filter_map(|t| t["role"].as_str())
        .collect();
    assert!(
        roles.contains("young_person") && roles.contains("perpetrator"),
        "{roles:?}"
    );
    let networks = out.summary()["networks"].as_array().expect("networks");
    assert!(!networks.is_empty());
    for n in networks {
        assert!(
            n["suspects"].as_array().expect("suspects").len() >= 2,
            "{n}"
        );
    }
    // and everyone has a phone, since the column is required
    assert!(out.records().iter().all(|r| !r["mobile"].is_empty()));
}

#[test]
fn bad_options_are_refused() {
    let cat = catalog();
    let ds = cat.latest().next().expect("a dataset");
    let mut sink = Vec::new();
    let bad_rate = SynthOptions {
        invalid_rate: 1.5,
        ..SynthOptions::new(1, 10)
    };
    assert!(write_csv(ds, &bad_rate, &mut sink, None).is_err());
    let empty_world = SynthOptions {
        population: Some(Population {
            children: 0,
            adults: 5,
        }),
        ..SynthOptions::new(1, 10)
    };
    assert!(write_csv(ds, &empty_world, &mut sink, None).is_err());
    // A tiny world still works (no networks, but valid rows).
    let tiny = SynthOptions {
        population: Some(Population {
            children: 5,
            adults: 2,
        }),
        ..SynthOptions::new(1, 50)
    };
    let out = generate(ds, &tiny);
    assert_eq!(validate(ds, &out.csv).0.invalid_rows, 0);
}

#[test]
fn investigations_cover_the_crime_extract_and_leave_planted_networks_uncovered() {
    let cat = catalog();
    let cases = cat
        .latest()
        .find(|d| !d.is_about_people())
        .expect("an investigation dataset");
    let crimes = cat
        .latest()
        .find(|d| d.field_for("offence").is_some() && d.agency_type.as_deref() == Some("police"))
        .expect("a crime dataset");
    let opts = SynthOptions::new(9, 3000);
    let inv = generate(cases, &opts);
    let cr = generate(crimes, &opts);
    // Every crime an investigation covers is in the crime extract of the
    // same seed and rows, under the same reference and network.
    let mut network_of: HashMap<String, Option<String>> = HashMap::new();
    for (row, t) in cr.records().iter().zip(cr.rows()) {
        network_of.insert(
            row["crime_ref"].clone(),
            t["network"].as_str().map(str::to_owned),
        );
    }
    let mut open_networks = BTreeSet::new();
    for (row, t) in inv.records().iter().zip(inv.rows()) {
        let crime = &row["crime_ref"];
        assert_eq!(t["crime"].as_str(), Some(crime.as_str()));
        let net = network_of.get(crime).expect("a crime of the extract");
        assert_eq!(t["network"].as_str(), net.as_deref());
        if row["status"] == "open"
            && let Some(n) = net
        {
            open_networks.insert(n.clone());
        }
    }
    // The summary splits the planted networks with crimes in two: those an
    // open investigation covers, and the rest (about half, by design).
    let ids = |k: &str| -> BTreeSet<String> {
        inv.summary()[k]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_str().expect("id").to_owned())
            .collect()
    };
    let (covered, uncovered) = (ids("networks_covered"), ids("networks_uncovered"));
    let planted: BTreeSet<String> = network_of.values().flatten().cloned().collect();
    assert_eq!(covered, open_networks);
    assert!(covered.is_disjoint(&uncovered));
    assert_eq!(
        covered.union(&uncovered).cloned().collect::<BTreeSet<_>>(),
        planted
    );
    assert!(uncovered.len() * 3 >= planted.len() && covered.len() * 3 >= planted.len());
    // and the highest-threat investigations include reviews in time, late
    // and none.
    let reviews: BTreeSet<&str> = inv
        .rows()
        .iter()
        .filter(|t| t["threat_category"] == "1")
        .map(|t| t["peer_review_status"].as_str().expect("status"))
        .collect();
    assert!(
        reviews.contains("completed") && reviews.len() >= 2,
        "{reviews:?}"
    );
}
