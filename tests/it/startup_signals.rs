//! Signals during start-up: the handlers are installed before the slow part (loading,
//! binding, the first probe round), so SIGHUP does not kill the server (it reloads once
//! ready) and SIGTERM stops it at once with exit 0.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ZONE;
use crate::harness::{Deployment, spawn_serve};

/// A TCP listener that accepts connections and never answers: each probe of the first
/// round waits for its 3 s timeout.
fn silent_listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in l.incoming() {
            held.push(conn);
        }
    });
    port
}

fn deployment() -> Deployment {
    let port = silent_listener();
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]

[regions.eu-west]
addresses = ["192.0.2.20"]
probe = {{ url = "http://127.0.0.1:{port}/healthz", interval = "5s", timeout = "3s" }}

[records."www.gslb.test"]
policy = "failover"
regions = ["eu-west"]
"#
    );
    Deployment::new(&config, &[("gslb.test.zone", ZONE)])
}

/// Spawns `gslbd serve` on the deployment, not waiting for `ready`.
fn spawn(dep: &Deployment) -> (Child, mpsc::Receiver<String>) {
    let (child, rx, _log) = spawn_serve(&dep.config(), "127.0.0.1:0", &[]);
    (child, rx)
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads log lines until one matches `want`; `Err` with the lines read when none does.
fn wait_line(
    rx: &mpsc::Receiver<String>,
    want: impl Fn(&str) -> bool,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return Ok(()),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    Err(seen.join("\n"))
}

#[test]
fn sighup_during_startup_reloads_once_ready() {
    let dep = deployment();
    let (mut child, rx) = spawn(&dep);
    std::thread::sleep(Duration::from_millis(300));
    kill(&child, "HUP");
    std::thread::sleep(Duration::from_millis(100));
    let alive = matches!(child.try_wait(), Ok(None));
    let ready = |l: &str| l.trim_end().ends_with("ready");
    let ready = wait_line(&rx, ready, Duration::from_secs(15));
    // Control's log line for a successful reload.
    let reloaded = |l: &str| l.contains("reloaded ");
    let reloaded = wait_line(&rx, reloaded, Duration::from_secs(10));
    let _ = child.kill();
    let status = child.wait();
    assert!(alive, "SIGHUP during start-up killed gslbd: {status:?}");
    ready.unwrap_or_else(|log| panic!("never ready ({status:?}); log:\n{log}"));
    reloaded.unwrap_or_else(|log| panic!("no reload after ready; log:\n{log}"));
}

#[test]
fn sigterm_during_startup_exits_0_promptly() {
    let dep = deployment();
    let (mut child, _rx) = spawn(&dep);
    std::thread::sleep(Duration::from_millis(300));
    kill(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let status = status.expect("gslbd still running 2 s after SIGTERM during start-up");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
