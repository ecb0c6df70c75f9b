//! gslbd: a global server load balancing (GSLB) authoritative DNS server.
//!
//! Operators delegate a subdomain to gslbd; for each query it answers with the virtual
//! IPs of one region, chosen by a policy from the client's location and the live health
//! of every region. Static data comes from RFC 1035 zone files.
//!
//! # One query, few hops
//!
//! ```text
//! UDP worker threads (recvmmsg batches) / TCP tasks ─► server/
//!   1 let snap = state.load();                      // ArcSwap guard: no lock
//!   2 fast::answer(bytes, snap)                     // fast/: everyday queries, from the wire
//!       query::parse -> zones.wire().lookup(key)    //   prebuilt sections | NXDOMAIN | dynamic
//!       answer::dynamic_addresses -> policy::select //   same policy code as below
//!     otherwise, the general path:
//!   3 snap.zones.resolve(qname, qtype)              // zone/: data | CNAME chain | referral
//!                                                   //        | NXDOMAIN | NODATA | dynamic name
//!   4 policy::select(model, health, record, client) // policy/: rank -> filter by health
//!                                                   //         -> when_all_down; geo records
//!                                                   //   rank by their compiled tree (geomap)
//!   5 answer::answer(..) -> Reply                   // flags, SOA, EDNS, ECS echo with scope
//!   6 answer::encode(request, reply, limit)         // TC=1 when it does not fit
//! ```
//!
//! The fast path allocates nothing (tests/alloc.rs) and gives the general path's replies
//! (src/fast/tests.rs); whatever it does not handle goes to the general path untouched.
//!
//! Config, zones and health live together in one immutable [`snapshot::Snapshot`]
//! behind an `ArcSwap`, so a query never sees an old config with new health, and a
//! reload or health change is one pointer swap.
//!
//! # Loading
//!
//! `gslb.toml` → [`config::load`] (parse, validate, collect every error with
//! file:line:col and key) → [`model::Model`]; `zones/*.zone` → [`zone::file`] →
//! [`zone::Zones::build`] (attaches dynamic names, checks clashes) → snapshot; with a
//! GeoIP database, each geo record's rules are compiled with it into a tree
//! ([`policy::geomap`]) that answers "which rule, and for how wide a network" per query.

#![warn(missing_docs, unreachable_pub, clippy::dbg_macro, clippy::print_stdout)]

pub mod admin;
pub mod answer;
pub mod config;
pub mod control;
pub mod decide;
pub mod diag;
pub mod explain;
pub mod fast;
pub mod general;
pub mod geo;
pub mod geoip_build;
pub mod health;
pub mod instance;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod policy;
pub mod rrl;
pub mod runtime;
pub mod server;
pub mod sim;
pub mod snapshot;
pub mod zone;

pub use instance::Instance;
pub use runtime::Shared;
pub use server::{Sockets, bind, run};
pub use snapshot::Snapshot;
