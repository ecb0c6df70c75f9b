//! Reloads that would block (#16 item 2): a FIFO among the zones is refused by name
//! without being opened, by `check` and by a reload, and the next reload works; a reload
//! blocked past `server.reload_timeout` (here: a config file replaced by a FIFO, which
//! `check --config <(...)` may read, but nobody writes) fails with a clear error, later
//! reloads work, and SIGTERM ends the process within seconds while a reload is blocked.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, gslbd_bin};
use crate::{CONFIG, http, zone_text};

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// The fixture deployment with `extra` added to `[server]`, served with an admin API.
fn start(extra: &str) -> (Deployment, Gslbd) {
    let config = CONFIG.replacen("[server]\n", &format!("[server]\n{extra}\n"), 1);
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    (dep, s)
}

/// The config with www answered by us-east first, so that a reload that took shows.
fn us_first() -> String {
    CONFIG.replacen(
        r#"regions = ["eu-west", "us-east"]"#,
        r#"regions = ["us-east", "eu-west"]"#,
        1,
    )
}

fn www(s: &Gslbd) -> Vec<String> {
    let r = dns::tcp(s.tcp, &query("www.gslb.test.", RecordType::A));
    dns::answer_data(&r, RecordType::A)
}

#[test]
fn a_fifo_among_the_zones_is_refused_by_name_and_the_next_reload_works() {
    let (dep, s) = start("");
    let admin = s.admin.unwrap();
    let fifo = dep.dir.path().join("zones/fifo.test.zone");
    mkfifo(&fifo);

    // `check` exits 2 at once naming the file (opening it to read would wait forever
    // for a writer: the child is killed after 10 s, and the test fails).
    let mut child = Command::new(gslbd_bin())
        .args(["check", "--config"])
        .arg(dep.config())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("check blocked on the FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "fifo.test.zone: cannot read zone file: a FIFO (named pipe), not a regular file"
        ),
        "{stderr}"
    );

    let started = Instant::now();
    let r = http::post(admin, "/api/v1/reload");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("fifo.test.zone"), "{}", r.body);
    assert!(r.body.contains("FIFO"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(3));

    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(dep.config(), us_first()).unwrap();
    let r = http::post(admin, "/api/v1/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(www(&s), ["192.0.2.10"]);
}

#[test]
fn a_reload_blocked_past_reload_timeout_fails_and_later_reloads_work() {
    let (dep, mut s) = start("reload_timeout = \"500ms\"");
    let admin = s.admin.unwrap();
    // The config file becomes a FIFO nobody writes: reading it blocks for good.
    let config = dep.config();
    std::fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let started = Instant::now();
    let r = http::post(admin, "/api/v1/reload");
    let took = started.elapsed();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains("server.reload_timeout: reload did not finish within 500ms"),
        "{}",
        r.body
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        s.wait_log("reload failed, still serving", Duration::from_secs(2)),
        "{}",
        s.log()
    );
    assert_eq!(
        www(&s),
        ["192.0.2.20", "192.0.2.21"],
        "still the old config"
    );

    // A regular file again: the next reload takes it, though the first load is still
    // blocked (on the FIFO, now unlinked: it never returns).
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, us_first()).unwrap();
    let r = http::post(admin, "/api/v1/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(www(&s), ["192.0.2.10"]);

    // With that thread still blocked, SIGTERM ends the process.
    let started = Instant::now();
    let status = s
        .signal_and_wait("TERM", Duration::from_secs(10))
        .expect("stopped within 10 s");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn sigterm_ends_the_process_while_a_reload_is_blocked() {
    // The default reload_timeout (60 s): the reload is still waiting when SIGTERM comes.
    let (dep, mut s) = start("");
    let config = dep.config();
    std::fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let hup = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status();
    assert!(hup.is_ok_and(|st| st.success()));
    assert!(
        s.wait_log("SIGHUP received: reloading", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let status = s
        .signal_and_wait("TERM", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", s.log()));
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(s.log().contains("stopped"), "{}", s.log());
}
