//! The one immutable picture a query is answered from: config model, zones, GeoIP
//! database, compiled geo trees and health, published together ([`Shared`]) so a query
//! never mixes an old config with new health. Nothing in it changes per query: counters
//! and the rate limiter live in the [`Runtime`](crate::runtime::Runtime) beside it.
//! Readers take a guard (no lock); the health owner builds a new snapshot, sharing the
//! unchanged parts by `Arc`, and swaps it in whole. Loading it (config, zones, GeoIP,
//! the geo trees) happens here too, off the query path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, warn};

use crate::config;
use crate::diag::Diagnostics;
use crate::dnssec::dynamic::DynSigs;
use crate::dnssec::fresh::Fresh;
use crate::dnssec::{Epoch, Keyring};
use crate::geo::GeoDb;
use crate::health::Health;
use crate::model::{GeoRules, Model, Policy, RecordId};
use crate::policy::geo;
use crate::policy::geomap::{GeoMap, Places};
use crate::runtime::Shared;
use crate::zone::{Zones, file};

/// Config, zones and health, consistent with each other. Every field is shared, so a
/// clone is a handful of reference-count increments.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The validated config.
    pub model: Arc<Model>,
    /// The zones with the dynamic names attached.
    pub zones: Arc<Zones>,
    /// Health of every region.
    pub health: Arc<Health>,
    /// The GeoIP database, when `server.geoip` is set.
    pub geo: Option<Arc<GeoDb>>,
    /// Per dynamic record (by index), its geo rules compiled against `geo`, when it has
    /// rules that look at locations ([`GeoMap`]).
    pub geo_maps: Arc<[Option<Arc<GeoMap>>]>,
    /// With `[dnssec]`: the signing run the zones' signatures belong to.
    pub signing: Option<Arc<Signing>>,
    /// With `[dnssec]`: the dynamic answers' signatures for `health`.
    pub dyn_sigs: Arc<DynSigs>,
}

/// One signing run: its validity window and the cache of signatures made on first use.
#[derive(Debug)]
pub struct Signing {
    /// The validity window of every signature of the run.
    pub epoch: Epoch,
    /// Denials of names that do not exist and wildcard answers, signed on first use.
    pub fresh: Fresh,
}

impl Snapshot {
    /// Loads config and zones from disk and checks them against each other; every
    /// region starts up.
    pub fn load(config_path: &Path) -> Result<Snapshot, Diagnostics> {
        Snapshot::load_at(config_path, SystemTime::now())
    }

    /// Like [`Snapshot::load`], with `[dnssec]` signatures of a run started at `now`.
    pub fn load_at(config_path: &Path, now: SystemTime) -> Result<Snapshot, Diagnostics> {
        Snapshot::load_after(config_path, now, None)
    }

    /// Like [`Snapshot::load`], for a reload of `old`: its zones are kept, not built
    /// again, when nothing they were built from changed (see [`zones_unchanged`]).
    pub fn reload(config_path: &Path, old: &Snapshot) -> Result<Snapshot, Diagnostics> {
        Snapshot::load_after(config_path, SystemTime::now(), Some(old))
    }

    fn load_after(
        config_path: &Path,
        now: SystemTime,
        old: Option<&Snapshot>,
    ) -> Result<Snapshot, Diagnostics> {
        let model = config::load(config_path)?;
        let geo = match &model.server.geoip {
            // A reload comes through here too, so it always opens the file afresh: a
            // new read, or a new mapping of whatever file the path names now.
            Some(g) => match GeoDb::open_with(&g.path, g.mmap) {
                Ok(db) => Some(Arc::new(db)),
                Err(e) => {
                    let d = config::diagnostic_at(&model.file, &["server", "geoip"], e);
                    return Err(d.into());
                }
            },
            None => None,
        };
        let kept = old.filter(|old| zones_unchanged(old, &model));
        let mut snap = match kept {
            Some(old) => {
                debug!("zones unchanged since they were loaded: kept");
                Snapshot::with_zones(model, old.zones.clone())
            }
            None => {
                let files = file::load_dir(&model.server.zones)?;
                let keys = match &model.dnssec {
                    Some(cfg) => {
                        Some(Keyring::load(&cfg.keys).map_err(crate::dnssec::tool::key_errors)?)
                    }
                    None => None,
                };
                Snapshot::build_signed(model, files, keys.as_ref(), now)?
            }
        };
        if let Some(db) = &geo {
            snap.geo_maps = compile_geo(&snap.model, db);
            db.release_pages();
        }
        snap.geo = geo;
        // What loading freed (the zone text, hickory's parse of it) goes back to the
        // kernel: a large zone's would stay resident for the life of the process.
        release_free_heap();
        Ok(snap)
    }

