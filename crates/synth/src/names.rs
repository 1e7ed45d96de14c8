//! Built-in name lists and ethnicities for synthetic people.
//!
//! The lists reflect the diversity of Greater Manchester (British, Irish,
//! Traveller, Roma, Eastern European, South Asian, African, Caribbean,
//! Chinese, Arab and other heritages) so that linkage is exercised on the
//! names it will really meet: apostrophes (`O'Brien`), hyphens
//! (`Al-Hashimi`), diacritics (`Róisín`, `Dvořák`) and very common surnames
//! (`Khan`, `Smith`) shared by many unrelated people. They are generic first
//! and family names, never case data. Every name keeps its canonical form
//! when upper- or lower-cased (no `ß`, no dotted `İ`), so a case change never
//! changes the match key.

use crate::rng::Rng;

/// Sex, as the DfE CIN census records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Code 1.
    Male,
    /// Code 2.
    Female,
    /// Code 9.
    Indeterminate,
}

impl Sex {
    /// The CIN census code (`1`, `2`, `9`).
    pub fn cin_code(self) -> &'static str {
        match self {
            Sex::Male => "1",
            Sex::Female => "2",
            Sex::Indeterminate => "9",
        }
    }
}

/// A person's ethnicity, independent of any dataset's code list. Each
/// dataset's own code is found through its `x-group` and `x-codes` wording
/// (see `Ethnicity::matcher`), so DfE (`APKN`) and police (`A2`) lists
/// both work, as would a new list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Ethnicity {
    WhiteBritish,
    WhiteIrish,
    IrishTraveller,
    GypsyRoma,
    OtherWhite,
    MixedWhiteBlackCaribbean,
    MixedWhiteBlackAfrican,
    MixedWhiteAsian,
    OtherMixed,
    Indian,
    Pakistani,
    Bangladeshi,
    Chinese,
    OtherAsian,
    BlackCaribbean,
    BlackAfrican,
    OtherBlack,
    Arab,
    OtherEthnicGroup,
}

/// How to find an ethnicity's code in a schema: the broad group (`x-group`)
/// and phrases tried in order against the lower-cased `x-codes` meaning.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EthnicityMatcher {
    pub(crate) group: &'static str,
    pub(crate) phrases: &'static [&'static str],
    pub(crate) not: &'static [&'static str],
}

impl Ethnicity {
    /// Every ethnicity with its share per thousand children (roughly Greater
    /// Manchester's school population).
    pub(crate) const ALL: [(Ethnicity, u32); 19] = [
        (Ethnicity::WhiteBritish, 640),
        (Ethnicity::WhiteIrish, 8),
        (Ethnicity::IrishTraveller, 4),
        (Ethnicity::GypsyRoma, 6),
        (Ethnicity::OtherWhite, 50),
        (Ethnicity::MixedWhiteBlackCaribbean, 18),
        (Ethnicity::MixedWhiteBlackAfrican, 10),
        (Ethnicity::MixedWhiteAsian, 14),
        (Ethnicity::OtherMixed, 14),
        (Ethnicity::Indian, 20),
        (Ethnicity::Pakistani, 100),
        (Ethnicity::Bangladeshi, 20),
        (Ethnicity::Chinese, 10),
        (Ethnicity::OtherAsian, 14),
        (Ethnicity::BlackCaribbean, 8),
        (Ethnicity::BlackAfrican, 40),
        (Ethnicity::OtherBlack, 6),
        (Ethnicity::Arab, 10),
        (Ethnicity::OtherEthnicGroup, 8),
    ];

    /// How to find this ethnicity's code in a schema's code list.
    pub(crate) fn matcher(self) -> EthnicityMatcher {
        let m = |group, phrases, not| EthnicityMatcher {
            group,
            phrases,
            not,
        };
        match self {
            Ethnicity::WhiteBritish => m("White", &["british"], &[]),
            Ethnicity::WhiteIrish => m("White", &["irish"], &["traveller"]),
            Ethnicity::IrishTraveller => m("White", &["traveller"], &[]),
            Ethnicity::GypsyRoma => m("White", &["roma", "gypsy"], &[]),
            Ethnicity::OtherWhite => m("White", &["other white"], &[]),
            Ethnicity::MixedWhiteBlackCaribbean => m("Mixed", &["black caribbean"], &[]),
            Ethnicity::MixedWhiteBlackAfrican => m("Mixed", &["black african"], &[]),
            Ethnicity::MixedWhiteAsian => m("Mixed", &["white and asian"], &[]),
            Ethnicity::OtherMixed => m("Mixed", &["other mixed"], &[]),
            Ethnicity::Indian => m("Asian", &["indian"], &[]),
            Ethnicity::Pakistani => m("Asian", &["pakistani"], &[]),
            Ethnicity::Bangladeshi => m("Asian", &["bangladeshi"], &[]),
            Ethnicity::Chinese => m("Asian", &["chinese"], &[]),
            Ethnicity::OtherAsian => m("Asian", &["other asian"], &[]),
            Ethnicity::BlackCaribbean => m("Black", &["caribbean"], &[]),
            Ethnicity::BlackAfrican => m("Black", &["african"], &[]),
            Ethnicity::OtherBlack => m("Black", &["other black"], &[]),
            Ethnicity::Arab => m("Other", &["arab"], &[]),
            Ethnicity::OtherEthnicGroup => m("Other", &["other ethnic"], &[]),
        }
    }

