//! The admin API's connection slots: at most [`MAX_CONNECTIONS`] open, at most
//! [`MAX_PER_CLIENT`] from one client address, and room kept for a fresh client: when
//! every slot is taken, a new connection from an address holding fewer than the busiest
//! one takes the place of that address's oldest connection. So however many idle sockets
//! a few addresses hold, `/healthz` and drain/undrain from another address get in at once.
//!
//! Connections are accepted as they come (never left waiting in the listen backlog, where
//! a flood would queue in front of everyone) and either given a slot or closed at once.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{MAX_CONNECTIONS, MAX_PER_CLIENT};

/// The open admin connections.
#[derive(Debug, Default)]
pub(super) struct Slots {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// By id, so oldest first.
    conns: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let (ip, close) = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(close)
    }
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its address already holds [`MAX_PER_CLIENT`] connections.
    PerClient,
    /// Every slot is taken by addresses holding no more connections than this one.
    Full,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is a few map operations that cannot fail half-way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `peer`, and whether another connection was closed to
    /// make room for it; or why it is closed at once.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(Slot, bool), Refused> {
        self.admit_within(peer.to_canonical(), MAX_CONNECTIONS, MAX_PER_CLIENT)
    }

    fn admit_within(
        self: &Arc<Self>,
        ip: IpAddr,
        max: usize,
        per_client: usize,
    ) -> Result<(Slot, bool), Refused> {
        let mut t = self.lock();
        let held = t.per_ip.get(&ip).copied().unwrap_or(0);
        if held >= per_client {
            return Err(Refused::PerClient);
        }
        let mut made_room = false;
        if t.conns.len() >= max {
            // The address holding the most (the lowest address on a tie, so the choice
            // does not depend on the hash map's order), if it holds more than `ip`.
            let busiest = t
                .per_ip
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(ip, n)| (*ip, *n));
            let Some((victim_ip, n)) = busiest.filter(|&(_, n)| n > held) else {
                return Err(Refused::Full);
            };
            debug_assert!(n > 0);
            let oldest = t
                .conns
                .iter()
                .find(|(_, (ip, _))| *ip == victim_ip)
                .map(|(id, _)| *id);
            if let Some(close) = oldest.and_then(|id| t.remove(id)) {
                // Stored as a permit if its task has not started waiting yet.
                close.notify_one();
                made_room = true;
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let close = Arc::new(Notify::new());
        t.conns.insert(id, (ip, close.clone()));
        *t.per_ip.entry(ip).or_insert(0) += 1;
        let slot = Slot {
            slots: self.clone(),
            id,
            close,
        };
        Ok((slot, made_room))
    }
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    close: Arc<Notify>,
}

impl Slot {
    /// Completes when the connection is closed to make room for another client.
    pub(super) async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_holds_at_most_its_share() {
        let slots = Arc::new(Slots::default());
        let held: Vec<_> = (0..3)
            .map(|_| slots.admit_within(ip("192.0.2.1"), 8, 3).unwrap())
            .collect();
        let refused = slots.admit_within(ip("192.0.2.1"), 8, 3).unwrap_err();
        assert_eq!(refused, Refused::PerClient);
        assert!(slots.admit_within(ip("192.0.2.2"), 8, 3).is_ok());
        drop(held);
        assert!(slots.admit_within(ip("192.0.2.1"), 8, 3).is_ok());
    }

    #[test]
    fn a_full_table_makes_room_for_a_fresh_address() {
        let slots = Arc::new(Slots::default());
        let (a1, _) = slots.admit_within(ip("192.0.2.1"), 4, 3).unwrap();
        let (_a2, _) = slots.admit_within(ip("192.0.2.1"), 4, 3).unwrap();
        let (_b1, _) = slots.admit_within(ip("192.0.2.2"), 4, 3).unwrap();
        let (_a3, _) = slots.admit_within(ip("192.0.2.1"), 4, 3).unwrap();
        // Full: a fresh address takes the oldest slot of the busiest address.
        let (_c1, made_room) = slots.admit_within(ip("192.0.2.3"), 4, 3).unwrap();
        assert!(made_room);
        assert!(slots.lock().remove(a1.id).is_none(), "a1 was closed");
        // Now a holds 2, b and c 1 each: c takes one of a's.
        let (_c2, made_room) = slots.admit_within(ip("192.0.2.3"), 4, 3).unwrap();
        assert!(made_room);
        // a 1, b 1, c 2: b takes one of c's.
        let (_b2, made_room) = slots.admit_within(ip("192.0.2.2"), 4, 3).unwrap();
        assert!(made_room);
        // a 1, b 2, c 1: b already holds the most, so it gets no more.
        let refused = slots.admit_within(ip("192.0.2.2"), 4, 3).unwrap_err();
        assert_eq!(refused, Refused::Full);
        assert_eq!(slots.lock().conns.len(), 4);
    }

    #[tokio::test]
    async fn making_room_wakes_the_closed_connection() {
        let slots = Arc::new(Slots::default());
        let (old, _) = slots.admit_within(ip("192.0.2.1"), 1, 1).unwrap();
        let _new = slots.admit_within(ip("192.0.2.2"), 1, 1).unwrap();
        let woken = tokio::time::timeout(std::time::Duration::from_secs(1), old.closed());
        assert!(woken.await.is_ok());
    }
}
