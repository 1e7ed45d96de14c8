//! Entity-link graphs for analysts' charting tools: GraphML (Gephi, yEd)
//! and an entity-link CSV with its import specification (i2 Analyst's
//! Notebook).
//!
//! The graph is the store's network model made explicit: people are
//! entities, and so is every linking value they share through records (a
//! crime, an intelligence report, a vehicle, a phone: a schema's `x-link`
//! kinds). A link joins a person to such an entity and carries the roles,
//! dates and agencies of the records that tie them. The same graph comes
//! from one network ([`network_graph`]) or from a whole export
//! ([`export_graph`]); the formatters ([`to_graphml`], [`i2_rows`]) are pure.
//!
//! Only pseudonymous values reach the output: person ids, link tokens,
//! agency and dataset ids, link kinds, event dates, counts, and a role only
//! when it is one of its schema's listed codes (a directory schema could
//! declare a free-text role field, and a free-text cell may hold a name).
//! No `fields` value other than the role is read.

use super::*;
use crate::ports::Link;

/// A node of an analyst graph: a person or a linking value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphNode {
    /// Unique in the graph: the person id, or `KIND:TOKEN` for a linking
    /// value (two kinds may hash the same reference to the same token).
    pub id: String,
    /// `person`, or the link kind (`crime`, `intel`, `vehicle`, `phone`, …).
    pub node_type: String,
    /// The i2 entity type: `Person`, `Crime`, `Intelligence report`, …
    pub entity_type: String,
    /// What a chart shows: the person id or the token.
    pub label: String,
    /// Earliest event date of the records behind the node.
    pub first_seen: String,
    /// Latest event date of the records behind the node.
    pub last_seen: String,
    /// Records behind the node.
    pub records: u64,
    /// People in the graph tied to it (1 for a person).
    pub people: usize,
    /// A person's roles across their records (coded values only).
    pub roles: BTreeSet<String>,
    /// Agencies whose records are behind the node.
    pub agencies: BTreeSet<String>,
    /// Hops from the person a network was asked about (network graphs only).
    pub depth: Option<usize>,
}

/// An edge of an analyst graph: a person tied to a linking value, by every
/// record in which the person carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// `e1`, `e2`, … in output order.
    pub id: String,
    /// The person's node id.
    pub source: String,
    /// The linking value's node id.
    pub target: String,
    /// The link kind (`crime`, `intel`, `vehicle`, `phone`, …).
    pub kind: String,
    /// The i2 link type: `Involved in`, `Subject of`, `Associated with`, …
    pub link_type: String,
    /// The person's roles in those records (coded values only).
    pub roles: BTreeSet<String>,
    /// Earliest event date of those records: the link's date.
    pub first_date: String,
    /// Latest event date of those records.
    pub last_date: String,
    /// How many records tie them.
    pub records: u64,
    /// Agencies whose records tie them.
    pub agencies: BTreeSet<String>,
}

/// People and linking values, and the edges between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// People first (network: by depth and id; export: by id), then linking
    /// values by kind and token.
    pub nodes: Vec<GraphNode>,
    /// By person, kind and token.
    pub edges: Vec<GraphEdge>,
    /// Records read to build it.
    pub records: u64,
}

/// What a graph was built from, written into GraphML's graph attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphSource {
    /// `network` or `export`.
    pub source: String,
    /// The id asked for, the dataset or `all`.
    pub target: String,
    /// The network's id, when the graph is one network.
    pub network_id: Option<String>,
    /// Whether the network is group-based (network graphs only).
    pub group_based: Option<bool>,
    /// Whether a limit cut the network short (network graphs only).
    pub truncated: Option<bool>,
}

/// The i2 entity type and link type for a link kind. Kinds a schema adds
/// beyond the four known ones keep their own name for both.
pub fn kind_types(kind: &str) -> (String, String) {
    let (entity, link) = match kind {
        "person" => ("Person", ""),
        "crime" => ("Crime", "Involved in"),
        "intel" => ("Intelligence report", "Subject of"),
        "vehicle" => ("Vehicle", "Associated with"),
        "phone" => ("Phone", "Uses"),
        other => (other, other),
    };
    (entity.to_owned(), link.to_owned())
}

#[derive(Debug, Default)]
struct Span {
    first: String,
    last: String,
    records: u64,
    agencies: BTreeSet<String>,
}

