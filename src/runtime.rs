//! What the query path reads, as one handle ([`Shared`]): the published [`Snapshot`]
//! (config, zones, GeoIP, compiled trees, health: immutable) and the [`Runtime`] beside
//! it (what changes per query and outlives every snapshot: counters and the response rate
//! limiter).
//!
//! A reload installs a new snapshot ([`Shared::install`]): the query counters go on as
//! they are, the answer counters are laid out for the new config and continue the old
//! totals by name, and the rate limiter keeps its table (a limited client stays limited)
//! unless `server.rate_limit` itself changed; the dnstap sender follows a changed
//! `server.dnstap` destination. A health change only republishes the
//! snapshot ([`Shared::set_health`]). Readers take a [`View`] (two `ArcSwap` guards: no
//! lock) per batch of datagrams or per TCP message.

use std::ops::Deref;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tracing::info;

use crate::dnstap::Tap;
use crate::health::Health;
use crate::metrics::{AnswerCounters, QueryCounters};
use crate::model::{RecordId, RegionId};
use crate::rrl::{DEFAULT_TABLE_SIZE, Limiter};
use crate::snapshot::Snapshot;

/// The state that changes while the server runs and survives reloads.
#[derive(Debug)]
pub struct Runtime {
    /// Queries by transport, rcode and type, and the event counters.
    pub queries: QueryCounters,
    /// What a reload may replace, swapped as one (a query loads it once).
    tables: ArcSwap<Tables>,
    /// The dnstap sender (`server.dnstap`): its queue and counters outlive reloads.
    pub dnstap: Tap,
}

/// The runtime's parts that follow the config: answer counters laid out for it, and the
/// rate limiter of its `server.rate_limit`.
#[derive(Debug)]
struct Tables {
    answers: Arc<AnswerCounters>,
    rrl: Option<Arc<Limiter>>,
}

impl Runtime {
    /// The answer counters, laid out for the current config.
    pub fn answers(&self) -> Arc<AnswerCounters> {
        self.tables.load().answers.clone()
    }

    /// The response rate limiter, when `server.rate_limit` is set.
    pub fn rrl(&self) -> Option<Arc<Limiter>> {
        self.tables.load().rrl.clone()
    }
}

#[derive(Debug)]
struct Inner {
    snapshot: ArcSwap<Snapshot>,
    runtime: Runtime,
}

/// The handle shared by the query path, the health owner and the control plane.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Inner>);

impl Shared {
    /// Publishes `snap` with a fresh runtime: zeroed counters, and a rate limiter when
    /// its config sets `server.rate_limit`.
    pub fn new(snap: Snapshot) -> Shared {
        let runtime = Runtime {
            queries: QueryCounters::default(),
            tables: ArcSwap::from_pointee(Tables {
                answers: Arc::new(AnswerCounters::new(snap.model.clone())),
                rrl: limiter(&snap),
            }),
            dnstap: Tap::default(),
        };
        runtime.dnstap.configure(snap.model.server.dnstap.as_ref());
        Shared(Arc::new(Inner {
            snapshot: ArcSwap::from_pointee(snap),
            runtime,
        }))
    }

    /// What a query is answered from: the current snapshot and the runtime.
    pub fn load(&self) -> View<'_> {
        // Snapshot first: a reload swaps the counters before the snapshot, so the
        // counters loaded next are never older than the snapshot.
        let snap = self.0.snapshot.load();
        View {
            snap,
            tables: self.0.runtime.tables.load(),
            runtime: &self.0.runtime,
        }
    }

    /// The current snapshot, to keep.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshot.load_full()
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.0.runtime
    }

    /// Installs a snapshot of a new config (a reload): answer counters are laid out
    /// for it, carrying the totals over by name; the rate limiter is replaced only when
    /// `server.rate_limit` changed (and removed when it is gone). Called by one writer.
    pub fn install(&self, mut snap: Snapshot) {
        let rt = &self.0.runtime;
        if snap.signing.is_some() {
            // A reload's snapshot comes signed for all regions up; sign for the health
            // it is installed with, reusing what the reload signed.
            let made = snap.dyn_sigs.clone();
            snap.sign_dynamic(Some(&made));
        }
        let old = rt.tables.load_full();
        let answers = if old.answers.is_for(&snap.model) {
            old.answers.clone()
        } else {
            Arc::new(AnswerCounters::carried_over(
                snap.model.clone(),
                &old.answers,
            ))
        };
        let cur = self.0.snapshot.load();
        let (was, now) = (cur.model.server.rate_limit, snap.model.server.rate_limit);
        let rrl = if was == now {
            old.rrl.clone()
        } else {
            if let (Some(_), Some(r)) = (was, now) {
                info!(
                    responses_per_second = r.responses_per_second,
                    slip = r.slip,
                    "server.rate_limit changed: the rate limiter starts a new table"
                );
            }
            limiter(&snap)
        };
        drop(cur);
        rt.dnstap.configure(snap.model.server.dnstap.as_ref());
        rt.tables.store(Arc::new(Tables { answers, rrl }));
        self.0.snapshot.store(Arc::new(snap));
    }

    /// Publishes `health` with the current config when a query would see a difference;
    /// true when it did. Called by one writer (the health owner).
    pub fn set_health(&self, health: Health) -> bool {
        let cur = self.0.snapshot.load();
        if !cur.health.differs(&health) {
            return false;
        }
        let mut next = Snapshot {
            health: Arc::new(health),
            ..(**cur).clone()
        };
        next.sign_dynamic(Some(&cur.dyn_sigs));
        drop(cur);
        self.0.snapshot.store(Arc::new(next));
        true
    }
}

fn limiter(snap: &Snapshot) -> Option<Arc<Limiter>> {
    snap.model
        .server
        .rate_limit
        .map(|r| Arc::new(Limiter::new(&r, DEFAULT_TABLE_SIZE)))
}

/// One reader's view: the snapshot, and the runtime's counters and limiter as they were
/// when it was taken. Dereferences to the snapshot.
pub struct View<'a> {
    snap: Guard<Arc<Snapshot>>,
    tables: Guard<Arc<Tables>>,
    runtime: &'a Runtime,
}

impl View<'_> {
    /// The response rate limiter, when `server.rate_limit` is set.
    pub fn rrl(&self) -> Option<&Limiter> {
        self.tables.rrl.as_deref()
    }

    /// The query counters.
    pub fn queries(&self) -> &QueryCounters {
        &self.runtime.queries
    }

    /// The dnstap sender (it sends only while `server.dnstap` is set).
    pub fn dnstap(&self) -> &Tap {
        &self.runtime.dnstap
    }

    /// Counts an answer of `record` from `region` (`None`: no address).
    pub fn count_answer(&self, record: RecordId, region: Option<RegionId>) {
        self.tables.answers.count(&self.snap.model, record, region);
    }
}

impl Deref for View<'_> {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.snap
    }
}
