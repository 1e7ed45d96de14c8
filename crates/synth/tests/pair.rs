//! The two-agency linkage test set.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use agencylink_core::schema::Catalog;
use agencylink_synth::linkage::{PairOptions, PairStats, write_pair};
use agencylink_synth::{ErrorModel, SynthError};
use serde_json::Value;

struct Pair {
    files: [Vec<u8>; 4],
    stats: PairStats,
}

fn pair(opts: &PairOptions) -> Result<Pair, SynthError> {
    let cat = Catalog::embedded().expect("schemas");
    let ds = cat.get("council.missing_episode").expect("dataset");
    let [mut a, mut b, mut ta, mut tb] = [(); 4].map(|_| Vec::new());
    let stats = write_pair(ds, opts, &mut a, &mut b, &mut ta, &mut tb)?;
    Ok(Pair {
        files: [a, b, ta, tb],
        stats,
    })
}

fn rows(csv: &[u8]) -> Vec<BTreeMap<String, String>> {
    support::csv_rows(csv)
}

fn truth(t: &[u8]) -> Vec<Value> {
    let lines: Vec<Value> = String::from_utf8(t.to_vec())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(lines.last().expect("summary")["summary"].is_object());
    lines[..lines.len() - 1].to_vec()
}

#[test]
fn shares_overlap_and_ids_are_as_configured() {
    let opts = PairOptions::new(1, 2000);
    let p = pair(&opts).expect("pair");
    let [a, b, ta, tb] = &p.files;
    let (ra, rb, ta, tb) = (rows(a), rows(b), truth(ta), truth(tb));
    assert_eq!(
        (p.stats.in_both, p.stats.only_a, p.stats.only_b),
        (1200, 400, 400)
    );
    assert_eq!((ra.len(), rb.len()), (1600, 1600));
    assert_eq!((ta.len(), tb.len()), (1600, 1600));
    let people = |t: &[Value]| -> Vec<String> {
        t.iter()
            .map(|l| l["person"].as_str().expect("person").to_owned())
            .collect()
    };
    let (pa, pb) = (people(&ta), people(&tb));
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (pa.iter().collect(), pb.iter().collect());
    assert_eq!(sa.len(), pa.len(), "each person at most once in A");
    assert_eq!(sb.len(), pb.len(), "each person at most once in B");
    assert_eq!(sa.intersection(&sb).count(), 1200);
    assert_eq!(sa.union(&sb).count(), 2000);
    // Only names and dates of birth can link: no shared ids.
    for col in ["record_ref", "child_id"] {
        let ids_a: BTreeSet<&str> = ra.iter().map(|r| r[col].as_str()).collect();
        let ids_b: BTreeSet<&str> = rb.iter().map(|r| r[col].as_str()).collect();
        assert_eq!(ids_a.len(), 1600, "{col} unique in A");
        assert_eq!(ids_b.len(), 1600, "{col} unique in B");
        assert!(ids_a.is_disjoint(&ids_b), "{col} shared between files");
    }
    // A is clean, B has the default errors; nobody is invalid.
    assert!(
        ta.iter()
            .all(|l| l["errors"].as_array().is_some_and(Vec::is_empty))
    );
    assert!(ta.iter().chain(&tb).all(|l| l["invalid"] == false));
    let with = tb
        .iter()
        .filter(|l| !l["errors"].as_array().expect("errors").is_empty())
        .count();
    assert_eq!(with as u64, p.stats.b.error_rows);
    let share = with as f64 / 1600.0;
    let expected = ErrorModel::default().expected_row_rate();
    assert!((share - expected).abs() < 0.04, "{share} vs {expected}");
    // The same person is the same person: names agree unless B has errors.
    let by_person_a: BTreeMap<&str, &BTreeMap<String, String>> =
        pa.iter().map(String::as_str).zip(&ra).collect();
    let mut compared = 0;
    for ((person, row), t) in pb.iter().zip(&rb).zip(&tb) {
        if let Some(row_a) = by_person_a.get(person.as_str())
            && t["errors"].as_array().is_some_and(Vec::is_empty)
        {
            compared += 1;
            for f in ["family_name", "given_name"] {
                assert_eq!(
                    row[f].to_lowercase(),
                    row_a[f].to_lowercase(),
                    "{person} {f}"
                );
            }
        }
    }
    assert!(compared > 800, "{compared}");
}

#[test]
fn the_pair_is_fixed_by_the_seed_and_configurable() {
    let opts = PairOptions::new(7, 300);
    assert_eq!(pair(&opts).expect("a").files, pair(&opts).expect("b").files);
    assert_ne!(
        pair(&opts).expect("a").files[0],
        pair(&PairOptions::new(8, 300)).expect("c").files[0]
    );
    let custom = PairOptions {
        share_a: 0.5,
        share_b: 0.9,
        overlap: 0.4,
        errors: ErrorModel::none(),
        ..PairOptions::new(7, 1000)
    };
    let p = pair(&custom).expect("custom");
    assert_eq!(
        (p.stats.in_both, p.stats.only_a, p.stats.only_b),
        (400, 100, 500)
    );
    assert_eq!(
        (p.stats.a.rows, p.stats.b.rows, p.stats.b.error_rows),
        (500, 900, 0)
    );
    for bad in [
        PairOptions {
            overlap: 0.9,
            ..PairOptions::new(1, 100)
        },
        PairOptions {
            overlap: 0.1,
            ..PairOptions::new(1, 100)
        },
        PairOptions {
            share_a: 1.2,
            ..PairOptions::new(1, 100)
        },
    ] {
        assert!(pair(&bad).is_err(), "{bad:?}");
    }
    let cat = Catalog::embedded().expect("schemas");
    let crime = cat.get("police.cse_crime").expect("dataset");
    let r = write_pair(
        crime,
        &PairOptions::new(1, 100),
        &mut Vec::new(),
        &mut Vec::new(),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    assert!(r.is_err(), "a dataset with roles has no pair");
}
