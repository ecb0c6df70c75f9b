//! Where the settings of a running server come from, and which ones it cannot change:
//! the command line's overrides (kept across reloads) and the sockets and threads bound
//! at start, whose changes a reload names in its warnings.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::model::Model;
use crate::snapshot::Snapshot;

/// Command-line values that replace config values, kept across reloads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` (empty: use the config's).
    pub listen: Vec<SocketAddr>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
}

impl Overrides {
    /// `snap` with the overrides applied to its model.
    pub fn applied(&self, mut snap: Snapshot) -> Snapshot {
        // A freshly loaded model is not shared yet: changed in place, not copied (a
        // large config's model takes a while to copy).
        self.apply(Arc::make_mut(&mut snap.model));
        snap
    }

    /// Applies the overrides to a freshly loaded model.
    pub fn apply(&self, model: &mut Model) {
        if !self.listen.is_empty() {
            model.server.listen = self.listen.clone();
        }
        if self.admin.is_some() {
            model.server.admin = self.admin;
        }
    }
}

/// The settings a running server cannot change: its sockets and threads.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Running {
    listen: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    workers: Option<usize>,
}

impl Running {
    pub(super) fn of(model: &Model) -> Running {
        Running {
            listen: model.server.listen.clone(),
            admin: model.server.admin,
            workers: model.server.workers,
        }
    }

    /// One warning per setting of `model` that differs from what runs.
    pub(super) fn warnings(&self, model: &Model) -> Vec<String> {
        let want = Running::of(model);
        let mut w = Vec::new();
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if want.listen != self.listen {
            w.push(format!(
                "server.listen changed to [{}] but the server keeps listening on [{}] until it is restarted",
                list(&want.listen),
                list(&self.listen)
            ));
        }
        if want.admin != self.admin {
            let show = |a: Option<SocketAddr>| a.map_or("none".to_string(), |a| a.to_string());
            w.push(format!(
                "server.admin changed to {} but the admin API stays on {} until the server is restarted",
                show(want.admin),
                show(self.admin)
            ));
        }
        if want.workers != self.workers {
            let show = |n: Option<usize>| n.map_or("one per core".to_string(), |n| n.to_string());
            w.push(format!(
                "server.workers changed to {} but {} UDP workers per address keep running until the server is restarted",
                show(want.workers),
                show(self.workers)
            ));
        }
        w
    }
}
