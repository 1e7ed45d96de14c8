//! Given-name variants: nicknames (Kate for Katherine, Bill for William)
//! and spellings of one name across transliterations (Muhammad, Mohammed,
//! Mohamed). Each group has a root; a name's roots are the roots of every
//! group it is in (Alex is in Alexander's and Alexandra's). Two given names
//! that share a root agree at the "variant" level.
//!
//! The table is part of the `agencylink-compare-v1` contract: changing it
//! changes the codes, so it is versioned with the scheme. Entries are
//! canonical `person_name` forms (lower case, letters and single spaces).

/// Variant groups: the root first, then its variants.
const GROUPS: &[&[&str]] = &[
    // Nicknames and short forms (English usage).
    &["abigail", "abi", "abbie", "abby", "gail"],
    &["alexander", "alex", "alec", "alexandr", "sandy", "xander"],
    &[
        "alexandra",
        "alex",
        "alexa",
        "lexi",
        "lexie",
        "sandra",
        "sasha",
    ],
    &["andrew", "andy", "drew"],
    &["anthony", "antony", "tony", "ant"],
    &["benjamin", "ben", "benji", "benny"],
    &[
        "catherine",
        "katherine",
        "kathryn",
        "katharine",
        "catharine",
        "cathryn",
        "kate",
        "katie",
        "katy",
        "kath",
        "kathy",
        "cathy",
        "cath",
        "kat",
        "kitty",
        "cate",
        "caitlin",
        "kathleen",
    ],
    &["charles", "charlie", "chas", "chuck"],
    &["charlotte", "charlie", "lottie", "lotte"],
    &["christopher", "chris", "kit", "topher"],
    &[
        "christine",
        "christina",
        "kristina",
        "kristine",
        "chris",
        "tina",
        "chrissy",
    ],
    &["daniel", "dan", "danny", "dani"],
    &["danielle", "dani", "daniela", "daniella"],
    &["david", "dave", "davy", "davey", "dai"],
    &["deborah", "debra", "debbie", "debs", "deb"],
    &["edward", "ed", "eddie", "eddy", "ted", "teddy", "ned"],
    &[
        "elizabeth",
        "elisabeth",
        "liz",
        "lizzie",
        "lizzy",
        "beth",
        "betty",
        "eliza",
        "libby",
        "bess",
        "elsie",
        "lisa",
        "liza",
    ],
    &[
        "eleanor", "elinor", "ellie", "nell", "nellie", "elle", "ella",
    ],
    &["emily", "em", "emmy", "millie"],
    &["emma", "em", "emmy"],
    &["frederick", "fred", "freddie", "freddy"],
    &["gabriel", "gabe", "gabby"],
    &["gabriella", "gabriela", "gabrielle", "gabby", "ella"],
    &["harold", "harry", "hal"],
    &["henry", "harry", "hal", "hank"],
    &[
        "isabella", "isabelle", "isabel", "izzy", "bella", "belle", "izabela", "izabella",
    ],
    &["jacob", "jake", "jakub", "jakob"],
    &["james", "jim", "jimmy", "jamie", "jem", "jay"],
    &["jennifer", "jen", "jenny", "jenna", "jenni"],
    &["jessica", "jess", "jessie", "jessy"],
    &[
        "john", "jack", "johnny", "jon", "jonny", "ian", "sean", "shaun", "shawn", "evan", "ivan",
        "jan", "juan", "giovanni", "jean",
    ],
    &["jonathan", "jon", "jonny", "nathan"],
    &[
        "joseph", "joe", "joey", "jo", "josef", "jozef", "yusuf", "yousef", "youssef", "yosef",
    ],
    &["joshua", "josh"],
    &["lucy", "lucie", "lucia", "luci"],
    &[
        "margaret", "maggie", "meg", "megan", "peggy", "marge", "margo", "greta", "rita", "daisy",
    ],
    &["matthew", "matt", "matty", "mateusz", "matteo"],
    &[
        "michael", "mike", "mikey", "mick", "mickey", "micky", "michal", "mikhail", "michel",
    ],
    &["nicholas", "nick", "nicky", "nico", "nicolas", "mikolaj"],
    &["nicola", "nicole", "nikki", "nicky", "nic"],
    &["oliver", "olly", "ollie"],
    &["olivia", "liv", "livvy", "livia", "ollie"],
    &["patrick", "pat", "paddy", "patryk"],
    &["peter", "pete", "piotr", "pierre", "pedro"],
    &["rebecca", "becky", "becca", "bex", "rebekah"],
    &[
        "richard", "rich", "richie", "rick", "ricky", "dick", "ryszard",
    ],
    &["robert", "rob", "robbie", "bob", "bobby", "bert", "robin"],
    &["samantha", "sam", "sammy", "sammie"],
    &["samuel", "sam", "sammy", "sami"],
    &["sophie", "sophia", "sofia", "soph", "zofia"],
    &[
        "stephen", "steven", "stephan", "stefan", "steve", "stevie", "steph",
    ],
    &["stephanie", "steph", "stephie", "stefanie"],
    &[
        "susan", "sue", "susie", "suzy", "suzanne", "susanna", "susannah",
    ],
    &["thomas", "tom", "tommy", "tomas", "tomasz"],
    &["victoria", "vicky", "vicki", "tori", "tory", "wiktoria"],
    &[
        "william", "will", "willy", "willie", "bill", "billy", "liam", "wil",
    ],
    &["zachary", "zach", "zack", "zak"],
    // Spellings across transliterations (Arabic, Urdu, Bengali, Somali
    // and other names common in Greater Manchester).
    &[
        "muhammad", "mohammed", "mohammad", "mohamed", "muhammed", "mohamad", "muhamed", "mohd",
        "mohamud", "mahammad",
    ],
    &["ahmed", "ahmad", "ahmet", "ahmede"],
    &[
        "aisha", "ayesha", "aysha", "ayisha", "aishah", "aischa", "ayshah",
    ],
    &["abdullah", "abdulla", "abdallah"],
    &["ali", "aly"],
    &["amina", "aminah", "ameena", "amena"],
    &["amir", "ameer", "emir"],
    &["amira", "ameera", "amirah"],
    &["fatima", "fatimah", "fatma", "fathima", "fatema"],
    &["hamza", "hamzah", "hamzaa"],
    &["hassan", "hasan"],
    &[
        "hussain", "hussein", "husain", "husayn", "hossain", "hosain",
    ],
    &["ibrahim", "ebrahim", "ibraheem", "ibrahima"],
    &["ismail", "ismael", "ismaeel", "esmail"],
    &["khadija", "khadijah", "khadeeja", "kadija"],
    &["maryam", "mariam", "miriam", "maryum", "mariyam"],
    &["mustafa", "mustapha", "mostafa"],
    &["noor", "nur", "nour"],
    &["omar", "umar", "omer", "umer"],
    &["rukhsana", "roxana", "ruksana"],
    &["sadia", "saadia", "sadiya"],
    &["safiya", "safia", "safiyyah", "saffiya"],
    &["sumaya", "sumaiya", "sumayyah", "somaya"],
    &["usman", "osman", "uthman", "othman"],
    &["yasmin", "yasmine", "jasmine", "jasmin", "yazmin"],
    &["yusra", "yousra", "yosra"],
    &["zainab", "zaynab", "zeinab", "zenab"],
    &["zara", "zahra", "zarah", "zaara"],
    &["zeeshan", "zishan"],
];

/// The roots of every variant group `name` belongs to, sorted; empty when
/// the name is in none. `name` is a canonical `person_name`; only its first
/// word is looked up when it has several (a middle name is often dropped).
pub fn variant_roots(name: &str) -> Vec<&'static str> {
    let first = name.split(' ').next().unwrap_or(name);
    let mut roots: Vec<&'static str> = GROUPS
        .iter()
        .filter(|g| g.contains(&first))
        .map(|g| g[0])
        .collect();
    roots.sort_unstable();
    roots.dedup();
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_share_a_root_and_ambiguous_names_have_several() {
        assert_eq!(variant_roots("kate"), ["catherine"]);
        assert_eq!(variant_roots("katherine"), ["catherine"]);
        assert_eq!(variant_roots("mohammed"), ["muhammad"]);
        assert_eq!(variant_roots("alex"), ["alexander", "alexandra"]);
        assert_eq!(variant_roots("mohammed ali"), ["muhammad"]);
        assert!(variant_roots("xyzzy").is_empty());
    }

    #[test]
    fn every_entry_is_a_canonical_name() {
        for g in GROUPS {
            for n in *g {
                assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == ' '), "{n}");
            }
        }
    }
}
