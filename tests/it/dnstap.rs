//! dnstap against real tools: `fstrm_capture` (package fstrm-bin) collects the stream on
//! a Unix socket, `dnstap-read` (package bind9-dnsutils) decodes it, and every query
//! sent and reply received must be there as AUTH_QUERY and AUTH_RESPONSE, with the
//! client's port; a query that rate limiting dropped appears as AUTH_QUERY alone. And a
//! collector that accepts but never reads slows no query down: its messages are dropped
//! and counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd};
use crate::{CONFIG, zone_text};

/// The test deployment with `extra` lines in `[server]`, started with the admin API.
fn start(extra: &str) -> (Gslbd, Deployment) {
    let config = CONFIG.replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"127.0.0.1:0\"]\n{extra}"),
        1,
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    (s, dep)
}

/// True when `tool` can run; in CI it must (`.ci/run` installs it).
fn have(tool: &str, package: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI (apt-get install {package})"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {package})");
    }
    ok
}

/// `fstrm_capture` on a Unix socket, killed on drop if still running.
struct Capture(Child);

impl Capture {
    fn start(socket: &Path, file: &Path) -> Capture {
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(socket)
            .arg("-w")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run fstrm_capture");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "fstrm_capture made no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Capture(child)
    }

    /// SIGINT (fstrm_capture then closes its file properly) and the exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("fstrm_capture did not exit on SIGINT");
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One event as `dnstap-read -y` shows it.
#[derive(Debug, Default, Clone)]
struct Event {
    kind: String,
    identity: String,
    version: String,
    protocol: String,
    address: String,
    port: u16,
    id: u16,
    question: String,
    answers: Vec<String>,
}

/// The events of `dnstap-read -y FILE`'s YAML, read line by line (keys are unique
/// within an event, answers are the list under `ANSWER_SECTION`).
fn events(yaml: &str) -> Vec<Event> {
    let mut all = Vec::new();
    for doc in yaml.split("\n---\n") {
        let mut e = Event::default();
        let mut section = "";
        for line in doc.lines() {
            let t = line.trim();
            let value = |key: &str| t.strip_prefix(key).map(|v| v.trim_matches('"').to_string());
            if let Some(v) = value("identity: ") {
                e.identity = v;
            } else if let Some(v) = value("version: ") {
                e.version = v;
            } else if line.starts_with("  type: ") {
                e.kind = t["type: ".len()..].to_string();
            } else if let Some(v) = value("socket_protocol: ") {
                e.protocol = v;
            } else if let Some(v) = value("query_address: ") {
                e.address = v;
            } else if let Some(v) = value("query_port: ") {
                e.port = v.parse().unwrap();
            } else if line.starts_with("    id: ") {
                e.id = t["id: ".len()..].parse().unwrap();
            } else if t.ends_with("_SECTION:") {
                section = if t == "QUESTION_SECTION:" {
                    "question"
                } else if t == "ANSWER_SECTION:" {
                    "answer"
                } else {
                    ""
                };
            } else if let Some(item) = t.strip_prefix("- '") {
                let item = item.trim_end_matches('\'').to_string();
                match section {
                    "question" => e.question = item,
                    "answer" => e.answers.push(item),
                    _ => {}
                }
            } else if !line.starts_with("      ") {
                section = "";
            }
        }
        if !e.kind.is_empty() {
            all.push(e);
        }
    }
    all
}

/// Sends `m` from `sock` over UDP: the reply, if one came.
fn udp_from(sock: &UdpSocket, server: SocketAddr, m: &Message) -> Option<Message> {
    sock.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 1232];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).unwrap())
}

/// A metric's value in `/metrics`.
fn metric(s: &Gslbd, name: &str) -> u64 {
    let page = crate::http::request(s.admin.unwrap(), "GET", "/metrics", &[]).body;
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{page}"))
        .parse()
        .unwrap()
}

fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A query sent, as the stream should show it.
struct Sent {
    port: u16,
    address: &'static str,
    protocol: &'static str,
    id: u16,
    question: String,
    /// The reply's A records, or `None` when no reply came.
    answers: Option<Vec<String>>,
}

