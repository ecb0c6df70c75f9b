//! Each mode against a plain std HTTP client (and a rustls one for HTTPS), as a probe
//! would see it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CERT_PEM, FakeRegion, MAX_CONNECTIONS, Mode};

const TIMEOUT: Duration = Duration::from_secs(1);

/// `GET url` with a 1 s timeout: (status, body).
fn get(url: &str) -> io::Result<(u16, String)> {
    get_with(url, TIMEOUT)
}

/// `GET url` over plain HTTP with `timeout` for connect and each read; also checks the
/// framing a probe relies on (`Content-Length`, `Connection: close`, then end of stream).
fn get_with(url: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let (addr, path) = split_url(url, "http://");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: sim-test\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// `GET url` over HTTPS with a 1 s timeout, trusting only [`CERT_PEM`] (full
/// verification, name checked).
fn get_tls(url: &str) -> io::Result<(u16, String)> {
    get_tls_with(url, TIMEOUT)
}

fn get_tls_with(url: &str, timeout: Duration) -> io::Result<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let (addr, path) = split_url(url, "https://");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw)?;
    parse(&raw)
}

fn split_url(url: &str, scheme: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix(scheme).expect("scheme");
    let slash = rest.find('/').unwrap_or(rest.len());
    let addr = rest[..slash].parse().expect("host:port");
    (addr, rest[slash..].to_string())
}

/// Status and body of a whole response, asserting its framing; `InvalidData` when it
/// is not an HTTP response at all (e.g. nothing before the close).
fn parse(raw: &[u8]) -> io::Result<(u16, String)> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response");
    let text = String::from_utf8(raw.to_vec()).map_err(|_| invalid())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    let status = head[9..12].parse().map_err(|_| invalid())?;
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{head}"
    );
    Ok((status, body.to_string()))
}

fn connect(region: &FakeRegion) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&region.addr(), TIMEOUT)
}

/// Polls `cond` for up to 1 s (the server counts asynchronously to the client).
fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn up_answers_200_ok_on_any_path() {
    let region = FakeRegion::start().unwrap();
    assert_eq!(region.mode(), Mode::Up);
    assert!(region.url().starts_with("http://127.0.0.1:"));
    assert!(region.url().ends_with("/healthz"));
    assert_eq!(get(&region.url()).unwrap(), (200, "ok".into()));
    let other = format!("http://{}/some/other?path", region.addr());
    assert_eq!(get(&other).unwrap(), (200, "ok".into()));
}

#[test]
fn status_and_wrong_body() {
    let region = FakeRegion::start().unwrap();
    region.set(Mode::Status(503));
    assert_eq!(region.mode(), Mode::Status(503));
    assert_eq!(get(&region.url()).unwrap(), (503, "unavailable".into()));
    region.set(Mode::Status(404));
    assert_eq!(get(&region.url()).unwrap(), (404, "unavailable".into()));
    region.set(Mode::WrongBody);
    assert_eq!(get(&region.url()).unwrap(), (200, "maintenance".into()));
    region.set(Mode::Up);
    assert_eq!(get(&region.url()).unwrap(), (200, "ok".into()));
}

#[test]
fn hang_holds_the_connection_until_the_mode_changes() {
    let region = FakeRegion::start().unwrap();
    region.set(Mode::Hang);
    let mut stream = connect(&region).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let started = Instant::now();
    // A timeout, not an answer and not end of stream: the connection is still open.
    let err = stream.read(&mut buf).expect_err("no answer while hanging");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(eventually(|| region.hits() == 1));

    // A new mode ends the hung request without an answer...
    region.set(Mode::Up);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let started = Instant::now();
    assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_millis(500));
    // ...and the next request gets the new mode.
    assert_eq!(get(&region.url()).unwrap(), (200, "ok".into()));
}