impl Span {
    fn add(&mut self, date: &str, agency: &str) {
        if self.records == 0 || date < self.first.as_str() {
            self.first = date.to_owned();
        }
        if self.records == 0 || date > self.last.as_str() {
            self.last = date.to_owned();
        }
        self.records += 1;
        self.agencies.insert(agency.to_owned());
    }
}

/// Accumulates records into a [`Graph`] without keeping them, so a whole
/// store can be streamed through it.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    people: BTreeMap<String, (Span, BTreeSet<String>)>,
    values: BTreeMap<(String, String), (Span, BTreeSet<String>)>,
    edges: BTreeMap<(String, String, String), (Span, BTreeSet<String>)>,
    records: u64,
}

/// The role a record gives its person, only when it is one of the role
/// field's listed codes; `subject` when the dataset has no role field (as
/// [`record_role`] says), `unlisted` when the value is not a listed code
/// (it is then not shown: it could be free text).
fn coded_role(ds: Option<&Dataset>, body: &Value) -> String {
    let Some(field) = ds.and_then(|d| d.field_for("person_role")) else {
        return record_role(body, None);
    };
    let value = body
        .get("fields")
        .and_then(|f| f.get(&field.name))
        .and_then(Value::as_str);
    match value {
        None => record_role(body, None),
        Some(v)
            if field
                .codes
                .as_ref()
                .is_some_and(|c| c.iter().any(|x| x == v)) =>
        {
            v.to_owned()
        }
        Some(_) => "unlisted".to_owned(),
    }
}

impl GraphBuilder {
    /// Add one record: its person, its linking values and the edges between.
    /// A record of a dataset about investigations (`case_ref`) is left
    /// out: it is about no one, and charting it as a person would tie every
    /// crime it covers through a person who does not exist.
    pub fn add(&mut self, catalog: &Catalog, r: &StoredRecord) -> Result<(), QueryError> {
        let body = parsed(r)?;
        let ds = dataset_of(catalog, r, &body);
        if ds.is_some_and(|d| !d.is_about_people()) {
            return Ok(());
        }
        let role = coded_role(ds, &body);
        self.records += 1;
        let person = self.people.entry(r.person_id.clone()).or_default();
        person.0.add(&r.event_date, &r.agency);
        person.1.insert(role.clone());
        // A record naming the same value twice still ties once.
        let links: BTreeSet<&Link> = r.links.iter().collect();
        for l in links {
            let value = self
                .values
                .entry((l.kind.clone(), l.token.clone()))
                .or_default();
            value.0.add(&r.event_date, &r.agency);
            value.1.insert(r.person_id.clone());
            let edge = self
                .edges
                .entry((r.person_id.clone(), l.kind.clone(), l.token.clone()))
                .or_default();
            edge.0.add(&r.event_date, &r.agency);
            edge.1.insert(role.clone());
        }
        Ok(())
    }

    /// The graph. With `depths` (a network), the people are exactly its
    /// keys, ordered by depth then id; without, every person with at least
    /// one link, by id: a person with no linking value has nothing to chart.
    pub fn finish(self, depths: Option<&BTreeMap<String, usize>>) -> Graph {
        let node_of = |kind: &str, token: &str| format!("{kind}:{token}");
        let linked: HashSet<&str> = self.edges.keys().map(|(p, _, _)| p.as_str()).collect();
        let mut people: Vec<(String, (Span, BTreeSet<String>))> = self
            .people
            .into_iter()
            .filter(|(p, _)| match depths {
                Some(d) => d.contains_key(p),
                None => linked.contains(p.as_str()),
            })
            .collect();
        if let Some(d) = depths {
            people.sort_by_key(|(p, _)| (d[p], p.clone()));
        }
        let mut nodes: Vec<GraphNode> = people
            .into_iter()
            .map(|(p, (span, roles))| GraphNode {
                id: p.clone(),
                node_type: "person".to_owned(),
                entity_type: kind_types("person").0,
                label: p.clone(),
                first_seen: span.first,
                last_seen: span.last,
                records: span.records,
                people: 1,
                roles,
                agencies: span.agencies,
                depth: depths.map(|d| d[&p]),
            })
            .collect();
        for ((kind, token), (span, holders)) in self.values {
            nodes.push(GraphNode {
                id: node_of(&kind, &token),
                entity_type: kind_types(&kind).0,
                node_type: kind,
                label: token,
                first_seen: span.first,
                last_seen: span.last,
                records: span.records,
                people: holders.len(),
                roles: BTreeSet::new(),
                agencies: span.agencies,
                depth: None,
            });
        }
        let edges = self
            .edges
            .into_iter()
            .enumerate()
            .map(|(i, ((person, kind, token), (span, roles)))| GraphEdge {
                id: format!("e{}", i + 1),
                source: person,
                target: node_of(&kind, &token),
                link_type: kind_types(&kind).1,
                kind,
                roles,
                first_date: span.first,
                last_date: span.last,
                records: span.records,
                agencies: span.agencies,
            })
            .collect();
        Graph {
            nodes,
            edges,
            records: self.records,
        }
    }
}

