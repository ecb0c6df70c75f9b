//! `gslbd explain` against a running server: `GET /api/v1/explain` on its admin API, so
//! the explanation uses the server's live health and drains rather than assuming every
//! region up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::Explanation;

/// What `gslbd explain` asks about.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The name.
    pub name: String,
    /// The type (text, as `A` or `aaaa`).
    pub qtype: String,
    /// The query's source address.
    pub client: IpAddr,
    /// An ECS subnet to send.
    pub subnet: Option<IpNet>,
}

/// How long `explain` waits for the running server, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The running server's answer to `GET /api/v1/explain`.
#[derive(Debug)]
pub enum Remote {
    /// The server explained the query with its live health and drains.
    Explained(Box<Explanation>),
    /// The server refused the query (400): its message.
    Rejected(String),
    /// No usable answer (refused connection, timeout, other status, bad body): why.
    NotReached(String),
}

/// An admin address to connect to: a wildcard listen address (`0.0.0.0`, `::`) means the
/// server is reachable on loopback.
pub fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// `GET http://ADDR/api/v1/explain?...`, waiting [`TIMEOUT`] at most.
pub fn ask(addr: SocketAddr, q: &Question) -> Remote {
    let mut params = form_urlencoded::Serializer::new(String::new());
    params
        .append_pair("name", &q.name)
        .append_pair("type", &q.qtype)
        .append_pair("client", &q.client.to_string());
    if let Some(net) = q.subnet {
        params.append_pair("subnet", &net.to_string());
    }
    let url = format!("http://{addr}/api/v1/explain?{}", params.finish());
    // reqwest is built without a default TLS provider, and wants one even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Remote::NotReached(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async {
        let client = match reqwest::Client::builder()
            .user_agent(concat!("gslbd/", env!("CARGO_PKG_VERSION"), " (explain)"))
            // The admin API is on loopback or a management network: never via a proxy.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .build()
        {
            Ok(c) => c,
            Err(e) => return Remote::NotReached(why_not_reached(&e)),
        };
        let reply = match client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => return Remote::NotReached(why_not_reached(&e)),
        };
        let status = reply.status();
        let body = match reply.bytes().await {
            Ok(b) => b,
            Err(e) => return Remote::NotReached(why_not_reached(&e)),
        };
        #[derive(serde::Deserialize)]
        struct ErrorReply {
            error: String,
        }
        match status {
            reqwest::StatusCode::OK => match serde_json::from_slice(&body) {
                Ok(e) => Remote::Explained(e),
                Err(e) => Remote::NotReached(format!("undecodable explanation: {e}")),
            },
            reqwest::StatusCode::BAD_REQUEST => match serde_json::from_slice::<ErrorReply>(&body) {
                Ok(r) => Remote::Rejected(r.error),
                Err(_) => Remote::NotReached(format!("HTTP {status} without an error message")),
            },
            _ => Remote::NotReached(format!("HTTP {status}")),
        }
    })
}

/// A short reason for a failed request: "connection refused", "no reply within 2 s", or
/// the innermost error's message.
fn why_not_reached(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no reply within {}", humantime::format_duration(TIMEOUT));
    }
    // reqwest hides the io::Error kind: walk the source chain for it.
    let mut innermost: &dyn std::error::Error = e;
    while let Some(s) = innermost.source() {
        innermost = s;
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused".into();
            }
        }
        source = s.source();
    }
    innermost.to_string()
}
