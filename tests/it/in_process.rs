//! The server as a library: two instances started side by side in this test process
//! ([`gslbd::Instance`]), each with its own config, health, drains, reloads and
//! counters, answering real DNS on their own loopback ports; a `listen` change reloads
//! with a warning naming it; stopping one leaves the other serving; a stopped server's
//! control plane fails with typed errors.

use std::net::SocketAddr;
use std::time::Duration;

use gslbd::Instance;
use gslbd::control::{Overrides, ReloadError};
use gslbd::health::DrainError;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::Deployment;
use crate::{CONFIG, zone_text};

const EU: [&str; 2] = ["192.0.2.20", "192.0.2.21"];
const US: [&str; 1] = ["192.0.2.10"];

fn loopback() -> Overrides {
    Overrides {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        admin: None,
    }
}

/// `www.gslb.test A` from the server at `udp` (blocking I/O off the runtime's threads).
async fn www(udp: SocketAddr) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let r = dns::udp(udp, &query("www.gslb.test.", RecordType::A));
        dns::answer_data(&r, RecordType::A)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_serve_side_by_side_in_one_process() {
    let eu_first = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let us_first = Deployment::new(
        &CONFIG.replacen(
            r#"regions = ["eu-west", "us-east"]"#,
            r#"regions = ["us-east", "eu-west"]"#,
            1,
        ),
        &[("gslb.test.zone", &zone_text())],
    );
    let a = Instance::launch(&eu_first.config(), loopback())
        .await
        .unwrap();
    let b = Instance::launch(&us_first.config(), loopback())
        .await
        .unwrap();
    let (a_udp, b_udp) = (a.udp_addrs()[0], b.udp_addrs()[0]);
    assert_ne!(a_udp, b_udp);
    assert_eq!(www(a_udp).await, EU);
    assert_eq!(www(b_udp).await, US);

    // A drain in one instance moves only its answers.
    assert_eq!(a.drain("eu-west", true).await, Ok(true));
    assert_eq!(www(a_udp).await, US);
    assert_eq!(www(b_udp).await, US);
    match a.drain("nowhere", true).await {
        Err(DrainError::UnknownRegion(e)) => assert!(e.known.contains(&"eu-west".into())),
        other => panic!("{other:?}"),
    }

    // Each counts its own queries: two to a, two to b so far.
    let counted = |i: &Instance| i.control().state().runtime().queries.total();
    assert_eq!((counted(&a), counted(&b)), (2, 2));

    // A third, without overrides (with them, a changed `listen` in the file would be no
    // change), reloads a config that moves `listen`: a warning names it, the rest applies.
    let third = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let c = Instance::launch(&third.config(), Overrides::default())
        .await
        .unwrap();
    std::fs::write(
        third.config(),
        CONFIG
            .replace(
                "listen = [\"127.0.0.1:0\"]",
                "listen = [\"127.0.0.1:53536\"]",
            )
            .replace(
                r#"regions = ["eu-west", "us-east"]"#,
                r#"regions = ["us-east", "eu-west"]"#,
            ),
    )
    .unwrap();
    let done = c.reload().await.unwrap();
    assert_eq!(done.warnings.len(), 1, "{:?}", done.warnings);
    assert!(
        done.warnings[0].contains("server.listen") && done.warnings[0].contains("127.0.0.1:53536"),
        "{:?}",
        done.warnings
    );
    assert_eq!(
        www(c.udp_addrs()[0]).await,
        US,
        "the rest of the reload applies"
    );
    c.stop().await.unwrap();

    // b reloads its file, now in the other order.
    std::fs::write(us_first.config(), CONFIG).unwrap();
    let done = b.reload().await.unwrap();
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert_eq!(www(b_udp).await, EU, "b reloaded its new order");
    assert_eq!(www(a_udp).await, US, "a still drained");

    // Stopping one leaves the other serving; a stopped instance's operations fail typed.
    let control = b.control().clone();
    b.stop().await.unwrap();
    assert!(matches!(
        control.reload().await,
        Err(ReloadError::Stopped(_))
    ));
    assert!(matches!(
        control.drain("eu-west", false).await,
        Err(DrainError::Stopped(_))
    ));
    let gone = tokio::task::spawn_blocking(move || {
        let bytes = query("www.gslb.test.", RecordType::A).to_vec().unwrap();
        dns::udp_raw_wait(b_udp, &bytes, Duration::from_millis(300))
    })
    .await
    .unwrap();
    assert!(gone.is_none(), "a stopped instance answers nothing");
    assert_eq!(www(a_udp).await, US);
    a.stop().await.unwrap();
}
