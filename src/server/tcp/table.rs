//! The table of open DNS-over-TCP connections, shared by every TCP listener: how many
//! each client network (/24 for IPv4, /56 for IPv6) holds, and which connections wait
//! for a query, oldest wait first, so that a full table makes room for a new client by
//! closing the connection idle the longest (RFC 7766 §6.2.3: under pressure a server may
//! close idle connections) instead of turning the newcomer away.
//!
//! A connection is idle from its accept, and again after each answer, until the next
//! query's length prefix arrives; it is busy while it reads a query's body, answers and
//! writes. Only idle connections are ever closed to make room. Every change happens under
//! one short mutex: accepts and two updates per TCP query, never the UDP path.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::model::TcpLimits;

/// A client network: the /24 of an IPv4 address, the /56 of an IPv6 one (as the rate
/// limiter); an IPv4-mapped IPv6 address counts as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Net {
    V4(u32),
    V6(u64),
}

impl Net {
    fn of(ip: IpAddr) -> Net {
        match ip.to_canonical() {
            IpAddr::V4(a) => Net::V4(u32::from(a) >> 8),
            IpAddr::V6(a) => Net::V6((u128::from(a) >> 72) as u64),
        }
    }
}

/// Why a new connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its client network already holds `max_per_client` connections.
    PerClient,
    /// `max_connections` are open and none of them is idle.
    AllBusy,
}

/// The open connections.
#[derive(Debug, Default)]
pub(in crate::server) struct Table {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    per_net: HashMap<Net, u32>,
    /// The idle connections by the time they became idle (ids break ties).
    idle: BTreeSet<(Instant, u64)>,
}

#[derive(Debug)]
struct Conn {
    net: Net,
    idle_since: Option<Instant>,
    close: Arc<Notify>,
}

impl Inner {
    /// Takes `id` out of the table; false when it was no longer in it.
    fn remove(&mut self, id: u64) -> bool {
        let Some(c) = self.conns.remove(&id) else {
            return false;
        };
        if let Some(t) = c.idle_since {
            self.idle.remove(&(t, id));
        }
        if let Some(n) = self.per_net.get_mut(&c.net) {
            *n -= 1;
            if *n == 0 {
                self.per_net.remove(&c.net);
            }
        }
        true
    }
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data: every change is a few
        // map operations that cannot fail half-way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer` under `limits`, closing as many idle connections
    /// as it takes to get below `max_connections` (longest idle first). Returns its
    /// ticket and how many were closed for it, or why it is turned away (then nothing
    /// was closed unless `max_connections` was lowered below the connections open).
    pub(super) fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        limits: &TcpLimits,
        now: Instant,
    ) -> Result<(Ticket, usize), Refused> {
        let net = Net::of(peer);
        let mut t = self.lock();
        if t.per_net.get(&net).copied().unwrap_or(0) >= limits.max_per_client {
            return Err(Refused::PerClient);
        }
        let mut closed = 0;
        while t.conns.len() >= limits.max_connections as usize {
            let Some(&(_, id)) = t.idle.first() else {
                return Err(Refused::AllBusy);
            };
            let close = t.conns[&id].close.clone();
            t.remove(id);
            // Stored as a permit if the task is not waiting right now: it sees it at
            // its next wait (it is idle, so that is where it is going).
            close.notify_one();
            closed += 1;
        }
        let id = t.next_id;
        t.next_id += 1;
        let close = Arc::new(Notify::new());
        let conn = Conn {
            net,
            idle_since: Some(now),
            close: close.clone(),
        };
        t.conns.insert(id, conn);
        t.idle.insert((now, id));
        *t.per_net.entry(net).or_insert(0) += 1;
        let ticket = Ticket {
            table: self.clone(),
            id,
            close,
        };
        Ok((ticket, closed))
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().conns.len()
    }
}

/// One connection's place in the table, given up when dropped.
#[derive(Debug)]
pub(super) struct Ticket {
    table: Arc<Table>,
    id: u64,
    close: Arc<Notify>,
}

impl Ticket {
    /// Marks the connection idle from `now`: waiting for a query, it may be closed to
    /// make room. False when it was already closed to make room.
    pub(super) fn idle(&self, now: Instant) -> bool {
        let mut t = self.table.lock();
        let Some(c) = t.conns.get_mut(&self.id) else {
            return false;
        };
        let old = c.idle_since.replace(now);
        if let Some(old) = old {
            t.idle.remove(&(old, self.id));
        }
        t.idle.insert((now, self.id));
        true
    }

