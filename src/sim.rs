//! Outage simulation: fake region health endpoints on loopback that a test switches
//! between healthy and failing, so gslbd's probes (and anything else that health-checks
//! over HTTP, HTTPS or TCP) can be tested against real sockets without mocks.
//!
//! A [`FakeRegion`] is a tiny blocking HTTP/1.1 server on `127.0.0.1` (or any address
//! you give it). It answers every path the same way, according to its [`Mode`]: healthy
//! (`200 ok`), a chosen status, the wrong body, hanging, flapping, or not listening at
//! all. [`FakeRegion::set`] changes the mode for the next request or connection. It uses
//! only std threads, so it works from a plain `#[test]` function, with or without an
//! async runtime, and it stops (closes its port, joins its threads) when dropped.
//!
//! # Example: watch answers move away from a failing region
//!
//! Three regions, each probed at its fake's [`url`](FakeRegion::url); the failover
//! record prefers `us-east`. When `us-east` starts answering 503, gslbd's next probe
//! marks it down (`fall = 1`) and `www` moves to `eu-west`. The example starts an
//! installed `gslbd` and asks `dig`; in this crate's own integration tests use
//! `env!("CARGO_BIN_EXE_gslbd")` and a DNS client of your choice instead.
//!
//! ```no_run
//! use std::process::{Command, Stdio};
//! use std::time::{Duration, Instant};
//!
//! use gslbd::sim::{FakeRegion, Mode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let us_east = FakeRegion::start()?;
//! let eu_west = FakeRegion::start()?;
//! let ap_south = FakeRegion::start()?;
//!
//! // A deployment: one zone and a gslb.toml whose probes point at the fakes.
//! let dir = std::env::temp_dir().join(format!("gslbd-sim-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("zones"))?;
//! std::fs::write(
//!     dir.join("zones/gslb.test.zone"),
//!     "$ORIGIN gslb.test.\n\
//!      $TTL 300\n\
//!      @   IN SOA ns1.gslb.test. hostmaster.gslb.test. ( 1 3600 600 86400 60 )\n\
//!      @   IN NS  ns1\n\
//!      ns1 IN A   127.0.0.1\n",
//! )?;
//! let probe = |region: &FakeRegion| {
//!     format!(
//!         r#"{{ url = "{}", expect_status = [200], expect_body = "ok", interval = "200ms", timeout = "100ms", rise = 1, fall = 1 }}"#,
//!         region.url()
//!     )
//! };
//! std::fs::write(
//!     dir.join("gslb.toml"),
//!     format!(
//!         r#"
//! [server]
//! listen = ["127.0.0.1:5354"]
//!
//! [regions.us-east]
//! addresses = ["192.0.2.10"]
//! probe = {}
//!
//! [regions.eu-west]
//! addresses = ["192.0.2.20"]
//! probe = {}
//!
//! [regions.ap-south]
//! addresses = ["192.0.2.30"]
//! probe = {}
//!
//! [records."www.gslb.test"]
//! policy = "failover"
//! ttl = 5
//! regions = ["us-east", "eu-west", "ap-south"]
//! "#,
//!         probe(&us_east),
//!         probe(&eu_west),
//!         probe(&ap_south)
//!     ),
//! )?;
//!
//! let mut server = Command::new("gslbd")
//!     .arg("serve")
//!     .arg("--config")
//!     .arg(dir.join("gslb.toml"))
//!     .stderr(Stdio::null())
//!     .spawn()?;
//! let answer = || -> String {
//!     let out = Command::new("dig")
//!         .args(["@127.0.0.1", "-p", "5354", "+short", "www.gslb.test"])
//!         .output()
//!         .expect("run dig");
//!     String::from_utf8_lossy(&out.stdout).trim().to_string()
//! };
//! // Poll rather than sleep: probes run on their own schedule.
//! let wait_for = |want: &str| {
//!     let deadline = Instant::now() + Duration::from_secs(5);
//!     while answer() != want {
//!         assert!(Instant::now() < deadline, "answer never became {want}");
//!         std::thread::sleep(Duration::from_millis(100));
//!     }
//! };
//!
//! wait_for("192.0.2.10"); // everything healthy: the first region
//! us_east.set(Mode::Status(503)); // the outage
//! wait_for("192.0.2.20"); // traffic moved to eu-west
//! assert!(us_east.hits() > 0, "gslbd probed us-east");
//! us_east.set(Mode::Up); // recovery
//! wait_for("192.0.2.10");
//!
//! server.kill()?;
//! server.wait()?;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # What a probe sees
//!
//! | [`Mode`] | HTTP(S) probe | TCP connect probe |
//! |---|---|---|
//! | `Up` | `200 OK`, body `ok` | connects |
//! | `Status(n)` | status `n`, body `unavailable` | connects |
//! | `WrongBody` | `200 OK`, body `maintenance` | connects |
//! | `Hang` | request read, no answer: the probe times out | connects |
//! | `Flap { ok, fail }` | `ok` answers `200 ok`, then `fail` answers `503`, repeating | connects |
//! | `Closed` | connection refused | connection refused |
//!
//! Every answer carries `Content-Type: text/plain`, a correct `Content-Length` and
//! `Connection: close`, and the connection is closed after it, whatever the client asked
//! for (one request per connection keeps the request count exact). [`FakeRegion::hits`]
//! counts requests, [`FakeRegion::connections`] accepted connections (what a TCP probe
//! makes), and [`FakeRegion::peers`] the source addresses those connections came from
//! (to check which address a client sends from, e.g. gslbd with `server.probe_source`).
//!
//! # HTTPS
//!
//! [`FakeRegion::start_tls`] serves the same over TLS with a fixed self-signed
//! certificate ([`CERT_PEM`]) for `127.0.0.1`, `::1` and `localhost`. No public CA signed
//! it, so a verifying client rejects it: gslbd's probes accept it only with
//! `insecure = true`. A test client can trust [`CERT_PEM`] instead.

