//! Validates `[regions.NAME]`: names, addresses, location and health probe.

use std::net::IpAddr;
use std::ops::Range;

use hickory_proto::rr::Name;

use toml::Spanned;

use super::check::{Ctx, RegionNames};
use super::keypath::join;
use super::raw::{Entries, RawLocation, RawProbe, RawRegion, Str};
use super::syntax;
use crate::model::{Coords, Defaults, Probe, ProbeTarget, Region};

/// Every region, in file order; the names (even invalid ones, so that references to them
/// are not reported twice) come back too, indexed like the regions.
pub(crate) fn regions(
    cx: &mut Ctx<'_>,
    raw: &Entries<RawRegion>,
    defaults: &Defaults,
) -> (Vec<Region>, RegionNames) {
    let mut out = Vec::new();
    for (name, region) in &raw.0 {
        let key = join("regions", name.get_ref());
        if let Err(msg) = syntax::region_name(name.get_ref()) {
            cx.error(&name.span(), &key, msg);
        }
        if out.len() == usize::from(u16::MAX) {
            cx.error(&name.span(), &key, "too many regions (at most 65535)");
            break;
        }
        out.push(one(
            cx,
            name.get_ref(),
            &name.span(),
            region,
            &key,
            defaults,
        ));
    }
    let names = RegionNames::new(out.iter().map(|r: &Region| r.name.clone()).collect());
    (out, names)
}

fn one(
    cx: &mut Ctx<'_>,
    name: &str,
    span: &Range<usize>,
    raw: &RawRegion,
    key: &str,
    defaults: &Defaults,
) -> Region {
    let mut region = Region {
        name: name.to_owned(),
        v4: Vec::new(),
        v6: Vec::new(),
        cname: None,
        location: None,
        probe: None,
    };
    let akey = join(key, "addresses");
    if let Some(c) = &raw.cname {
        region.cname = cname(cx, c, &join(key, "cname"), raw.addresses.is_some());
    }
    match &raw.addresses {
        None if raw.cname.is_some() => {}
        None => cx.error(
            span,
            key,
            "missing key \"addresses\" (or \"cname\"): a region needs at least one address, or a name to answer with",
        ),
        Some(list) if list.get_ref().is_empty() => {
            cx.error(&list.span(), &akey, "must list at least one address");
        }
        Some(list) => {
            let mut seen: Vec<IpAddr> = Vec::new();
            for item in list.get_ref() {
                match item.get_ref().parse::<IpAddr>() {
                    Err(_) => {
                        let msg = format!("\"{}\" is not an IPv4 or IPv6 address", item.get_ref());
                        cx.error(&item.span(), &akey, msg);
                    }
                    Ok(ip) if seen.contains(&ip) => {
                        cx.error(&item.span(), &akey, format!("address {ip} is listed twice"));
                    }
                    Ok(ip) => {
                        seen.push(ip);
                        match ip {
                            IpAddr::V4(a) => region.v4.push(a),
                            IpAddr::V6(a) => region.v6.push(a),
                        }
                    }
                }
            }
        }
    }
    region.location = raw
        .location
        .as_ref()
        .and_then(|l| location(cx, l.get_ref(), key));
    if let Some(p) = &raw.probe {
        let count = region.v4.len() + region.v6.len();
        region.probe = probe(cx, p, &join(key, "probe"), defaults, count);
        let templated = [&p.get_ref().url, &p.get_ref().tcp]
            .into_iter()
            .flatten()
            .any(|t| t.get_ref().contains("{address}"));
        if region.cname.is_some() && templated {
            let msg = "a cname region has no addresses to probe one by one: probe the name \
                       (or its load balancer's health endpoint) instead of {address}";
            cx.error(&p.span(), &join(key, "probe"), msg);
        }
    }
    region
}

/// `cname`: an absolute DNS name, and no `addresses` beside it.
fn cname(cx: &mut Ctx<'_>, raw: &Str, key: &str, with_addresses: bool) -> Option<Name> {
    if with_addresses {
        let msg = "a region is answered either by its addresses or by a cname, not both";
        cx.error(&raw.span(), key, msg);
        return None;
    }
    let text = raw.get_ref();
    match Name::from_ascii(text) {
        Ok(n) if n.is_fqdn() && !n.is_root() && text.ends_with('.') => Some(n),
        Ok(_) => {
            let msg = format!(
                "\"{text}\" must be an absolute name ending in a dot, e.g. \"eu-west-1.lb.cloud.example.\""
            );
            cx.error(&raw.span(), key, msg);
            None
        }
        Err(e) => {
            cx.error(
                &raw.span(),
                key,
                format!("\"{text}\" is not a valid DNS name: {e}"),
            );
            None
        }
    }
}

