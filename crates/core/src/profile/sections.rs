//! The profile's sections as tables: volumes, victims and suspects, the
//! multi-agency footprint, missing and CSE, places, CSE models and data
//! quality. Each is a pure function of the facts and the period.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Note;
use super::build::Ctx;
use super::dates::{human_month, month_of, months_between, parse_day};
use super::facts::{
    AgencyType, CIN_FACTORS, DisruptionRow, ETHNIC_GROUPS, Fact, Family, NO_AGE, NO_BOROUGH, NONE,
    NOT_RECORDED, Role,
};
use super::table::{Cell, Column, Kind, Table};
use crate::events::LineageEvent;
use crate::geography::BOROUGHS;
use crate::pseudo::generalise::{AGE_BANDS, age_band};

/// A crime or intelligence report: the records that share its reference.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// The reference's token (pseudonymous), or `NONE` for a record
    /// without one (counted as an event of its own).
    pub(crate) token: u32,
    pub(crate) family: Family,
    pub(crate) plan: u16,
    pub(crate) day: i32,
    pub(crate) borough: u8,
    pub(crate) cse: bool,
    pub(crate) offence: u32,
    pub(crate) outcome: u32,
    pub(crate) model: u32,
    pub(crate) premises: u32,
    pub(crate) sector: u32,
    pub(crate) people: Vec<(u32, Role)>,
    /// A record of it was written after the previous profile was built.
    pub(crate) fresh: bool,
}

/// Events of the current and previous periods, oldest first.
pub(crate) fn events(ctx: &Ctx<'_>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    for f in &ctx.c.facts {
        let family = ctx.plan(f).family;
        if !matches!(family, Family::Crime | Family::Intelligence)
            || f.day < ctx.prev_from
            || f.day > ctx.to
        {
            continue;
        }
        let slot = if f.event == NONE {
            None
        } else {
            index.get(&f.event).copied()
        };
        let i = match slot {
            Some(i) => i,
            None => {
                out.push(Event {
                    token: f.event,
                    family,
                    plan: f.plan,
                    day: f.day,
                    borough: NO_BOROUGH,
                    cse: false,
                    offence: NONE,
                    outcome: NONE,
                    model: NONE,
                    premises: NONE,
                    sector: NONE,
                    people: Vec::new(),
                    fresh: false,
                });
                if f.event != NONE {
                    index.insert(f.event, out.len() - 1);
                }
                out.len() - 1
            }
        };
        let e = &mut out[i];
        // Involvements of one crime normally agree; where they do not, the
        // earliest date and the first value given win.
        e.day = e.day.min(f.day);
        e.cse |= f.cse;
        e.fresh |= ctx.fresh(f);
        let first = |slot: &mut u32, v: u32| {
            if *slot == NONE {
                *slot = v;
            }
        };
        first(&mut e.offence, f.offence);
        first(&mut e.outcome, f.outcome);
        first(&mut e.model, f.model);
        first(&mut e.premises, f.premises);
        first(&mut e.sector, f.sector);
        if e.borough == NO_BOROUGH {
            e.borough = f.borough;
        }
        if !e.people.contains(&(f.person, f.role)) {
            e.people.push((f.person, f.role));
        }
    }
    out.sort_by_key(|e| (e.day, e.token));
    out
}

/// One volume measure.
struct Measure {
    id: String,
    label: String,
    /// For column headers of the by-month tables.
    short: String,
    family: Family,
    cse_only: bool,
    factor: u8,
    events: bool,
}

fn measures(ctx: &Ctx<'_>) -> Vec<Measure> {
    let has = |fam: Family| ctx.c.plans.iter().any(|p| p.family == fam);
    let m = |id: &str, label: String, family, cse_only, factor, events| Measure {
        id: id.to_owned(),
        short: short_measure(id, &label),
        label,
        family,
        cse_only,
        factor,
        events,
    };
    let mut out = Vec::new();
    if has(Family::Crime) {
        out.push(m(
            "cse_crimes",
            "CSE-flagged crimes".into(),
            Family::Crime,
            true,
            0,
            true,
        ));
    }
    if has(Family::Intelligence) {
        out.push(m(
            "cse_intelligence",
            "CSE-flagged intelligence reports".into(),
            Family::Intelligence,
            true,
            0,
            true,
        ));
    }
    if has(Family::Assessment) {
        let meanings = ctx
            .c
            .plans
            .iter()
            .find(|p| p.family == Family::Assessment)
            .and_then(|p| p.meanings.get("cin_factors"));
        for (i, code) in CIN_FACTORS.iter().enumerate() {
            let meaning = meanings
                .and_then(|m| m.get(*code))
                .map(|s| s.trim_end_matches(" (from 2022)").to_owned())
                .unwrap_or_default();
            out.push(m(
                &format!("cin_{}", code.to_lowercase()),
                format!("Assessments with factor {code} ({meaning})"),
                Family::Assessment,
                false,
                1 << i,
                false,
            ));
        }
    }
    if has(Family::Missing) {
        out.push(m(
            "missing_episodes",
            "Missing and away episodes".into(),
            Family::Missing,
            false,
            0,
            false,
        ));
    }
    if has(Family::Attendance) {
        out.push(m(
            "attendances",
            "Health safeguarding attendances".into(),
            Family::Attendance,
            false,
            0,
            false,
        ));
        out.push(m(
            "attendances_cse",
            "Health attendances flagged CSE".into(),
            Family::Attendance,
            true,
            0,
            false,
        ));
    }
    if has(Family::Absence) {
        out.push(m(
            "absence_episodes",
            "Education absence and exclusion episodes".into(),
            Family::Absence,
            false,
            0,
            false,
        ));
    }
    out
}

/// A column header a reader takes in at a glance.
fn short_measure(id: &str, label: &str) -> String {
    match id {
        "cse_crimes" => "CSE crimes".into(),
        "cse_intelligence" => "CSE intelligence".into(),
        "missing_episodes" => "Missing episodes".into(),
        "attendances" => "Health attendances".into(),
        "attendances_cse" => "Health, CSE flag".into(),
        "absence_episodes" => "Education episodes".into(),
        _ => match id.strip_prefix("cin_") {
            // "Assessments with factor 11A (Child sexual exploitation)" -> "11A Child sexual exploitation"
            Some(code) => format!(
                "{} {}",
                code.to_uppercase(),
                label
                    .split_once('(')
                    .map_or("", |(_, m)| m.trim_end_matches(')'))
            ),
            None => label.to_owned(),
        },
    }
}

fn borough_columns(any_unknown: bool) -> Vec<Column> {
    let mut cols: Vec<Column> = BOROUGHS
        .iter()
        .map(|b| Column::new(&b.name.to_lowercase(), b.name, Kind::Count))
        .collect();
    if any_unknown {
        cols.push(Column::new("not_known", "Not known", Kind::Count));
    }
    cols
}