mod conn;
#[cfg(test)]
mod tests;
mod tls;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use tls::CERT_PEM;

/// How often every background thread looks at the stop flag (and a hanging connection
/// at the mode): the bound on how long `Drop` and a mode change wait for them.
const TICK: Duration = Duration::from_millis(50);

/// How long the accept loop sleeps when no connection is pending. The listener is
/// non-blocking so that `Drop` and `set(Mode::Closed)` never wait on a blocked
/// `accept`; this is the extra latency a new connection may see before it is served.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// Connections served at once; beyond this new ones are closed at once, so a runaway
/// client (or a test that leaks sockets) cannot spawn unbounded threads.
const MAX_CONNECTIONS: usize = 64;

/// How a [`FakeRegion`] treats the next request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Healthy: `200 OK` with body `ok`.
    Up,
    /// Answers with this status code and body `unavailable`, e.g. `Status(503)`. The
    /// code is sent as given; use a three-digit code (100..=999) for valid HTTP.
    Status(u16),
    /// `200 OK` with body `maintenance`: fails a probe's `expect_body = "ok"` check
    /// while passing its status check.
    WrongBody,
    /// Accepts the connection and reads the request, then never answers: the probe
    /// times out. The connection is held until the client gives up, the region is
    /// dropped, or [`FakeRegion::set`] is called (then it is closed without an answer).
    Hang,
    /// Repeats `ok` healthy answers followed by `fail` `503` answers, counting requests
    /// from the moment the mode is set: `Flap { ok: 2, fail: 1 }` answers ok, ok, 503,
    /// ok, ok, 503, … (`fail: 0` is always healthy, `ok: 0` always failing).
    Flap {
        /// Healthy answers at the start of each cycle.
        ok: u32,
        /// `503` answers at the end of each cycle.
        fail: u32,
    },
    /// Not listening: the listener is closed, so connects are refused (not hung), as
    /// for a crashed process. Switching to any other mode re-binds the same address.
    Closed,
}