fn location(cx: &mut Ctx<'_>, raw: &RawLocation, key: &str) -> Option<Coords> {
    let key = join(key, "location");
    let lat = degrees(cx, &raw.lat, &join(&key, "lat"), 90.0);
    let lon = degrees(cx, &raw.lon, &join(&key, "lon"), 180.0);
    Some(Coords {
        lat: lat?,
        lon: lon?,
    })
}

fn degrees(cx: &mut Ctx<'_>, v: &Spanned<f64>, key: &str, max: f64) -> Option<f64> {
    let d = *v.get_ref();
    if d.is_finite() && (-max..=max).contains(&d) {
        Some(d)
    } else {
        cx.error(
            &v.span(),
            key,
            format!("must be between -{max} and {max} degrees, got {d}"),
        );
        None
    }
}

/// `addresses` is how many valid addresses the region has, the ceiling of `min_healthy`.
fn probe(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawProbe>,
    key: &str,
    defaults: &Defaults,
    addresses: usize,
) -> Option<Probe> {
    let span = raw.span();
    let p = raw.get_ref();
    let timing = cx.timing(
        p.interval.as_ref(),
        p.timeout.as_ref(),
        p.rise.as_ref(),
        p.fall.as_ref(),
        defaults.probe,
        key,
        &span,
    );
    let min_healthy = match &p.min_healthy {
        None => Some(1),
        Some(m) => {
            // With no valid address the address errors already say what is wrong.
            let max = i64::try_from(addresses.max(1)).unwrap_or(i64::MAX);
            let why = "at most the number of the region's addresses";
            cx.int(m, &join(key, "min_healthy"), 1..=max, why)
        }
    };
    let target = match (&p.url, &p.tcp) {
        (Some(url), None) => {
            if let Err(msg) = syntax::http_url(url.get_ref()) {
                cx.error(&url.span(), &join(key, "url"), msg);
            }
            http_target(cx, p, key, url.get_ref())?
        }
        (None, Some(tcp)) => {
            if let Err(msg) = syntax::tcp_target(tcp.get_ref()) {
                cx.error(&tcp.span(), &join(key, "tcp"), msg);
            }
            // Nothing silently ignored: HTTP-only keys on a TCP probe are mistakes.
            let http_only = [
                ("expect_status", p.expect_status.as_ref().map(Spanned::span)),
                ("expect_body", p.expect_body.as_ref().map(Spanned::span)),
                ("host", p.host.as_ref().map(Spanned::span)),
                ("insecure", p.insecure.as_ref().map(Spanned::span)),
            ];
            for (name, at) in http_only {
                if let Some(at) = at {
                    let msg = format!("{name} only applies to url probes, not tcp probes");
                    cx.error(&at, &join(key, name), msg);
                }
            }
            ProbeTarget::Tcp {
                addr: tcp.get_ref().clone(),
            }
        }
        (Some(_), Some(tcp)) => {
            let msg = "a probe has either url or tcp, not both";
            cx.error(&tcp.span(), &join(key, "tcp"), msg);
            return None;
        }
        (None, None) => {
            let msg = "a probe needs url = \"http://...\" or tcp = \"host:port\"";
            cx.error(&span, key, msg);
            return None;
        }
    };
    Some(Probe {
        target,
        timing,
        min_healthy: min_healthy?,
    })
}

fn http_target(cx: &mut Ctx<'_>, p: &RawProbe, key: &str, url: &str) -> Option<ProbeTarget> {
    let mut expect_status = vec![200];
    if let Some(list) = &p.expect_status {
        let skey = join(key, "expect_status");
        if list.get_ref().is_empty() {
            cx.error(&list.span(), &skey, "must list at least one status");
            return None;
        }
        let statuses: Vec<Option<u16>> = list
            .get_ref()
            .iter()
            .map(|s| cx.int(s, &skey, 100..=599, "an HTTP status"))
            .collect();
        expect_status = statuses.into_iter().collect::<Option<Vec<u16>>>()?;
    }
    if let Some(host) = p.host.as_ref().filter(|h| h.get_ref().trim().is_empty()) {
        cx.error(&host.span(), &join(key, "host"), "must not be empty");
    }
    Some(ProbeTarget::Http {
        url: url.to_owned(),
        expect_status,
        expect_body: p.expect_body.as_ref().map(|b| b.get_ref().clone()),
        host: p.host.as_ref().map(|h| h.get_ref().clone()),
        insecure: p.insecure.as_ref().is_some_and(|i| *i.get_ref()),
    })
}
