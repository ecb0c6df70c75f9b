//! The admin HTTP API: the status page, health check, Prometheus metrics, region report,
//! drain and undrain, explain and reload, over plain HTTP/1.1 (hyper, no framework).
//!
//! Every operation is a [`Control`] method; this module only routes, authorizes,
//! parses parameters and turns results into JSON. GETs are open; POSTs (the mutating
//! calls) need `Authorization: Bearer <admin_token>` when a token is configured, and
//! otherwise come from loopback only (see [`authorize`]).
//!
//! Robustness: one request per connection (no keep-alive, so no idle sockets to
//! manage), at most [`MAX_CONNECTIONS`] at once and [`MAX_PER_CLIENT`] from one address,
//! with room made for a fresh client when all are taken (see `slots.rs`), headers within
//! [`HEADER_TIMEOUT`], each request answered within [`REQUEST_TIMEOUT`] and each
//! connection closed after [`CONNECTION_LIMIT`], request bodies over [`MAX_BODY`]
//! refused. So sockets that never send a whole request cannot keep `/healthz` or a
//! drain out. Mutating operations run in their own task, so a client that hangs up or
//! times out (or is closed to make room) never leaves a reload or drain half-done.

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
use tracing::{debug, info, warn};

use crate::control::{ClusterReport, Control, RegionReport, ReloadError};
use crate::health::DrainError;

mod auth;
mod page;
mod route;
mod slots;

pub use auth::authorize;
use route::{Endpoint, ExplainQuery};

/// Largest request body accepted (no endpoint takes one; this only bounds what is read).
pub const MAX_BODY: usize = 64 * 1024;
/// Time allowed for a request's headers to arrive, from the connection's accept: a
/// script or scraper sends them at once; a slot held longer is held on purpose.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a request's answer to be computed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Hard limit on a connection's life, so a client that reads slowly cannot hold it.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(30);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections served at once from one client address; further ones are closed at once.
pub const MAX_PER_CLIENT: usize = 8;
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // The status page's traffic shares: samples of the answer counters, taken here
    // rather than on the query path, for as long as the API serves.
    let sampler = tokio::spawn({
        let control = control.clone();
        async move { control.sample_traffic().await }
    });
    let api = Arc::new(Api { control });
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(slots::Slots::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
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
        let slot = match slots.admit(peer.ip()) {
            Ok((slot, made_room)) => {
                if made_room {
                    debug!("admin HTTP: closed another client's oldest connection for {peer}");
                }
                slot
            }
            Err(why) => {
                debug!("admin HTTP: connection from {peer} closed at once: {why:?}");
                continue;
            }
        };
        let api = api.clone();
        let service = service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_LIMIT, conn) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!("admin HTTP: connection from {peer}: {e}"),
                    Err(_) => {
                        debug!("admin HTTP: connection from {peer} cut after {CONNECTION_LIMIT:?}")
                    }
                },
                () = slot.closed() => {
                    debug!("admin HTTP: connection from {peer} closed to make room for another client");
                }
            }
        });
    }
    drop(listener);
    sampler.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("admin HTTP: requests still in flight at shutdown were dropped");
    }
    Ok(())
}

// Answer bodies as structs rather than `json!` maps, so that fields keep this order.

#[derive(Serialize)]
struct RegionsReply {
    regions: Vec<RegionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterReport>,
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
    /// Changed settings that need a restart (always present on success, maybe empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct ErrorReply {
    error: String,
}

struct Api {
    control: Arc<Control>,
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
        // Read per request, so a reload that rotates the token applies at once.
        let token = self.control.snapshot().model.server.admin_token.clone();
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err((status, msg)) = authorize(token.as_deref(), auth, peer_ip) {
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
        let who = if token.is_some() {
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
                        let status = match e {
                            DrainError::UnknownRegion(_) => StatusCode::NOT_FOUND,
                            DrainError::Stopped(_) => StatusCode::SERVICE_UNAVAILABLE,
                            // Applied in memory, but not written to server.state_file.
                            DrainError::NotSaved { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                        };
                        error(status, e.to_string())
                    }
                    Err(r) => r,
                }
            }
            Endpoint::Reload => match run(async move { control.reload().await }).await {
                Ok(Ok(done)) => {
                    info!(
                        "{who} {what}: ok, {} ({} warning(s))",
                        done.summary,
                        done.warnings.len()
                    );
                    json_reply(
                        StatusCode::OK,
                        &ReloadReply {
                            ok: true,
                            summary: Some(done.summary),
                            warnings: done.warnings,
                            error: None,
                        },
                    )
                }
                Ok(Err(e)) => {
                    // The errors themselves are logged by Control::reload.
                    info!("{who} {what}: failed");
                    let status = match e {
                        ReloadError::Invalid(_) => StatusCode::BAD_REQUEST,
                        ReloadError::Stopped(_) => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    let body = ReloadReply {
                        ok: false,
                        summary: None,
                        warnings: Vec::new(),
                        error: Some(e.to_string()),
                    };
                    json_reply(status, &body)
                }
                Err(r) => r,
            },
            _ => unreachable!("every other endpoint is a GET"),
        }
    }

    async fn get(&self, endpoint: Endpoint, query: Option<&str>, peer: IpAddr) -> Reply {
        match endpoint {
            Endpoint::Page => page::reply(),
            Endpoint::Healthz => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
            Endpoint::Metrics => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.control.metrics().await,
            ),
            Endpoint::Regions => {
                let (regions, cluster) = self.control.regions().await;
                json_reply(StatusCode::OK, &RegionsReply { regions, cluster })
            }
            Endpoint::Status => json_reply(StatusCode::OK, &self.control.status().await),
            Endpoint::HealthView => match self.control.health_view().await {
                Ok(view) => json_reply(StatusCode::OK, &view),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            },
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
mod tests;
