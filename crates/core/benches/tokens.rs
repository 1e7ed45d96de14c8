//! Throughput of pseudonymisation on one core: tokens per second per kind,
//! for raw values (canonicalise + token) and for already-canonical values
//! (token only), over about a million realistic values each.
//!
//! Run with `cargo bench -p agencylink-core --bench tokens`. A measurement
//! to read, not a test: it asserts nothing about speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use agencylink_core::pseudo::{
    Key, Kind, Pseudonymiser, canonicalise, nhs_check_digit, upn_check_letter,
};

const N: usize = 1_000_000;
const AGENCY: &str = "rochdale-council";

/// A small deterministic generator, so every run measures the same values.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const FAMILY: &[&str] = &[
    "Smith",
    "Jones",
    "Khan",
    "Ahmed",
    "O'Brien",
    "Taylor",
    "Brown",
    "Hussain",
    "Wilson",
    "Nguyen",
    "Kowalski",
    "Müller",
    "Evans",
    "Thomas",
    "Roberts",
    "Ali",
    "Begum",
    "Walsh",
    "Patel",
    "Ahmed-Hussain",
    "McDonald",
    "Green",
    "Hall",
    "Wood",
    "Clarke",
];
const GIVEN: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Muhammad", "Noah", "Oliver", "Zoë", "José", "Leo", "Aisha",
    "Fatima", "Jack", "Mia", "Grace", "Harry", "Chloé", "Ruby", "Sophie", "Adam",
];
const AREAS: &[&str] = &[
    "OL11", "OL12", "M1", "M14", "BL1", "SK4", "WN6", "M40", "OL16", "M24",
];

fn values(kind: Kind, rng: &mut XorShift) -> Vec<String> {
    (0..N).map(|_| value(kind, rng)).collect()
}

fn value(kind: Kind, rng: &mut XorShift) -> String {
    match kind {
        Kind::NhsNumber => loop {
            let nine = format!("999{:06}", rng.below(1_000_000));
            if let Some(check) = nhs_check_digit(nine.as_bytes()) {
                break match rng.below(3) {
                    0 => format!("{}{check}", nine),
                    1 => format!("{} {} {}{check}", &nine[..3], &nine[3..6], &nine[6..]),
                    _ => format!("{}-{}-{}{check}", &nine[..3], &nine[3..6], &nine[6..]),
                };
            }
        },
        Kind::PersonName => {
            let name = if rng.below(2) == 0 {
                rng.pick(FAMILY)
            } else {
                rng.pick(GIVEN)
            };
            match rng.below(4) {
                0 => name.to_uppercase(),
                1 => format!(" {name} "),
                _ => name.to_owned(),
            }
        }
        Kind::Date => {
            let (y, m, d) = (1990 + rng.below(30), 1 + rng.below(12), 1 + rng.below(28));
            match rng.below(3) {
                0 => format!("{y}-{m:02}-{d:02}"),
                1 => format!("{d:02}/{m:02}/{y}"),
                _ => format!("{y}-{m:02}-{d:02}T00:00:00Z"),
            }
        }
        Kind::Postcode => {
            let letters = b"ABDEFGHJLNPQRSTUWXYZ";
            let l1 = char::from(letters[rng.below(20) as usize]);
            let l2 = char::from(letters[rng.below(20) as usize]);
            let pc = format!("{} {}{l1}{l2}", rng.pick(AREAS), rng.below(10));
            if rng.below(3) == 0 {
                pc.to_lowercase()
            } else {
                pc
            }
        }
        Kind::Phone => match rng.below(3) {
            0 => format!("07700 900{:03}", rng.below(1000)),
            1 => format!("+44 7700 900{:03}", rng.below(1000)),
            _ => format!("0161 496 0{:03}", rng.below(1000)),
        },
        Kind::Email => format!(
            "{}.{}{}@Example.org",
            rng.pick(GIVEN),
            rng.pick(FAMILY),
            rng.below(100)
        ),
        Kind::Vrm => {
            let l = |rng: &mut XorShift| char::from(b'A' + rng.below(26) as u8);
            let (a, b, c, d, e) = (l(rng), l(rng), l(rng), l(rng), l(rng));
            let vrm = format!("{a}{b}{:02} {c}{d}{e}", rng.below(100));
            if rng.below(2) == 0 {
                vrm.to_lowercase()
            } else {
                vrm
            }
        }
        Kind::LocalRef => format!("CR/{:04}/{:02}", rng.below(10_000), 18 + rng.below(8)),
        Kind::Upn => {
            let body = format!("{}{:09}", 350 + rng.below(10), rng.below(1_000_000_000));
            let check = upn_check_letter(&body).unwrap_or('A');
            format!("{check}{body}")
        }
        Kind::Match => String::new(),
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn main() {
    let key = Key::from_base64("bench", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("valid bench key");
    let p = Pseudonymiser::new(key);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);

    println!("{N} values per kind, one core");
    println!(
        "{:<12} {:>14} {:>14} {:>10}",
        "kind", "raw tokens/s", "canon tokens/s", "rejected"
    );
    for kind in Kind::ALL {
        if kind == Kind::Match {
            continue;
        }
        let raw = values(kind, &mut rng);
        let canon: Vec<String> = raw
            .iter()
            .filter_map(|v| canonicalise(kind, v, AGENCY).ok().map(|c| c.into_owned()))
            .collect();

        let mut out = String::with_capacity(64);
        let mut rejected = 0usize;
        let start = Instant::now();
        for v in &raw {
            out.clear();
            if p.pseudonymise_into(kind, v, AGENCY, &mut out).is_err() {
                rejected += 1;
            }
            black_box(&out);
        }
        let raw_rate = rate(raw.len(), start.elapsed());

        let start = Instant::now();
        for c in &canon {
            out.clear();
            p.token_into(kind, c, &mut out);
            black_box(&out);
        }
        let canon_rate = rate(canon.len(), start.elapsed());
        println!(
            "{:<12} {:>14.0} {:>14.0} {:>10}",
            kind.as_str(),
            raw_rate,
            canon_rate,
            rejected
        );
    }

    // Match keys from canonical parts, as linkage builds them.
    let nhs: Vec<String> = (0..N)
        .map(|_| {
            let v = value(Kind::NhsNumber, &mut rng);
            canonicalise(Kind::NhsNumber, &v, "")
                .map(|c| c.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let start = Instant::now();
    for n in &nhs {
        black_box(p.mk_nhs(n));
    }
    println!("{:<12} {:>14.0}", "mk_nhs", rate(N, start.elapsed()));

    let people: Vec<(String, String, String)> = (0..N)
        .map(|_| {
            let c = |kind: Kind, v: &str| {
                canonicalise(kind, v, "")
                    .map(|c| c.into_owned())
                    .unwrap_or_default()
            };
            let (f, g) = (rng.pick(FAMILY), rng.pick(GIVEN));
            let d = value(Kind::Date, &mut rng);
            (
                c(Kind::PersonName, f),
                c(Kind::PersonName, g),
                c(Kind::Date, &d),
            )
        })
        .collect();
    let start = Instant::now();
    for (f, g, d) in &people {
        black_box(p.mk_name_dob(f, g, d));
    }
    println!("{:<12} {:>14.0}", "mk_name_dob", rate(N, start.elapsed()));

    let upns = values(Kind::Upn, &mut rng);
    let start = Instant::now();
    for u in &upns {
        let _ = black_box(p.mk_upn(u));
    }
    println!("{:<12} {:>14.0}", "mk_upn", rate(N, start.elapsed()));
}
