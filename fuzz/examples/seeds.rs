//! Writes the seed corpora: `cargo run --example seeds` (in `fuzz/`). Files are named
//! `seed-*` so that `.gitignore` can tell them from what libFuzzer adds (SHA-1 names).
//! Rerunning rewrites the same bytes.
//!
//! A request seed's ID picks the fixture's health state (low 2 bits), source address
//! (next 4 bits, `fixture::SOURCES`) and, with bits 6 and 7 set, rate limiting:
//! `id(source, health)`, `id_rrl(source, health)` (see `fixture::Request::pick`).

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use gslbd_fuzz::fixture;

fn id(source: u16, health: u16) -> u16 {
    0x4000 | (source << 2) | health
}

/// The same, answered from the rate-limited copy of the state.
fn id_rrl(source: u16, health: u16) -> u16 {
    id(source, health) | 0xC0
}

fn msg(id: u16, name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn edns(mut m: Message, payload: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(payload);
    m.set_edns(e);
    m
}

fn ecs(m: Message, addr: &str, prefix: u8) -> Message {
    let mut m = if m.edns.is_some() { m } else { edns(m, 1232) };
    let addr: IpAddr = addr.parse().unwrap();
    m.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

/// A header (ID, flags, counts) followed by `rest`.
fn raw(id: u16, flags: u16, counts: [u16; 4], rest: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend(flags.to_be_bytes());
    for c in counts {
        v.extend(c.to_be_bytes());
    }
    v.extend(rest);
    v
}

/// The question `static.gslb.test. A IN` in wire form.
fn question() -> Vec<u8> {
    let m = msg(0, "static.gslb.test.", RecordType::A);
    bytes(&m)[12..].to_vec()
}

fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "a-static",
            bytes(&msg(id(0, 0), "static.gslb.test.", RecordType::A)),
        ),
        (
            "aaaa-www-edns",
            bytes(&edns(
                msg(id(11, 0), "www.gslb.test.", RecordType::AAAA),
                1232,
            )),
        ),
        (
            "any-static",
            bytes(&msg(id(0, 0), "Static.GSLB.test.", RecordType::ANY)),
        ),
        (
            "txt-huge-edns4096",
            bytes(&edns(
                msg(id(0, 0), "huge.gslb.test.", RecordType::TXT),
                4096,
            )),
        ),
        (
            "txt-big-noedns",
            bytes(&msg(id(0, 0), "big-txt.gslb.test.", RecordType::TXT)),
        ),
        (
            "mx-apex-edns",
            bytes(&edns(msg(id(0, 0), "gslb.test.", RecordType::MX), 1232)),
        ),
        (
            "ns-apex",
            bytes(&msg(id(0, 0), "gslb.test.", RecordType::NS)),
        ),
        (
            "a-referral",
            bytes(&msg(id(0, 0), "host.sub.gslb.test.", RecordType::A)),
        ),
        (
            "a-www-ecs4",
            bytes(&ecs(
                msg(id(0, 0), "www.gslb.test.", RecordType::A),
                "81.2.69.0",
                24,
            )),
        ),
        (
            "aaaa-www-ecs6",
            bytes(&ecs(
                msg(id(0, 1), "www.gslb.test.", RecordType::AAAA),
                "2001:218::",
                32,
            )),
        ),
        (
            "a-api-ecs-source0",
            bytes(&ecs(
                msg(id(3, 0), "api.gslb.test.", RecordType::A),
                "0.0.0.0",
                0,
            )),
        ),
        (
            "a-edge-latency",
            bytes(&edns(msg(id(6, 1), "edge.gslb.test.", RecordType::A), 1400)),
        ),
        (
            "a-pool-wildcard-ecs",
            bytes(&ecs(
                msg(id(1, 3), "x.y.pool.gslb.test.", RecordType::A),
                "198.51.100.7",
                32,
            )),
        ),
        (
            "a-big-dynamic",
            bytes(&msg(id(0, 0), "big.gslb.test.", RecordType::A)),
        ),
        (
            "aaaa-rnd-all-down",
            bytes(&edns(
                msg(id(2, 2), "rnd.gslb.test.", RecordType::AAAA),
                512,
            )),
        ),
        (
            "a-many-static",
            bytes(&msg(id(0, 3), "many.gslb.test.", RecordType::A)),
        ),
        (
            "a-cname-chain",
            bytes(&msg(id(0, 0), "c1.gslb.test.", RecordType::A)),
        ),
        (
            "a-cname-loop",
            bytes(&msg(id(0, 0), "loop1.gslb.test.", RecordType::A)),
        ),
        (
            "a-towww",
            bytes(&msg(id(4, 0), "towww.gslb.test.", RecordType::A)),
        ),
        (
            "txt-wildcard",
            bytes(&msg(id(0, 0), "a.b.wild.gslb.test.", RecordType::TXT)),
        ),
        (
            "srv",
            bytes(&msg(id(0, 0), "_sip._tcp.gslb.test.", RecordType::SRV)),
        ),
        (
            "a-nxdomain",
            bytes(&msg(id(0, 0), "nope.gslb.test.", RecordType::A)),
        ),
        (
            "a-refused",
            bytes(&msg(id(0, 0), "example.org.", RecordType::A)),
        ),
        (
            "a-second-zone",
            bytes(&msg(id(12, 0), "www.second.test.", RecordType::A)),
        ),
        (
            "axfr",
            bytes(&msg(id(0, 0), "gslb.test.", RecordType::AXFR)),
        ),
        (
            "a-static-rate-limited",
            bytes(&msg(id_rrl(1, 0), "static.gslb.test.", RecordType::A)),
        ),
        (
            "a-www-ecs-rate-limited",
            bytes(&ecs(
                msg(id_rrl(5, 1), "www.gslb.test.", RecordType::A),
                "81.2.69.0",
                24,
            )),
        ),
    ];
    // DS at a delegation point, DO bit set.
    let mut m = edns(msg(id(0, 0), "sub.gslb.test.", RecordType::DS), 1232);
    m.edns.as_mut().unwrap().set_dnssec_ok(true);
    v.push(("ds-delegation-do", bytes(&m)));
    // EDNS version 1: BADVERS.
    let mut m = edns(msg(id(0, 0), "static.gslb.test.", RecordType::A), 1232);
    m.edns.as_mut().unwrap().set_version(1);
    v.push(("edns-version1", bytes(&m)));
    // Other EDNS options next to ECS: a cookie and padding.
    let mut m = ecs(
        msg(id(9, 0), "www.gslb.test.", RecordType::A),
        "203.0.113.0",
        24,
    );
    let opts = m.edns.as_mut().unwrap().options_mut();
    opts.insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Cookie),
        vec![1, 2, 3, 4, 5, 6, 7, 8],
    ));
    opts.insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Padding),
        vec![0; 16],
    ));
    v.push(("edns-cookie-padding", bytes(&m)));
    // CHAOS class, NOTIFY opcode.
    let mut m = msg(id(0, 0), "version.bind.", RecordType::TXT);
    m.queries[0].set_query_class(DNSClass::CH);
    v.push(("txt-chaos", bytes(&m)));
    let mut m = msg(id(0, 0), "gslb.test.", RecordType::SOA);
    m.metadata.op_code = OpCode::Notify;
    v.push(("notify", bytes(&m)));

    // Hand-made wire bytes.
    let q = question();
    let opt = |rdata: &[u8]| -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0];
        o.extend((rdata.len() as u16).to_be_bytes());
        o.extend(rdata);
        o
    };
    let mut p = q.clone();
    p.extend(opt(&[0, 8, 0, 7, 0, 3, 24, 0, 81, 2, 69]));
    v.push(("ecs-bad-family", raw(0x4001, 0, [1, 0, 0, 1], &p)));
    let mut p = q.clone();
    p.extend(opt(&[0, 8, 0, 9, 0, 1, 33, 0, 81, 2, 69, 1, 1]));
    v.push(("ecs-bad-prefix", raw(0x4002, 0, [1, 0, 0, 1], &p)));
    let mut p = q.clone();
    p.extend(opt(&[0, 8, 0, 200, 0, 1, 24, 0]));
    v.push(("ecs-lying-length", raw(0x4003, 0, [1, 0, 0, 1], &p)));
    v.push(("truncated-name", raw(0x4004, 0, [1, 0, 0, 0], &q[..5])));
    v.push((
        "compression-loop",
        raw(0x4005, 0, [1, 0, 0, 0], &[0xC0, 0x0C, 0, 1, 0, 1]),
    ));
    v.push((
        "compression-cycle",
        raw(
            0x4006,
            0,
            [1, 0, 0, 0],
            &[0xC0, 0x0E, 0xC0, 0x0C, 0, 1, 0, 1],
        ),
    ));
    v.push(("lying-counts", raw(0x4007, 0, [1, 65535, 65535, 65535], &q)));
    let mut two = q.clone();
    two.extend([0xC0, 0x0C, 0, 28, 0, 1]);
    v.push(("qdcount2", raw(0x4008, 0x0100, [2, 0, 0, 0], &two)));
    v.push(("header-only", raw(0x4009, 0, [0, 0, 0, 0], &[])));
    v.push(("response-bit", raw(0x400A, 0x8000, [1, 0, 0, 0], &q)));
    v.push(("short", vec![0x12, 0x34, 0x01]));
    v
}

