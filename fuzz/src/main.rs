//! The fuzz binary: `agencylink-fuzz TARGET` runs one target of
//! [`targets`] under AFL++ (build it with `cargo afl build`; see
//! `tests/fuzz.sh`). Outside AFL++, it runs the target once on standard
//! input, which is how a crash is replayed.

mod targets;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(&(_, target)) = targets::TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<_> = targets::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "usage: agencylink-fuzz TARGET (one of {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    // The schemas and the key are loaded once, before AFL++ starts
    // forking, so every run does the same work for the same input.
    targets::warm();
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
