//! Valid configs and the model they become: values, defaults, order, paths.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{EXAMPLE, REGIONS, ok};
use crate::config::{load, parse};
use crate::model::{
    Coords, Defaults, GeoIp, Model, Policy, Pos, ProbeTarget, ProbeTiming, RateLimit, RegionId,
    TcpLimits, WhenAllDown,
};

fn geoip_path(m: &Model) -> Option<&Path> {
    m.server.geoip.as_ref().map(|g| g.path.as_path())
}

fn ids(list: &[u16]) -> Vec<RegionId> {
    list.iter().copied().map(RegionId).collect()
}

#[test]
fn example_server_and_defaults() {
    let m = ok(EXAMPLE);
    assert_eq!(m.file, PathBuf::from("/etc/gslb/gslb.toml"));
    let s = &m.server;
    assert_eq!(
        s.listen,
        vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(s.admin, Some("127.0.0.1:8053".parse().unwrap()));
    assert_eq!(s.admin_token.as_deref(), Some("s3cret"));
    assert_eq!(s.zones, PathBuf::from("/etc/gslb/zones"));
    assert_eq!(
        s.geoip,
        Some(GeoIp {
            path: PathBuf::from("/etc/gslb/geoip/sample.mmdb"),
            mmap: false
        })
    );
    let rl = RateLimit {
        responses_per_second: 200,
        slip: 2,
    };
    assert_eq!(s.rate_limit, Some(rl));
    assert_eq!(s.tcp, TcpLimits::default());
    assert_eq!(m.defaults, Defaults::default());
}

#[test]
fn example_regions() {
    let m = ok(EXAMPLE);
    let names: Vec<&str> = m.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south", "us-west"]);
    let eu = &m.regions[1];
    assert_eq!(
        eu.v4,
        [
            Ipv4Addr::new(198, 51, 100, 20),
            Ipv4Addr::new(198, 51, 100, 21)
        ]
    );
    assert_eq!(eu.v6, ["2001:db8:20::1".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(
        eu.location,
        Some(Coords {
            lat: 53.35,
            lon: -6.26
        })
    );
    let eu_probe = eu.probe.as_ref().unwrap();
    let tcp = ProbeTarget::Tcp {
        addr: "127.0.0.1:9102".into(),
    };
    assert_eq!(eu_probe.target, tcp);
    // No timing of its own: all of [defaults].probe.
    assert_eq!(eu_probe.timing, m.defaults.probe);

    let us = m.regions[0].probe.as_ref().unwrap();
    let http = ProbeTarget::Http {
        url: "http://127.0.0.1:9101/healthz".into(),
        expect_status: vec![200],
        expect_body: Some("ok".into()),
        host: None,
        insecure: false,
    };
    assert_eq!(us.target, http);
    let own = ProbeTiming {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 2,
    };
    assert_eq!(us.timing, own);
    assert_eq!(us.min_healthy, 1);

    let ap = m.regions[2].probe.as_ref().unwrap();
    assert_eq!(ap.min_healthy, 2);
    // Only the timeout is its own; the rest falls back to [defaults].probe.
    let mixed = ProbeTiming {
        timeout: Duration::from_millis(500),
        ..m.defaults.probe
    };
    assert_eq!(ap.timing, mixed);
    assert!(matches!(&ap.target, ProbeTarget::Http { url, .. } if url.contains("{address}")));

    assert_eq!(m.regions[3].probe, None);
    assert_eq!(m.regions[3].location, None);
    assert_eq!(m.region_id("ap-south"), Some(RegionId(2)));
}

#[test]
fn example_records() {
    let m = ok(EXAMPLE);
    let names: Vec<&str> = m.records.iter().map(|r| r.name.as_str()).collect();
    let expected = [
        "www.gslb.example.com.",
        "api.gslb.example.com.",
        "edge.gslb.example.com.",
        "db.gslb.example.com.",
    ];
    assert_eq!(names, expected);

    let www = &m.records[0];
    assert_eq!(www.pos, Pos { line: 32, col: 10 });
    assert_eq!(www.ttl, 20);
    assert_eq!(www.regions, ids(&[0, 1, 2, 3]));
    assert_eq!(www.when_all_down, WhenAllDown::First);
    let Policy::Geo(geo) = &www.policy else {
        panic!("not geo: {:?}", www.policy)
    };
    assert_eq!(geo.continent["EU"], ids(&[1, 0]));
    assert_eq!(geo.country["JP"], ids(&[2, 0]));
    assert_eq!(geo.subdivision["US-CA"], ids(&[3, 0]));
    assert_eq!(
        geo.cidr,
        vec![("203.0.113.0/24".parse().unwrap(), ids(&[1]))]
    );
    assert_eq!(geo.default, Some(ids(&[0, 1, 2])));

    let api = &m.records[1];
    assert_eq!(api.ttl, 30, "defaults.ttl");
    // Weighted with no `regions`: the regions named in `weights`, in file order.
    assert_eq!(api.regions, ids(&[0, 1]));
    let weighted = Policy::Weighted {
        weights: vec![3, 1],
        sticky: true,
    };
    assert_eq!(api.policy, weighted);

    let edge = &m.records[2];
    assert_eq!(edge.policy, Policy::Latency);
    assert_eq!(
        edge.regions,
        ids(&[0, 1, 2, 3]),
        "every region, in file order"
    );

    let db = &m.records[3];
    assert_eq!(db.policy, Policy::Failover);
    assert_eq!(db.regions, ids(&[0, 1]));
    assert_eq!(db.when_all_down, WhenAllDown::Nodata);
}

#[test]
fn example_latency() {
    let m = ok(EXAMPLE);
    let l = &m.latency;
    let eu = vec![
        (RegionId(1), 20.0),
        (RegionId(0), 90.0),
        (RegionId(2), 140.0),
    ];
    assert_eq!(
        l.continent["EU"], eu,
        "file order, integers read as numbers"
    );
    assert_eq!(
        l.country["JP"],
        vec![(RegionId(2), 70.5), (RegionId(0), 160.0)]
    );
    let net = "198.51.100.0/24".parse().unwrap();
    assert_eq!(l.cidr, vec![(net, vec![(RegionId(0), 5.0)])]);
}

#[test]
fn empty_file_is_all_defaults() {
    let m = ok("");
    assert_eq!(
        m.server.listen,
        vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(m.server.zones, PathBuf::from("/etc/gslb/zones"));
    assert_eq!(m.server.admin, None);
    assert_eq!(m.server.geoip, None);
    assert_eq!(m.server.rate_limit, None);
    assert_eq!(m.defaults, Defaults::default());
    assert!(m.regions.is_empty() && m.records.is_empty());
}

#[test]
fn partial_tables_keep_the_other_defaults() {
    let m = ok(concat!(
        "[server]\nrate_limit = { responses_per_second = 5 }\ntcp = { idle_timeout = \"1m\" }\n",
        "[defaults.probe]\nrise = 5\n",
        "[regions.a]\naddresses = [\"192.0.2.1\"]\nprobe = { tcp = \"{address}:80\", fall = 9 }\n",
    ));
    assert_eq!(
        m.server.rate_limit,
        Some(RateLimit {
            responses_per_second: 5,
            slip: 2
        })
    );
    let tcp = TcpLimits {
        max_connections: 1024,
        max_per_client: 64,
        idle_timeout: Duration::from_secs(60),
    };
    assert_eq!(m.server.tcp, tcp);
    assert_eq!(m.defaults.probe.rise, 5);
    let t = m.regions[0].probe.as_ref().unwrap().timing;
    assert_eq!((t.rise, t.fall, t.interval), (5, 9, Duration::from_secs(5)));
    let m = ok("[server.tcp]\nmax_per_client = 5\n");
    let tcp = TcpLimits {
        max_per_client: 5,
        ..TcpLimits::default()
    };
    assert_eq!(m.server.tcp, tcp);
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let text = "[server]\nzones = \"z\"\ngeoip = \"../g/db.mmdb\"\n";
    let m = parse(text, Path::new("/srv/dns/gslb.toml")).unwrap();
    assert_eq!(m.server.zones, PathBuf::from("/srv/dns/z"));
    assert_eq!(geoip_path(&m), Some(Path::new("/srv/dns/../g/db.mmdb")));

    let m = parse(
        "[server]\ngeoip = \"/var/lib/geo.mmdb\"\n",
        Path::new("/srv/gslb.toml"),
    )
    .unwrap();
    assert_eq!(geoip_path(&m), Some(Path::new("/var/lib/geo.mmdb")));

    // A config named relative to the working directory still yields absolute paths.
    let m = parse("", Path::new("gslb.toml")).unwrap();
    assert!(m.server.zones.is_absolute());
    assert_eq!(
        m.server.zones,
        std::env::current_dir().unwrap().join("zones")
    );
    assert_eq!(m.file, PathBuf::from("gslb.toml"));
}

#[test]
fn geoip_mmap_is_off_by_default_and_read_when_set() {
    let m = parse(
        "[server]\ngeoip = \"g.mmdb\"\n",
        Path::new("/srv/gslb.toml"),
    )
    .unwrap();
    assert_eq!(m.server.geoip.map(|g| g.mmap), Some(false));
    for (value, mmap) in [("true", true), ("false", false)] {
        let text = format!("[server]\ngeoip = \"g.mmdb\"\ngeoip_mmap = {value}\n");
        let m = parse(&text, Path::new("/srv/gslb.toml")).unwrap();
        let want = GeoIp {
            path: PathBuf::from("/srv/g.mmdb"),
            mmap,
        };
        assert_eq!(m.server.geoip, Some(want), "{value}");
    }
    // Without a database there is nothing to map: accepted, and no database.
    assert_eq!(ok("[server]\ngeoip_mmap = true\n").server.geoip, None);
}

#[test]
fn load_reads_the_file_and_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gslb.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let m = load(&path).unwrap();
    assert_eq!(m.file, path);
    assert_eq!(m.server.zones, dir.path().join("zones"));
    assert_eq!(m.records.len(), 4);
}

#[test]
fn load_names_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let e = load(&path).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let shown = e.to_string();
    assert!(shown.starts_with(&format!(
        "{}: cannot read the config file: ",
        path.display()
    )));
    let os = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    assert!(shown.contains("os error") || shown.contains(&os), "{shown}");
}

#[test]
fn regions_and_records_keep_file_order() {
    // toml sorts table keys; the model must not.
    let m = ok(concat!(
        "[regions.zulu]\naddresses = [\"192.0.2.1\"]\n",
        "[regions.alpha]\naddresses = [\"192.0.2.2\"]\n",
        "[records.\"z.example.\"]\npolicy = \"failover\"\n",
        "[records.\"a.example.\"]\npolicy = \"weighted\"\nweights = { zulu = 0, alpha = 1 }\n",
    ));
    let regions: Vec<&str> = m.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(regions, ["zulu", "alpha"]);
    assert_eq!(m.records[0].name, "z.example.");
    assert_eq!(m.records[0].regions, ids(&[0, 1]));
    assert_eq!(m.records[1].regions, ids(&[0, 1]));
    let w = Policy::Weighted {
        weights: vec![0, 1],
        sticky: false,
    };
    assert_eq!(m.records[1].policy, w);
}

#[test]
fn weights_follow_the_regions_order() {
    let m = ok(&format!(
        "{REGIONS}[records.x]\npolicy = \"weighted\"\nregions = [\"eu-west\", \"us-east\"]\nweights = {{ us-east = 7, eu-west = 2 }}\n"
    ));
    assert_eq!(m.records[0].regions, ids(&[1, 0]));
    let w = Policy::Weighted {
        weights: vec![2, 7],
        sticky: false,
    };
    assert_eq!(m.records[0].policy, w);
}

#[test]
fn names_are_normalised_and_wildcards_allowed() {
    let m = ok(&format!(
        "{REGIONS}[records.\"WWW.Example.COM.\"]\npolicy = \"latency\"\n[records.\"*.Dyn.example.com\"]\npolicy = \"geo\"\n"
    ));
    assert_eq!(m.records[0].name, "www.example.com.");
    assert_eq!(m.records[1].name, "*.dyn.example.com.");
    assert_eq!(m.records[1].policy, Policy::Geo(Default::default()));
}

#[test]
fn probe_options() {
    let m = ok(concat!(
        "[regions.a]\naddresses = [\"192.0.2.1\", \"192.0.2.2\"]\n",
        "probe = { url = \"https://[2001:db8::1]:8443/hc?x=1\", expect_status = [200, 204], ",
        "host = \"www.example.com\", insecure = true, min_healthy = 2 }\n",
    ));
    let p = m.regions[0].probe.as_ref().unwrap();
    let target = ProbeTarget::Http {
        url: "https://[2001:db8::1]:8443/hc?x=1".into(),
        expect_status: vec![200, 204],
        expect_body: None,
        host: Some("www.example.com".into()),
        insecure: true,
    };
    assert_eq!(p.target, target);
    assert_eq!(p.min_healthy, 2);
}

#[test]
fn docs_example_loads() {
    let doc = include_str!("../../../docs/CONFIG.md");
    let start = doc.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("closed");
    let m = ok(&doc[start..end]);
    assert_eq!((m.regions.len(), m.records.len()), (4, 4));
    let tcp = ProbeTarget::Tcp {
        addr: "{address}:443".into(),
    };
    assert_eq!(m.regions[1].probe.as_ref().map(|p| &p.target), Some(&tcp));
}

#[test]
fn compound_durations() {
    let m = ok("[server.tcp]\nidle_timeout = \"1m30s\"\n[defaults.probe]\ntimeout = \"250ms\"\n");
    assert_eq!(m.server.tcp.idle_timeout, Duration::from_secs(90));
    assert_eq!(m.server.reload_timeout, Duration::from_secs(60), "default");
    assert_eq!(m.defaults.probe.timeout, Duration::from_millis(250));
    let m = ok("[server]\nreload_timeout = \"2m\"\n");
    assert_eq!(m.server.reload_timeout, Duration::from_secs(120));
}

#[test]
fn cluster_defaults_to_a_majority_every_two_seconds() {
    let m =
        ok("[cluster]\npeers = [\"http://192.0.2.53:8053\", \"https://[2001:db8::53]:8053/\"]\n");
    let c = m.cluster.expect("[cluster]");
    assert_eq!(
        c.peers,
        ["http://192.0.2.53:8053", "https://[2001:db8::53]:8053"]
    );
    assert_eq!(c.quorum, 2, "a majority of three");
    assert_eq!(c.interval, std::time::Duration::from_secs(2));
    let m = ok(
        "[server]\nprobe_source = \"203.0.113.53\"\n[cluster]\npeers = [\"http://a:1\", \"http://b:1\", \"http://c:1\"]\ninterval = \"500ms\"\nquorum = 1\n",
    );
    assert_eq!(m.server.probe_source, Some("203.0.113.53".parse().unwrap()));
    let c = m.cluster.unwrap();
    assert_eq!((c.quorum, c.interval.as_millis()), (1, 500));
    assert_eq!(ok("").cluster, None);
    assert_eq!(
        ok("[cluster]\npeers = [\"http://a:1\", \"http://b:1\", \"http://c:1\"]\n")
            .cluster
            .unwrap()
            .quorum,
        3,
        "a majority of four"
    );
}
