//! A whole server, in-process: DNS, health probing and the admin API, started from a
//! loaded config and already-bound listeners, stopped on request. `gslbd serve` is a thin
//! command line over it (signals, logging, exit codes); tests start several side by side
//! in one process.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gslbd::instance::StartError> {
//! use gslbd::control::Overrides;
//! let overrides = Overrides {
//!     listen: vec!["127.0.0.1:0".parse().unwrap()],
//!     admin: Some("127.0.0.1:0".parse().unwrap()),
//! };
//! let server = gslbd::Instance::launch("gslb.toml".as_ref(), overrides).await?;
//! println!("DNS on {}", server.udp_addrs()[0]);
//! server.stop().await?;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::{Control, Overrides, ReloadError, Reloaded};
use crate::diag::Diagnostics;
use crate::health::{DrainError, HealthService, state_file};
use crate::model::Model;
use crate::server::{self, Sockets};
use crate::snapshot::Snapshot;

/// How long a stop waits for admin requests in flight.
const ADMIN_GRACE: Duration = Duration::from_secs(2);

/// Sockets bound for a server: DNS (UDP and TCP of every listen address) and the admin
/// API. Bound before starting, so that a caller can bind port 0 and learn the ports, or
/// be handed sockets by a supervisor.
#[derive(Debug)]
pub struct Listeners {
    /// DNS sockets.
    pub dns: Sockets,
    /// The admin API's listener, when there is one.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds what `model` asks for: `server.workers` UDP sockets and one TCP listener on
    /// each of `server.listen`, and `server.admin`. Each bound address is logged.
    pub async fn bind(model: &Model) -> io::Result<Listeners> {
        let workers = model.server.workers.unwrap_or_else(server::default_workers);
        let dns = server::bind(&model.server.listen, workers).await?;
        let admin = match model.server.admin {
            Some(a) => Some(crate::admin::bind(a).await?),
            None => None,
        };
        Ok(Listeners { dns, admin })
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config, a zone, the GeoIP database or the state file (`server.state_file`)
    /// has errors.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// An address could not be bound, or a thread not started.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A running server. Dropping it does not stop it: call [`Instance::stop`].
#[derive(Debug)]
pub struct Instance {
    control: Arc<Control>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<io::Result<()>>,
}

impl Instance {
    /// Loads `config`, applies `overrides`, binds and starts: [`Instance::start`] in one
    /// call.
    pub async fn launch(config: &Path, overrides: Overrides) -> Result<Instance, StartError> {
        let path = config.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&path))
            .await
            .map_err(io::Error::other)?;
        let snap = overrides.applied(loaded.map_err(StartError::Invalid)?);
        let listeners = Listeners::bind(&snap.model).await?;
        Instance::start(config.to_path_buf(), overrides, snap, listeners).await
    }

    /// Starts serving `snap` (loaded from `config`, `overrides` already applied) on
    /// `listeners`, on the current tokio runtime: reads the drains kept in
    /// `server.state_file` (an unreadable or malformed file is [`StartError::Invalid`]),
    /// runs the first round of probes (so a region that is down now is never served),
    /// then DNS, the probers and the admin API in the background. `config` and
    /// `overrides` are what reloads read again.
    pub async fn start(
        config: PathBuf,
        overrides: Overrides,
        snap: Snapshot,
        listeners: Listeners,
    ) -> Result<Instance, StartError> {
        let udp = listeners.dns.udp_addrs();
        let tcp = listeners.dns.tcp_addrs();
        let admin = match &listeners.admin {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let model = snap.model.clone();
        let drained = tokio::task::spawn_blocking(move || state_file::load(&model))
            .await
            .map_err(io::Error::other)?
            .map_err(|d| StartError::Invalid(d.into()))?;
        let state = snap.into_shared();
        let health = HealthService::start(state.clone(), drained).await;
        let control = Control::new(config, overrides, state.clone(), health.clone());
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let admin_task = listeners.admin.map(|listener| {
            tokio::spawn(crate::admin::serve(
                listener,
                control.clone(),
                until_stopped(stopped.clone()),
            ))
        });
        let peers = tokio::spawn(crate::cluster::run(
            state.clone(),
            health.clone(),
            stopped.clone(),
        ));
        let dns = server::run(listeners.dns, state, until_stopped(stopped));
        let task = tokio::spawn(async move {
            let served = dns.await;
            if let Some(t) = admin_task {
                // The admin API got the stop too: let it finish its requests in flight.
                let _ = tokio::time::timeout(ADMIN_GRACE, t).await;
            }
            let _ = peers.await;
            health.stop().await;
            served
        });
        Ok(Instance {
            control,
            udp,
            tcp,
            admin,
            stop,
            task,
        })
    }

    /// The UDP addresses served (port 0 resolved), one per listen address.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The TCP addresses served.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The admin API's address, when it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The server's operations (reload, drain, reports), as the admin API uses them.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Reloads config, zones and GeoIP database, as SIGHUP does.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        self.control.reload().await
    }

    /// Drains (or undrains) a region: `Ok(changed)`.
    pub async fn drain(&self, region: &str, drained: bool) -> Result<bool, DrainError> {
        self.control.drain(region, drained).await
    }

    /// Stops accepting, lets TCP answers and admin requests in flight finish (a few
    /// seconds at most), stops the probers, and returns once DNS has stopped.
    pub async fn stop(self) -> io::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(io::Error::other)?
    }
}
