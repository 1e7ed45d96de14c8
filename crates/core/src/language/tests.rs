//! The lexicon against its own examples, and each input kind.

use super::*;

fn lexicon() -> Lexicon {
    Lexicon::embedded().expect("the embedded lexicon is valid")
}

/// A lexicon of one entry, so an example is checked against its own entry.
fn only(lex: &Lexicon, id: &str) -> Lexicon {
    Lexicon {
        sources: lex.sources.clone(),
        entries: lex.entries.iter().filter(|e| e.id == id).cloned().collect(),
    }
}

#[test]
fn every_entry_is_found_in_its_example() {
    let lex = lexicon();
    assert!(lex.entries().len() >= 15);
    for e in lex.entries() {
        let found = lex.check_text(&e.example);
        assert!(
            found.iter().any(|f| f.id == e.id),
            "entry `{}` is not found in its example {:?} (found {:?})",
            e.id,
            e.example,
            found.iter().map(|f| &f.id).collect::<Vec<_>>()
        );
        let f = found.iter().find(|f| f.id == e.id).expect("found");
        assert_eq!(f.reason, e.reason);
        assert_eq!(f.suggestion, e.suggestion);
        assert!(!f.source.is_empty() && f.source == e.citation);
    }
}

#[test]
fn every_unless_rule_exempts_its_example_and_is_needed_there() {
    let lex = lexicon();
    let mut rules = 0;
    for e in lex.entries() {
        let one = only(&lex, &e.id);
        for rule in &e.unless {
            rules += 1;
            let example = rule.example();
            assert!(
                !one.hits(example, false).is_empty(),
                "entry `{}`: the words are not in the rule's example {example:?}",
                e.id
            );
            assert!(
                one.check_text(example).is_empty(),
                "entry `{}`: the rule does not exempt {example:?}",
                e.id
            );
        }
    }
    assert!(rules >= 5, "the lexicon has context rules");
}

#[test]
fn every_entry_cites_a_source_by_title_publisher_and_year() {
    let lex = lexicon();
    for (key, citation) in lex.sources() {
        assert!(
            citation.chars().any(|c| c.is_ascii_digit()),
            "source {key} has no year"
        );
        assert!(!citation.contains("http"), "cite by title, not URL: {key}");
    }
    for e in lex.entries() {
        assert!(lex.sources().contains_key(&e.source), "{}", e.id);
    }
}

#[test]
fn phrases_match_whole_words_in_any_case_and_inflection() {
    let lex = lexicon();
    let ids = |t: &str| -> Vec<String> { lex.check_text(t).into_iter().map(|f| f.id).collect() };
    assert_eq!(
        ids("She PUTS HERSELF AT RISK."),
        ["putting-themselves-at-risk"]
    );
    assert_eq!(
        ids("they placed themselves at risk"),
        ["putting-themselves-at-risk"]
    );
    assert_eq!(ids("Hard-to-reach family."), ["difficult-to-engage"]);
    assert_eq!(ids("risk taking behaviours"), ["risk-taking-behaviour"]);
    // Whole words only: no match inside another word.
    assert!(ids("The sextingale report; consentience.").is_empty());
    // Not across a sentence end.
    assert!(ids("She was put herself. At risk of harm.").is_empty());
    // Curly apostrophes are apostrophes.
    assert!(ids("A child can\u{2019}t consent.").is_empty());
}

#[test]
fn consent_rules_negation_and_age_of_consent() {
    let lex = lexicon();
    let ids = |t: &str| -> Vec<String> { lex.check_text(t).into_iter().map(|f| f.id).collect() };
    assert!(ids("Children are unable to give consent to exploitation.").is_empty());
    assert!(ids("She is under the age of consent.").is_empty());
    assert_eq!(ids("He said she consented."), ["consent"]);
    // A negation in the previous sentence does not exempt.
    assert_eq!(ids("It was not reported. She consented."), ["consent"]);
}

#[test]
fn findings_carry_line_column_phrase_and_short_context() {
    let lex = lexicon();
    let text = "Visit on Monday.\nStaff say the girl is very Streetwise and knows the area well enough to be safe.\n";
    let f = lex.check_text(text);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].line, f[0].column), (2, 28));
    assert_eq!(f[0].phrase, "Streetwise");
    assert_eq!(f[0].id, "streetwise");
    assert!(f[0].context.contains("very Streetwise and"));
    assert!(f[0].context.chars().count() <= 30 + 30 + "Streetwise".len() + 2);
    assert!(f[0].context.starts_with('…') && f[0].context.ends_with('…'));
    // Short text: no ellipsis.
    assert_eq!(lex.check_text("He absconded.")[0].context, "He absconded.");
    assert!(f[0].field.is_none());
}