    /// Draw an ethnicity by population share.
    pub(crate) fn draw(rng: &mut Rng) -> Ethnicity {
        let mut x = rng.below(1000) as u32;
        for (e, w) in Ethnicity::ALL {
            if x < w {
                return e;
            }
            x -= w;
        }
        Ethnicity::WhiteBritish
    }
}

/// Family names and given names of one heritage.
struct Pool {
    family: &'static [&'static str],
    female: &'static [&'static str],
    male: &'static [&'static str],
}

const BRITISH: Pool = Pool {
    family: &[
        "Smith",
        "Jones",
        "Taylor",
        "Brown",
        "Williams",
        "Wilson",
        "Johnson",
        "Davies",
        "Robinson",
        "Wright",
        "Thompson",
        "Evans",
        "Walker",
        "White",
        "Roberts",
        "Green",
        "Hall",
        "Wood",
        "Jackson",
        "Clarke",
        "Hughes",
        "Edwards",
        "Lee",
        "Harris",
        "Turner",
        "Cooper",
        "Hill",
        "Morris",
        "Moore",
        "Baker",
        "Harrison",
        "Parker",
        "Cook",
        "Mitchell",
        "Bennett",
        "Shaw",
        "Holt",
        "Ashworth",
        "Butterworth",
        "Whittaker",
        "Hargreaves",
        "Ramsbottom",
        "Entwistle",
        "Crompton",
        "Kershaw",
        "Schofield",
        "Greenhalgh",
        "Howarth",
        "Lord",
        "Booth",
        "Fletcher",
        "Barlow",
        "Pilling",
        "Heywood",
        "Smith-Jones",
        "Tattersall",
        "Ogden",
        "Sutcliffe",
    ],
    female: &[
        "Olivia",
        "Amelia",
        "Isla",
        "Ava",
        "Mia",
        "Lily",
        "Grace",
        "Sophie",
        "Chloe",
        "Ellie",
        "Jessica",
        "Emily",
        "Megan",
        "Holly",
        "Lucy",
        "Freya",
        "Evie",
        "Poppy",
        "Charlotte",
        "Ruby",
        "Millie",
        "Daisy",
        "Phoebe",
        "Leah",
        "Abbie",
        "Courtney",
        "Jade",
        "Kayleigh",
        "Bethany",
        "Paige",
        "Sarah",
        "Emma",
        "Lisa",
        "Karen",
        "Nicola",
        "Joanne",
        "Michelle",
        "Rebecca",
        "Claire",
        "Laura",
        "Zoë",
        "Amy-Leigh",
    ],
    male: &[
        "Oliver", "George", "Harry", "Jack", "Noah", "Charlie", "Jacob", "Thomas", "James",
        "William", "Joshua", "Daniel", "Ryan", "Liam", "Connor", "Callum", "Kyle", "Lewis",
        "Ethan", "Alfie", "Mason", "Tyler", "Jordan", "Jake", "Luke", "Adam", "Ben", "Sam",
        "Matthew", "Dylan", "Michael", "David", "Paul", "Mark", "Lee", "Craig", "Darren", "Wayne",
        "Gary", "Stephen",
    ],
};

const IRISH: Pool = Pool {
    family: &[
        "Murphy",
        "O'Brien",
        "Kelly",
        "Byrne",
        "Ryan",
        "O'Connor",
        "McCarthy",
        "Doyle",
        "Gallagher",
        "O'Neill",
        "Quinn",
        "Brennan",
        "Fitzgerald",
        "McGrath",
        "Nolan",
        "Kavanagh",
    ],
    female: &[
        "Niamh", "Siobhán", "Aoife", "Ciara", "Róisín", "Orla", "Saoirse", "Caoimhe", "Maeve",
        "Sinéad", "Bridget", "Kathleen",
    ],
    male: &[
        "Cian", "Oisín", "Seán", "Ciarán", "Darragh", "Eoin", "Pádraig", "Conor", "Declan",
        "Ronan", "Patrick", "Martin",
    ],
};