/// A table of counts by borough, one row per `(row id, label, the
/// borough index of each item)`, with a total column and a total row.
fn by_borough_table(
    id: &str,
    title: &str,
    description: &str,
    label: Column,
    rows: Vec<(String, String, Vec<u8>)>,
) -> Table {
    let nb = BOROUGHS.len();
    let any_unknown = rows.iter().any(|(_, _, items)| items.contains(&NO_BOROUGH));
    let mut cols = vec![label];
    cols.extend(borough_columns(any_unknown));
    cols.push(Column::new("total", "Total", Kind::Count));
    let total_col = cols.len() - 1;
    let mut t = Table::new(id, title, description, cols);
    for (row_id, text, items) in rows {
        let mut counts = vec![0u64; nb + 1];
        for b in items {
            counts[(b as usize).min(nb)] += 1;
        }
        let mut row = vec![Cell::Text(text)];
        let take = if any_unknown { nb + 1 } else { nb };
        row.extend(counts[..take].iter().map(|&n| Cell::Count(n)));
        row.push(Cell::Count(counts.iter().sum()));
        t.push(&row_id, row);
    }
    t.margins.total_column = Some(total_col);
    t.push_total_row();
    t
}

/// Postcode sectors ranked by how many of `items` (sector, borough) each
/// holds, most first and then by name, the top `top`: each with the
/// borough most of its items are in, and the count.
fn rank_sectors(
    ctx: &Ctx<'_>,
    items: &mut dyn Iterator<Item = (u32, u8)>,
    top: usize,
) -> Vec<(u32, &'static str, u64)> {
    let nb = BOROUGHS.len();
    let mut by: HashMap<u32, (u64, [u64; 11])> = HashMap::new();
    for (sector, borough) in items {
        let e = by.entry(sector).or_default();
        e.0 += 1;
        e.1[(borough as usize).min(nb)] += 1;
    }
    let mut v: Vec<(u32, &'static str, u64)> = by
        .into_iter()
        .map(|(s, (n, b))| {
            let best = (0..=nb)
                .max_by_key(|&i| (b[i], std::cmp::Reverse(i)))
                .unwrap_or(nb);
            (s, BOROUGHS.get(best).map_or("Not known", |x| x.name), n)
        })
        .collect();
    v.sort_by(|a, b| {
        b.2.cmp(&a.2)
            .then_with(|| ctx.c.codes.name(a.0).cmp(ctx.c.codes.name(b.0)))
    });
    v.truncate(top);
    v
}

/// Volumes: totals with change, by month (both periods) and by borough.
pub(crate) fn volumes(ctx: &Ctx<'_>, events: &[Event], notes: &mut Vec<Note>) -> Vec<Table> {
    let ms = measures(ctx);
    let months = months_between(ctx.from, ctx.to);
    let prev_months = months_between(ctx.prev_from, ctx.prev_to);
    let mi = |list: &[(i32, i32)], day: i32| {
        let (y, m) = month_of(day);
        let (y0, m0) = list[0];
        ((y * 12 + m) - (y0 * 12 + m0)) as usize
    };
    let nb = BOROUGHS.len();
    let mut cur = vec![0u64; ms.len()];
    let mut prev = vec![0u64; ms.len()];
    let mut by_month = vec![vec![0u64; months.len()]; ms.len()];
    let mut by_prev_month = vec![vec![0u64; prev_months.len()]; ms.len()];
    let mut by_borough = vec![vec![0u64; nb + 1]; ms.len()];
    let mut add = |k: usize, day: i32, borough: u8| {
        if (ctx.from..=ctx.to).contains(&day) {
            cur[k] += 1;
            by_month[k][mi(&months, day)] += 1;
            by_borough[k][(borough as usize).min(nb)] += 1;
        } else if (ctx.prev_from..=ctx.prev_to).contains(&day) {
            prev[k] += 1;
            by_prev_month[k][mi(&prev_months, day)] += 1;
        }
    };
    for (k, m) in ms.iter().enumerate() {
        if m.events {
            for e in events
                .iter()
                .filter(|e| e.family == m.family && (!m.cse_only || e.cse))
            {
                add(k, e.day, e.borough);
            }
        }
    }
    for f in &ctx.c.facts {
        let fam = ctx.plan(f).family;
        for (k, m) in ms.iter().enumerate() {
            if !m.events
                && m.family == fam
                && (!m.cse_only || f.cse)
                && (m.factor == 0 || f.factors & m.factor != 0)
            {
                add(k, f.day, f.borough);
            }
        }
    }

    let mut volumes = Table::new(
        "volumes",
        "Volumes: this period and the previous one",
        "Crimes and intelligence reports are counted once each however many people they involve (by their shared reference); assessments, episodes and attendances are counted per record. A CSE-flagged crime or report is one where any involvement carries the CSE flag.",
        vec![
            Column::new("measure", "Measure", Kind::Label),
            Column::new("current", "This period", Kind::Count),
            Column::new("previous", "Previous period", Kind::Count),
            Column::derived("change", "Change", Kind::Number, &[1, 2]),
            Column::derived("change_pct", "Change %", Kind::Number, &[1, 2]),
        ],
    );
    for (k, m) in ms.iter().enumerate() {
        let change = cur[k] as f64 - prev[k] as f64;
        volumes.push(
            &m.id,
            vec![
                Cell::Text(m.label.clone()),
                Cell::Count(cur[k]),
                Cell::Count(prev[k]),
                Cell::Number(change),
                if prev[k] > 0 {
                    Cell::Number(change * 100.0 / prev[k] as f64)
                } else {
                    Cell::Empty
                },
            ],
        );
    }

    let month_table = |id: &str, title: &str, list: &[(i32, i32)], data: &[Vec<u64>]| {
        let mut cols = vec![Column::new("month", "Month", Kind::Label)];
        cols.extend(ms.iter().map(|m| Column::new(&m.id, &m.short, Kind::Count)));
        let mut t = Table::new(
            id,
            title,
            "Counted as in the volumes table, by the month of the event date. The last month may be incomplete, and recent months fill up as agencies upload late records (see timeliness under data quality).",
            cols,
        );
        for (i, &ym) in list.iter().enumerate() {
            let mut row = vec![Cell::Text(human_month(ym))];
            row.extend(data.iter().map(|d| Cell::Count(d[i])));
            t.push(&format!("{:04}-{:02}", ym.0, ym.1), row);
        }
        t.push_total_row();
        t
    };
    let monthly = month_table(
        "volumes_by_month",
        "Volumes by month, this period",
        &months,
        &by_month,
    );
    let monthly_prev = month_table(
        "volumes_by_month_previous",
        "Volumes by month, previous period",
        &prev_months,
        &by_prev_month,
    );

    let any_unknown = by_borough.iter().any(|b| b[nb] > 0);
    let mut cols = vec![Column::new("measure", "Measure", Kind::Label)];
    cols.extend(borough_columns(any_unknown));
    cols.push(Column::new("total", "Total", Kind::Count));
    let total_col = cols.len() - 1;
    let mut boroughs = Table::new(
        "volumes_by_borough",
        "Volumes by borough, this period",
        "The borough the agency gave for the record, or else the one its postcode district lies in.",
        cols,
    );
    for (k, m) in ms.iter().enumerate() {
        let mut row = vec![Cell::Text(m.label.clone())];
        let take = if any_unknown { nb + 1 } else { nb };
        row.extend(by_borough[k][..take].iter().map(|&n| Cell::Count(n)));
        row.push(Cell::Count(cur[k]));
        boroughs.push(&m.id, row);
    }
    boroughs.margins.total_column = Some(total_col);

    notes.push(Note {
        topic: "Volumes".into(),
        text: "The period is compared with the period of equal length immediately before it. Counts come from the merged store: a corrected re-upload replaces the earlier row, so figures for past months can change between editions.".into(),
    });
    vec![volumes, monthly, monthly_prev, boroughs]
}

fn percentile(sorted: &[i32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    Some(sorted[lo] as f64 * (1.0 - frac) + sorted[hi] as f64 * frac)
}

fn num(x: Option<f64>) -> Cell {
    x.map_or(Cell::Empty, Cell::Number)
}

/// The most frequent recorded value; ties go to the latest record.
fn commonest(values: impl Iterator<Item = u8>, none: u8) -> u8 {
    let mut counts: Vec<(u8, u32)> = Vec::new();
    let mut best = (none, 0u32);
    for v in values.filter(|&v| v != none) {
        let n = match counts.iter_mut().find(|(k, _)| *k == v) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                counts.push((v, 1));
                1
            }
        };
        if n >= best.1 {
            best = (v, n);
        }
    }
    best.0
}

