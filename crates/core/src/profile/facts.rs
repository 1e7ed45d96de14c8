//! One pass per dataset: every record the store streams is reduced to a
//! small [`Fact`] (interned ids, day numbers, code indexes), and what a
//! record's fields mean is looked up once per dataset in a [`Plan`] built
//! from the schema's `x-concept`, `x-link`, `x-generalise` annotations and
//! its `x-agency-type`. No dataset is named here: a new schema file with the
//! same annotations is profiled unchanged.
//!
//! Keeping facts rather than records is what makes a million-row profile
//! fit in seconds and tens of megabytes: the JSON body is read once, in the
//! scan callback, and dropped.

use std::collections::{BTreeMap, HashMap};

use super::body::BodyView;
use super::dates::parse_day;
use crate::geography::BOROUGHS;
use crate::ports::{BodyError, StoredRecord};
use crate::schema::{Dataset, Generalise, MatchRole};

/// A fast, non-cryptographic hasher (the rustc "Fx" multiply-rotate) for
/// the interners. Their keys are our own pseudonyms and codes, not
/// attacker-chosen, and SipHash was a visible share of a million-row build.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Strings seen once, referred to by index.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: FxMap<Box<str>, u32>,
    pub(crate) names: Vec<Box<str>>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), i);
        i
    }

    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub(crate) fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", |s| s)
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// The kind of agency a dataset comes from (`x-agency-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AgencyType {
    Police,
    Council,
    Health,
    Education,
    Other,
}

impl AgencyType {
    fn parse(s: Option<&str>) -> AgencyType {
        match s {
            Some("police") => AgencyType::Police,
            Some("council") => AgencyType::Council,
            Some("health") => AgencyType::Health,
            Some("education") => AgencyType::Education,
            _ => AgencyType::Other,
        }
    }

    /// The `x-agency-type` word.
    pub(crate) fn short(self) -> &'static str {
        match self {
            AgencyType::Police => "police",
            AgencyType::Council => "council",
            AgencyType::Health => "health",
            AgencyType::Education => "education",
            AgencyType::Other => "other",
        }
    }

    /// How a reader names the agency type.
    pub(crate) fn label(self) -> &'static str {
        match self {
            AgencyType::Police => "Police",
            AgencyType::Council => "Children's social care",
            AgencyType::Health => "Health",
            AgencyType::Education => "Education",
            AgencyType::Other => "Other agencies",
        }
    }
}

/// What a dataset contributes to the profile, decided from its concepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Family {
    /// Police, with an `offence` concept: recorded crimes.
    Crime,
    /// Police without an offence: intelligence reports.
    Intelligence,
    /// With `cin_factors`: referrals and assessments.
    Assessment,
    /// With `missing_type`: missing and away episodes.
    Missing,
    /// From health: safeguarding attendances.
    Attendance,
    /// With `episode_type` (or from education): absence and exclusion episodes.
    Absence,
    /// With `case_ref`: investigations (operations) and the crimes
    /// they cover. A row is about an investigation, not a person, so it is
    /// kept apart from the person facts (see [`CaseRow`]).
    Investigation,
    /// With `disruption_activity`: disruption activities at places (visits,
    /// notices, closures, training). Not about a person either: kept apart
    /// (see [`DisruptionRow`]) and set against the places of CSE.
    Disruption,
    /// Anything else: counted in footprints and data quality only.
    Other,
}

/// One disruption activity, reduced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DisruptionRow {
    pub(crate) day: i32,
    /// Index into [`BOROUGHS`], or [`NO_BOROUGH`].
    pub(crate) borough: u8,
    /// Interned postcode sector, or [`NONE`] (a borough-wide activity).
    pub(crate) sector: u32,
    /// Interned premises type code, or [`NONE`].
    pub(crate) premises: u32,
    /// Interned activity code.
    pub(crate) activity: u32,
}

/// A person's part in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Victim,
    Suspect,
    /// Witness, associate, …
    Other,
    /// A dataset without a role column is about the child.
    Subject,
}