#[test]
fn fstrm_capture_and_dnstap_read_see_every_query_and_response() {
    if !have("fstrm_capture", "fstrm-bin") || !have("dnstap-read", "bind9-dnsutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (socket, file) = (dir.path().join("tap.sock"), dir.path().join("out.tap"));
    let capture = Capture::start(&socket, &file);
    // Rate limiting per /24, no slips: the flood from 127.0.1.1 below is mostly dropped.
    let (mut s, _dep) = start(&format!(
        "dnstap = {{ socket = \"{}\" }}\nrate_limit = {{ responses_per_second = 5, slip = 0 }}",
        socket.display()
    ));
    assert!(
        s.wait_log("dnstap: connected", Duration::from_secs(10)),
        "{}",
        s.log()
    );

    let mut sent = Vec::new();
    let client = dns::client(1000);
    let port = client.local_addr().unwrap().port();
    for (name, rtype) in [
        ("www.gslb.test.", RecordType::A),
        ("static.gslb.test.", RecordType::A),
        ("nope.gslb.test.", RecordType::AAAA),
    ] {
        let q = query(name, rtype);
        let r = udp_from(&client, s.udp, &q).expect("a reply");
        sent.push(Sent {
            port,
            address: "127.0.0.1",
            protocol: "UDP",
            id: q.metadata.id,
            question: format!("{name} IN {rtype}"),
            answers: Some(dns::answer_data(&r, RecordType::A)),
        });
    }
    // Over TCP.
    let q = query("multi.gslb.test.", RecordType::A);
    let mut tcp = TcpStream::connect(s.tcp).unwrap();
    tcp.set_read_timeout(Some(dns::TIMEOUT)).unwrap();
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    tcp.write_all(&framed).unwrap();
    let r = Message::from_vec(&dns::read_frame(&mut tcp).unwrap()).unwrap();
    sent.push(Sent {
        port: tcp.local_addr().unwrap().port(),
        address: "127.0.0.1",
        protocol: "TCP",
        id: q.metadata.id,
        question: "multi.gslb.test. IN A".into(),
        answers: Some(dns::answer_data(&r, RecordType::A)),
    });
    drop(tcp);
    // A flood from another network: a few answered, the rest dropped by the limiter.
    let flood = UdpSocket::bind("127.0.1.1:0").unwrap();
    flood
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let flood_port = flood.local_addr().unwrap().port();
    for _ in 0..20 {
        let q = query("static.gslb.test.", RecordType::A);
        let r = udp_from(&flood, s.udp, &q);
        sent.push(Sent {
            port: flood_port,
            address: "127.0.1.1",
            protocol: "UDP",
            id: q.metadata.id,
            question: "static.gslb.test. IN A".into(),
            answers: r.map(|r| dns::answer_data(&r, RecordType::A)),
        });
    }
    let answered = sent.iter().filter(|q| q.answers.is_some()).count();
    assert!(answered < sent.len(), "the limiter dropped nothing");
    let events_sent = (sent.len() + answered) as u64;
    wait_until("every event written", Duration::from_secs(10), || {
        metric(&s, "gslbd_dnstap_sent_total") == events_sent
    });
    assert_eq!(metric(&s, "gslbd_dnstap_dropped_total"), 0);

    // Stopping the server finishes the stream; then the capture closes its file.
    let status = s.signal_and_wait("TERM", Duration::from_secs(15));
    assert!(status.is_some_and(|st| st.success()), "{}", s.log());
    assert!(s.log().contains("dnstap: stream finished"), "{}", s.log());
    capture.stop();

    let out = Command::new("dnstap-read")
        .arg("-y")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dnstap-read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let events = events(&yaml);
    assert_eq!(events.len(), events_sent as usize, "{yaml}");
    let version = format!("gslbd {}", env!("CARGO_PKG_VERSION"));
    for e in &events {
        assert_eq!(e.version, version);
        assert!(!e.identity.is_empty());
    }
    for q in &sent {
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e.kind == kind && e.port == q.port && e.id == q.id)
                .cloned()
                .collect::<Vec<_>>()
        };
        let queries = of("AUTH_QUERY");
        assert_eq!(
            queries.len(),
            1,
            "AUTH_QUERY of {} (id {}): {yaml}",
            q.question,
            q.id
        );
        let e = &queries[0];
        assert_eq!(
            (e.question.as_str(), e.address.as_str(), e.protocol.as_str()),
            (q.question.as_str(), q.address, q.protocol)
        );
        let responses = of("AUTH_RESPONSE");
        match &q.answers {
            None => assert!(responses.is_empty(), "a dropped query has no response"),
            Some(answers) => {
                assert_eq!(responses.len(), 1, "AUTH_RESPONSE of {}", q.question);
                let e = &responses[0];
                assert_eq!(e.question, q.question);
                assert_eq!(
                    (e.address.as_str(), e.protocol.as_str()),
                    (q.address, q.protocol)
                );
                // "www.gslb.test. 20 IN A 192.0.2.20" -> "192.0.2.20"
                let mut seen: Vec<String> = e
                    .answers
                    .iter()
                    .filter(|a| a.contains(" IN A "))
                    .map(|a| a.rsplit(' ').next().unwrap().to_string())
                    .collect();
                seen.sort();
                assert_eq!(&seen, answers, "answers to {}", q.question);
            }
        }
    }
    // The first queries had answers at all (a check on the check).
    assert_eq!(
        sent[0].answers.as_deref(),
        Some(&["192.0.2.20".to_string(), "192.0.2.21".to_string()][..])
    );
}