/// A fake region's health endpoint: an HTTP (or HTTPS) server on loopback whose
/// behaviour a test flips with [`set`](FakeRegion::set).
///
/// Dropping it stops it: the port is closed and every thread it started is joined
/// before `drop` returns (within about 50 ms).
pub struct FakeRegion {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the region's handle, accept loop and connection threads share.
struct Shared {
    /// The bound address (with the real port when started on port 0): re-bound after
    /// `Closed`, so probes configured with it keep working.
    addr: SocketAddr,
    /// `None` exactly while the mode is `Closed` (or after stop). Changed only by `set`
    /// and `Drop` while holding the lock, so a mode change and the listener's state
    /// are seen together.
    listener: Mutex<Option<TcpListener>>,
    state: Mutex<State>,
    stop: AtomicBool,
    hits: AtomicU64,
    connections: AtomicU64,
    /// Accepted connections per source IP, in the order each source was first seen.
    peers: Mutex<Vec<(IpAddr, u64)>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// The mode and what is counted per mode.
struct State {
    mode: Mode,
    /// Bumped by every `set`, so a hanging connection notices any change, even one that
    /// ends in `Hang` again.
    generation: u64,
    /// Requests answered since the mode was set: the position in a `Flap` cycle.
    flap_seen: u64,
}

/// What a connection does with a request it has read.
enum Action {
    Respond(u16, &'static str),
    Hang { generation: u64 },
    Close,
}

impl FakeRegion {
    /// Starts a healthy HTTP region on `127.0.0.1` with an ephemeral port.
    pub fn start() -> io::Result<FakeRegion> {
        FakeRegion::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts a healthy HTTP region on `addr`: e.g. `127.0.0.2:0` to give regions
    /// distinct addresses (Linux routes all of 127.0.0.0/8 to loopback), `[::1]:0`, or
    /// a fixed port to match an existing config.
    pub fn start_on(addr: SocketAddr) -> io::Result<FakeRegion> {
        FakeRegion::launch(addr, None)
    }

    /// Starts a healthy HTTPS region on `127.0.0.1` with an ephemeral port, serving the
    /// self-signed [`CERT_PEM`]. Probes must skip verification (`insecure = true`) or
    /// trust that certificate.
    pub fn start_tls() -> io::Result<FakeRegion> {
        FakeRegion::start_tls_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Like [`start_tls`](FakeRegion::start_tls) on `addr`. The certificate names only
    /// `127.0.0.1`, `::1` and `localhost`.
    pub fn start_tls_on(addr: SocketAddr) -> io::Result<FakeRegion> {
        FakeRegion::launch(addr, Some(tls::server_config()?))
    }

    /// Like [`start_tls_on`](FakeRegion::start_tls_on) with another certificate and its
    /// private key (PEM): an expired one, or one for other names, to see what probes
    /// say about it.
    pub fn start_tls_with(
        addr: SocketAddr,
        cert_pem: &str,
        key_pem: &str,
    ) -> io::Result<FakeRegion> {
        FakeRegion::launch(addr, Some(tls::server_config_for(cert_pem, key_pem)?))
    }

    fn launch(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> io::Result<FakeRegion> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            listener: Mutex::new(Some(listener)),
            state: Mutex::new(State {
                mode: Mode::Up,
                generation: 0,
                flap_seen: 0,
            }),
            stop: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            peers: Mutex::new(Vec::new()),
            tls,
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("sim:{}", addr.port()))
            .spawn(move || accept_loop(&for_thread))?;
        Ok(FakeRegion {
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on (also while `Closed`: the one it will re-bind).
    /// `probe = { tcp = "..." }` takes `addr().to_string()`.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The health URL for a probe's `url`: `http://127.0.0.1:PORT/healthz`
    /// (`https://` when started with TLS). Any other path is answered the same way.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/healthz", self.shared.addr)
    }

    /// Switches the mode; it applies to the next request (and, for `Closed`, at once to
    /// the port). A `Flap` cycle restarts at its first healthy answer.
    ///
    /// # Panics
    ///
    /// When leaving `Closed` and the address can no longer be bound (another socket
    /// took the port meanwhile); [`try_set`](FakeRegion::try_set) returns that error.
    pub fn set(&self, mode: Mode) {
        if let Err(e) = self.try_set(mode) {
            panic!(
                "FakeRegion {}: cannot re-bind for {mode:?}: {e}",
                self.addr()
            );
        }
    }

    /// Like [`set`](FakeRegion::set), but returns the error of re-binding the address
    /// when leaving `Closed`; the mode is then unchanged.
    pub fn try_set(&self, mode: Mode) -> io::Result<()> {
        // Held across the whole change so the accept loop never polls a listener that
        // disagrees with the mode, and a refused connect is guaranteed once this returns.
        let mut listener = lock(&self.shared.listener);
        if mode == Mode::Closed {
            // Dropping the listener closes the port; connections still in its backlog
            // are reset, as when a server process dies.
            *listener = None;
        } else if listener.is_none() {
            *listener = Some(bind(self.shared.addr)?);
        }
        let mut state = lock(&self.shared.state);
        state.mode = mode;
        state.generation += 1;
        state.flap_seen = 0;
        Ok(())
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        lock(&self.shared.state).mode
    }

    /// Requests received since the start, in every mode (hung and flapping ones too,
    /// and requests that arrive on an already open connection after `Closed`): how many
    /// times an HTTP probe reached this region. Bare TCP connects are not requests; see
    /// [`connections`](FakeRegion::connections).
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Connections accepted since the start: what a TCP connect probe is counted by.
    /// A connection counts once the accept loop takes it (within a few ms of the
    /// client's connect); one still waiting in the kernel's backlog when the mode
    /// becomes `Closed` is reset and never counted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The distinct source IPs of the connections accepted so far (counted as
    /// [`connections`](FakeRegion::connections) are), in the order each was first seen:
    /// which address a client sends from, e.g. `[127.0.0.2]` for gslbd probing with
    /// `server.probe_source = "127.0.0.2"`.
    pub fn peers(&self) -> Vec<IpAddr> {
        lock(&self.shared.peers).iter().map(|(ip, _)| *ip).collect()
    }

    /// Connections accepted so far from source IP `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> u64 {
        lock(&self.shared.peers)
            .iter()
            .find(|(p, _)| *p == ip)
            .map_or(0, |(_, n)| *n)
    }
}

impl fmt::Debug for FakeRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRegion")
            .field("url", &self.url())
            .field("mode", &self.mode())
            .field("hits", &self.hits())
            .finish()
    }
}

impl Drop for FakeRegion {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // The accept loop joins every connection thread before it returns.
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // Also when the accept loop died: the port must be free once drop returns.
        *lock(&self.shared.listener) = None;
    }
}

impl Shared {
    /// Decides the answer to one request from the current mode, advancing a `Flap`
    /// cycle. Called once per request, under the state lock, so concurrent probes each
    /// take their own place in the cycle.
    fn next_action(&self) -> Action {
        let mut state = lock(&self.state);
        match state.mode {
            Mode::Up => Action::Respond(200, "ok"),
            Mode::Status(code) => Action::Respond(code, "unavailable"),
            Mode::WrongBody => Action::Respond(200, "maintenance"),
            Mode::Hang => Action::Hang {
                generation: state.generation,
            },
            Mode::Flap { ok, fail } => {
                let period = u64::from(ok) + u64::from(fail);
                let position = state.flap_seen.checked_rem(period).unwrap_or(0);
                state.flap_seen += 1;
                if period == 0 || position < u64::from(ok) {
                    Action::Respond(200, "ok")
                } else {
                    Action::Respond(503, "unavailable")
                }
            }
            Mode::Closed => Action::Close,
        }
    }

