//! The admin HTTP API: health check, Prometheus metrics, region report, drain and
//! undrain, explain and reload, over plain HTTP/1.1 (hyper, no framework).
//!
//! Every operation is a [`Control`] method; this module only routes, authorizes,
//! parses parameters and turns results into JSON. GETs are open; POSTs (the mutating
//! calls) need `Authorization: Bearer <admin_token>` when a token is configured, and
//! otherwise come from loopback only (see [`authorize`]).
//!
//! Robustness: one request per connection (no keep-alive, so no idle sockets to
//! manage), at most [`MAX_CONNECTIONS`] at once, headers within [`REQUEST_TIMEOUT`], each
//! request answered within [`REQUEST_TIMEOUT`] and each connection closed after
//! [`CONNECTION_LIMIT`], request bodies over [`MAX_BODY`] refused. Mutating operations
//! run in their own task, so a client that hangs up or times out never leaves a reload
//! or drain half-done.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::control::{Control, RegionReport};

/// Largest request body accepted (no endpoint takes one; this only bounds what is read).
pub const MAX_BODY: usize = 64 * 1024;
/// Time allowed for a request's headers to arrive, and for its answer to be computed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Hard limit on a connection's life, so a client that reads slowly cannot hold it.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(30);
/// Connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type Reply = Response<Full<Bytes>>;

/// Binds the admin address and logs `listening for admin HTTP on ADDR`.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen for admin HTTP on {addr}: {e}"),
        )
    })?;
    info!("listening for admin HTTP on {}", l.local_addr()?);
    Ok(l)
}

/// Serves the admin API on `listener` until `shutdown` completes, then lets requests in
/// flight finish (for a few seconds at most).
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let api = Arc::new(Api { control, token });
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Typically EMFILE: pause rather than spin on the error.
                    warn!("admin HTTP: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let api = api.clone();
        let service = service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(REQUEST_TIMEOUT)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(CONNECTION_LIMIT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("admin HTTP: connection from {peer}: {e}"),
                Err(_) => {
                    debug!("admin HTTP: connection from {peer} cut after {CONNECTION_LIMIT:?}")
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("admin HTTP: requests still in flight at shutdown were dropped");
    }
    Ok(())
}

/// Decides whether a mutating call may proceed: `token` is `server.admin_token`,
/// `header` the request's `Authorization` value, `peer` the client's address.
///
/// With a token, only `Bearer <token>` passes (401 otherwise), from anywhere; without
/// one, only loopback clients pass (403 otherwise), since anyone who can reach the port
/// could otherwise drain every region.
pub fn authorize(
    token: Option<&str>,
    header: Option<&str>,
    peer: IpAddr,
) -> Result<(), (StatusCode, String)> {
    match token {
        Some(token) => match header.and_then(bearer) {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token".into())),
            None => Err((
                StatusCode::UNAUTHORIZED,
                "this call needs \"Authorization: Bearer <admin_token>\"".into(),
            )),
        },
        None if peer.to_canonical().is_loopback() => Ok(()),
        None => Err((
            StatusCode::FORBIDDEN,
            format!(
                "mutating calls are accepted from loopback only while server.admin_token \
                 is unset ({peer} is not loopback); set admin_token to allow them with \
                 \"Authorization: Bearer <admin_token>\""
            ),
        )),
    }
}

/// The credentials of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let token = rest.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without an early exit, so response time does not tell an attacker how many
/// leading bytes of a guess are right. The time depends only on the guess's length.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut diff = u8::from(given.len() != expected.len());
    for (i, b) in given.iter().enumerate() {
        diff |= b ^ expected[i % expected.len()];
    }
    std::hint::black_box(diff) == 0
}

/// What a path names, with the one method it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    Metrics,
    Regions,
    Drain { region: String, drained: bool },
    Explain,
    Reload,
}

