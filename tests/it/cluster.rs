//! Health decided by quorum: three instances in this process, each probing from its own
//! loopback address (`server.probe_source`), share their probe views (`[cluster]`). A
//! fake region fails only the probes from the addresses the test chooses: one instance
//! alone seeing it down moves nothing; two take all three instances to the fallback; all
//! come back on recovery; with its two peers stopped, the last one decides alone.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gslbd::Instance;
use gslbd::control::Overrides;
use gslbd::instance::Listeners;
use gslbd::snapshot::Snapshot;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::dns::{self, query};
use crate::harness::Deployment;
use crate::zone_text;

const EU: &str = "192.0.2.20";
const US: &str = "192.0.2.10";

/// A health endpoint on 127.0.0.1 that answers 503 to requests from the sources in
/// `failing`, 200 `ok` to the others.
async fn region(failing: Arc<Mutex<HashSet<IpAddr>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, peer)) = listener.accept().await else {
                continue;
            };
            let failing = failing.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let bad = failing.lock().unwrap().contains(&peer.ip());
                let reply: &[u8] = if bad {
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                };
                let _ = conn.write_all(reply).await;
            });
        }
    });
    addr
}

struct Node {
    server: Option<Instance>,
    udp: SocketAddr,
    admin: SocketAddr,
    _dep: Deployment,
}

impl Node {
    async fn www(&self) -> String {
        let udp = self.udp;
        tokio::task::spawn_blocking(move || {
            let r = dns::udp(udp, &query("www.gslb.test.", RecordType::A));
            dns::answer_data(&r, RecordType::A).join(",")
        })
        .await
        .unwrap()
    }

    async fn regions(&self) -> serde_json::Value {
        let admin = self.admin;
        tokio::task::spawn_blocking(move || crate::http::get(admin, "/api/v1/regions").json())
            .await
            .unwrap()
    }
}

