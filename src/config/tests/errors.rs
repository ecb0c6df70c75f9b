//! Mistakes in TOML syntax, schema, `[server]`, `[defaults]` and `[regions]`: each is
//! reported at its `file:line:col` with its key path.

use super::{err, errs};

#[test]
fn syntax_error_has_position_and_nearest_key() {
    let e = err("[server]\nzones = \"z\"\n\n[records.\"www.x\"]\npolicy = geo\n");
    assert_eq!(
        e,
        "gslb.toml:5:10: records.\"www.x\".policy: invalid TOML: string values must be quoted, expected literal string"
    );
    // Only the first syntax error: the rest of a broken document is guesswork.
    let e = err("a = [1, 2\nb = 3\n");
    assert_eq!(
        e,
        "gslb.toml:2:1: b: invalid TOML: missing comma between array elements, expected `,`"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error() {
    let e = err("[server]\nzones = \"a\"\nzones = \"b\"\n");
    assert_eq!(
        e,
        "gslb.toml:3:1: server.zones: invalid TOML: duplicate key: key `zones` is already set at line 2"
    );
    // A table written twice: its key path and where it was first.
    let e = err(
        "[server]\nzones = \"z\"\n[regions.east]\naddresses = [\"192.0.2.1\"]\n\n[regions . east]\n",
    );
    assert_eq!(
        e,
        "gslb.toml:6:12: regions.east: invalid TOML: duplicate key: table [regions.east] is already defined at line 3; a table is written once (merge the two)"
    );
    // Defined by a dotted key before its header: no line to point at, still the key.
    let e = err("server.zones = \"z\"\n[server]\n");
    assert_eq!(
        e,
        "gslb.toml:2:2: server: invalid TOML: duplicate key: already defined above"
    );
}

#[test]
fn unknown_key_at_every_level() {
    let cases = [
        ("bogus = 1\n", "gslb.toml:1:1: bogus: unknown key `bogus`"),
        (
            "[server]\nlisen = []\n",
            "gslb.toml:2:1: server.lisen: unknown key `lisen`",
        ),
        (
            "[server.tcp]\nmax = 1\n",
            "gslb.toml:2:1: server.tcp.max: unknown key `max`",
        ),
        (
            "[server]\nrate_limit = { responses_per_second = 1, burst = 2 }\n",
            "gslb.toml:2:42: server.rate_limit.burst: unknown key `burst`",
        ),
        (
            "[defaults]\nttls = 1\n",
            "gslb.toml:2:1: defaults.ttls: unknown key `ttls`",
        ),
        (
            "[defaults.probe]\nurl = \"http://x/\"\n",
            "gslb.toml:2:1: defaults.probe.url: unknown key `url`",
        ),
        (
            "[regions.a]\naddress = [\"192.0.2.1\"]\n",
            "gslb.toml:2:1: regions.a.address: unknown key `address`",
        ),
        (
            "[regions.a]\nlocation = { lat = 1, lon = 2, alt = 3 }\n",
            "gslb.toml:2:32: regions.a.location.alt: unknown key `alt`",
        ),
        (
            "[regions.a.probe]\ntcp = \"h:1\"\nretries = 3\n",
            "gslb.toml:3:1: regions.a.probe.retries: unknown key `retries`",
        ),
        (
            "[records.\"www.x\"]\npolicy = \"geo\"\nttl_s = 3\n",
            "gslb.toml:3:1: records.\"www.x\".ttl_s: unknown key `ttl_s`",
        ),
        (
            "[records.\"www.x\".geo]\ncontinents.EU = []\n",
            "gslb.toml:2:1: records.\"www.x\".geo.continents: unknown key `continents`",
        ),
        (
            "[latency]\nsubdivision = {}\n",
            "gslb.toml:2:1: latency.subdivision: unknown key `subdivision`",
        ),
    ];
    for (text, start) in cases {
        let e = err(text);
        assert!(
            e.starts_with(start),
            "{text:?}\n got: {e}\nwant: {start}..."
        );
        assert!(e.contains("expected"), "lists the known keys: {e}");
    }
}

#[test]
fn wrong_types_and_missing_keys() {
    let e = err("[server.tcp]\nmax_connections = \"many\"\n");
    assert_eq!(
        e,
        "gslb.toml:2:19: server.tcp.max_connections: invalid type: string \"many\", expected an integer"
    );
    let e = err("[regions.a]\naddresses = [\"192.0.2.1\", 7]\n");
    assert_eq!(
        e,
        "gslb.toml:2:27: regions.a.addresses: invalid type: integer `7`, expected a string"
    );
    let e = err("[records]\n\"www.x\" = 1\n");
    assert_eq!(
        e,
        "gslb.toml:2:11: records.\"www.x\": invalid type: integer `1`, expected a table"
    );
    let e = err("[server]\ngeoip = \"g.mmdb\"\ngeoip_mmap = \"yes\"\n");
    assert_eq!(
        e,
        "gslb.toml:3:14: server.geoip_mmap: invalid type: string \"yes\", expected a boolean"
    );
    let e = err("[server]\ngeoip_mmap = 1\n");
    assert_eq!(
        e,
        "gslb.toml:2:14: server.geoip_mmap: invalid type: integer `1`, expected a boolean"
    );
    let e = err("[server]\nrate_limit = { slip = 1 }\n");
    assert_eq!(
        e,
        "gslb.toml:2:14: server.rate_limit: missing key `responses_per_second`"
    );
    let e = err("[regions.a]\naddresses = [\"192.0.2.1\"]\nlocation = { lat = 1 }\n");
    assert_eq!(e, "gslb.toml:3:12: regions.a.location: missing key `lon`");
}

#[test]
fn durations() {
    let e = err("[server.tcp]\nidle_timeout = \"10 parsecs\"\n");
    assert!(
        e.starts_with("gslb.toml:2:16: server.tcp.idle_timeout: invalid duration \"10 parsecs\" (expected e.g. \"500ms\", \"2s\", \"1m\"): "),
        "{e}"
    );
    let e = err("[server]\nreload_timeout = \"0s\"\n");
    assert_eq!(
        e,
        "gslb.toml:2:18: server.reload_timeout: duration \"0s\" must be greater than zero"
    );
    let e = err("[defaults.probe]\ninterval = \"0s\"\n");
    assert_eq!(
        e,
        "gslb.toml:2:12: defaults.probe.interval: duration \"0s\" must be greater than zero"
    );
    let e = err("[defaults.probe]\ninterval = \"2days\"\n");
    assert_eq!(
        e,
        "gslb.toml:2:12: defaults.probe.interval: duration \"2days\" is too long (at most 1 day)"
    );
}

#[test]
fn probe_timeout_must_be_shorter_than_interval() {
    let e = err("[defaults]\nprobe = { interval = \"1s\", timeout = \"1s\" }\n");
    assert_eq!(
        e,
        "gslb.toml:2:38: defaults.probe.timeout: probe timeout (1s) must be shorter than its interval (1s)"
    );
    // Checked against the inherited interval (5s) too.
    let e = err(
        "[regions.a]\naddresses = [\"192.0.2.1\"]\nprobe = { tcp = \"h:1\", timeout = \"6s\" }\n",
    );
    assert_eq!(
        e,
        "gslb.toml:3:34: regions.a.probe.timeout: probe timeout (6s) must be shorter than its interval (5s, inherited from [defaults] probe; set `interval` here to change it)"
    );
    // Only the interval written: the timeout it clashes with is inherited, and says so.
    let e = err(
        "[regions.a]\naddresses = [\"192.0.2.1\"]\nprobe = { tcp = \"h:1\", interval = \"2s\" }\n",
    );
    assert_eq!(
        e,
        "gslb.toml:3:35: regions.a.probe.interval: probe timeout (2s, inherited from [defaults] probe; set `timeout` here to change it) must be shorter than its interval (2s)"
    );
    let e = err("[defaults]\nprobe = { interval = \"1s\" }\n");
    assert_eq!(
        e,
        "gslb.toml:2:22: defaults.probe.interval: probe timeout (2s, gslbd's default; set `timeout` here to change it) must be shorter than its interval (1s)"
    );
}

#[test]
fn integer_ranges() {
    let e = err("[defaults]\nttl = 2147483648\n");
    assert_eq!(
        e,
        "gslb.toml:2:7: defaults.ttl: must be between 0 and 2147483647 (RFC 2181), got 2147483648"
    );
    let e = err("[defaults.probe]\nrise = 0\n");
    assert_eq!(
        e,
        "gslb.toml:2:8: defaults.probe.rise: must be between 1 and 100, got 0"
    );
    let e = err("[defaults.probe]\nfall = 101\n");
    assert_eq!(
        e,
        "gslb.toml:2:8: defaults.probe.fall: must be between 1 and 100, got 101"
    );
    let e = err("[server.tcp]\nmax_connections = 0\n");
    assert_eq!(
        e,
        "gslb.toml:2:19: server.tcp.max_connections: must be between 1 and 1000000, got 0"
    );
    let e = err("[server]\ntcp = { max_per_client = 0 }\n");
    assert_eq!(
        e,
        "gslb.toml:2:26: server.tcp.max_per_client: must be between 1 and 1000000 (connections from one /24 or /56), got 0"
    );
    let e = err("[server]\nrate_limit = { responses_per_second = 0 }\n");
    assert!(
        e.starts_with("gslb.toml:2:39: server.rate_limit.responses_per_second: must be between 1"),
        "{e}"
    );
}

#[test]
fn listen_admin_and_token() {
    let e = err("[server]\nlisten = []\n");
    assert_eq!(
        e,
        "gslb.toml:2:10: server.listen: must list at least one address"
    );
    let all = errs(
        "[server]\nlisten = [\"127.0.0.1:53\", \"localhost:53\", \"127.0.0.1:53\"]\nadmin = \"8053\"\nadmin_token = \"\"\n",
    );
    assert_eq!(
        all,
        [
            "gslb.toml:2:27: server.listen: \"localhost:53\" is not an ip:port address (e.g. \"127.0.0.1:5353\" or \"[::1]:5353\")",
            "gslb.toml:2:43: server.listen: address 127.0.0.1:53 is listed twice",
            "gslb.toml:3:9: server.admin: \"8053\" is not an ip:port address (e.g. \"127.0.0.1:5353\" or \"[::1]:5353\")",
            "gslb.toml:4:15: server.admin_token: must not be empty (omit the key to allow mutating calls from loopback only)",
        ]
    );
}

#[test]
fn region_names_and_addresses() {
    let all = errs(concat!(
        "[regions.\"us east\"]\naddresses = [\"192.0.2.1\"]\n",
        "[regions.b]\naddresses = [\"192.0.2.300\", \"2001:db8::1\", \"2001:DB8::1\"]\n",
        "[regions.c]\naddresses = []\n",
        "[regions.d]\nlocation = { lat = 91, lon = -180 }\n",
    ));
    assert_eq!(
        all,
        [
            "gslb.toml:1:10: regions.\"us east\": region name \"us east\" may only contain ASCII letters, digits, '-' and '_'",
            "gslb.toml:4:14: regions.b.addresses: \"192.0.2.300\" is not an IPv4 or IPv6 address",
            "gslb.toml:4:44: regions.b.addresses: address 2001:db8::1 is listed twice",
            "gslb.toml:6:13: regions.c.addresses: must list at least one address",
            "gslb.toml:7:10: regions.d: missing key \"addresses\" (or \"cname\"): a region needs at least one address, or a name to answer with",
            "gslb.toml:8:20: regions.d.location.lat: must be between -90 and 90 degrees, got 91",
        ]
    );
}

#[test]
fn probe_targets() {
    let region = "[regions.a]\naddresses = [\"192.0.2.1\"]\n";
    let cases = [
        (
            "{ interval = \"10s\" }",
            "3:9: regions.a.probe: a probe needs url = \"http://...\" or tcp = \"host:port\"",
        ),
        (
            "{ url = \"http://h/\", tcp = \"h:1\" }",
            "3:36: regions.a.probe.tcp: a probe has either url or tcp, not both",
        ),
        (
            "{ url = \"ftp://h/\" }",
            "3:17: regions.a.probe.url: \"ftp://h/\" is not an http:// or https:// URL",
        ),
        (
            "{ url = \"http:///x\" }",
            "3:17: regions.a.probe.url: \"http:///x\" has no host",
        ),
        (
            "{ url = \"http://h:99999/\" }",
            "3:17: regions.a.probe.url: \"http://h:99999/\": invalid port \"99999\" (expected 1-65535)",
        ),
        (
            "{ tcp = \"127.0.0.1\" }",
            "3:17: regions.a.probe.tcp: \"127.0.0.1\" is not host:port, [IPv6]:port or {address}:port",
        ),
        (
            "{ tcp = \"{address}:80\", host = \"x\" }",
            "3:40: regions.a.probe.host: host only applies to url probes, not tcp probes",
        ),
        (
            "{ tcp = \"h:1\", insecure = false }",
            "3:35: regions.a.probe.insecure: insecure only applies to url probes, not tcp probes",
        ),
        (
            "{ url = \"http://h/\", expect_status = [200, 99] }",
            "3:52: regions.a.probe.expect_status: must be between 100 and 599 (an HTTP status), got 99",
        ),
        (
            "{ url = \"http://h/\", expect_status = [] }",
            "3:46: regions.a.probe.expect_status: must list at least one status",
        ),
        (
            "{ url = \"http://h/\", min_healthy = 2 }",
            "3:44: regions.a.probe.min_healthy: must be between 1 and 1 (at most the number of the region's addresses), got 2",
        ),
    ];
    for (probe, want) in cases {
        let e = err(&format!("{region}probe = {probe}\n"));
        assert_eq!(e, format!("gslb.toml:{want}"), "probe = {probe}");
    }
}

#[test]
fn every_error_is_reported_in_file_order() {
    let all = errs(concat!(
        "[server]\nlisten = [\"nope\"]\n",
        "[defaults]\nttl = -1\n",
        "[regions.a]\naddresses = [\"192.0.2.1\"]\nprobe = { tcp = \"x\", timeout = \"1fortnight\" }\n",
        "[records.\"bad..name\"]\npolicy = \"geograph\"\n",
        "[records.ok]\npolicy = \"failover\"\nregions = [\"b\"]\nwhen_all_down = \"none\"\n",
        "[latency]\ncountry.jp = { a = -3 }\n",
    ));
    let keys: Vec<&str> = all
        .iter()
        .map(|e| e.split(": ").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "server.listen",
            "defaults.ttl",
            "regions.a.probe.tcp",
            "regions.a.probe.timeout",
            "records.\"bad..name\"",
            "records.\"bad..name\".policy",
            "records.ok.regions",
            "records.ok.when_all_down",
            "latency.country.jp",
            "latency.country.jp.a",
        ],
        "{all:#?}"
    );
}

#[test]
fn cluster_and_probe_source_mistakes() {
    let cases = [
        (
            "[cluster]\npeers = [\"192.0.2.53:8053\"]\n",
            "gslb.toml:2:10: cluster.peers: \"192.0.2.53:8053\" is not a peer's admin API URL (no http:// or https://); expected e.g. \"http://192.0.2.53:8053\"",
        ),
        (
            "[cluster]\npeers = [\"http://\"]\n",
            "gslb.toml:2:10: cluster.peers: \"http://\" is not a peer's admin API URL (empty host); expected e.g. \"http://192.0.2.53:8053\"",
        ),
        (
            "[cluster]\npeers = [\"http://192.0.2.53:8053/api\"]\n",
            "gslb.toml:2:10: cluster.peers: \"http://192.0.2.53:8053/api\" is not a peer's admin API URL (give the address only, without a path); expected e.g. \"http://192.0.2.53:8053\"",
        ),
        (
            "[cluster]\npeers = [\"http://192.0.2.53:8053\"]\nquorum = 3\n",
            "gslb.toml:3:10: cluster.quorum: 3 is more than the 2 instances (this one and 1 peer(s)): no target could ever go down",
        ),
        (
            "[cluster]\npeers = [\"http://192.0.2.53:8053\"]\nquorum = 0\n",
            "gslb.toml:3:10: cluster.quorum: 0: at least 1 down-vote must take a target down",
        ),
        (
            "[cluster]\npeers = []\n",
            "gslb.toml:2:9: cluster.peers: must list at least one other instance (omit [cluster] for a single instance)",
        ),
        (
            "[cluster]\ninterval = \"2s\"\n",
            "gslb.toml:1:1: cluster.peers: missing: list the other instances' admin API, e.g. peers = [\"http://192.0.2.53:8053\"]",
        ),
        (
            "[cluster]\npeers = [\"http://a:1\", \"http://a:1/\"]\n",
            "gslb.toml:2:24: cluster.peers: http://a:1 is listed twice",
        ),
        (
            "[server]\nprobe_source = \"eth0\"\n",
            "gslb.toml:2:16: server.probe_source: \"eth0\" is not an IP address (the source address of this instance's probes, e.g. \"203.0.113.53\")",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text}");
    }
    let all = errs("[cluster]\npeers = [\"ftp://x\", \"http://y:1\"]\nquorum = 5\n");
    assert_eq!(all.len(), 2, "{all:?}");
}

#[test]
fn cname_region_mistakes() {
    let cases = [
        (
            "[regions.a]\naddresses = [\"192.0.2.1\"]\ncname = \"lb.example.\"\n",
            "gslb.toml:3:9: regions.a.cname: a region is answered either by its addresses or by a cname, not both",
        ),
        (
            "[regions.a]\ncname = \"lb.example\"\n",
            "gslb.toml:2:9: regions.a.cname: \"lb.example\" must be an absolute name ending in a dot, e.g. \"eu-west-1.lb.cloud.example.\"",
        ),
        (
            "[regions.a]\ncname = \"lb..example.\"\n",
            "gslb.toml:2:9: regions.a.cname: \"lb..example.\" is not a valid DNS name: Malformed label: ",
        ),
        (
            "[regions.a]\nlocation = { lat = 1, lon = 2 }\n",
            "gslb.toml:1:10: regions.a: missing key \"addresses\" (or \"cname\"): a region needs at least one address, or a name to answer with",
        ),
        (
            "[regions.a]\ncname = \"lb.example.\"\nprobe = { url = \"http://{address}/healthz\" }\n",
            "gslb.toml:3:9: regions.a.probe: a cname region has no addresses to probe one by one: probe the name (or its load balancer's health endpoint) instead of {address}",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn dnssec_section() {
    let m = super::ok("[dnssec]\n");
    let d = m.dnssec.expect("[dnssec]");
    assert_eq!(d.keys, std::path::Path::new("/etc/gslb/keys"));
    assert_eq!(d.algorithm, crate::dnssec::Algorithm::EcdsaP256Sha256);
    assert_eq!(d.validity, crate::dnssec::DEFAULT_VALIDITY);
    let m = super::ok(
        "[dnssec]\nkeys = \"/var/lib/gslbd/keys\"\nalgorithm = \"ED25519\"\nvalidity = \"30d\"\n",
    );
    let d = m.dnssec.unwrap();
    assert_eq!(d.keys, std::path::Path::new("/var/lib/gslbd/keys"));
    assert_eq!(d.algorithm, crate::dnssec::Algorithm::Ed25519);
    assert_eq!(d.validity.as_secs(), 30 * 86400);
    assert_eq!(super::ok("").dnssec, None);
    let cases = [
        (
            "[dnssec]\nalgorithm = \"rsasha256\"\n",
            "gslb.toml:2:13: dnssec.algorithm: unknown algorithm \"rsasha256\": ecdsap256sha256 (13, the default) or ed25519 (15)",
        ),
        (
            "[dnssec]\nvalidity = \"1h\"\n",
            "gslb.toml:2:12: dnssec.validity: validity \"1h\" is too short (at least 2h: signatures are renewed halfway)",
        ),
        (
            "[dnssec]\nvalidity = \"365d\"\n",
            "gslb.toml:2:12: dnssec.validity: validity \"365d\" is too long (at most 90d)",
        ),
        (
            "[dnssec]\nkeys = \"\"\n",
            "gslb.toml:2:8: dnssec.keys: must not be empty",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(super::err(text), want, "{text}");
    }
    assert!(
        super::err("[dnssec]\nkey = \"k\"\n").contains("unknown key `key`, expected one of `keys`")
    );
}
