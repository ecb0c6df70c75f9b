//! EDNS Client Subnet options as sent: which ones RFC 7871 rejects, read from the raw
//! query. hickory-proto decodes an ECS option leniently (it reads the ADDRESS octets the
//! SOURCE PREFIX-LENGTH needs and ignores any more, and keeps bits past the prefix), so
//! the check looks at the bytes themselves.
//!
//! RFC 7871 §6: "A server receiving an ECS option that uses either too few or too many
//! ADDRESS octets, or that has non-zero ADDRESS bits set beyond SOURCE PREFIX-LENGTH,
//! SHOULD return FORMERR to reject the packet"; §7.2.1: "A query with a wrongly formatted
//! option (e.g., an unknown FAMILY) MUST be rejected and a FORMERR response MUST be
//! returned to the sender, as described by [RFC6891]". RFC 6891 §7: a responder that
//! got an OPT record includes one in its reply. So the FORMERR carries our OPT, without
//! the ECS option: the option was refused, not used, and echoing malformed bytes would
//! hand the client back the very thing it has to fix. Every option that is accepted has
//! exactly the octets its prefix needs and no bits past it, so the echo of an answered
//! query copies FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as sent (§7.2.1).
//!
//! A non-zero SCOPE PREFIX-LENGTH in a query ("In queries, it MUST be set to 0", §6) is
//! not rejected: the RFC asks no FORMERR for it, and the reply sets its own scope.

use crate::pipeline::Edns;

/// The ECS option code (RFC 7871 §6).
const ECS: u16 = 8;

/// True when an ECS option's data (FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH,
/// ADDRESS) is well formed: a known family, a prefix that fits it, exactly the ADDRESS
/// octets the prefix needs, and no bits set past the prefix.
pub fn well_formed(data: &[u8]) -> bool {
    let (Some(family), Some(&source), Some(addr)) = (
        data.get(..2).map(|f| u16::from_be_bytes([f[0], f[1]])),
        data.get(2),
        data.get(4..),
    ) else {
        return false;
    };
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return false,
    };
    if source > max || addr.len() != usize::from(source).div_ceil(8) {
        return false;
    }
    // The bits of the last octet past the prefix (none when the prefix ends on an octet
    // boundary).
    let spare = (8 - source % 8) % 8;
    addr.last()
        .is_none_or(|&last| last & ((1u16 << spare) - 1) as u8 == 0)
}