const TRAVELLER: Pool = Pool {
    family: &[
        "Doherty", "McDonagh", "Connors", "Joyce", "Maughan", "Stokes", "Ward", "Sheridan", "Cash",
        "Delaney",
    ],
    female: IRISH.female,
    male: IRISH.male,
};

const ROMA: Pool = Pool {
    family: &[
        "Horváth",
        "Lakatos",
        "Balog",
        "Kolompár",
        "Duda",
        "Rostas",
        "Stojka",
        "Oláh",
    ],
    female: &[
        "Denisa",
        "Nikola",
        "Vanesa",
        "Sabina",
        "Esmeralda",
        "Klaudia",
        "Bianka",
        "Renata",
    ],
    male: &[
        "Roman", "Patrik", "Dominik", "Marian", "Denis", "Rudolf", "Erik", "Radek",
    ],
};

const EASTERN_EUROPEAN: Pool = Pool {
    family: &[
        "Nowak",
        "Kowalczyk",
        "Wójcik",
        "Kaczmarek",
        "Mazur",
        "Krawczyk",
        "Zając",
        "Popescu",
        "Ionescu",
        "Horvat",
        "Novák",
        "Dvořák",
        "Kazlauskas",
        "Petrauskas",
        "Bērziņš",
        "Kozak",
        "Shevchenko",
    ],
    female: &[
        "Zuzanna",
        "Julia",
        "Natalia",
        "Aleksandra",
        "Oliwia",
        "Maja",
        "Weronika",
        "Ioana",
        "Andreea",
        "Kateřina",
        "Jana",
        "Ewa",
        "Agnieszka",
        "Lucie",
    ],
    male: &[
        "Jakub", "Kacper", "Szymon", "Mateusz", "Bartosz", "Filip", "Andrei", "Mihai", "Tomáš",
        "Lukas", "Dawid", "Paweł", "Marek", "Piotr",
    ],
};

const PAKISTANI: Pool = Pool {
    family: &[
        "Khan", "Ahmed", "Hussain", "Ali", "Iqbal", "Akhtar", "Mahmood", "Shah", "Butt", "Rashid",
        "Malik", "Qureshi", "Chaudhry", "Raja", "Anwar", "Aslam", "Rehman", "Nawaz", "Saleem",
        "Javed", "Bashir", "Latif", "Mirza", "Sadiq",
    ],
    female: &[
        "Aisha", "Fatima", "Zara", "Maryam", "Amina", "Hafsa", "Sana", "Noor", "Ayesha", "Safa",
        "Iqra", "Mariam", "Hira", "Samina", "Nadia", "Khadija", "Zainab", "Rabia",
    ],
    male: &[
        "Muhammad", "Ibrahim", "Yusuf", "Zain", "Hamza", "Ayaan", "Imran", "Bilal", "Adam",
        "Zakariya", "Usman", "Omar", "Ali", "Hassan", "Faisal", "Tariq", "Asif", "Kamran",
        "Shahid", "Sajid", "Adnan", "Arslan",
    ],
};

const INDIAN: Pool = Pool {
    family: &[
        "Patel", "Singh", "Sharma", "Mistry", "Gill", "Sandhu", "Parmar", "Chauhan", "Joshi",
        "Mehta", "Desai", "Lad", "Solanki", "Kapoor", "Dhillon", "Bains",
    ],
    female: &[
        "Priya", "Anjali", "Simran", "Harpreet", "Jasleen", "Kiran", "Neha", "Pooja", "Riya",
        "Anika", "Navdeep", "Sunita",
    ],
    male: &[
        "Arjun", "Rohan", "Aarav", "Vikram", "Harjit", "Manpreet", "Rahul", "Dev", "Karan",
        "Sanjay", "Gurpreet", "Ravi",
    ],
};

const BANGLADESHI: Pool = Pool {
    family: &[
        "Miah",
        "Uddin",
        "Rahman",
        "Islam",
        "Chowdhury",
        "Hoque",
        "Ahmed",
        "Alam",
        "Hossain",
        "Karim",
    ],
    female: PAKISTANI.female,
    male: PAKISTANI.male,
};