impl Endpoint {
    /// The endpoint at `path`, if any.
    fn parse(path: &str) -> Option<Endpoint> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        Some(match segments.as_slice() {
            ["healthz"] => Endpoint::Healthz,
            ["metrics"] => Endpoint::Metrics,
            ["api", "v1", "regions"] => Endpoint::Regions,
            [
                "api",
                "v1",
                "regions",
                region,
                action @ ("drain" | "undrain"),
            ] => {
                Endpoint::Drain {
                    // Region names are ASCII letters, digits, '-' and '_': no decoding.
                    region: (*region).to_string(),
                    drained: *action == "drain",
                }
            }
            ["api", "v1", "explain"] => Endpoint::Explain,
            ["api", "v1", "reload"] => Endpoint::Reload,
            _ => return None,
        })
    }

    fn method(&self) -> Method {
        match self {
            Endpoint::Drain { .. } | Endpoint::Reload => Method::POST,
            _ => Method::GET,
        }
    }
}

/// The parameters of `GET /api/v1/explain`, checked.
#[derive(Debug, PartialEq)]
struct ExplainQuery {
    name: String,
    qtype: String,
    client: IpAddr,
    subnet: Option<IpNet>,
}

impl ExplainQuery {
    /// Parses the query string; `client` defaults to `peer`, `type` to A.
    fn parse(query: Option<&str>, peer: IpAddr) -> Result<ExplainQuery, String> {
        let (mut name, mut qtype, mut client, mut subnet) = (None, None, None, None);
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match &*k {
                "name" => &mut name,
                "type" => &mut qtype,
                "client" => &mut client,
                "subnet" => &mut subnet,
                // Strict, so that a misspelt parameter is not silently ignored.
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (known: name, type, client, subnet)"
                    ));
                }
            };
            *slot = Some(v.into_owned()).filter(|v| !v.is_empty());
        }
        let name = name.ok_or("missing parameter \"name\" (the name to explain)")?;
        let qtype = qtype.unwrap_or_else(|| "A".into());
        if qtype.to_ascii_uppercase().parse::<RecordType>().is_err() {
            return Err(format!("parameter \"type\": unknown type {qtype:?}"));
        }
        let client = match client {
            None => peer,
            Some(c) => c
                .parse()
                .map_err(|_| format!("parameter \"client\": {c:?} is not an IP address"))?,
        };
        let subnet = match subnet {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| {
                format!("parameter \"subnet\": {s:?} is not a CIDR such as 81.2.69.0/24")
            })?),
        };
        Ok(ExplainQuery {
            name,
            qtype,
            client,
            subnet,
        })
    }
}

// Answer bodies as structs rather than `json!` maps, so that fields keep this order.

#[derive(Serialize)]
struct RegionsReply {
    regions: Vec<RegionReport>,
}

#[derive(Serialize)]
struct DrainReply {
    region: String,
    drained: bool,
    changed: bool,
}

