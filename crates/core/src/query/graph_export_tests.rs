//! Graph exports on a planted network, with exact node and edge counts.

use super::*;
use crate::memory::MemoryRecordStore;
use crate::ports::{RecordBody, WriteBatch};

const CRIME: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["ref", "date"],
  "properties": {
    "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "crime": {"type": "string", "x-identifier": "local_ref", "x-link": "crime"},
    "vrm": {"type": "string", "x-identifier": "vrm", "x-link": "vehicle"},
    "phone": {"type": "string", "x-identifier": "phone", "x-link": "phone"},
    "role": {"type": "string", "enum": ["victim", "suspect", "witness"], "x-concept": "person_role"}
  }
}"#;

const INTEL: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["ref", "date"],
  "properties": {
    "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "intel": {"type": "string", "x-identifier": "local_ref", "x-link": "intel"},
    "role": {"type": "string", "enum": ["victim", "suspect", "associate"], "x-concept": "person_role"}
  }
}"#;

// A directory schema whose role field lists no codes: its values could be
// free text, so they must never reach a chart.
const LOOSE: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["ref", "date"],
  "properties": {
    "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "date": {"type": "string", "format": "date", "x-concept": "event_date"},
    "crime": {"type": "string", "x-identifier": "local_ref", "x-link": "crime"},
    "role": {"type": "string", "x-concept": "person_role"}
  }
}"#;

const HEALTH: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["ref", "date"],
  "properties": {
    "ref": {"type": "string", "x-identifier": "local_ref", "x-concept": "record_ref"},
    "date": {"type": "string", "format": "date", "x-concept": "event_date"}
  }
}"#;

fn catalog() -> Catalog {
    Catalog::from_sources([
        ("test.crime.v1.schema.json", CRIME),
        ("test.intel.v1.schema.json", INTEL),
        ("test.loose.v1.schema.json", LOOSE),
        ("test.health.v1.schema.json", HEALTH),
    ])
    .expect("test schemas are valid")
}

const LINK_FIELDS: [(&str, &str); 4] = [
    ("crime", "crime"),
    ("vrm", "vehicle"),
    ("phone", "phone"),
    ("intel", "intel"),
];

fn rec(id: &str, person: &str, dataset: &str, date: &str, fields: Value) -> StoredRecord {
    let links: Vec<Link> = LINK_FIELDS
        .iter()
        .filter_map(|(f, kind)| {
            fields.get(*f).and_then(Value::as_str).map(|t| Link {
                kind: (*kind).to_owned(),
                token: t.to_owned(),
            })
        })
        .collect();
    let agency = match dataset {
        "test.health" => "test-health",
        _ => "test-police",
    };
    StoredRecord {
        record_id: id.to_owned(),
        person_id: person.to_owned(),
        agency: agency.to_owned(),
        dataset: dataset.to_owned(),
        event_date: date.to_owned(),
        upload_id: "u_test".to_owned(),
        row: 1,
        match_keys: Vec::new(),
        links: links.clone(),
        body: RecordBody::from_value(&json!({
            "record_id": id, "agency": agency, "dataset": dataset, "schema_version": 1,
            "event_date": date, "fields": fields, "derived": {}, "match_keys": [], "links": links,
            "provenance": {"upload_id": "u_test", "row": 1, "key_id": "k1", "scheme": "agencylink-pseudo-v1"},
        }))
        .expect("an object"),
        signature: None,
    }
}

/// A crime record: `extra` adds `vrm` / `phone` tokens.
fn crime(
    id: &str,
    person: &str,
    date: &str,
    role: &str,
    crime: &str,
    extra: Value,
) -> StoredRecord {
    let mut f =
        json!({"ref": format!("local_ref:k1:{id}"), "date": date, "crime": crime, "role": role});
    if let (Some(f), Some(extra)) = (f.as_object_mut(), extra.as_object()) {
        f.extend(extra.clone());
    }
    rec(id, person, "test.crime", date, f)
}

fn intel(id: &str, person: &str, date: &str, role: &str, report: &str) -> StoredRecord {
    rec(
        id,
        person,
        "test.intel",
        date,
        json!({"ref": format!("local_ref:k1:{id}"), "date": date, "intel": report, "role": role}),
    )
}