    /// Builds a snapshot from an already loaded model and zone files, without GeoIP.
    pub fn build(model: Model, files: Vec<file::ZoneFile>) -> Result<Snapshot, Diagnostics> {
        Snapshot::build_signed(model, files, None, SystemTime::now())
    }

    /// Like [`Snapshot::build`]; with `[dnssec]` in the model and `keys`, every zone and
    /// dynamic answer is signed in a run starting at `now`.
    pub fn build_signed(
        model: Model,
        files: Vec<file::ZoneFile>,
        keys: Option<&Keyring>,
        now: SystemTime,
    ) -> Result<Snapshot, Diagnostics> {
        let signing = match (&model.dnssec, keys) {
            (Some(cfg), Some(_)) => Some(Arc::new(Signing {
                epoch: Epoch::starting(now, cfg.validity),
                fresh: Fresh::default(),
            })),
            _ => None,
        };
        let zones =
            Zones::build_signed(files, &model, keys.zip(signing.as_ref().map(|s| s.epoch)))?;
        let health = Health::all_up(&model);
        let mut snap = Snapshot {
            model: Arc::new(model),
            zones: Arc::new(zones),
            health: Arc::new(health),
            geo: None,
            geo_maps: Arc::new([]),
            signing,
            dyn_sigs: Arc::default(),
        };
        snap.sign_dynamic(None);
        Ok(snap)
    }

    /// A snapshot of `model` serving `zones` (built for an equal model), without GeoIP
    /// or `[dnssec]`.
    fn with_zones(model: Model, zones: Arc<Zones>) -> Snapshot {
        let health = Health::all_up(&model);
        Snapshot {
            model: Arc::new(model),
            zones,
            health: Arc::new(health),
            geo: None,
            geo_maps: Arc::new([]),
            signing: None,
            dyn_sigs: Arc::default(),
        }
    }

    /// Signs the dynamic answers for the snapshot's health, reusing `old`'s signatures
    /// of the same run. Nothing without `[dnssec]`.
    pub fn sign_dynamic(&mut self, old: Option<&DynSigs>) {
        let Some(signing) = &self.signing else {
            return;
        };
        let started = std::time::Instant::now();
        let sigs = DynSigs::build(&self.model, &self.zones, &self.health, signing.epoch, old);
        if sigs.made > 0 {
            debug!(
                answers = sigs.len(),
                signed = sigs.made,
                ms = started.elapsed().as_millis() as u64,
                "dynamic answers signed"
            );
        }
        self.dyn_sigs = Arc::new(sigs);
    }

    /// The same snapshot with every signature made again in a run starting at `now`
    /// (renewal before expiry); `None` without `[dnssec]`.
    pub fn resigned(&self, now: SystemTime) -> Option<Snapshot> {
        let cfg = self.model.dnssec.as_ref()?;
        self.signing.as_ref()?;
        let epoch = Epoch::starting(now, cfg.validity);
        let mut next = Snapshot {
            zones: Arc::new(self.zones.resigned(epoch)),
            signing: Some(Arc::new(Signing {
                epoch,
                fresh: Fresh::default(),
            })),
            ..self.clone()
        };
        next.sign_dynamic(None);
        Some(next)
    }

    /// The compiled geo map of a dynamic record, if it has one.
    pub fn geo_map(&self, record: RecordId) -> Option<&GeoMap> {
        self.geo_maps.get(record.index()).and_then(|m| m.as_deref())
    }

    /// Publishes the snapshot for the query path, with a fresh [`Runtime`](crate::runtime::Runtime).
    pub fn into_shared(self) -> Shared {
        Shared::new(self)
    }
}

/// Whether `old`'s zones are what loading `model`'s would build: neither has `[dnssec]`
/// (signatures belong to a signing run), the dynamic names are the same (each attached to
/// its node, by index, answering every type or not), and so are the `cname` regions'
/// targets, and no zone file or file it includes changed.
fn zones_unchanged(old: &Snapshot, model: &Model) -> bool {
    let may_cname = |m: &Model, r: &crate::model::DynRecord| {
        r.regions.iter().any(|id| m.region(*id).is_cname())
    };
    let targets = |m: &Model| -> Vec<Option<String>> {
        (m.regions.iter())
            .map(|r| r.cname.as_ref().map(|n| n.to_string()))
            .collect()
    };
    let (was, now) = (&old.model, model);
    was.dnssec.is_none()
        && now.dnssec.is_none()
        && old.signing.is_none()
        && was.records.len() == now.records.len()
        && (was.records.iter().zip(&now.records))
            .all(|(a, b)| a.name == b.name && may_cname(was, a) == may_cname(now, b))
        && targets(was) == targets(now)
        && old.zones.files_unchanged(&now.server.zones)
}

