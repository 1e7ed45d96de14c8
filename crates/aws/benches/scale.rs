//! What one merged record costs in DynamoDB, measured against moto server
//! (not a timed test; `docs/scale.md` has the numbers and what they mean).
//!
//! Ingests ROWS synthetic rows of each of three datasets (one population,
//! so people recur across agencies) through the AWS pipeline, then scans
//! the table and reports, by item kind (the partition key's prefix), how
//! many items there are and their sizes as DynamoDB counts them, and so the
//! write request units a merged record took (each put of an item of S bytes
//! is ceil(S / 1 KiB) units). Then it builds the problem profile (both
//! editions) as the profile function does and reports its time and this
//! process's peak memory.
//!
//!     AWS_ENDPOINT_URL=http://127.0.0.1:5111 … \
//!         cargo bench -p agencylink-aws --features test-support --bench scale -- [ROWS]
//!
//! Moto answers one request at a time from Python, so the rows/s here
//! measure moto, not DynamoDB; the item counts and sizes are the design's.

use std::collections::BTreeMap;
use std::time::Instant;

use agencylink_aws::testing::{moto, rt};
use agencylink_aws::{AgencyPolicy, pipeline};
use agencylink_core::ports::{KeyProvider, ObjectStoreExt, PutMode};
use agencylink_core::profile::{Edition, Settings};
use agencylink_core::pseudo::Pseudonymiser;
use agencylink_core::schema::Catalog;
use agencylink_http::profiles;
use agencylink_synth::{SynthOptions, write_csv};
use aws_sdk_dynamodb::types::AttributeValue;

const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// An attribute value's size as DynamoDB bills it (strings and binary by
/// length, numbers about one byte per two digits plus one, containers 3
/// bytes plus their elements).
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 0,
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Default)]
struct Kind {
    items: u64,
    bytes: u64,
    units: u64,
}

fn main() {
    let rows: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let Some(m) = moto() else {
        eprintln!("set AWS_ENDPOINT_URL to a moto server (see tests/run-all.sh)");
        std::process::exit(2);
    };
    let backend = m.backend(m.settings("scale", AgencyPolicy::default()));
    m.put_key_secret(&backend, "k1", KEY_B64);
    let catalog = Catalog::embedded().expect("catalog");
    let pseudo = Pseudonymiser::new(backend.keys.as_ref().expect("keys").key().expect("key"));
    let tmp = std::env::temp_dir();

    let started = Instant::now();
    let mut accepted = 0u64;
    let mut rows_in = 0u64;
    for (agency, dataset) in [
        ("gmp-police", "police.cse_crime"),
        ("gmp-police", "police.cse_intelligence"),
        ("rochdale-council", "council.missing_episode"),
    ] {
        let ds = catalog.get(dataset).expect("dataset");
        let mut bytes = Vec::new();
        write_csv(ds, &SynthOptions::new(7, rows), &mut bytes, None).expect("synth");
        let key = format!("landing/{agency}/{dataset}/extract.csv");
        backend
            .objects
            .put(&key, &bytes, PutMode::Overwrite)
            .expect("land");
        let s = pipeline::ingest_landing(
            &backend,
            &pseudo,
            ds,
            agency,
            &key,
            "2026-11-20T10:00:00Z",
            &tmp,
        )
        .expect("ingest");
        rows_in += s.rows_in;
        accepted += s.records_inserted;
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let ingest_peak = peak_rss_mib();

    // Every item, by the kind its partition key names.
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    let mut start = None;
    loop {
        let out = rt()
            .block_on(
                backend
                    .dynamodb()
                    .scan()
                    .table_name(&backend.settings.table)
                    .set_exclusive_start_key(start.take())
                    .send(),
            )
            .expect("scan");
        for item in out.items() {
            let pk = match item.get("pk") {
                Some(AttributeValue::S(s)) => s.as_str(),
                _ => "",
            };
            let kind = pk.split('#').next().unwrap_or("").to_owned();
            let size: usize = item.iter().map(|(k, v)| k.len() + value_size(v)).sum();
            let k = kinds.entry(kind).or_default();
            k.items += 1;
            k.bytes += size as u64;
            k.units += (size as u64).div_ceil(1024).max(1);
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    let (items, units): (u64, u64) = kinds
        .values()
        .fold((0, 0), |(i, u), k| (i + k.items, u + k.units));

    let t = Instant::now();
    let stored = profiles::build_and_store(
        profiles::Stores {
            objects: &backend.objects,
            records: &backend.records,
            lineage: &backend.lineage,
            archive_lineage: &|e| backend.archive_lineage(e),
        },
        &catalog,
        &Settings {
            generated_at: "2026-12-01T04:00:00Z".into(),
            ..Settings::default()
        },
        &[Edition::Analyst, Edition::Partner],
        "schedule",
        None,
        "2026-12-01T04:00:00Z",
    )
    .expect("profile");
    let profile_s = t.elapsed().as_secs_f64();

    let by_kind: BTreeMap<&str, serde_json::Value> = kinds
        .iter()
        .map(|(name, k)| {
            (
                name.as_str(),
                serde_json::json!({
                    "items": k.items,
                    "avg_bytes": k.bytes / k.items.max(1),
                    "write_units": k.units,
                    "per_record": (k.items as f64 / accepted.max(1) as f64 * 100.0).round() / 100.0,
                }),
            )
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "rows_in": rows_in,
            "records": accepted,
            "ingest_seconds_on_moto": (ingest_s * 10.0).round() / 10.0,
            "rows_per_second_on_moto": (rows_in as f64 / ingest_s).round(),
            "items": items,
            "items_per_record": (items as f64 / accepted.max(1) as f64 * 100.0).round() / 100.0,
            "write_units_per_record": (units as f64 / accepted.max(1) as f64 * 100.0).round() / 100.0,
            "by_kind": by_kind,
            "ingest_peak_rss_mib": ingest_peak.round(),
            "profile_seconds_on_moto": (profile_s * 10.0).round() / 10.0,
            "profile_editions": stored.len(),
            "peak_rss_mib_after_profile": peak_rss_mib().round(),
        }))
        .expect("json")
    );
}
