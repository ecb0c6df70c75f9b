//! `server.dnstap`: a Unix socket (relative to the config's folder) or a TCP address,
//! and a sample; every mistake at its line and column with its key.

use super::{err, errs, ok};
use crate::model::{Dnstap, DnstapDest};

#[test]
fn socket_or_tcp_with_a_sample() {
    let m = ok("[server]\ndnstap = { socket = \"/run/gslbd/dnstap.sock\", sample = 1.0 }\n");
    assert_eq!(
        m.server.dnstap,
        Some(Dnstap {
            dest: DnstapDest::Unix("/run/gslbd/dnstap.sock".into()),
            sample: 1.0
        })
    );
    // A relative path is the config folder's; sample defaults to every query.
    let m = ok("[server]\ndnstap = { socket = \"run/tap.sock\" }\n");
    assert_eq!(
        m.server.dnstap,
        Some(Dnstap {
            dest: DnstapDest::Unix("/etc/gslb/run/tap.sock".into()),
            sample: 1.0
        })
    );
    let m = ok("[server.dnstap]\ntcp = \"127.0.0.1:6000\"\nsample = 0.25\n");
    assert_eq!(
        m.server.dnstap,
        Some(Dnstap {
            dest: DnstapDest::Tcp("127.0.0.1:6000".parse().unwrap()),
            sample: 0.25
        })
    );
    assert_eq!(ok("").server.dnstap, None);
}

#[test]
fn dnstap_mistakes() {
    let long = format!("/{}", "x".repeat(107));
    let cases = [
        (
            "[server]\ndnstap = { sample = 1 }\n".to_string(),
            "gslb.toml:2:10: server.dnstap: missing a destination: socket = \"/run/gslbd/dnstap.sock\" or tcp = \"127.0.0.1:6000\"",
        ),
        (
            "[server]\ndnstap = { socket = \"/a.sock\", tcp = \"127.0.0.1:6000\" }\n".to_string(),
            "gslb.toml:2:38: server.dnstap.tcp: give either socket or tcp, not both",
        ),
        (
            "[server]\ndnstap = { tcp = \"collector:6000\" }\n".to_string(),
            "gslb.toml:2:18: server.dnstap.tcp: \"collector:6000\" is not an ip:port address (e.g. \"127.0.0.1:5353\" or \"[::1]:5353\")",
        ),
        (
            "[server]\ndnstap = { socket = \"\" }\n".to_string(),
            "gslb.toml:2:21: server.dnstap.socket: must not be empty",
        ),
        (
            format!("[server]\ndnstap = {{ socket = \"{long}\" }}\n"),
            &format!(
                "gslb.toml:2:21: server.dnstap.socket: \"{long}\" is 108 bytes long: a Unix socket path must be at most 107"
            ),
        ),
        (
            "[server]\ndnstap = { socket = \"/a.sock\", sample = 0 }\n".to_string(),
            "gslb.toml:2:41: server.dnstap.sample: 0 is not a share of queries: expected a number in (0, 1], e.g. 0.1 for 10 %",
        ),
        (
            "[server]\ndnstap = { socket = \"/a.sock\", sample = 1.5 }\n".to_string(),
            "gslb.toml:2:41: server.dnstap.sample: 1.5 is not a share of queries: expected a number in (0, 1], e.g. 0.1 for 10 %",
        ),
        (
            "[server]\ndnstap = { socket = \"/a.sock\", rate = 1 }\n".to_string(),
            "gslb.toml:2:32: server.dnstap.rate: unknown key `rate`, expected one of `socket`, `tcp`, `sample`",
        ),
    ];
    for (text, want) in cases {
        let got = err(&text);
        assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
    }
    // Both mistakes of one table are reported.
    let all = errs("[server]\ndnstap = { tcp = \"nowhere\", sample = -1 }\n");
    assert_eq!(all.len(), 2, "{all:?}");
}
