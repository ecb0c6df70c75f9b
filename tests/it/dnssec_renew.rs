//! DNSSEC signatures are renewed halfway through their validity by the running server,
//! without a restart or a reload: a server started with signatures made 8 days ago (of
//! 14) serves fresh ones within seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gslbd::control::Overrides;
use gslbd::instance::Listeners;
use gslbd::snapshot::Snapshot;
use gslbd::{Instance, dnssec};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::Edns;
use hickory_proto::rr::{RData, RecordType};

use crate::dns::{self, query};
use crate::harness::Deployment;
use crate::{CONFIG, zone_text};

/// The inception of the RRSIG over `www.gslb.test A`, asked with DO=1.
async fn inception(udp: std::net::SocketAddr) -> u32 {
    tokio::task::spawn_blocking(move || {
        let mut m = query("www.gslb.test.", RecordType::A);
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_dnssec_ok(true);
        m.set_edns(e);
        let r = dns::udp(udp, &m);
        r.answers
            .iter()
            .find_map(|rr| match &rr.data {
                RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.input().sig_inception.get()),
                _ => None,
            })
            .expect("an RRSIG in the answer")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_halfway_through_their_validity_are_renewed_while_serving() {
    let config = format!("{CONFIG}\n[dnssec]\nkeys = \"keys\"\nvalidity = \"14d\"\n");
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    let made = dnssec::tool::keygen(&dep.config(), None, false).unwrap();
    assert_eq!(made.written.len(), 1);
    let now = SystemTime::now();
    let eight_days_ago = now - Duration::from_secs(8 * 24 * 3600);
    let overrides = Overrides {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        admin: None,
    };
    let snap = overrides.applied(Snapshot::load_at(&dep.config(), eight_days_ago).unwrap());
    let listeners = Listeners::bind(&snap.model).await.unwrap();
    let server = Instance::start(dep.config(), overrides, snap, listeners)
        .await
        .unwrap();
    let udp = server.udp_addrs()[0];
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    // Within seconds the renewer replaces the old signatures (inception 8 days and an
    // hour back) with new ones (an hour back).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = inception(udp).await;
    while seen < secs(now) - 2 * 3600 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = inception(udp).await;
    }
    let age = secs(now).saturating_sub(seen);
    assert!(
        (3600 - 60..=3600 + 60).contains(&age),
        "inception {age} s before start: not renewed"
    );
    let _ = server.stop().await;
}