pub(crate) struct PeopleOut {
    pub(crate) tables: Vec<Table>,
}

/// Victims and suspects, their distributions and recording, repeat
/// victimisation, the multi-agency footprint, prior agency knowledge and
/// missing before CSE.
pub(crate) fn people(ctx: &Ctx<'_>, notes: &mut Vec<Note>, caveats: &mut Vec<String>) -> PeopleOut {
    let c = ctx.c;
    let n_agencies = c.agencies.len();
    let window = ctx.s.missing_window_days as i32;
    let (mut victims, mut suspects, mut prev_victims, mut prev_suspects) = (0u64, 0u64, 0u64, 0u64);
    let (mut repeat_v, mut repeat_s) = (0u64, 0u64);
    let bands = AGE_BANDS.len();
    let mut age = [vec![0u64; bands + 1], vec![0u64; bands + 1]];
    let sex_codes = [2u8, 1, 9, 0];
    let mut sex = [vec![0u64; 4], vec![0u64; 4]];
    let mut eth = [
        vec![0u64; ETHNIC_GROUPS.len() + 1],
        vec![0u64; ETHNIC_GROUPS.len() + 1],
    ];
    let mut footprint = [[0u64; 4]; 3];
    let mut overlap = vec![vec![0u64; n_agencies]; n_agencies];
    let types = [
        AgencyType::Council,
        AgencyType::Health,
        AgencyType::Education,
    ];
    let mut police_victims = 0u64;
    let mut known_any: Vec<i32> = Vec::new();
    let mut known_type: [Vec<i32>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let has_missing = c.plans.iter().any(|p| p.family == Family::Missing);
    let (mut missing_window, mut missing_ever) = (0u64, 0u64);
    let mut keys: Vec<u64> = Vec::new();
    let mut agencies: Vec<u16> = Vec::new();
    let key = |i: usize, f: &Fact| {
        if f.event == NONE {
            u64::from(u32::MAX) + i as u64
        } else {
            u64::from(f.event)
        }
    };
    for p in 0..ctx.people() {
        let pu = p as usize;
        let mut prev_v = false;
        let mut prev_s = false;
        for f in ctx.facts_of(p).filter(|f| ctx.in_previous(f)) {
            prev_v |= f.is_victim_marker();
            prev_s |= f.role == Role::Suspect;
        }
        prev_victims += u64::from(prev_v);
        prev_suspects += u64::from(prev_s);
        if !ctx.active[pu] {
            continue;
        }
        let period = || ctx.facts_of(p).filter(|f| ctx.in_period(f));
        let sex_p = commonest(period().map(|f| f.sex), 0);
        let eth_p = commonest(period().map(|f| f.ethnic), NOT_RECORDED);
        let sex_i = sex_codes.iter().position(|&s| s == sex_p).unwrap_or(3);
        let eth_i = if eth_p == NOT_RECORDED {
            ETHNIC_GROUPS.len()
        } else {
            eth_p as usize
        };
        let age_of = |marker: &dyn Fn(&Fact) -> bool| {
            period()
                .filter(|f| marker(f) && f.age != NO_AGE)
                .map(|f| f.age)
                .next()
                .or_else(|| period().find(|f| f.age != NO_AGE).map(|f| f.age))
                .map_or(bands, |a| {
                    let b = age_band(u32::from(a));
                    AGE_BANDS.iter().position(|x| *x == b).unwrap_or(bands)
                })
        };
        for (g, is, marker) in [
            (
                0usize,
                ctx.victim[pu],
                &Fact::is_victim_marker as &dyn Fn(&Fact) -> bool,
            ),
            (1, ctx.suspect[pu], &|f: &Fact| f.role == Role::Suspect),
        ] {
            if !is {
                continue;
            }
            if g == 0 {
                victims += 1;
            } else {
                suspects += 1;
            }
            keys.clear();
            let base = ctx.start_of(p);
            for (i, f) in ctx.facts_of(p).enumerate() {
                if ctx.in_period(f) && marker(f) {
                    keys.push(key(base + i, f));
                }
            }
            keys.sort_unstable();
            keys.dedup();
            if keys.len() >= 2 {
                if g == 0 {
                    repeat_v += 1;
                } else {
                    repeat_s += 1;
                }
            }
            age[g][age_of(marker)] += 1;
            sex[g][sex_i] += 1;
            eth[g][eth_i] += 1;
        }
        agencies.clear();
        agencies.extend(ctx.facts_of(p).map(|f| f.agency));
        agencies.sort_unstable();
        agencies.dedup();
        let fp = agencies.len().clamp(1, 4) - 1;
        footprint[2][fp] += 1;
        if ctx.victim[pu] {
            footprint[0][fp] += 1;
        }
        if ctx.suspect[pu] {
            footprint[1][fp] += 1;
        }
        for &a in &agencies {
            for &b in &agencies {
                overlap[a as usize][b as usize] += 1;
            }
        }
        if !ctx.victim[pu] {
            continue;
        }
        let ty = |f: &Fact| ctx.plan(f).agency_type;
        if let Some(first_police) = ctx
            .facts_of(p)
            .find(|f| ty(f) == AgencyType::Police)
            .map(|f| f.day)
        {
            police_victims += 1;
            let earliest = |want: &dyn Fn(AgencyType) -> bool| {
                ctx.facts_of(p).find(|f| want(ty(f))).map(|f| f.day)
            };
            if let Some(e) = earliest(&|t| t != AgencyType::Police)
                && e < first_police
            {
                known_any.push(first_police - e);
            }
            for (k, t) in types.iter().enumerate() {
                if let Some(e) = earliest(&|x| x == *t)
                    && e < first_police
                {
                    known_type[k].push(first_police - e);
                }
            }
        }
        if has_missing {
            let missing: Vec<i32> = ctx
                .facts_of(p)
                .filter(|f| ctx.plan(f).family == Family::Missing)
                .map(|f| f.day)
                .collect();
            let cse_days: Vec<i32> = period()
                .filter(|f| f.is_victim_marker())
                .map(|f| f.day)
                .collect();
            if cse_days
                .iter()
                .any(|&d| missing.iter().any(|&m| m <= d && m >= d - window))
            {
                missing_window += 1;
            }
            if let (Some(&first_missing), Some(&last_cse)) = (missing.first(), cse_days.last())
                && first_missing <= last_cse
            {
                missing_ever += 1;
            }
        }
    }

    let mut tables = Vec::new();
    let mut vs = Table::new(
        "victims_suspects",
        "Victims and suspects",
        "Victims: people with a victim role in a police record, or a CSE flag or CIN factor 11A in a record about the child. Suspects: people with a suspect role. Distinct people after linkage across agencies. Repeat: two or more distinct CSE events (crimes, reports or records) in the period.",
        vec![
            Column::new("group", "Group", Kind::Label),
            Column::new("people", "This period", Kind::Count),
            Column::new("previous", "Previous period", Kind::Count),
            Column::new("repeat", "Repeat (2+ events)", Kind::Count),
            Column::derived("repeat_share", "Repeat %", Kind::Percent, &[3, 1]),
        ],
    );
    vs.push(
        "victims",
        vec![
            Cell::Text("Victims".into()),
            Cell::Count(victims),
            Cell::Count(prev_victims),
            Cell::Count(repeat_v),
            Cell::Empty,
        ],
    );
    vs.push(
        "suspects",
        vec![
            Cell::Text("Suspects".into()),
            Cell::Count(suspects),
            Cell::Count(prev_suspects),
            Cell::Count(repeat_s),
            Cell::Empty,
        ],
    );
    vs.fill_percentages();
    tables.push(vs);

    let dist = |id: &str, title: &str, labels: Vec<String>, data: &[Vec<u64>; 2], desc: &str| {
        let mut t = Table::new(
            id,
            title,
            desc,
            vec![
                Column::new("category", "Category", Kind::Label),
                Column::new("victims", "Victims", Kind::Count),
                Column::new("suspects", "Suspects", Kind::Count),
            ],
        );
        for (i, l) in labels.into_iter().enumerate() {
            let rid = l.to_lowercase().replace(' ', "_");
            t.push(
                &rid,
                vec![
                    Cell::Text(l),
                    Cell::Count(data[0][i]),
                    Cell::Count(data[1][i]),
                ],
            );
        }
        t.push_total_row();
        t
    };
    let mut age_labels: Vec<String> = AGE_BANDS.iter().map(|s| (*s).to_owned()).collect();
    age_labels.push("Not recorded".into());
    tables.push(dist(
        "age",
        "Age band",
        age_labels,
        &age,
        "Age at the person's first CSE record in the period (victims) or first suspect record (suspects), derived at ingest from the date of birth, which is not kept.",
    ));
    tables.push(dist(
        "sex",
        "Sex",
        ["Female", "Male", "Indeterminate", "Not recorded"]
            .map(str::to_owned)
            .to_vec(),
        &sex,
        "The sex most often recorded for the person across agencies in the period (the latest on a tie); \"not recorded\" when no record gives one (CIN code 0 counts as not recorded).",
    ));
    let mut eth_labels: Vec<String> = ETHNIC_GROUPS.iter().map(|s| (*s).to_owned()).collect();
    eth_labels.push("Not recorded".into());
    tables.push(dist(
        "ethnicity",
        "Ethnicity (broad group)",
        eth_labels,
        &eth,
        "Broad group of the ethnicity most often recorded for the person in the period. Police and health use the 18+1 self-defined codes, councils and schools the DfE codes; both map to the same broad groups. Not stated, refused and not obtained count as not recorded.",
    ));

    // Recording rates per agency, over the records that make people victims
    // or suspects (so an agency is judged on the records the profile uses).
    let mut rec: BTreeMap<(AgencyType, String), [u64; 4]> = BTreeMap::new();
    for f in c.facts.iter().filter(|f| ctx.in_period(f)) {
        if !(f.is_victim_marker() || f.role == Role::Suspect) {
            continue;
        }
        let e = rec
            .entry((
                ctx.plan(f).agency_type,
                c.agencies.name(u32::from(f.agency)).to_owned(),
            ))
            .or_default();
        e[0] += 1;
        e[1] += u64::from(f.sex != 0);
        e[2] += u64::from(f.ethnic != NOT_RECORDED);
        e[3] += u64::from(f.age != NO_AGE);
    }
    let mut recording = Table::new(
        "recording",
        "Recording of age, sex and ethnicity, by agency",
        "Of each agency's records about victims and suspects in the period, how many record the person's sex, ethnicity and age (date of birth). Gaps here are gaps in the distributions above.",
        vec![
            Column::new("agency", "Agency", Kind::Label),
            Column::new("records", "Records", Kind::Count),
            Column::new("sex", "Sex recorded", Kind::Count),
            Column::derived("sex_pct", "Sex %", Kind::Percent, &[2, 1]),
            Column::new("ethnicity", "Ethnicity recorded", Kind::Count),
            Column::derived("ethnicity_pct", "Ethnicity %", Kind::Percent, &[4, 1]),
            Column::new("age", "Age recorded", Kind::Count),
            Column::derived("age_pct", "Age %", Kind::Percent, &[6, 1]),
        ],
    );
    for ((_, agency), n) in &rec {
        recording.push(
            agency,
            vec![
                Cell::Text(agency.clone()),
                Cell::Count(n[0]),
                Cell::Count(n[1]),
                Cell::Empty,
                Cell::Count(n[2]),
                Cell::Empty,
                Cell::Count(n[3]),
                Cell::Empty,
            ],
        );
    }
    recording.push_total_row();
    recording.fill_percentages();
    tables.push(recording);

    let mut fp = Table::new(
        "footprint",
        "Multi-agency footprint",
        "People with a record in the period, by how many agencies hold any record of them (up to the end of the period). Each uploading agency counts once: a council's social care and its schools are two agencies.",
        vec![
            Column::new("agencies", "Known to", Kind::Label),
            Column::new("victims", "Victims", Kind::Count),
            Column::new("suspects", "Suspects", Kind::Count),
            Column::new("everyone", "Everyone", Kind::Count),
        ],
    );
    for (i, label) in ["1 agency", "2 agencies", "3 agencies", "4 or more agencies"]
        .iter()
        .enumerate()
    {
        fp.push(
            &format!("{}", i + 1),
            vec![
                Cell::Text((*label).into()),
                Cell::Count(footprint[0][i]),
                Cell::Count(footprint[1][i]),
                Cell::Count(footprint[2][i]),
            ],
        );
    }
    fp.push_total_row();
    tables.push(fp);

    // Agencies in a stable order: by type, then id.
    let mut agency_order: Vec<(AgencyType, String, usize)> = Vec::new();
    for (a, row) in overlap.iter().enumerate() {
        if row[a] == 0 {
            continue;
        }
        let t = c
            .facts
            .iter()
            .find(|f| usize::from(f.agency) == a)
            .map_or(AgencyType::Other, |f| ctx.plan(f).agency_type);
        agency_order.push((t, c.agencies.name(a as u32).to_owned(), a));
    }
    agency_order.sort();
    let mut cols = vec![Column::new("agency", "Agency", Kind::Label)];
    cols.extend(
        agency_order
            .iter()
            .map(|(_, name, _)| Column::new(name, name, Kind::Count)),
    );
    let mut ov = Table::new(
        "agency_overlap",
        "Agency overlap",
        "People with a record in the period known to both the row's and the column's agency; the diagonal is everyone the agency knows.",
        cols,
    );
    for (_, name, a) in &agency_order {
        let mut row = vec![Cell::Text(name.clone())];
        row.extend(
            agency_order
                .iter()
                .map(|(_, _, b)| Cell::Count(overlap[*a][*b])),
        );
        ov.push(name, row);
    }
    tables.push(ov);

    let mut prior = Table::new(
        "prior_knowledge",
        "Known before police",
        "Victims who have a police record, and how many of them another agency had a record of before police first recorded them (any record, at any earlier date), with how many days earlier: median and quartiles.",
        vec![
            Column::new("agency", "Known earlier to", Kind::Label),
            Column::new("victims", "Victims with a police record", Kind::Count),
            Column::new("known", "Known earlier", Kind::Count),
            Column::derived("share", "Share %", Kind::Percent, &[2, 1]),
            Column::derived("median_days", "Median days earlier", Kind::Number, &[2]),
            Column::derived("q1_days", "Lower quartile", Kind::Number, &[2]),
            Column::derived("q3_days", "Upper quartile", Kind::Number, &[2]),
        ],
    );
    let mut prior_row = |id: &str, label: &str, days: &mut Vec<i32>| {
        days.sort_unstable();
        prior.push(
            id,
            vec![
                Cell::Text(label.into()),
                Cell::Count(police_victims),
                Cell::Count(days.len() as u64),
                Cell::Empty,
                num(percentile(days, 0.5)),
                num(percentile(days, 0.25)),
                num(percentile(days, 0.75)),
            ],
        );
    };
    prior_row("any", "Any other agency", &mut known_any);
    for (k, t) in types.iter().enumerate() {
        if c.plans.iter().any(|p| p.agency_type == *t) {
            prior_row(
                &format!("{t:?}").to_lowercase(),
                t.label(),
                &mut known_type[k],
            );
        }
    }
    prior.fill_percentages();
    tables.push(prior);

    if has_missing {
        let mut mt = Table::new(
            "missing_before_cse",
            "Missing and CSE",
            &format!(
                "Victims with a missing or away episode starting in the {window} days up to and including the date of one of their CSE events in the period (and, for comparison, at any time before their last one)."
            ),
            vec![
                Column::new("measure", "Missing episode", Kind::Label),
                Column::new("victims", "Victims", Kind::Count),
                Column::new("missing", "With a missing episode", Kind::Count),
                Column::derived("share", "Share %", Kind::Percent, &[2, 1]),
            ],
        );
        mt.push(
            "window",
            vec![
                Cell::Text(format!("In the {window} days before a CSE event")),
                Cell::Count(victims),
                Cell::Count(missing_window),
                Cell::Empty,
            ],
        );
        mt.push(
            "ever",
            vec![
                Cell::Text("At any time before a CSE event".into()),
                Cell::Count(victims),
                Cell::Count(missing_ever),
                Cell::Empty,
            ],
        );
        mt.fill_percentages();
        tables.push(mt);
    }

    // Suspects without a date of birth cannot be linked by name and date of
    // birth, so one suspect in two crimes may be two people here.
    let (mut s_rec, mut s_nodob) = (0u64, 0u64);
    for f in c
        .facts
        .iter()
        .filter(|f| ctx.in_period(f) && f.role == Role::Suspect)
    {
        if ctx.plan(f).has_dob {
            s_rec += 1;
            s_nodob += u64::from(f.supplied & 2 == 0);
        }
    }
    if s_rec > 0 && s_nodob * 10 > s_rec {
        caveats.push(format!(
            "{:.0}% of suspect records have no date of birth. Records without one are linked only by an NHS number or UPN, which suspects rarely have, so one suspect named in two records may be counted as two people: suspect counts may be overstated. Inside a network, such records are matched on their name pseudonyms as well (see method), so network sizes and tiers are not affected.",
            s_nodob as f64 * 100.0 / s_rec as f64
        ));
    }
    notes.push(Note {
        topic: "People".into(),
        text: "People are the persons agencylink's linkage found: records sharing an NHS number, a UPN, or the same family name, given name and date of birth are one person. Person ids are pseudonymous and stable across runs.".into(),
    });
    notes.push(Note {
        topic: "Prior agency knowledge".into(),
        text: "For each victim with a police record, the earliest record any other agency holds is compared with the earliest police record (every date up to the end of the period, not only the period itself).".into(),
    });
    PeopleOut { tables }
}

fn code_label(ctx: &Ctx<'_>, concept: &str, code: u32) -> String {
    let Some(code) = ctx.c.code(code) else {
        return "Not recorded".into();
    };
    ctx.c
        .plans
        .iter()
        .filter_map(|p| p.meanings.get(concept).and_then(|m| m.get(code)))
        .next()
        .cloned()
        .unwrap_or_else(|| code.to_owned())
}

/// Short labels for charts and table rows: the meaning up to its first colon.
pub(crate) fn short(label: &str) -> String {
    label.split(':').next().unwrap_or(label).trim().to_owned()
}

/// A short label whose name the schema writes in single quotes (`'Boyfriend'
/// model`) keeps its quotation marks, as typographic quotes: they say the
/// word is the name of a grooming model, not the writer calling an abuser
/// the child's boyfriend (`agencylink language check` reads them so), and
/// unlike a leading ASCII apostrophe a spreadsheet does not hide them.
pub(crate) fn quoted_short(label: &str) -> String {
    let mut out = String::with_capacity(label.len() + 4);
    let mut prev: Option<char> = None;
    for c in short(label).chars() {
        out.push(match c {
            '\'' if prev.is_none_or(|p| !p.is_alphanumeric()) => '\u{2018}',
            '\'' => '\u{2019}',
            c => c,
        });
        prev = Some(c);
    }
    out
}

/// Places: top sectors of CSE events, premises by borough, and where
/// missing children were found.
pub(crate) fn places(ctx: &Ctx<'_>, events: &[Event], notes: &mut Vec<Note>) -> Vec<Table> {
    let place_events: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.cse
                && (ctx.from..=ctx.to).contains(&e.day)
                && ctx.c.plans[e.plan as usize].postcode_is_place()
        })
        .collect();
    let top = |items: &mut dyn Iterator<Item = (u32, u8)>| -> Vec<(String, String, u64)> {
        rank_sectors(ctx, items, ctx.s.top_places)
            .into_iter()
            .map(|(s, b, n)| (ctx.c.codes.name(s).to_owned(), b.to_owned(), n))
            .collect()
    };
    let sector_table =
        |id: &str, title: &str, desc: &str, what: &str, rows: Vec<(String, String, u64)>| {
            let mut t = Table::new(
                id,
                title,
                desc,
                vec![
                    Column::new("sector", "Postcode sector", Kind::Label),
                    Column::new("borough", "Borough", Kind::Text),
                    Column::new("count", what, Kind::Count),
                ],
            );
            for (s, b, n) in rows {
                t.push(
                    &s.clone(),
                    vec![Cell::Text(s), Cell::Text(b), Cell::Count(n)],
                );
            }
            t
        };
    let mut out = Vec::new();
    out.push(sector_table(
        "places_sectors",
        "Top postcode sectors of CSE crimes and intelligence",
        "Postcode sectors (e.g. OL11 1: a few thousand addresses) where CSE-flagged crimes and intelligence reports place the exploitation, most first; the full postcode is not kept.",
        "CSE events",
        top(&mut place_events
            .iter()
            .filter(|e| e.sector != NONE)
            .map(|e| (e.sector, e.borough))),
    ));

    let mut premises: Vec<u32> = place_events.iter().map(|e| e.premises).collect();
    premises.sort_unstable();
    premises.dedup();
    // Most common first; "not recorded" (NONE) last whatever its count.
    let n_of_premises = |p: u32| place_events.iter().filter(|e| e.premises == p).count();
    premises.sort_by_key(|&p| (p == NONE, std::cmp::Reverse(n_of_premises(p)), p));
    out.push(by_borough_table(
        "places_premises",
        "Premises types by borough",
        "CSE-flagged crimes and intelligence reports in the period by the type of place recorded, per borough.",
        Column::new("premises", "Premises type", Kind::Label),
        premises
            .iter()
            .map(|&p| {
                (
                    ctx.c.code(p).unwrap_or("not_recorded").to_owned(),
                    short(&code_label(ctx, "premises_type", p)),
                    place_events
                        .iter()
                        .filter(|e| e.premises == p)
                        .map(|e| e.borough)
                        .collect(),
                )
            })
            .collect(),
    ));

    if ctx.c.plans.iter().any(|p| p.family == Family::Missing) {
        let found: Vec<(u32, u8)> = ctx
            .c
            .facts
            .iter()
            .filter(|f| {
                ctx.in_period(f) && f.sector != NONE && ctx.plan(f).family == Family::Missing
            })
            .map(|f| (f.sector, f.borough))
            .collect();
        out.push(sector_table(
            "missing_found_sectors",
            "Where missing children were found",
            "Postcode sectors where children were found after a missing or away episode in the period, most first: places to check against the sectors above.",
            "Episodes",
            top(&mut found.into_iter()),
        ));
    }
    if ctx.c.plans.iter().any(|p| p.family == Family::Disruption) {
        out.extend(disruption(ctx, &place_events, notes));
    }
    notes.push(Note {
        topic: "Places".into(),
        text: "A postcode describes a place of exploitation only in datasets that also record the type of premises (police crimes and intelligence); elsewhere it is the child's address and is not used for places.".into(),
    });
    out
}