const C1: &str = "local_ref:k1:c1";
const C2: &str = "local_ref:k1:c2";
const C9: &str = "local_ref:k1:c9";
const I1: &str = "local_ref:k1:i1";
const V1: &str = "vrm:k1:v1";
const X: &str = "phone:k1:x";
const Y: &str = "phone:k1:y";
const Z: &str = "phone:k1:z";

/// The planted network, around victim p_vone:
///
/// - crime c1: p_vone (victim), p_sone (suspect, vehicle v1), p_stwo
///   (suspect, phone x; recorded twice, 2024-01-01 and 2024-01-05)
/// - intelligence report i1: p_vone (victim), p_sfour (associate)
/// - crime c2: p_sthree (suspect, phone x, vehicle v1), p_sfour (suspect,
///   phone y, which nobody else has)
///
/// Outside it: p_hone (a health record, no linking value) and p_lone
/// (suspect in crime c9 with phone z, shared with nobody).
///
/// The network: 5 people + 6 values (c1, c2, i1, v1, x, y) = 11 nodes;
/// edges vone–c1, vone–i1, sone–c1, sone–v1, stwo–c1, stwo–x, sthree–c2,
/// sthree–x, sthree–v1, sfour–c2, sfour–i1, sfour–y = 12.
fn planted() -> MemoryRecordStore {
    let store = MemoryRecordStore::default();
    let records = vec![
        crime("r1", "p_vone", "2024-01-01", "victim", C1, json!({})),
        intel("r2", "p_vone", "2024-02-10", "victim", I1),
        crime(
            "r3",
            "p_sone",
            "2024-01-01",
            "suspect",
            C1,
            json!({"vrm": V1}),
        ),
        crime(
            "r4",
            "p_stwo",
            "2024-01-01",
            "suspect",
            C1,
            json!({"phone": X}),
        ),
        crime("r5", "p_stwo", "2024-01-05", "suspect", C1, json!({})),
        crime(
            "r6",
            "p_sthree",
            "2024-02-01",
            "suspect",
            C2,
            json!({"phone": X, "vrm": V1}),
        ),
        crime(
            "r7",
            "p_sfour",
            "2024-02-01",
            "suspect",
            C2,
            json!({"phone": Y}),
        ),
        intel("r8", "p_sfour", "2024-02-10", "associate", I1),
        rec(
            "r9",
            "p_hone",
            "test.health",
            "2024-03-01",
            json!({"ref": "local_ref:k1:r9", "date": "2024-03-01"}),
        ),
        crime(
            "r10",
            "p_lone",
            "2023-06-01",
            "suspect",
            C9,
            json!({"phone": Z}),
        ),
    ];
    store
        .apply(&WriteBatch {
            records,
            ..WriteBatch::default()
        })
        .expect("apply");
    store
}

fn node<'g>(g: &'g Graph, id: &str) -> &'g GraphNode {
    g.nodes
        .iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

fn edge<'g>(g: &'g Graph, person: &str, kind: &str, token: &str) -> &'g GraphEdge {
    let target = format!("{kind}:{token}");
    g.edges
        .iter()
        .find(|e| e.source == person && e.target == target)
        .unwrap_or_else(|| panic!("no edge {person} - {target}"))
}

fn count(g: &Graph, node_type: &str) -> usize {
    g.nodes.iter().filter(|n| n.node_type == node_type).count()
}

