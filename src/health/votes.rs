//! Health by quorum: what each instance of a cluster sees of every probe target (its
//! [`View`]), the views of the peers as they arrive, and the rule that decides a target
//! from them. Pure: no I/O and no clock of its own (the caller passes the time).
//!
//! A target is down when at least `quorum` fresh views, this instance's own included,
//! say it is down. A peer's view is fresh for three pull intervals after it arrived; a
//! peer that does not probe a target (another config) casts no vote on it. With fewer
//! fresh views than `quorum`, the instance decides from its own view alone.

use std::collections::HashMap;
use std::hash::Hasher;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::probe::TargetSpec;
use crate::model::Cluster;

/// A view is stale after this many pull intervals without a new one.
pub const STALE_INTERVALS: u32 = 3;

/// One instance's own probe view: each target's state after rise/fall (`GET
/// /api/v1/health/view`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// When it was made, milliseconds since the Unix epoch (the maker's clock).
    pub made_ms: u64,
    /// One entry per probe target.
    pub targets: Vec<TargetView>,
}

/// One target in a [`View`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetView {
    /// The target's key: the same on every instance with the same probe config.
    pub key: String,
    /// What is probed (`GET URL`, `tcp ADDR`).
    pub target: String,
    /// Up after rise/fall (up until a first result says otherwise).
    pub up: bool,
    /// Has any result arrived.
    pub known: bool,
    /// When the state last changed (RFC 3339).
    pub since: Option<String>,
    /// The last result (`ok`, `status 503`, `timeout`, ...).
    pub last_result: Option<String>,
}

/// The key of a target: its description and a hash of everything that makes two targets
/// different (expected status and body, host, timing), computed alike by every instance.
pub fn key(spec: &TargetSpec) -> String {
    // FNV-1a: fixed, so every instance and version of the same build agrees.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(format!("{spec:?}").as_bytes());
    format!("{spec} #{:016x}", h.finish())
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The peers' views as they arrived, and the cluster settings they are judged by.
#[derive(Debug, Clone)]
pub struct Peers {
    /// `cluster.quorum`.
    pub quorum: usize,
    /// `cluster.interval`.
    pub interval: Duration,
    /// One per `cluster.peers` entry, in config order.
    pub peers: Vec<Peer>,
    /// The time of the latest pull round: what freshness is judged against.
    now: Option<Instant>,
}

/// One peer and its latest view.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its admin API URL.
    pub url: String,
    /// Its latest view by target key (up or down), and when it arrived.
    latest: Option<(HashMap<String, bool>, Instant)>,
    /// Why the latest pull failed, if it did.
    pub error: Option<String>,
}

/// How one target was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Fresh views that name the target, this instance's own included.
    pub views: usize,
    /// Of those, the ones that say down.
    pub down: usize,
    /// Fewer fresh views than the quorum: decided from this instance's own view.
    pub alone: bool,
}

impl Peers {
    /// The peers of `cluster`, none heard from yet.
    pub fn new(cluster: &Cluster) -> Peers {
        Peers {
            quorum: cluster.quorum,
            interval: cluster.interval,
            peers: cluster
                .peers
                .iter()
                .map(|url| Peer {
                    url: url.clone(),
                    latest: None,
                    error: None,
                })
                .collect(),
            now: None,
        }
    }

    /// Takes over the views of peers of the same URL from `old` (a reload).
    pub fn carry_over(&mut self, old: &Peers) {
        for p in &mut self.peers {
            if let Some(o) = old.peers.iter().find(|o| o.url == p.url) {
                p.latest = o.latest.clone();
                p.error = o.error.clone();
            }
        }
        self.now = old.now;
    }

    /// Records the outcome of pulling `url`'s view at `now`: the view, or why not.
    /// Returns false for a URL that is no peer (any more).
    pub fn record(&mut self, url: &str, view: Result<View, String>, now: Instant) -> bool {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
        let Some(p) = self.peers.iter_mut().find(|p| p.url == url) else {
            return false;
        };
        match view {
            Ok(v) => {
                let votes = v.targets.into_iter().map(|t| (t.key, t.up)).collect();
                p.latest = Some((votes, now));
                p.error = None;
            }
            Err(e) => p.error = Some(e),
        }
        true
    }

    /// Age of `peer`'s latest view, when it has one.
    pub fn age(&self, peer: &Peer) -> Option<Duration> {
        let (_, at) = peer.latest.as_ref()?;
        Some(self.now?.saturating_duration_since(*at))
    }

    /// True while `peer`'s latest view is fresh.
    pub fn fresh(&self, peer: &Peer) -> bool {
        self.age(peer)
            .is_some_and(|a| a <= self.interval * STALE_INTERVALS)
    }

    /// `peer`'s vote on target `key`: `Some(up)` from a fresh view that names it.
    pub fn vote(&self, peer: &Peer, key: &str) -> Option<bool> {
        if !self.fresh(peer) {
            return None;
        }
        peer.latest.as_ref()?.0.get(key).copied()
    }

