//! The admin API against clients that hold its connections: sockets that never send a
//! whole request are closed after the header timeout, one address holds a few
//! connections at most, and a fresh client always gets in, so `/healthz` and drains keep
//! working while others hog. Clients of distinct addresses are sockets bound to distinct
//! 127.0.0.x source addresses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::{Deployment, Gslbd, try_connect_from};
use crate::http::{get_from, post};
use crate::{CONFIG, zone_text};

fn start() -> (Gslbd, Deployment, SocketAddr) {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let server = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = server.admin.expect("admin address logged");
    (server, dep, admin)
}

#[test]
fn idle_sockets_do_not_shut_out_a_fresh_client() {
    let (_s, _dep, admin) = start();
    // One address opens hundreds of sockets and never sends a request (some connects may
    // time out while the listen backlog is full)...
    let hog: Vec<TcpStream> = (0..200)
        .filter_map(|_| try_connect_from([127, 0, 0, 2], admin).ok())
        .collect();
    // ...and nine others take every slot left the same way (9 × 8 > 64).
    let others: Vec<TcpStream> = (3..12)
        .flat_map(|i| (0..8).filter_map(move |_| try_connect_from([127, 0, 0, i], admin).ok()))
        .collect();
    std::thread::sleep(Duration::from_millis(100));

    // A client from another address is answered at once, the health check and a drain.
    let start = Instant::now();
    let r = get_from([127, 0, 0, 100], admin, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    let start = Instant::now();
    let r = post(admin, "/api/v1/regions/ap-south/drain");
    assert_eq!(r.status, 200, "{}", r.body);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "drain took {took:?}");
    drop((hog, others));
}

#[test]
fn a_request_that_never_completes_is_cut_within_seconds() {
    let (_s, _dep, admin) = start();
    let mut c = TcpStream::connect(admin).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap(); // no end of headers
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let r = c.read_to_end(&mut buf);
    let took = start.elapsed();
    assert!(
        r.is_ok() || r.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "not closed within 5 s"
    );
    assert!(
        took < Duration::from_secs(3),
        "headers allowed {took:?}: not a tight bound"
    );
}
