//! The string checks on their own, and the key paths shown in diagnostics.

use crate::config::keypath::{join, near_syntax_error};
use crate::config::syntax::{dns_name, http_url, network, subdivision, tcp_target};

#[test]
fn dns_names() {
    assert_eq!(dns_name("WWW.Example.com").unwrap(), "www.example.com.");
    assert_eq!(dns_name("_svc.x.").unwrap(), "_svc.x.");
    assert_eq!(dns_name("*.x").unwrap(), "*.x.");
    let long_label = format!("{}.x", "a".repeat(64));
    assert!(
        dns_name(&long_label)
            .unwrap_err()
            .contains("is 64 characters long (at most 63)")
    );
    let long_name = vec!["a".repeat(63); 4].join(".");
    assert!(dns_name(&long_name).unwrap_err().contains("at most 253"));
    assert!(dns_name(".").is_err());
    assert!(dns_name("").is_err());
    assert!(dns_name("a b.x").is_err());
    assert!(dns_name("é.x").is_err());
}

#[test]
fn codes_and_networks() {
    assert!(subdivision("US-CA").is_ok());
    assert!(subdivision("GB-ENG").is_ok());
    assert!(subdivision("FR-75").is_ok());
    assert!(subdivision("US-").is_err());
    assert!(subdivision("us-ca").is_err());
    assert!(network("2001:db8::/32").is_ok());
    assert_eq!(
        network("2001:db8::1/64").unwrap_err(),
        "2001:db8::1/64 has host bits set; did you mean 2001:db8::/64?"
    );
    assert!(
        network("203.0.113.0").is_err(),
        "a prefix length is required"
    );
}

#[test]
fn probe_targets() {
    for good in [
        "http://127.0.0.1:9101/healthz",
        "HTTPS://example.com",
        "http://{address}/hc",
        "http://{address}:8080",
        "http://[::1]:80/",
        "http://h?q",
    ] {
        assert_eq!(http_url(good), Ok(()), "{good}");
    }
    for bad in [
        "example.com/hc",
        "http://",
        "http://a b/",
        "http://[zz]/",
        "http://u:p@h/",
        "http://h:0/",
    ] {
        assert!(http_url(bad).is_err(), "{bad}");
    }
    for good in [
        "127.0.0.1:80",
        "[2001:db8::1]:443",
        "{address}:9101",
        "db.internal:5432",
    ] {
        assert_eq!(tcp_target(good), Ok(()), "{good}");
    }
    for bad in [
        "127.0.0.1",
        ":80",
        "2001:db8::1:80",
        "[::1]",
        "h:http",
        "h:0",
    ] {
        assert!(tcp_target(bad).is_err(), "{bad}");
    }
}

#[test]
fn key_paths_quote_what_is_not_bare() {
    assert_eq!(join("records", "www.x"), "records.\"www.x\"");
    assert_eq!(join("regions", "us-east_1"), "regions.us-east_1");
    assert_eq!(join("", "a\"b"), "\"a\\\"b\"");
    let text = "[records.\"a]b\"] # c\nx = 1\n  y = [\n 1 2]\n";
    assert_eq!(
        near_syntax_error(text, text.find("1 2").unwrap()).as_deref(),
        Some("records.\"a]b\"")
    );
    assert_eq!(
        near_syntax_error(text, text.find("y").unwrap()).as_deref(),
        Some("records.\"a]b\".y")
    );
    assert_eq!(near_syntax_error("a.b = ", 6).as_deref(), Some("a.b"));
    assert_eq!(near_syntax_error("[x", 2), None);
}
