//! Charts for analysts' tools over the real binary: a planted network
//! exported as GraphML (parsed with a real XML parser, exact node and edge
//! counts) and as an i2 entity-link CSV whose header is exactly the columns
//! its import specification names; both under the access-log rule.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::util::{Run, Scratch, ingest_in, run_in};

const ANALYST: &str = "a.analyst";
const PURPOSE: &str = "Op Kestrel: network chart";
const GRAPHML: &str = "http://graphml.graphdrawing.org/xmlns";

/// Crime c1: Ashworth (victim), Brennan (suspect, vehicle AB12CDE), Carter
/// (suspect, phone …001). Crime c2: Dunn (suspect, the same vehicle and
/// phone), Evans (suspect, phone …002, his alone). Crime c9: Frost
/// (suspect, phone …003), tied to nobody.
const CRIMES: &str = "\
record_ref,crime_ref,event_date,borough,offence_code,cse_flag,person_role,family_name,given_name,dob,vrm,phone
R1,CRIME-1,2025-03-01,Bolton,71,true,victim,Ashworth,Amy,2010-01-01,,
R2,CRIME-1,2025-03-01,Bolton,71,true,suspect,Brennan,Bob,1990-02-02,AB12CDE,
R3,CRIME-1,2025-03-01,Bolton,71,true,suspect,Carter,Carl,1991-03-03,,07700900001
R4,CRIME-2,2025-04-01,Bury,71,true,suspect,Dunn,Dave,1992-04-04,AB12CDE,07700900001
R5,CRIME-2,2025-04-01,Bury,71,true,suspect,Evans,Eric,1993-05-05,,07700900002
R6,CRIME-9,2025-01-01,Wigan,88A,true,suspect,Frost,Fred,1980-06-06,,07700900003
";

/// Report i1 about Ashworth (victim) and Evans (suspect).
const INTEL: &str = "\
record_ref,intel_ref,event_date,borough,subject_role,family_name,given_name,dob,cse_flag
S1,INTEL-1,2025-05-01,Bolton,victim,Ashworth,Amy,2010-01-01,true
S2,INTEL-1,2025-05-01,Bolton,suspect,Evans,Eric,1993-05-05,true
";

/// The planted network around Ashworth: 5 people and 6 linking values
/// (c1, c2, i1, the vehicle, phones …001 and …002) = 11 nodes; edges
/// Ashworth–c1, Ashworth–i1, Brennan–c1, Brennan–vehicle, Carter–c1,
/// Carter–…001, Dunn–c2, Dunn–vehicle, Dunn–…001, Evans–c2, Evans–…002,
/// Evans–i1 = 12. The whole store adds Frost, c9 and …003: 14 and 14.
const NETWORK: (usize, usize) = (11, 12);
const EVERYONE: (usize, usize) = (14, 14);

fn planted(name: &str) -> Scratch {
    let s = Scratch::new(name);
    s.write("crimes.csv", CRIMES.as_bytes());
    s.write("intel.csv", INTEL.as_bytes());
    ingest_in(&s.dir, "d", "gmp-police", "police.cse_crime", "crimes.csv").expect_code(0);
    ingest_in(
        &s.dir,
        "d",
        "gmp-police",
        "police.cse_intelligence",
        "intel.csv",
    )
    .expect_code(0);
    s
}

fn read(s: &Scratch, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--data-dir",
        "d",
        "--analyst",
        ANALYST,
        "--purpose",
        PURPOSE,
    ]);
    run_in(&s.dir, &all)
}

fn access_log(s: &Scratch) -> Vec<Value> {
    run_in(&s.dir, &["access-log", "--data-dir", "d"])
        .expect_code(0)
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("access log line is JSON"))
        .collect()
}

/// The victim's person id, read the way an analyst would find it.
fn victim(s: &Scratch) -> String {
    let rows = read(
        s,
        &[
            "export",
            "--format",
            "ndjson",
            "--dataset",
            "police.cse_crime",
        ],
    )
    .expect_code(0)
    .stdout;
    rows.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
        .find(|r| r["person_role"] == "victim")
        .and_then(|r| r["person_id"].as_str().map(str::to_owned))
        .expect("the victim's record")
}

/// Node types, edge count and the edges' endpoints of a GraphML document,
/// checked to be well-formed GraphML whose edges join declared nodes.
fn parse_graphml(xml: &str) -> (BTreeMap<String, usize>, usize) {
    let doc = roxmltree::Document::parse(xml).expect("GraphML is well-formed XML");
    let root = doc.root_element();
    assert!(
        root.has_tag_name((GRAPHML, "graphml")),
        "{:?}",
        root.tag_name()
    );
    let type_key = root
        .children()
        .find(|k| {
            k.has_tag_name((GRAPHML, "key"))
                && k.attribute("for") == Some("node")
                && k.attribute("attr.name") == Some("type")
        })
        .and_then(|k| k.attribute("id"))
        .expect("a node type key");
    let nodes: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name((GRAPHML, "node")))
        .collect();
    let ids: std::collections::HashSet<&str> =
        nodes.iter().filter_map(|n| n.attribute("id")).collect();
    assert_eq!(ids.len(), nodes.len(), "node ids are unique");
    let mut types = BTreeMap::new();
    for n in &nodes {
        let t = n
            .children()
            .find(|d| d.attribute("key") == Some(type_key))
            .and_then(|d| d.text())
            .expect("every node is typed");
        *types.entry(t.to_owned()).or_insert(0) += 1;
    }
    let edges: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name((GRAPHML, "edge")))
        .collect();
    for e in &edges {
        for end in ["source", "target"] {
            assert!(
                ids.contains(e.attribute(end).unwrap_or("")),
                "edge {end} is a node"
            );
        }
    }
    (types, edges.len())
}