#[derive(Serialize)]
struct ReloadReply {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct ErrorReply {
    error: String,
}

struct Api {
    control: Arc<Control>,
    token: Option<String>,
}

impl Api {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        let mut reply = match tokio::time::timeout(REQUEST_TIMEOUT, self.route(req, peer)).await {
            Ok(reply) => reply,
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no answer within {REQUEST_TIMEOUT:?} (a reload or drain already \
                     started still completes: see the log or GET /api/v1/regions)"
                ),
            ),
        };
        // State changes from one second to the next: never cache.
        reply
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        reply
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        let peer_ip = peer.ip().to_canonical();
        let path = req.uri().path().to_string();
        let Some(endpoint) = Endpoint::parse(&path) else {
            debug!("admin HTTP: {peer} {} {path}: 404", req.method());
            return error(StatusCode::NOT_FOUND, format!("no endpoint at {path}"));
        };
        let allowed = endpoint.method();
        let method = req.method().clone();
        if method != allowed && !(allowed == Method::GET && method == Method::HEAD) {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} accepts {allowed}, not {method}"),
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_str(allowed.as_str()).expect("a method is a valid header"),
            );
            return r;
        }
        if allowed == Method::GET {
            debug!("admin HTTP: {peer} {method} {path}");
            return self.get(endpoint, req.uri().query(), peer_ip).await;
        }

        let what = format!("{method} {path}");
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err((status, msg)) = authorize(self.token.as_deref(), auth, peer_ip) {
            warn!("{peer} {what}: refused ({status}): {msg}");
            let mut r = error(status, msg);
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return r;
        }
        // Authorized before reading, so strangers cannot make us buffer anything.
        if let Err(r) = read_body(req).await {
            return r;
        }
        let who = if self.token.is_some() {
            format!("{peer} (token)")
        } else {
            format!("{peer} (loopback)")
        };
        let control = self.control.clone();
        match endpoint {
            Endpoint::Drain { region, drained } => {
                let r = region.clone();
                let result = run(async move { control.drain(&r, drained).await }).await;
                match result {
                    Ok(Ok(changed)) => {
                        info!("{who} {what}: ok, drained={drained}, changed={changed}");
                        let body = DrainReply {
                            region,
                            drained,
                            changed,
                        };
                        json_reply(StatusCode::OK, &body)
                    }
                    Ok(Err(e)) => {
                        info!("{who} {what}: {e}");
                        let status = if e.starts_with("no region") {
                            StatusCode::NOT_FOUND
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        error(status, e)
                    }
                    Err(r) => r,
                }
            }
            Endpoint::Reload => match run(async move { control.reload().await }).await {
                Ok(Ok(summary)) => {
                    info!("{who} {what}: ok, {summary}");
                    json_reply(
                        StatusCode::OK,
                        &ReloadReply {
                            ok: true,
                            summary: Some(summary),
                            error: None,
                        },
                    )
                }
                Ok(Err(errors)) => {
                    // The errors themselves are logged by Control::reload.
                    info!("{who} {what}: failed, {} error(s)", errors.0.len());
                    let body = ReloadReply {
                        ok: false,
                        summary: None,
                        error: Some(errors.to_string()),
                    };
                    json_reply(StatusCode::BAD_REQUEST, &body)
                }
                Err(r) => r,
            },
            _ => unreachable!("every other endpoint is a GET"),
        }
    }

    async fn get(&self, endpoint: Endpoint, query: Option<&str>, peer: IpAddr) -> Reply {
        match endpoint {
            Endpoint::Healthz => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
            Endpoint::Metrics => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.control.metrics().await,
            ),
            Endpoint::Regions => {
                let regions = self.control.regions().await;
                json_reply(StatusCode::OK, &RegionsReply { regions })
            }
            Endpoint::Explain => {
                let q = match ExplainQuery::parse(query, peer) {
                    Ok(q) => q,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                match self.control.explain(&q.name, &q.qtype, q.client, q.subnet) {
                    Ok(e) => json_reply(StatusCode::OK, &e),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                }
            }
            Endpoint::Drain { .. } | Endpoint::Reload => {
                unreachable!("mutating endpoints are POSTs")
            }
        }
    }
}

/// Reads and discards the body, refusing one over [`MAX_BODY`].
async fn read_body(req: Request<Incoming>) -> Result<(), Reply> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(_) => Ok(()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read request body: {e}"),
        )),
    }
}