/// The CIN factors the volumes count, in report order. They are national
/// codes (DfE CIN census), not dataset names; their labels come from the
/// schema's `x-codes`.
pub(crate) const CIN_FACTORS: [&str; 5] = ["11A", "10A", "12A", "13A", "24A"];
/// Bit of [`CIN_FACTORS`]' CSE factor (11A) in [`Fact::factors`].
pub(crate) const CSE_FACTOR_BIT: u8 = 1;

/// Broad ethnic groups (`x-group`) in report order; "Not recorded" is last.
pub(crate) const ETHNIC_GROUPS: [&str; 5] = ["White", "Mixed", "Asian", "Black", "Other"];
pub(crate) const NOT_RECORDED: u8 = u8::MAX;

/// How to read one dataset's records.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) agency_type: AgencyType,
    pub(crate) family: Family,
    role: Option<String>,
    sex: Option<String>,
    ethnicity: Option<String>,
    ethnic_group: BTreeMap<String, String>,
    cse_flag: Option<String>,
    offence: Option<String>,
    outcome: Option<String>,
    model: Option<String>,
    factors: Option<String>,
    premises: Option<String>,
    /// The `disruption_activity` field.
    activity: Option<String>,
    /// The kind of the `x-link` that is the agency's own reference (crime,
    /// intel): records sharing it are one event.
    event_link: Option<String>,
    /// `derived.<field>_sector` of the first postcode field.
    sector: Option<String>,
    /// The date-of-birth field (age derived from it).
    dob: Option<String>,
    /// The postcode field the sector comes from.
    postcode: Option<String>,
    /// The family and given name fields (`x-match`), whose pseudonyms let a
    /// network count one suspect named in several records once.
    names: Option<(String, String)>,
    /// Investigation fields (`case_ref`, `case_status`, `threat_category`,
    /// `closed_date`, `peer_review_status`, `peer_review_date`,
    /// `lead_team`), by concept.
    case_fields: BTreeMap<&'static str, String>,
    /// Code meanings per concept, for labels.
    pub(crate) meanings: BTreeMap<&'static str, BTreeMap<String, String>>,
    pub(crate) has_ethnicity: bool,
    pub(crate) has_dob: bool,
    pub(crate) has_postcode: bool,
}

impl Plan {
    pub(crate) fn new(ds: &Dataset) -> Plan {
        let name = |c: &str| ds.field_for(c).map(|f| f.name.clone());
        let agency_type = AgencyType::parse(ds.agency_type.as_deref());
        let has = |c: &str| ds.field_for(c).is_some();
        // The same test as `Dataset::is_about_people`.
        let family = if has("case_ref") {
            Family::Investigation
        } else if has("disruption_activity") {
            Family::Disruption
        } else if agency_type == AgencyType::Police && has("offence") {
            Family::Crime
        } else if agency_type == AgencyType::Police {
            Family::Intelligence
        } else if has("cin_factors") {
            Family::Assessment
        } else if has("missing_type") {
            Family::Missing
        } else if agency_type == AgencyType::Health {
            Family::Attendance
        } else if has("episode_type") || agency_type == AgencyType::Education {
            Family::Absence
        } else {
            Family::Other
        };
        let event_link = ds
            .fields()
            .iter()
            .find(|f| f.link.is_some() && f.identifier == Some(crate::pseudo::Kind::LocalRef))
            .and_then(|f| f.link.clone());
        let sector_field = ds
            .fields()
            .iter()
            .find(|f| f.generalise == Some(Generalise::Sector));
        let dob = ds
            .fields()
            .iter()
            .find(|f| f.generalise == Some(Generalise::Age))
            .map(|f| f.name.clone());
        let by_match = |role: MatchRole| {
            ds.fields()
                .iter()
                .find(|f| f.match_role == Some(role))
                .map(|f| f.name.clone())
        };
        let names = by_match(MatchRole::Family).zip(by_match(MatchRole::Given));
        let mut meanings = BTreeMap::new();
        for concept in [
            "offence",
            "outcome",
            "cse_model",
            "premises_type",
            "cin_factors",
            "threat_category",
            "case_status",
            "peer_review_status",
            "disruption_activity",
        ] {
            if let Some(f) = ds.field_for(concept) {
                meanings.insert(concept, f.meanings.clone());
            }
        }
        let mut case_fields = BTreeMap::new();
        for concept in CASE_CONCEPTS {
            if let Some(f) = ds.field_for(concept) {
                case_fields.insert(concept, f.name.clone());
            }
        }
        Plan {
            id: ds.id.clone(),
            title: ds.title.clone(),
            agency_type,
            family,
            role: name("person_role"),
            sex: name("sex"),
            ethnicity: name("ethnicity"),
            ethnic_group: ds
                .field_for("ethnicity")
                .map(|f| f.groups.clone())
                .unwrap_or_default(),
            cse_flag: name("cse_flag"),
            offence: name("offence"),
            outcome: name("outcome"),
            model: name("cse_model"),
            factors: name("cin_factors"),
            premises: name("premises_type"),
            activity: name("disruption_activity"),
            event_link,
            sector: sector_field.map(|f| format!("{}_sector", f.name)),
            postcode: sector_field.map(|f| f.name.clone()),
            names,
            has_ethnicity: has("ethnicity"),
            has_dob: dob.is_some(),
            has_postcode: sector_field.is_some(),
            dob,
            case_fields,
            meanings,
        }
    }

