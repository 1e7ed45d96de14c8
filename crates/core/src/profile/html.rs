//! The profile as one self-contained HTML page: inline CSS and inline SVG,
//! no script, no font file, no URL of any kind, so it opens from a file or
//! an email attachment on a locked-down machine and prints as it shows.
//!
//! Order, as a reader needs it: the executive summary, then charts to take
//! in at a glance (monthly trends, boroughs, age/sex/ethnicity, the agency
//! overlap heat map, each high-threat network as a graph), then every table,
//! then method notes and data-quality caveats. Charts are drawn from the
//! same (possibly suppressed) tables printed below them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::table::{Cell, Kind, Table, format_number, group_thousands};
use super::threat::Tier;
use super::{Edition, NetworkDetail, Profile};

const VICTIM: &str = "#b03a2e";
const SUSPECT: &str = "#1f4e79";
const CURRENT: &str = "#1f6fb2";
const PREVIOUS: &str = "#9aa5b1";
const OTHER: &str = "#7f8c8d";

/// Escape text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --ink:#1d2733; --muted:#5b6775; --line:#d5dbe1; --soft:#f3f5f7; --accent:#1f6fb2; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); margin: 0; background: #fff; line-height: 1.45; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
header.top { border-bottom: 3px solid var(--ink); padding-bottom: 12px; margin-bottom: 20px; }
header.top h1 { font-size: 26px; margin: 0 0 6px; }
.meta { color: var(--muted); font-size: 14px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-size: 12px; font-weight: 600; letter-spacing: .04em; text-transform: uppercase; margin-right: 8px; }
.badge.analyst { background: #fdecea; color: #8e1c12; border: 1px solid #e6a39b; }
.badge.partner { background: #e8f1fa; color: #174a7c; border: 1px solid #9cc0e3; }
h2 { font-size: 21px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin: 34px 0 12px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
p.desc { color: var(--muted); font-size: 13px; margin: 2px 0 8px; max-width: 900px; }
.cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; margin: 8px 0 16px; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 4px; padding: 10px 12px; background: #fff; }
.card .v { font-size: 28px; font-weight: 700; line-height: 1.1; }
.card .l { font-size: 13px; color: var(--muted); margin-top: 4px; }
.card .p { font-size: 12px; color: var(--muted); margin-top: 4px; }
.up, .down { color: #33404d; font-weight: 600; }
ul.summary { padding-left: 20px; margin: 6px 0; max-width: 940px; }
ul.summary li { margin: 4px 0; }
.grid2 { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px 24px; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 14px 18px; }
figure { margin: 0; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-size: 14px; font-weight: 600; margin-bottom: 4px; }
.grid3 figcaption { min-height: 2.9em; }
figure .note { font-size: 12px; color: var(--muted); margin-top: 2px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-family: inherit; }
.legend { font-size: 12px; color: var(--muted); margin: 2px 0 6px; }
.legend span.sw { display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 10px; vertical-align: baseline; border-radius: 2px; }
.legend span.sw:first-child { margin-left: 0; }
.tablewrap { overflow-x: auto; margin-bottom: 6px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 10px; break-inside: auto; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border: 1px solid var(--line); padding: 3px 7px; vertical-align: top; }
th { background: var(--soft); text-align: left; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.c { text-align: right; color: #8a5a00; background: #fff8e6; font-weight: 600; }
td.id { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 11px; white-space: nowrap; }
td.nw { white-space: nowrap; }
td.wide { min-width: 14em; }
tr.total td { font-weight: 700; background: #fafbfc; }
.net { border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px; break-inside: avoid; page-break-inside: avoid; }
.net .facts { font-size: 12px; color: var(--muted); margin: 2px 0 6px; }
.formula { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 10px 14px; font-size: 13.5px; }
.formula ol { margin: 4px 0 4px 18px; padding: 0; }
.caveats li { margin: 5px 0; }
dl.notes dt { font-weight: 600; margin-top: 10px; }
dl.notes dd { margin: 2px 0 0 0; color: #2d3945; max-width: 940px; }
footer { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 8px; font-size: 12px; color: var(--muted); }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { font-size: 11.5px; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h2.newpage { break-before: page; page-break-before: always; }
  h3 { break-after: avoid; page-break-after: avoid; }
  .cards { grid-template-columns: repeat(3, 1fr); }
  .tablewrap { overflow: visible; }
  table { font-size: 9.5px; }
  th, td { padding: 2px 4px; }
}
"#;

/// Render the whole page.
pub fn render_html(p: &Profile) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let edition = p.edition.as_str();
    let _ = writeln!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} ({} edition, {} to {})</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>",
        esc(&p.title),
        edition,
        esc(&p.period.from),
        esc(&p.period.to)
    );
    let badge = match p.edition {
        Edition::Analyst => {
            "<span class=\"badge analyst\">Analyst edition &middot; pseudonymous ids &middot; restricted</span>"
        }
        Edition::Partner => {
            "<span class=\"badge partner\">Partner edition &middot; disclosure controlled</span>"
        }
    };
    let _ = writeln!(
        h,
        "<header class=\"top\">{badge}<h1>{}</h1><div class=\"meta\">Period {} to {} ({} days), compared with {} to {}. Made {} by agencylink from the merged, pseudonymised store.</div></header>",
        esc(&p.title),
        esc(&p.period.from),
        esc(&p.period.to),
        p.period.days,
        esc(&p.period.previous_from),
        esc(&p.period.previous_to),
        esc(&p.generated_at)
    );
    summary(&mut h, p);
    charts(&mut h, p);
    h.push_str("<h2 class=\"newpage\" id=\"tables\">Tables</h2>\n");
    if p.edition == Edition::Partner {
        h.push_str("<p class=\"desc\">Counts shown as <b>c</b> are withheld (disclosure control; see method).</p>\n");
    }
    for t in &p.tables {
        table(&mut h, t);
    }
    method(&mut h, p);
    h.push_str("<h2 id=\"caveats\">Data-quality caveats</h2>\n");
    if p.caveats.is_empty() {
        h.push_str("<p>No agency's data fell below the quality thresholds (rejections over 5%, a key field under 80% complete, a median delay over 90 days).</p>\n");
    } else {
        h.push_str("<ul class=\"caveats\">\n");
        for c in &p.caveats {
            let _ = writeln!(h, "<li>{}</li>", esc(c));
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(
        h,
        "<footer>{} &middot; {} edition &middot; format {}</footer>\n</main>\n</body>\n</html>",
        esc(&p.title),
        edition,
        esc(p.format)
    );
    h
}

fn summary(h: &mut String, p: &Profile) {
    h.push_str("<h2 id=\"summary\">Executive summary</h2>\n<div class=\"cards\">\n");
    for hl in &p.headlines {
        let value = match (&hl.value, hl.unit) {
            (Cell::Number(x), "percent") => format!("{}%", format_number(*x)),
            (c, _) => c.display(),
        };
        let value = if value.is_empty() {
            "&ndash;".to_owned()
        } else {
            esc(&value)
        };
        let mut prev = String::new();
        if let Some(pv) = &hl.previous {
            let change = match (hl.value.count(), pv.count()) {
                (Some(n), Some(b)) if b > 0 => {
                    let pct = (n as f64 - b as f64) * 100.0 / b as f64;
                    let (cls, arrow) = if pct >= 0.5 {
                        ("up", "&#9650;")
                    } else if pct <= -0.5 {
                        ("down", "&#9660;")
                    } else {
                        ("", "")
                    };
                    format!(" <span class=\"{cls}\">{arrow} {:+.0}%</span>", pct)
                }
                _ => String::new(),
            };
            prev = format!(
                "<div class=\"p\">previous period: {}{change}</div>",
                esc(&pv.display())
            );
        }
        let _ = writeln!(
            h,
            "<div class=\"card\"><div class=\"v\">{value}</div><div class=\"l\">{}</div>{prev}</div>",
            esc(&hl.label)
        );
    }
    h.push_str("</div>\n<ul class=\"summary\">\n");
    for s in &p.summary {
        let _ = writeln!(h, "<li>{}</li>", esc(s));
    }
    if !p.caveats.is_empty() {
        let _ = writeln!(
            h,
            "<li>{} data-quality caveat(s) apply; read them at the end before relying on a figure.</li>",
            p.caveats.len()
        );
    }
    h.push_str("</ul>\n");
}

/// Rows of a table without its total row.
fn body_rows(t: &Table) -> &[Vec<Cell>] {
    if t.margins.total_row && !t.rows.is_empty() {
        &t.rows[..t.rows.len() - 1]
    } else {
        &t.rows
    }
}

fn charts(h: &mut String, p: &Profile) {
    h.push_str("<h2 id=\"charts\">At a glance</h2>\n");
    if let Some(cur) = p.table("volumes_by_month") {
        let prev = p.table("volumes_by_month_previous");
        h.push_str("<h3>Monthly trends</h3>\n<div class=\"legend\"><span class=\"sw\" style=\"background:#1f6fb2\"></span>this period<span class=\"sw\" style=\"background:#9aa5b1\"></span>same month of the previous period</div>\n<div class=\"grid3\">\n");
        let months: Vec<String> = body_rows(cur).iter().map(|r| r[0].display()).collect();
        let long = |id: &str| {
            p.table("volumes").and_then(|v| {
                v.row_ids
                    .iter()
                    .position(|r| r == id)
                    .map(|i| v.rows[i][0].display())
            })
        };
        for (ci, col) in cur.columns.iter().enumerate().skip(1) {
            let series: Vec<Option<f64>> = body_rows(cur).iter().map(|r| r[ci].value()).collect();
            let before: Vec<Option<f64>> = prev
                .map(|t| body_rows(t).iter().map(|r| r[ci].value()).collect())
                .unwrap_or_default();
            let _ = writeln!(
                h,
                "<figure><figcaption>{}</figcaption>{}</figure>",
                esc(&long(&col.id).unwrap_or_else(|| col.label.clone())),
                line_chart(&months, &series, &before)
            );
        }
        h.push_str("</div>\n");
    }
    let mut row2 = String::new();
    if let Some(b) = p.table("volumes_by_borough") {
        let wanted: Vec<usize> = ["cse_crimes", "cse_intelligence"]
            .iter()
            .filter_map(|id| b.row_ids.iter().position(|r| r == id))
            .collect();
        let rows = if wanted.is_empty() { vec![0] } else { wanted };
        let cats: Vec<(usize, String)> = b
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| c.kind == Kind::Count && Some(*i) != b.margins.total_column)
            .map(|(i, c)| (i, c.label.clone()))
            .collect();
        if !b.rows.is_empty() {
            let colors = [CURRENT, "#8e44ad"];
            let series: Vec<(String, &str, Vec<Cell>)> = rows
                .iter()
                .enumerate()
                .map(|(k, &r)| {
                    (
                        b.rows[r][0].display(),
                        colors[k % 2],
                        cats.iter().map(|(i, _)| b.rows[r][*i].clone()).collect(),
                    )
                })
                .collect();
            let labels: Vec<String> = cats.iter().map(|(_, l)| l.clone()).collect();
            let _ = writeln!(
                row2,
                "<figure><figcaption>By borough, this period</figcaption>{}{}</figure>",
                legend(
                    &series
                        .iter()
                        .map(|(l, c, _)| (l.as_str(), *c))
                        .collect::<Vec<_>>()
                ),
                bar_chart(&labels, &series, 520)
            );
        }
    }
    if let Some(m) = p.table("cse_models")
        && let Some(tc) = m.col("total")
    {
        let rows = body_rows(m);
        let labels: Vec<String> = rows.iter().map(|r| r[0].display()).collect();
        let series = vec![(
            "CSE events".to_owned(),
            CURRENT,
            rows.iter().map(|r| r[tc].clone()).collect(),
        )];
        let _ = writeln!(
            row2,
            "<figure><figcaption>Models of CSE (crimes and reports)</figcaption>{}</figure>",
            bar_chart(&labels, &series, 520)
        );
    }
    if !row2.is_empty() {
        let _ = write!(
            h,
            "<h3>Where and how</h3>\n<div class=\"grid2\">\n{row2}</div>\n"
        );
    }
    h.push_str("<h3>Victims and suspects</h3>\n");
    h.push_str(&legend(&[("Victims", VICTIM), ("Suspects", SUSPECT)]));
    h.push_str("<div class=\"grid3\">\n");
    for (id, title) in [
        ("age", "Age band"),
        ("sex", "Sex"),
        ("ethnicity", "Ethnicity"),
    ] {
        if let Some(t) = p.table(id) {
            let rows = body_rows(t);
            let labels: Vec<String> = rows.iter().map(|r| r[0].display()).collect();
            let series = vec![
                (
                    "Victims".to_owned(),
                    VICTIM,
                    rows.iter().map(|r| r[1].clone()).collect(),
                ),
                (
                    "Suspects".to_owned(),
                    SUSPECT,
                    rows.iter().map(|r| r[2].clone()).collect(),
                ),
            ];
            let _ = writeln!(
                h,
                "<figure><figcaption>{title}</figcaption>{}</figure>",
                bar_chart(&labels, &series, 340)
            );
        }
    }
    h.push_str("</div>\n");
    if let Some(t) = p.table("agency_overlap")
        && !t.rows.is_empty()
    {
        let _ = writeln!(
            h,
            "<h3>Agency overlap</h3>\n<figure><figcaption>People known to both agencies (the diagonal: all the agency knows)</figcaption>{}<div class=\"note\">Darker means more people shared. Read across a row: of the people that agency knows, how many each other agency also knows.</div></figure>",
            heat_map(t)
        );
    }
    h.push_str("<h3>Group-based networks</h3>\n");
    match &p.networks {
        None => h.push_str("<p class=\"desc\">Network details and graphs are in the analyst edition only; the counts by threat tier are in the tables.</p>\n"),
        Some(nets) => {
            let high: Vec<&NetworkDetail> = nets.iter().filter(|n| n.tier == Tier::High).collect();
            if high.is_empty() {
                h.push_str("<p class=\"desc\">No network scored as high threat in this period.</p>\n");
            } else {
                let _ = writeln!(
                    h,
                    "<p class=\"desc\">Each high-threat network ({} in all), highest score first: suspects on the left, victims (then any others, grey) on the right, and between them each crime and intelligence report (squares) and each shared vehicle and phone (diamonds), joined to the people in it. Labels are the start of pseudonymous person ids; (+n) marks n more ids counted as the same person by name.</p>",
                    high.len()
                );
                h.push_str(&legend(&[
                    ("crime", KIND_COLORS[0].1),
                    ("intelligence", KIND_COLORS[1].1),
                    ("vehicle", KIND_COLORS[2].1),
                    ("phone", KIND_COLORS[3].1),
                ]));
                h.push_str("<div class=\"grid2\">\n");
                for n in high.iter().take(MAX_GRAPHS) {
                    network_graph(h, n);
                }
                h.push_str("</div>\n");
                if high.len() > MAX_GRAPHS {
                    let _ = writeln!(
                        h,
                        "<p class=\"desc\">{} more high-threat networks are listed in the group-based networks table.</p>",
                        high.len() - MAX_GRAPHS
                    );
                }
            }
        }
    }
    investigation_charts(h, p);
    disruption_charts(h, p);
}

/// A captioned bar chart with its legend.
fn bar_figure(
    h: &mut String,
    title: &str,
    labels: &[String],
    series: &[(String, &str, Vec<Cell>)],
) {
    let _ = writeln!(
        h,
        "<figure><figcaption>{}</figcaption>{}{}</figure>",
        esc(title),
        legend(
            &series
                .iter()
                .map(|(l, c, _)| (l.as_str(), *c))
                .collect::<Vec<_>>()
        ),
        bar_chart(labels, series, 520)
    );
}

/// Places against disruption at a glance: CSE events and disruption
/// activities side by side, by hotspot sector and by premises type.
fn disruption_charts(h: &mut String, p: &Profile) {
    let Some(sectors) = p.table("places_hotspots_disruption") else {
        return;
    };
    h.push_str("<h3>Hotspots and disruption</h3>\n<div class=\"grid2\">\n");
    for (t, title) in [
        (
            Some(sectors),
            "Hotspot sectors: CSE events and disruption activities",
        ),
        (
            p.table("places_premises_disruption"),
            "Premises types: CSE events and disruption activities",
        ),
    ] {
        let Some(t) = t.filter(|t| !t.rows.is_empty()) else {
            continue;
        };
        let (Some(e), Some(d)) = (t.col("cse_events"), t.col("disruption")) else {
            continue;
        };
        let labels: Vec<String> = body_rows(t).iter().map(|r| r[0].display()).collect();
        let series = vec![
            (
                t.columns[e].label.clone(),
                VICTIM,
                body_rows(t).iter().map(|r| r[e].clone()).collect(),
            ),
            (
                t.columns[d].label.clone(),
                CURRENT,
                body_rows(t).iter().map(|r| r[d].clone()).collect(),
            ),
        ];
        bar_figure(h, title, &labels, &series);
    }
    h.push_str("</div>\n");
}

/// Investigations at a glance: by threat category and status, networks
/// covered or not by an open investigation, peer review of the highest
/// category, and (analyst edition) victims and suspects per investigation.
fn investigation_charts(h: &mut String, p: &Profile) {
    let Some(by_threat) = p.table("investigations_by_threat") else {
        return;
    };
    h.push_str("<h3>Investigations</h3>\n<div class=\"grid2\">\n");
    let columns =
        |t: &Table, ids: &[(&str, &'static str)]| -> Vec<(String, &'static str, Vec<Cell>)> {
            ids.iter()
                .filter_map(|(id, color)| {
                    let c = t.col(id)?;
                    Some((
                        t.columns[c].label.clone(),
                        *color,
                        body_rows(t).iter().map(|r| r[c].clone()).collect(),
                    ))
                })
                .collect()
        };
    let figure = |h: &mut String, t: &Table, title: &str, ids: &[(&str, &'static str)]| {
        // "Category 1: highest threat" is "Category 1" on the axis; the
        // table below the charts gives the whole label.
        let labels: Vec<String> = body_rows(t)
            .iter()
            .map(|r| r[0].display().split(':').next().unwrap_or("").to_owned())
            .collect();
        let series = columns(t, ids);
        bar_figure(h, title, &labels, &series);
    };
    figure(
        h,
        by_threat,
        "Investigations by threat category and status",
        &[
            ("open", CURRENT),
            ("suspended", "#d68910"),
            ("closed", PREVIOUS),
        ],
    );
    if let Some(t) = p.table("network_coverage") {
        figure(
            h,
            t,
            "Group-based networks: covered by an open investigation or not",
            &[("covered", CURRENT), ("uncovered", VICTIM)],
        );
    }
    if let Some(t) = p.table("peer_review") {
        figure(
            h,
            t,
            "Peer review of the highest-threat investigations",
            &[("investigations", SUSPECT)],
        );
    }
    if let Some(t) = p.table("investigation_people")
        && !t.rows.is_empty()
        && let (Some(v), Some(s)) = (t.col("victims"), t.col("suspects"))
    {
        // The investigations with the most people, so the multi-victim and
        // multi-offender ones stand out; every one is in the table.
        let mut rows: Vec<&Vec<Cell>> = t.rows.iter().collect();
        rows.sort_by_key(|r| {
            std::cmp::Reverse(r[v].count().unwrap_or(0) + r[s].count().unwrap_or(0))
        });
        rows.truncate(MAX_INVESTIGATIONS);
        let labels: Vec<String> = rows
            .iter()
            .map(|r| {
                r[0].display()
                    .rsplit(':')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(10)
                    .collect()
            })
            .collect();
        let series = vec![
            (
                "Victims".to_owned(),
                VICTIM,
                rows.iter().map(|r| r[v].clone()).collect(),
            ),
            (
                "Suspects".to_owned(),
                SUSPECT,
                rows.iter().map(|r| r[s].clone()).collect(),
            ),
        ];
        let _ = writeln!(
            h,
            "<figure><figcaption>Victims and suspects per investigation ({} with the most people)</figcaption>{}{}<div class=\"note\">Labels are the start of each operation reference's pseudonym.</div></figure>",
            rows.len(),
            legend(&[("Victims", VICTIM), ("Suspects", SUSPECT)]),
            bar_chart(&labels, &series, 520)
        );
    }
    h.push_str("</div>\n");
}

/// Investigations drawn at most in the victims-and-suspects chart.
const MAX_INVESTIGATIONS: usize = 15;

/// Graphs drawn at most (the rest are in the table).
const MAX_GRAPHS: usize = 12;

fn legend(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (label, color) in items {
        let _ = write!(
            s,
            "<span class=\"sw\" style=\"background:{color}\"></span>{}",
            esc(label)
        );
    }
    s.push_str("</div>");
    s
}

/// A round axis maximum: 1, 2 or 5 times a power of ten.
fn nice_max(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

fn axis_label(x: f64) -> String {
    if x >= 1000.0 {
        group_thousands(x.round() as u64)
    } else {
        format_number(x)
    }
}

/// A small line chart of one measure by month; a withheld month is a gap.
fn line_chart(months: &[String], cur: &[Option<f64>], prev: &[Option<f64>]) -> String {
    let (w, hgt) = (330.0, 160.0);
    let (l, r, t, b) = (40.0, 10.0, 10.0, 26.0);
    let n = months.len().max(1);
    let max = nice_max(
        cur.iter()
            .chain(prev.iter())
            .flatten()
            .fold(0.0f64, |a, &x| a.max(x)),
    );
    let x = |i: usize| {
        if n == 1 {
            l + (w - l - r) / 2.0
        } else {
            l + (w - l - r) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| t + (hgt - t - b) * (1.0 - v / max);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" fill=\"#33404d\" role=\"img\" aria-label=\"monthly trend\">"
    );
    for k in 0..=2 {
        let v = max * f64::from(k) / 2.0;
        let _ = write!(
            s,
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e7eb\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            w - r,
            l - 4.0,
            y(v) + 3.5,
            axis_label(v),
            y = y(v)
        );
    }
    let path = |vals: &[Option<f64>]| {
        let mut d = String::new();
        let mut pen = false;
        for (i, v) in vals.iter().enumerate().take(n) {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen = true;
                }
                None => pen = false,
            }
        }
        d
    };
    let pd = path(prev);
    if !pd.is_empty() {
        let _ = write!(
            s,
            "<path d=\"{pd}\" fill=\"none\" stroke=\"{PREVIOUS}\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>"
        );
    }
    let cd = path(cur);
    if !cd.is_empty() {
        let _ = write!(
            s,
            "<path d=\"{cd}\" fill=\"none\" stroke=\"{CURRENT}\" stroke-width=\"2\"/>"
        );
    }
    for (i, v) in cur.iter().enumerate().take(n) {
        match v {
            Some(v) => {
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"{CURRENT}\"/>",
                    x(i),
                    y(*v)
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#8a5a00\">c</text>",
                    x(i),
                    hgt - b - 3.0
                );
            }
        }
    }
    if let (Some(first), Some(last)) = (months.first(), months.last()) {
        let _ = write!(
            s,
            "<text x=\"{l}\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            hgt - 8.0,
            esc(first),
            w - r,
            hgt - 8.0,
            esc(last)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one group per category, one bar per series; a withheld
/// value is drawn as a `c` marker, never as a length.
fn bar_chart(labels: &[String], series: &[(String, &str, Vec<Cell>)], width: u32) -> String {
    let label_w = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 24) as f64
        * 6.3
        + 8.0;
    let bar = 11.0;
    let gap = 7.0;
    let per = bar * series.len() as f64 + gap;
    let w = f64::from(width);
    let hgt = per * labels.len() as f64 + 6.0;
    let max = nice_max(
        series
            .iter()
            .flat_map(|(_, _, v)| v.iter().filter_map(Cell::value))
            .fold(0.0f64, f64::max),
    );
    let span = w - label_w - 44.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {hgt:.0}\" width=\"{w}\" height=\"{hgt:.0}\" fill=\"#33404d\" role=\"img\" aria-label=\"bar chart\">"
    );
    for (i, label) in labels.iter().enumerate() {
        let y0 = 3.0 + per * i as f64;
        let shown: String = label.chars().take(26).collect();
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y0 + (per - gap) / 2.0 + 4.0,
            esc(&shown)
        );
        for (k, (_, color, vals)) in series.iter().enumerate() {
            let yb = y0 + bar * k as f64;
            match vals.get(i) {
                Some(Cell::Suppressed) => {
                    let _ = write!(
                        s,
                        "<rect x=\"{label_w:.1}\" y=\"{yb:.1}\" width=\"14\" height=\"{:.1}\" fill=\"#fff8e6\" stroke=\"#d9b45c\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#8a5a00\">c</text>",
                        bar - 2.0,
                        label_w + 7.0,
                        yb + bar - 4.0
                    );
                }
                Some(c) if c.value().unwrap_or(0.0) <= 0.0 => {}
                Some(c) => {
                    let v = c.value().unwrap_or(0.0);
                    let len = (span * v / max).max(1.0);
                    let _ = write!(
                        s,
                        "<rect x=\"{label_w:.1}\" y=\"{yb:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9.5\">{}</text>",
                        bar - 2.0,
                        label_w + len + 3.0,
                        yb + bar - 3.0,
                        esc(&c.display())
                    );
                }
                None => {}
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// The agency overlap as a heat map. The diagonal (everyone an agency
/// knows) is grey so the shared counts, which matter, keep the colour scale.
fn heat_map(t: &Table) -> String {
    let names: Vec<String> = t.rows.iter().map(|r| r[0].display()).collect();
    let n = names.len();
    let cell = 30.0;
    let label_w = names.iter().map(|s| s.chars().count()).max().unwrap_or(6) as f64 * 6.4 + 10.0;
    let top = label_w * 0.72 + 6.0;
    // Column labels lean right at 45 degrees: leave room past the last one.
    let w = label_w + cell * n as f64 + label_w * 0.72;
    let hgt = top + cell * n as f64 + 6.0;
    let max_off = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .filter_map(|(i, j)| t.rows[i].get(j + 1).and_then(Cell::value))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w:.0} {hgt:.0}\" width=\"{w:.0}\" height=\"{hgt:.0}\" fill=\"#33404d\" role=\"img\" aria-label=\"agency overlap heat map\">"
    );
    for (j, name) in names.iter().enumerate() {
        let x = label_w + cell * j as f64 + cell / 2.0;
        let _ = write!(
            s,
            "<text transform=\"translate({x:.1},{:.1}) rotate(-45)\" font-size=\"10.5\">{}</text>",
            top - 4.0,
            esc(name)
        );
    }
    for (i, name) in names.iter().enumerate() {
        let y = top + cell * i as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10.5\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + cell / 2.0 + 3.5,
            esc(name)
        );
        for j in 0..n {
            let x = label_w + cell * j as f64;
            let c = t.rows[i].get(j + 1).cloned().unwrap_or(Cell::Empty);
            let (fill, ink) = match (&c, i == j) {
                (Cell::Suppressed, _) => ("#fff8e6".to_owned(), "#8a5a00"),
                (_, true) => ("#d5dbe1".to_owned(), "#1d2733"),
                (c, false) => {
                    let v = c.value().unwrap_or(0.0);
                    if v <= 0.0 {
                        ("#ffffff".to_owned(), "#9aa5b1")
                    } else {
                        // Square-root scale: small overlaps stay visible.
                        let a = (v / max_off).sqrt();
                        let mix = |lo: f64, hi: f64| (lo + (hi - lo) * a).round() as u8;
                        (
                            format!(
                                "#{:02x}{:02x}{:02x}",
                                mix(234.0, 21.0),
                                mix(242.0, 76.0),
                                mix(250.0, 140.0)
                            ),
                            if a > 0.55 { "#ffffff" } else { "#1d2733" },
                        )
                    }
                }
            };
            let text = c.display();
            let fs = if text.chars().count() > 4 { 7.5 } else { 9.0 };
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"{fill}\" stroke=\"#ffffff\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{fs}\" text-anchor=\"middle\" fill=\"{ink}\">{}</text>",
                x + cell / 2.0,
                y + cell / 2.0 + 3.0,
                esc(&text)
            );
        }
    }
    s.push_str("</svg>");
    s
}

const KIND_COLORS: [(&str, &str); 4] = [
    ("crime", "#c0392b"),
    ("intel", "#8e44ad"),
    ("vehicle", "#d68910"),
    ("phone", "#1e8449"),
];

fn kind_color(kind: &str) -> &'static str {
    KIND_COLORS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(OTHER, |(_, c)| c)
}

/// Spread `n` positions evenly over `[top, top + height]`, centred.
fn spread(n: usize, top: f64, height: f64) -> Vec<f64> {
    let step = height / n.max(1) as f64;
    (0..n).map(|i| top + step * (i as f64 + 0.5)).collect()
}

/// One network as a diagram an analyst reads like a link chart: suspects
/// on the left, victims (and others) on the right, and between them what
/// they share — each crime, intelligence report, vehicle and phone as a
/// node joined to the people in it. Middle nodes and people are ordered by
/// the average height of what they join (two barycentre passes), which
/// keeps lines from crossing more than they must.
fn network_graph(h: &mut String, n: &NetworkDetail) {
    let left: Vec<&str> = n.suspects.iter().map(String::as_str).collect();
    let mut right: Vec<&str> = n.victims.iter().map(String::as_str).collect();
    right.extend(n.others.iter().map(String::as_str));
    let ties = &n.ties;
    let (w, top) = (500.0, 24.0);
    let height = (left.len().max(right.len()) as f64 * 30.0)
        .max(ties.len() as f64 * 16.0)
        .max(60.0);
    let hgt = top + height + 8.0;
    let (xl, xm, xr) = (120.0, 250.0, 380.0);
    let mut y: BTreeMap<&str, f64> = BTreeMap::new();
    fn place<'a>(order: &[&'a str], y: &mut BTreeMap<&'a str, f64>, top: f64, height: f64) {
        for (p, yy) in order.iter().zip(spread(order.len(), top, height)) {
            y.insert(p, yy);
        }
    }
    let mut left_order = left.clone();
    let mut right_order = right.clone();
    place(&left_order, &mut y, top, height);
    place(&right_order, &mut y, top, height);
    let mut tie_order: Vec<usize> = (0..ties.len()).collect();
    let mut tie_y = vec![0.0; ties.len()];
    for _ in 0..2 {
        let bary = |t: &super::Tie, y: &BTreeMap<&str, f64>| {
            let ys: Vec<f64> = t
                .people
                .iter()
                .filter_map(|p| y.get(p.as_str()).copied())
                .collect();
            ys.iter().sum::<f64>() / ys.len().max(1) as f64
        };
        let keys: Vec<f64> = ties.iter().map(|t| bary(t, &y)).collect();
        tie_order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
        for (&i, yy) in tie_order.iter().zip(spread(ties.len(), top, height)) {
            tie_y[i] = yy;
        }
        let person_key = |p: &str| {
            let ys: Vec<f64> = ties
                .iter()
                .enumerate()
                .filter(|(_, t)| t.people.iter().any(|x| x == p))
                .map(|(i, _)| tie_y[i])
                .collect();
            ys.iter().sum::<f64>() / ys.len().max(1) as f64
        };
        let victims = n.victims.len();
        left_order.sort_by(|a, b| person_key(a).total_cmp(&person_key(b)));
        // Victims first, then others, each ordered by what they share.
        let (mut v, mut o): (Vec<&str>, Vec<&str>) = (
            right_order[..victims.min(right_order.len())].to_vec(),
            right_order[victims.min(right_order.len())..].to_vec(),
        );
        v.sort_by(|a, b| person_key(a).total_cmp(&person_key(b)));
        o.sort_by(|a, b| person_key(a).total_cmp(&person_key(b)));
        right_order = v.into_iter().chain(o).collect();
        place(&left_order, &mut y, top, height);
        place(&right_order, &mut y, top, height);
    }
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {hgt:.0}\" width=\"{w}\" height=\"{hgt:.0}\" fill=\"#33404d\" role=\"img\" aria-label=\"network {}\">",
        esc(&n.id)
    );
    for (x, title) in [(xl, "Suspects"), (xm, "Shared"), (xr, "Victims")] {
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"13\" font-size=\"11\" font-weight=\"600\" text-anchor=\"middle\">{title}</text>"
        );
    }
    let x_of = |p: &str| if left.contains(&p) { xl } else { xr };
    for (i, t) in ties.iter().enumerate() {
        let color = kind_color(&t.kind);
        for p in &t.people {
            if let Some(&py) = y.get(p.as_str()) {
                let _ = write!(
                    s,
                    "<line x1=\"{:.1}\" y1=\"{py:.1}\" x2=\"{xm}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"1.2\" opacity=\"0.6\"/>",
                    x_of(p),
                    tie_y[i]
                );
            }
        }
    }
    for (i, t) in ties.iter().enumerate() {
        let (cy, color) = (tie_y[i], kind_color(&t.kind));
        if t.kind == "crime" || t.kind == "intel" {
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"{color}\" stroke=\"#ffffff\"/>",
                xm - 4.5,
                cy - 4.5
            );
        } else {
            let _ = write!(
                s,
                "<path d=\"M{xm},{:.1} l6,6 l-6,6 l-6,-6 z\" fill=\"{color}\" stroke=\"#ffffff\"/>",
                cy - 6.0
            );
        }
    }
    let victims: std::collections::BTreeSet<&str> = n.victims.iter().map(String::as_str).collect();
    for (p, &py) in &y {
        let on_left = left.contains(p);
        let color = if on_left {
            SUSPECT
        } else if victims.contains(p) {
            VICTIM
        } else {
            OTHER
        };
        let merged = n.same_person.get(*p).map_or(0, Vec::len);
        let mut label: String = p.chars().take(8).collect();
        if merged > 0 {
            let _ = write!(label, " (+{merged})");
        }
        let (cx, tx, anchor) = if on_left {
            (xl, xl - 11.0, "end")
        } else {
            (xr, xr + 11.0, "start")
        };
        let _ = write!(
            s,
            "<circle cx=\"{cx}\" cy=\"{py:.1}\" r=\"7\" fill=\"{color}\" stroke=\"#ffffff\" stroke-width=\"1.5\"/><text x=\"{tx}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"{anchor}\">{}</text>",
            py + 3.5,
            esc(&label)
        );
    }
    s.push_str("</svg>");
    let shared: Vec<String> = n
        .shared
        .iter()
        .map(|(k, v)| {
            format!(
                "{} shared {k}{}",
                v.len(),
                if v.len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    let _ = writeln!(
        h,
        "<div class=\"net\"><figcaption>{} &middot; score {} ({})</figcaption><div class=\"facts\">{} suspects, {} victims; {} crimes and reports, {} to {}; {}; {} agencies involved{}</div>{s}</div>",
        esc(&n.id),
        n.threat.score,
        n.tier.as_str(),
        n.suspects.len(),
        n.victims.len(),
        n.events,
        esc(&n.first_event),
        esc(&n.last_event),
        esc(&n.boroughs.join(", ")),
        n.agencies.len(),
        if shared.is_empty() {
            String::new()
        } else {
            format!("; {}", esc(&shared.join(", ")))
        }
    );
}

/// Rows of a table printed in the HTML at most.
const MAX_HTML_ROWS: usize = 250;

fn table(h: &mut String, t: &Table) {
    let _ = writeln!(
        h,
        "<h3 id=\"t-{}\">{}</h3>\n<p class=\"desc\">{}{}</p>",
        esc(&t.id),
        esc(&t.title),
        esc(&t.description),
        if t.suppressed > 0 {
            format!(" {} cells withheld.", t.suppressed)
        } else {
            String::new()
        }
    );
    if t.rows.is_empty() {
        h.push_str("<p class=\"desc\"><i>Nothing to show for this period.</i></p>\n");
        return;
    }
    if t.id == "agency_overlap" {
        // Every value is printed in the heat map; a 20-column table adds
        // nothing a reader can use on paper.
        let _ = writeln!(
            h,
            "<p class=\"desc\">Every value is shown in the heat map under <i>At a glance</i>; the table is in {}.csv.</p>",
            esc(&t.id)
        );
        return;
    }
    // A printed report is not the place for thousands of rows: the CSV
    // beside it has them all.
    let shown = t.rows.len().min(MAX_HTML_ROWS);
    if shown < t.rows.len() {
        let _ = writeln!(
            h,
            "<p class=\"desc\"><b>The first {shown} of {} rows are shown here; all of them are in {}.csv.</b></p>",
            group_thousands(t.rows.len() as u64),
            esc(&t.id)
        );
    }
    h.push_str("<div class=\"tablewrap\"><table>\n<thead><tr>");
    for c in &t.columns {
        let _ = write!(h, "<th>{}</th>", esc(&c.label));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    let last = t.rows.len() - 1;
    for (i, row) in t.rows.iter().enumerate() {
        if i >= shown && !(t.margins.total_row && i == last) {
            continue;
        }
        if t.margins.total_row && i == last {
            h.push_str("<tr class=\"total\">");
        } else {
            h.push_str("<tr>");
        }
        for (c, col) in row.iter().zip(&t.columns) {
            let text = match (c, &col.kind) {
                (Cell::Number(x), Kind::Percent) => format!("{}%", format_number(*x)),
                _ => c.display(),
            };
            match c {
                Cell::Suppressed => {
                    let _ = write!(h, "<td class=\"c\">{}</td>", esc(&text));
                }
                Cell::Count(_) | Cell::Number(_) => {
                    let _ = write!(h, "<td class=\"n\">{}</td>", esc(&text));
                }
                Cell::Text(s) if is_token(s) => {
                    // A link token is long and means nothing to read: show
                    // its start, keep the whole in the tooltip and the CSV.
                    let value = s.rsplit(':').next().unwrap_or(s);
                    let _ = write!(
                        h,
                        "<td class=\"id\" title=\"{}\">{}&hellip;</td>",
                        esc(s),
                        esc(&value.chars().take(10).collect::<String>())
                    );
                }
                Cell::Text(s) if s.starts_with("n_") || s.starts_with("p_") => {
                    // Twelve characters tell ids apart on a page; the whole
                    // id is in the tooltip, the CSV and the JSON.
                    let short: String = s.chars().take(12).collect();
                    let more = if s.chars().count() > 12 {
                        "&hellip;"
                    } else {
                        ""
                    };
                    let _ = write!(
                        h,
                        "<td class=\"id\" title=\"{}\">{}{more}</td>",
                        esc(s),
                        esc(&short)
                    );
                }
                Cell::Text(s) if is_date(s) || s.chars().count() <= 14 => {
                    let _ = write!(h, "<td class=\"nw\">{}</td>", esc(&text));
                }
                Cell::Text(s) if s.chars().count() > 40 => {
                    let _ = write!(h, "<td class=\"wide\">{}</td>", esc(&text));
                }
                _ => {
                    let _ = write!(h, "<td>{}</td>", esc(&text));
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

/// `kind:key-id:value`, the shape of an agencylink pseudonym.
fn is_token(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && super::dates::parse_day(s).is_some()
}

fn method(h: &mut String, p: &Profile) {
    h.push_str("<h2 class=\"newpage\" id=\"method\">Method</h2>\n<h3>Threat score of a group-based network</h3>\n<div class=\"formula\"><ol>\n");
    for line in &p.threat.formula {
        let _ = writeln!(h, "<li>{}</li>", esc(line));
    }
    let _ = writeln!(h, "</ol><p>{}</p></div>", esc(&p.threat.tiers));
    h.push_str("<dl class=\"notes\">\n");
    for n in &p.method {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(&n.topic), esc(&n.text));
    }
    h.push_str("</dl>\n<h3>Sources</h3>\n<div class=\"tablewrap\"><table><thead><tr><th>Dataset</th><th>Title</th><th>Agency type</th><th>Read as</th><th>Records in period</th></tr></thead><tbody>\n");
    for s in &p.sources {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&s.dataset),
            esc(&s.title),
            esc(&s.agency_type),
            esc(&s.read_as),
            group_thousands(s.records)
        );
    }
    h.push_str("</tbody></table></div>\n");
}