/// Starts a collector on `path` that accepts every connection and never reads it;
/// with `handshake`, it first answers READY with ACCEPT (then stops reading). Counts
/// the connections it accepted.
fn stuck_collector(path: &Path, handshake: bool) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            count.fetch_add(1, Ordering::SeqCst);
            if handshake {
                // READY: escape, length, type, then the content type field.
                let mut head = [0u8; 8];
                if conn.read_exact(&mut head).is_err() {
                    continue;
                }
                let mut rest =
                    vec![0u8; u32::from_be_bytes(head[4..].try_into().unwrap()) as usize];
                let _ = conn.read_exact(&mut rest);
                let ct = b"protobuf:dnstap.Dnstap";
                let mut accept = vec![0, 0, 0, 0];
                accept.extend_from_slice(&(12 + ct.len() as u32).to_be_bytes());
                accept.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
                accept.extend_from_slice(&(ct.len() as u32).to_be_bytes());
                accept.extend_from_slice(ct);
                let _ = conn.write_all(&accept);
            }
            held.push(conn);
        }
    });
    accepted
}

fn answered_at_full_speed_when_the_collector_stops_reading(handshake: bool) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stuck.sock");
    stuck_collector(&socket, handshake);
    let (s, _dep) = start(&format!("dnstap = {{ socket = \"{}\" }}", socket.display()));
    let client = dns::client(1000);
    let q = query("static.gslb.test.", RecordType::A);
    let started = Instant::now();
    let mut dropped = vec![0];
    // Each round is more exchanges than the queue (1032) and a socket's buffer hold
    // together.
    for round in 1..=3 {
        for _ in 0..2500 {
            let r = udp_from(&client, s.udp, &q).expect("every query is answered");
            assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
        }
        dropped.push(metric(&s, "gslbd_dnstap_dropped_total"));
        assert!(
            dropped[round] > dropped[round - 1],
            "dropped did not grow: {dropped:?}"
        );
    }
    let took = started.elapsed();
    // Debug build, two cores, tests in parallel: a few seconds at most. A query path
    // that waited for the collector would take minutes (or never finish).
    assert!(took < Duration::from_secs(30), "7500 queries took {took:?}");
    eprintln!("7500 queries in {took:?}, dnstap events dropped after each round: {dropped:?}");
    let sent = metric(&s, "gslbd_dnstap_sent_total");
    if handshake {
        // Written into the socket's buffer before it filled.
        assert!(sent > 0);
    } else {
        assert_eq!(sent, 0);
    }
    assert!(sent + dropped[3] <= 2 * 7500);
}

#[test]
fn a_collector_that_never_reads_slows_no_query_down() {
    answered_at_full_speed_when_the_collector_stops_reading(false);
}

#[test]
fn a_collector_that_stops_reading_after_the_handshake_slows_no_query_down() {
    answered_at_full_speed_when_the_collector_stops_reading(true);
}

#[test]
fn a_reload_moves_the_stream_to_the_new_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
    let (to_a, to_b) = (stuck_collector(&a, true), stuck_collector(&b, true));
    let line = |p: &Path| format!("dnstap = {{ socket = \"{}\" }}", p.display());
    let (s, dep) = start(&line(&a));
    wait_until("a connection to a", Duration::from_secs(10), || {
        to_a.load(Ordering::SeqCst) == 1
    });
    let config = std::fs::read_to_string(dep.config()).unwrap();
    std::fs::write(dep.config(), config.replace(&line(&a), &line(&b))).unwrap();
    let reply = crate::http::post(s.admin.unwrap(), "/api/v1/reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["warnings"], serde_json::json!([]));
    // The old stream is finished (this collector never answers STOP: the writer gives up
    // after its timeout), then the new destination is connected.
    wait_until("a connection to b", Duration::from_secs(10), || {
        to_b.load(Ordering::SeqCst) == 1
    });
    assert_eq!(to_a.load(Ordering::SeqCst), 1);
    assert!(
        s.log().contains("dnstap: destination changed"),
        "{}",
        s.log()
    );
}