/// Waits up to `within` for every node of `nodes` to answer `want`.
async fn all_answer(nodes: &[&Node], want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut got = Vec::new();
        for n in nodes {
            got.push(n.www().await);
        }
        if got.iter().all(|g| g == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every instance answers {want} within {within:?}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_move_a_region_only_when_a_quorum_sees_it_down() {
    let failing = Arc::new(Mutex::new(HashSet::new()));
    let health = region(failing.clone()).await;
    // Admin listeners first: each config names the others' addresses.
    let mut admins = Vec::new();
    for _ in 0..3 {
        admins.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<SocketAddr> = admins.iter().map(|l| l.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, admin) in admins.into_iter().enumerate() {
        let peers: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("\"http://{}\"", addrs[j]))
            .collect();
        let config = format!(
            r#"[server]
listen = ["127.0.0.1:0"]
probe_source = "127.0.0.{source}"

[regions.eu-west]
addresses = ["{EU}"]
probe = {{ url = "http://{health}/healthz", interval = "100ms", timeout = "80ms", rise = 1, fall = 2 }}

[regions.us-east]
addresses = ["{US}"]

[records."www.gslb.test"]
policy = "failover"
regions = ["eu-west", "us-east"]

[cluster]
peers = [{peers}]
interval = "200ms"
"#,
            source = i + 1,
            peers = peers.join(", "),
        );
        let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
        let snap = Snapshot::load(&dep.config()).unwrap_or_else(|e| panic!("{e}"));
        let dns = gslbd::server::bind(&["127.0.0.1:0".parse().unwrap()], 1)
            .await
            .unwrap();
        let udp = dns.udp_addrs()[0];
        let listeners = Listeners {
            dns,
            admin: Some(admin),
        };
        let server = Instance::start(dep.config(), Overrides::default(), snap, listeners)
            .await
            .unwrap();
        nodes.push(Node {
            server: Some(server),
            udp,
            admin: addrs[i],
            _dep: dep,
        });
    }
    let all: Vec<&Node> = nodes.iter().collect();
    all_answer(&all, EU, Duration::from_secs(2)).await;
    // Every instance hears from both peers.
    let deadline = Instant::now() + Duration::from_secs(2);
    for n in &nodes {
        loop {
            let r = n.regions().await;
            let fresh = r["cluster"]["peers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["fresh"] == true)
                .count();
            if fresh == 2 {
                assert_eq!(r["cluster"]["quorum"], 2);
                assert_eq!(r["cluster"]["deciding_alone"], false);
                break;
            }
            assert!(Instant::now() < deadline, "peers not heard from: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Only the third instance's probes fail: it sees the region down, and is outvoted.
    failing.lock().unwrap().insert("127.0.0.3".parse().unwrap());
    // Long enough for its probes to fall (2 × 100 ms) and its peers to pull its view.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = nodes[2].regions().await;
    let target = &r["regions"][0]["targets"][0];
    assert_eq!(target["up"], false, "its own probes see it down: {r}");
    assert_eq!(target["decided_up"], true, "outvoted: {r}");
    let votes: Vec<&str> = target["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vote"].as_str().unwrap())
        .collect();
    assert_eq!(votes, ["up", "up"]);
    assert_eq!(r["regions"][0]["state"], "up");
    all_answer(&all, EU, Duration::from_millis(100)).await;

    // A second instance agrees: all three move, within fall × interval + timeout +
    // cluster interval, and slack.
    failing.lock().unwrap().insert("127.0.0.2".parse().unwrap());
    all_answer(&all, US, Duration::from_millis(200 + 80 + 200 + 1500)).await;
    let r = nodes[0].regions().await;
    assert_eq!(
        r["regions"][0]["targets"][0]["up"], true,
        "its own probes: up"
    );
    assert_eq!(r["regions"][0]["targets"][0]["decided_up"], false, "{r}");

    // Recovery, likewise.
    failing.lock().unwrap().clear();
    all_answer(&all, EU, Duration::from_millis(100 + 80 + 200 + 1500)).await;

    // Two peers stopped: once their views are stale (3 intervals), the first instance
    // decides from its own probes.
    for n in &mut nodes[1..] {
        n.server.take().unwrap().stop().await.unwrap();
    }
    failing.lock().unwrap().insert("127.0.0.1".parse().unwrap());
    let first = &nodes[0];
    all_answer(
        &[first],
        US,
        Duration::from_millis(3 * 200 + 200 + 80 + 1500),
    )
    .await;
    // The flag and the answer change in one step of the health owner; the report is
    // read a moment later, so allow it that moment under a loaded test run.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = first.regions().await;
        if r["cluster"]["deciding_alone"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "not deciding alone: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = tokio::task::spawn_blocking({
        let admin = first.admin;
        move || crate::http::get(admin, "/metrics").body
    })
    .await
    .unwrap();
    assert!(
        metrics.contains("gslbd_cluster_deciding_alone 1"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("gslbd_peer_up{{peer=\"http://{}\"}} 0", addrs[1])));
    nodes[0].server.take().unwrap().stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_view_lists_every_target_with_a_stable_key() {
    let failing = Arc::new(Mutex::new(HashSet::new()));
    let health = region(failing.clone()).await;
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
admin_token = "t"

[regions.eu-west]
addresses = ["{EU}"]
probe = {{ url = "http://{health}/healthz", interval = "100ms", timeout = "80ms", rise = 1, fall = 1 }}

[records."www.gslb.test"]
policy = "failover"
"#
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    let a = Instance::launch(&dep.config(), Overrides::default())
        .await
        .unwrap();
    let b = Instance::launch(&dep.config(), Overrides::default())
        .await
        .unwrap();
    let view = |admin: SocketAddr| {
        tokio::task::spawn_blocking(move || {
            // Read-only: no token needed.
            let r = crate::http::get(admin, "/api/v1/health/view");
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()
        })
    };
    let (va, vb) = (
        view(a.admin_addr().unwrap()).await.unwrap(),
        view(b.admin_addr().unwrap()).await.unwrap(),
    );
    let targets = va["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    let key = targets[0]["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("GET http://{health}/healthz #")),
        "{key}"
    );
    assert_eq!(
        key, vb["targets"][0]["key"],
        "the same key on every instance"
    );
    assert_eq!(targets[0]["up"], true);
    assert_eq!(targets[0]["known"], true, "the first probe round ran");
    assert!(va["made_ms"].as_u64().unwrap() > 1_700_000_000_000);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