    /// The link kind of the dataset's own event reference, if any.
    pub(crate) fn event_kind(&self) -> Option<&str> {
        self.event_link.as_deref()
    }

    /// Whether the dataset's postcode says where the event happened (it
    /// sits beside a place type), rather than where the child lives.
    pub(crate) fn postcode_is_place(&self) -> bool {
        self.premises.is_some() && self.sector.is_some()
    }
}

/// The concepts an investigation row is read by.
const CASE_CONCEPTS: [&str; 7] = [
    "case_ref",
    "case_status",
    "threat_category",
    "closed_date",
    "peer_review_status",
    "peer_review_date",
    "lead_team",
];

/// One investigation row (one crime covered by one investigation), reduced.
/// Codes are interned in [`Collected::codes`], the operation reference's
/// pseudonym and the crime links in [`Collected::tokens`].
#[derive(Debug, Clone)]
pub(crate) struct CaseRow {
    /// The operation reference's pseudonym, or [`NONE`].
    pub(crate) case: u32,
    /// Opened (the row's event date).
    pub(crate) opened: i32,
    pub(crate) closed: Option<i32>,
    /// `open`, `suspended`, `closed` (interned), or [`NONE`].
    pub(crate) status: u32,
    /// The threat category code (interned), or [`NONE`].
    pub(crate) threat: u32,
    pub(crate) peer_status: u32,
    pub(crate) peer_date: Option<i32>,
    pub(crate) team: u32,
    /// The links the row carries: (kind, token), interned.
    pub(crate) links: Vec<(u8, u32)>,
}

/// One record, reduced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fact {
    pub(crate) person: u32,
    pub(crate) agency: u16,
    pub(crate) plan: u16,
    pub(crate) day: i32,
    /// Index into [`BOROUGHS`], or `u8::MAX` when not known.
    pub(crate) borough: u8,
    pub(crate) role: Role,
    pub(crate) cse: bool,
    /// Bits of [`CIN_FACTORS`].
    pub(crate) factors: u8,
    /// CIN sex code: 1, 2 or 9; 0 when not recorded.
    pub(crate) sex: u8,
    /// Index into [`ETHNIC_GROUPS`], or [`NOT_RECORDED`].
    pub(crate) ethnic: u8,
    /// Age at the event, or `u8::MAX`.
    pub(crate) age: u8,
    /// The event (crime, report) this record is part of, or `u32::MAX`.
    pub(crate) event: u32,
    /// Interned codes (`u32::MAX` when blank).
    pub(crate) offence: u32,
    pub(crate) outcome: u32,
    pub(crate) model: u32,
    pub(crate) premises: u32,
    pub(crate) sector: u32,
    pub(crate) upload: u32,
    /// The (family, given) name pseudonyms of a victim or suspect record,
    /// as two interned ids, or [`NO_NAME`].
    pub(crate) name: u64,
    /// Completeness bits: 1 ethnicity, 2 date of birth, 4 postcode supplied.
    pub(crate) supplied: u8,
}