/// Compiles the geo rules of every record that looks at locations against `db`; records
/// with equal rules share one map. A record whose rules cannot be compiled (a database
/// whose networks do not tile the address space, or a map too large) is logged and
/// keeps ranking through GeoIP lookups.
fn compile_geo(model: &Model, db: &GeoDb) -> Arc<[Option<Arc<GeoMap>>]> {
    let started = std::time::Instant::now();
    // Found by hash: a config of thousands of geo records must not compare each one
    // with every rule set before it.
    let mut built: HashMap<&GeoRules, Arc<GeoMap>> = HashMap::new();
    // Walked once, when the first record needs it.
    let mut places: Option<Places> = None;
    let maps = model
        .records
        .iter()
        .map(|rec| {
            let Policy::Geo(rules) = &rec.policy else {
                return None;
            };
            if !geo::by_location(rules) {
                return None;
            }
            if let Some(map) = built.get(&**rules) {
                return Some(map.clone());
            }
            let places = places.get_or_insert_with(|| Places::build(db));
            match GeoMap::build(places, rules) {
                Ok(map) => {
                    let map = Arc::new(map);
                    built.insert(rules, map.clone());
                    Some(map)
                }
                Err(e) => {
                    warn!(record = %rec.name, "geo rules not compiled ({e}): ranking through GeoIP lookups");
                    None
                }
            }
        })
        .collect();
    let nodes: usize = built.values().map(|m| m.nodes().0 + m.nodes().1).sum();
    let (places, spans_v4, spans_v6) = places.map_or((0, 0, 0), |p| p.sizes());
    debug!(
        maps = built.len(),
        nodes,
        places,
        spans_v4,
        spans_v6,
        ms = started.elapsed().as_millis() as u64,
        "geo rules compiled"
    );
    release_free_heap();
    maps
}

/// Has the allocator map every allocation of 1 MiB or more (zone buffers and tables,
/// file contents) on its own, so that freeing one hands it back to the kernel at once and
/// growing one moves no bytes (`mremap`). glibc otherwise raises that threshold to the
/// size of the first such block freed (up to 32 MiB), and from then keeps blocks below it
/// in its heaps; in a thread's heap, where reloads run, neither `free` nor `malloc_trim`
/// returns the top of the heap, so a reload's buffers stayed resident (24 MiB after
/// reloading a zone of a million names). Call before any thread starts.
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; it is called before any
    // other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Hands freed heap back to the kernel. Compiling a large database's trees allocates and
/// frees hundreds of MiB; glibc keeps freed blocks of up to 32 MiB for reuse, so without
/// this tens of MiB would stay resident for the life of the process.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's heaps to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    const CONFIG: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\n\
        [defaults]\nttl = 30\n[regions.one]\naddresses = [\"192.0.2.10\"]\n\
        [records.\"www.a.test\"]\npolicy = \"failover\"\n";

    fn write(dir: &Path, file: &str, text: &str) {
        fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn a_reload_keeps_the_zones_when_nothing_they_come_from_changed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("zones")).unwrap();
        write(d, "gslb.toml", CONFIG);
        let zone = "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n$INCLUDE part.inc\n";
        write(d, "zones/a.test.zone", zone);
        write(d, "zones/part.inc", "x A 192.0.2.2\n");
        let config = d.join("gslb.toml");
        let mut snap = Snapshot::load(&config).unwrap();
        let mut reload = |what: &str, kept: bool| {
            let next = Snapshot::reload(&config, &snap).unwrap();
            assert_eq!(Arc::ptr_eq(&next.zones, &snap.zones), kept, "{what}");
            snap = next;
        };
        reload("nothing changed", true);
        write(d, "gslb.toml", &CONFIG.replace("ttl = 30", "ttl = 40"));
        reload("a setting the zones do not depend on", true);
        write(d, "zones/part.inc", "x A 192.0.2.3\n");
        reload("an included file", false);
        reload("nothing changed since", true);
        write(
            d,
            "zones/a.test.zone",
            &zone.replace("192.0.2.1", "192.0.2.9"),
        );
        reload("the zone file", false);
        write(
            d,
            "zones/b.test.zone",
            "@ 60 SOA ns1 h 1 2 3 4 5\n@ 60 NS ns1\n",
        );
        reload("a zone file added", false);
        fs::remove_file(d.join("zones/b.test.zone")).unwrap();
        reload("a zone file removed", false);
        write(
            d,
            "gslb.toml",
            &format!("{CONFIG}[records.\"y.a.test\"]\npolicy = \"failover\"\n"),
        );
        reload("a dynamic name added", false);
        reload("nothing changed since", true);
        let cname = "[regions.two]\ncname = \"lb.example.net.\"\n";
        write(d, "gslb.toml", &format!("{CONFIG}{cname}"));
        reload("a region that may answer by CNAME", false);
        // What was reloaded is served.
        let x = Name::from_ascii("x.a.test.").unwrap();
        let answer = snap.zones.resolve(&x, RecordType::A).unwrap().answers;
        assert_eq!(answer[0].data.to_string(), "192.0.2.3");
    }
}