/// The graph of one network (as [`person_network`] walks it, within
/// `limits`): its people, every linking value any of them carries, and the
/// edges between. Values carried by one person only are kept: the crime a
/// suspect is recorded for is part of their picture even if nobody else in
/// the network shares it.
pub fn network_graph(
    store: &dyn RecordStore,
    catalog: &Catalog,
    id: &str,
    limits: NetworkLimits,
) -> Result<(PersonNetwork, Graph), QueryError> {
    let net = person_network(store, catalog, id, limits)?;
    let depths: BTreeMap<String, usize> = net
        .people
        .iter()
        .map(|p| (p.person_id.clone(), p.depth))
        .collect();
    let mut builder = GraphBuilder::default();
    for p in &net.people {
        for r in store.records_of_person(&p.person_id)? {
            builder.add(catalog, &r)?;
        }
    }
    let graph = builder.finish(Some(&depths));
    Ok((net, graph))
}

/// The graph of an export's datasets: every person with a linking value in
/// them, and every such value. Records are streamed, not kept.
pub fn export_graph(
    store: &dyn RecordStore,
    catalog: &Catalog,
    plan: &ExportPlan,
) -> Result<Graph, QueryError> {
    let mut builder = GraphBuilder::default();
    let mut failed = None;
    for d in &plan.datasets {
        store.scan_dataset(d, None, None, &mut |r| match builder.add(catalog, &r) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(builder.finish(None))
}

/// Text for XML character data or a quoted attribute value: the five
/// markup characters escaped, TAB, LF and CR as character references (a
/// parser would turn them into spaces in an attribute), and characters
/// XML 1.0 cannot carry at all (other controls, U+FFFE, U+FFFF) replaced
/// with U+FFFD, since not even a reference may name them.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if matches!(u32::from(c), 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..) => {
                out.push(c);
            }
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// GraphML keys: (id, for, attr.name, attr.type). `label` is the name Gephi
/// takes node and edge labels from; yEd maps any key through its
/// Properties Mapper.
const GRAPHML_KEYS: &[(&str, &str, &str, &str)] = &[
    ("g_source", "graph", "source", "string"),
    ("g_target", "graph", "target", "string"),
    ("g_network_id", "graph", "network_id", "string"),
    ("g_group_based", "graph", "group_based", "boolean"),
    ("g_truncated", "graph", "truncated", "boolean"),
    ("n_type", "node", "type", "string"),
    ("n_entity_type", "node", "entity_type", "string"),
    ("n_label", "node", "label", "string"),
    ("n_first_seen", "node", "first_seen", "string"),
    ("n_last_seen", "node", "last_seen", "string"),
    ("n_records", "node", "records", "int"),
    ("n_people", "node", "people", "int"),
    ("n_roles", "node", "roles", "string"),
    ("n_agencies", "node", "agencies", "string"),
    ("n_depth", "node", "depth", "int"),
    ("e_kind", "edge", "kind", "string"),
    ("e_label", "edge", "label", "string"),
    ("e_roles", "edge", "roles", "string"),
    ("e_first_date", "edge", "first_date", "string"),
    ("e_last_date", "edge", "last_date", "string"),
    ("e_records", "edge", "records", "int"),
    ("e_agencies", "edge", "agencies", "string"),
];

fn joined(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(";")
}

/// The graph as GraphML 1.0 (undirected; typed `data` on every node and
/// edge), for Gephi and yEd. Every value is escaped with [`xml_escape`].
pub fn to_graphml(graph: &Graph, from: &GraphSource) -> String {
    use std::fmt::Write as _;
    let mut x = String::new();
    let data = |x: &mut String, key: &str, value: &str| {
        let _ = writeln!(x, "      <data key=\"{key}\">{}</data>", xml_escape(value));
    };
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns \
         http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n",
    );
    for (id, on, name, ty) in GRAPHML_KEYS {
        let _ = writeln!(
            x,
            "  <key id=\"{id}\" for=\"{on}\" attr.name=\"{name}\" attr.type=\"{ty}\"/>"
        );
    }
    x.push_str("  <graph id=\"agencylink\" edgedefault=\"undirected\">\n");
    // Graph data sits one level up from node data; indentation is cosmetic.
    data(&mut x, "g_source", &from.source);
    data(&mut x, "g_target", &from.target);
    if let Some(n) = &from.network_id {
        data(&mut x, "g_network_id", n);
    }
    if let Some(g) = from.group_based {
        data(&mut x, "g_group_based", &g.to_string());
    }
    if let Some(t) = from.truncated {
        data(&mut x, "g_truncated", &t.to_string());
    }
    for n in &graph.nodes {
        let _ = writeln!(x, "    <node id=\"{}\">", xml_escape(&n.id));
        data(&mut x, "n_type", &n.node_type);
        data(&mut x, "n_entity_type", &n.entity_type);
        data(&mut x, "n_label", &n.label);
        data(&mut x, "n_first_seen", &n.first_seen);
        data(&mut x, "n_last_seen", &n.last_seen);
        data(&mut x, "n_records", &n.records.to_string());
        data(&mut x, "n_people", &n.people.to_string());
        if !n.roles.is_empty() {
            data(&mut x, "n_roles", &joined(&n.roles));
        }
        data(&mut x, "n_agencies", &joined(&n.agencies));
        if let Some(d) = n.depth {
            data(&mut x, "n_depth", &d.to_string());
        }
        x.push_str("    </node>\n");
    }
    for e in &graph.edges {
        let _ = writeln!(
            x,
            "    <edge id=\"{}\" source=\"{}\" target=\"{}\">",
            xml_escape(&e.id),
            xml_escape(&e.source),
            xml_escape(&e.target)
        );
        data(&mut x, "e_kind", &e.kind);
        data(&mut x, "e_label", &e.link_type);
        data(&mut x, "e_roles", &joined(&e.roles));
        data(&mut x, "e_first_date", &e.first_date);
        data(&mut x, "e_last_date", &e.last_date);
        data(&mut x, "e_records", &e.records.to_string());
        data(&mut x, "e_agencies", &joined(&e.agencies));
        x.push_str("    </edge>\n");
    }
    x.push_str("  </graph>\n</graphml>\n");
    x
}