/// Places against disruption: the hotspots (the top postcode sectors and
/// the premises types of the period's CSE-flagged crimes and intelligence
/// reports) with the disruption activities recorded at each in the same
/// period, and the hotspots with none.
fn disruption(ctx: &Ctx<'_>, place_events: &[&Event], notes: &mut Vec<Note>) -> Vec<Table> {
    let acts: Vec<&DisruptionRow> = ctx
        .c
        .disruptions
        .iter()
        .filter(|d| (ctx.from..=ctx.to).contains(&d.day))
        .collect();
    // Hotspot sectors as the places table ranks them, each with the
    // activities recorded in it.
    let hot: Vec<(String, String, u64, u64)> = rank_sectors(
        ctx,
        &mut place_events
            .iter()
            .filter(|e| e.sector != NONE)
            .map(|e| (e.sector, e.borough)),
        ctx.s.top_places,
    )
    .into_iter()
    .map(|(sector, borough, n)| {
        let done = acts.iter().filter(|d| d.sector == sector).count() as u64;
        (
            ctx.c.codes.name(sector).to_owned(),
            borough.to_owned(),
            n,
            done,
        )
    })
    .collect();

    let mut premises: Vec<(u32, u64, u64)> = Vec::new();
    for e in place_events.iter().filter(|e| e.premises != NONE) {
        match premises.iter_mut().find(|p| p.0 == e.premises) {
            Some(p) => p.1 += 1,
            None => premises.push((e.premises, 1, 0)),
        }
    }
    for d in acts.iter().filter(|d| d.premises != NONE) {
        match premises.iter_mut().find(|p| p.0 == d.premises) {
            Some(p) => p.2 += 1,
            None => premises.push((d.premises, 0, 1)),
        }
    }
    premises.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| b.2.cmp(&a.2))
            .then_with(|| a.0.cmp(&b.0))
    });

    let mut sectors = Table::new(
        "places_hotspots_disruption",
        "Hotspot sectors and disruption activity",
        "The postcode sectors with the most CSE-flagged crimes and intelligence reports in the period, each with the disruption activities (visits, training, warning and closure notices, licensing reviews, weeks of action and other toolkit tactics) recorded there in the same period.",
        vec![
            Column::new("sector", "Postcode sector", Kind::Label),
            Column::new("borough", "Borough", Kind::Text),
            Column::new("cse_events", "CSE events", Kind::Count),
            Column::new("disruption", "Disruption activities", Kind::Count),
        ],
    );
    for (s, b, n, d) in &hot {
        sectors.push(
            s,
            vec![
                Cell::Text(s.clone()),
                Cell::Text(b.clone()),
                Cell::Count(*n),
                Cell::Count(*d),
            ],
        );
    }
    let mut kinds = Table::new(
        "places_premises_disruption",
        "Premises types and disruption activity",
        "CSE-flagged crimes and intelligence reports in the period by the type of place, against the disruption activities at premises of that type in the same period.",
        vec![
            Column::new("premises", "Premises type", Kind::Label),
            Column::new("cse_events", "CSE events", Kind::Count),
            Column::new("disruption", "Disruption activities", Kind::Count),
        ],
    );
    for &(p, n, d) in &premises {
        kinds.push(
            ctx.c.code(p).unwrap_or("not_recorded"),
            vec![
                Cell::Text(short(&code_label(ctx, "premises_type", p))),
                Cell::Count(n),
                Cell::Count(d),
            ],
        );
    }
    let mut none = Table::new(
        "places_hotspots_undisrupted",
        "Hotspots with no disruption activity",
        "Hotspot postcode sectors (from the table above) and premises types with CSE-flagged crimes or intelligence reports in the period but no disruption activity recorded there in the same period: places to consider for disruption.",
        vec![
            Column::new("place", "Place", Kind::Label),
            Column::new("kind", "Kind", Kind::Text),
            Column::new("borough", "Borough", Kind::Text),
            Column::new("cse_events", "CSE events", Kind::Count),
        ],
    );
    let mut undisrupted_sectors = 0;
    for (s, b, n, _) in hot.iter().filter(|h| h.3 == 0) {
        undisrupted_sectors += 1;
        none.push(
            &format!("sector:{s}"),
            vec![
                Cell::Text(s.clone()),
                Cell::Text("Postcode sector".into()),
                Cell::Text(b.clone()),
                Cell::Count(*n),
            ],
        );
    }
    let mut undisrupted_premises = 0;
    for &(p, n, _) in premises.iter().filter(|p| p.1 > 0 && p.2 == 0) {
        undisrupted_premises += 1;
        none.push(
            &format!("premises:{}", ctx.c.code(p).unwrap_or("not_recorded")),
            vec![
                Cell::Text(short(&code_label(ctx, "premises_type", p))),
                Cell::Text("Premises type".into()),
                Cell::Text(String::new()),
                Cell::Count(n),
            ],
        );
    }
    // What was done where: activities by kind and borough.
    let mut activity_codes: Vec<u32> = acts.iter().map(|d| d.activity).collect();
    activity_codes.sort_unstable();
    activity_codes.dedup();
    let n_of = |a: u32| acts.iter().filter(|d| d.activity == a).count();
    activity_codes.sort_by_key(|&a| (a == NONE, std::cmp::Reverse(n_of(a)), a));
    let by_kind = by_borough_table(
        "disruption_activities",
        "Disruption activities by kind and borough",
        "Disruption activities recorded in the period, by the toolkit tactic used and the borough.",
        Column::new("activity", "Activity", Kind::Label),
        activity_codes
            .iter()
            .map(|&a| {
                (
                    ctx.c.code(a).unwrap_or("not_recorded").to_owned(),
                    short(&code_label(ctx, "disruption_activity", a)),
                    acts.iter()
                        .filter(|d| d.activity == a)
                        .map(|d| d.borough)
                        .collect(),
                )
            })
            .collect(),
    );

    let with_premises = premises.iter().filter(|p| p.1 > 0).count();
    notes.push(Note {
        topic: "Places and disruption".into(),
        text: format!(
            "Hotspots are the top {} postcode sectors and the premises types of the period's CSE-flagged crimes and intelligence reports. Each is set against the disruption activities recorded at the same sector or type of premises in the same period ({} activities in all); an activity recorded for a whole borough, without a postcode, counts for no sector. {undisrupted_sectors} of the {} hotspot sectors and {undisrupted_premises} of the {with_premises} premises types had none. A sector or premises type with activity may still need more: the counts say where, not whether it was enough.",
            ctx.s.top_places,
            acts.len(),
            hot.len(),
        ),
    });
    vec![sectors, kinds, none, by_kind]
}