/// When the query `msg` has an OPT record of version 0 with an ECS option that is not
/// [`well_formed`]: what that OPT says, without the option, for the FORMERR reply. `None`
/// for a query whose OPT cannot be found (it is malformed in other ways, handled
/// elsewhere), has a version above 0 (BADVERS comes first, RFC 6891 §6.1.3), or whose
/// ECS options are all well formed.
pub fn rejected(msg: &[u8]) -> Option<Edns> {
    let word = |at: usize| -> Option<u16> {
        let b = msg.get(at..at + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    let (qd, an, ns, ar) = (word(4)?, word(6)?, word(8)?, word(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    for _ in 0..u32::from(an) + u32::from(ns) {
        at = skip_name(msg, at)?;
        at += 10 + usize::from(word(at + 8)?);
    }
    for _ in 0..ar {
        at = skip_name(msg, at)?;
        let (rtype, class) = (word(at)?, word(at + 2)?);
        let ttl = msg.get(at + 4..at + 8)?;
        let len = usize::from(word(at + 8)?);
        let rdata = msg.get(at + 10..at + 10 + len)?;
        at += 10 + len;
        if rtype != 41 {
            continue;
        }
        if ttl[1] != 0 {
            return None;
        }
        let bad = options(rdata).any(|(code, data)| code == ECS && !well_formed(data));
        return bad.then_some(Edns {
            payload: class,
            dnssec_ok: ttl[2] & 0x80 != 0,
            compact_ok: ttl[2] & 0x40 != 0,
            ecs: None,
        });
    }
    None
}

/// The (code, data) of each option in OPT RDATA, up to the first that runs past it.
fn options(mut rdata: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let head = rdata.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = rdata.get(4..4 + len)?;
        rdata = &rdata[4 + len..];
        Some((code, data))
    })
}

/// Where the name at `at` ends (after its root label or its compression pointer).
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            0xC0.. => return msg.get(at + 1).map(|_| at + 2),
            64.. => return None, // extended label types: not a name we read
            _ => at += 1 + usize::from(len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ecs(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
        let mut d = family.to_be_bytes().to_vec();
        d.extend([source, scope]);
        d.extend(addr);
        d
    }

    #[test]
    fn well_formed_follows_rfc_7871_section_6() {
        assert!(well_formed(&ecs(1, 24, 0, &[81, 2, 69])));
        assert!(well_formed(&ecs(1, 22, 0, &[81, 2, 68])));
        assert!(well_formed(&ecs(1, 0, 0, &[])));
        assert!(well_formed(&ecs(1, 32, 0, &[1, 2, 3, 4])));
        assert!(well_formed(&ecs(
            2,
            56,
            0,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0x12]
        )));
        assert!(
            well_formed(&ecs(1, 24, 7, &[81, 2, 69])),
            "scope is not judged"
        );
        // Bits past the prefix.
        assert!(!well_formed(&ecs(1, 22, 0, &[81, 2, 69])));
        assert!(!well_formed(&ecs(1, 1, 0, &[0xC0])));
        // Too many or too few ADDRESS octets.
        assert!(!well_formed(&ecs(1, 24, 0, &[81, 2, 69, 0])));
        assert!(!well_formed(&ecs(1, 24, 0, &[81, 2])));
        assert!(!well_formed(&ecs(1, 0, 0, &[0])));
        // Unknown family, prefix longer than the family, short option.
        assert!(!well_formed(&ecs(3, 24, 0, &[81, 2, 69])));
        assert!(!well_formed(&ecs(1, 33, 0, &[1, 2, 3, 4, 5])));
        assert!(!well_formed(&ecs(2, 129, 0, &[0; 17])));
        assert!(!well_formed(&[0, 1, 24]));
    }

    /// A query for `a.` with an OPT of `version` holding `options`.
    fn query(version: u8, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0xBE, 0xEF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend([1, b'a', 0, 0, 1, 0, 1]);
        let rdata: Vec<u8> = (options.iter())
            .flat_map(|(code, data)| {
                let mut o = code.to_be_bytes().to_vec();
                o.extend((data.len() as u16).to_be_bytes());
                o.extend(data);
                o
            })
            .collect();
        m.extend([0, 0, 41, 0x04, 0xD0, 0, version, 0x80, 0]);
        m.extend((rdata.len() as u16).to_be_bytes());
        m.extend(rdata);
        m
    }

    #[test]
    fn rejected_finds_the_option_in_the_raw_query() {
        let good = ecs(1, 24, 0, &[81, 2, 69]);
        let bad = ecs(1, 24, 0, &[81, 2, 69, 7]);
        assert_eq!(rejected(&query(0, &[(ECS, good.clone())])), None);
        assert_eq!(rejected(&query(0, &[(10, vec![1; 8])])), None);
        let got = rejected(&query(0, &[(10, vec![1; 8]), (ECS, bad.clone())]));
        assert_eq!(
            got,
            Some(Edns {
                payload: 1232,
                dnssec_ok: true,
                compact_ok: false,
                ecs: None
            })
        );
        // EDNS version 1: BADVERS, whatever its options.
        assert_eq!(rejected(&query(1, &[(ECS, bad.clone())])), None);
        // No OPT, or a message cut short: nothing found.
        let m = query(0, &[(ECS, bad)]);
        assert_eq!(rejected(&m[..12 + 7]), None);
        assert_eq!(rejected(&m[..m.len() - 1]), None);
    }
}