    /// Marks the connection busy (a query is arriving): never closed to make room until
    /// it is idle again. False when it was closed to make room before that.
    pub(super) fn busy(&self) -> bool {
        let mut t = self.table.lock();
        let Some(c) = t.conns.get_mut(&self.id) else {
            return false;
        };
        if let Some(old) = c.idle_since.take() {
            t.idle.remove(&(old, self.id));
        }
        true
    }

    /// Completes when the connection is closed to make room for a new one.
    pub(super) async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(max_connections: u32, max_per_client: u32) -> TcpLimits {
        TcpLimits {
            max_connections,
            max_per_client,
            ..TcpLimits::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_networks_are_slash_24_and_slash_56() {
        assert_eq!(Net::of(ip("192.0.2.1")), Net::of(ip("192.0.2.254")));
        assert_ne!(Net::of(ip("192.0.2.1")), Net::of(ip("192.0.3.1")));
        assert_eq!(Net::of(ip("::ffff:192.0.2.9")), Net::of(ip("192.0.2.1")));
        assert_eq!(
            Net::of(ip("2001:db8:0:ff::1")),
            Net::of(ip("2001:db8:0:0::2"))
        );
        assert_ne!(Net::of(ip("2001:db8:0:100::1")), Net::of(ip("2001:db8::1")));
    }

    #[test]
    fn one_network_is_held_to_max_per_client() {
        let table = Arc::new(Table::default());
        let l = limits(8, 2);
        let now = Instant::now();
        let a = table.admit(ip("192.0.2.1"), &l, now).unwrap();
        let _b = table.admit(ip("192.0.2.2"), &l, now).unwrap();
        let refused = table.admit(ip("192.0.2.3"), &l, now).unwrap_err();
        assert_eq!(refused, Refused::PerClient);
        // Another network is not affected.
        let _c = table.admit(ip("192.0.3.1"), &l, now).unwrap();
        // A slot given back is free again.
        drop(a);
        assert!(table.admit(ip("192.0.2.3"), &l, now).is_ok());
    }

    #[test]
    fn a_full_table_closes_the_connection_idle_the_longest() {
        let table = Arc::new(Table::default());
        let l = limits(3, 3);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (a, _) = table.admit(ip("192.0.2.1"), &l, at(0)).unwrap();
        let (b, _) = table.admit(ip("192.0.2.2"), &l, at(1)).unwrap();
        let (c, _) = table.admit(ip("198.51.100.1"), &l, at(2)).unwrap();
        // a answers a query and waits again: b is now the one idle the longest.
        assert!(a.busy() && a.idle(at(10)));
        let (d, closed) = table.admit(ip("203.0.113.1"), &l, at(11)).unwrap();
        assert_eq!((closed, table.len()), (1, 3));
        assert!(!b.busy(), "b was closed to make room");
        assert!(a.busy() && c.busy());
        // Busy connections are never closed: only d is idle.
        let (e, closed) = table.admit(ip("203.0.113.2"), &l, at(12)).unwrap();
        assert_eq!(closed, 1);
        assert!(!d.idle(at(13)));
        assert!(e.busy());
        // With every connection busy a newcomer is turned away.
        let refused = table.admit(ip("203.0.113.3"), &l, at(14));
        assert!(matches!(refused, Err(Refused::AllBusy)));
        drop(b);
        assert_eq!(
            table.len(),
            3,
            "dropping a closed ticket frees nothing twice"
        );
    }

    #[test]
    fn a_lowered_max_connections_closes_idle_ones_down_to_it() {
        let table = Arc::new(Table::default());
        let now = Instant::now();
        let held: Vec<_> = (1..=4)
            .map(|i| table.admit(ip(&format!("192.0.{i}.1")), &limits(4, 4), now))
            .collect();
        assert!(held.iter().all(Result::is_ok));
        let (_new, closed) = table.admit(ip("192.0.9.1"), &limits(2, 4), now).unwrap();
        assert_eq!((closed, table.len()), (3, 2));
    }

    #[tokio::test]
    async fn closing_to_make_room_wakes_the_connection() {
        let table = Arc::new(Table::default());
        let l = limits(1, 1);
        let (old, _) = table.admit(ip("192.0.2.1"), &l, Instant::now()).unwrap();
        let _new = table.admit(ip("192.0.3.1"), &l, Instant::now()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), old.closed())
            .await
            .expect("woken");
    }
}
