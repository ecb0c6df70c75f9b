//! Pure checks of the little languages inside config strings: DNS names, location codes,
//! networks, probe URLs and `host:port` targets. Each returns the message to report, so
//! they are tested without a config file around them.

use std::net::Ipv6Addr;

use ipnet::IpNet;

/// The continent codes GeoIP databases use.
pub(crate) const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Checks a dynamic record name; returns it lower-cased with the trailing dot.
pub(crate) fn dns_name(name: &str) -> Result<String, String> {
    let bad = |why: String| Err(format!("\"{name}\" is not a valid DNS name: {why}"));
    let lower = name.to_ascii_lowercase();
    let body = lower.strip_suffix('.').unwrap_or(&lower);
    if body.is_empty() {
        return bad("it has no labels".into());
    }
    // RFC 1035 section 2.3.4: 255 octets on the wire is 253 characters without the root dot.
    if body.len() > 253 {
        return bad(format!(
            "it is {} characters long (at most 253)",
            body.len()
        ));
    }
    for (i, label) in body.split('.').enumerate() {
        if label.is_empty() {
            return bad("it has an empty label".into());
        }
        if label == "*" {
            if i == 0 {
                continue;
            }
            return bad("`*` is only allowed as the first label".into());
        }
        if label.len() > 63 {
            return bad(format!(
                "label \"{label}\" is {} characters long (at most 63)",
                label.len()
            ));
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if !label.bytes().all(ok) {
            return bad(format!(
                "label \"{label}\" may only contain letters, digits, '-' and '_'"
            ));
        }
    }
    Ok(format!("{body}."))
}

/// Checks a region name (it appears in metrics and admin URLs).
pub(crate) fn region_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("region names must not be empty".into());
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if !name.bytes().all(ok) {
        return Err(format!(
            "region name \"{name}\" may only contain ASCII letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// Checks a continent code.
pub(crate) fn continent(code: &str) -> Result<(), String> {
    if CONTINENTS.contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "\"{code}\" is not a continent code (expected one of {})",
            CONTINENTS.join(", ")
        ))
    }
}

/// Checks an ISO 3166-1 alpha-2 country code.
pub(crate) fn country(code: &str) -> Result<(), String> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "\"{code}\" is not a country code (expected two upper-case letters, e.g. \"JP\")"
        ))
    }
}

/// Checks an ISO 3166-2 subdivision code, `CC-SUB`.
pub(crate) fn subdivision(code: &str) -> Result<(), String> {
    let ok = code.split_once('-').is_some_and(|(cc, sub)| {
        country(cc).is_ok()
            && (1..=3).contains(&sub.len())
            && sub
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{code}\" is not a subdivision code (expected country-subdivision in upper case, e.g. \"US-CA\")"
        ))
    }
}

/// Parses a client network; host bits must be clear, since a rule written with them set
/// would silently match a different network than the one the operator had in mind.
pub(crate) fn network(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text.parse().map_err(|_| {
        format!(
            "\"{text}\" is not a network (expected e.g. \"203.0.113.0/24\" or \"2001:db8::/32\")"
        )
    })?;
    if net.trunc() != net {
        return Err(format!(
            "{text} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Checks a probe URL: `http://` or `https://` with a host, `{address}` allowed as host.
pub(crate) fn http_url(url: &str) -> Result<(), String> {
    let rest = strip_prefix_ignore_case(url, "http://")
        .or_else(|| strip_prefix_ignore_case(url, "https://"))
        .ok_or_else(|| format!("\"{url}\" is not an http:// or https:// URL"))?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(format!(
            "\"{url}\": credentials in probe URLs are not supported"
        ));
    }
    let (host, port) = split_host_port(authority);
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    check_host(host).map_err(|why| format!("\"{url}\": {why}"))?;
    if let Some(port) = port {
        check_port(port).map_err(|why| format!("\"{url}\": {why}"))?;
    }
    Ok(())
}

/// Checks a TCP probe target: `host:port`, `[IPv6]:port` or `{address}:port`.
pub(crate) fn tcp_target(target: &str) -> Result<(), String> {
    let (host, port) = split_host_port(target);
    let Some(port) = port.filter(|_| !host.is_empty()) else {
        return Err(format!(
            "\"{target}\" is not host:port, [IPv6]:port or {{address}}:port"
        ));
    };
    check_host(host).map_err(|why| format!("\"{target}\": {why}"))?;
    check_port(port).map_err(|why| format!("\"{target}\": {why}"))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits `host[:port]`, leaving a bracketed IPv6 literal whole.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if s.starts_with('[') {
        if let Some(end) = s.find(']') {
            let (host, rest) = s.split_at(end + 1);
            return match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if rest.is_empty() => (host, None),
                // Garbage after `]`: keep it in the host so the host check reports it.
                None => (s, None),
            };
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host == "{address}" {
        return Ok(());
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("\"{inner}\" is not an IPv6 address"));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if host.bytes().all(ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid host \"{host}\" (expected a name, an IPv4 address, [IPv6] or {{address}})"
        ))
    }
}

fn check_port(port: &str) -> Result<(), String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("invalid port \"{port}\" (expected 1-65535)")),
    }
}