/// Runs a mutating operation in its own task: it completes even if the client goes away.
async fn run<T: Send + 'static>(op: impl Future<Output = T> + Send + 'static) -> Result<T, Reply> {
    tokio::spawn(op).await.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("operation failed: {e}"),
        )
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_reply(status: StatusCode, value: &impl Serialize) -> Reply {
    match serde_json::to_string(value) {
        Ok(mut body) => {
            body.push('\n');
            text(status, "application/json", body)
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot encode the answer: {e}\n"),
        ),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    let error = message.into();
    json_reply(status, &ErrorReply { error })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_a_token_only_loopback_may_mutate() {
        for peer in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(authorize(None, None, ip(peer)), Ok(()), "{peer}");
        }
        for peer in [
            "192.0.2.1",
            "10.0.0.1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "::",
        ] {
            let (status, msg) = authorize(None, None, ip(peer)).unwrap_err();
            assert_eq!(status, StatusCode::FORBIDDEN, "{peer}");
            assert!(msg.contains("admin_token"), "{msg}");
        }
        // A header is no way around the loopback rule when no token is configured.
        let err = authorize(None, Some("Bearer x"), ip("192.0.2.1")).unwrap_err();
        assert_eq!(err.0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn with_a_token_the_bearer_header_decides() {
        let t = Some("s3cret");
        for peer in [LO, ip("192.0.2.1"), ip("2001:db8::1")] {
            assert_eq!(authorize(t, Some("Bearer s3cret"), peer), Ok(()));
            assert_eq!(authorize(t, Some("bearer  s3cret "), peer), Ok(()));
        }
        // Loopback is no way around the token either.
        for header in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic s3cret"),
            Some("s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cretX"),
            Some("Bearer S3CRET"),
        ] {
            let (status, _) = authorize(t, header, LO).unwrap_err();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(
            !constant_time_eq(b"abcabc", b"abc"),
            "wraps but differs in length"
        );
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(!constant_time_eq(b"", b""), "an empty token never matches");
    }

    #[test]
    fn paths_map_to_endpoints() {
        let drain = |r: &str, d| Endpoint::Drain {
            region: r.into(),
            drained: d,
        };
        let cases = [
            ("/healthz", Some(Endpoint::Healthz)),
            ("/metrics", Some(Endpoint::Metrics)),
            ("/api/v1/regions", Some(Endpoint::Regions)),
            (
                "/api/v1/regions/eu-west/drain",
                Some(drain("eu-west", true)),
            ),
            (
                "/api/v1/regions/eu-west/undrain",
                Some(drain("eu-west", false)),
            ),
            ("/api/v1/explain", Some(Endpoint::Explain)),
            ("/api/v1/reload", Some(Endpoint::Reload)),
            ("/", None),
            ("/api/v1/regions/", None),
            ("/api/v1/regions/eu-west", None),
            ("/api/v1/regions/eu-west/restart", None),
            ("/api/v2/reload", None),
            ("/healthz/", None),
        ];
        for (path, want) in cases {
            assert_eq!(Endpoint::parse(path), want, "{path}");
        }
        assert_eq!(drain("x", true).method(), Method::POST);
        assert_eq!(Endpoint::Reload.method(), Method::POST);
        assert_eq!(Endpoint::Explain.method(), Method::GET);
    }

    #[test]
    fn explain_parameters() {
        let q = ExplainQuery::parse(Some("name=www.example.com"), LO).unwrap();
        assert_eq!(
            q,
            ExplainQuery {
                name: "www.example.com".into(),
                qtype: "A".into(),
                client: LO,
                subnet: None
            }
        );
        let q = ExplainQuery::parse(
            Some("name=www.example.com&type=aaaa&client=192.0.2.9&subnet=81.2.69.0%2F24"),
            LO,
        )
        .unwrap();
        assert_eq!(q.qtype, "aaaa");
        assert_eq!(q.client, ip("192.0.2.9"));
        assert_eq!(q.subnet, Some("81.2.69.0/24".parse().unwrap()));

        for (query, names) in [
            (None, "\"name\""),
            (Some("name="), "\"name\""),
            (Some("type=A"), "\"name\""),
            (Some("name=x&type=NOPE"), "\"type\""),
            (Some("name=x&client=nope"), "\"client\""),
            (Some("name=x&subnet=1.2.3.4/99"), "\"subnet\""),
            (Some("name=x&sbnet=1.2.3.0/24"), "\"sbnet\""),
        ] {
            let e = ExplainQuery::parse(query, LO).unwrap_err();
            assert!(e.contains(names), "{query:?}: {e}");
        }
    }
}