    /// True when the region is stopping or the mode changed since `generation`.
    fn hang_over(&self, generation: u64) -> bool {
        self.stopping() || lock(&self.state).generation != generation
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Binds a non-blocking listener (std sets `SO_REUSEADDR` on Unix, so re-binding after
/// `Closed` or drop is not blocked by connections in TIME_WAIT).
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts connections until stopped, each served on its own thread; joins them all
/// before returning.
fn accept_loop(shared: &Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopping() {
        // The lock is held only for one non-blocking accept, never while sleeping.
        let accepted = match &*lock(&shared.listener) {
            Some(listener) => listener.accept(),
            None => Err(io::ErrorKind::WouldBlock.into()),
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // WouldBlock is the normal idle case; anything else (EMFILE, a connection
            // aborted before accept) is transient for a test server: keep serving.
            Err(_) => {
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        {
            // Counted under the peers lock, so `peers` never names a source that
            // `connections` does not count yet.
            let mut peers = lock(&shared.peers);
            match peers.iter_mut().find(|(ip, _)| *ip == peer.ip()) {
                Some((_, n)) => *n += 1,
                None => peers.push((peer.ip(), 1)),
            }
            shared.connections.fetch_add(1, Ordering::SeqCst);
        }
        let (done, running): (Vec<_>, Vec<_>) =
            workers.into_iter().partition(JoinHandle::is_finished);
        workers = running;
        for worker in done {
            let _ = worker.join();
        }
        if workers.len() >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        let for_thread = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("sim:{}c", shared.addr.port()))
            .spawn(move || conn::serve(&for_thread, stream));
        // Out of threads: the stream went down with the closure, i.e. it was closed.
        if let Ok(worker) = spawned {
            workers.push(worker);
        }
    }
    *lock(&shared.listener) = None;
    for worker in workers {
        let _ = worker.join();
    }
}

/// Locks, ignoring poisoning: a panicking connection thread must not wedge the region
/// (every critical section leaves the data consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