#[test]
fn a_network_graph_has_its_people_their_values_and_one_edge_per_tie() {
    let cat = catalog();
    let store = planted();
    let (net, g) =
        network_graph(&store, &cat, "p_vone", NetworkLimits::default()).expect("network graph");
    assert_eq!(net.people.len(), 5);
    assert_eq!((g.nodes.len(), g.edges.len()), (11, 12));
    assert_eq!(
        [
            count(&g, "person"),
            count(&g, "crime"),
            count(&g, "intel"),
            count(&g, "vehicle"),
            count(&g, "phone")
        ],
        [5, 2, 1, 1, 2]
    );
    assert_eq!(g.records, 8, "every record of the five people");
    // People first, by depth: p_sfour is one hop away through report i1.
    let people: Vec<(&str, Option<usize>)> = g
        .nodes
        .iter()
        .take(5)
        .map(|n| (n.id.as_str(), n.depth))
        .collect();
    assert_eq!(
        people,
        [
            ("p_vone", Some(0)),
            ("p_sfour", Some(1)),
            ("p_sone", Some(1)),
            ("p_stwo", Some(1)),
            ("p_sthree", Some(2)),
        ]
    );
    // Two records tie p_stwo to c1: one edge, dated by the first.
    let e = edge(&g, "p_stwo", "crime", C1);
    assert_eq!(
        (e.records, e.first_date.as_str(), e.last_date.as_str()),
        (2, "2024-01-01", "2024-01-05")
    );
    assert_eq!(e.link_type, "Involved in");
    assert_eq!(e.roles, BTreeSet::from(["suspect".to_owned()]));
    let e = edge(&g, "p_sfour", "intel", I1);
    assert_eq!(
        (e.link_type.as_str(), e.first_date.as_str()),
        ("Subject of", "2024-02-10")
    );
    assert_eq!(e.roles, BTreeSet::from(["associate".to_owned()]));
    // A value carried by one person is still charted, with its one holder.
    let y = node(&g, &format!("phone:{Y}"));
    assert_eq!(
        (y.people, y.entity_type.as_str(), y.label.as_str()),
        (1, "Phone", Y)
    );
    let c1 = node(&g, &format!("crime:{C1}"));
    assert_eq!(
        (
            c1.people,
            c1.records,
            c1.first_seen.as_str(),
            c1.last_seen.as_str()
        ),
        (3, 4, "2024-01-01", "2024-01-05")
    );
    let v = node(&g, "p_vone");
    assert_eq!(
        v.roles,
        BTreeSet::from(["victim".to_owned()]),
        "victim in both records"
    );
    assert_eq!(
        (v.first_seen.as_str(), v.last_seen.as_str(), v.records),
        ("2024-01-01", "2024-02-10", 2)
    );
    // Nobody outside the network.
    assert!(
        g.nodes
            .iter()
            .all(|n| !n.id.contains("p_lone") && !n.id.contains("p_hone"))
    );
    // Every edge joins a person to a value that are both nodes.
    for e in &g.edges {
        assert_eq!(node(&g, &e.source).node_type, "person");
        assert_ne!(node(&g, &e.target).node_type, "person");
    }
}

#[test]
fn a_truncated_network_graph_keeps_only_the_people_returned() {
    let cat = catalog();
    let store = planted();
    let limits = NetworkLimits {
        max_depth: 1,
        max_people: 200,
    };
    let (net, g) = network_graph(&store, &cat, "p_vone", limits).expect("graph");
    assert!(net.truncated);
    // p_vone, p_sone, p_stwo, p_sfour; their values c1, i1, v1, x, c2, y.
    assert_eq!((count(&g, "person"), g.nodes.len()), (4, 10));
    // vone–c1, vone–i1, sone–c1, sone–v1, stwo–c1, stwo–x, sfour–c2,
    // sfour–i1, sfour–y; p_sthree's ties are not in the answer.
    assert_eq!(g.edges.len(), 9);
    assert!(g.edges.iter().all(|e| e.source != "p_sthree"));
    assert_eq!(
        node(&g, &format!("phone:{X}")).people,
        1,
        "only p_stwo returned"
    );
}

#[test]
fn an_export_graph_charts_everyone_with_a_linking_value() {
    let cat = catalog();
    let store = planted();
    let plan = plan_export(&store, &cat, None).expect("plan");
    let g = export_graph(&store, &cat, &plan).expect("graph");
    // The network, plus p_lone with c9 and z; p_hone has nothing to chart.
    assert_eq!((g.nodes.len(), g.edges.len()), (14, 14));
    assert_eq!(count(&g, "person"), 6);
    assert!(g.nodes.iter().all(|n| n.id != "p_hone"));
    assert!(g.nodes.iter().all(|n| n.depth.is_none()));
    assert_eq!(g.records, 10, "every record was read");

    let plan = plan_export(&store, &cat, Some("test.crime")).expect("plan");
    let g = export_graph(&store, &cat, &plan).expect("graph");
    // Without the intelligence dataset: no i1, and its two edges are gone.
    assert_eq!(
        (count(&g, "person"), g.nodes.len(), g.edges.len()),
        (6, 13, 12)
    );
    assert_eq!(count(&g, "intel"), 0);
    assert_eq!(g.records, 7, "the crime records only");
}

