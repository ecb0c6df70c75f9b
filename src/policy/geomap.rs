//! A geo record's rules compiled against the GeoIP database when the snapshot loads (as
//! gdnsd does): a binary tree over each address family whose leaves say which rule
//! decides ([`Outcome`]), with neighbouring networks that get the same outcome merged.
//! A query is then one short walk — no database lookup, no decoding, no cache — and the
//! depth of the leaf is the ECS scope: the widest network around the client that gets
//! the same answer, which is never longer than the database network and may be much
//! shorter (resolvers then cache one answer for all of it).

use std::collections::HashMap;
use std::net::IpAddr;

use super::Ranking;
use super::geo::{Outcome, outcome, ranking};
use crate::geo::{Code, GeoDb, Location};
use crate::model::GeoRules;

/// The most tree nodes one family of one record may take (8 bytes each): beyond it the
/// record keeps ranking through the GeoIP lookup.
const MAX_NODES: usize = 4 << 20;

/// A record's rules over the whole address space.
#[derive(Debug)]
pub struct GeoMap {
    v4: Tree,
    v6: Tree,
}

impl GeoMap {
    /// Compiles `rules` against the database's [`Places`]; `Err` says why not (the
    /// record then ranks each query through the GeoIP lookup, as without a map).
    pub fn build(places: &Places, rules: &GeoRules) -> Result<GeoMap, String> {
        Ok(GeoMap {
            v4: Tree::build(&spans(places, rules, false)?, 32)?,
            v6: Tree::build(&spans(places, rules, true)?, 128)?,
        })
    }

    /// The ranking for a client address, with its scope.
    pub fn rank(&self, rules: &GeoRules, addr: IpAddr) -> Ranking {
        let (o, depth) = match addr.to_canonical() {
            IpAddr::V4(a) => self.v4.lookup(u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a), 128),
        };
        ranking(rules, o, depth)
    }

    /// Tree nodes (IPv4, IPv6), for logs and tests.
    pub fn nodes(&self) -> (usize, usize) {
        (self.v4.nodes.len(), self.v6.nodes.len())
    }
}

/// The database's networks by what geo rules can look at (continent, country,
/// subdivision), neighbours with the same place merged: one walk of the database per
/// load, shared by the rules of every record. Walking and decoding the database is most
/// of a compilation (about three quarters, by perf, with a City database); each record's
/// rules then only map places to outcomes.
#[derive(Debug)]
pub struct Places {
    /// Each distinct place once, as a location with only those three fields set.
    places: Vec<Location>,
    v4: Result<Vec<(u128, u32)>, String>,
    v6: Result<Vec<(u128, u32)>, String>,
}

impl Places {
    /// Walks `db` once per address family.
    pub fn build(db: &GeoDb) -> Places {
        let mut interned: HashMap<PlaceKey, u32> = HashMap::new();
        let mut places = Vec::new();
        let mut place = |loc: &Location| {
            let key = (loc.continent, loc.country, loc.subdivision);
            *interned.entry(key).or_insert_with(|| {
                places.push(Location {
                    continent: key.0,
                    country: key.1,
                    subdivision: key.2,
                    ..Location::default()
                });
                (places.len() - 1) as u32
            })
        };
        let v4 = family(db, false, &mut place);
        let v6 = family(db, true, &mut place);
        Places { places, v4, v6 }
    }

    /// Distinct places and merged spans (IPv4, IPv6), for logs and tests.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let len = |f: &Result<Vec<_>, _>| f.as_ref().map_or(0, Vec::len);
        (self.places.len(), len(&self.v4), len(&self.v6))
    }
}

/// What geo rules look at: continent, country, subdivision.
type PlaceKey = (Option<Code>, Option<Code>, Option<Code>);