const CHINESE: Pool = Pool {
    family: &[
        "Chen", "Wang", "Li", "Zhang", "Liu", "Wong", "Lam", "Cheung", "Chan", "Ng", "Ho", "Yip",
        "Tang", "Lau",
    ],
    female: &["Mei", "Xin", "Ying", "Jia", "Hui", "Lin", "Yan", "Qing"],
    male: &["Wei", "Jun", "Hao", "Ming", "Jian", "Kai", "Bo", "Cheng"],
};

const OTHER_ASIAN: Pool = Pool {
    family: &[
        "Nguyen", "Tran", "Santos", "Reyes", "Cruz", "Perera", "Fernando", "Silva", "Kim", "Park",
        "Rai", "Gurung", "Tamang",
    ],
    female: &[
        "Linh", "Mai", "Maria", "Angel", "Tashi", "Nirmala", "Ji-woo", "Dilini",
    ],
    male: &[
        "Minh", "Duc", "Jose", "Tenzin", "Bishal", "Arun", "Min-jun", "Kasun",
    ],
};

const AFRICAN: Pool = Pool {
    family: &[
        "Okafor", "Adeyemi", "Mensah", "Osei", "Boateng", "Okoye", "Nwosu", "Adebayo", "Oluwole",
        "Abdi", "Mohamed", "Hassan", "Farah", "Warsame", "Tesfaye", "Bekele", "Dlamini", "Kamara",
        "Sesay",
    ],
    female: &[
        "Amara", "Chiamaka", "Precious", "Blessing", "Nia", "Imani", "Ama", "Hodan", "Ifrah",
        "Adaeze", "Deborah", "Esther", "Favour", "Abena",
    ],
    male: &[
        "Kwame",
        "Chidi",
        "Tobi",
        "Emmanuel",
        "Samuel",
        "Kofi",
        "Abdullahi",
        "Tunde",
        "Femi",
        "Jide",
        "Mustafa",
        "Daniel",
        "Joseph",
        "Kwabena",
    ],
};

const CARIBBEAN: Pool = Pool {
    family: &[
        "Campbell", "Brown", "Grant", "Francis", "Reid", "Clarke", "Morgan", "Williams",
        "Thompson", "Bailey", "Henry", "Lewis", "Stewart", "Gordon", "Richards", "Forbes",
    ],
    female: &[
        "Shanice",
        "Tanisha",
        "Aaliyah",
        "Keisha",
        "Jada",
        "Nevaeh",
        "Kayla",
        "Shantelle",
        "Tia",
        "Chantelle",
    ],
    male: &[
        "Jayden",
        "Tyrese",
        "Marcus",
        "Dwayne",
        "Leon",
        "Kyrie",
        "Andre",
        "Jermaine",
        "Nathaniel",
        "Reuben",
    ],
};

const ARAB: Pool = Pool {
    family: &[
        "Haddad",
        "Nasser",
        "Saleh",
        "Abdullah",
        "Al-Hashimi",
        "Mansour",
        "Khalil",
        "Hamdan",
        "Saeed",
        "Al-Amin",
        "Darwish",
        "Hijazi",
    ],
    female: &[
        "Layla", "Yasmin", "Nour", "Rania", "Salma", "Huda", "Lina", "Reem",
    ],
    male: &[
        "Omar", "Karim", "Youssef", "Ahmad", "Khalid", "Sami", "Tarek", "Rami",
    ],
};

const OTHER_ETHNIC: Pool = Pool {
    family: &[
        "Rodríguez",
        "García",
        "Hernández",
        "Karimi",
        "Ahmadi",
        "Rostami",
        "Yilmaz",
        "Demir",
        "Kaya",
    ],
    female: &["Lucía", "Sofía", "Elif", "Zeynep", "Parisa", "Shirin"],
    male: &["Mateo", "Diego", "Emre", "Mehmet", "Reza", "Dariush"],
};

