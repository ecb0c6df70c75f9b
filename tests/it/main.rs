//! Integration tests: the real `gslbd` binary on ephemeral loopback ports, queried with
//! real DNS messages over UDP and TCP.

mod dns;
mod harness;
mod http;

mod admin;
mod config_errors;
mod dynamic;
mod example;
mod fuzzish;
mod geoip_build;
mod health;
mod hostile;
mod policies;
mod protocol;
mod reload;
mod rrl;
mod static_data;
mod tcp;

use harness::{Deployment, Gslbd};

/// The test zone: every kind of static data the server must handle.
pub const ZONE: &str = r#"$ORIGIN gslb.test.
$TTL 300
@        IN SOA ns1.gslb.test. hostmaster.gslb.test. ( 2024010101 3600 600 86400 60 )
@        IN NS  ns1
@        IN NS  ns2.gslb.test.
ns1      IN A   127.0.0.1
ns2      IN AAAA ::1
static   IN A   192.0.2.1
static   IN TXT "hello"
multi    IN A   192.0.2.2
multi    IN A   192.0.2.3
alias    IN CNAME static
chain    IN CNAME alias
towww    IN CNAME www
away     IN CNAME www.example.net.
loop1    IN CNAME loop2
loop2    IN CNAME loop1
dangling IN CNAME nothing
host.ent IN A   192.0.2.5
*.wild   IN A   192.0.2.7
*.wild   IN TXT "wildcard"
exists.wild IN TXT "explicit"
sub      IN NS  ns.sub
sub      IN NS  ns.elsewhere.example.
ns.sub   IN A   192.0.2.53
mx       IN MX  10 mail
mail     IN A   192.0.2.25
BIG
HUGE
"#;

/// Three regions and dynamic names with the failover policy.
pub const CONFIG: &str = include_str!("../fixtures/it/gslb.toml");

/// A running server on its own copy of the test deployment (killed, then deleted, on drop).
pub struct Fixture {
    pub server: Gslbd,
    pub dep: Deployment,
}

impl std::ops::Deref for Fixture {
    type Target = Gslbd;
    fn deref(&self) -> &Gslbd {
        &self.server
    }
}

/// Starts a server on the test zone and config.
pub fn server() -> Fixture {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    Fixture {
        server: dep.start(),
        dep,
    }
}

pub fn zone_text() -> String {
    ZONE.replace("BIG", BIG_TXT).replace("HUGE", HUGE_TXT)
}

/// Four 200-byte TXT strings: over 512 bytes, under 1232.
const BIG_TXT: &str = r#"big     IN TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
big     IN TXT "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
big     IN TXT "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
big     IN TXT "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd""#;
/// Eight 250-byte TXT strings: over 1232 bytes.
const HUGE_TXT: &str = r#"huge    IN TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
huge    IN TXT "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
huge    IN TXT "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
huge    IN TXT "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
huge    IN TXT "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
huge    IN TXT "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
huge    IN TXT "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg"
huge    IN TXT "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh""#;
