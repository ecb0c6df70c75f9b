//! The repository's own example deployment (`gslb.toml`, `zones/`) and the README that
//! documents it: `check` accepts it, it serves, and every `$ dig` line in the README's
//! console blocks prints what the README says it prints. Also every config under
//! `examples/` must pass `check`, and SIGTERM stops the server cleanly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{self, Gslbd};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_deployment_checks_ok() {
    let out = harness::check(&repo().join("gslb.toml"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_config_under_examples_checks_ok() {
    let mut configs = Vec::new();
    find_configs(&repo().join("examples"), &mut configs);
    for config in configs {
        let out = harness::check(&config);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn find_configs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            find_configs(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn example_serves_its_zone() {
    let s = Gslbd::start(&repo().join("gslb.toml"), &[]);
    let r = dns::udp(s.udp, &query("static.gslb.example.com.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    let r = dns::udp(s.udp, &query("db.gslb.example.com.", RecordType::A));
    assert_eq!(
        dns::answer_data(&r, RecordType::A),
        ["192.0.2.20", "192.0.2.21"]
    );
}

/// `$ command` lines of the README's ```console blocks, each with the lines it prints.
fn readme_transcripts() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_console = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_console = line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push((cmd.to_string(), Vec::new()));
        } else if let Some((_, expected)) = out.last_mut() {
            expected.push(line.to_string());
        }
    }
    out.into_iter()
        .filter(|(cmd, _)| cmd.starts_with("dig "))
        .collect()
}

#[test]
fn readme_dig_lines_print_what_the_readme_says() {
    let transcripts = readme_transcripts();
    assert!(
        transcripts.len() >= 5,
        "README should show dig examples: {transcripts:?}"
    );
    if Command::new("dig").arg("-v").output().is_err() {
        // CI installs dig (.ci/run); a developer machine may lack it.
        assert!(
            std::env::var_os("CI").is_none(),
            "dig is required in CI (apt-get install bind9-dnsutils)"
        );
        eprintln!("skipped: dig is not installed (apt-get install bind9-dnsutils)");
        return;
    }
    let s = Gslbd::start_off_ephemeral(&repo().join("gslb.toml"), &[]);
    for (cmd, expected) in transcripts {
        assert!(
            cmd.contains("-p 5353"),
            "README dig lines use port 5353: {cmd}"
        );
        let real = cmd.replace("-p 5353", &format!("-p {}", s.udp.port()));
        let out = Command::new("sh").arg("-c").arg(&real).output().unwrap();
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        let mut want = expected.clone();
        // Multi-address answers rotate: compare as sets of lines.
        got.sort();
        want.sort();
        assert_eq!(got, want, "`{cmd}`");
    }
}

#[test]
fn sigterm_stops_the_server_with_exit_0() {
    let mut s = Gslbd::start(&repo().join("gslb.toml"), &[]);
    let r = dns::tcp(s.tcp, &query("static.gslb.example.com.", RecordType::A));
    assert!(!r.answers.is_empty());
    let status = s
        .signal_and_wait("TERM", Duration::from_secs(5))
        .expect("exited within 5 s");
    assert!(status.success(), "{status:?}\n{}", s.log());
}