/// The heritages a person of `e` draws family and given names from
/// (mixed heritage draws each from either side).
fn pools(e: Ethnicity) -> (&'static Pool, &'static Pool) {
    match e {
        Ethnicity::WhiteBritish => (&BRITISH, &BRITISH),
        Ethnicity::WhiteIrish => (&IRISH, &IRISH),
        Ethnicity::IrishTraveller => (&TRAVELLER, &TRAVELLER),
        Ethnicity::GypsyRoma => (&ROMA, &ROMA),
        Ethnicity::OtherWhite => (&EASTERN_EUROPEAN, &EASTERN_EUROPEAN),
        Ethnicity::MixedWhiteBlackCaribbean => (&BRITISH, &CARIBBEAN),
        Ethnicity::MixedWhiteBlackAfrican => (&BRITISH, &AFRICAN),
        Ethnicity::MixedWhiteAsian => (&BRITISH, &PAKISTANI),
        Ethnicity::OtherMixed => (&BRITISH, &ARAB),
        Ethnicity::Indian => (&INDIAN, &INDIAN),
        Ethnicity::Pakistani => (&PAKISTANI, &PAKISTANI),
        Ethnicity::Bangladeshi => (&BANGLADESHI, &BANGLADESHI),
        Ethnicity::Chinese => (&CHINESE, &CHINESE),
        Ethnicity::OtherAsian => (&OTHER_ASIAN, &OTHER_ASIAN),
        Ethnicity::BlackCaribbean => (&CARIBBEAN, &CARIBBEAN),
        Ethnicity::BlackAfrican => (&AFRICAN, &AFRICAN),
        Ethnicity::OtherBlack => (&AFRICAN, &CARIBBEAN),
        Ethnicity::Arab => (&ARAB, &ARAB),
        Ethnicity::OtherEthnicGroup => (&OTHER_ETHNIC, &OTHER_ETHNIC),
    }
}

/// A `(family, given)` name for someone of `ethnicity` and `sex`.
pub(crate) fn draw_names(
    rng: &mut Rng,
    ethnicity: Ethnicity,
    sex: Sex,
) -> (&'static str, &'static str) {
    let (a, b) = pools(ethnicity);
    let family_pool = if rng.chance(0.5) { a } else { b };
    let given_pool = if rng.chance(0.5) { a } else { b };
    let female = match sex {
        Sex::Female => true,
        Sex::Male => false,
        Sex::Indeterminate => rng.chance(0.5),
    };
    let given_list = if female {
        given_pool.female
    } else {
        given_pool.male
    };
    let family = rng.pick(family_pool.family).copied().unwrap_or("Smith");
    let given = rng.pick(given_list).copied().unwrap_or("Sam");
    (family, given)
}

/// The share of people whose given name satisfies `pred`, under the same
/// draw as [`draw_names`] (ethnicity shares, either heritage of a mixed
/// one, female and male lists equally likely).
pub(crate) fn given_share(pred: impl Fn(&str) -> bool) -> f64 {
    share(|pool| {
        let frac = |list: &[&str]| {
            list.iter().filter(|n| pred(n)).count() as f64 / list.len().max(1) as f64
        };
        (frac(pool.female) + frac(pool.male)) / 2.0
    })
}

/// The share of people whose family name satisfies `pred` (as
/// [`given_share`]).
pub(crate) fn family_share(pred: impl Fn(&str) -> bool) -> f64 {
    share(|pool| {
        pool.family.iter().filter(|n| pred(n)).count() as f64 / pool.family.len().max(1) as f64
    })
}

fn share(per_pool: impl Fn(&Pool) -> f64) -> f64 {
    Ethnicity::ALL
        .iter()
        .map(|&(e, w)| {
            let (a, b) = pools(e);
            f64::from(w) / 1000.0 * (per_pool(a) + per_pool(b)) / 2.0
        })
        .sum()
}

/// A family name someone of `ethnicity` might have (for a second surname).
pub(crate) fn draw_family_name(rng: &mut Rng, ethnicity: Ethnicity) -> &'static str {
    let (a, b) = pools(ethnicity);
    let pool = if rng.chance(0.5) { a } else { b };
    rng.pick(pool.family).copied().unwrap_or("Smith")
}

/// Every given name in the lists.
#[cfg(test)]
pub(crate) fn all_given() -> Vec<&'static str> {
    Ethnicity::ALL
        .iter()
        .flat_map(|&(e, _)| {
            let (a, b) = pools(e);
            [a.female, a.male, b.female, b.male]
        })
        .flatten()
        .copied()
        .collect()
}

/// Every family name in the lists.
#[cfg(test)]
pub(crate) fn all_family() -> Vec<&'static str> {
    Ethnicity::ALL
        .iter()
        .flat_map(|&(e, _)| {
            let (a, b) = pools(e);
            [a.family, b.family]
        })
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_names_survive_case_changes() {
        assert_eq!(Ethnicity::ALL.iter().map(|(_, w)| w).sum::<u32>(), 1000);
        for e in Ethnicity::ALL.map(|(e, _)| e) {
            let (a, b) = pools(e);
            for pool in [a, b] {
                for name in pool.family.iter().chain(pool.female).chain(pool.male) {
                    assert_eq!(
                        name.to_uppercase().to_lowercase(),
                        name.to_lowercase(),
                        "{name}"
                    );
                    assert!(!name.contains(','), "{name}");
                }
            }
        }
    }
}
