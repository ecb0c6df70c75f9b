//! The one immutable picture a query is answered from: config model, zones and health,
//! published together behind a single `ArcSwap` so a query never mixes an old config
//! with new health. Readers take a guard (no lock); the background owner builds a new
//! snapshot, sharing the unchanged parts by `Arc`, and swaps it in whole.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config;
use crate::diag::Diagnostics;
use crate::health::Health;
use crate::model::Model;
use crate::zone::{Zones, file};

/// Config, zones and health, consistent with each other.
#[derive(Debug)]
pub struct Snapshot {
    /// The validated config.
    pub model: Arc<Model>,
    /// The zones with the dynamic names attached.
    pub zones: Arc<Zones>,
    /// Health of every region.
    pub health: Arc<Health>,
}

/// The handle the query path reads and the owner task replaces.
pub type Shared = Arc<ArcSwap<Snapshot>>;

impl Snapshot {
    /// Loads config and zones from disk and checks them against each other; every
    /// region starts up.
    pub fn load(config_path: &Path) -> Result<Snapshot, Diagnostics> {
        let model = config::load(config_path)?;
        let files = file::load_dir(&model.server.zones)?;
        Snapshot::build(model, files)
    }

    /// Builds a snapshot from an already loaded model and zone files.
    pub fn build(model: Model, files: Vec<file::ZoneFile>) -> Result<Snapshot, Diagnostics> {
        let zones = Zones::build(files, &model)?;
        let health = Health::all_up(&model);
        Ok(Snapshot {
            model: Arc::new(model),
            zones: Arc::new(zones),
            health: Arc::new(health),
        })
    }

    /// Wraps the snapshot for sharing with the query path.
    pub fn into_shared(self) -> Shared {
        Arc::new(ArcSwap::from_pointee(self))
    }
}