    /// Decides a target from this instance's own state `own_up` and the fresh votes.
    pub fn decide(&self, key: &str, own_up: bool) -> (bool, Tally) {
        let mut tally = Tally {
            views: 1,
            down: usize::from(!own_up),
            alone: false,
        };
        for p in &self.peers {
            if let Some(up) = self.vote(p, key) {
                tally.views += 1;
                tally.down += usize::from(!up);
            }
        }
        if tally.views < self.quorum {
            tally.alone = true;
            return (own_up, tally);
        }
        (tally.down < self.quorum, tally)
    }

    /// True when too few peers' views are fresh to reach the quorum at all.
    pub fn alone(&self) -> bool {
        1 + self.peers.iter().filter(|p| self.fresh(p)).count() < self.quorum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(peers: usize, quorum: usize) -> Peers {
        Peers::new(&Cluster {
            peers: (0..peers)
                .map(|i| format!("http://127.0.0.{}:1", i + 2))
                .collect(),
            interval: Duration::from_secs(2),
            quorum,
        })
    }

    fn view(up: &[(&str, bool)]) -> View {
        View {
            made_ms: 0,
            targets: up
                .iter()
                .map(|(k, u)| TargetView {
                    key: k.to_string(),
                    target: k.to_string(),
                    up: *u,
                    known: true,
                    since: None,
                    last_result: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_target_goes_down_only_when_a_quorum_of_fresh_views_says_so() {
        let t0 = Instant::now();
        let mut p = cluster(2, 2);
        // No peer heard from yet: too few views, decided alone.
        assert!(!p.decide("a", false).0);
        assert!(p.decide("a", false).1.alone);
        p.record("http://127.0.0.2:1", Ok(view(&[("a", true)])), t0);
        p.record("http://127.0.0.3:1", Ok(view(&[("a", true)])), t0);
        // Only this instance sees it down: stays up.
        let (up, tally) = p.decide("a", false);
        assert!(up);
        assert_eq!(
            tally,
            Tally {
                views: 3,
                down: 1,
                alone: false
            }
        );
        // One peer agrees: down.
        p.record("http://127.0.0.3:1", Ok(view(&[("a", false)])), t0);
        assert!(!p.decide("a", false).0);
        // Two peers say down while this one sees it up: down too (quorum 2 of 3).
        p.record("http://127.0.0.2:1", Ok(view(&[("a", false)])), t0);
        assert!(!p.decide("a", true).0);
        // A target a peer does not probe gets no vote from it.
        assert_eq!(
            p.decide("b", false).1,
            Tally {
                views: 1,
                down: 1,
                alone: true
            }
        );
    }

    #[test]
    fn stale_views_do_not_vote_and_too_few_fresh_ones_decide_alone() {
        let t0 = Instant::now();
        let mut p = cluster(2, 2);
        p.record("http://127.0.0.2:1", Ok(view(&[("a", true)])), t0);
        p.record("http://127.0.0.3:1", Ok(view(&[("a", true)])), t0);
        assert!(p.decide("a", false).0, "outvoted");
        assert!(!p.alone());
        // Three intervals later both views are still fresh; a moment after, stale.
        let later = t0 + Duration::from_secs(6);
        p.record("http://127.0.0.2:1", Err("timeout".into()), later);
        assert!(p.decide("a", false).0);
        let after = later + Duration::from_millis(1);
        p.record("http://127.0.0.3:1", Err("refused".into()), after);
        assert!(p.alone());
        let (up, tally) = p.decide("a", false);
        assert!(!up, "decided from its own view");
        assert!(tally.alone);
        assert_eq!(p.peers[1].error.as_deref(), Some("refused"));
        assert!(!p.record("http://elsewhere:1", Err("x".into()), after));
    }

    #[test]
    fn a_reload_keeps_the_views_of_peers_it_keeps() {
        let t0 = Instant::now();
        let mut old = cluster(2, 2);
        old.record("http://127.0.0.2:1", Ok(view(&[("a", false)])), t0);
        let mut new = cluster(1, 2);
        new.carry_over(&old);
        assert_eq!(
            new.decide("a", false).1,
            Tally {
                views: 2,
                down: 2,
                alone: false
            }
        );
    }

    #[test]
    fn keys_differ_for_targets_that_differ_in_anything() {
        use super::super::probe::TimingKey;
        use crate::model::ProbeTarget;
        let timing = TimingKey {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        };
        let spec = |addr: &str, fall| TargetSpec {
            check: ProbeTarget::Tcp { addr: addr.into() },
            timing: TimingKey { fall, ..timing },
        };
        let a = key(&spec("192.0.2.1:80", 2));
        assert_eq!(a, key(&spec("192.0.2.1:80", 2)), "stable");
        assert!(a.starts_with("tcp 192.0.2.1:80 #"), "{a}");
        assert_ne!(a, key(&spec("192.0.2.1:80", 3)));
        assert_ne!(a, key(&spec("192.0.2.2:80", 2)));
    }
}
