//! Every file of the fuzz corpus (`fuzz/corpus/TARGET/`) and every input
//! that once crashed a target (`fuzz/regressions/TARGET/`) through that
//! target, in the ordinary test run: the fuzzers' findings stay fixed, and
//! the targets themselves are checked to build and hold on their seeds.

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_and_regression_input_holds_on_its_target() {
    targets::warm();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds = 0;
    for (name, target) in targets::TARGETS {
        let corpus = files(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "target {name} has a seed corpus");
        for path in corpus
            .iter()
            .chain(&files(&root.join("regressions").join(name)))
        {
            let data = std::fs::read(path).expect("read");
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name}: {} panics", path.display());
            seeds += 1;
        }
    }
    assert!(seeds >= targets::TARGETS.len());
}
