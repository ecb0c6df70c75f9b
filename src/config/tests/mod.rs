//! Tests of the config loader: the contract's example becomes the expected model, and
//! every kind of mistake is reported at its line and column with its key path.

mod dnstap;
mod errors;
mod model;
mod records;
mod syntax;

use std::path::Path;

use crate::model::Model;

/// The contract's example, completed so it stands alone: it defines the regions it
/// names (eu-west, ap-south, us-west) and lists us-west among the candidates of the
/// record whose geo rules use it.
pub(super) const EXAMPLE: &str = r#"[server]
listen = ["127.0.0.1:5353"]        # UDP and TCP on each
admin  = "127.0.0.1:8053"           # HTTP admin API; omit to disable
admin_token = "s3cret"
zones  = "zones"
geoip  = "geoip/sample.mmdb"
rate_limit = { responses_per_second = 200, slip = 2 }
tcp = { max_connections = 1024, idle_timeout = "10s" }

[defaults]
ttl   = 30
probe = { interval = "5s", timeout = "2s", rise = 2, fall = 3 }

[regions.us-east]
addresses = ["192.0.2.10", "2001:db8:10::1"]
location  = { lat = 39.04, lon = -77.49 }
probe = { url = "http://127.0.0.1:9101/healthz", expect_status = [200], expect_body = "ok", interval = "2s", timeout = "1s", rise = 2, fall = 2 }

[regions.eu-west]
addresses = ["198.51.100.20", "2001:db8:20::1", "198.51.100.21"]
location  = { lat = 53.35, lon = -6.26 }
probe = { tcp = "127.0.0.1:9102" }

[regions.ap-south]
addresses = ["203.0.113.30", "203.0.113.31"]
location  = { lat = 19.08, lon = 72.88 }
probe = { url = "http://{address}:9103/healthz", min_healthy = 2, timeout = "500ms" }

[regions.us-west]
addresses = ["192.0.2.40"]

[records."www.gslb.example.com"]
policy  = "geo"
ttl     = 20
regions = ["us-east", "eu-west", "ap-south", "us-west"]
when_all_down = "first"

[records."www.gslb.example.com".geo]
continent.EU = ["eu-west", "us-east"]
country.JP   = ["ap-south", "us-east"]
subdivision."US-CA" = ["us-west", "us-east"]
cidr."203.0.113.0/24" = ["eu-west"]
default      = ["us-east", "eu-west", "ap-south"]

[records."api.gslb.example.com"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1 }
sticky  = true

[records."edge.gslb.example.com"]
policy = "latency"

[records."db.gslb.example.com"]
policy  = "failover"
regions = ["us-east", "eu-west"]
when_all_down = "nodata"

[latency]
continent.EU = { eu-west = 20, us-east = 90, ap-south = 140 }
country.JP   = { ap-south = 70.5, us-east = 160 }
cidr."198.51.100.0/24" = { us-east = 5 }
"#;

/// Three regions, six lines; tests append a record after them (their first line is 7).
pub(super) const REGIONS: &str = r#"[regions.us-east]
addresses = ["192.0.2.10"]
[regions.eu-west]
addresses = ["198.51.100.20"]
[regions.ap-south]
addresses = ["203.0.113.30"]
"#;

/// Parses `text` as `/etc/gslb/gslb.toml`, which must be valid.
pub(super) fn ok(text: &str) -> Model {
    match super::parse(text, Path::new("/etc/gslb/gslb.toml")) {
        Ok(m) => m,
        Err(d) => panic!("unexpected errors:\n{d}"),
    }
}

/// Every diagnostic for `text` (as `gslb.toml`), rendered.
pub(super) fn errs(text: &str) -> Vec<String> {
    match super::parse(text, Path::new("gslb.toml")) {
        Ok(_) => panic!("expected errors, the config loaded:\n{text}"),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

/// The one diagnostic for `text`.
pub(super) fn err(text: &str) -> String {
    let all = errs(text);
    assert_eq!(all.len(), 1, "expected exactly one error, got: {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

/// The one diagnostic for a record written after [`REGIONS`].
pub(super) fn rec_err(record: &str) -> String {
    err(&format!("{REGIONS}{record}"))
}