#[test]
fn graphml_parses_with_typed_nodes_and_edges_matching_the_graph() {
    let cat = catalog();
    let store = planted();
    let (net, g) = network_graph(&store, &cat, "p_vone", NetworkLimits::default()).expect("graph");
    let xml = to_graphml(
        &g,
        &GraphSource {
            source: "network".into(),
            target: "p_vone".into(),
            network_id: net.network_id.clone(),
            group_based: Some(net.group_based),
            truncated: Some(net.truncated),
        },
    );
    let doc = roxmltree::Document::parse(&xml).expect("GraphML is well-formed XML");
    let ns = "http://graphml.graphdrawing.org/xmlns";
    let root = doc.root_element();
    assert_eq!(
        (root.tag_name().namespace(), root.tag_name().name()),
        (Some(ns), "graphml")
    );
    let keys: HashMap<&str, &str> = root
        .children()
        .filter(|n| n.has_tag_name((ns, "key")))
        .map(|k| {
            (
                k.attribute("id").unwrap_or(""),
                k.attribute("attr.name").unwrap_or(""),
            )
        })
        .collect();
    let nodes: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name((ns, "node")))
        .collect();
    let edges: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name((ns, "edge")))
        .collect();
    assert_eq!((nodes.len(), edges.len()), (11, 12));
    let ids: HashSet<&str> = nodes.iter().filter_map(|n| n.attribute("id")).collect();
    assert_eq!(ids.len(), 11, "node ids are unique");
    for e in &edges {
        assert!(
            ids.contains(e.attribute("source").unwrap_or("")),
            "source is a node"
        );
        assert!(
            ids.contains(e.attribute("target").unwrap_or("")),
            "target is a node"
        );
    }
    // Every data element names a declared key.
    for d in doc.descendants().filter(|n| n.has_tag_name((ns, "data"))) {
        assert!(keys.contains_key(d.attribute("key").unwrap_or("")), "{d:?}");
    }
    let data = |n: &roxmltree::Node<'_, '_>, key: &str| {
        n.children()
            .find(|d| d.attribute("key") == Some(key))
            .and_then(|d| d.text())
            .map(str::to_owned)
    };
    let types: Vec<String> = nodes.iter().filter_map(|n| data(n, "n_type")).collect();
    assert_eq!(types.iter().filter(|t| *t == "person").count(), 5);
    let stwo_c1 = edges
        .iter()
        .find(|e| {
            e.attribute("source") == Some("p_stwo")
                && e.attribute("target") == Some(&*format!("crime:{C1}"))
        })
        .expect("p_stwo - c1");
    assert_eq!(data(stwo_c1, "e_records").as_deref(), Some("2"));
    assert_eq!(data(stwo_c1, "e_first_date").as_deref(), Some("2024-01-01"));
    let graph = root
        .children()
        .find(|n| n.has_tag_name((ns, "graph")))
        .expect("graph");
    assert_eq!(graph.attribute("edgedefault"), Some("undirected"));
    assert_eq!(data(&graph, "g_network_id"), net.network_id);
    assert_eq!(data(&graph, "g_group_based").as_deref(), Some("true"));
}

#[test]
fn xml_escaping_survives_a_real_parser() {
    let hostile = "a<b>&\"c'\td\ne\u{1}f\u{FFFE}g";
    assert_eq!(
        xml_escape(hostile),
        "a&lt;b&gt;&amp;&quot;c&apos;&#9;d&#10;e\u{FFFD}f\u{FFFD}g"
    );
    // A token with markup in it, as an id, a label and an endpoint.
    let g = Graph {
        nodes: vec![GraphNode {
            id: hostile.to_owned(),
            node_type: "phone".into(),
            entity_type: "Phone".into(),
            label: hostile.to_owned(),
            first_seen: "2024-01-01".into(),
            last_seen: "2024-01-01".into(),
            records: 1,
            people: 1,
            roles: BTreeSet::new(),
            agencies: BTreeSet::from(["a&b".to_owned()]),
            depth: None,
        }],
        edges: Vec::new(),
        records: 1,
    };
    let xml = to_graphml(&g, &GraphSource::default());
    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let n = doc
        .descendants()
        .find(|n| n.tag_name().name() == "node")
        .expect("node");
    let expected = "a<b>&\"c'\td\ne\u{FFFD}f\u{FFFD}g";
    assert_eq!(
        n.attribute("id"),
        Some(expected),
        "TAB and LF kept in an attribute"
    );
    let label = n
        .children()
        .find(|d| d.attribute("key") == Some("n_label"))
        .and_then(|d| d.text());
    assert_eq!(label, Some(expected));
}