/// CSE models of the period's CSE-flagged crimes and reports.
pub(crate) fn models(ctx: &Ctx<'_>, events: &[Event], notes: &mut Vec<Note>) -> Table {
    let cse: Vec<&Event> = events
        .iter()
        .filter(|e| e.cse && (ctx.from..=ctx.to).contains(&e.day))
        .collect();
    let mut codes: Vec<u32> = cse.iter().map(|e| e.model).collect();
    codes.sort_unstable();
    codes.dedup();
    let n_of_model = |m: u32| cse.iter().filter(|e| e.model == m).count();
    codes.sort_by_key(|&m| (m == NONE, std::cmp::Reverse(n_of_model(m)), m));
    let mut t = Table::new(
        "cse_models",
        "Models of CSE",
        "CSE-flagged crimes and intelligence reports in the period by the model of exploitation recorded (the local, Barnardo's-based models).",
        vec![
            Column::new("model", "Model", Kind::Label),
            Column::new("crimes", "Crimes", Kind::Count),
            Column::new("intelligence", "Intelligence reports", Kind::Count),
            Column::new("total", "Total", Kind::Count),
        ],
    );
    for code in codes {
        let n = |fam: Family| {
            cse.iter()
                .filter(|e| e.model == code && e.family == fam)
                .count() as u64
        };
        let (a, b) = (n(Family::Crime), n(Family::Intelligence));
        t.push(
            ctx.c.code(code).unwrap_or("not_recorded"),
            vec![
                Cell::Text(quoted_short(&code_label(ctx, "cse_model", code))),
                Cell::Count(a),
                Cell::Count(b),
                Cell::Count(a + b),
            ],
        );
    }
    t.margins.total_column = Some(3);
    t.push_total_row();
    notes.push(Note {
        topic: "CSE models".into(),
        text: "The model is as the police recorded it on the crime or report; a group-based network found by the data may carry another model, and the two views are meant to be read together.".into(),
    });
    t
}

