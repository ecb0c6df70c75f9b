//! Integration tests: the real `gslbd` binary on ephemeral loopback ports, queried with
//! real DNS messages over UDP and TCP.

mod dns;
mod harness;
mod http;
// xorshift64*, shared with the benchmarks and unit tests: deterministic, so a failing
// case replays.
#[path = "../support/rng.rs"]
mod rng;
// Resident memory of file mappings, shared with src/geo/db.rs's tests.
#[path = "../support/smaps.rs"]
mod smaps;

mod admin;
mod admin_slots;
mod blocked_reload;
mod cli;
mod cluster;
mod cname_region;
mod config_errors;
mod dashboard;
mod dnssec;
mod dnssec_denial;
mod dnssec_renew;
mod dnstap;
mod dynamic;
mod ecs_format;
mod example;
mod explain_cli;
mod fallback_ttl;
mod fuzzish;
mod geoip_build;
mod health;
mod hostile;
mod in_process;
mod large_config;
mod policies;
mod probe_source;
mod probe_tls;
mod protocol;
mod reload;
mod reload_settings;
mod rrl;
mod startup_signals;
mod state_file;
mod static_data;
mod status_page;
mod tcp;

use harness::{Deployment, Gslbd};

/// The test zone: every kind of static data the server must handle (with `big`, four
/// 200-byte TXT strings: over 512 bytes, under 1232; and `huge`, eight 250-byte ones: over
/// 1232 bytes).
pub const ZONE: &str = include_str!("../fixtures/it/gslb.test.zone");

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
    ZONE.to_string()
}
