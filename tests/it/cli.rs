//! The command line around the server: exit codes (64 for a usage mistake, 1 for a port
//! that cannot be bound, 2 for an invalid config), shell completions and man pages
//! generated from the clap definitions, and `--log-format json`.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{Deployment, gslbd_bin, spawn_serve};
use crate::{CONFIG, zone_text};

fn gslbd(args: &[&str]) -> Output {
    Command::new(gslbd_bin())
        .args(args)
        .output()
        .expect("run gslbd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn usage_mistakes_exit_64_invalid_configs_2_help_0() {
    let out = gslbd(&["serve", "--bogus"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unexpected argument '--bogus'"));
    let out = gslbd(&["explain", "--client", "not-an-ip", "www.example.com"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));

    let out = gslbd(&["check", "--config", "/nonexistent/gslb.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let out = gslbd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("64 a command-line mistake"), "{help}");
    assert_eq!(gslbd(&["--version"]).status.code(), Some(0));
}

#[test]
fn completions_for_each_shell_name_every_subcommand_and_option() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = gslbd(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["serve", "check", "explain", "geoip", "log-format", "subnet"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = gslbd(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn man_pages_for_gslbd_and_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = Command::new(gslbd_bin())
        .arg("man")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = |name: &str| {
        std::fs::read_to_string(out_dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let main = page("gslbd.1");
    assert!(
        main.starts_with(".ie") || main.contains(".TH gslbd 1"),
        "{main}"
    );
    assert!(main.contains("gslbd\\-serve(1)"), "{main}");
    assert!(main.contains("64 a command\\-line mistake"), "{main}");
    // roff escapes the hyphens of options.
    assert!(page("gslbd-serve.1").contains("\\-\\-log\\-format"));
    assert!(page("gslbd-explain.1").contains("\\-\\-subnet"));
    assert!(page("gslbd-geoip-build.1").contains("\\-\\-csv"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let (mut child, rx, _log) =
        spawn_serve(&dep.config(), "127.0.0.1:0", &["--log-format", "json"]);
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !messages.iter().any(|m| m == "ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("no \"ready\" within 20 s; messages: {messages:#?}");
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(
            v["target"].as_str().is_some_and(|t| t.starts_with("gslbd")),
            "{line}"
        );
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("listening for UDP on 127.0.0.1:")),
        "{messages:#?}"
    );
}

/// A port held by another process's SO_REUSEPORT UDP socket (TCP free): `serve` must
/// exit 1 naming the address and what to do, not join that socket's group.
#[test]
fn a_port_held_by_a_reuseport_socket_exits_1() {
    // A port free for TCP too, so only the UDP group could make the bind fail.
    let (foreign, addr) = (0..20)
        .find_map(|_| {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = udp.local_addr().unwrap();
            std::net::TcpListener::bind(addr).ok()?;
            Some((udp, addr))
        })
        .expect("a port free for UDP and TCP");
    socket2::SockRef::from(&foreign)
        .set_reuse_port(true)
        .unwrap();
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let (mut child, _rx, log) = spawn_serve(&dep.config(), &addr.to_string(), &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "still serving on a taken port:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader thread may trail the exit by a moment.
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("cannot listen on {addr}")), "{log}");
    assert!(log.contains("--listen"), "{log}");
    drop(foreign);
}

/// The README's `gslbd check` transcript, replayed in a copy of the example deployment:
/// every command prints exactly the lines under it (stdout and stderr together).
#[test]
fn readme_check_transcript_prints_what_the_readme_says() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let block = readme
        .split("```console\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("check --config broken.toml"))
        .expect("README shows `check --config broken.toml` in a console block");
    let mut steps: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd, Vec::new())),
            None => steps
                .last_mut()
                .expect("output before a command")
                .1
                .push(line),
        }
    }
    assert!(steps.len() >= 3, "{steps:?}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo.join("gslb.toml"), dir.path().join("gslb.toml")).unwrap();
    for sub in ["zones", "geoip"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(repo.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    for (cmd, want) in steps {
        let real = cmd.replace("cargo run -q --", gslbd_bin());
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{{ {real}; }} 2>&1"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let got = text(&out.stdout);
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "`{cmd}`");
    }
}