fn csv_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    csv::Reader::from_path(path)
        .expect("open CSV")
        .into_records()
        .map(|r| r.expect("CSV row").iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn a_planted_network_charts_as_graphml_and_i2_with_exact_counts() {
    let s = planted("charts");
    let person = victim(&s);

    // One network as GraphML on stdout.
    let before = access_log(&s).len();
    let run = read(&s, &["query", "network", &person, "--format", "graphml"]).expect_code(0);
    let (types, edges) = parse_graphml(&run.stdout);
    assert_eq!((types.values().sum::<usize>(), edges), NETWORK, "{types:?}");
    assert_eq!(
        types,
        BTreeMap::from([
            ("crime".to_owned(), 2),
            ("intel".to_owned(), 1),
            ("person".to_owned(), 5),
            ("phone".to_owned(), 2),
            ("vehicle".to_owned(), 1),
        ])
    );
    for raw in [
        "Ashworth",
        "Amy",
        "AB12CDE",
        "07700900001",
        "CRIME-1",
        "INTEL-1",
        "2010-01-01",
    ] {
        assert!(
            !run.stdout.contains(raw),
            "raw identifier {raw} in the GraphML"
        );
    }
    let log = access_log(&s);
    assert_eq!(log.len(), before + 1, "one read, one entry");
    let last = log.last().expect("entry");
    assert_eq!(
        (
            &last["action"],
            &last["target"],
            &last["rows_returned"],
            &last["purpose"]
        ),
        (
            &Value::from("query_network"),
            &Value::from(person.as_str()),
            &Value::from(5),
            &Value::from(PURPOSE)
        )
    );

    // The whole store as GraphML into a file.
    read(
        &s,
        &["export", "--format", "graphml", "--out", "all.graphml"],
    )
    .expect_code(0);
    let xml = std::fs::read_to_string(s.path("all.graphml")).expect("graphml file");
    let (types, edges) = parse_graphml(&xml);
    assert_eq!((types.values().sum::<usize>(), edges), EVERYONE);
    let mode = std::fs::metadata(s.path("all.graphml"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let last = access_log(&s).pop().expect("entry");
    assert_eq!(
        (&last["action"], &last["target"]),
        (&Value::from("export"), &Value::from("all"))
    );
    assert_eq!(last["rows_returned"], 8, "every record read");

    // The network as i2: the CSV's header is exactly the spec's columns.
    read(
        &s,
        &[
            "query", "network", &person, "--format", "i2", "--out", "net.csv",
        ],
    )
    .expect_code(0);
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(s.path("net.import-spec.json")).expect("spec beside the CSV"),
    )
    .expect("spec is JSON");
    let named: Vec<&str> = spec["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("column name"))
        .collect();
    let header: Vec<String> = csv::Reader::from_path(s.path("net.csv"))
        .expect("CSV")
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, named);
    let col = |n: &str| header.iter().position(|h| h == n).expect(n);
    let rows = csv_rows(&s.path("net.csv"));
    assert_eq!(rows.len(), NETWORK.1, "one row per link");
    let entities: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r[col("entity_id")].as_str()).collect();
    let people: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r[col("person_id")].as_str()).collect();
    assert_eq!(people.len() + entities.len(), NETWORK.0);
    assert!(rows.iter().all(|r| r[col("person_type")] == "Person"));
    let types: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r[col("entity_type")].as_str())
        .collect();
    assert_eq!(
        types,
        ["Crime", "Intelligence report", "Phone", "Vehicle"]
            .into_iter()
            .collect()
    );
    // Every link is dated with an event date the upload carried.
    assert!(
        rows.iter()
            .all(|r| r[col("link_date")].starts_with("2025-"))
    );
    for f in ["net.csv", "net.import-spec.json"] {
        let mode = std::fs::metadata(s.path(f))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // The whole store as i2 has the same columns and one row per link.
    read(&s, &["export", "--format", "i2", "--out", "all.csv"]).expect_code(0);
    assert_eq!(csv_rows(&s.path("all.csv")).len(), EVERYONE.1);
    assert!(s.path("all.import-spec.json").exists());

    // i2 needs somewhere to put its two files, and says so before reading.
    let before = access_log(&s).len();
    let run = read(&s, &["export", "--format", "i2"]).expect_code(2);
    assert!(run.stderr.contains("--out"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert_eq!(access_log(&s).len(), before, "nothing read, nothing logged");
}

#[test]
fn a_chart_that_cannot_be_logged_is_never_written() {
    let s = planted("charts-nolog");
    let person = victim(&s);
    let conn = rusqlite::Connection::open(s.path("d/agencylink.db")).expect("open");
    conn.execute_batch(
        "CREATE TRIGGER audit_offline BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'audit store offline'); END;",
    )
    .expect("trigger");
    drop(conn);
    for args in [
        vec!["query", "network", person.as_str(), "--format", "graphml"],
        vec![
            "query",
            "network",
            person.as_str(),
            "--format",
            "i2",
            "--out",
            "net.csv",
        ],
        vec!["export", "--format", "graphml"],
        vec!["export", "--format", "i2", "--out", "all.csv"],
    ] {
        let run = read(&s, &args).expect_code(2);
        assert!(
            run.stdout.is_empty(),
            "{args:?} returned data: {}",
            run.stdout
        );
        assert!(run.stderr.contains("access log"), "{}", run.stderr);
    }
    for f in [
        "net.csv",
        "net.import-spec.json",
        "all.csv",
        "all.import-spec.json",
    ] {
        assert!(!s.path(f).exists(), "{f} appeared");
    }
    let leftovers: Vec<String> = std::fs::read_dir(&s.dir)
        .into_iter()
        .chain(std::fs::read_dir(s.path("d")))
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "staged charts removed: {leftovers:?}");
}
