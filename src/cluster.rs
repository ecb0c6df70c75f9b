//! The instances of one zone deciding health together (`[cluster]`): every
//! `cluster.interval`, this task pulls each peer's own probe view (`GET
//! /api/v1/health/view` on its admin API) in parallel, each pull bounded by the interval,
//! and hands the views (or why a pull failed) to the health owner, which decides each
//! target by quorum ([`crate::health::votes`]). The peers, interval and token are read
//! from the current config every round, so a reload changes them.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::debug;

use crate::health::HealthService;
use crate::health::votes::View;
use crate::runtime::Shared;

/// How often a server without `[cluster]` looks whether a reload added one.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Pulls the peers' views until `stop` turns true.
pub async fn run(state: Shared, health: HealthService, mut stop: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .user_agent(concat!("gslbd/", env!("CARGO_PKG_VERSION"), " (cluster)"))
        // Peers are on a management network: never through a proxy.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cluster: cannot build the HTTP client: {e}");
            return;
        }
    };
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let snap = state.snapshot();
        let Some(cluster) = snap.model.cluster.clone() else {
            next = tokio::time::Instant::now() + IDLE_CHECK;
            continue;
        };
        next += cluster.interval;
        let now = tokio::time::Instant::now();
        if next < now {
            next = now + cluster.interval;
        }
        let token = snap.model.server.admin_token.clone();
        drop(snap);
        let mut pulls = JoinSet::new();
        for url in cluster.peers {
            let (client, token) = (client.clone(), token.clone());
            pulls.spawn(async move {
                let view = pull(&client, &url, token.as_deref(), cluster.interval).await;
                (url, view, Instant::now())
            });
        }
        while let Some(done) = pulls.join_next().await {
            let Ok((url, view, at)) = done else { continue };
            if let Err(e) = &view {
                debug!(peer = %url, "cluster: no view: {e}");
            }
            if health.peer_view(url, view, at).await.is_err() {
                return; // the health owner is gone: so is this server
            }
        }
    }
}

/// One peer's view, within `timeout`.
async fn pull(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<View, String> {
    let mut req = client
        .get(format!("{base}/api/v1/health/view"))
        .timeout(timeout);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let reply = req.send().await.map_err(|e| describe(&e))?;
    let status = reply.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let body = reply.bytes().await.map_err(|e| describe(&e))?;
    serde_json::from_slice(&body).map_err(|e| format!("not a health view: {e}"))
}

/// A short reason: "timeout", or the innermost error's message.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    inner.to_string()
}