/// `(first address, place)` of one family, sorted, covering it from 0, neighbours
/// different; `Err` when the database's networks leave gaps.
fn family(
    db: &GeoDb,
    v6: bool,
    place: &mut impl FnMut(&Location) -> u32,
) -> Result<Vec<(u128, u32)>, String> {
    let width: u32 = if v6 { 128 } else { 32 };
    let mut spans: Vec<(u128, u32)> = Vec::new();
    let mut next: u128 = 0;
    let mut gap = false;
    db.networks(v6, &mut *place, |start, prefix, p| {
        gap |= start != next;
        let size = 1u128.checked_shl(width - u32::from(prefix.min(width as u8)));
        next = size.map_or(0, |s| start.wrapping_add(s));
        if spans.last().is_none_or(|&(_, last)| last != p) {
            spans.push((start, p));
        }
    })?;
    if spans.is_empty() {
        // No networks of this family (an IPv4-only database asked for IPv6): every
        // client is "not in the database".
        spans.push((0, place(&Location::default())));
    } else if gap || next != end_after(width) {
        return Err("the database's networks do not tile the address space".into());
    }
    Ok(spans)
}

/// Outcomes by address: `(first address, outcome)`, sorted, covering the family from 0,
/// neighbours different.
fn spans(places: &Places, rules: &GeoRules, v6: bool) -> Result<Vec<(u128, Outcome)>, String> {
    let width: u32 = if v6 { 128 } else { 32 };
    let by_place: Vec<Outcome> = places
        .places
        .iter()
        .map(|loc| outcome(rules, None, loc))
        .collect();
    let family = if v6 { &places.v6 } else { &places.v4 };
    let mut spans: Vec<(u128, Outcome)> = Vec::new();
    for &(start, p) in family.as_ref().map_err(Clone::clone)? {
        let o = by_place[p as usize];
        if spans.last().is_none_or(|&(_, last)| last != o) {
            spans.push((start, o));
        }
    }
    // cidr rules override the location, the longest prefix winning: lay the shorter
    // ones down first.
    let mut cidr: Vec<_> = rules.cidr.iter().enumerate().collect();
    cidr.sort_by_key(|(_, (net, _))| net.prefix_len());
    for (i, (net, _)) in cidr {
        let (first, last) = match (net, v6) {
            (ipnet::IpNet::V4(n), false) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            (ipnet::IpNet::V6(n), true) => (u128::from(n.network()), u128::from(n.broadcast())),
            _ => continue,
        };
        overlay(&mut spans, first, last, Outcome::Cidr(i as u16), width);
    }
    spans.dedup_by(|b, a| a.1 == b.1);
    Ok(spans)
}

/// The address after the family's last one (0 for IPv6, where it wraps).
fn end_after(width: u32) -> u128 {
    1u128.checked_shl(width).unwrap_or(0)
}

/// Gives `first..=last` the outcome `o`.
fn overlay(spans: &mut Vec<(u128, Outcome)>, first: u128, last: u128, o: Outcome, width: u32) {
    let max = end_after(width).wrapping_sub(1);
    let after = (last < max).then(|| (last + 1, at(spans, last + 1)));
    spans.retain(|&(start, _)| start < first || start > last);
    let pos = spans.partition_point(|&(start, _)| start < first);
    spans.insert(pos, (first, o));
    if let Some((a, ao)) = after {
        if spans.get(pos + 1).map(|s| s.0) != Some(a) {
            spans.insert(pos + 1, (a, ao));
        }
    }
}

/// The outcome of the span holding `addr`.
fn at(spans: &[(u128, Outcome)], addr: u128) -> Outcome {
    let i = spans.partition_point(|&(start, _)| start <= addr);
    spans[i.saturating_sub(1)].1
}

/// A binary tree: node `i` has two children, each either another node or a leaf
/// (`LEAF` set, the outcome's code below it). The root is node 0, unless the whole
/// family has one outcome (`root_leaf`). `top` skips the first 8 levels: by the first
/// byte of the address, the node at depth 8, or the leaf met before it with its depth.
#[derive(Debug)]
struct Tree {
    nodes: Vec<[u32; 2]>,
    root_leaf: Option<u32>,
    top: Vec<u32>,
}

const LEAF: u32 = 1 << 31;

