//! Replays the committed seeds (`corpus/<target>/seed-*`) and the saved crash
//! reproducers (`regressions/<target>/*`) through the fuzz targets' bodies, without
//! libFuzzer: `cargo test` in `fuzz/`.
//!
//! A reproducer of a bug listed in `gslbd_fuzz::invariants::known_issue` (reported, not
//! fixed yet) must still fail; once the bug is fixed this test says so, and its arm in
//! `known_issue` goes. Every other reproducer must pass.

use std::path::Path;

use gslbd_fuzz::invariants::check_reply;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 3] = [
    ("request", gslbd_fuzz::targets::request),
    ("config", gslbd_fuzz::targets::config),
    ("zone", gslbd_fuzz::targets::zone),
];

/// Runs every file of `dir/<target>/` whose name passes `keep`; returns how many ran.
fn replay(dir: &str, keep: fn(&str) -> bool) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut n = 0;
    for (name, target) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if !path.is_file() || !keep(&file) {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            eprintln!("{name}: {}", path.display());
            let known = (name == "request")
                .then(|| gslbd_fuzz::invariants::known_issue(&data))
                .flatten();
            match known {
                None => target(&data),
                Some(issue) => {
                    let pick = gslbd_fuzz::fixture::request().pick(&data);
                    let mut out = Vec::new();
                    gslbd::server::answer_datagram(&data, pick.src, pick.state, &mut out);
                    let verdict = check_reply(&data, &out, pick.rate_limited);
                    eprintln!("  known issue {issue}: {verdict:?}");
                    assert!(
                        verdict.is_err(),
                        "{}: known issue {issue} no longer reproduces: remove it from \
                         invariants::known_issue",
                        path.display()
                    );
                }
            }
            n += 1;
        }
    }
    n
}

#[test]
fn seeds_pass() {
    let n = replay("corpus", |f| f.starts_with("seed-"));
    assert!(
        n >= 30,
        "only {n} seeds found; run `cargo run --example seeds`"
    );
}

#[test]
fn regressions_pass() {
    replay("regressions", |f| {
        !f.starts_with('.') && !f.ends_with(".md")
    });
}