const GSLB_TOML: &str = include_str!("../../gslb.toml");
const EXAMPLE_ZONE: &str = include_str!("../../zones/gslb.example.com.zone");

/// The integration tests' config (tests/fixtures/it/gslb.toml, as tests/it/main.rs uses it).
const IT_CONFIG: &str = include_str!("../../tests/fixtures/it/gslb.toml");

/// Every server key, probes of each kind (docs/CONFIG.md).
const FULL_CONFIG: &str = r#"[server]
listen = ["127.0.0.1:5353", "[::1]:5353"]
admin  = "127.0.0.1:8053"
admin_token = "change-me"
zones  = "zones"
geoip  = "geoip/sample.mmdb"
rate_limit = { responses_per_second = 200, slip = 2 }
tcp = { max_connections = 1024, idle_timeout = "10s" }
query_log = { sample = 0.01 }

[defaults]
ttl   = 30
probe = { interval = "5s", timeout = "2s", rise = 2, fall = 3 }

[regions.us-east]
addresses = ["192.0.2.10", "2001:db8:10::1"]
location  = { lat = 39.04, lon = -77.49 }
probe = { url = "http://127.0.0.1:9101/healthz", expect_status = [200, 204], expect_body = "ok", host = "www.example.com", interval = "2s", timeout = "1s", rise = 2, fall = 2 }

