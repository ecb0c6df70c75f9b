//! Compact denial (RFC 9824) details: a name that does not exist is NOERROR with an NXNAME
//! proof to a DO=1 query, NXDOMAIN with the same proof when the query sets the Compact
//! Answers OK flag (CO, echoed), plain NXDOMAIN without DO; an explicit NXNAME query is
//! FORMERR.

use gslbd::control::Overrides;
use gslbd::{Instance, dnssec};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::dns::{self, query};
use crate::harness::Deployment;
use crate::{CONFIG, zone_text};

fn ask(udp: std::net::SocketAddr, rtype: RecordType, dnssec_ok: bool, co: bool) -> Message {
    let mut m = query("nowhere.gslb.test.", rtype);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(dnssec_ok);
    if co {
        e.flags_mut().z = 0x4000;
    }
    m.set_edns(e);
    dns::udp(udp, &m)
}

/// The NSEC bitmap in the authority section, when there is one.
fn nsec_types(r: &Message) -> Option<Vec<RecordType>> {
    r.authorities.iter().find_map(|rr| match &rr.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n.type_bit_maps().collect()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_answers_by_do_and_co() {
    let config = format!("{CONFIG}\n[dnssec]\nkeys = \"keys\"\n");
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    dnssec::tool::keygen(&dep.config(), None, false).unwrap();
    let server = Instance::launch(
        &dep.config(),
        Overrides {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            admin: None,
        },
    )
    .await
    .unwrap();
    let udp = server.udp_addrs()[0];
    let (plain, compact, co, formerr) = tokio::task::spawn_blocking(move || {
        (
            ask(udp, RecordType::A, false, false),
            ask(udp, RecordType::A, true, false),
            ask(udp, RecordType::A, true, true),
            ask(udp, RecordType::Unknown(128), true, false),
        )
    })
    .await
    .unwrap();
    let nxname = vec![
        RecordType::NSEC,
        RecordType::RRSIG,
        RecordType::Unknown(128),
    ];
    // DO=0: NXDOMAIN, no proof.
    assert_eq!(plain.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nsec_types(&plain), None);
    // DO=1: NOERROR and the NXNAME proof.
    assert_eq!(compact.metadata.response_code, ResponseCode::NoError);
    let mut got = nsec_types(&compact).expect("an NSEC");
    got.sort_by_key(|t| u16::from(*t));
    let mut want = nxname.clone();
    want.sort_by_key(|t| u16::from(*t));
    assert_eq!(got, want);
    assert_eq!(compact.edns.as_ref().unwrap().flags().z & 0x4000, 0);
    // DO=1 and CO: NXDOMAIN, the same proof, CO echoed.
    assert_eq!(co.metadata.response_code, ResponseCode::NXDomain);
    assert!(nsec_types(&co).is_some());
    assert_eq!(co.edns.as_ref().unwrap().flags().z & 0x4000, 0x4000);
    // Asking for NXNAME itself.
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
    let _ = server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_signing_cap_a_new_denial_is_servfail_and_precomputed_answers_still_flow() {
    use std::sync::Arc;

    use gslbd::dnssec::fresh::Fresh;
    use gslbd::instance::Listeners;
    use gslbd::snapshot::{Signing, Snapshot};

    let config = format!("{CONFIG}\n[dnssec]\nkeys = \"keys\"\n");
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    dnssec::tool::keygen(&dep.config(), None, false).unwrap();
    let overrides = Overrides {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        admin: None,
    };
    let mut snap = overrides.applied(Snapshot::load(&dep.config()).unwrap());
    // A cap of 0 signatures a second: nothing may be signed on first use.
    let epoch = snap.signing.as_ref().unwrap().epoch;
    snap.signing = Some(Arc::new(Signing {
        epoch,
        fresh: Fresh::new(16, 0),
    }));
    let listeners = Listeners::bind(&snap.model).await.unwrap();
    let server = Instance::start(dep.config(), overrides, snap, listeners)
        .await
        .unwrap();
    let udp = server.udp_addrs()[0];
    let (denied, www) = tokio::task::spawn_blocking(move || {
        let mut m = query("www.gslb.test.", RecordType::A);
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_dnssec_ok(true);
        m.set_edns(e);
        (ask(udp, RecordType::A, true, false), dns::udp(udp, &m))
    })
    .await
    .unwrap();
    assert_eq!(denied.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    assert!(
        www.answers
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG),
        "precomputed signatures need no signing"
    );
    let capped = &server
        .control()
        .state()
        .snapshot()
        .signing
        .clone()
        .unwrap()
        .fresh
        .capped;
    assert_eq!(capped.load(std::sync::atomic::Ordering::Relaxed), 1);
    let _ = server.stop().await;
}