fn encode(o: Outcome) -> u32 {
    match o {
        Outcome::Fallback => 0,
        Outcome::Cidr(i) => 1 << 16 | u32::from(i),
        Outcome::Subdivision(i) => 2 << 16 | u32::from(i),
        Outcome::Country(i) => 3 << 16 | u32::from(i),
        Outcome::Continent(i) => 4 << 16 | u32::from(i),
    }
}

/// Where a `top` entry keeps the depth of a leaf (at most 8).
const DEPTH_SHIFT: u32 = 24;

fn decode(v: u32) -> Outcome {
    let i = (v & 0xFFFF) as u16;
    match (v >> 16) & 0xFF {
        1 => Outcome::Cidr(i),
        2 => Outcome::Subdivision(i),
        3 => Outcome::Country(i),
        4 => Outcome::Continent(i),
        _ => Outcome::Fallback,
    }
}

impl Tree {
    fn build(spans: &[(u128, Outcome)], width: u32) -> Result<Tree, String> {
        let mut t = Tree {
            nodes: Vec::new(),
            root_leaf: None,
            top: Vec::new(),
        };
        match t.node(spans, 0, 0, width)? {
            v if v & LEAF != 0 => t.root_leaf = Some(v),
            _ => t.top = (0..256).map(|byte| t.descend(byte)).collect(),
        }
        Ok(t)
    }

    /// The child value for the network `first`/`depth`: a leaf when one span covers it,
    /// else a new node.
    fn node(
        &mut self,
        spans: &[(u128, Outcome)],
        first: u128,
        depth: u32,
        width: u32,
    ) -> Result<u32, String> {
        let i = spans.partition_point(|&(start, _)| start <= first) - 1;
        let span = width - depth;
        let last = if span >= 128 {
            u128::MAX
        } else {
            first + ((1u128 << span) - 1)
        };
        let ends_after = spans.get(i + 1).is_none_or(|&(next, _)| next > last);
        if ends_after {
            return Ok(LEAF | encode(spans[i].1));
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(format!("more than {MAX_NODES} tree nodes"));
        }
        let at = self.nodes.len();
        self.nodes.push([0, 0]);
        let half = 1u128 << (width - depth - 1);
        let left = self.node(spans, first, depth + 1, width)?;
        let right = self.node(spans, first | half, depth + 1, width)?;
        self.nodes[at] = [left, right];
        Ok(at as u32)
    }

    /// The `top` entry for a first byte: 8 levels down from the root.
    fn descend(&self, byte: u32) -> u32 {
        let mut node = 0usize;
        for depth in 0..8 {
            let next = self.nodes[node][((byte >> (7 - depth)) & 1) as usize];
            if next & LEAF != 0 {
                return next | (depth + 1) << DEPTH_SHIFT;
            }
            node = next as usize;
        }
        node as u32
    }

    /// The outcome for `addr` (the low `width` bits) and the depth of its leaf.
    fn lookup(&self, addr: u128, width: u32) -> (Outcome, u8) {
        if let Some(v) = self.root_leaf {
            return (decode(v), 0);
        }
        // IPv4 walks with 32-bit shifts: the everyday case, kept cheap.
        if width == 32 {
            let addr = addr as u32;
            return self.walk(32, addr >> 24, |depth| (addr >> (31 - depth)) & 1);
        }
        let first = (addr >> (width - 8)) as u32 & 0xFF;
        self.walk(width, first, |depth| {
            ((addr >> (width - 1 - depth)) & 1) as u32
        })
    }

    fn walk(&self, width: u32, first: u32, bit: impl Fn(u32) -> u32) -> (Outcome, u8) {
        let Some(&entry) = self.top.get(first as usize) else {
            return (Outcome::Fallback, 0);
        };
        if entry & LEAF != 0 {
            return (decode(entry), (entry >> DEPTH_SHIFT & 0xF) as u8);
        }
        let mut node = entry as usize;
        for depth in 8..width {
            let Some(children) = self.nodes.get(node) else {
                break;
            };
            let next = children[(bit(depth) & 1) as usize];
            if next & LEAF != 0 {
                return (decode(next), (depth + 1) as u8);
            }
            node = next as usize;
        }
        (Outcome::Fallback, width as u8)
    }
}

#[cfg(test)]
mod tests;
