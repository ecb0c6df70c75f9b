//! The example deployment with `[dnssec]`: `gslb.toml` of the repository written into
//! `dir` with its zones and GeoIP database named by absolute path and a `[dnssec]` section
//! whose key folder is `dir/keys` (empty: the caller makes the key). Shared with `#[path]`
//! by src/fast/tests.rs and tests/alloc.rs.

use std::path::{Path, PathBuf};

/// Writes the signed example's config into `dir`; returns its path.
pub(crate) fn signed_example_config(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("gslb.toml"))
        .unwrap()
        .replace("\"zones\"", &format!("{:?}", root.join("zones")))
        .replace(
            "\"geoip/sample.mmdb\"",
            &format!("{:?}", root.join("geoip/sample.mmdb")),
        );
    let config = dir.join("gslb.toml");
    std::fs::write(&config, format!("{text}\n[dnssec]\nkeys = \"keys\"\n")).unwrap();
    config
}