#[test]
fn hang_makes_an_http_client_time_out() {
    let region = FakeRegion::start().unwrap();
    region.set(Mode::Hang);
    let err = get_with(&region.url(), Duration::from_millis(200)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

#[test]
fn flap_repeats_ok_then_fail() {
    let region = FakeRegion::start().unwrap();
    region.set(Mode::Flap { ok: 2, fail: 1 });
    let codes: Vec<u16> = (0..6).map(|_| get(&region.url()).unwrap().0).collect();
    assert_eq!(codes, [200, 200, 503, 200, 200, 503]);
    // Setting the mode again restarts the cycle.
    region.set(Mode::Flap { ok: 1, fail: 2 });
    let codes: Vec<u16> = (0..4).map(|_| get(&region.url()).unwrap().0).collect();
    assert_eq!(codes, [200, 503, 503, 200]);
    // Degenerate cycles: never failing, always failing.
    region.set(Mode::Flap { ok: 0, fail: 0 });
    assert_eq!(get(&region.url()).unwrap().0, 200);
    region.set(Mode::Flap { ok: 0, fail: 3 });
    assert_eq!(get(&region.url()).unwrap(), (503, "unavailable".into()));
}

#[test]
fn closed_refuses_then_reopens_on_the_same_port() {
    let region = FakeRegion::start().unwrap();
    let addr = region.addr();
    region.set(Mode::Closed);
    assert_eq!(region.mode(), Mode::Closed);
    let err = connect(&region).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(get(&region.url()).unwrap_err().kind(), err.kind());
    region.set(Mode::Up);
    assert_eq!(region.addr(), addr);
    assert_eq!(get(&region.url()).unwrap(), (200, "ok".into()));
    // Closed twice and Closed -> Closed are fine too.
    region.set(Mode::Closed);
    region.set(Mode::Closed);
    assert!(connect(&region).is_err());
    region.set(Mode::Status(503));
    assert_eq!(get(&region.url()).unwrap().0, 503);
}

#[test]
fn try_set_reports_a_port_taken_while_closed() {
    let region = FakeRegion::start().unwrap();
    region.set(Mode::Closed);
    let thief = TcpListener::bind(region.addr()).unwrap();
    assert!(region.try_set(Mode::Up).is_err());
    assert_eq!(region.mode(), Mode::Closed);
    drop(thief);
    region.try_set(Mode::Up).unwrap();
    assert_eq!(get(&region.url()).unwrap().0, 200);
}

#[test]
fn tcp_connect_succeeds_in_every_mode_but_closed() {
    let region = FakeRegion::start().unwrap();
    for (i, mode) in [
        Mode::Up,
        Mode::Status(503),
        Mode::WrongBody,
        Mode::Hang,
        Mode::Flap { ok: 0, fail: 1 },
    ]
    .into_iter()
    .enumerate()
    {
        region.set(mode);
        connect(&region).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        // Connects are counted once accepted (and are not requests).
        assert!(eventually(|| region.connections() == i as u64 + 1));
    }
    region.set(Mode::Closed);
    assert!(connect(&region).is_err());
    assert_eq!(region.connections(), 5);
    assert_eq!(region.hits(), 0);
}

#[test]
fn hits_count_requests() {
    let region = FakeRegion::start().unwrap();
    assert_eq!(region.hits(), 0);
    get(&region.url()).unwrap();
    region.set(Mode::Status(500));
    get(&region.url()).unwrap();
    get(&region.url()).unwrap();
    assert_eq!(region.hits(), 3);
    assert_eq!(region.connections(), 3);
}

#[test]
fn keep_alive_clients_get_one_answer_then_the_close() {
    let region = FakeRegion::start().unwrap();
    let mut stream = connect(&region).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Two pipelined keep-alive requests: only the first is answered.
    stream
        .write_all(
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n\
              GET /b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        )
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    assert_eq!(parse(&raw).unwrap(), (200, "ok".into()));
    assert_eq!(region.hits(), 1);
}

#[test]
fn head_gets_headers_only() {
    let region = FakeRegion::start().unwrap();
    let mut stream = connect(&region).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(b"HEAD / HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 2\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

#[test]
fn silent_and_oversized_clients_do_not_disturb_others() {
    let region = FakeRegion::start().unwrap();
    let _silent = connect(&region).unwrap();
    // A head that never ends is answered once the read limit is reached.
    let mut big = connect(&region).unwrap();
    big.set_read_timeout(Some(TIMEOUT)).unwrap();
    let junk = vec![b'x'; 16 * 1024];
    let _ = big.write_all(&junk);
    let mut raw = Vec::new();
    let _ = big.read_to_end(&mut raw);
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(get(&region.url()).unwrap(), (200, "ok".into()));
}

#[test]
fn connections_beyond_the_limit_are_closed() {
    let region = FakeRegion::start().unwrap();
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| connect(&region).unwrap())
        .collect();
    assert!(eventually(|| region.connections() == MAX_CONNECTIONS as u64));
    let mut extra = connect(&region).unwrap();
    extra.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 16];
    // Closed at once by the server: end of stream (or a reset), not a timeout.
    match extra.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
    drop(held);
}

#[test]
fn tls_serves_the_self_signed_certificate() {
    let region = FakeRegion::start_tls().unwrap();
    assert!(region.url().starts_with("https://127.0.0.1:"));
    assert_eq!(get_tls(&region.url()).unwrap(), (200, "ok".into()));
    region.set(Mode::Status(503));
    assert_eq!(get_tls(&region.url()).unwrap(), (503, "unavailable".into()));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = format!("http://{}/healthz", region.addr());
    assert!(get(&plain).is_err());
    assert_eq!(region.hits(), 2);
}

#[test]
fn tls_hang_closed_and_back() {
    let region = FakeRegion::start_tls().unwrap();
    region.set(Mode::Hang);
    let err = get_tls_with(&region.url(), Duration::from_millis(200)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(eventually(|| region.hits() == 1));
    region.set(Mode::Closed);
    assert_eq!(
        get_tls(&region.url()).unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
    region.set(Mode::Up);
    assert_eq!(get_tls(&region.url()).unwrap().0, 200);
}

#[cfg(target_os = "linux")]
#[test]
fn start_on_another_loopback_address() {
    let region = FakeRegion::start_on("127.0.0.2:0".parse().unwrap()).unwrap();
    assert!(region.url().starts_with("http://127.0.0.2:"));
    assert_eq!(get(&region.url()).unwrap(), (200, "ok".into()));
}

#[cfg(target_os = "linux")]
#[test]
fn peers_are_the_source_addresses_of_connections() {
    let region = FakeRegion::start().unwrap();
    let from = |source: [u8; 4]| {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::from((source, 0)).into())?;
        socket.connect_timeout(&region.addr().into(), TIMEOUT)?;
        io::Result::Ok(TcpStream::from(socket))
    };
    assert!(region.peers().is_empty());
    drop(connect(&region).unwrap());
    drop(from([127, 0, 0, 2]).unwrap());
    drop(from([127, 0, 0, 2]).unwrap());
    assert!(eventually(|| region.connections() == 3));
    let (one, two) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    assert_eq!(region.peers(), [one, two]);
    assert_eq!(region.connections_from(one), 1);
    assert_eq!(region.connections_from(two), 2);
    assert_eq!(region.connections_from("127.0.0.3".parse().unwrap()), 0);
}

#[test]
fn drop_frees_the_port_and_joins_every_thread() {
    let region = FakeRegion::start().unwrap();
    let addr = region.addr();
    // Keep a connection thread busy: a hung request.
    region.set(Mode::Hang);
    let mut hung = connect(&region).unwrap();
    hung.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _silent = connect(&region).unwrap();
    assert!(eventually(
        || region.hits() == 1 && region.connections() == 2
    ));

    let started = Instant::now();
    drop(region);
    assert!(started.elapsed() < Duration::from_millis(300));
    // The port is free (holding it also keeps another test's region off it below).
    let _again = TcpListener::bind(addr).expect("port freed by drop");
    // The hung connection was closed by its (joined) thread.
    hung.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    match hung.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("hung connection still open after drop: {other:?}"),
    }
    #[cfg(target_os = "linux")]
    {
        // No thread named after this port is left.
        let prefix = format!("sim:{}", addr.port());
        let left: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .filter(|name| name == &prefix || *name == format!("{prefix}c"))
            .collect();
        assert!(left.is_empty(), "threads left: {left:?}");
    }
}

#[test]
fn regions_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FakeRegion>();
    let region = FakeRegion::start().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| region.set(Mode::Status(503)));
    });
    assert_eq!(get(&region.url()).unwrap().0, 503);
}
