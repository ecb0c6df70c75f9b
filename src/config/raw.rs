//! `gslb.toml` exactly as written: serde structs with no interpretation.
//!
//! Every table denies unknown keys, so a typo is an error instead of a silently ignored
//! setting. Values that validation must point back at are wrapped in [`Spanned`]. Numbers
//! are read as `i64` and enumerations as strings so that range and spelling mistakes get
//! our own messages (with the allowed values) rather than serde's. Most keys are optional
//! here even when required, so that a missing key is reported by validation alongside
//! every other problem instead of aborting deserialization at the first one.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use toml::Spanned;

/// A string value with its position.
pub(crate) type Str = Spanned<String>;
/// An integer value with its position.
pub(crate) type Int = Spanned<i64>;
/// A list of strings, with the position of the list and of each element.
pub(crate) type StrList = Spanned<Vec<Str>>;

/// A TOML table read as `(key, value)` pairs in file order.
///
/// toml's own maps are sorted by key unless its `preserve_order` feature is on; region
/// and record order carries meaning (default candidate order, `RegionId`s), so the pairs
/// are put back in the order their keys appear in the file, whatever toml was built with.
#[derive(Debug)]
pub(crate) struct Entries<V>(pub(crate) Vec<(Str, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<Str, V>()? {
                    entries.push((key, value));
                }
                entries.sort_by_key(|(k, _)| k.span().start);
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) defaults: RawDefaults,
    #[serde(default)]
    pub(crate) regions: Entries<RawRegion>,
    #[serde(default)]
    pub(crate) records: Entries<RawRecord>,
    #[serde(default)]
    pub(crate) latency: RawLatency,
    pub(crate) cluster: Option<Spanned<RawCluster>>,
    pub(crate) dnssec: Option<Spanned<RawDnssec>>,
}

/// `[dnssec]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDnssec {
    pub(crate) keys: Option<Str>,
    pub(crate) algorithm: Option<Str>,
    pub(crate) validity: Option<Str>,
}

/// `[cluster]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub(crate) peers: Option<StrList>,
    pub(crate) interval: Option<Str>,
    pub(crate) quorum: Option<Int>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<StrList>,
    pub(crate) admin: Option<Str>,
    pub(crate) admin_token: Option<Str>,
    pub(crate) zones: Option<Str>,
    pub(crate) geoip: Option<Str>,
    pub(crate) geoip_mmap: Option<Spanned<bool>>,
    pub(crate) rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub(crate) tcp: RawTcp,
    pub(crate) query_log: Option<RawQueryLog>,
    pub(crate) workers: Option<Int>,
    pub(crate) probe_source: Option<Str>,
    pub(crate) dnstap: Option<Spanned<RawDnstap>>,
    pub(crate) state_file: Option<Str>,
    pub(crate) reload_timeout: Option<Str>,
}

/// `server.dnstap`: exactly one of `socket` and `tcp`, checked by validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDnstap {
    pub(crate) socket: Option<Str>,
    pub(crate) tcp: Option<Str>,
    pub(crate) sample: Option<Spanned<f64>>,
}

/// `server.query_log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueryLog {
    /// Share of queries logged, 0 < sample <= 1 (an integer 1 reads as 1.0).
    pub(crate) sample: Spanned<f64>,
}

/// `server.rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) responses_per_second: Int,
    pub(crate) slip: Option<Int>,
}

/// `server.tcp`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcp {
    pub(crate) max_connections: Option<Int>,
    pub(crate) max_per_client: Option<Int>,
    pub(crate) idle_timeout: Option<Str>,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub(crate) ttl: Option<Int>,
    pub(crate) fallback_ttl: Option<Int>,
    #[serde(default)]
    pub(crate) probe: RawTiming,
}

/// `defaults.probe`: timing only, since there is no default target.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTiming {
    pub(crate) interval: Option<Str>,
    pub(crate) timeout: Option<Str>,
    pub(crate) rise: Option<Int>,
    pub(crate) fall: Option<Int>,
}

/// `[regions.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegion {
    pub(crate) addresses: Option<StrList>,
    pub(crate) cname: Option<Str>,
    pub(crate) location: Option<Spanned<RawLocation>>,
    pub(crate) probe: Option<Spanned<RawProbe>>,
}

/// `regions.NAME.location`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocation {
    pub(crate) lat: Spanned<f64>,
    pub(crate) lon: Spanned<f64>,
}

/// `regions.NAME.probe`: the target keys of both kinds plus timing; validation checks
/// that exactly one target is given and that no key of the other kind is used.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub(crate) url: Option<Str>,
    pub(crate) tcp: Option<Str>,
    pub(crate) expect_status: Option<Spanned<Vec<Int>>>,
    pub(crate) expect_body: Option<Str>,
    pub(crate) host: Option<Str>,
    pub(crate) insecure: Option<Spanned<bool>>,
    pub(crate) interval: Option<Str>,
    pub(crate) timeout: Option<Str>,
    pub(crate) rise: Option<Int>,
    pub(crate) fall: Option<Int>,
    pub(crate) min_healthy: Option<Int>,
}

/// `[records."NAME"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecord {
    pub(crate) policy: Option<Str>,
    pub(crate) ttl: Option<Int>,
    pub(crate) fallback_ttl: Option<Int>,
    pub(crate) regions: Option<StrList>,
    pub(crate) when_all_down: Option<Str>,
    pub(crate) geo: Option<Spanned<RawGeo>>,
    pub(crate) weights: Option<Spanned<Entries<Int>>>,
    pub(crate) sticky: Option<Spanned<bool>>,
}

/// `[records."NAME".geo]`: each key maps to an ordered list of region names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGeo {
    #[serde(default)]
    pub(crate) continent: Entries<StrList>,
    #[serde(default)]
    pub(crate) country: Entries<StrList>,
    #[serde(default)]
    pub(crate) subdivision: Entries<StrList>,
    #[serde(default)]
    pub(crate) cidr: Entries<StrList>,
    pub(crate) default: Option<StrList>,
}

/// One `[latency]` row: region name to RTT in milliseconds. Integers are accepted too:
/// serde's `f64` reads either.
pub(crate) type RawRtts = Entries<Spanned<f64>>;

/// `[latency]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLatency {
    #[serde(default)]
    pub(crate) continent: Entries<RawRtts>,
    #[serde(default)]
    pub(crate) country: Entries<RawRtts>,
    #[serde(default)]
    pub(crate) cidr: Entries<RawRtts>,
}
