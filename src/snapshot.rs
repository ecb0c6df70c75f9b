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
        let files = file::load_dir(&model.server.zones)?;
        let keys = match &model.dnssec {
            Some(cfg) => Some(Keyring::load(&cfg.keys).map_err(crate::dnssec::tool::key_errors)?),
            None => None,
        };
        let mut snap = Snapshot::build_signed(model, files, keys.as_ref(), now)?;
        if let Some(db) = &geo {
            snap.geo_maps = compile_geo(&snap.model, db);
            db.release_pages();
        }
        snap.geo = geo;
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