pub(crate) const NONE: u32 = u32::MAX;
pub(crate) const NO_BOROUGH: u8 = u8::MAX;
pub(crate) const NO_AGE: u8 = u8::MAX;
pub(crate) const NO_NAME: u64 = u64::MAX;

/// A link a record carries: the token and its kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkFact {
    pub(crate) fact: u32,
    pub(crate) token: u32,
    pub(crate) kind: u8,
}

/// Everything the scans collected.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) plans: Vec<Plan>,
    pub(crate) facts: Vec<Fact>,
    pub(crate) links: Vec<LinkFact>,
    pub(crate) people: Interner,
    pub(crate) agencies: Interner,
    pub(crate) codes: Interner,
    pub(crate) tokens: Interner,
    pub(crate) uploads: Interner,
    pub(crate) link_kinds: Interner,
    pub(crate) names: Interner,
    /// Investigation rows, kept apart from the person facts.
    pub(crate) cases: Vec<CaseRow>,
    /// Investigation and disruption rows, by plan and day (for the
    /// sources list).
    pub(crate) case_rows: Vec<(u16, i32)>,
    /// Disruption activities, kept apart from the person facts.
    pub(crate) disruptions: Vec<DisruptionRow>,
    /// Records skipped because their event date is not a date.
    pub(crate) bad_dates: u64,
}