[regions.eu-west]
addresses = ["198.51.100.20", "198.51.100.21"]
location  = { lat = 53.35, lon = -6.26 }
probe = { tcp = "{address}:443", min_healthy = 2 }

[regions.ap-south]
addresses = ["203.0.113.30", "203.0.113.31"]
location  = { lat = 19.08, lon = 72.88 }
probe = { url = "https://{address}:9103/healthz", insecure = true }

[regions.us-west]
addresses = ["192.0.2.40"]

[records."www.gslb.example.com"]
policy  = "geo"
ttl     = 20
regions = ["us-east", "eu-west", "ap-south", "us-west"]
when_all_down = "all"

[records."www.gslb.example.com".geo]
continent.EU = ["eu-west", "us-east"]
country.JP   = ["ap-south", "us-east"]
subdivision."US-CA" = ["us-west", "us-east"]
cidr."203.0.113.0/24" = ["eu-west"]
cidr."2001:db8::/32" = ["us-west"]
default      = ["us-east", "eu-west", "ap-south"]

[records."api.gslb.example.com"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1, us-west = 0 }
sticky  = true

[records."edge.gslb.example.com"]
policy = "latency"
when_all_down = "nodata"

[records."db.gslb.example.com"]
policy  = "failover"
regions = ["us-east", "eu-west"]

[records."*.pool.gslb.example.com"]
policy  = "weighted"
weights = { us-east = 1, ap-south = 1 }

[latency]
continent.EU = { eu-west = 20, us-east = 90, ap-south = 140 }
country.JP   = { ap-south = 70.5, us-east = 160 }
cidr."198.51.100.0/24" = { us-east = 5 }
"#;

