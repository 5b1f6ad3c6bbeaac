//! Reuse across builds: what linking a package produced and the layers written from it.
//!
//! Linking and compressing are most of a build's time, and both depend only on the package
//! record, the prefix, the python it is installed for and the layer options. So a warm
//! build that finds those keys here links nothing and compresses nothing; a build with one
//! changed package redoes that package's layer and the small `conda-meta` layer.

use std::path::{Path, PathBuf};

use imgtool_archive::{LayerCache, SpooledLayer};
use imgtool_core::{Digest, Layer};
use rattler_conda_types::RepoDataRecord;

use crate::error::{Error, Result};
use crate::package::CachedPackage;

/// Bumped whenever what is cached, or how a layer is written from it, changes.
const VERSION: &str = "imgtool-conda-cache-1";

/// The build cache (`imgtool-layers` inside the package cache).
#[derive(Debug, Clone)]
pub struct BuildCache(LayerCache);

impl BuildCache {
    /// The cache under `package_cache`.
    pub fn open(package_cache: &Path) -> Result<Self> {
        Ok(Self(LayerCache::open(&package_cache.join("imgtool-layers")).map_err(|e| Error::install_from("opening the layer cache", e))?))
    }

    /// Where layers are spooled, so a new one is moved into the cache, not copied.
    pub fn spool_dir(&self) -> PathBuf {
        self.0.spool_dir()
    }

    /// What a previous build linked for `key`.
    pub fn package(&self, key: &str) -> Option<CachedPackage> {
        serde_json::from_slice(&self.0.entry(&format!("{key}.package"))?).ok()
    }

    /// Remember what linking produced for `key`.
    pub fn store_package(&self, key: &str, p: &CachedPackage) {
        if let Ok(text) = serde_json::to_vec(p) {
            self.0.put_entry(&format!("{key}.package"), &text);
        }
    }

    /// The layer written for `key`.
    pub fn layer(&self, key: &str) -> Option<Layer> {
        self.0.layer(key)
    }

    /// Keep a freshly spooled layer and return it served from the cache.
    pub fn store_layer(&self, key: &str, spooled: SpooledLayer) -> Layer {
        self.0.store_layer(key, spooled)
    }
}

/// The key of a package linked for `prefix` on `subdir`: its whole record (so a patched
/// repodata entry is a new key), and for `noarch: python` packages the python they are
/// linked for.
pub fn package_key(record: &RepoDataRecord, all: &[RepoDataRecord], prefix: &str, subdir: &str) -> String {
    let python = if record.package_record.noarch.is_python() {
        all.iter().find(|r| r.package_record.name.as_normalized() == "python").map(|r| r.package_record.version.to_string())
    } else {
        None
    };
    let doc = serde_json::json!({ "v": VERSION, "record": record, "prefix": prefix, "subdir": subdir, "python": python });
    Digest::sha256_of(&imgtool_core::canonical_json(&doc)).hex().to_string()
}

/// The key of a layer holding `members` (package keys, in layer order) written with
/// `options` (everything else that shapes the bytes: filter, mtime, compression, prefix).
pub fn layer_key(members: &[&str], options: &serde_json::Value) -> String {
    let doc = serde_json::json!({ "v": VERSION, "members": members, "options": options });
    Digest::sha256_of(&imgtool_core::canonical_json(&doc)).hex().to_string()
}