#[test]
fn i2_rows_follow_the_spec_columns_and_cannot_carry_a_formula() {
    let cat = catalog();
    let store = planted();
    let (_, g) = network_graph(&store, &cat, "p_vone", NetworkLimits::default()).expect("graph");
    let header = i2_header();
    let spec = i2_import_spec();
    let spec_columns: Vec<&str> = spec["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(header, spec_columns);
    let rows = i2_rows(&g);
    assert_eq!(rows.len(), 12, "one row per edge");
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let row = rows
        .iter()
        .find(|r| r[col("person_id")] == "p_stwo" && r[col("entity_label")] == C1)
        .expect("p_stwo - c1");
    assert_eq!(row[col("person_type")], "Person");
    assert_eq!(row[col("entity_type")], "Crime");
    assert_eq!(row[col("link_type")], "Involved in");
    assert_eq!(row[col("link_date")], "2024-01-01");
    assert_eq!(row[col("link_records")], "2");
    assert_eq!(row[col("entity_people")], "3");
    // Each entity type the spec names is one the rows use, and vice versa.
    let used: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| {
            [
                r[col("person_type")].as_str(),
                r[col("entity_type")].as_str(),
            ]
        })
        .collect();
    let named: BTreeSet<&str> = spec["entity_types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(|t| t["entity_type"].as_str())
        .collect();
    assert_eq!(used, named);

    // A token shaped like a formula is neutralised wherever it appears.
    let mut evil = g.clone();
    for n in &mut evil.nodes {
        if n.label == Y {
            n.label = "=HYPERLINK(\"x\")".into();
        }
    }
    for e in &mut evil.edges {
        e.agencies = BTreeSet::from(["-cmd".to_owned()]);
    }
    let rows = i2_rows(&evil);
    let cells: Vec<&String> = rows.iter().flatten().collect();
    assert!(cells.iter().any(|c| *c == "'=HYPERLINK(\"x\")"));
    assert!(cells.iter().any(|c| *c == "'-cmd"));
    assert!(
        cells
            .iter()
            .all(|c| !c.starts_with(['=', '+', '-', '@', '\t', '\r'])),
        "no cell can start a formula"
    );
}

#[test]
fn a_role_that_is_not_a_listed_code_is_never_charted() {
    let cat = catalog();
    let store = MemoryRecordStore::default();
    let records = vec![
        rec(
            "r1",
            "p_aaaa",
            "test.loose",
            "2024-01-01",
            json!({"ref": "local_ref:k1:r1", "date": "2024-01-01", "crime": C1, "role": "Jane Smith 07700900123"}),
        ),
        rec(
            "r2",
            "p_bbbb",
            "test.loose",
            "2024-01-01",
            json!({"ref": "local_ref:k1:r2", "date": "2024-01-01", "crime": C1}),
        ),
    ];
    store
        .apply(&WriteBatch {
            records,
            ..WriteBatch::default()
        })
        .expect("apply");
    let (_, g) = network_graph(&store, &cat, "p_aaaa", NetworkLimits::default()).expect("graph");
    assert_eq!((g.nodes.len(), g.edges.len()), (3, 2));
    assert_eq!(
        node(&g, "p_aaaa").roles,
        BTreeSet::from(["unlisted".to_owned()])
    );
    assert_eq!(
        node(&g, "p_bbbb").roles,
        BTreeSet::from(["subject".to_owned()])
    );
    let xml = to_graphml(&g, &GraphSource::default());
    let csv: String = i2_rows(&g).concat().join(",");
    for out in [&xml, &csv] {
        assert!(
            !out.contains("Jane") && !out.contains("07700900123"),
            "{out}"
        );
    }
}
