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
//!   let view = state.load();                        // runtime::View: snapshot + runtime,
//!                                                   //   ArcSwap guards, no lock
//!   fast::answer(bytes, view)                       // fast/: everyday queries, from the wire
//!     query::parse -> pipeline::Query               //   id, flags, EDNS, ECS
//!     zones.wire().lookup(key) -> sections          //   prebuilt | NXDOMAIN | dynamic
//!   otherwise general::answer(bytes, view)          // general.rs: hickory decode
//!     describe(request) -> pipeline::Query
//!     answer::answer -> Reply -> write -> sections  // zone/: data | CNAME | referral | ...
//!   dynamic names: decide::decide -> Choice         // policy/: rank -> filter by health
//!                                                   //   -> when_all_down (pure, no counting)
//!   pipeline::finish(query, body, view)             // every reply: truncation, RRL verdict,
//!                                                   //   OPT + ECS scope, header, counting
//! ```
//!
//! The fast path allocates nothing (tests/alloc.rs) and gives the general path's replies
//! (src/fast/tests.rs); whatever it does not handle goes to the general path untouched.
//!
//! Config, zones, GeoIP and health live together in one immutable
//! [`snapshot::Snapshot`], so a query never sees an old config with new health, and a
//! reload or health change is one pointer swap. What changes per query (counters, the
//! rate limiter's table) lives in the [`runtime::Runtime`] beside it and survives
//! reloads. [`Instance`] runs the whole server in-process: DNS, health probing
//! ([`health`]) and the admin API ([`admin`], over [`control`]).
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
pub mod cluster;
pub mod config;
pub mod control;
pub mod decide;
pub mod diag;
pub mod dnssec;
pub mod dnstap;
pub mod ecs;
pub mod explain;
pub mod fast;
pub mod files;
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