/// The i2 entity-link CSV's columns, in order, and what each maps to in
/// Analyst's Notebook's import wizard. One row is one edge: a person
/// (entity 1), the link, and a linking value (entity 2).
/// [`i2_import_spec`] is written from this same list, so the CSV header and
/// the specification cannot disagree.
pub const I2_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "person_id",
        "Entity 1 > Identity; Entity 1 > Label",
        "pseudonymous person id (p_…)",
    ),
    ("person_type", "Entity 1 > Type", "always Person"),
    (
        "person_roles",
        "Entity 1 > Attribute: Roles (text)",
        "the person's roles across their records, ;-separated (victim, suspect, witness, associate, subject)",
    ),
    (
        "person_agencies",
        "Entity 1 > Attribute: Agencies (text)",
        "agencies holding records about the person, ;-separated",
    ),
    (
        "person_first_seen",
        "Entity 1 > Date",
        "earliest event date of the person's records (yyyy-MM-dd)",
    ),
    (
        "person_last_seen",
        "Entity 1 > Attribute: Last seen (date)",
        "latest event date of the person's records (yyyy-MM-dd)",
    ),
    (
        "person_records",
        "Entity 1 > Attribute: Records (number)",
        "how many records are about the person",
    ),
    (
        "link_type",
        "Link > Type",
        "Involved in (crime), Subject of (intelligence report), Associated with (vehicle), Uses (phone)",
    ),
    (
        "link_kind",
        "Link > Attribute: Kind (text)",
        "the link kind as agencylink names it: crime, intel, vehicle, phone",
    ),
    (
        "link_roles",
        "Link > Label",
        "the person's roles in the records that tie them, ;-separated",
    ),
    (
        "link_date",
        "Link > Date",
        "earliest event date of the records that tie them (yyyy-MM-dd)",
    ),
    (
        "link_last_date",
        "Link > Attribute: Last date (date)",
        "latest event date of the records that tie them (yyyy-MM-dd)",
    ),
    (
        "link_records",
        "Link > Attribute: Records (number)",
        "how many records tie them",
    ),
    (
        "link_agencies",
        "Link > Attribute: Agencies (text)",
        "agencies whose records tie them, ;-separated",
    ),
    (
        "entity_id",
        "Entity 2 > Identity",
        "KIND:TOKEN, unique per linking value",
    ),
    (
        "entity_label",
        "Entity 2 > Label",
        "the linking value's pseudonymous token",
    ),
    (
        "entity_type",
        "Entity 2 > Type",
        "Crime, Intelligence report, Vehicle or Phone",
    ),
    (
        "entity_first_seen",
        "Entity 2 > Date",
        "earliest event date of the records carrying the value (yyyy-MM-dd)",
    ),
    (
        "entity_last_seen",
        "Entity 2 > Attribute: Last seen (date)",
        "latest event date of the records carrying the value (yyyy-MM-dd)",
    ),
    (
        "entity_people",
        "Entity 2 > Attribute: People (number)",
        "people in the export who carry the value",
    ),
    (
        "entity_records",
        "Entity 2 > Attribute: Records (number)",
        "records carrying the value",
    ),
    (
        "entity_agencies",
        "Entity 2 > Attribute: Agencies (text)",
        "agencies whose records carry the value, ;-separated",
    ),
];

