//! Watch failover happen: `cargo run --example outage_demo`.
//!
//! Starts three fake regions on loopback (`gslbd::sim`), gslbd in-process on an ephemeral
//! port with a failover name over them, and queries it every 100 ms. Midway it takes the
//! first region down (HTTP 503), later brings it back, and prints each answer change with
//! a timestamp, along with gslbd's own health log lines. Probes: every 500 ms, timeout
//! 300 ms, fall 2, rise 2 — so failover should take at most 2 × 0.5 + 0.3 = 1.3 s, and
//! recovery at most 2 × 0.5 = 1 s, plus up to one interval of phase.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gslbd::sim::{FakeRegion, Mode};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

const ZONE: &str = "$ORIGIN gslb.example.com.\n$TTL 300\n\
    @ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter("gslbd::health=info")
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let regions = [
        ("us-east", "192.0.2.10", FakeRegion::start()?),
        ("eu-west", "192.0.2.20", FakeRegion::start()?),
        ("ap-south", "192.0.2.30", FakeRegion::start()?),
    ];

    // A throw-away deployment: zone + gslb.toml probing the fakes.
    let dir = std::env::temp_dir().join(format!("gslbd-outage-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("zones"))?;
    std::fs::write(dir.join("zones/gslb.example.com.zone"), ZONE)?;
    let mut config = String::from("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    for (name, vip, fake) in &regions {
        config += &format!(
            "[regions.{name}]\naddresses = [\"{vip}\"]\nprobe = {{ url = \"{}\", expect_body = \"ok\", \
             interval = \"500ms\", timeout = \"300ms\", rise = 2, fall = 2 }}\n",
            fake.url()
        );
    }
    config += "[records.\"www.gslb.example.com\"]\npolicy = \"failover\"\nttl = 5\n\
               regions = [\"us-east\", \"eu-west\", \"ap-south\"]\n";
    std::fs::write(dir.join("gslb.toml"), config)?;

    // gslbd in-process: load, bind, first probe round, serve.
    let overrides = gslbd::control::Overrides {
        listen: vec!["127.0.0.1:0".parse()?],
        admin: None,
    };
    let gslbd = gslbd::Instance::launch(&dir.join("gslb.toml"), overrides).await?;
    let server: SocketAddr = gslbd.udp_addrs()[0];
    println!(
        "gslbd on {server}; www.gslb.example.com = failover over us-east, eu-west, ap-south\n"
    );

    let start = Instant::now();
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut last = String::new();
    let mut step = 0;
    while start.elapsed() < Duration::from_secs(9) {
        let t = start.elapsed().as_secs_f64();
        if step == 0 && t >= 2.0 {
            println!("{t:6.2}s  >>> us-east starts failing its health check (HTTP 503)");
            regions[0].2.set(Mode::Status(503));
            step = 1;
        } else if step == 1 && t >= 5.5 {
            println!("{t:6.2}s  >>> us-east recovers");
            regions[0].2.set(Mode::Up);
            step = 2;
        }
        let answer = ask(&client, server).await?;
        if answer != last {
            let region = regions.iter().find(|r| r.1 == answer).map_or("?", |r| r.0);
            println!("{t:6.2}s  www.gslb.example.com A -> {answer} ({region})");
            last = answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gslbd.stop().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// One A query over UDP; the first address of the answer.
async fn ask(
    client: &tokio::net::UdpSocket,
    server: SocketAddr,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("www.gslb.example.com.")?,
        RecordType::A,
    ));
    client.send_to(&m.to_vec()?, server).await?;
    let mut buf = [0u8; 1232];
    let n = tokio::time::timeout(Duration::from_secs(1), client.recv(&mut buf)).await??;
    let reply = Message::from_vec(&buf[..n])?;
    Ok(reply
        .answers
        .first()
        .map(|r| r.data.to_string())
        .unwrap_or_default())
}