impl Collected {
    /// Reduce one record of the dataset planned at `plan_idx`.
    /// Fails only when the record's stored body is corrupt.
    pub(crate) fn add(&mut self, plan_idx: u16, r: &StoredRecord) -> Result<(), BodyError> {
        let Some(day) = parse_day(&r.event_date) else {
            self.bad_dates += 1;
            return Ok(());
        };
        let body = BodyView::parse(r.body.as_str()).ok_or(BodyError)?;
        // Borrow the parts separately: the plan is read while the
        // interners grow, and nothing is copied per record.
        let Collected {
            plans,
            facts,
            links,
            people,
            agencies,
            codes,
            tokens,
            uploads,
            link_kinds,
            names,
            ..
        } = self;
        let plan = &plans[plan_idx as usize];
        if plan.family == Family::Investigation {
            // Not a person: no fact, so no person id, role or network
            // membership comes from it. Its crime links tie it to the
            // people of those crimes in the profile's investigation
            // sections instead.
            let get = |concept: &str| -> Option<&str> {
                let name = plan.case_fields.get(concept)?;
                body.field_str(name).filter(|s| !s.is_empty())
            };
            let code = |codes: &mut Interner, concept: &str| {
                get(concept).map_or(NONE, |s| codes.intern(s))
            };
            let row = CaseRow {
                case: get("case_ref").map_or(NONE, |s| tokens.intern(s)),
                opened: day,
                closed: get("closed_date").and_then(parse_day),
                status: code(codes, "case_status"),
                threat: code(codes, "threat_category"),
                peer_status: code(codes, "peer_review_status"),
                peer_date: get("peer_review_date").and_then(parse_day),
                team: code(codes, "lead_team"),
                links: r
                    .links
                    .iter()
                    .map(|l| (link_kinds.intern(&l.kind) as u8, tokens.intern(&l.token)))
                    .collect(),
            };
            self.cases.push(row);
            self.case_rows.push((plan_idx, day));
            return Ok(());
        }
        let borough = body
            .borough()
            .and_then(|b| BOROUGHS.iter().position(|x| x.name == b))
            .map_or(NO_BOROUGH, |i| i as u8);
        let sector = plan
            .sector
            .as_deref()
            .and_then(|k| body.derived_str(k))
            .filter(|s| !s.is_empty())
            .map_or(NONE, |s| codes.intern(s));
        if plan.family == Family::Disruption {
            // An activity at a place, not a person: no fact.
            let code = |codes: &mut Interner, name: &Option<String>| {
                name.as_deref()
                    .and_then(|n| body.field_str(n))
                    .filter(|s| !s.is_empty())
                    .map_or(NONE, |s| codes.intern(s))
            };
            let row = DisruptionRow {
                day,
                borough,
                sector,
                premises: code(codes, &plan.premises),
                activity: code(codes, &plan.activity),
            };
            self.disruptions.push(row);
            self.case_rows.push((plan_idx, day));
            return Ok(());
        }
        let field = |n: &str| -> Option<&str> { body.field_str(n).filter(|s| !s.is_empty()) };
        let text = |name: &Option<String>| name.as_deref().and_then(field);
        let role = match text(&plan.role) {
            _ if plan.role.is_none() => Role::Subject,
            Some(r) if r.contains("victim") => Role::Victim,
            Some(r) if r.contains("suspect") => Role::Suspect,
            _ => Role::Other,
        };
        let sex = match text(&plan.sex) {
            Some("1") => 1,
            Some("2") => 2,
            Some("9") => 9,
            _ => 0,
        };
        let ethnic = text(&plan.ethnicity)
            .and_then(|code| plan.ethnic_group.get(code))
            .and_then(|g| ETHNIC_GROUPS.iter().position(|x| x == g))
            .map_or(NOT_RECORDED, |i| i as u8);
        let cse = plan
            .cse_flag
            .as_deref()
            .and_then(|n| body.field_bool(n))
            .unwrap_or(false);
        let mut factors = 0u8;
        if let Some(items) = plan.factors.as_deref().and_then(|n| body.field_strs(n)) {
            for item in items {
                if let Some(i) = CIN_FACTORS.iter().position(|c| *c == item) {
                    factors |= 1 << i;
                }
            }
        }
        let age = body
            .derived_u64("age")
            .map_or(NO_AGE, |a| a.min(u64::from(NO_AGE - 1)) as u8);
        let mut supplied = 0u8;
        if text(&plan.ethnicity).is_some() {
            supplied |= 1;
        }
        if text(&plan.dob).is_some() {
            supplied |= 2;
        }
        if text(&plan.postcode).is_some() {
            supplied |= 4;
        }
        let mut code = |name: &Option<String>| text(name).map_or(NONE, |s| codes.intern(s));
        let (offence, outcome, model, premises) = (
            code(&plan.offence),
            code(&plan.outcome),
            code(&plan.model),
            code(&plan.premises),
        );
        // Names only matter for resolving victims and suspects inside a
        // network; other records skip the (large) interner.
        let name = match (&plan.names, role) {
            (Some((fam, giv)), Role::Victim | Role::Suspect) => match (field(fam), field(giv)) {
                (Some(a), Some(b)) => {
                    (u64::from(names.intern(a)) << 32) | u64::from(names.intern(b))
                }
                _ => NO_NAME,
            },
            _ => NO_NAME,
        };
        let fact_idx = facts.len() as u32;
        let mut event = NONE;
        for l in &r.links {
            let token = tokens.intern(&l.token);
            let kind = link_kinds.intern(&l.kind) as u8;
            if event == NONE && plan.event_link.as_deref() == Some(l.kind.as_str()) {
                event = token;
            }
            links.push(LinkFact {
                fact: fact_idx,
                token,
                kind,
            });
        }
        facts.push(Fact {
            person: people.intern(&r.person_id),
            agency: agencies.intern(&r.agency) as u16,
            plan: plan_idx,
            day,
            borough,
            role,
            cse,
            factors,
            sex,
            ethnic,
            age,
            event,
            offence,
            outcome,
            model,
            premises,
            sector,
            upload: uploads.intern(&r.upload_id),
            name,
            supplied,
        });
        Ok(())
    }

    pub(crate) fn plan(&self, f: &Fact) -> &Plan {
        &self.plans[f.plan as usize]
    }

    pub(crate) fn code(&self, i: u32) -> Option<&str> {
        (i != NONE).then(|| self.codes.name(i))
    }
}

impl Fact {
    /// Whether the record marks its person as a CSE victim: a victim role,
    /// or, in a dataset about the child, a CSE flag or the CSE CIN factor.
    pub(crate) fn is_victim_marker(&self) -> bool {
        match self.role {
            Role::Victim => true,
            Role::Subject => self.cse || self.factors & CSE_FACTOR_BIT != 0,
            _ => false,
        }
    }
}
