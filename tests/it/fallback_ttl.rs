//! Short TTLs on fallback answers: when a client gets a region other than its first
//! choice because that one is down or drained, the TTL is capped at `fallback_ttl` (per
//! record, else `[defaults]`, else 10 s), so resolvers come back soon after it recovers.
//! A region passed over for lacking addresses of the family is no fallback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd};
use crate::http::post;
use crate::{CONFIG, zone_text};

fn start(config: &str) -> (Gslbd, Deployment, SocketAddr) {
    let dep = Deployment::new(config, &[("gslb.test.zone", &zone_text())]);
    let server = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = server.admin.expect("admin address logged");
    (server, dep, admin)
}

/// (addresses, TTLs) of the answer to `name` `rtype`.
fn ask(s: &Gslbd, name: &str, rtype: RecordType) -> (Vec<String>, Vec<u32>) {
    let r: Message = dns::udp(s.udp, &query(name, rtype));
    let ttls = r.answers.iter().map(|rr| rr.ttl).collect();
    (dns::answer_data(&r, rtype), ttls)
}

/// Waits (1 s at most) for `www.gslb.test A` to be answered from an address starting
/// with `first`.
fn www_from(s: &Gslbd, first: &str) -> (Vec<String>, Vec<u32>) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got = ask(s, "www.gslb.test.", RecordType::A);
        if got.0.first().is_some_and(|a| a.starts_with(first)) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn failover_answers_get_the_fallback_ttl() {
    let (s, _dep, admin) = start(CONFIG);
    // www: failover eu-west then us-east, ttl 20; fallback_ttl defaults to 10.
    let (_, ttls) = www_from(&s, "192.0.2.2");
    assert_eq!(ttls, [20, 20], "the first choice: the record's TTL");
    assert_eq!(post(admin, "/api/v1/regions/eu-west/drain").status, 200);
    let (addrs, ttls) = www_from(&s, "192.0.2.10");
    assert_eq!((addrs, ttls), (vec!["192.0.2.10".to_string()], vec![10]));
    // eu-west has no IPv6 address: us-east is the AAAA answer with or without the drain,
    // and keeps the full TTL.
    let (addrs, ttls) = ask(&s, "www.gslb.test.", RecordType::AAAA);
    assert_eq!(
        (addrs, ttls),
        (vec!["2001:db8:10::1".to_string()], vec![20])
    );
    // explain says which TTL applied, and why.
    let r = crate::http::get(admin, "/api/v1/explain?name=www.gslb.test&client=127.0.0.1");
    let d = &r.json()["dynamic"];
    assert_eq!(
        (d["ttl"].as_u64(), d["answer_ttl"].as_u64()),
        (Some(20), Some(10))
    );
    let why = d["ttl_reason"].as_str().unwrap();
    assert!(
        why.contains("fallback_ttl 10") && why.contains("eu-west"),
        "{why}"
    );
    assert_eq!(post(admin, "/api/v1/regions/eu-west/undrain").status, 200);
    assert_eq!(www_from(&s, "192.0.2.2").1, [20, 20]);
}

#[test]
fn fallback_ttl_comes_from_the_record_or_the_defaults_and_never_raises_a_ttl() {
    let config = CONFIG
        .replace(
            "[defaults]\nttl = 30\n",
            "[defaults]\nttl = 30\nfallback_ttl = 4\n",
        )
        .replace(
            "[records.\"db.gslb.test\"]\npolicy = \"failover\"\n",
            "[records.\"db.gslb.test\"]\npolicy = \"failover\"\nttl = 3\n",
        );
    let (s, _dep, admin) = start(&config);
    assert_eq!(post(admin, "/api/v1/regions/eu-west/drain").status, 200);
    assert_eq!(www_from(&s, "192.0.2.10").1, [4], "[defaults] fallback_ttl");
    // db: us-east first (every region, in file order): drain it for a fallback; its own
    // ttl (3) is already below the cap.
    assert_eq!(post(admin, "/api/v1/regions/us-east/drain").status, 200);
    let deadline = Instant::now() + Duration::from_secs(1);
    let (addrs, ttls) = loop {
        let got = ask(&s, "db.gslb.test.", RecordType::A);
        if got.0.first().is_some_and(|a| a != "192.0.2.10") || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_ne!(addrs.first().map(String::as_str), Some("192.0.2.10"));
    assert!(ttls.iter().all(|t| *t == 3), "{ttls:?}");

    // Per record, over the default.
    let per_record = CONFIG.replace("ttl = 20\n", "ttl = 20\nfallback_ttl = 7\n");
    let (s, _dep, admin) = start(&per_record);
    assert_eq!(post(admin, "/api/v1/regions/eu-west/drain").status, 200);
    assert_eq!(www_from(&s, "192.0.2.10").1, [7]);
}