fn configs() -> Vec<(&'static str, String)> {
    vec![
        ("repo-gslb.toml", GSLB_TOML.into()),
        ("fixture.toml", fixture::CONFIG.into()),
        ("it.toml", IT_CONFIG.into()),
        ("full.toml", FULL_CONFIG.into()),
        ("empty.toml", String::new()),
        (
            "err-unknown-region.toml",
            GSLB_TOML.replace("regions = [\"eu-west\", \"us-east\"]", "regions = [\"eu-wst\"]"),
        ),
        (
            "err-syntax.toml",
            "[server]\nlisten = [\"127.0.0.1:5353\"\nzones = 3\n[regions.a]\n".into(),
        ),
        (
            "err-values.toml",
            "[server]\nlisten = [\"nohost:53\", \"127.0.0.1:99999\"]\ntcp = { idle_timeout = \"0s\" }\n\
             [defaults]\nttl = -1\nprobe = { interval = \"1s\", timeout = \"2s\", rise = 0 }\n\
             [regions.\"bad name\"]\naddresses = []\nlocation = { lat = 91, lon = 0 }\n\
             [records.\"x.gslb.test\"]\npolicy = \"weighted\"\nweights = { nope = 1 }\n\
             [latency]\ncontinent.XX = { a = nan }\n"
                .into(),
        ),
        (
            "err-unknown-keys.toml",
            "[server]\nlisen = []\n[regions.a]\naddresses = [\"192.0.2.1\"]\nprobe = { url = \"ftp://x\", tcp = \"y:1\" }\n"
                .into(),
        ),
        (
            "unicode.toml",
            "# é ü 漢字\n[regions.\"ré\"]\naddresses = [\"192.0.2.1\"] # ✓\n".into(),
        ),
    ]
}

fn zones() -> Vec<(&'static str, String)> {
    let soa = "$ORIGIN fuzz.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 192.0.2.53\n";
    let with = |extra: &str| format!("{soa}{extra}");
    vec![
        (
            "repo-example.zone",
            EXAMPLE_ZONE.replace("gslb.example.com.", "fuzz.test."),
        ),
        (
            "fixture.zone",
            fixture::zone_text().replace("gslb.test.", "fuzz.test."),
        ),
        ("minimal.zone", soa.into()),
        (
            "include.zone",
            with("$INCLUDE a.inc\n$INCLUDE nested.inc inc\nafter IN TXT \"origin restored\"\n"),
        ),
        (
            "include-bad.zone",
            with(
                "$INCLUDE self.inc\n$INCLUDE bad.inc\n$INCLUDE origin.inc\n$INCLUDE fuzz.test.zone\n",
            ),
        ),
        (
            "include-escape.zone",
            with(
                "$INCLUDE escape.inc\n$INCLUDE ../outside.inc\n$INCLUDE /etc/hostname\n$INCLUDE missing.inc\n",
            ),
        ),
        (
            "errors.zone",
            with(
                "www IN CNAME a\nwww IN CNAME b\nd IN DNAME x.\nch CH TXT \"x\"\nout.example. IN A 192.0.2.1\nbad IN A 300.1.1.1\n$FOO bar\n",
            ),
        ),
        (
            "multiline.zone",
            with(
                "txt IN TXT ( \"a\" ; comment\n  \"b\" )\n  IN AAAA ::1\n$ORIGIN sub\nx 1h IN A 192.0.2.9\n\"q\\\"uoted\" IN TXT \"$notdirective\"\n",
            ),
        ),
        (
            "no-soa.zone",
            "$ORIGIN fuzz.test.\nwww IN A 192.0.2.1\n".into(),
        ),
    ]
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (mut n, mut total) = (0, 0);
    for (name, data) in requests() {
        write(&corpus.join("request"), name, &data);
        (n, total) = (n + 1, total + data.len());
    }
    for (name, text) in configs() {
        write(&corpus.join("config"), name, text.as_bytes());
        (n, total) = (n + 1, total + text.len());
    }
    for (name, text) in zones() {
        write(&corpus.join("zone"), name, text.as_bytes());
        (n, total) = (n + 1, total + text.len());
    }
    eprintln!("wrote {n} seeds, {total} bytes, under {}", corpus.display());
}
