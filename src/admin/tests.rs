//! Unit tests of `admin`.

use super::auth::constant_time_eq;
use super::*;

const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn without_a_token_only_loopback_may_mutate() {
    for peer in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(authorize(None, None, ip(peer)), Ok(()), "{peer}");
    }
    for peer in [
        "192.0.2.1",
        "10.0.0.1",
        "2001:db8::1",
        "::ffff:192.0.2.1",
        "::",
    ] {
        let (status, msg) = authorize(None, None, ip(peer)).unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN, "{peer}");
        assert!(msg.contains("admin_token"), "{msg}");
    }
    // A header is no way around the loopback rule when no token is configured.
    let err = authorize(None, Some("Bearer x"), ip("192.0.2.1")).unwrap_err();
    assert_eq!(err.0, StatusCode::FORBIDDEN);
}

#[test]
fn with_a_token_the_bearer_header_decides() {
    let t = Some("s3cret");
    for peer in [LO, ip("192.0.2.1"), ip("2001:db8::1")] {
        assert_eq!(authorize(t, Some("Bearer s3cret"), peer), Ok(()));
        assert_eq!(authorize(t, Some("bearer  s3cret "), peer), Ok(()));
    }
    // Loopback is no way around the token either.
    for header in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Basic s3cret"),
        Some("s3cret"),
        Some("Bearer s3cre"),
        Some("Bearer s3cretX"),
        Some("Bearer S3CRET"),
    ] {
        let (status, _) = authorize(t, header, LO).unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
    }
}

#[test]
fn constant_time_eq_compares_whole_strings() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(
        !constant_time_eq(b"abcabc", b"abc"),
        "wraps but differs in length"
    );
    assert!(!constant_time_eq(b"ab", b"abc"));
    assert!(!constant_time_eq(b"", b"abc"));
    assert!(!constant_time_eq(b"", b""), "an empty token never matches");
}

#[test]
fn paths_map_to_endpoints() {
    let drain = |r: &str, d| Endpoint::Drain {
        region: r.into(),
        drained: d,
    };
    let cases = [
        ("/healthz", Some(Endpoint::Healthz)),
        ("/metrics", Some(Endpoint::Metrics)),
        ("/api/v1/regions", Some(Endpoint::Regions)),
        (
            "/api/v1/regions/eu-west/drain",
            Some(drain("eu-west", true)),
        ),
        (
            "/api/v1/regions/eu-west/undrain",
            Some(drain("eu-west", false)),
        ),
        ("/api/v1/explain", Some(Endpoint::Explain)),
        ("/api/v1/reload", Some(Endpoint::Reload)),
        ("/", Some(Endpoint::Page)),
        ("/api/v1/status", Some(Endpoint::Status)),
        ("//", None),
        ("/index.html", None),
        ("/api/v1/regions/", None),
        ("/api/v1/regions/eu-west", None),
        ("/api/v1/regions/eu-west/restart", None),
        ("/api/v2/reload", None),
        ("/healthz/", None),
    ];
    for (path, want) in cases {
        assert_eq!(Endpoint::parse(path), want, "{path}");
    }
    assert_eq!(drain("x", true).method(), Method::POST);
    assert_eq!(Endpoint::Reload.method(), Method::POST);
    assert_eq!(Endpoint::Explain.method(), Method::GET);
    assert_eq!(Endpoint::Page.method(), Method::GET);
}

#[test]
fn explain_parameters() {
    let q = ExplainQuery::parse(Some("name=www.example.com"), LO).unwrap();
    assert_eq!(
        q,
        ExplainQuery {
            name: "www.example.com".into(),
            qtype: "A".into(),
            client: LO,
            subnet: None
        }
    );
    let q = ExplainQuery::parse(
        Some("name=www.example.com&type=aaaa&client=192.0.2.9&subnet=81.2.69.0%2F24"),
        LO,
    )
    .unwrap();
    assert_eq!(q.qtype, "aaaa");
    assert_eq!(q.client, ip("192.0.2.9"));
    assert_eq!(q.subnet, Some("81.2.69.0/24".parse().unwrap()));

    for (query, names) in [
        (None, "\"name\""),
        (Some("name="), "\"name\""),
        (Some("type=A"), "\"name\""),
        (Some("name=x&type=NOPE"), "\"type\""),
        (Some("name=x&client=nope"), "\"client\""),
        (Some("name=x&subnet=1.2.3.4/99"), "\"subnet\""),
        (Some("name=x&sbnet=1.2.3.0/24"), "\"sbnet\""),
    ] {
        let e = ExplainQuery::parse(query, LO).unwrap_err();
        assert!(e.contains(names), "{query:?}: {e}");
    }
}