/// The i2 CSV header: [`I2_COLUMNS`]' names.
pub fn i2_header() -> Vec<String> {
    I2_COLUMNS
        .iter()
        .map(|(name, _, _)| neutralise(name).into_owned())
        .collect()
}

/// The i2 CSV rows, one per edge, in [`I2_COLUMNS`] order. Text cells pass
/// through [`neutralise`] like every CSV cell the tool writes; counts are
/// written as numbers.
pub fn i2_rows(graph: &Graph) -> Vec<Vec<String>> {
    let by_id: HashMap<&str, &GraphNode> = graph.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let text = |s: &str| neutralise(s).into_owned();
    graph
        .edges
        .iter()
        .filter_map(|e| {
            let (p, v) = (by_id.get(e.source.as_str())?, by_id.get(e.target.as_str())?);
            Some(vec![
                text(&p.id),
                text(&p.entity_type),
                text(&joined(&p.roles)),
                text(&joined(&p.agencies)),
                text(&p.first_seen),
                text(&p.last_seen),
                p.records.to_string(),
                text(&e.link_type),
                text(&e.kind),
                text(&joined(&e.roles)),
                text(&e.first_date),
                text(&e.last_date),
                e.records.to_string(),
                text(&joined(&e.agencies)),
                text(&v.id),
                text(&v.label),
                text(&v.entity_type),
                text(&v.first_seen),
                text(&v.last_seen),
                v.people.to_string(),
                v.records.to_string(),
                text(&joined(&v.agencies)),
            ])
        })
        .collect()
}

/// The import specification the i2 CSV expects, as JSON: the file's format,
/// each column and what it maps to, and the entity and link types. It is
/// the same for every export, so an analyst builds the Analyst's Notebook
/// specification (`.ximp`) from it once and reuses it (see
/// `docs/analyst-graph-exports.md`).
pub fn i2_import_spec() -> Value {
    let types = ["crime", "intel", "vehicle", "phone"];
    json!({
        "spec": "agencylink-i2-entity-link",
        "version": 1,
        "design": "one row per link: Entity 1 (a person) - Link - Entity 2 (a crime, intelligence report, vehicle or phone)",
        "file": {
            "format": "csv",
            "encoding": "UTF-8",
            "separator": ",",
            "text_qualifier": "\"",
            "header_rows": 1,
            "date_format": "yyyy-MM-dd",
            "list_separator": ";",
            "formula_guard": "a text cell starting with = + - @ TAB or CR gets a leading ' so a spreadsheet shows it as text (agencylink ids and tokens never start with one)",
        },
        "columns": I2_COLUMNS.iter().map(|(name, maps_to, meaning)| json!({
            "name": name,
            "maps_to": maps_to,
            "meaning": meaning,
        })).collect::<Vec<_>>(),
        "entity_types": std::iter::once("person").chain(types).map(|k| json!({
            "entity_type": kind_types(k).0,
            "kind": k,
        })).collect::<Vec<_>>(),
        "link_types": types.iter().map(|k| json!({
            "link_type": kind_types(k).1,
            "kind": k,
        })).collect::<Vec<_>>(),
        "merge": "entities with the same Identity are one entity: person_id for people, entity_id for the rest",
    })
}

#[cfg(test)]
#[path = "graph_export_tests.rs"]
mod tests;
