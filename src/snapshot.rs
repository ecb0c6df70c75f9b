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

use tracing::{debug, warn};

use crate::config;
use crate::diag::{Diagnostic, Diagnostics};
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
}

impl Snapshot {
    /// Loads config and zones from disk and checks them against each other; every
    /// region starts up.
    pub fn load(config_path: &Path) -> Result<Snapshot, Diagnostics> {
        let model = config::load(config_path)?;
        let geo = match &model.server.geoip {
            // A reload comes through here too, so it always opens the file afresh: a
            // new read, or a new mapping of whatever file the path names now.
            Some(g) => match GeoDb::open_with(&g.path, g.mmap) {
                Ok(db) => Some(Arc::new(db)),
                Err(e) => {
                    return Err(Diagnostic::new(&model.file, e).key("server.geoip").into());
                }
            },
            None => None,
        };
        let files = file::load_dir(&model.server.zones)?;
        let mut snap = Snapshot::build(model, files)?;
        if let Some(db) = &geo {
            snap.geo_maps = compile_geo(&snap.model, db);
            db.release_pages();
        }
        snap.geo = geo;
        Ok(snap)
    }

    /// Builds a snapshot from an already loaded model and zone files, without GeoIP.
    pub fn build(model: Model, files: Vec<file::ZoneFile>) -> Result<Snapshot, Diagnostics> {
        let zones = Zones::build(files, &model)?;
        let health = Health::all_up(&model);
        Ok(Snapshot {
            model: Arc::new(model),
            zones: Arc::new(zones),
            health: Arc::new(health),
            geo: None,
            geo_maps: Arc::new([]),
        })
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