#[test]
fn html_markup_split_phrases_are_found_and_scripts_are_not_read() {
    let lex = lexicon();
    let html = "<!doctype html><html><head><title>Case</title>\n<style>p::after{content:'sexually active'}</style>\n<script>var s = \"child prostitute\";</script></head>\n<body><p>She is <em>sexually</em>\n<b>active</b> &amp; was described as &quot;streetwise&quot;.</p>\n<!-- promiscuous -->\n<p>The man called it a lifestyle&nbsp;choice.</p><p>child</p><p>pornography</p></body></html>";
    let f = lex.check_html(html);
    let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["sexually-active", "streetwise", "lifestyle-choice"]);
    // Positions point into the HTML source.
    assert_eq!((f[0].line, f[0].column), (4, 21));
    assert_eq!(f[0].phrase, "sexually active");
    assert_eq!(f[2].line, 7);
    // Entities decoded in the context.
    assert!(f[1].context.contains("\"streetwise\""), "{}", f[1].context);
}

#[test]
fn html_entities_and_soft_hyphens() {
    let lex = lexicon();
    let f = lex.check_html("<p>An ab&shy;sconder &#8211; she absconded&#x2e;</p>");
    assert_eq!(f.len(), 2, "{f:?}");
    // A lone `<` is text, not a tag.
    let f = lex.check_html("<p>if a < b she is promiscuous</p>");
    assert_eq!(f.len(), 1);
}

#[test]
fn markdown_markers_do_not_hide_a_phrase() {
    let lex = lexicon();
    let md = "# Notes\n\n- She is a **child** _prostitute_ according to the log.\n- Her `boyfriend` is 30.\n";
    let f = lex.check(InputKind::Markdown, md, None).expect("markdown");
    let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["child-prostitution", "boyfriend-girlfriend"]);
    assert_eq!((f[0].line, f[0].column), (3, 14));
}

#[test]
fn csv_checks_only_the_named_columns() {
    let lex = lexicon();
    let csv = "ref,note,outcome\nA1,\"She absconded.\nLater she was\nsexually active\",sexually active\nA2,nothing of note,difficult to engage\n";
    let cols = vec!["note".to_owned()];
    let f = lex.check_csv(csv, Some(&cols)).expect("csv");
    let got: Vec<(&str, usize, Option<&str>)> = f
        .iter()
        .map(|f| (f.id.as_str(), f.line, f.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("absconded", 2, Some("note")),
            ("sexually-active", 4, Some("note"))
        ]
    );
    let all = lex.check_csv(csv, None).expect("csv");
    assert_eq!(all.len(), 4);
    let err = lex
        .check_csv(csv, Some(&["notes".to_owned()]))
        .expect_err("unknown column");
    assert!(matches!(err, LanguageError::UnknownColumn { .. }));
    assert!(err.to_string().contains("ref, note, outcome"), "{err}");
    assert!(matches!(
        lex.check(InputKind::Text, "x", Some(&cols)),
        Err(LanguageError::ColumnsNotCsv)
    ));
}

#[test]
fn lexicon_files_are_checked() {
    let good = r#"{"format":"agencylink-lexicon-v1","sources":{"s":"Someone, Title, 2020"},"entries":[
        {"id":"a","patterns":["put|puts herself at risk"],"reason":"r","suggestion":"s","source":"s","example":"She puts herself at risk."}]}"#;
    let lex = Lexicon::parse(good).expect("valid");
    assert_eq!(lex.check_text("she put herself at risk").len(), 1);
    for (bad, why) in [
        (
            good.replace("\"source\":\"s\"", "\"source\":\"x\""),
            "source",
        ),
        (good.replace("at risk", "at-risk"), "single word"),
        (good.replace("agencylink-lexicon-v1", "v0"), "format"),
        (good.replace("\"example\"", "\"exemple\""), "unknown field"),
        (
            good.replace("\"reason\":\"r\"", "\"reason\":\" \""),
            "empty reason",
        ),
    ] {
        let err = Lexicon::parse(&bad).expect_err(why).to_string();
        assert!(err.contains(why), "{why}: {err}");
    }
}

#[test]
fn input_kind_from_file_name() {
    assert_eq!(InputKind::from_file_name("a/profile.HTML"), InputKind::Html);
    assert_eq!(InputKind::from_file_name("notes.md"), InputKind::Markdown);
    assert_eq!(InputKind::from_file_name("x.csv"), InputKind::Csv);
    assert_eq!(InputKind::from_file_name("x.txt"), InputKind::Text);
    assert_eq!(InputKind::from_file_name("README"), InputKind::Text);
}

#[test]
fn consent_to_a_service_is_not_reported_but_consent_to_abuse_is() {
    let lex = lexicon();
    let ids = |t: &str| -> Vec<String> { lex.check_text(t).into_iter().map(|f| f.id).collect() };
    assert!(ids("Consent for the referral was given by her father.").is_empty());
    assert!(ids("Informed consent obtained.").is_empty());
    assert_eq!(ids("She consented to the sexual activity."), ["consent"]);
}