/// Data quality per agency, from lineage and the records themselves.
pub(crate) fn quality(ctx: &Ctx<'_>, notes: &mut Vec<Note>, caveats: &mut Vec<String>) -> Table {
    let c = ctx.c;
    #[derive(Default)]
    struct Q {
        agency_type: Option<AgencyType>,
        uploads: u64,
        rows_in: u64,
        rejected: u64,
        reasons: BTreeMap<String, u64>,
        fields: [(u64, u64); 3],
        delays: Vec<i32>,
    }
    let mut by: BTreeMap<String, Q> = BTreeMap::new();
    let mut upload_day: HashMap<u32, i32> = HashMap::new();
    let none = String::new();
    // A withdrawn upload's rows are no longer in the store: counting them
    // would show rejections and volumes the figures do not rest on.
    let withdrawn: HashSet<&str> = ctx
        .lineage
        .iter()
        .filter_map(|e| match e {
            LineageEvent::Withdrawn(w) => Some(w.upload_id.as_str()),
            _ => None,
        })
        .collect();
    for e in &ctx.lineage {
        // A landing object refused before it had an upload id still counts
        // as an upload of its agency, with no rows.
        let (agency, ds) = match e {
            LineageEvent::Ingest(u) if withdrawn.contains(u.upload_id.as_str()) => continue,
            LineageEvent::Ingest(u) | LineageEvent::UploadFailure(u) => (&u.agency, &u.dataset),
            LineageEvent::Failure(f) => (
                f.agency.as_ref().unwrap_or(&none),
                f.dataset.as_ref().unwrap_or(&none),
            ),
            LineageEvent::IngestStarted(_)
            | LineageEvent::LinkTrain(_)
            | LineageEvent::WithdrawalStarted(_)
            | LineageEvent::Withdrawn(_)
            | LineageEvent::ExpiryStarted(_)
            | LineageEvent::Expired(_)
            | LineageEvent::KeyRotate(_)
            | LineageEvent::KeyMigrate(_)
            | LineageEvent::ProfileBuild(_)
            | LineageEvent::Other(_) => {
                continue;
            }
        };
        let q = by.entry(agency.clone()).or_default();
        if q.agency_type.is_none() {
            q.agency_type = c.plans.iter().find(|p| p.id == *ds).map(|p| p.agency_type);
        }
        q.uploads += 1;
        let Some(u) = e.upload() else {
            continue;
        };
        q.rows_in += u.rows_in;
        q.rejected += u.rows_rejected;
        for r in &u.rejections {
            *q.reasons
                .entry(format!("{} ({})", r.field, r.code))
                .or_default() += r.count;
        }
        if let (Some(id), Some(day)) = (
            c.uploads.get(&u.upload_id),
            u.time.get(..10).and_then(parse_day),
        ) {
            upload_day.insert(id, day);
        }
    }
    for f in c.facts.iter().filter(|f| ctx.in_period(f)) {
        let plan = ctx.plan(f);
        let q = by
            .entry(c.agencies.name(u32::from(f.agency)).to_owned())
            .or_default();
        q.agency_type.get_or_insert(plan.agency_type);
        for (i, has) in [plan.has_ethnicity, plan.has_dob, plan.has_postcode]
            .into_iter()
            .enumerate()
        {
            if has {
                q.fields[i].0 += 1;
                q.fields[i].1 += u64::from(f.supplied & (1 << i) != 0);
            }
        }
        if let Some(&d) = upload_day.get(&f.upload) {
            q.delays.push(d - f.day);
        }
    }
    let mut t = Table::new(
        "data_quality",
        "Data quality by agency",
        "Uploads and rows from the lineage log (every upload the store holds; a withdrawn upload is left out); rejection reasons are the schema rules rows failed. Completeness (ethnicity, date of birth, postcode %): of the agency's records in the period whose dataset has the field, the share that supply it. Timeliness: days from the event date to the upload that brought the record.",
        vec![
            Column::new("agency", "Agency", Kind::Label),
            Column::new("agency_type", "Type", Kind::Text),
            Column::new("uploads", "Uploads", Kind::Count),
            Column::new("rows_in", "Rows", Kind::Count),
            Column::new("rows_rejected", "Rejected", Kind::Count),
            Column::derived("rejected_pct", "Rejected %", Kind::Percent, &[4, 3]),
            Column::new("top_reasons", "Top rejection reasons", Kind::Text),
            Column::new("ethnicity_pct", "Ethnicity %", Kind::Number),
            Column::new("dob_pct", "Date of birth %", Kind::Number),
            Column::new("postcode_pct", "Postcode %", Kind::Number),
            Column::new("median_days", "Days to upload (median)", Kind::Number),
            Column::new("p90_days", "Days (90th pct.)", Kind::Number),
        ],
    );
    t.disclosive = false;
    let mut order: Vec<(AgencyType, String)> = by
        .iter()
        .map(|(a, q)| (q.agency_type.unwrap_or(AgencyType::Other), a.clone()))
        .collect();
    order.sort();
    let field_names = ["ethnicity", "date of birth", "postcode"];
    let mut rejections: Vec<String> = Vec::new();
    let mut incomplete: [Vec<String>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut late: Vec<(String, f64)> = Vec::new();
    for (ty, agency) in order {
        let Some(q) = by.get_mut(&agency) else {
            continue;
        };
        let mut reasons: Vec<(&String, &u64)> = q.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let top: Vec<String> = reasons
            .iter()
            .take(3)
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        q.delays.sort_unstable();
        let pct = |(den, num): (u64, u64)| {
            if den == 0 {
                Cell::Empty
            } else {
                Cell::Number(num as f64 * 100.0 / den as f64)
            }
        };
        let median = percentile(&q.delays, 0.5);
        t.push(
            &agency,
            vec![
                Cell::Text(agency.clone()),
                Cell::Text(ty.short().into()),
                Cell::Count(q.uploads),
                Cell::Count(q.rows_in),
                Cell::Count(q.rejected),
                Cell::Empty,
                Cell::Text(top.join("; ")),
                pct(q.fields[0]),
                pct(q.fields[1]),
                pct(q.fields[2]),
                num(median),
                num(percentile(&q.delays, 0.9)),
            ],
        );
        if q.rows_in > 0 && q.rejected * 20 > q.rows_in {
            rejections.push(format!(
                "{agency} ({:.1}%; most often {})",
                q.rejected as f64 * 100.0 / q.rows_in as f64,
                top.first().map_or("see the table", String::as_str)
            ));
        }
        for (i, gaps) in incomplete.iter_mut().enumerate() {
            let (den, num) = q.fields[i];
            if den >= 20 && num * 5 < den * 4 {
                gaps.push(format!(
                    "{agency} ({:.0}%)",
                    num as f64 * 100.0 / den as f64
                ));
            }
        }
        if let Some(m) = median
            && m > 90.0
        {
            late.push((agency.clone(), m));
        }
        let future = q.delays.iter().filter(|&&d| d < 0).count();
        if future > 0 {
            caveats.push(format!(
                "{agency} sent {future} records dated after the day they were uploaded: check those event dates."
            ));
        }
    }
    // One caveat per kind of problem, naming the agencies, so a reader sees
    // the pattern rather than the same sentence twenty times.
    if !rejections.is_empty() {
        caveats.push(format!(
            "More than 5% of rows were rejected at validation for {}; rejected rows are missing from every figure.",
            list(&rejections)
        ));
    }
    for (name, gaps) in field_names.iter().zip(&incomplete) {
        if !gaps.is_empty() {
            caveats.push(format!(
                "Under 80% of records supply {name} at {}: figures that depend on it (distributions, linkage, places) under-count those agencies.",
                list(gaps)
            ));
        }
    }
    if !late.is_empty() {
        let (lo, hi) = late.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (_, m)| {
            (lo.min(*m), hi.max(*m))
        });
        let who = if late.len() <= 4 {
            list(
                &late
                    .iter()
                    .map(|(a, m)| format!("{a} ({m:.0} days)"))
                    .collect::<Vec<_>>(),
            )
        } else {
            format!(
                "{} of {} agencies (medians {lo:.0} to {hi:.0} days)",
                late.len(),
                t.rows.len()
            )
        };
        caveats.push(format!(
            "Records reached the store a median of more than 90 days after the event for {who}: recent months are likely to be under-counted until later uploads arrive, and a change on the previous period may partly reflect when agencies upload."
        ));
    }
    t.fill_percentages();
    notes.push(Note {
        topic: "Data quality".into(),
        text: "Rejected rows never reach the store: they are listed in each upload's rejection report (reports/<agency>/<dataset>/), and counted here from the lineage log, which auditors can verify.".into(),
    });
    t
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
