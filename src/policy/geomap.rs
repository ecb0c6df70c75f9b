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
    /// The IPv4 tree without the IPv4 cidr rules, when there are any, for the aliases of
    /// the IPv4 tree inside IPv6 (`2002::/16` and the like): a lookup there does not see
    /// IPv4 cidr rules either, as the client's address is IPv6.
    v4_plain: Option<Tree>,
    v6: Tree,
}

impl GeoMap {
    /// Compiles `rules` against the database's [`Places`]; `Err` says why not (the
    /// record then ranks each query through the GeoIP lookup, as without a map).
    pub fn build(places: &Places, rules: &GeoRules) -> Result<GeoMap, String> {
        let v4_cidr = rules
            .cidr
            .iter()
            .any(|(net, _)| matches!(net, ipnet::IpNet::V4(_)));
        Ok(GeoMap {
            v4: Tree::build(&spans(places, rules, false, true)?, 32)?,
            v4_plain: match v4_cidr {
                true => Some(Tree::build(&spans(places, rules, false, false)?, 32)?),
                false => None,
            },
            v6: Tree::build(&spans(places, rules, true, true)?, 128)?,
        })
    }

    /// The ranking for a client address, with its scope.
    pub fn rank(&self, rules: &GeoRules, addr: IpAddr) -> Ranking {
        let (code, depth) = match addr.to_canonical() {
            IpAddr::V4(a) => self.v4.lookup(u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => {
                let a = u128::from(a);
                let (code, depth) = self.v6.lookup(a, 128);
                if code & KIND != ALIAS_LEAF {
                    (code, depth)
                } else {
                    // An alias of the IPv4 tree: the 32 bits after its prefix.
                    let len = (code & 0xFF).min(96);
                    let v4 = (a >> (96 - len)) as u32;
                    let tree = self.v4_plain.as_ref().unwrap_or(&self.v4);
                    let (code, d) = tree.lookup(u128::from(v4), 32);
                    (code, depth.max(len as u8 + d))
                }
            }
        };
        ranking(rules, decode(code), depth)
    }

    /// Tree nodes (IPv4 with and without cidr rules, IPv6), for logs and tests.
    pub fn nodes(&self) -> (usize, usize) {
        let plain = self.v4_plain.as_ref().map_or(0, |t| t.nodes.len());
        (self.v4.nodes.len() + plain, self.v6.nodes.len())
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

/// A span that is an alias of the IPv4 tree (in place of a place id, with its prefix
/// length): below it, the 32 bits after the prefix are an IPv4 address, as in the
/// database's tree.
const ALIAS: u32 = 1 << 31;

/// `(first address, place)` of one family, sorted, covering it from 0, neighbours
/// different; `Err` when the database's networks leave gaps. In IPv6 the database's
/// aliases of its IPv4 tree (the gaps [`GeoDb::networks`] leaves), and `::/96` where
/// that tree itself sits, become [`ALIAS`] spans: a lookup there continues in the IPv4
/// tree, which is then compiled once instead of four times.
fn family(
    db: &GeoDb,
    v6: bool,
    place: &mut impl FnMut(&Location) -> u32,
) -> Result<Vec<(u128, u32)>, String> {
    let width: u32 = if v6 { 128 } else { 32 };
    let mut spans: Vec<(u128, u32)> = Vec::new();
    let mut gap = false;
    let mut next: u128 = 0;
    let push = |spans: &mut Vec<(u128, u32)>, start, p| {
        if spans.last().is_none_or(|&(_, last)| last != p) {
            spans.push((start, p));
        }
    };
    let aliases = |spans: &mut Vec<(u128, u32)>, first, end| {
        for (net, len) in prefixes(first, end) {
            push(spans, net, ALIAS | len);
        }
    };
    db.networks(v6, &mut *place, |start, prefix, p| {
        if v6 && prefix >= 96 && start >> 32 == 0 {
            return; // the IPv4 tree, at ::/96
        }
        if start != next {
            gap = true;
            aliases(&mut spans, next, start);
        }
        let size = 1u128.checked_shl(width - u32::from(prefix.min(width as u8)));
        next = size.map_or(0, |s| start.wrapping_add(s));
        push(&mut spans, start, p);
    })?;
    if spans.is_empty() {
        // No networks of this family (an IPv4-only database asked for IPv6): every
        // client is "not in the database".
        spans.push((0, place(&Location::default())));
        return Ok(spans);
    }
    if next != end_after(width) {
        gap = true;
        aliases(&mut spans, next, end_after(width));
    }
    if gap && !v6 {
        return Err("the database's networks do not tile the address space".into());
    }
    check_aliases(db, &spans)?;
    Ok(spans)
}

/// The aligned IPv6 networks that make up `first..end` (`end` 0: up to the top of
/// the space), as (address, prefix length).
fn prefixes(mut first: u128, end: u128) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    while first != end {
        let left = end.wrapping_sub(first);
        // The largest block aligned at `first` that fits in what is left.
        let bits = first.trailing_zeros().min(127 - left.leading_zeros());
        out.push((first, 128 - bits));
        first = first.wrapping_add(1 << bits);
    }
    out
}

/// Checks that each alias span answers as the database does: a few addresses in it
/// must be located as the IPv4 address after its prefix. A gap that is not an alias
/// would be a database we do not understand: the record then keeps its lookups.
fn check_aliases(db: &GeoDb, spans: &[(u128, u32)]) -> Result<(), String> {
    let key = |l: &Location| (l.continent, l.country, l.subdivision);
    for &(start, code) in spans.iter().filter(|(_, c)| c & ALIAS != 0) {
        let len = code & !ALIAS;
        if len > 96 {
            return Err(format!("a gap in the IPv6 networks at {start:#x}/{len}"));
        }
        for i in 0..16u32 {
            // From the start of the alias into its IPv4 part, spread by the 32 bits after
            // the prefix.
            let v4 = i.wrapping_mul(0x1000_0001) ^ i.rotate_left(19);
            let addr = start | u128::from(v4) << (96 - len);
            let as_v6 = db.locate(IpAddr::V6(addr.into()));
            let as_v4 = db.locate(IpAddr::V4(v4.into()));
            if key(&as_v6) != key(&as_v4) {
                return Err(format!(
                    "{} is not located as {}: a gap in the IPv6 networks that is not an alias of the IPv4 tree",
                    std::net::Ipv6Addr::from(addr),
                    std::net::Ipv4Addr::from(v4)
                ));
            }
        }
    }
    Ok(())
}

/// Leaf codes by address: `(first address, code)`, sorted, covering the family from 0,
/// neighbours different. A code is an [`Outcome`] ([`encode`]) or an alias of the IPv4
/// tree ([`ALIAS`] and its prefix length).
fn spans(
    places: &Places,
    rules: &GeoRules,
    v6: bool,
    with_cidr: bool,
) -> Result<Vec<(u128, u32)>, String> {
    let width: u32 = if v6 { 128 } else { 32 };
    let by_place: Vec<u32> = places
        .places
        .iter()
        .map(|loc| encode(outcome(rules, None, loc)))
        .collect();
    let family = if v6 { &places.v6 } else { &places.v4 };
    let mut spans: Vec<(u128, u32)> = Vec::new();
    for &(start, p) in family.as_ref().map_err(Clone::clone)? {
        let code = if p & ALIAS != 0 {
            ALIAS_LEAF | (p & !ALIAS)
        } else {
            by_place[p as usize]
        };
        if spans.last().is_none_or(|&(_, last)| last != code) {
            spans.push((start, code));
        }
    }
    // cidr rules override the location, the longest prefix winning: lay the shorter
    // ones down first.
    let mut cidr: Vec<_> = rules.cidr.iter().enumerate().collect();
    cidr.sort_by_key(|(_, (net, _))| net.prefix_len());
    for (i, (net, _)) in cidr.into_iter().filter(|_| with_cidr) {
        let (first, last) = match (net, v6) {
            (ipnet::IpNet::V4(n), false) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            (ipnet::IpNet::V6(n), true) => (u128::from(n.network()), u128::from(n.broadcast())),
            _ => continue,
        };
        overlay(
            &mut spans,
            first,
            last,
            encode(Outcome::Cidr(i as u16)),
            width,
        );
    }
    spans.dedup_by(|b, a| a.1 == b.1);
    Ok(spans)
}

/// The address after the family's last one (0 for IPv6, where it wraps).
fn end_after(width: u32) -> u128 {
    1u128.checked_shl(width).unwrap_or(0)
}

/// Gives `first..=last` the code `o`.
fn overlay(spans: &mut Vec<(u128, u32)>, first: u128, last: u128, o: u32, width: u32) {
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

/// The code of the span holding `addr`.
fn at(spans: &[(u128, u32)], addr: u128) -> u32 {
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
/// The kind of a leaf code ([`encode`]), and the kind of an alias of the IPv4 tree, with
/// the alias's prefix length below it.
const KIND: u32 = 0xFF << 16;
const ALIAS_LEAF: u32 = 5 << 16;
/// A leaf code without the `top` depth.
const CODE: u32 = 0x00FF_FFFF;

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
    fn build(spans: &[(u128, u32)], width: u32) -> Result<Tree, String> {
        let mut t = Tree {
            nodes: Vec::new(),
            root_leaf: None,
            top: Vec::new(),
        };
        match t.node(spans, 0, 0, width)? {
            v if v & LEAF != 0 => t.root_leaf = Some(v),
            _ => t.top = (0..256).map(|byte| t.descend(byte)).collect(),
        }
        t.nodes.shrink_to_fit();
        Ok(t)
    }

    /// The child value for the network `first`/`depth`: a leaf when one span covers it,
    /// else a new node.
    fn node(
        &mut self,
        spans: &[(u128, u32)],
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
            return Ok(LEAF | spans[i].1);
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

    /// The leaf code for `addr` (the low `width` bits) and the depth of its leaf.
    fn lookup(&self, addr: u128, width: u32) -> (u32, u8) {
        if let Some(v) = self.root_leaf {
            return (v & !LEAF, 0);
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

    fn walk(&self, width: u32, first: u32, bit: impl Fn(u32) -> u32) -> (u32, u8) {
        let fallback = encode(Outcome::Fallback);
        let Some(&entry) = self.top.get(first as usize) else {
            return (fallback, 0);
        };
        if entry & LEAF != 0 {
            return (entry & CODE, (entry >> DEPTH_SHIFT & 0xF) as u8);
        }
        let mut node = entry as usize;
        for depth in 8..width {
            let Some(children) = self.nodes.get(node) else {
                break;
            };
            let next = children[(bit(depth) & 1) as usize];
            if next & LEAF != 0 {
                return (next & !LEAF, (depth + 1) as u8);
            }
            node = next as usize;
        }
        (fallback, width as u8)
    }
}

#[cfg(test)]
mod tests;
